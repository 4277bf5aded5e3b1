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
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::error::{Error, Result};
use crate::runsc::{self, ExecOpts, ProcessIo};
use crate::shim::console::{ConsoleSocket, Pty};
use crate::shim::container::Container;
use crate::shim::exits::{self, ExitLog};
use crate::shim::io::{self, StdioCopies, StdioPaths};
use crate::shim::process::{read_pid_file, Exit, Process, ProcessRef, Status};

/// How often the exit watcher checks that the `runsc exec` process still lives.
const LIVENESS_CHECK: Duration = Duration::from_secs(10);

/// An Exec request, in the domain's terms (the process it names is a [`ProcessRef`]).
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub stdio: StdioPaths,
    /// The OCI process, as JSON (`ExecProcessRequest.spec`).
    pub spec: Vec<u8>,
}

/// One exec process: the shared [`Process`] and what only an exec has.
pub struct ExecProcess {
    pub process: Process,
    spec: Vec<u8>,
    terminal: bool,
    run: Mutex<ExecRun>,
}

/// What Start learned of a running exec.
#[derive(Default)]
struct ExecRun {
    /// The process' pid inside the sandbox.
    internal_pid: i32,
    /// Files runsc was given, removed at Delete.
    files: Vec<PathBuf>,
}

impl ExecProcess {
    fn run_state(&self) -> std::sync::MutexGuard<'_, ExecRun> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn exec_id(&self) -> &str {
        self.process.reference.exec_id().unwrap_or_default()
    }

    fn container_id(&self) -> &str {
        self.process.reference.container_id()
    }

    fn remove_files(&self) {
        for f in std::mem::take(&mut self.run_state().files) {
            remove_file(&f);
        }
    }
}

/// The exec processes of the pod's containers, by their reference.
#[derive(Default)]
pub struct Execs {
    by_ref: Mutex<HashMap<ProcessRef, Arc<ExecProcess>>>,
}

