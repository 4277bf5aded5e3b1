//! Exec processes: extra processes run in a running container (`kubectl exec`, CRI's ExecSync).
//!
//! Exec records the process; Start runs `runsc exec --detach --pid-file --internal-pid-file
//! [--console-socket]`. runsc's detached parent starts a child `runsc exec` that runs the process
//! in the sandbox, writes the internal pid and then its own pid, waits for the process and exits
//! with its status (128 + the signal for a signal); the parent returns once the pid file is
//! written (runsc 20221219 and 20240729 alike). When the parent exits that child becomes the
//! shim's (a child subreaper), so its exit status, the exec's, comes from the shim's reaper
//! through [`ExitLog`], as gVisor's shim learns it. A `runsc wait --pid` would race that child
//! for the one status the sandbox keeps. Kill signals the process inside the sandbox by its
//! internal pid (`runsc kill --pid`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::protos::events::task::{TaskExecAdded, TaskExecStarted, TaskExit};
use containerd_shim::util::convert_to_timestamp;
use log::{info, warn};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::runsc::{self, ExecOpts, ProcessIo};
use crate::shim::console::{ConsoleSocket, Pty};
use crate::shim::container::{Container, Exit, Status};
use crate::shim::events::EventSender;
use crate::shim::exits::{self, ExitLog};
use crate::shim::io::{self, StdioCopies, StdioPaths};

/// How long Delete of an exec waits for its output to drain.
const IO_DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// How often the exit watcher checks that the `runsc exec` process still lives.
const LIVENESS_CHECK: Duration = Duration::from_secs(10);

/// An Exec request, in the domain's terms.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub exec_id: String,
    pub stdio: StdioPaths,
    /// The OCI process, as JSON (`ExecProcessRequest.spec`).
    pub spec: Vec<u8>,
}

/// An exec process' state as State reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecState {
    pub exec_id: String,
    pub pid: i32,
    pub status: Status,
    pub stdio: StdioPaths,
    pub exit: Option<Exit>,
}

/// One exec process.
pub struct ExecProcess {
    pub container_id: String,
    pub exec_id: String,
    pub stdio: StdioPaths,
    spec: Vec<u8>,
    terminal: bool,
    inner: Mutex<Inner>,
    exit: watch::Sender<Option<Exit>>,
}

#[derive(Default)]
struct Inner {
    status: Option<Status>,
    /// The host pid of the `runsc exec` process that exits with the exec's status.
    pid: i32,
    /// The process' pid inside the sandbox.
    internal_pid: i32,
    copies: Option<StdioCopies>,
    pty: Option<Pty>,
    /// Files runsc was given, removed at Delete.
    files: Vec<PathBuf>,
}

impl ExecProcess {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().status.unwrap_or(Status::Created)
    }

    pub fn pid(&self) -> i32 {
        self.lock().pid
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Records the exit once. Returns whether this call recorded it.
    fn set_exited(&self, status: u32) -> bool {
        let mut inner = self.lock();
        if self.exit.borrow().is_some() {
            return false;
        }
        inner.status = Some(Status::Stopped);
        self.exit.send_replace(Some(Exit {
            status,
            at: SystemTime::now(),
        }));
        true
    }

    pub async fn wait(&self) -> Exit {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(exit) = *rx.borrow_and_update() {
                return exit;
            }
            if rx.changed().await.is_err() {
                return Exit {
                    status: 128,
                    at: SystemTime::now(),
                };
            }
        }
    }

    fn state(&self) -> ExecState {
        ExecState {
            exec_id: self.exec_id.clone(),
            pid: self.pid(),
            status: self.status(),
            stdio: self.stdio.clone(),
            exit: self.exit(),
        }
    }
}

/// The exec processes of the pod's containers, by container and exec id.
#[derive(Default)]
pub struct Execs {
    by_id: Mutex<HashMap<(String, String), Arc<ExecProcess>>>,
}

