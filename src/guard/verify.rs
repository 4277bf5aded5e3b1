//! Rule 5, verification: after `runsc create`, check what runsc really did against the plan.
//!
//! The pid in runsc's pid file is the sandbox process, `runsc-sandbox` (runsc renames argv[0]),
//! for the sandbox and for every container that joins it. Its `/proc/<pid>/cgroup` says where
//! the sandbox sits, its command line carries `--total-memory`, the guest's size.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::Role;
use crate::cgroup::{Bytes, CgroupLayout, CgroupPath, ProcCgroups};
use crate::error::{Error, Result};
use crate::fsread::{
    read_regular_file, read_regular_to_string, Symlinks, PROC_ARGS_MAX, PROC_CGROUP_MAX,
};

const SANDBOX_PROCESS: &str = "runsc-sandbox";

/// What the sandbox process looks like from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub pid: i32,
    /// Its cgroup in the hierarchy that holds memory limits (`0::` in v2, the `memory`
    /// controller's line in v1 and hybrid).
    pub cgroup: Option<String>,
    /// argv[0].
    pub process_name: Option<String>,
    /// The value of `--total-memory` on its command line.
    pub total_memory: Option<Bytes>,
    /// What could not be read or understood.
    pub problems: Vec<String>,
}

impl Observation {
    /// Reads an observation from the text of `/proc/<pid>/cgroup` and the bytes of
    /// `/proc/<pid>/cmdline` (NUL-separated).
    pub fn parse(pid: i32, layout: CgroupLayout, cgroup_file: &str, cmdline: &[u8]) -> Self {
        let mut problems = Vec::new();
        let cgroup = ProcCgroups::parse(cgroup_file)
            .memory(layout)
            .map(str::to_string);
        if cgroup.is_none() {
            problems.push(format!(
                "/proc/{pid}/cgroup has no {} line",
                match layout {
                    CgroupLayout::Unified => "cgroup v2 (0::)",
                    CgroupLayout::Legacy | CgroupLayout::Hybrid => "memory controller",
                }
            ));
        }
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let mut total_memory = None;
        let mut args = argv.iter().skip(1);
        while let Some(arg) = args.next() {
            // Go's flag package takes one or two dashes, and the value after `=` or as the next
            // argument.
            let name = arg.trim_start_matches('-');
            if arg.starts_with('-') && name == "total-memory" {
                total_memory = Some(args.next().cloned().unwrap_or_default());
            } else if let Some(v) = name
                .strip_prefix("total-memory=")
                .filter(|_| arg.starts_with('-'))
            {
                total_memory = Some(v.to_string());
            }
        }
        let total_memory = match total_memory {
            None => {
                problems.push(format!("the command line of {pid} has no --total-memory"));
                None
            }
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Some(Bytes(n)),
                Err(_) => {
                    problems.push(format!("--total-memory {v:?} of {pid} is not a number"));
                    None
                }
            },
        };
        Observation {
            pid,
            cgroup,
            process_name: argv.first().cloned(),
            total_memory,
            problems,
        }
    }
}

/// Reads the sandbox process from `proc_root` (`/proc`, or a fixture directory).
pub fn observe(proc_root: &Path, pid: i32, layout: CgroupLayout) -> Result<Observation> {
    let dir = proc_root.join(pid.to_string());
    let cgroup_file = dir.join("cgroup");
    let cgroup = read_regular_to_string(&cgroup_file, PROC_CGROUP_MAX, Symlinks::Follow)
        .map_err(|e| Error::io("cannot read the sandbox's cgroup", &cgroup_file, e))?;
    let cmdline_file = dir.join("cmdline");
    let cmdline = read_regular_file(&cmdline_file, PROC_ARGS_MAX, Symlinks::Follow)
        .map_err(|e| Error::io("cannot read the sandbox's command line", &cmdline_file, e))?;
    Ok(Observation::parse(pid, layout, &cgroup, &cmdline))
}

/// One comparison between the plan and the observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub expected: String,
    pub found: String,
    /// What to change when it failed.
    pub fix: Option<String>,
}

/// The outcome of verifying a created sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    pub observation: Observation,
    pub checks: Vec<Check>,
}

impl Verification {
    /// The failed checks, each as one sentence: expected, found, fix.
    pub fn violations(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| {
                let mut s = format!("{}: expected {}, found {}", c.name, c.expected, c.found);
                if let Some(fix) = &c.fix {
                    s.push_str(&format!("; {fix}"));
                }
                s
            })
            .collect()
    }

    /// The error Create fails with in enforce mode when a check failed.
    pub fn failure(&self, container_id: &str) -> Option<Error> {
        (!self.passed).then(|| Error::GuardRefused {
            container_id: container_id.to_string(),
            reason: format!(
                "the created sandbox does not match the plan: {}",
                self.violations().join("; ")
            ),
        })
    }
}

/// Compares the sandbox runsc created with the plan: the process is runsc's sandbox, it sits in
/// a leaf under the pod cgroup, and (for the sandbox's creation) the guest's size is the
/// planned one, to the page, and not above the pod's bound.
pub fn verify(plan: &Plan, observation: &Observation) -> Verification {
    let mut checks = Vec::new();
    let config_fix = "run `runsc-guard plan --bundle <bundle>` to see the decision, and check \
                      runsc.toml's [runsc_config] (systemd-cgroup, ignore-cgroups) and that the \
                      kubelet and containerd use the same cgroup driver";

    let name = observation.process_name.as_deref().unwrap_or("nothing");
    checks.push(Check {
        name: "sandbox process".to_string(),
        passed: name.ends_with(SANDBOX_PROCESS),
        expected: format!("pid {} to be {SANDBOX_PROCESS}", observation.pid),
        found: name.to_string(),
        fix: Some("the pid file runsc writes must hold the sandbox's pid".to_string()),
    });

    if let Some(pod) = &plan.pod_cgroup {
        let found = observation
            .cgroup
            .clone()
            .unwrap_or_else(|| "no cgroup".to_string());
        let inside = observation
            .cgroup
            .as_deref()
            .and_then(|c| CgroupPath::parse(c).ok())
            .is_some_and(|c| c.is_strictly_under(pod));
        let expected = match &plan.leaf_cgroup {
            Some(leaf) => format!("a leaf under the pod cgroup {pod} (planned: {leaf})"),
            None => format!("a leaf under the pod cgroup {pod}"),
        };
        checks.push(Check {
            name: "placement".to_string(),
            passed: inside,
            expected,
            found,
            fix: Some(config_fix.to_string()),
        });
    }

    if plan.role == Role::Sandbox {
        let found = observation
            .total_memory
            .map_or("no --total-memory".to_string(), describe);
        if let Some(planned) = plan.total_memory {
            checks.push(Check {
                name: "guest memory".to_string(),
                passed: observation.total_memory.map(Bytes::page_floor)
                    == Some(planned.page_floor()),
                expected: format!("--total-memory {}", describe(planned)),
                found: found.clone(),
                fix: Some(format!(
                    "runsc sized the guest from a different cgroup than planned; {config_fix}"
                )),
            });
        }
        if let Some(bound) = plan.pod_memory_limit {
            checks.push(Check {
                name: "pod bound".to_string(),
                passed: observation.total_memory.is_some_and(|t| t <= bound),
                expected: format!("--total-memory at most the pod's bound {}", describe(bound)),
                found,
                fix: Some(config_fix.to_string()),
            });
        }
    }

    Verification {
        passed: checks.iter().all(|c| c.passed),
        observation: observation.clone(),
        checks,
    }
}

fn describe(b: Bytes) -> String {
    format!("{} ({b})", b.get())
}
