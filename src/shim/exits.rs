//! Exits the shim's reaper saw, kept so none is lost: the sandbox's own.
//!
//! runsc learns a container's exit from the sandbox, over its control socket. When a sandbox's
//! init exits at once (`sh -c 'exit 7'`, `true`), the sandbox exits with it, often before
//! `runsc start` has even returned; a `runsc wait` that comes later cannot reach it and, not being
//! the sandbox's parent, fails ("sandbox no longer running and its exit status is unavailable",
//! `Sandbox.Wait` in runsc 20221219 and every release since). A `runsc wait` sent before the
//! start does not help either: the sandbox answers "not started". gVisor's shim reports 128 then.
//!
//! But the sandbox process is the shim's: `runsc create` starts it and exits, so it is re-parented
//! to the shim, a child subreaper, whose reaper collects its status. `runsc boot` exits with its
//! init's status (128 + the signal for a signal), so that status is the container's. This log
//! subscribes to the reaper before the first `runsc create` and keeps every exit for a while, so
//! an exit that came before anyone asked is still there.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::asynchronous::monitor::monitor_subscribe;
use containerd_shim::monitor::{Subject, Topic};
use log::warn;
use tokio::sync::{watch, OnceCell};

/// How long an exit nobody asked about is kept.
const KEEP: Duration = Duration::from_secs(600);
/// At most this many exits are kept (the runsc calls' own exits pass through too).
const MAX_KEPT: usize = 4096;

/// One exit the reaper saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapedExit {
    /// The exit code, or 128 + the signal.
    pub status: u32,
    /// When the reaper reported it.
    pub at: SystemTime,
    seen: Instant,
}

/// The reaper's exits, by pid.
#[derive(Default)]
pub struct ExitLog {
    started: OnceCell<()>,
    exits: Mutex<HashMap<i32, ReapedExit>>,
    changed: watch::Sender<u64>,
}

impl ExitLog {
    /// Subscribes to the reaper, once; call before starting anything whose exit matters.
    pub async fn start(self: &std::sync::Arc<Self>) {
        self.started
            .get_or_init(|| async {
                let mut sub = match monitor_subscribe(Topic::Pid).await {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("subscribing to the reaper's exits: {e}; sandbox exits may be lost");
                        return;
                    }
                };
                let log = std::sync::Arc::downgrade(self);
                tokio::spawn(async move {
                    while let Some(event) = sub.rx.recv().await {
                        let Some(log) = log.upgrade() else { break };
                        if let Subject::Pid(pid) = event.subject {
                            log.record(pid, event.exit_code.max(0) as u32);
                        }
                    }
                });
            })
            .await;
    }

    /// Records an exit (what the reaper subscription does).
    pub fn record(&self, pid: i32, status: u32) {
        let now = Instant::now();
        {
            let mut exits = self.exits.lock().unwrap_or_else(|p| p.into_inner());
            if exits.len() >= MAX_KEPT {
                exits.retain(|_, e| now.duration_since(e.seen) < KEEP);
            }
            if exits.len() >= MAX_KEPT {
                if let Some(oldest) = exits.iter().min_by_key(|(_, e)| e.seen).map(|(p, _)| *p) {
                    exits.remove(&oldest);
                }
            }
            exits.insert(
                pid,
                ReapedExit {
                    status,
                    at: SystemTime::now(),
                    seen: now,
                },
            );
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// The exit of `pid` seen after `since`, waiting at most `limit` for it.
    pub async fn exit_of(&self, pid: i32, since: Instant, limit: Duration) -> Option<ReapedExit> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found = self
                .exits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&pid)
                .copied()
                .filter(|e| e.seen >= since);
            if found.is_some() {
                return found;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

/// Whether a process exists (a zombie counts as gone).
pub fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let exists = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    exists
        && crate::fsread::read_regular_to_string(
            std::path::Path::new(&format!("/proc/{pid}/stat")),
            crate::fsread::LINE_MAX,
            crate::fsread::Symlinks::Follow,
        )
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_exit_recorded_before_it_is_asked_for_is_found() {
        let log = ExitLog::default();
        let before = Instant::now();
        log.record(42, 7);
        let e = log.exit_of(42, before, Duration::ZERO).await.unwrap();
        assert_eq!(e.status, 7);
        // Not one from before the container existed (a recycled pid).
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(log.exit_of(42, later, Duration::ZERO).await, None);
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_exit_comes() {
        let log = std::sync::Arc::new(ExitLog::default());
        let since = Instant::now();
        let waiter = tokio::spawn({
            let log = log.clone();
            async move { log.exit_of(9, since, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.record(8, 1);
        log.record(9, 137);
        assert_eq!(waiter.await.unwrap().map(|e| e.status), Some(137));
        assert_eq!(
            log.exit_of(10, since, Duration::from_millis(10)).await,
            None
        );
    }

    #[test]
    fn liveness() {
        assert!(is_alive(std::process::id() as i32));
        assert!(!is_alive(0));
        assert!(!is_alive(0x4000_0001));
    }
}
