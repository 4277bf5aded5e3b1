//! How runsc processes are run and their exit status learned.
//!
//! Inside the shim daemon the containerd-shim library reaps every child on SIGCHLD
//! (`waitpid(-1)`), so `Child::wait` would race it and lose. There the exit status comes from the
//! library's exit monitor, subscribed to *before* the spawn so no exit is missed
//! ([`ReaperExecutor`]). Outside the daemon (the `runsc-guard` CLI, unit tests) nothing else reaps,
//! and plain tokio waiting is right ([`TokioExecutor`]).

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
    async fn run(&self, cmd: Command) -> std::io::Result<Output>;
}

/// Waits with tokio: for processes that nobody else reaps.
pub struct TokioExecutor;

#[async_trait]
impl Executor for TokioExecutor {
    async fn run(&self, mut cmd: Command) -> std::io::Result<Output> {
        // Not `Command::output`: tokio's forces piped stdout and stderr, and a sandbox that
        // inherits them would hold the call until it exits.
        let mut child = cmd.spawn()?;
        let (stdout, stderr) = drain(&mut child).await;
        let status = child.wait().await?;
        Ok(Output {
            status: exit_code(&status),
            stdout,
            stderr,
        })
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
    async fn run(&self, mut cmd: Command) -> std::io::Result<Output> {
        let mut watch = ExitWatch::new().await?;
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("spawned process has no pid"))?
            as i32;
        let (stdout, stderr) = drain(&mut child).await;
        let status = watch.exit_of(pid).await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}
