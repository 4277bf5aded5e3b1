//! Widening the sandbox's leaf after boot.
//!
//! runsc fixes the guest's size at create from its leaf's limit. When the guest is sized below
//! the pod's bound (the RuntimeClass overhead case), the leaf keeps that smaller limit until it
//! is raised to the bound: then the sentry and gofers have the room the pod reserves for them.
//! A systemd scope is changed through systemd, so systemd's view and the cgroup stay the same;
//! a cgroupfs leaf by writing its limit file.

use std::fmt;
use std::process::{Command, Output};

use serde::{Deserialize, Serialize};

use crate::cgroup::{Bytes, CgroupPath, CgroupTree};
use crate::error::{Error, Result};

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
        let target = match &self.target {
            RelaxTarget::SystemdScope { unit } => unit.clone(),
            RelaxTarget::Cgroup { cgroup } => cgroup.to_string(),
        };
        write!(f, "on {target} from {} to {}", self.from, self.to)
    }
}

/// Runs a command; injectable so tests never run systemctl.
pub trait CommandRunner {
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output>;
}

/// Runs commands for real.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemCommands;

impl CommandRunner for SystemCommands {
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output> {
        Command::new(program).args(args).output()
    }
}

impl LeafRelaxation {
    /// The systemctl command for a scope: `--runtime`, because the scope itself is transient
    /// and a persistent drop-in would outlive it.
    pub fn systemctl_args(&self) -> Option<Vec<String>> {
        match &self.target {
            RelaxTarget::SystemdScope { unit } => Some(vec![
                "set-property".to_string(),
                "--runtime".to_string(),
                unit.clone(),
                format!("MemoryMax={}", self.to.get()),
            ]),
            RelaxTarget::Cgroup { .. } => None,
        }
    }

    /// Widens the leaf. Call once `runsc create` has returned and the plan was verified.
    pub fn apply(&self, tree: &CgroupTree, runner: &dyn CommandRunner) -> Result<()> {
        match &self.target {
            RelaxTarget::SystemdScope { unit } => {
                let args = self.systemctl_args().unwrap_or_default();
                let output = runner
                    .run("systemctl", &args)
                    .map_err(|e| Error::io("cannot run systemctl for", unit.as_str(), e))?;
                if output.status.success() {
                    Ok(())
                } else {
                    Err(Error::Other(format!(
                        "systemctl {} failed ({}): {}; the sandbox keeps the limit {} on {unit}",
                        args.join(" "),
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim(),
                        self.from
                    )))
                }
            }
            RelaxTarget::Cgroup { cgroup } => tree
                .write_memory_limit(cgroup, self.to)
                .map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    /// Records calls and answers with a fixed status.
    struct FakeRunner {
        calls: RefCell<Vec<(String, Vec<String>)>>,
        status: i32,
    }

    impl CommandRunner for FakeRunner {
        fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output> {
            self.calls
                .borrow_mut()
                .push((program.to_string(), args.to_vec()));
            Ok(Output {
                status: ExitStatus::from_raw(self.status << 8),
                stdout: Vec::new(),
                stderr: b"Unit cri-containerd-x.scope not found.".to_vec(),
            })
        }
    }

    fn tree(dir: &std::path::Path) -> CgroupTree {
        std::fs::write(dir.join("cgroup.controllers"), "memory\n").unwrap();
        CgroupTree::detect(dir).unwrap()
    }

    #[test]
    fn a_scope_is_widened_through_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let relax = LeafRelaxation {
            target: RelaxTarget::SystemdScope {
                unit: "cri-containerd-abc.scope".into(),
            },
            from: Bytes(256 << 20),
            to: Bytes(320 << 20),
        };
        let runner = FakeRunner {
            calls: RefCell::new(Vec::new()),
            status: 0,
        };
        relax.apply(&tree(dir.path()), &runner).unwrap();
        assert_eq!(
            runner.calls.borrow()[0],
            (
                "systemctl".to_string(),
                vec![
                    "set-property".to_string(),
                    "--runtime".to_string(),
                    "cri-containerd-abc.scope".to_string(),
                    "MemoryMax=335544320".to_string()
                ]
            )
        );

        let failing = FakeRunner {
            calls: RefCell::new(Vec::new()),
            status: 5,
        };
        let err = relax
            .apply(&tree(dir.path()), &failing)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not found") && err.contains("256 MiB"),
            "{err}"
        );
    }

    #[test]
    fn a_cgroupfs_leaf_is_widened_by_its_file() {
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
        let runner = FakeRunner {
            calls: RefCell::new(Vec::new()),
            status: 0,
        };
        relax.apply(&t, &runner).unwrap();
        assert!(runner.calls.borrow().is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("kubepods/pod1/abc/memory.max")).unwrap(),
            "335544320"
        );
    }
}
