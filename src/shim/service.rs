//! The shim's lifecycle as containerd drives it: `start` (spawn the daemon), the daemon itself
//! (serve the task API until Shutdown) and `delete` (clean up after a dead shim).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim::asynchronous::{publisher::RemotePublisher, ExitSignal, Shim};
use containerd_shim::protos::api::DeleteResponse;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::util::convert_to_timestamp;
use containerd_shim::{Config, Error as ShimError, Flags, StartOpts};
use log::{info, warn};
use tokio::io::AsyncReadExt;

use crate::fsread;
use crate::guard::Guard;
use crate::options::{DEFAULT_BINARY, DEFAULT_ROOT};
use crate::runsc::{self, Executor, GlobalFlags, ReaperExecutor, Runsc};
use crate::shim::bootstrap::StartInput;
use crate::shim::confine;
use crate::shim::events::{self, EventSender};
use crate::shim::grouping;
use crate::shim::ids::validate_id;
use crate::shim::logging;
use crate::shim::mount;
use crate::shim::pod::{Pod, INIT_PID_FILE};
use crate::shim::process::read_pid_file;
use crate::shim::startup;
use crate::shim::state::ShimState;
use crate::shim::task::TaskService;

/// Set by `start` for the daemon: the runsc binary runsc.toml names, whose version the daemon
/// learns while containerd connects.
pub const RUNSC_BINARY_ENV: &str = "RUNSC_GUARD_RUNSC_BINARY";
/// Set by `start` for the daemon: runsc.toml's state root, where the node's shims share what
/// they learned of runsc (`runsc::version_cache`).
pub const RUNSC_ROOT_ENV: &str = "RUNSC_GUARD_RUNSC_ROOT";

pub struct Service {
    id: String,
    namespace: String,
    bundle: PathBuf,
    /// The socket the daemon serves (`-socket`, the address its `start` derived); empty for the
    /// `start` and `delete` actions.
    socket: String,
    exit: Arc<ExitSignal>,
}

#[async_trait]
impl Shim for Service {
    type T = TaskService;

