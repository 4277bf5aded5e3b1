//! The task logic of the shim, free of the ttrpc protocol: what Create, Start, Kill, Wait,
//! Delete... do for the containers this shim serves. `shim::task` only converts requests and
//! errors; moving to another task API version touches that adapter alone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExit, TaskIO, TaskOOM, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::util::convert_to_timestamp;
use log::{info, warn};
use tokio::sync::{watch, Mutex};

use crate::annotations::{sandbox_log_directory, Role};
use crate::bundle::BundleSpec;
use crate::cgroup::OomCounter;
use crate::error::{Error, Result};
use crate::guard::{Guard, Guarded};
use crate::options::{self, ShimConfig};
use crate::runsc::{self, CreateOpts, Executor, GlobalFlags, ProcessIo, Runsc};
use crate::shim::container::{AttachedStdio, Container, Exit, Status};
use crate::shim::entrypoint;
use crate::shim::events::EventSender;
use crate::shim::exec::{ExecRequest, ExecState, Execs};
use crate::shim::exits::{self, ExitLog};
use crate::shim::ids;
use crate::shim::io::{self, StdioPaths};
use crate::shim::mount::{self, RootfsMount};
use crate::shim::rollback::Rollback;
use crate::shim::state::ShimState;

/// The pid file runsc writes; it holds the sandbox's pid for every container.
pub const INIT_PID_FILE: &str = "init.pid";

/// How long Delete waits for a container's output to drain.
const IO_DRAIN_LIMIT: Duration = Duration::from_secs(2);
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

/// A container's state as State reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub id: String,
    pub bundle: PathBuf,
    pub pid: i32,
    pub status: Status,
    pub stdio: StdioPaths,
    pub exit: Option<Exit>,
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
    /// The reaper's exits: how a sandbox that is gone before `runsc wait` asks still tells its
    /// init's exit status.
    exits: Arc<ExitLog>,
    /// The containers' exec processes.
    execs: Execs,
}

