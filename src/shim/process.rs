//! One process model for a container's init process and its exec processes.
//!
//! containerd addresses both through the same calls (Start, Kill, Wait, State, Delete, CloseIO,
//! ResizePty) with an id and an optional exec id. A [`ProcessRef`] is that pair, checked once; a
//! [`Process`] is what the two kinds share: the pid, the status and its transitions, the exit
//! cell that Wait waits on, and the stdio copies and terminal. The init process lives in its
//! `Container`, an exec process in `shim::exec`; what differs between them (how runsc starts and
//! signals them) is there, everything else here, so a fix to exit handling lands once.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::fsread::{read_regular_to_string, Symlinks, PID_FILE_MAX};
use crate::shim::console::Pty;
use crate::shim::ids::validate_id_field;
use crate::shim::io::{StdioCopies, StdioPaths};

/// How long Delete waits for a process' output to drain, init's and exec's alike.
const STDIO_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A process' status, in containerd's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    /// Frozen by `runsc pause` until `runsc resume`.
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// How and when a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

/// Which process a request names: a container's init (no exec id) or one of its execs. Both ids
/// become file names and runsc arguments, so they are checked when the reference is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessRef {
    container_id: String,
    exec_id: Option<String>,
}

impl ProcessRef {
    /// From a request's `id` and `exec_id`; an empty exec id names the init process.
    pub fn new(container_id: &str, exec_id: &str) -> Result<Self> {
        validate_id_field("id", container_id)?;
        let exec_id = if exec_id.is_empty() {
            None
        } else {
            validate_id_field("exec_id", exec_id)?;
            Some(exec_id.to_string())
        };
        Ok(ProcessRef {
            container_id: container_id.to_string(),
            exec_id,
        })
    }

    /// The init process of container `id`.
    pub fn init(container_id: &str) -> Result<Self> {
        Self::new(container_id, "")
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    pub fn exec_id(&self) -> Option<&str> {
        self.exec_id.as_deref()
    }
}

impl fmt::Display for ProcessRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exec_id {
            None => write!(f, "container {}", self.container_id),
            Some(e) => write!(f, "exec {e} of container {}", self.container_id),
        }
    }
}

/// The pid runsc wrote into `path`; `context` says which file in the error ("reading ...").
pub fn read_pid_file(path: &Path, context: &'static str) -> Result<i32> {
    let text = read_regular_to_string(path, PID_FILE_MAX, Symlinks::Follow)
        .map_err(|e| Error::io(context, path, e))?;
    text.trim().parse::<i32>().map_err(|_| {
        Error::invalid(
            path.display().to_string(),
            format!("runsc wrote {text:?}, not a pid"),
        )
    })
}

/// Where a process is in its life. `Starting` is the shim's own: Start has claimed the process
/// and runsc is starting it; containerd sees it as still created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Starting,
    Running,
    Paused,
    Stopped,
}

impl Phase {
    fn status(self) -> Status {
        match self {
            Phase::Created | Phase::Starting => Status::Created,
            Phase::Running => Status::Running,
            Phase::Paused => Status::Paused,
            Phase::Stopped => Status::Stopped,
        }
    }
}

/// What a process' stdio has become: the running copies to and from containerd's fifos, and the
/// terminal's master when it has one.
#[derive(Default)]
struct ProcessStdio {
    copies: Option<StdioCopies>,
    pty: Option<Pty>,
}

/// A process as the shim tracks it; see the module's text.
pub struct Process {
    pub reference: ProcessRef,
    /// Where containerd wants the process' stdio.
    pub stdio: StdioPaths,
    /// The host pid containerd is told (the sandbox's for an init, `runsc exec`'s for an exec).
    pid: AtomicI32,
    phase: Mutex<Phase>,
    exit: watch::Sender<Option<Exit>>,
    io: Mutex<ProcessStdio>,
}

impl Process {
    pub fn new(reference: ProcessRef, stdio: StdioPaths, pid: i32) -> Self {
        Process {
            reference,
            stdio,
            pid: AtomicI32::new(pid),
            phase: Mutex::new(Phase::Created),
            exit: watch::channel(None).0,
            io: Mutex::new(ProcessStdio::default()),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stdio_state(&self) -> std::sync::MutexGuard<'_, ProcessStdio> {
        self.io.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::Release);
    }