impl Execs {
    fn by_ref(&self) -> std::sync::MutexGuard<'_, HashMap<ProcessRef, Arc<ExecProcess>>> {
        self.by_ref.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, exec: &ProcessRef) -> Result<Arc<ExecProcess>> {
        self.by_ref()
            .get(exec)
            .cloned()
            .ok_or_else(|| Error::NotFound(exec.to_string()))
    }

    /// Exec: checks and records the process; nothing runs until Start.
    pub fn add(&self, c: &Container, exec: ProcessRef, req: ExecRequest) -> Result<()> {
        c.init.expect(
            &[Status::Created, Status::Running, Status::Paused],
            "cannot exec in it",
        )?;
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
        let mut by_ref = self.by_ref();
        if by_ref.contains_key(&exec) {
            return Err(Error::AlreadyExists(exec.to_string()));
        }
        by_ref.insert(
            exec.clone(),
            Arc::new(ExecProcess {
                process: Process::new(exec, req.stdio, 0),
                spec: req.spec,
                terminal,
                run: Mutex::new(ExecRun::default()),
            }),
        );
        Ok(())
    }

    /// Start: `runsc exec --detach`. A process that cannot start (a missing binary) fails here
    /// with runsc's error and leaves nothing running; its Wait answers 128 and Delete removes
    /// it. On success the pid, and when the exec began (for [`watch_exit`]).
    pub async fn start(&self, c: &Container, e: &ExecProcess) -> Result<(i32, Instant)> {
        c.init
            .expect(&[Status::Running], "exec needs a running container")?;
        // Claimed at once, so a second Start cannot run it twice.
        e.process.claim_start()?;
        let files = ExecFiles::new(&c.bundle, e.exec_id());
        let since = Instant::now();
        match self.run(c, e, &files).await {
            Ok((pid, internal_pid, copies, pty)) => {
                {
                    let mut run = e.run_state();
                    run.internal_pid = internal_pid;
                    run.files = files.kept();
                }
                e.process.set_pid(pid);
                e.process.attach_stdio(copies, pty);
                e.process.set_running();
                files.remove_process();
                info!("{}: exec {} started (pid {pid})", c.id, e.exec_id());
                Ok((pid, since))
            }
            Err(err) => {
                files.remove_all();
                e.process.set_exited(128);
                warn!("{}: exec {} failed to start: {err}", c.id, e.exec_id());
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
        let stdio = &e.process.stdio;
        let (process_io, copies, console) = if e.terminal {
            let socket = ConsoleSocket::new()?;
            (ProcessIo::default(), None, Some(socket))
        } else {
            let (process_io, copies) = io::open(stdio, uid, gid)?;
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
            let copies = pty.copy(stdio)?;
            let (pid, internal) = files.read_pids()?;
            Ok((pid, internal, copies, Some(pty)))
        } else {
            c.runsc.exec(&c.id, &opts, process_io).await?;
            let (pid, internal) = files.read_pids()?;
            Ok((pid, internal, copies.unwrap_or_default(), None))
        }
    }

    /// Kill: signals the process inside the sandbox by its internal pid.
    pub async fn kill(&self, c: &Container, e: &ExecProcess, signal: u32) -> Result<()> {
        match e.process.status() {
            Status::Stopped => Err(Error::NotFound(format!(
                "{} has exited",
                e.process.reference
            ))),
            Status::Created => Err(Error::NotFound(format!(
                "{} has not started",
                e.process.reference
            ))),
            Status::Running | Status::Paused => {
                let internal_pid = e.run_state().internal_pid;
                match c.runsc.kill_pid(&c.id, internal_pid, signal).await {
                    Err(err) if runsc::is_gone(&err) || e.process.status() == Status::Stopped => {
                        Err(Error::NotFound(format!(
                            "{} has exited ({err})",
                            e.process.reference
                        )))
                    }
                    other => other,
                }
            }
        }
    }

    /// Delete: a running exec must be killed first; its output is drained and its files go.
    pub async fn delete(&self, e: &ExecProcess) -> Result<(i32, Exit)> {
        if e.process.is_starting() {
            return Err(Error::FailedPrecondition(format!(
                "{} is being started: kill it first",
                e.process.reference
            )));
        }
        if e.process.status() == Status::Running {
            return Err(e.process.not_now(Status::Running, "kill it first"));
        }
        e.process.drain_stdio().await;
        e.remove_files();
        self.by_ref().remove(&e.process.reference);
        let exit = e.process.exit_or_now();
        info!(
            "{}: exec {} deleted (exit status {})",
            e.container_id(),
            e.exec_id(),
            exit.status
        );
        Ok((e.process.pid(), exit))
    }

    /// Forgets every exec of a container being deleted (they died with it).
    pub fn remove_all(&self, id: &str) {
        let removed: Vec<Arc<ExecProcess>> = {
            let mut by_ref = self.by_ref();
            let keys: Vec<_> = by_ref
                .keys()
                .filter(|r| r.container_id() == id)
                .cloned()
                .collect();
            keys.into_iter().filter_map(|k| by_ref.remove(&k)).collect()
        };
        for e in removed {
            e.process.abandon_stdio();
            e.remove_files();
        }
    }
}

/// Waits for the `runsc exec` process' exit (the exec's status); the caller records and reports
/// it.
pub async fn wait_for_exit(e: &ExecProcess, since: Instant, exits: &ExitLog) -> u32 {
    let pid = e.process.pid();
    loop {
        if let Some(exit) = exits.exit_of(pid, since, LIVENESS_CHECK).await {
            return exit.status;
        }
        if !exits::is_alive(pid) {
            // Reaped by the time it is gone; one more look for a report on its way.
            if let Some(exit) = exits.exit_of(pid, since, Duration::from_secs(2)).await {
                return exit.status;
            }
            warn!(
                "{}: exec {} (pid {pid}) is gone and its exit status is unknown, reporting 128",
                e.container_id(),
                e.exec_id()
            );
            return 128;
        }
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
        const WHAT: &str = "reading runsc's exec pid file";
        Ok((
            read_pid_file(&self.pid, WHAT)?,
            read_pid_file(&self.internal_pid, WHAT)?,
        ))
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