impl Execs {
    fn get(&self, id: &str, exec_id: &str) -> Result<Arc<ExecProcess>> {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(id.to_string(), exec_id.to_string()))
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} of container {id}")))
    }

    /// Exec: checks and records the process; nothing runs until Start.
    pub fn add(&self, c: &Container, req: ExecRequest, events: &EventSender) -> Result<()> {
        crate::shim::ids::validate_id(&req.exec_id).map_err(|_| {
            Error::invalid(
                "exec_id",
                format!(
                    "{:?} must be 1-256 of [A-Za-z0-9_.-], not starting with '-'",
                    req.exec_id
                ),
            )
        })?;
        if c.status() == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {} has stopped: cannot exec in it",
                c.id
            )));
        }
        let process: oci_spec::runtime::Process = serde_json::from_slice(&req.spec)
            .map_err(|e| Error::invalid("spec", format!("not an OCI process: {e}")))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::invalid(
                "spec.args",
                "is empty: give the command to run",
            ));
        }
        let terminal = process.terminal().unwrap_or(false);
        if terminal != req.stdio.terminal {
            return Err(Error::invalid(
                "terminal",
                format!(
                    "is {} but spec.terminal is {terminal}: they must agree",
                    req.stdio.terminal
                ),
            ));
        }
        let key = (c.id.clone(), req.exec_id.clone());
        let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if by_id.contains_key(&key) {
            return Err(Error::AlreadyExists(format!(
                "exec {} of container {}",
                req.exec_id, c.id
            )));
        }
        by_id.insert(
            key,
            Arc::new(ExecProcess {
                container_id: c.id.clone(),
                exec_id: req.exec_id.clone(),
                stdio: req.stdio,
                spec: req.spec,
                terminal,
                inner: Mutex::new(Inner::default()),
                exit: watch::channel(None).0,
            }),
        );
        events.send(TaskExecAdded {
            container_id: c.id.clone(),
            exec_id: req.exec_id,
            ..Default::default()
        });
        Ok(())
    }

    /// Start: `runsc exec --detach`, then a watcher for the exit. A process that cannot start
    /// (a missing binary) fails here with runsc's error and leaves nothing running; its Wait
    /// answers 128 and Delete removes it.
    pub async fn start(
        &self,
        c: &Container,
        exec_id: &str,
        events: &EventSender,
        exits: &Arc<ExitLog>,
    ) -> Result<i32> {
        let e = self.get(&c.id, exec_id)?;
        if e.status() != Status::Created {
            return Err(Error::FailedPrecondition(format!(
                "exec {exec_id} of container {} is {:?}, not created",
                c.id,
                e.status()
            )));
        }
        if c.status() != Status::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is {:?}: exec needs a running container",
                c.id,
                c.status()
            )));
        }
        // Marked at once, so a second Start cannot run it twice.
        e.lock().status = Some(Status::Running);
        let files = ExecFiles::new(&c.bundle, exec_id);
        let since = Instant::now();
        match self.run(c, &e, &files).await {
            Ok((pid, internal_pid, copies, pty)) => {
                let mut inner = e.lock();
                inner.pid = pid;
                inner.internal_pid = internal_pid;
                inner.copies = Some(copies);
                inner.pty = pty;
                inner.files = files.kept();
                drop(inner);
                files.remove_process();
                events.send(TaskExecStarted {
                    container_id: c.id.clone(),
                    exec_id: exec_id.to_string(),
                    pid: pid as u32,
                    ..Default::default()
                });
                info!("{}: exec {exec_id} started (pid {pid})", c.id);
                let events = events.clone();
                let exits = exits.clone();
                tokio::spawn(async move { watch_exit(e, since, events, exits).await });
                Ok(pid)
            }
            Err(err) => {
                files.remove_all();
                e.set_exited(128);
                warn!("{}: exec {exec_id} failed to start: {err}", c.id);
                Err(err)
            }
        }
    }

    async fn run(
        &self,
        c: &Container,
        e: &ExecProcess,
        files: &ExecFiles,
    ) -> Result<(i32, i32, StdioCopies, Option<Pty>)> {
        std::fs::write(&files.process, &e.spec)
            .map_err(|err| Error::io("writing the exec's process spec", &files.process, err))?;
        let (uid, gid) = c.io_owner;
        let (process_io, copies, console) = if e.terminal {
            let socket = ConsoleSocket::new()?;
            (ProcessIo::default(), None, Some(socket))
        } else {
            let (process_io, copies) = io::open(&e.stdio, uid, gid)?;
            (process_io, Some(copies), None)
        };
        let console_path = console.as_ref().map(|s| s.path().to_path_buf());
        let opts = ExecOpts {
            process: &files.process,
            pid_file: &files.pid,
            internal_pid_file: &files.internal_pid,
            console_socket: console_path.as_deref(),
        };
        if let Some(socket) = console {
            // runsc sends the master while `runsc exec` runs: take it meanwhile.
            let ((), pty) = socket
                .receive_during(c.runsc.exec(&c.id, &opts, process_io))
                .await?;
            let copies = pty.copy(&e.stdio)?;
            let (pid, internal) = files.read_pids()?;
            Ok((pid, internal, copies, Some(pty)))
        } else {
            c.runsc.exec(&c.id, &opts, process_io).await?;
            let (pid, internal) = files.read_pids()?;
            Ok((pid, internal, copies.unwrap_or_default(), None))
        }
    }

    /// Kill: signals the process inside the sandbox by its internal pid.
    pub async fn kill(&self, c: &Container, exec_id: &str, signal: u32) -> Result<()> {
        let e = self.get(&c.id, exec_id)?;
        let (status, internal_pid) = {
            let inner = e.lock();
            (inner.status.unwrap_or(Status::Created), inner.internal_pid)
        };
        match status {
            Status::Stopped => Err(Error::NotFound(format!(
                "exec {exec_id} of container {} has exited",
                c.id
            ))),
            Status::Created => Err(Error::NotFound(format!(
                "exec {exec_id} of container {} has not started",
                c.id
            ))),
            Status::Running | Status::Paused => {
                match c.runsc.kill_pid(&c.id, internal_pid, signal).await {
                    Err(err) if runsc::is_gone(&err) || e.status() == Status::Stopped => {
                        Err(Error::NotFound(format!(
                            "exec {exec_id} of container {} has exited ({err})",
                            c.id
                        )))
                    }
                    other => other,
                }
            }
        }
    }

    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<Exit> {
        let e = self.get(id, exec_id)?;
        Ok(e.wait().await)
    }

    pub fn state(&self, id: &str, exec_id: &str) -> Result<ExecState> {
        Ok(self.get(id, exec_id)?.state())
    }

    pub fn close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        let e = self.get(id, exec_id)?;
        if let Some(copies) = e.lock().copies.as_mut() {
            copies.close_stdin();
        }
        Ok(())
    }

    pub fn resize(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let e = self.get(id, exec_id)?;
        let pty = e.lock().pty.clone();
        match pty {
            Some(pty) => pty.resize(width, height),
            None => Err(Error::FailedPrecondition(format!(
                "exec {exec_id} of container {id} has no terminal"
            ))),
        }
    }

    /// Delete: a running exec must be killed first; its output is drained and its files go.
    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<(i32, Exit)> {
        let e = self.get(id, exec_id)?;
        if e.status() == Status::Running {
            return Err(Error::FailedPrecondition(format!(
                "exec {exec_id} of container {id} is running: kill it first"
            )));
        }
        let (copies, files) = {
            let mut inner = e.lock();
            (inner.copies.take(), std::mem::take(&mut inner.files))
        };
        if let Some(copies) = copies {
            copies.finish(IO_DRAIN_LIMIT).await;
        }
        e.lock().pty = None;
        for f in files {
            remove_file(&f);
        }
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(id.to_string(), exec_id.to_string()));
        let exit = e.exit().unwrap_or(Exit {
            status: 0,
            at: SystemTime::now(),
        });
        info!("{id}: exec {exec_id} deleted (exit status {})", exit.status);
        Ok((e.pid(), exit))
    }

    /// Forgets every exec of a container being deleted (they died with it).
    pub fn remove_all(&self, id: &str) {
        let removed: Vec<Arc<ExecProcess>> = {
            let mut by_id = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<_> = by_id.keys().filter(|(c, _)| c == id).cloned().collect();
            keys.into_iter().filter_map(|k| by_id.remove(&k)).collect()
        };
        for e in removed {
            let mut inner = e.lock();
            inner.copies = None;
            inner.pty = None;
            for f in std::mem::take(&mut inner.files) {
                remove_file(&f);
            }
        }
    }
}