    pub fn status(&self) -> Status {
        self.phase().status()
    }

    /// Start has claimed it and runsc is starting it.
    pub fn is_starting(&self) -> bool {
        *self.phase() == Phase::Starting
    }

    /// The one wording of a call the process' status does not allow.
    pub fn not_now(&self, status: Status, needed: &str) -> Error {
        Error::FailedPrecondition(format!("{} is {status}: {needed}", self.reference))
    }

    /// The current status when it is one of `allowed`; otherwise FailedPrecondition saying what
    /// the call needs.
    pub fn expect(&self, allowed: &[Status], needed: &str) -> Result<Status> {
        let status = self.status();
        if allowed.contains(&status) {
            Ok(status)
        } else {
            Err(self.not_now(status, needed))
        }
    }

    /// Start claims the process: from created to starting, so a second Start cannot run it
    /// twice.
    pub fn claim_start(&self) -> Result<()> {
        let mut phase = self.phase();
        match *phase {
            Phase::Created => {
                *phase = Phase::Starting;
                Ok(())
            }
            Phase::Starting => Err(Error::FailedPrecondition(format!(
                "{} is being started already",
                self.reference
            ))),
            other => Err(self.not_now(other.status(), "only a created process can be started")),
        }
    }

    /// runsc started it; an exit that came meanwhile wins.
    pub fn set_running(&self) {
        let mut phase = self.phase();
        if matches!(*phase, Phase::Created | Phase::Starting) {
            *phase = Phase::Running;
        }
    }

    /// Pause and Resume move a running process to paused and back; an exit that came meanwhile
    /// wins. Returns whether the status changed.
    pub fn set_paused(&self, paused: bool) -> bool {
        let mut phase = self.phase();
        let (from, to) = if paused {
            (Phase::Running, Phase::Paused)
        } else {
            (Phase::Paused, Phase::Running)
        };
        if *phase != from {
            return false;
        }
        *phase = to;
        true
    }

    /// Records the exit once; later calls keep the first. Returns whether this call recorded it.
    pub fn set_exited(&self, status: u32) -> bool {
        let mut phase = self.phase();
        if self.exit.borrow().is_some() {
            return false;
        }
        *phase = Phase::Stopped;
        self.exit.send_replace(Some(Exit {
            status,
            at: SystemTime::now(),
        }));
        true
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Waits for the process to exit.
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

    /// The exit to report at Delete: a process deleted without an exit reports 0, as runc's
    /// shim does.
    pub fn exit_or_now(&self) -> Exit {
        self.exit().unwrap_or(Exit {
            status: 0,
            at: SystemTime::now(),
        })
    }

    /// The stdio copies (and the terminal's master) once they run.
    pub fn attach_stdio(&self, copies: StdioCopies, pty: Option<Pty>) {
        let mut io = self.stdio_state();
        io.copies = Some(copies);
        if pty.is_some() {
            io.pty = pty;
        }
    }

    pub fn close_stdin(&self) {
        if let Some(c) = self.stdio_state().copies.as_mut() {
            c.close_stdin();
        }
    }

    /// The terminal's master, once runsc sent it.
    pub fn pty(&self) -> Option<Pty> {
        self.stdio_state().pty.clone()
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        match self.pty() {
            Some(pty) => pty.resize(width, height),
            None => Err(Error::FailedPrecondition(format!(
                "{} has no terminal",
                self.reference
            ))),
        }
    }

    /// Drains what is left of the output (for at most `limit`) and lets the terminal go.
    pub async fn drain_stdio(&self) {
        let copies = {
            let mut io = self.stdio_state();
            io.pty = None;
            io.copies.take()
        };
        if let Some(copies) = copies {
            copies.finish(STDIO_DRAIN_LIMIT).await;
        }
    }

    /// Drops the stdio copies and the terminal at once (the process died with its container).
    pub fn abandon_stdio(&self) {
        let mut io = self.stdio_state();
        io.copies = None;
        io.pty = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsread::testing::{fifo, within_two_seconds};
    use std::sync::Arc;

    #[test]
    fn a_fifo_in_place_of_a_pid_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path(), "init.pid");
        let p = path.clone();
        let err = within_two_seconds(move || read_pid_file(&p, "reading the pid file"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "reading the pid file {}: a FIFO, not a regular file",
                path.display()
            )
        );
    }

