//! How runsc processes are run and their exit status learned.
//!
//! Inside the shim daemon the containerd-shim library reaps every child on SIGCHLD
//! (`waitpid(-1)`), so `Child::wait` would race it and lose. There the exit status comes from the
//! library's exit monitor, subscribed to *before* the spawn so no exit is missed
//! ([`ReaperExecutor`]). Outside the daemon (the `runsc-guard` CLI, unit tests) nothing else reaps,
//! and plain tokio waiting is right ([`TokioExecutor`]).

use std::time::Duration;

use async_trait::async_trait;
use containerd_shim::asynchronous::monitor::{
    monitor_subscribe, monitor_unsubscribe, Subscription,
};
use containerd_shim::monitor::{Subject, Topic};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// What a finished process left.
#[derive(Debug, Default, Clone)]
pub struct Output {
    /// Exit code, or 128 + signal number.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs a command to completion.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs the command without a limit.
    async fn run(&self, cmd: Command) -> std::io::Result<Output>;

    /// Runs the command; past `limit` (None: no limit, for `runsc wait`) the process is killed
    /// and the call fails with [`std::io::ErrorKind::TimedOut`]. Only the process itself is
    /// killed: what it started (a sandbox, a gofer) is the caller's to clean up. The default
    /// (for test doubles) only stops waiting; the real executors kill.
    async fn run_for(&self, cmd: Command, limit: Option<Duration>) -> std::io::Result<Output> {
        within(limit, self.run(cmd))
            .await
            .unwrap_or_else(|| Err(timed_out(limit.unwrap_or_default())))
    }
}

/// Overrides every limit of [`limit_for`] (seconds, fractions allowed): for tests, and for a
/// node where runsc is known to be slower than the defaults allow.
pub const CALL_TIMEOUT_ENV: &str = "RUNSC_GUARD_CALL_TIMEOUT";

/// How long a runsc sub-command (or `systemctl`, `--version`) may take before the shim kills
/// it. Creating and starting a sandbox boots a kernel and mounts its rootfs, which takes
/// seconds on a loaded node; querying and signalling take milliseconds. `wait` blocks until
/// the container exits and has no limit.
pub fn limit_for(command: &str) -> Option<Duration> {
    let default = match command {
        "wait" => return None,
        "create" | "restore" => Duration::from_secs(180),
        "start" | "exec" | "checkpoint" => Duration::from_secs(120),
        "delete" => Duration::from_secs(60),
        _ => Duration::from_secs(30),
    };
    Some(override_limit().unwrap_or(default))
}

fn override_limit() -> Option<Duration> {
    static OVERRIDE: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *OVERRIDE.get_or_init(|| {
        let value = std::env::var(CALL_TIMEOUT_ENV).ok()?;
        match value.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            _ => {
                log::warn!("{CALL_TIMEOUT_ENV}={value:?} is not a number of seconds; ignored");
                None
            }
        }
    })
}

/// After a kill, how long to wait for the exit before giving up on reaping it here.
const REAP_AFTER_KILL: Duration = Duration::from_secs(5);

fn timed_out(limit: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("did not finish within {limit:?} and was killed"),
    )
}

/// Waits with tokio: for processes that nobody else reaps.
pub struct TokioExecutor;

#[async_trait]
impl Executor for TokioExecutor {
    async fn run(&self, cmd: Command) -> std::io::Result<Output> {
        self.run_for(cmd, None).await
    }

    async fn run_for(&self, mut cmd: Command, limit: Option<Duration>) -> std::io::Result<Output> {
        // Not `Command::output`: tokio's forces piped stdout and stderr, and a sandbox that
        // inherits them would hold the call until it exits.
        let mut child = cmd.spawn()?;
        let finished = within(limit, async {
            let (stdout, stderr) = drain(&mut child).await;
            let status = child.wait().await?;
            Ok(Output {
                status: exit_code(&status),
                stdout,
                stderr,
            })
        })
        .await;
        match finished {
            Some(result) => result,
            None => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(REAP_AFTER_KILL, child.wait()).await;
                Err(timed_out(limit.unwrap_or_default()))
            }
        }
    }
}

