//! Typed wrappers around the runsc command line.
//!
//! Every call has the same shape as gVisor's shim makes it:
//! `runsc --root=<root>/<ns> --log=<bundle>/log.json --log-format=json [--k=v ...] <sub> ...`.
//! The global flags come from runsc.toml's `[runsc_config]` (plus what the guard adds), in key
//! order so a command line is reproducible. A failed call is reported with the error runsc
//! logged during that call, read from the JSON log.

pub mod executor;
pub mod gates;
pub mod log;
pub mod state_files;
pub mod toolchain;
pub mod version;
pub mod version_cache;
pub mod versions;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Deserialize;
use tokio::process::Command;

pub use executor::{Executor, Output, ReaperExecutor, TokioExecutor};
pub use state_files::{list_state_files, StateFiles};
pub use versions::RunscVersions;

use crate::error::{Error, Result, RunscFailure};
use version::RunscVersion;

/// Flags whose value is a path in which gVisor's shim (for runsc 20221219, which does not do it
/// itself) replaces `%ID%` with the container id and creates the parent directory.
const PATH_FLAGS: &[&str] = &[
    "log",
    "panic-log",
    "debug-log",
    "coverage-report",
    "profile-block",
    "profile-cpu",
    "profile-heap",
    "profile-mutex",
    "trace",
];

/// runsc's global flags for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalFlags {
    /// runsc's state root, namespace included.
    pub root: PathBuf,
    /// runsc's own log: `<bundle>/log.json`, parsed for errors.
    pub log: PathBuf,
    /// `--key=value` flags, in key order.
    pub extra: BTreeMap<String, String>,
}

impl GlobalFlags {
    pub fn new(root: impl Into<PathBuf>, bundle: &Path, extra: BTreeMap<String, String>) -> Self {
        GlobalFlags {
            root: root.into(),
            log: bundle.join("log.json"),
            extra,
        }
    }

    /// The flags as arguments, placed before the sub-command.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--root={}", self.root.display()),
            format!("--log={}", self.log.display()),
            "--log-format=json".to_string(),
        ];
        args.extend(self.extra.iter().map(|(k, v)| format!("--{k}={v}")));
        args
    }

    /// Replaces `%ID%` in path-like flags with the container id and creates their parent
    /// directories, as gVisor's shim did for the runsc releases that do not do it themselves.
    /// A runsc that expands `%ID%` (the sandbox) and `%CID%` (the container) itself, from
    /// release-20260309.0 on, gets the flags untouched, as gVisor's shim hands them over since:
    /// expanding them here would give `%ID%` the container's id where runsc gives the sandbox's.
    /// `version` is None when the shim does not know which runsc it runs (the guard off and
    /// blind); it then expands as for the older releases.
    pub fn substitute_id(&mut self, id: &str, version: Option<&RunscVersion>) -> Result<()> {
        if version.is_some_and(RunscVersion::expands_flag_ids) {
            return Ok(());
        }
        for (key, value) in self.extra.iter_mut() {
            if !PATH_FLAGS.contains(&key.as_str()) || !value.contains("%ID%") {
                continue;
            }
            *value = value.replace("%ID%", id);
            if let Some(parent) = Path::new(value.as_str()).parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("creating the directory for --", parent, e))?;
            }
        }
        Ok(())
    }
}

/// stdio handed to a runsc process (and through it, to the container).
#[derive(Debug, Default)]
pub struct ProcessIo {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// `runsc state` output (the OCI state).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    #[serde(default)]
    pub pid: i32,
    pub status: String,
}

#[derive(Deserialize)]
struct WaitOutput {
    #[serde(rename = "exitStatus")]
    exit_status: i32,
}

/// Options of `runsc create`.
#[derive(Debug)]
pub struct CreateOpts<'a> {
    pub bundle: &'a Path,
    pub pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub user_log: Option<&'a Path>,
}