    #[test]
    fn a_pid_file_longer_than_a_pid_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("init.pid");
        std::fs::write(&path, "1".repeat(100)).unwrap();
        let err = read_pid_file(&path, "reading").unwrap_err().to_string();
        assert!(err.contains("larger than 64 bytes"), "{err}");
        std::fs::write(&path, "4242\n").unwrap();
        assert_eq!(read_pid_file(&path, "reading").unwrap(), 4242);
    }

    fn init() -> Process {
        Process::new(
            ProcessRef::init("c").unwrap(),
            StdioPaths::default(),
            0x4000_0001,
        )
    }

    #[test]
    fn references_are_checked_and_named() {
        for good in ["abc", "a-b_c.d", "0123456789abcdef"] {
            assert!(ProcessRef::init(good).is_ok(), "{good}");
            assert!(ProcessRef::new("c", good).is_ok(), "{good}");
        }
        for bad in ["-x", "a/b", "..", ".", "a b", &"x".repeat(300)] {
            let e = ProcessRef::init(bad).unwrap_err().to_string();
            assert!(e.contains("id"), "{e}");
            let e = ProcessRef::new("c", bad).unwrap_err().to_string();
            assert!(e.contains("exec_id"), "{e}");
        }
        assert!(ProcessRef::init("").is_err());
        assert_eq!(ProcessRef::init("c").unwrap().to_string(), "container c");
        let exec = ProcessRef::new("c", "e").unwrap();
        assert_eq!(exec.to_string(), "exec e of container c");
        assert_eq!(exec.exec_id(), Some("e"));
    }

    #[tokio::test]
    async fn the_first_exit_wins_and_wakes_waiters() {
        let p = Arc::new(init());
        assert_eq!(p.status(), Status::Created);
        p.set_running();
        assert_eq!(p.status(), Status::Running);
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait().await.status }
        });
        assert!(p.set_exited(3));
        assert!(!p.set_exited(137));
        assert_eq!(waiter.await.unwrap(), 3);
        assert_eq!(p.status(), Status::Stopped);
        assert_eq!(p.exit().map(|e| e.status), Some(3));
        p.set_running();
        assert_eq!(p.status(), Status::Stopped);
    }

    #[test]
    fn start_is_claimed_once_and_refusals_share_one_wording() {
        let p = init();
        p.claim_start().unwrap();
        assert_eq!(p.status(), Status::Created, "starting reads as created");
        let e = p.claim_start().unwrap_err();
        assert!(matches!(e, Error::FailedPrecondition(_)), "{e:?}");
        assert_eq!(e.to_string(), "container c is being started already");
        p.set_running();
        let e = p.claim_start().unwrap_err().to_string();
        assert_eq!(
            e,
            "container c is running: only a created process can be started"
        );
        assert!(p.set_paused(true));
        assert!(!p.set_paused(true));
        let e = p.expect(&[Status::Running], "it must run").unwrap_err();
        assert!(e
            .to_string()
            .ends_with("container c is paused: it must run"));
        assert!(p.set_paused(false));
        assert!(p.set_exited(0));
        assert!(!p.set_paused(true), "an exit wins over pause");
    }

    #[test]
    fn pid_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pid");
        std::fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_pid_file(&p, "reading a pid file").unwrap(), 1234);
        std::fs::write(&p, "abc").unwrap();
        let e = read_pid_file(&p, "reading a pid file").unwrap_err();
        assert!(e.to_string().contains("abc"), "{e}");
        assert!(read_pid_file(&dir.path().join("missing"), "reading a pid file").is_err());
    }

    #[test]
    fn a_process_without_a_terminal_cannot_be_resized() {
        let e = init().resize(80, 24).unwrap_err().to_string();
        assert!(e.contains("container c has no terminal"), "{e}");
    }
}