/// The future's output, or None when `limit` passed first.
async fn within<T>(limit: Option<Duration>, f: impl std::future::Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, f).await.ok(),
        None => Some(f.await),
    }
}

/// Reads whatever pipes the command was given, to their end.
async fn drain(child: &mut tokio::process::Child) -> (Vec<u8>, Vec<u8>) {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let out_pipe = child.stdout.take();
    let err_pipe = child.stderr.take();
    let read_out = async {
        if let Some(mut p) = out_pipe {
            let _ = p.read_to_end(&mut stdout).await;
        }
    };
    let read_err = async {
        if let Some(mut p) = err_pipe {
            let _ = p.read_to_end(&mut stderr).await;
        }
    };
    tokio::join!(read_out, read_err);
    (stdout, stderr)
}

fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Learns exits from the containerd-shim library's reaper.
pub struct ReaperExecutor;

/// A monitor subscription that unsubscribes when dropped, so no path can leak it.
struct ExitWatch(Option<Subscription>);

impl ExitWatch {
    async fn new() -> std::io::Result<Self> {
        monitor_subscribe(Topic::Pid)
            .await
            .map(|s| ExitWatch(Some(s)))
            .map_err(|e| std::io::Error::other(format!("subscribing to exits: {e}")))
    }

    async fn exit_of(&mut self, pid: i32) -> std::io::Result<i32> {
        let sub = self.0.as_mut().expect("subscription is present until drop");
        while let Some(event) = sub.rx.recv().await {
            if let Subject::Pid(p) = event.subject {
                if p == pid {
                    return Ok(event.exit_code);
                }
            }
        }
        Err(std::io::Error::other(format!(
            "exit monitor closed before pid {pid} exited"
        )))
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        if let Some(sub) = self.0.take() {
            let id = sub.id;
            drop(sub);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = monitor_unsubscribe(id).await;
                });
            }
        }
    }
}

#[async_trait]
impl Executor for ReaperExecutor {
    async fn run(&self, cmd: Command) -> std::io::Result<Output> {
        self.run_for(cmd, None).await
    }

    async fn run_for(&self, mut cmd: Command, limit: Option<Duration>) -> std::io::Result<Output> {
        let mut watch = ExitWatch::new().await?;
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("spawned process has no pid"))?
            as i32;
        let finished = within(limit, async {
            let (stdout, stderr) = drain(&mut child).await;
            let status = watch.exit_of(pid).await?;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        })
        .await;
        match finished {
            Some(result) => result,
            None => {
                // It has not exited (the reaper would have told), so the pid is still its own.
                let _ = child.start_kill();
                let _ = tokio::time::timeout(REAP_AFTER_KILL, watch.exit_of(pid)).await;
                Err(timed_out(limit.unwrap_or_default()))
            }
        }
    }
}

/// `Command::output` with a limit, for processes outside the daemon (the CLI, `-info`), where
/// nothing else reaps children. Past `limit` the process is killed and the call fails with
/// [`std::io::ErrorKind::TimedOut`].
pub fn output_within(
    mut cmd: std::process::Command,
    limit: Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(timed_out(limit));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_past_its_limit_is_killed_and_times_out() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30").stdout(std::process::Stdio::piped());
        let started = std::time::Instant::now();
        let err = TokioExecutor
            .run_for(cmd, Some(Duration::from_millis(200)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut cmd = Command::new("true");
        cmd.stdout(std::process::Stdio::piped());
        let out = TokioExecutor
            .run_for(cmd, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(out.status, 0);
    }

    #[test]
    fn a_blocking_call_past_its_limit_is_killed_too() {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        let err = output_within(cmd, Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        let mut cmd = std::process::Command::new("echo");
        cmd.arg("hi");
        let out = output_within(cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }

    #[test]
    fn every_command_but_wait_has_a_limit() {
        assert_eq!(limit_for("wait"), None);
        for c in [
            "create",
            "start",
            "state",
            "kill",
            "delete",
            "ps",
            "--version",
            "systemctl",
        ] {
            assert!(limit_for(c).is_some_and(|l| l > Duration::ZERO), "{c}");
        }
    }
}