impl Pod {
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
            guard,
            exits: Arc::new(ExitLog::default()),
            execs: Execs::default(),
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
            .map(|c| c.pid)
    }

    /// Create: mounts the rootfs, sets up stdio and runs `runsc create`. On any failure what was
    /// set up is undone, so a failed Create leaves nothing behind.
    pub async fn create(&self, req: CreateTask) -> Result<i32> {
        validate_id(&req.id)?;
        if !req.bundle.is_absolute() {
            return Err(Error::invalid(
                "bundle",
                format!("{:?} must be an absolute path", req.bundle),
            ));
        }
        // Held until Create returns, after the container is in `containers` (or has failed).
        let _reservation = self.reserve(&req.id).await?;
        let mut spec = BundleSpec::load(&req.bundle)?;
        let (config, source) = options::decode(req.options.as_ref())?;
        if !config.unknown_keys().is_empty() {
            warn!(
                "{}: ignoring runsc.toml keys this shim does not know: {}",
                req.id,
                config.unknown_keys().join(", ")
            );
        }
        let role = Role::from_annotations(spec.annotations())
            .map_err(|reason| Error::invalid("config.json annotations", reason))?;
        if role.is_sandbox() {
            sandbox_log_directory(spec.annotations())
                .map_err(|reason| Error::invalid("config.json annotations", reason))?;
        }
        info!(
            "creating {} ({:?}) in {} with options from {source:?}",
            req.id,
            role,
            req.bundle.display()
        );

        // The guard decides before anything is set up, so a refusal leaves nothing behind.
        let guarded = self
            .guard
            .before_create(&req.id, role, &mut spec, &config)
            .await?;
        let runsc = self.runsc_for(&req, &config, guarded.runsc_config().clone())?;
        let container = self
            .create_container(&req, &config, &spec, role, runsc, &guarded)
            .await?;
        let pid = container.pid;
        self.events.send(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.display().to_string(),
            rootfs: Default::default(),
            io: Some(task_io(&req.stdio)).into(),
            checkpoint: String::new(),
            pid: pid as u32,
            ..Default::default()
        });
        self.containers
            .lock()
            .await
            .insert(req.id.clone(), container);
        Ok(pid)
    }

    fn runsc_for(
        &self,
        req: &CreateTask,
        config: &ShimConfig,
        runsc_config: BTreeMap<String, String>,
    ) -> Result<Runsc> {
        let mut flags = GlobalFlags::new(
            config.runsc_root(&self.namespace),
            &req.bundle,
            runsc_config,
        );
        flags.substitute_id(&req.id)?;
        Ok(Runsc::new(
            PathBuf::from(&config.binary_name),
            flags,
            self.executor.clone(),
        ))
    }

    /// Sets the container up and runs `runsc create`; on any failure undoes what was done.
    async fn create_container(
        &self,
        req: &CreateTask,
        config: &ShimConfig,
        spec: &BundleSpec,
        role: Role,
        runsc: Runsc,
        guarded: &Guarded,
    ) -> Result<Arc<Container>> {
        let mut undo = Rollback::new(&req.id, &req.bundle);
        let began = std::time::Instant::now();
        let set_up = self
            .set_up(req, config, spec, role, &runsc, guarded, &mut undo)
            .await;
        match set_up {
            Ok((pid, start_io, oom)) => {
                let stdio = AttachedStdio {
                    paths: req.stdio.clone(),
                    copies: undo.done(),
                    start_io,
                };
                let mut container = Container::new(
                    req.id.clone(),
                    req.bundle.clone(),
                    role,
                    runsc,
                    pid,
                    stdio,
                    oom,
                );
                container.created_at = began;
                container.io_owner = (config.io_uid, config.io_gid);
                Ok(Arc::new(container))
            }
            Err(e) => {
                undo.undo(&runsc).await;
                Err(e)
            }
        }
    }

    /// The steps of a Create after the guard's decision, each recorded in `undo` once done:
    /// the state file, the rootfs, stdio, `runsc create`, the guard's check. Returns the
    /// sandbox's pid, the stdio a joining container takes at start, and the pod's OOM counter.
    #[allow(clippy::too_many_arguments)]
    async fn set_up(
        &self,
        req: &CreateTask,
        config: &ShimConfig,
        spec: &BundleSpec,
        role: Role,
        runsc: &Runsc,
        guarded: &Guarded,
        undo: &mut Rollback,
    ) -> Result<(i32, ProcessIo, Option<OomCounter>)> {
        // runsc resolves ids by prefix: no id in the root may be a prefix of another. Held until
        // `runsc create` has run, so a clashing Create in another shim waits and then sees it.
        let _root_lock = ids::lock_root(&runsc.flags().root).await?;
        ids::refuse_prefix_clash(runsc, &req.id).await?;
        ShimState::new(runsc.binary(), runsc.flags()).save(&req.bundle)?;
        undo.state_saved();
        mount::mount_all(&req.bundle, &req.rootfs).await?;
        undo.mounted();
        entrypoint::check(spec.spec(), &req.bundle)?;
        let (process_io, copies) = io::open(&req.stdio, config.io_uid, config.io_gid)?;
        undo.stdio_open(copies);
        // A sandbox takes its stdio at create (the sandbox process inherits it); a container
        // joining the pod takes it at start, which hands it into the running sandbox.
        let (create_io, start_io) = if role.is_sandbox() {
            (process_io, ProcessIo::default())
        } else {
            (ProcessIo::default(), process_io)
        };
        let pid_file = req.bundle.join(INIT_PID_FILE);
        let user_log = user_log_path(spec, role);
        let opts = CreateOpts {
            bundle: &req.bundle,
            pid_file: &pid_file,
            console_socket: None,
            user_log: user_log.as_deref(),
        };
        // Listening to the reaper before the sandbox process exists, so its exit cannot be missed.
        self.exits.start().await;
        undo.runsc_create_ran();
        runsc.create(&req.id, &opts, create_io).await?;
        let pid = read_pid(&pid_file)?;
        let oom = self.guard.after_create(guarded, pid).await?;
        Ok((pid, start_io, oom))
    }

    /// Start: `runsc start`, then a watcher that learns the exit from `runsc wait`.
    pub async fn start(&self, id: &str) -> Result<i32> {
        let c = self.get(id).await?;
        if c.status() != Status::Created {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is {:?}, not created",
                c.status()
            )));
        }
        let start_io = c.take_start_io();
        if let Err(e) = c.runsc.start(id, start_io).await {
            // A container that cannot start is stopped, so containerd can delete it.
            if c.set_exited(128) {
                publish_exit(&self.events, &c);
            }
            return Err(e);
        }
        c.set_running();
        self.events.send(TaskStart {
            container_id: id.to_string(),
            pid: c.pid as u32,
            ..Default::default()
        });
        let events = self.events.clone();
        let watched = c.clone();
        let exits = self.exits.clone();
        tokio::spawn(async move { watch_exit(watched, events, exits).await });
        Ok(c.pid)
    }

    /// State: asks runsc while the container lives (a sandbox can die between Create and Start,
    /// before any `runsc wait` watches it); a stopped container's state is final.
    pub async fn state(&self, id: &str) -> Result<TaskState> {
        let c = self.get(id).await?;
        let status = match c.status() {
            Status::Stopped => Status::Stopped,
            tracked => match c.runsc.state(id).await {
                Ok(s) => match s.status.as_str() {
                    "created" => Status::Created,
                    "running" => Status::Running,
                    "stopped" => Status::Stopped,
                    _ => tracked,
                },
                Err(e) if runsc::is_gone(&e) => Status::Stopped,
                Err(e) => return Err(e),
            },
        };
        Ok(TaskState {
            id: c.id.clone(),
            bundle: c.bundle.clone(),
            pid: c.pid,
            status,
            stdio: c.stdio.clone(),
            exit: c.exit(),
        })
    }

    /// Kill: signals the container through runsc. NotFound once it has stopped, so CRI stops
    /// retrying (runsc says "sandbox is not running" for a dead sandbox).
    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let c = self.get(id).await?;
        if c.status() == Status::Stopped {
            return Err(Error::NotFound(format!(
                "process of container {id} has exited"
            )));
        }
        if c.status() == Status::Created {
            return self.kill_created(&c, signal).await;
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
        if c.set_exited(128 + signal) {
            info!(
                "{}: killed before it started (signal {signal}), exit status {}",
                c.id,
                128 + signal
            );
            publish_exit(&self.events, c);
        }
        Ok(())
    }

    pub async fn wait(&self, id: &str) -> Result<Exit> {
        let c = self.get(id).await?;
        Ok(c.wait().await)
    }

    pub async fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let c = self.get(id).await?;
        c.runsc.ps(id).await
    }

    pub async fn close_stdin(&self, id: &str) -> Result<()> {
        self.get(id).await?.close_stdin();
        Ok(())
    }

    /// ResizePty of a container's init process.
    pub async fn resize(&self, id: &str, _width: u32, _height: u32) -> Result<()> {
        let c = self.get(id).await?;
        Err(Error::FailedPrecondition(format!(
            "container {} has no terminal",
            c.id
        )))
    }

    /// Exec: records an exec process of a container (see `shim::exec`).
    pub async fn exec(&self, id: &str, req: ExecRequest) -> Result<()> {
        let c = self.get(id).await?;
        self.execs.add(&c, req, &self.events)
    }

    pub async fn exec_start(&self, id: &str, exec_id: &str) -> Result<i32> {
        let c = self.get(id).await?;
        self.execs
            .start(&c, exec_id, &self.events, &self.exits)
            .await
    }

    pub async fn exec_kill(&self, id: &str, exec_id: &str, signal: u32) -> Result<()> {
        let c = self.get(id).await?;
        self.execs.kill(&c, exec_id, signal).await
    }

    pub async fn exec_wait(&self, id: &str, exec_id: &str) -> Result<Exit> {
        self.execs.wait(id, exec_id).await
    }

    pub async fn exec_state(&self, id: &str, exec_id: &str) -> Result<ExecState> {
        self.execs.state(id, exec_id)
    }

    pub async fn exec_close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        self.execs.close_stdin(id, exec_id)
    }

    pub async fn exec_resize(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<()> {
        self.execs.resize(id, exec_id, width, height)
    }

    pub async fn exec_delete(&self, id: &str, exec_id: &str) -> Result<(i32, Exit)> {
        self.execs.delete(id, exec_id).await
    }

    /// Delete: stops what still runs, `runsc delete`, drains stdio, unmounts the rootfs.
    pub async fn delete(&self, id: &str) -> Result<(i32, Exit)> {
        // A Delete racing its Create (containerd gave up waiting for it) deletes what the Create
        // made instead of missing it and leaving it behind.
        let c = self.get_after_create(id).await?;
        if c.status() != Status::Stopped {
            if let Err(e) = c.runsc.kill(id, libc::SIGKILL as u32, true).await {
                if !runsc::is_gone(&e) {
                    warn!("{id}: killing before delete: {e}");
                }
            }
            if c.status() == Status::Running {
                // The exit watcher records the exit; don't wait forever on a wedged sandbox.
                if tokio::time::timeout(Duration::from_secs(10), c.wait())
                    .await
                    .is_err()
                {
                    warn!("{id}: no exit seen 10s after SIGKILL; deleting anyway");
                }
            }
            if c.set_exited(128 + libc::SIGKILL as u32) {
                publish_exit(&self.events, &c);
            }
        }
        if let Err(e) = c.runsc.delete(id, false).await {
            if !runsc::is_gone(&e) {
                return Err(e);
            }
        }
        if let Some(copies) = c.take_copies() {
            copies.finish(IO_DRAIN_LIMIT).await;
        }
        mount::unmount_all(&c.bundle).await?;
        self.execs.remove_all(id);
        self.containers.lock().await.remove(id);
        let exit = c.exit().unwrap_or(Exit {
            status: 0,
            at: std::time::SystemTime::now(),
        });
        self.events.send(TaskDelete {
            container_id: id.to_string(),
            pid: c.pid as u32,
            exit_status: exit.status,
            exited_at: Some(convert_to_timestamp(Some(exit.at.into()))).into(),
            id: id.to_string(),
            ..Default::default()
        });
        info!("{id}: deleted (exit status {})", exit.status);
        Ok((c.pid, exit))
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
        events.send(TaskOOM {
            container_id: c.id.clone(),
            ..Default::default()
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
    if c.set_exited(status) {
        info!("{}: exited with status {status}", c.id);
        publish_exit(&events, &c);
    }
}

/// The exit status when `runsc wait` failed, which it does once the sandbox is gone. A sandbox's
/// init: the sandbox process' own exit status, from the shim's reaper (see `shim::exits`). A
/// container joining a sandbox that is gone: it was killed with the sandbox, 137. Otherwise, as
/// gVisor's shim, 128.
async fn status_runsc_could_not_tell(c: &Container, exits: &ExitLog, err: &Error) -> u32 {
    if c.role.is_sandbox() {
        if let Some(exit) = exits.exit_of(c.pid, c.created_at, SANDBOX_EXIT_LIMIT).await {
            info!(
                "{}: runsc wait could not tell the exit ({err}); the sandbox process (pid {}) \
                 exited with {}, its init's status",
                c.id, c.pid, exit.status
            );
            return exit.status;
        }
    } else if !exits::is_alive(c.pid) {
        warn!(
            "{}: runsc wait failed ({err}) and the sandbox (pid {}) is gone: the container was \
             killed with it, exit status 137",
            c.id, c.pid
        );
        return 128 + libc::SIGKILL as u32;
    }
    warn!(
        "{}: runsc wait failed and the exit status is unknown, reporting 128: {err}",
        c.id
    );
    128
}

fn publish_exit(events: &EventSender, c: &Container) {
    let Some(exit) = c.exit() else { return };
    events.send(TaskExit {
        container_id: c.id.clone(),
        id: c.id.clone(),
        pid: c.pid as u32,
        exit_status: exit.status,
        exited_at: Some(convert_to_timestamp(Some(exit.at.into()))).into(),
        ..Default::default()
    });
}

fn task_io(stdio: &StdioPaths) -> TaskIO {
    TaskIO {
        stdin: stdio.stdin.clone(),
        stdout: stdio.stdout.clone(),
        stderr: stdio.stderr.clone(),
        terminal: stdio.terminal,
        ..Default::default()
    }
}

/// Container ids become file names and runsc arguments: keep them to what containerd produces.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            format!("{id:?} must be 1-256 of [A-Za-z0-9_.-], not starting with '-'"),
        ))
    }
}

/// gVisor's user log for the pod: `<sandbox log directory>/gvisor.log`, sandbox only.
fn user_log_path(spec: &BundleSpec, role: Role) -> Option<PathBuf> {
    if !role.is_sandbox() {
        return None;
    }
    // Checked at the start of Create, so an error here cannot happen.
    sandbox_log_directory(spec.annotations())
        .ok()
        .flatten()
        .map(|d| d.join("gvisor.log"))
}

fn read_pid(path: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("reading runsc's pid file", path, e))?;
    text.trim().parse::<i32>().map_err(|_| {
        Error::invalid(
            path.display().to_string(),
            format!("runsc wrote {text:?}, not a pid"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["abc", "a-b_c.d", "0123456789abcdef"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a/b", "..", ".", "a b", &"x".repeat(300)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pid_file_content_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("init.pid");
        std::fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_pid(&p).unwrap(), 1234);
        std::fs::write(&p, "abc").unwrap();
        assert!(read_pid(&p).unwrap_err().to_string().contains("abc"));
        assert!(read_pid(&dir.path().join("missing")).is_err());
    }
}