/// Waits for the `runsc exec` process' exit (the exec's status) and reports it.
async fn watch_exit(e: Arc<ExecProcess>, since: Instant, events: EventSender, exits: Arc<ExitLog>) {
    let pid = e.pid();
    let status = loop {
        if let Some(exit) = exits.exit_of(pid, since, LIVENESS_CHECK).await {
            break exit.status;
        }
        if !exits::is_alive(pid) {
            // Reaped by the time it is gone; one more look for a report on its way.
            if let Some(exit) = exits.exit_of(pid, since, Duration::from_secs(2)).await {
                break exit.status;
            }
            warn!(
                "{}: exec {} (pid {pid}) is gone and its exit status is unknown, reporting 128",
                e.container_id, e.exec_id
            );
            break 128;
        }
    };
    if e.set_exited(status) {
        info!(
            "{}: exec {} exited with status {status}",
            e.container_id, e.exec_id
        );
        let exit = e.exit().expect("just recorded");
        events.send(TaskExit {
            container_id: e.container_id.clone(),
            id: e.exec_id.clone(),
            pid: pid as u32,
            exit_status: exit.status,
            exited_at: Some(convert_to_timestamp(Some(exit.at.into()))).into(),
            ..Default::default()
        });
    }
}

/// The files of one exec in the bundle: the process spec runsc reads, and the pid files it writes.
struct ExecFiles {
    process: PathBuf,
    pid: PathBuf,
    internal_pid: PathBuf,
}

impl ExecFiles {
    fn new(bundle: &Path, exec_id: &str) -> Self {
        ExecFiles {
            process: bundle.join(format!("{exec_id}.process.json")),
            pid: bundle.join(format!("{exec_id}.pid")),
            internal_pid: bundle.join(format!("{exec_id}-internal.pid")),
        }
    }

    fn read_pids(&self) -> Result<(i32, i32)> {
        Ok((read_pid(&self.pid)?, read_pid(&self.internal_pid)?))
    }

    /// What stays until Delete.
    fn kept(&self) -> Vec<PathBuf> {
        vec![self.pid.clone(), self.internal_pid.clone()]
    }

    /// runsc has read the spec once its detached parent returned.
    fn remove_process(&self) {
        remove_file(&self.process);
    }

    fn remove_all(&self) {
        for f in [&self.process, &self.pid, &self.internal_pid] {
            remove_file(f);
        }
    }
}

fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!("removing {}: {e}", path.display());
        }
    }
}

fn read_pid(path: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("reading runsc's exec pid file", path, e))?;
    text.trim().parse::<i32>().map_err(|_| {
        Error::invalid(
            path.display().to_string(),
            format!("runsc wrote {text:?}, not a pid"),
        )
    })
}
