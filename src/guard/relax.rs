//! Widening the sandbox's leaf after boot.
//!
//! runsc fixes the guest's size at create from its leaf's limit. When the guest is sized below
//! the pod's bound (the RuntimeClass overhead case), the leaf keeps that smaller limit until it
//! is raised to the bound: then the sentry and gofers have the room the pod reserves for them.
//! A systemd scope is changed through systemd, so systemd's view and the cgroup stay the same;
//! a cgroupfs leaf by writing its limit file.

use std::fmt;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::cgroup::{Bytes, CgroupPath, CgroupTree};
use crate::error::{Error, Result};
use crate::runsc::Executor;

/// The leaf to widen after boot, and to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafRelaxation {
    pub target: RelaxTarget,
    /// The limit runsc created the leaf with (the guest's size).
    pub from: Bytes,
    /// The limit to give it (the pod's bound).
    pub to: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RelaxTarget {
    /// A transient scope unit (`cri-containerd-<id>.scope`).
    SystemdScope { unit: String },
    /// A cgroupfs directory, relative to the cgroup root.
    Cgroup { cgroup: CgroupPath },
}

impl fmt::Display for LeafRelaxation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "on {} from {} to {}", self.target, self.from, self.to)
    }
}

/// What widening the leaf takes, as data: the one step [`LeafRelaxation::run`] executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelaxAction {
    /// `systemctl <set>`, then `systemctl <check>` must print `expect`: systemctl exits 0 on
    /// more than a changed property (help, for one), so the property is read back.
    Systemctl {
        set: Vec<String>,
        check: Vec<String>,
        expect: String,
    },
    /// Write `to` into the cgroupfs leaf's limit file.
    WriteLimit { cgroup: CgroupPath, to: Bytes },
}

impl LeafRelaxation {
    /// The step that widens the leaf. `--runtime`, because the scope itself is transient and a
    /// persistent drop-in would outlive it; `--` before the unit, so no name is ever an option.
    pub fn action(&self) -> RelaxAction {
        match &self.target {
            RelaxTarget::SystemdScope { unit } => {
                let args = |words: &[&str], last: String| {
                    let mut v: Vec<String> = words.iter().map(|w| w.to_string()).collect();
                    v.push(unit.clone());
                    v.push(last);
                    v
                };
                RelaxAction::Systemctl {
                    set: args(
                        &["set-property", "--runtime", "--"],
                        format!("MemoryMax={}", self.to.get()),
                    ),
                    check: vec![
                        "show".to_string(),
                        "--property=MemoryMax".to_string(),
                        "--value".to_string(),
                        "--".to_string(),
                        unit.clone(),
                    ],
                    expect: self.to.get().to_string(),
                }
            }
            RelaxTarget::Cgroup { cgroup } => RelaxAction::WriteLimit {
                cgroup: cgroup.clone(),
                to: self.to,
            },
        }
    }

    /// Widens the leaf: call once `runsc create` has returned and the plan was verified. Every
    /// process goes through `executor` (inside the shim daemon the containerd-shim library
    /// reaps all children, so only its executor learns their exit).
    pub async fn run(&self, tree: &CgroupTree, executor: &dyn Executor) -> Result<()> {
        match self.action() {
            RelaxAction::Systemctl { set, check, expect } => {
                self.systemctl(executor, &set).await?;
                let now = self.systemctl(executor, &check).await?;
                if now.trim() == expect {
                    Ok(())
                } else {
                    // Other: systemctl's answer, told in its words; the caller only logs it and
                    // records it, the sandbox keeping its limit.
                    Err(Error::Other(format!(
                        "systemctl {} did not change the property: systemctl {} prints {:?}, not \
                         {expect}; the sandbox keeps the limit {} on {}",
                        set.join(" "),
                        check.join(" "),
                        truncate(now.trim(), 80),
                        self.from,
                        self.target
                    )))
                }
            }
            RelaxAction::WriteLimit { cgroup, to } => {
                tree.write_memory_limit(&cgroup, to).map_err(Error::from)
            }
        }
    }

