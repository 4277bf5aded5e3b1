//! The task logic of the shim, free of the ttrpc protocol: what Create, Start, Kill, Wait,
//! Delete... do for the containers this shim serves. `shim::task` only converts requests and
//! errors; moving to another task API version touches that adapter alone. Create, the step
//! that sets everything up and undoes it on failure, is `create.rs`.

mod create;
mod delete;
mod event;
mod pause;
mod update;

pub use event::PodEvent;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use log::{info, warn};
use tokio::sync::{watch, Mutex};

use crate::cgroup::{CgroupTree, ProcCgroups};
use crate::error::{Error, Result};
use crate::guard::Guard;
use crate::runsc::{self, Executor, RunscVersions, StateFiles};
use crate::shim::container::Container;
use crate::shim::events::EventSender;
use crate::shim::exec::{self, ExecProcess, ExecRequest, Execs};
use crate::shim::exits::{self, ExitLog};
use crate::shim::io::StdioPaths;
use crate::shim::mount::RootfsMount;
use crate::shim::process::{Exit, Process, ProcessRef, Status};
use crate::shim::stats;

/// The pid file runsc writes; it holds the sandbox's pid for every container.
pub const INIT_PID_FILE: &str = "init.pid";

/// How long the reaper may take to report a sandbox that runsc already found gone.
const SANDBOX_EXIT_LIMIT: Duration = Duration::from_secs(2);
/// gVisor's shim retries a kill for about a second while runsc catches up.
const KILL_RETRY_LIMIT: Duration = Duration::from_secs(1);

/// A Create request, in the domain's terms.
#[derive(Debug, Clone, Default)]
pub struct CreateTask {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: Vec<RootfsMount>,
    pub stdio: StdioPaths,
    pub options: Option<Any>,
}

/// A process' state as State reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    pub process: ProcessRef,
    /// The container's bundle, for its init process.
    pub bundle: Option<PathBuf>,
    pub pid: i32,
    pub status: Status,
    pub stdio: StdioPaths,
    pub exit: Option<Exit>,
}

/// The process a request names, found: a container's init, or one of its execs.
enum Target {
    Init(Arc<Container>),
    Exec(Arc<Container>, Arc<ExecProcess>),
}

impl Target {
    fn process(&self) -> &Process {
        match self {
            Target::Init(c) => &c.init,
            Target::Exec(_, e) => &e.process,
        }
    }
}

/// The containers this shim serves and what it needs to drive them.
pub struct Pod {
    namespace: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    /// Ids whose Create is under way, each with a channel that closes when it ends. Checked and
    /// filled under the `containers` lock (always taken first), so an id is in one map or the
    /// other from the first check of its Create on: a second Create of it is AlreadyExists, and
    /// Delete or Shutdown waits for it instead of missing it.
    creating: std::sync::Mutex<HashMap<String, watch::Receiver<()>>>,
    events: EventSender,
    executor: Arc<dyn Executor>,
    guard: Guard,
    /// The runsc releases in use, the service the guard plans with.
    versions: Arc<RunscVersions>,
    /// The reaper's exits: how a sandbox that is gone before `runsc wait` asks still tells its
    /// init's exit status.
    exits: Arc<ExitLog>,
    /// The containers' exec processes.
    execs: Execs,
    memory_limits: update::MemoryLimits,
    /// The order of the pod's runsc commands over runsc's state files: a `runsc delete` runs
    /// alone (see `runsc::state_files`).
    state_files: StateFiles,
}

impl Pod {
    /// Learns what every Create will need before the first one arrives (see
    /// [`RunscVersions::warm_up`]): the version of the runsc `binary_name` names, shared
    /// through the state root's cache when one is given.
    pub async fn warm_up(&self, binary_name: Option<&str>, state_root: Option<&std::path::Path>) {
        self.versions.warm_up(binary_name, state_root).await;
    }

