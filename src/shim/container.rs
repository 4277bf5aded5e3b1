//! One container of the pod and its init process, as this shim tracks it.
//!
//! runsc owns the real state (inside the sandbox); the shim keeps what containerd asks about
//! most (status, pid, exit) so State and Wait never need a runsc call.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::annotations::Role;
use crate::cgroup::OomCounter;
use crate::runsc::{ProcessIo, Runsc};
use crate::shim::console::{ConsoleSocket, Pty};
use crate::shim::io::{StdioCopies, StdioPaths};
use crate::shim::process::{Exit, Process, ProcessRef, Status};

/// A container's stdio: where containerd wants it, the running copies, and the ends that
/// `runsc start` hands in (for a container joining the pod).
#[derive(Debug, Default)]
pub struct AttachedStdio {
    pub paths: StdioPaths,
    pub copies: StdioCopies,
    pub start_io: ProcessIo,
    /// A terminal: the master runsc sent at create (a sandbox), or the socket it sends it to at
    /// start (a container joining the pod).
    pub terminal: Option<Terminal>,
}

/// A container's terminal, as far as it has come.
#[derive(Debug)]
pub enum Terminal {
    Pty(Pty),
    Pending(ConsoleSocket),
}

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub role: Role,
    pub runsc: Runsc,
    /// The init process: its pid is the sandbox's (runsc writes it into every container's pid
    /// file), its status and exit the container's.
    pub init: Process,
    /// The pod's OOM kills since create: tells an OOM kill from any other death of the sandbox.
    pub oom: Option<OomCounter>,
    /// When `runsc create` began: an exit the reaper saw before is another process'.
    pub created_at: Instant,
    /// Who owns the stdio pipes of the container's processes (runsc.toml's `io_uid`/`io_gid`):
    /// an exec's pipes are made at its Start.
    pub io_owner: (u32, u32),
    /// The pod's sandbox, by its container id (its own for a sandbox).
    pub sandbox_id: String,
    /// The stdio a container joining the pod gets at start, held between Create and Start.
    start_io: Mutex<Option<ProcessIo>>,
    /// The console socket a joining container's master comes to at start.
    pending_console: Mutex<Option<ConsoleSocket>>,
}

/// Everything a container is made of once `runsc create` made it: a [`Container`] is built
/// whole from this, never patched after.
pub struct ContainerParts {
    pub init: ProcessRef,
    pub bundle: PathBuf,
    pub role: Role,
    /// The pod's sandbox, by its container id (its own for a sandbox).
    pub sandbox_id: String,
    pub runsc: Runsc,
    /// The sandbox's pid, from runsc's pid file.
    pub pid: i32,
    pub stdio: AttachedStdio,
    pub oom: Option<OomCounter>,
    pub created_at: Instant,
    pub io_owner: (u32, u32),
}

impl Container {
    pub fn new(parts: ContainerParts) -> Self {
        let id = parts.init.container_id().to_string();
        let init = Process::new(parts.init, parts.stdio.paths, parts.pid);
        let (pty, pending_console) = match parts.stdio.terminal {
            Some(Terminal::Pty(pty)) => (Some(pty), None),
            Some(Terminal::Pending(socket)) => (None, Some(socket)),
            None => (None, None),
        };
        init.attach_stdio(parts.stdio.copies, pty);
        Container {
            id,
            bundle: parts.bundle,
            role: parts.role,
            runsc: parts.runsc,
            init,
            oom: parts.oom,
            created_at: parts.created_at,
            io_owner: parts.io_owner,
            sandbox_id: parts.sandbox_id,
            start_io: Mutex::new(Some(parts.stdio.start_io)),
            pending_console: Mutex::new(pending_console),
        }
    }

    /// The sandbox's pid, the init process'.
    pub fn pid(&self) -> i32 {
        self.init.pid()
    }

    pub fn status(&self) -> Status {
        self.init.status()
    }

    pub fn exit(&self) -> Option<Exit> {
        self.init.exit()
    }

    /// Takes the stdio for `runsc start` (empty for a sandbox, whose stdio went to create).
    pub fn take_start_io(&self) -> ProcessIo {
        self.start_io
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// The console socket a joining container's master comes to at start, taken for that start.
    pub fn take_pending_console(&self) -> Option<ConsoleSocket> {
        self.pending_console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runsc::{GlobalFlags, TokioExecutor};
    use std::sync::Arc;

    #[test]
    fn the_init_process_carries_the_containers_pid_and_status() {
        let runsc = Runsc::new(
            "runsc".into(),
            GlobalFlags::new("/r", std::path::Path::new("/b"), Default::default()),
            Arc::new(TokioExecutor),
        );
        let c = Container::new(ContainerParts {
            init: ProcessRef::init("c").unwrap(),
            bundle: "/b".into(),
            role: Role::Sandbox,
            sandbox_id: "c".into(),
            runsc,
            pid: 0x4000_0001,
            stdio: AttachedStdio::default(),
            oom: None,
            created_at: Instant::now(),
            io_owner: (0, 0),
        });
        assert_eq!(c.pid(), 0x4000_0001);
        assert_eq!(c.sandbox_id, "c");
        assert_eq!(c.status(), Status::Created);
        assert!(c.init.set_exited(3));
        assert_eq!(c.status(), Status::Stopped);
        assert_eq!(c.exit().map(|e| e.status), Some(3));
        assert!(c.take_pending_console().is_none());
    }
}