    async fn new(_runtime_id: &str, args: &Flags, config: &mut Config) -> Self {
        // The daemon installs its own logger (fifo + runsc.toml's log_path); `start` and `delete`
        // have no fifo and report on stderr, which containerd logs.
        config.no_setup_logger = true;
        if args.action.is_empty() {
            logging::init(args.debug);
            startup::mark("runtime");
        }
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Service {
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            bundle,
            socket: args.socket.clone(),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> Result<String, ShimError> {
        // The id names the socket and reaches runsc: the same check as the task API's Create.
        validate_id(&opts.id).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        // containerd sends the runtime options on stdin (inside its bootstrap parameters from
        // 2.3 on); they choose the grouping, the daemon's log settings and cgroup here. A bad
        // config is reported by Create, with the field named.
        let input = StartInput::parse(&read_stdin(), &opts.id, &opts.namespace);
        let config = input.config();
        let group = grouping::group_of(&self.bundle, &opts.id, config.grouping);
        let address = input
            .socket_address(&opts.address, &opts.namespace, &group)
            .map_err(ShimError::InvalidArgument)?;
        // A container joining its pod: the pod's shim serves it, no new process.
        if let Some(pid) = grouping::serving_pid(&address) {
            write_bundle_file(&self.bundle, "address", &address)?;
            write_bundle_file(&self.bundle, "shim.pid", &pid.to_string())?;
            return Ok(input.answer(&address));
        }
        let exe = std::env::current_exe().map_err(|err| ShimError::IoError {
            context: "finding the shim's own executable".into(),
            err,
        })?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.current_dir(&self.bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env("TTRPC_ADDRESS", &opts.ttrpc_address)
            .args([
                "-namespace",
                &opts.namespace,
                "-id",
                &opts.id,
                "-address",
                &opts.address,
                "-socket",
                &address,
            ])
            // Its own process group: a signal to containerd's group must not reach the shims.
            .process_group(0);
        if opts.debug || input.debug {
            cmd.arg("-debug");
        }
        if !config.log_level.is_empty() {
            cmd.env(logging::LEVEL_ENV, &config.log_level);
        }
        if let Some(file) = config.shim_log_file(&opts.id) {
            cmd.env(logging::FILE_ENV, file);
        }
        // The daemon joins shim_cgroup and lowers its OOM score itself, where a failure can go
        // to its log: nothing but the address may reach `start`'s stdout or stderr.
        if !config.shim_cgroup.is_empty() {
            cmd.env(confine::SHIM_CGROUP_ENV, &config.shim_cgroup);
        }
        cmd.env(RUNSC_BINARY_ENV, &config.binary_name)
            .env(RUNSC_ROOT_ENV, &config.root);
        cmd.env(
            startup::STARTED_ENV,
            startup::started_value(startup::began()),
        );
        let mut child = cmd.spawn().map_err(|err| ShimError::IoError {
            context: "spawning the shim daemon".into(),
            err,
        })?;
        let child_pid = child.id().unwrap_or_default();
        // The daemon closes its stdout once it serves (or found a live shim on the socket).
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_end(&mut out).await;
        }
        // The process that serves: the new daemon, or the pod's shim when another `start` of
        // the pod got there first (the new daemon then found the socket taken and left).
        let serving = serving_pid_within(&address);
        // The pid came from a connection to the socket: it answers.
        if serving.is_none() && !socket_answers(&address) {
            let _ = child.kill().await;
            // Other (containerd-shim's error, which `start` must return): the daemon left
            // without serving; why is in its log, not in any errno here.
            return Err(ShimError::Other(format!(
                "the shim daemon exited before serving {address}: see the shim log in \
                 containerd's log (is TTRPC_ADDRESS {} reachable?)",
                opts.ttrpc_address
            )));
        }
        let pid = serving.unwrap_or(child_pid);
        write_bundle_file(&self.bundle, "address", &address)?;
        write_bundle_file(&self.bundle, "shim.pid", &pid.to_string())?;
        Ok(input.answer(&address))
    }

    async fn delete_shim(&mut self) -> Result<DeleteResponse, ShimError> {
        // The id reaches `runsc delete --force` and names the bundle's files: checked as Create
        // checks it, so a hostile `-id` is refused before anything runs.
        validate_id(&self.id).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        let state = ShimState::load(&self.bundle).unwrap_or_else(|e| {
            eprintln!("{}: using runsc defaults for cleanup: {e}", self.id);
            None
        });
        let (binary, flags) = match state {
            Some(s) => (s.binary.clone(), s.global_flags()),
            None => (
                PathBuf::from(DEFAULT_BINARY),
                GlobalFlags::new(
                    Path::new(DEFAULT_ROOT).join(&self.namespace),
                    &self.bundle,
                    Default::default(),
                ),
            ),
        };
        let runsc = Runsc::new(binary, flags, Arc::new(ReaperExecutor));
        // runsc resolves ids by prefix: once this container's state is gone, `delete --force`
        // of its id would reach another container whose id it begins (see `shim::ids`).
        let listed = match runsc.list_ids().await {
            Ok(ids) => ids.contains(&self.id),
            Err(_) => true,
        };
        if !listed {
            eprintln!(
                "{}: runsc has no container of this id; not deleting",
                self.id
            );
        } else if let Err(e) = runsc.delete(&self.id, true).await {
            if !runsc::is_gone(&e) {
                eprintln!("{}: {e}", self.id);
            }
        }
        if let Err(e) = mount::unmount_all(&self.bundle).await {
            eprintln!("{}: {e}", self.id);
        }
        remove_dead_socket(&self.bundle);
        let pid = read_pid_file(&self.bundle.join(INIT_PID_FILE), "reading runsc's pid file")
            .ok()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        Ok(DeleteResponse {
            pid,
            // As gVisor's and runc's shims do: the task is gone, report it killed.
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(convert_to_timestamp(Some(
                std::time::SystemTime::now().into(),
            )))
            .into(),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
        // containerd-shim removes the socket that the `address` file in the daemon's working
        // directory names: the bundle of the container whose `start` spawned it. In a pod,
        // containerd may delete that container's task, and remove its bundle, before another
        // container's (the sandbox's first, after an OOM kill of the whole sandbox), and the
        // socket would stay behind. The daemon knows its own socket: it goes here.
        remove_own_socket(&self.socket);
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        startup::mark("publisher");
        let executor: Arc<dyn Executor> = Arc::new(ReaperExecutor);
        // The roots the environment names are read here, once: the daemon's own cgroup, the
        // guard and the pod's stats all go by the guard's.
        let guard = Guard::from_env(executor.clone());
        let shim_cgroup = std::env::var(confine::SHIM_CGROUP_ENV).unwrap_or_default();
        for warning in confine::confine_self(guard.cgroup_root(), guard.proc_root(), &shim_cgroup) {
            warn!("{}: {warning}", self.id);
        }
        let (sender, receiver) = EventSender::channel();
        tokio::spawn(events::forward(publisher, self.namespace.clone(), receiver));
        info!(
            "shim {} for {} serving in namespace {}",
            env!("CARGO_PKG_VERSION"),
            self.id,
            self.namespace
        );
        let pod = Arc::new(Pod::new(self.namespace.clone(), sender, executor, guard));
        let warming = pod.clone();
        // What `start` read in runsc.toml; a daemon started otherwise warms the default runsc
        // up and shares nothing.
        let binary = std::env::var(RUNSC_BINARY_ENV)
            .ok()
            .filter(|b| !b.is_empty());
        let root = std::env::var_os(RUNSC_ROOT_ENV)
            .map(PathBuf::from)
            .filter(|r| r.is_absolute());
        tokio::spawn(async move { warming.warm_up(binary.as_deref(), root.as_deref()).await });
        let service = TaskService::new(pod, self.exit.clone());
        startup::mark("service");
        service
    }
}

/// What containerd wrote on stdin (nothing when it cannot be read).
fn read_stdin() -> Vec<u8> {
    let mut data = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut data);
    data
}

/// The runtime options containerd wrote on stdin for `-info`, if any (always the options alone).
pub fn read_stdin_options() -> Option<Option<Any>> {
    let data = read_stdin();
    if data.is_empty() {
        return Some(None);
    }
    Any::parse_from_bytes(&data).ok().map(Some)
}

fn serving_pid_within(address: &str) -> Option<u32> {
    for _ in 0..20 {
        if let Some(pid) = grouping::serving_pid(address) {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn socket_answers(address: &str) -> bool {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    // A few tries: the socket exists before the daemon closes its stdout, but be lenient.
    for _ in 0..20 {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A shim that was killed leaves its socket behind; `delete` is the last chance to remove it.
/// A socket that still answers belongs to a live shim (several containers per shim) and stays.
fn remove_dead_socket(bundle: &Path) {
    let Ok(address) = fsread::read_regular_to_string(
        &bundle.join("address"),
        fsread::LINE_MAX,
        fsread::Symlinks::Follow,
    ) else {
        return;
    };
    let path = socket_path(&address);
    if path.is_empty() || std::os::unix::net::UnixStream::connect(path).is_ok() {
        return;
    }
    let _ = remove_socket_file(path);
}

/// Removes the socket the daemon served, once it stops serving (its `-socket` flag).
fn remove_own_socket(socket: &str) {
    let path = socket_path(socket);
    if path.is_empty() {
        return;
    }
    match remove_socket_file(path) {
        Ok(true) => info!("removed the shim's socket {path}"),
        Ok(false) => {}
        Err(e) => warn!("removing the shim's socket {path}: {e}"),
    }
}

/// The file of a shim address (`unix://` stripped).
fn socket_path(address: &str) -> &str {
    let address = address.trim();
    address.strip_prefix("unix://").unwrap_or(address)
}

/// Removes `path` if it is a socket (never another kind of file); whether it did.
fn remove_socket_file(path: &str) -> std::io::Result<bool> {
    use std::os::unix::fs::FileTypeExt;
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        return Ok(false);
    }
    std::fs::remove_file(path).map(|()| true)
}

fn write_bundle_file(bundle: &Path, name: &str, content: &str) -> Result<(), ShimError> {
    let path = bundle.join(name);
    std::fs::write(&path, content).map_err(|err| ShimError::IoError {
        context: format!("writing {}", path.display()),
        err,
    })
}