/// Options of `runsc exec --detach`.
#[derive(Debug)]
pub struct ExecOpts<'a> {
    /// The OCI process (JSON) to run.
    pub process: &'a Path,
    /// Where runsc writes the host pid of the `runsc exec` process that lives as long as the
    /// exec'd process and exits with its status.
    pub pid_file: &'a Path,
    /// Where runsc writes the exec'd process' pid inside the sandbox (what `kill --pid` takes).
    pub internal_pid_file: &'a Path,
    pub console_socket: Option<&'a Path>,
}

/// A runsc binary with the global flags of one container.
#[derive(Clone)]
pub struct Runsc {
    binary: PathBuf,
    flags: GlobalFlags,
    executor: Arc<dyn Executor>,
    /// Replaces the per-command limits of [`executor::limit_for`] (not `wait`'s absence of one).
    call_limit: Option<std::time::Duration>,
    /// The order of runsc commands over the state files of the pod this container is part of.
    state_files: StateFiles,
    /// Set once runsc deleted the container (or said it is gone) in a `delete`: no runsc command
    /// of it runs after that. Every call passes `--log=<bundle>/log.json`, and the 2026 releases
    /// create the log's directory, so a command queued behind the delete would bring back a
    /// bundle directory containerd removes once the Delete is answered.
    deleted: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runsc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runsc")
            .field("binary", &self.binary)
            .field("flags", &self.flags)
            .finish()
    }
}

