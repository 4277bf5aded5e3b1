//! One container of the pod and its init process, as this shim tracks it.
//!
//! runsc owns the real state (inside the sandbox); the shim keeps what containerd asks about
//! most (status, pid, exit) so State and Wait never need a runsc call.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use crate::annotations::Role;
use crate::cgroup::OomCounter;
use crate::runsc::{ProcessIo, Runsc};
use crate::shim::console::{ConsoleSocket, Pty};
use crate::shim::io::{StdioCopies, StdioPaths};

/// The init process' status, in containerd's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    /// Frozen by `runsc pause` until `runsc resume`.
    Paused,
    Stopped,
}

/// How and when a container's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

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
    /// The sandbox's pid: runsc writes it into every container's pid file.
    pub pid: i32,
    pub stdio: StdioPaths,
    /// The pod's OOM kills since create: tells an OOM kill from any other death of the sandbox.
    pub oom: Option<OomCounter>,
    /// When `runsc create` began: an exit the reaper saw before is another process'.
    pub created_at: Instant,
    /// Who owns the stdio pipes of the container's processes (runsc.toml's `io_uid`/`io_gid`):
    /// an exec's pipes are made at its Start.
    pub io_owner: (u32, u32),
    /// The pod's sandbox, by its container id (its own for a sandbox).
    pub sandbox_id: String,
    status: Mutex<Status>,
    exit: watch::Sender<Option<Exit>>,
    copies: Mutex<Option<StdioCopies>>,
    /// The stdio a container joining the pod gets at start, held between Create and Start.
    start_io: Mutex<Option<ProcessIo>>,
    terminal: Mutex<Option<Terminal>>,
}

impl Container {
    pub fn new(
        id: String,
        bundle: PathBuf,
        role: Role,
        runsc: Runsc,
        pid: i32,
        stdio: AttachedStdio,
        oom: Option<OomCounter>,
    ) -> Self {
        Container {
            sandbox_id: id.clone(),
            id,
            bundle,
            role,
            runsc,
            pid,
            stdio: stdio.paths,
            oom,
            created_at: Instant::now(),
            io_owner: (0, 0),
            status: Mutex::new(Status::Created),
            exit: watch::channel(None).0,
            copies: Mutex::new(Some(stdio.copies)),
            start_io: Mutex::new(Some(stdio.start_io)),
            terminal: Mutex::new(stdio.terminal),
        }
    }

    pub fn status(&self) -> Status {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_running(&self) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if *s == Status::Created {
            *s = Status::Running;
        }
    }

    /// Pause and Resume move a running container to paused and back; an exit that came
    /// meanwhile wins. Returns whether the status changed.
    pub fn set_paused(&self, paused: bool) -> bool {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let (from, to) = if paused {
            (Status::Running, Status::Paused)
        } else {
            (Status::Paused, Status::Running)
        };
        if *s != from {
            return false;
        }
        *s = to;
        true
    }

    /// Records the exit once; later calls keep the first. Returns whether this call recorded it.
    pub fn set_exited(&self, status: u32) -> bool {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if self.exit.borrow().is_some() {
            return false;
        }
        *s = Status::Stopped;
        self.exit.send_replace(Some(Exit {
            status,
            at: SystemTime::now(),
        }));
        true
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits for the init process to exit.
    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                // The sender lives in self, so this cannot happen while self is borrowed.
                return Exit {
                    status: 128,
                    at: SystemTime::now(),
                };
            }
        }
    }

    pub fn close_stdin(&self) {
        if let Some(c) = self
            .copies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            c.close_stdin();
        }
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
        let mut t = self.terminal.lock().unwrap_or_else(|p| p.into_inner());
        match t.take() {
            Some(Terminal::Pending(socket)) => Some(socket),
            other => {
                *t = other;
                None
            }
        }
    }

    /// The master arrived (at start): copy it to the fifos from now on.
    pub fn attach_pty(&self, pty: Pty, copies: StdioCopies) {
        *self.terminal.lock().unwrap_or_else(|p| p.into_inner()) = Some(Terminal::Pty(pty));
        *self.copies.lock().unwrap_or_else(|p| p.into_inner()) = Some(copies);
    }

    /// The terminal's master, once runsc sent it.
    pub fn pty(&self) -> Option<Pty> {
        match &*self.terminal.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(Terminal::Pty(pty)) => Some(pty.clone()),
            _ => None,
        }
    }

    /// Takes the stdio copies for draining at delete.
    pub fn take_copies(&self) -> Option<StdioCopies> {
        self.copies.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runsc::{GlobalFlags, TokioExecutor};
    use std::sync::Arc;

    fn container() -> Container {
        let runsc = Runsc::new(
            "runsc".into(),
            GlobalFlags::new("/r", std::path::Path::new("/b"), Default::default()),
            Arc::new(TokioExecutor),
        );
        Container::new(
            "c".into(),
            "/b".into(),
            Role::Sandbox,
            runsc,
            0x4000_0001,
            AttachedStdio::default(),
            None,
        )
    }

    #[tokio::test]
    async fn the_first_exit_wins_and_wakes_waiters() {
        let c = Arc::new(container());
        assert_eq!(c.status(), Status::Created);
        c.set_running();
        assert_eq!(c.status(), Status::Running);
        let waiter = tokio::spawn({
            let c = c.clone();
            async move { c.wait().await.status }
        });
        assert!(c.set_exited(3));
        assert!(!c.set_exited(137));
        assert_eq!(waiter.await.unwrap(), 3);
        assert_eq!(c.status(), Status::Stopped);
        assert_eq!(c.exit().map(|e| e.status), Some(3));
        c.set_running();
        assert_eq!(c.status(), Status::Stopped);
    }
}