    pub fn new(
        namespace: String,
        events: EventSender,
        executor: Arc<dyn Executor>,
        guard: Guard,
    ) -> Self {
        Pod {
            namespace,
            containers: Mutex::new(HashMap::new()),
            creating: std::sync::Mutex::new(HashMap::new()),
            events,
            executor,
            versions: guard.runsc_versions().clone(),
            guard,
            exits: Arc::new(ExitLog::default()),
            execs: Execs::default(),
            memory_limits: Default::default(),
            state_files: StateFiles::default(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn get(&self, id: &str) -> Result<Arc<Container>> {
        self.containers
            .lock()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id}")))
    }

    /// No container, and none being created: Shutdown may end the shim.
    pub async fn is_empty(&self) -> bool {
        let containers = self.containers.lock().await;
        containers.is_empty() && self.creating_ids().is_empty()
    }

    fn creating_ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<()>>> {
        self.creating.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an id for a Create, or says it exists (or is being created) already.
    async fn reserve(&self, id: &str) -> Result<Reservation<'_>> {
        let containers = self.containers.lock().await;
        let mut creating = self.creating_ids();
        if containers.contains_key(id) || creating.contains_key(id) {
            return Err(Error::AlreadyExists(format!("container {id}")));
        }
        let (done, waiting) = watch::channel(());
        creating.insert(id.to_string(), waiting);
        Ok(Reservation {
            pod: self,
            id: id.to_string(),
            _done: done,
        })
    }

    /// The container, once a Create of it under way has ended (whichever way).
    async fn get_after_create(&self, id: &str) -> Result<Arc<Container>> {
        loop {
            let mut waiting = {
                let containers = self.containers.lock().await;
                if let Some(c) = containers.get(id) {
                    return Ok(c.clone());
                }
                match self.creating_ids().get(id) {
                    Some(w) => w.clone(),
                    None => return Err(Error::NotFound(format!("container {id}"))),
                }
            };
            info!("{id}: waiting for its Create to end");
            // Nothing is ever sent: this returns when the Create drops its reservation.
            let _ = waiting.changed().await;
        }
    }

    /// The pid to report as the task's: the first container's (they all share the sandbox).
    pub async fn task_pid(&self, id: &str) -> Option<i32> {
        let containers = self.containers.lock().await;
        containers
            .get(id)
            .or_else(|| containers.values().next())
            .map(|c| c.pid())
    }

    /// The process `r` names.
    async fn target(&self, r: &ProcessRef) -> Result<Target> {
        let c = self.get(r.container_id()).await?;
        Ok(match r.exec_id() {
            None => Target::Init(c),
            Some(_) => {
                let e = self.execs.get(r)?;
                Target::Exec(c, e)
            }
        })
    }

    /// Start: `runsc start` of a container's init, `runsc exec --detach` of an exec; then a
    /// watcher that learns the exit.
    pub async fn start(&self, r: &ProcessRef) -> Result<i32> {
        match self.target(r).await? {
            Target::Init(c) => self.start_init(c).await,
            Target::Exec(c, e) => {
                let (pid, since) = self.execs.start(&c, &e).await?;
                self.events.send(PodEvent::Started {
                    process: r.clone(),
                    pid,
                });
                let events = self.events.clone();
                let exits = self.exits.clone();
                tokio::spawn(async move {
                    let status = exec::wait_for_exit(&e, since, &exits).await;
                    report_exit(&events, &e.process, status);
                });
                Ok(pid)
            }
        }
    }

    async fn start_init(&self, c: Arc<Container>) -> Result<i32> {
        c.init.claim_start()?;
        let id = c.id.as_str();
        let start_io = c.take_start_io();
        let started = match c.take_pending_console() {
            Some(socket) => socket
                .receive_during(c.runsc.start(id, start_io))
                .await
                .and_then(|((), pty)| {
                    let copies = pty.copy(&c.init.stdio)?;
                    c.init.attach_stdio(copies, Some(pty));
                    Ok(())
                }),
            None => c.runsc.start(id, start_io).await,
        };
        if let Err(e) = started {
            // A container that cannot start is stopped, so containerd can delete it.
            report_exit(&self.events, &c.init, 128);
            return Err(e);
        }
        c.init.set_running();
        self.events.send(PodEvent::Started {
            process: c.init.reference.clone(),
            pid: c.pid(),
        });
        let events = self.events.clone();
        let watched = c.clone();
        let exits = self.exits.clone();
        tokio::spawn(async move { watch_exit(watched, events, exits).await });
        Ok(c.pid())
    }

    /// State. A container's init: asks runsc while the container lives (a sandbox can die
    /// between Create and Start, before any `runsc wait` watches it); a stopped process' state
    /// is final.
    pub async fn state(&self, r: &ProcessRef) -> Result<ProcessState> {
        let target = self.target(r).await?;
        let p = target.process();
        let (status, bundle) = match &target {
            Target::Exec(..) => (p.status(), None),
            Target::Init(c) => (self.init_status(c).await?, Some(c.bundle.clone())),
        };
        Ok(ProcessState {
            process: r.clone(),
            bundle,
            pid: p.pid(),
            status,
            stdio: p.stdio.clone(),
            exit: p.exit(),
        })
    }

    async fn init_status(&self, c: &Container) -> Result<Status> {
        Ok(match c.status() {
            Status::Stopped => Status::Stopped,
            tracked => match c.runsc.state(&c.id).await {
                Ok(s) => match s.status.as_str() {
                    "created" => Status::Created,
                    "running" => Status::Running,
                    "paused" => Status::Paused,
                    "stopped" => Status::Stopped,
                    _ => tracked,
                },
                Err(e) if runsc::is_gone(&e) => Status::Stopped,
                Err(e) => return Err(e),
            },
        })
    }

    /// Kill. A container's init: signals the container through runsc (all its processes with
    /// `all`); NotFound once it has stopped, so CRI stops retrying (runsc says "sandbox is not
    /// running" for a dead sandbox). An exec: signals it inside the sandbox by its own pid.
    pub async fn kill(&self, r: &ProcessRef, signal: u32, all: bool) -> Result<()> {
        let c = match self.target(r).await? {
            Target::Exec(c, e) => return self.execs.kill(&c, &e, signal).await,
            Target::Init(c) => c,
        };
        let id = c.id.as_str();
        match c.status() {
            Status::Stopped => {
                return Err(Error::NotFound(format!(
                    "process of container {id} has exited"
                )))
            }
            Status::Created => return self.kill_created(&c, signal).await,
            Status::Paused if signal == libc::SIGKILL as u32 => {
                // runsc signals only running or stopped containers; a SIGKILL must not wait
                // for a Resume (runc's frozen processes die of it too).
                c.runsc.resume(id).await?;
                c.init.set_paused(false);
            }
            Status::Running | Status::Paused => {}
        }
        let mut delay = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + KILL_RETRY_LIMIT;
        loop {
            match c.runsc.kill(id, signal, all).await {
                Ok(()) => break,
                Err(e) if runsc::is_gone(&e) || c.status() == Status::Stopped => {
                    return Err(Error::NotFound(format!(
                        "process of container {id} has exited ({e})"
                    )));
                }
                Err(e) if tokio::time::Instant::now() + delay > deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Ok(())
    }

    /// Kill of a container that was created and never started. runsc refuses to signal it
    /// ("cannot signal container in state created", in every runsc generation: signals need a
    /// running or stopped container), and its init has not run, so nothing inside could handle
    /// the signal: as runc's created init dies of it, the container ends. `runsc delete --force`
    /// ends it (the whole sandbox for a sandbox, the one container for a container joining one);
    /// its exit is 128 + the signal. Signal 0 only asks whether it exists.
    async fn kill_created(&self, c: &Container, signal: u32) -> Result<()> {
        if signal == 0 {
            return Ok(());
        }
        if let Err(e) = c.runsc.delete(&c.id, true).await {
            if !runsc::is_gone(&e) {
                return Err(e);
            }
        }
        if report_exit(&self.events, &c.init, 128 + signal) {
            info!(
                "{}: killed before it started (signal {signal}), exit status {}",
                c.id,
                128 + signal
            );
        }
        Ok(())
    }

    pub async fn wait(&self, r: &ProcessRef) -> Result<Exit> {
        Ok(self.target(r).await?.process().wait().await)
    }

    /// Delete: a container's init (see `delete.rs`) or an exec, whose output is drained and
    /// files removed.
    pub async fn delete(&self, r: &ProcessRef) -> Result<(i32, Exit)> {
        if r.exec_id().is_none() {
            return self.delete_container(r.container_id()).await;
        }
        // An exec outlives nothing of its container's: found by itself.
        let e = self.execs.get(r)?;
        self.execs.delete(&e).await
    }

    pub async fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let c = self.get(id).await?;
        c.runsc.ps(id).await
    }

    /// Stats: the host cgroup of the sandbox, with runsc's figures for the container where it
    /// gives them (see `shim::stats`); the metrics type follows the host's cgroup layout.
    pub async fn stats(&self, id: &str) -> Result<Any> {
        let c = self.get(id).await?;
        let tree = CgroupTree::detect(self.guard.cgroup_root()).map_err(|e| {
            Error::FailedPrecondition(format!("stats of {id}: no cgroup tree to read: {e}"))
        })?;
        let cgroups = match ProcCgroups::of(self.guard.proc_root(), c.pid()) {
            Ok(cg) => Some(cg),
            Err(e) => {
                log::debug!("{id}: stats without the sandbox's host cgroup: {e}");
                None
            }
        };
        let runsc_stats = match c.runsc.events_stats(id).await {
            Ok(out) => match stats::RunscEvent::parse(&out) {
                Ok(ev) => Some(ev.data),
                Err(e) => {
                    warn!("{id}: {e}");
                    None
                }
            },
            Err(e) => {
                log::debug!("{id}: stats without runsc's figures: {e}");
                None
            }
        };
        if cgroups.is_none() && runsc_stats.is_none() {
            return Err(Error::NotFound(format!(
                "stats of {id}: neither the sandbox's cgroup nor runsc can tell (is it running?)"
            )));
        }
        stats::metrics(&tree, cgroups.as_ref(), runsc_stats.as_ref())
    }

    pub async fn close_stdin(&self, r: &ProcessRef) -> Result<()> {
        self.target(r).await?.process().close_stdin();
        Ok(())
    }

    /// ResizePty of a process' terminal.
    pub async fn resize(&self, r: &ProcessRef, width: u32, height: u32) -> Result<()> {
        self.target(r).await?.process().resize(width, height)
    }

    /// Exec: records an exec process of a container (see `shim::exec`).
    pub async fn exec(&self, r: &ProcessRef, req: ExecRequest) -> Result<()> {
        if r.exec_id().is_none() {
            return Err(Error::invalid(
                "exec_id",
                "is empty: an exec process needs an id of its own",
            ));
        }
        let c = self.get(r.container_id()).await?;
        self.execs.add(&c, r.clone(), req)?;
        self.events.send(PodEvent::ExecAdded { process: r.clone() });
        Ok(())
    }
}

/// An id reserved for a Create under way. Dropped however Create ends (returned, failed, or its
/// future dropped), which frees the id and wakes whoever waits for that Create.
struct Reservation<'a> {
    pod: &'a Pod,
    id: String,
    _done: watch::Sender<()>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.pod.creating_ids().remove(&self.id);
    }
}

/// Waits for the init process through `runsc wait` and reports the exit.
async fn watch_exit(c: Arc<Container>, events: EventSender, exits: Arc<ExitLog>) {
    let status = match c.runsc.wait(&c.id).await {
        Ok(code) => code as u32,
        Err(e) => status_runsc_could_not_tell(&c, &exits, &e).await,
    };
    // The host's OOM killer took the sandbox: say so before the exit, so CRI reports OOMKilled.
    let status = if status != 0 && c.oom.as_ref().is_some_and(|o| o.fired()) {
        warn!(
            "{}: the pod's cgroup recorded an OOM kill; reporting OOM and exit status 137",
            c.id
        );
        events.send(PodEvent::Oom {
            container_id: c.id.clone(),
        });
        128 + libc::SIGKILL as u32
    } else {
        status
    };
    // What still runs of the container goes with its init process.
    if let Err(e) = c.runsc.kill(&c.id, libc::SIGKILL as u32, true).await {
        if !runsc::is_gone(&e) {
            log::debug!("{}: kill --all after exit: {e}", c.id);
        }
    }
    report_exit(&events, &c.init, status);
}

/// The exit status when `runsc wait` failed, which it does once the sandbox is gone. A sandbox's
/// init: the sandbox process' own exit status, from the shim's reaper (see `shim::exits`). A
/// container joining a sandbox that is gone: it was killed with the sandbox, 137. Otherwise, as
/// gVisor's shim, 128.
async fn status_runsc_could_not_tell(c: &Container, exits: &ExitLog, err: &Error) -> u32 {
    if c.role.is_sandbox() {
        if let Some(exit) = exits
            .exit_of(c.pid(), c.created_at, SANDBOX_EXIT_LIMIT)
            .await
        {
            info!(
                "{}: runsc wait could not tell the exit ({err}); the sandbox process (pid {}) \
                 exited with {}, its init's status",
                c.id,
                c.pid(),
                exit.status
            );
            return exit.status;
        }
    } else if !exits::is_alive(c.pid()) {
        warn!(
            "{}: runsc wait failed ({err}) and the sandbox (pid {}) is gone: the container was \
             killed with it, exit status 137",
            c.id,
            c.pid()
        );
        return 128 + libc::SIGKILL as u32;
    }
    warn!(
        "{}: runsc wait failed and the exit status is unknown, reporting 128: {err}",
        c.id
    );
    128
}

/// Records a process' exit and tells containerd, once: the first exit wins and later calls
/// return false. Every exit, init's or exec's, goes through here.
fn report_exit(events: &EventSender, p: &Process, status: u32) -> bool {
    if !p.set_exited(status) {
        return false;
    }
    let Some(exit) = p.exit() else { return false };
    info!("{} exited with status {}", p.reference, exit.status);
    events.send(PodEvent::Exited {
        process: p.reference.clone(),
        pid: p.pid(),
        exit,
    });
    true
}

#[cfg(test)]
mod tests;