impl Runsc {
    pub fn new(binary: PathBuf, flags: GlobalFlags, executor: Arc<dyn Executor>) -> Self {
        Runsc {
            binary,
            flags,
            executor,
            call_limit: None,
            state_files: StateFiles::default(),
            deleted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same runsc, ordered with the pod's other runsc commands over its state files (see
    /// [`state_files`]). Without it, a `Runsc` is ordered only with its own clones.
    pub fn sharing_state_files(mut self, state_files: StateFiles) -> Self {
        self.state_files = state_files;
        self
    }

    /// The same runsc with one limit for every bounded call.
    pub fn with_call_limit(mut self, limit: std::time::Duration) -> Self {
        self.call_limit = Some(limit);
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn flags(&self) -> &GlobalFlags {
        &self.flags
    }

    /// The full argument list of a sub-command, global flags first.
    pub fn args(&self, sub: &[&str]) -> Vec<String> {
        let mut args = self.flags.to_args();
        args.extend(sub.iter().map(|s| s.to_string()));
        args
    }

    fn command(&self, sub: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(self.args(sub));
        cmd
    }

    /// Runs a sub-command that takes no stdio of the container, capturing its output.
    async fn run(&self, sub: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = self.command(sub);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = self.execute(sub, cmd, None).await?;
        Ok(out.stdout)
    }

    /// Runs a sub-command whose stdio is the container's. The processes runsc starts (sandbox,
    /// gofer) inherit that stdio and outlive the call, so nothing here may be a pipe the shim
    /// reads to EOF: without a container stderr, runsc's stderr goes to an unlinked temporary
    /// file, read back only if the call fails (it may hold the only explanation of a failure
    /// that happens before runsc opens its log).
    async fn run_with_io(&self, sub: &[&str], io: ProcessIo) -> Result<()> {
        let mut cmd = self.command(sub);
        let mut stderr_file = None;
        let stderr = match io.stderr {
            Some(fd) => Stdio::from(fd),
            None => {
                let file = tempfile::tempfile()
                    .map_err(|e| Error::os("creating a file for runsc's stderr", e))?;
                let ours = file
                    .try_clone()
                    .map_err(|e| Error::os("duplicating runsc's stderr file", e))?;
                stderr_file = Some(ours);
                Stdio::from(file)
            }
        };
        cmd.stdin(io.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(io.stdout.map_or_else(Stdio::null, Stdio::from))
            .stderr(stderr);
        self.execute(sub, cmd, stderr_file).await.map(|_| ())
    }

    async fn execute(
        &self,
        sub: &[&str],
        cmd: Command,
        stderr_file: Option<std::fs::File>,
    ) -> Result<Output> {
        let name = sub.first().copied().unwrap_or_default().to_string();
        let limit = executor::limit_for(&name).map(|l| self.call_limit.unwrap_or(l));
        let span = format!("runsc.{name}");
        let access = state_files::Access::of(&name);
        let _held = self.state_files.enter(access).await;
        if access == state_files::Access::Shared && self.deleted.load(Ordering::SeqCst) {
            return Err(Error::runsc(
                name,
                RunscFailure::Gone,
                "the container does not exist: runsc deleted it",
            ));
        }
        let log_offset = log::current_len(&self.flags.log);
        let run = self.executor.run_for(cmd, limit);
        let out = crate::timing::span(&span, run)
            .await
            .map_err(|e| self.spawn_failure(&name, &e))?;
        let result = self.judge(name, log_offset, out, stderr_file);
        // Marked while the delete still runs alone, so no command queued behind it runs.
        let gone = match &result {
            Ok(_) => true,
            Err(Error::Runsc { kind, .. }) => *kind == RunscFailure::Gone,
            Err(_) => false,
        };
        if access == state_files::Access::Exclusive && gone {
            self.deleted.store(true, Ordering::SeqCst);
        }
        result
    }

    /// A finished runsc command: its output, or the failure runsc logged or printed.
    fn judge(
        &self,
        name: String,
        log_offset: u64,
        out: Output,
        stderr_file: Option<std::fs::File>,
    ) -> Result<Output> {
        if out.status != 0 {
            let stderr = match stderr_file {
                Some(file) => read_from_start(file),
                None => out.stderr.clone(),
            };
            let message = log::last_error_since(&self.flags.log, log_offset)
                .or_else(|| log::last_stderr_line(&stderr))
                .unwrap_or_else(|| format!("exit status {}", out.status));
            let kind = if says_gone(&message) {
                RunscFailure::Gone
            } else {
                RunscFailure::Failed
            };
            return Err(Error::runsc(name, kind, message));
        }
        Ok(out)
    }

    /// runsc could not be run to the end: missing or not executable, or out of time.
    fn spawn_failure(&self, name: &str, e: &std::io::Error) -> Error {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound => Error::runsc(
                name,
                RunscFailure::BinaryUnavailable,
                format!(
                    "runsc binary {:?} not found: install runsc or set binary_name in runsc.toml",
                    self.binary
                ),
            ),
            ErrorKind::PermissionDenied => Error::runsc(
                name,
                RunscFailure::BinaryUnavailable,
                format!(
                    "runsc binary {:?} cannot be executed ({e}): check its mode and that it is \
                     runsc",
                    self.binary
                ),
            ),
            ErrorKind::TimedOut => Error::runsc(
                name,
                RunscFailure::TimedOut,
                format!(
                    "{:?} {e}; runsc looks hung: see {} and runsc's debug-log",
                    self.binary,
                    self.flags.log.display()
                ),
            ),
            _ if e.raw_os_error() == Some(libc::ENOEXEC) => Error::runsc(
                name,
                RunscFailure::BinaryUnavailable,
                format!("runsc binary {:?} is not an executable ({e})", self.binary),
            ),
            _ => Error::runsc(
                name,
                RunscFailure::Failed,
                format!("cannot run {:?}: {e}", self.binary),
            ),
        }
    }

    /// `runsc create`; stdio is the sandbox's for a sandbox, none for a container joining one.
    pub async fn create(&self, id: &str, opts: &CreateOpts<'_>, io: ProcessIo) -> Result<()> {
        let bundle = opts.bundle.display().to_string();
        let pid_file = opts.pid_file.display().to_string();
        let mut sub = vec!["create", "--bundle", &bundle, "--pid-file", &pid_file];
        let console = opts.console_socket.map(|p| p.display().to_string());
        if let Some(c) = &console {
            sub.extend(["--console-socket", c]);
        }
        let user_log = opts.user_log.map(|p| p.display().to_string());
        if let Some(u) = &user_log {
            sub.extend(["--user-log", u]);
        }
        sub.push(id);
        self.run_with_io(&sub, io).await
    }

    /// `runsc start`; stdio is the container's when it joins an existing sandbox.
    pub async fn start(&self, id: &str, io: ProcessIo) -> Result<()> {
        self.run_with_io(&["start", id], io).await
    }

    /// `runsc exec --detach`: returns once runsc has started the process and written both pid
    /// files (runsc's detached parent waits for its child's pid file, in 20221219 and since). The
    /// child `runsc exec` keeps `io`.
    pub async fn exec(&self, id: &str, opts: &ExecOpts<'_>, io: ProcessIo) -> Result<()> {
        let process = opts.process.display().to_string();
        let pid_file = opts.pid_file.display().to_string();
        let internal = opts.internal_pid_file.display().to_string();
        let mut sub = vec![
            "exec",
            "--process",
            &process,
            "--detach",
            "--pid-file",
            &pid_file,
            "--internal-pid-file",
            &internal,
        ];
        let console = opts.console_socket.map(|p| p.display().to_string());
        if let Some(c) = &console {
            sub.extend(["--console-socket", c]);
        }
        sub.push(id);
        self.run_with_io(&sub, io).await
    }

    /// `runsc kill --pid <pid> <id> <signal>`: signals one process inside the sandbox.
    pub async fn kill_pid(&self, id: &str, pid: i32, signal: u32) -> Result<()> {
        let pid = pid.to_string();
        let signal = signal.to_string();
        self.run(&["kill", "--pid", &pid, id, &signal])
            .await
            .map(|_| ())
    }

    /// `runsc state`.
    pub async fn state(&self, id: &str) -> Result<ContainerState> {
        let out = self.run(&["state", id]).await?;
        serde_json::from_slice(&out).map_err(|e| unreadable("state", &out, &e))
    }

    /// `runsc wait`: blocks until the container exits and returns its exit status.
    pub async fn wait(&self, id: &str) -> Result<i32> {
        let out = self.run(&["wait", id]).await?;
        let w: WaitOutput =
            serde_json::from_slice(&out).map_err(|e| unreadable("wait", &out, &e))?;
        Ok(w.exit_status)
    }

    /// `runsc kill [--all] <id> <signal>`.
    pub async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let signal = signal.to_string();
        let mut sub = vec!["kill"];
        if all {
            sub.push("--all");
        }
        sub.extend([id, &signal]);
        self.run(&sub).await.map(|_| ())
    }

    /// `runsc delete [--force] <id>`, alone among the pod's runsc commands.
    pub async fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut sub = vec!["delete"];
        if force {
            sub.push("--force");
        }
        sub.push(id);
        self.run(&sub).await.map(|_| ())
    }

    /// After a delete: removes the lock file a runsc outside the shim may have recreated for
    /// container `id` of sandbox `sandbox_id` (see [`StateFiles::remove_orphan_lock`]).
    pub async fn remove_orphan_lock(&self, id: &str, sandbox_id: &str) {
        match self
            .state_files
            .remove_orphan_lock(&self.flags.root, id, sandbox_id)
            .await
        {
            Ok(true) => ::log::info!(
                "{id}: removed runsc's lock file left without its state file in {}",
                self.flags.root.display()
            ),
            Ok(false) => {}
            Err(e) => ::log::warn!(
                "{id}: checking runsc's lock file in {}: {e}",
                self.flags.root.display()
            ),
        }
    }

    /// `runsc pause <id>`: freezes every process of the container.
    pub async fn pause(&self, id: &str) -> Result<()> {
        self.run(&["pause", id]).await.map(|_| ())
    }

    /// `runsc resume <id>`.
    pub async fn resume(&self, id: &str) -> Result<()> {
        self.run(&["resume", id]).await.map(|_| ())
    }

    /// `runsc update --resources=- <id>` with the LinuxResources JSON on stdin (runsc
    /// release-20260202.0 and later; see `version::RunscVersion::has_update`). stdin is a file,
    /// not a pipe, so nothing can block writing it.
    pub async fn update(&self, id: &str, resources_json: &[u8]) -> Result<()> {
        use std::io::{Seek, Write};
        let sub = ["update", "--resources=-", id];
        let mut file = tempfile::tempfile()
            .map_err(|e| Error::os("creating a file for runsc update's stdin", e))?;
        file.write_all(resources_json)
            .and_then(|()| file.rewind())
            .map_err(|e| Error::os("writing runsc update's stdin", e))?;
        let mut cmd = self.command(&sub);
        cmd.stdin(Stdio::from(file))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.execute(&sub, cmd, None).await.map(|_| ())
    }

    /// `runsc events --stats <id>`: one event with the container's figures, as JSON.
    pub async fn events_stats(&self, id: &str) -> Result<Vec<u8>> {
        self.run(&["events", "--stats", id]).await
    }

    /// The ids of every container in the root, as `runsc list` finds them: from the names of
    /// runsc's state files, `<root>/<container id>_sandbox:<sandbox id>.state` (runsc's
    /// `container.List`, unchanged from before 20221219 through 20240729). Reading the directory
    /// spares a whole runsc start-up on every Create, which the bench measured at several
    /// hundred milliseconds under emulation. A root that does not exist yet holds no container.
    pub async fn list_ids(&self) -> Result<Vec<String>> {
        let root = self.flags.root.clone();
        let listed = crate::timing::span_sync("ids.list", || list_state_files(&root));
        listed.map_err(|e| Error::io("listing runsc's state files", &self.flags.root, e))
    }

    /// `runsc ps --format json <id>`: the pids inside the sandbox.
    pub async fn ps(&self, id: &str) -> Result<Vec<i32>> {
        let out = self.run(&["ps", "--format", "json", id]).await?;
        serde_json::from_slice::<Option<Vec<i32>>>(&out)
            .map(Option::unwrap_or_default)
            .map_err(|e| unreadable("ps", &out, &e))
    }
}

/// What a process wrote into a file it shared with the shim (at most the last 64 KiB).
fn read_from_start(mut file: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    bytes
}

/// Output of runsc that cannot be read: a failure, never a sign the container is gone.
fn unreadable(command: &str, out: &[u8], e: &serde_json::Error) -> Error {
    Error::runsc(
        command,
        RunscFailure::Failed,
        format!("unreadable output {:?}: {e}", String::from_utf8_lossy(out)),
    )
}

/// Whether what runsc itself said on failing means the container or sandbox is gone. runsc has
/// no error codes, so this is the one place that reads its words, and only its own words: a
/// failure to run runsc at all never gets here.
fn says_gone(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("does not exist")
        || m.contains("not running")
        || m.contains("no such process")
        || m.contains("not found")
}

/// Whether an error means the container or sandbox is gone: runsc said so, or the shim knows no
/// such container. A runsc that could not be run, or ran out of time, is never "gone".
pub fn is_gone(err: &Error) -> bool {
    matches!(
        err,
        Error::Runsc {
            kind: RunscFailure::Gone,
            ..
        } | Error::NotFound(_)
    )
}

/// Whether runsc could not be asked at all (its binary missing or not executable, or out of
/// time): nothing is known of the container, which may still run.
pub fn did_not_answer(err: &Error) -> bool {
    matches!(
        err,
        Error::Runsc {
            kind: RunscFailure::BinaryUnavailable | RunscFailure::TimedOut,
            ..
        }
    )
}

#[cfg(test)]
mod tests;