    /// Runs `systemctl args` and returns what it printed; fails unless it exits 0.
    async fn systemctl(&self, executor: &dyn Executor, args: &[String]) -> Result<String> {
        let mut cmd = Command::new("systemctl");
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let limit = crate::runsc::executor::limit_for("systemctl");
        let out = executor
            .run_for(cmd, limit)
            .await
            .map_err(|e| Error::io("cannot run systemctl for", self.target.to_string(), e))?;
        if out.status != 0 {
            // Other: systemctl failed and said why on stderr; only its words are known.
            return Err(Error::Other(format!(
                "systemctl {} failed (exit status {}): {}; the sandbox keeps the limit {} on {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.from,
                self.target
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for RelaxTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelaxTarget::SystemdScope { unit } => f.write_str(unit),
            RelaxTarget::Cgroup { cgroup } => cgroup.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runsc::Output;
    use std::sync::Mutex;

    /// Records the commands it is given and answers with a fixed status; `show` prints
    /// `shows`.
    struct FakeExecutor {
        calls: Mutex<Vec<(String, Vec<String>)>>,
        status: i32,
        shows: &'static str,
    }

    impl FakeExecutor {
        fn answering(status: i32) -> Self {
            FakeExecutor {
                calls: Mutex::new(Vec::new()),
                status,
                shows: "335544320\n",
            }
        }

        fn calls(&self) -> Vec<(String, Vec<String>)> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Executor for FakeExecutor {
        async fn run(&self, cmd: Command) -> std::io::Result<Output> {
            let std = cmd.as_std();
            self.calls.lock().unwrap().push((
                std.get_program().to_string_lossy().into_owned(),
                std.get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
            ));
            let shows = std.get_args().next().is_some_and(|a| a == "show");
            Ok(Output {
                status: self.status,
                stdout: if shows {
                    self.shows.as_bytes().to_vec()
                } else {
                    Vec::new()
                },
                stderr: b"Unit cri-containerd-x.scope not found.".to_vec(),
            })
        }
    }

    fn tree(dir: &std::path::Path) -> CgroupTree {
        std::fs::write(dir.join("cgroup.controllers"), "memory\n").unwrap();
        CgroupTree::detect(dir).unwrap()
    }

    #[tokio::test]
    async fn a_scope_is_widened_through_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let relax = LeafRelaxation {
            target: RelaxTarget::SystemdScope {
                unit: "cri-containerd-abc.scope".into(),
            },
            from: Bytes(256 << 20),
            to: Bytes(320 << 20),
        };
        let runner = FakeExecutor::answering(0);
        relax.run(&tree(dir.path()), &runner).await.unwrap();
        assert_eq!(
            runner.calls()[0],
            (
                "systemctl".to_string(),
                vec![
                    "set-property".to_string(),
                    "--runtime".to_string(),
                    "--".to_string(),
                    "cri-containerd-abc.scope".to_string(),
                    "MemoryMax=335544320".to_string()
                ]
            )
        );
        assert_eq!(
            runner.calls()[1].1,
            [
                "show",
                "--property=MemoryMax",
                "--value",
                "--",
                "cri-containerd-abc.scope"
            ]
        );

        let failing = FakeExecutor::answering(5);
        let err = relax
            .run(&tree(dir.path()), &failing)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not found") && err.contains("256 MiB"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_systemctl_that_exits_0_without_changing_the_property_is_an_error() {
        // `systemctl set-property --runtime -h.scope MemoryMax=1` prints help and exits 0.
        let dir = tempfile::tempdir().unwrap();
        let relax = LeafRelaxation {
            target: RelaxTarget::SystemdScope {
                unit: "cri-containerd-abc.scope".into(),
            },
            from: Bytes(256 << 20),
            to: Bytes(320 << 20),
        };
        let runner = FakeExecutor {
            shows: "infinity\n",
            ..FakeExecutor::answering(0)
        };
        let err = relax
            .run(&tree(dir.path()), &runner)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not change") && err.contains("infinity"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_cgroupfs_leaf_is_widened_by_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let t = tree(dir.path());
        std::fs::create_dir_all(dir.path().join("kubepods/pod1/abc")).unwrap();
        std::fs::write(
            dir.path().join("kubepods/pod1/abc/memory.max"),
            "268435456\n",
        )
        .unwrap();
        let relax = LeafRelaxation {
            target: RelaxTarget::Cgroup {
                cgroup: CgroupPath::parse("/kubepods/pod1/abc").unwrap(),
            },
            from: Bytes(256 << 20),
            to: Bytes(320 << 20),
        };
        let runner = FakeExecutor::answering(0);
        relax.run(&t, &runner).await.unwrap();
        assert!(runner.calls().is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("kubepods/pod1/abc/memory.max")).unwrap(),
            "335544320"
        );
    }
}
