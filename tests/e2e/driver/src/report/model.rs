//! The evidence model: what one run found, per scenario, as report.json and summary.json carry
//! it. How it reads for people is `markdown.rs`.

use std::fmt::Write as _;

use serde::Serialize;

use super::outcome::{CriContainerState, Outcome, Verdict};
use crate::cgroup::CgroupFacts;
use crate::logs::EaterProgress;
use crate::panics::FirstAttempt;
use crate::pod::Qos;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub t_ms: u64,
    pub what: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PodInfo {
    pub name: String,
    pub uid: String,
    pub qos: Option<Qos>,
    pub cgroup_parent: String,
    pub log_directory: String,
    pub slice_path: String,
    /// Whether the driver created the slice (the refusal scenario deliberately does not).
    pub slice_created: bool,
    pub slice_memory_max_configured: Option<u64>,
    /// `memory.max` of the pod slice as read back after creating it.
    pub slice_memory_max_read: Option<String>,
    pub sandbox_memory_limit: Option<u64>,
    pub overhead_memory: Option<u64>,
    pub container_memory_limit: Option<u64>,
}

/// From PodSandboxStatus (verbose): what containerd made of the pod.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SandboxInfo {
    pub state: String,
    pub pid: Option<u64>,
    pub cgroups_path: Option<String>,
    /// containerd's `io.kubernetes.cri.sandbox-memory` annotation in the sandbox's OCI spec.
    pub sandbox_memory_annotation: Option<String>,
    pub runtime_type: Option<String>,
    pub error: Option<String>,
}

/// The `runsc-sandbox` process and where it sits.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SandboxProc {
    pub pid: u32,
    pub total_memory: Option<u64>,
    pub total_memory_raw: Option<String>,
    pub total_host_memory: Option<String>,
    pub cgroup: Option<String>,
    pub under_pod_slice: bool,
    pub cgroup_is_leaf: Option<bool>,
    pub cgroup_memory_max: Option<String>,
    pub argv: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ContainerFinal {
    pub state: CriContainerState,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
}

impl ContainerFinal {
    pub fn oom_killed(&self) -> bool {
        self.reason == "OOMKilled"
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ExecRecord {
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    pub stdout_head: String,
    pub stderr_head: String,
    pub error: Option<String>,
    /// `MemTotal` the container saw in its own /proc/meminfo (the guest's view under gVisor).
    pub guest_mem_total_kib: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsRecord {
    pub working_set_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub error: Option<String>,
    /// `cpu.usage_core_nano_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_usage_core_nanos: Option<u64>,
    /// ListContainerStats only: how many entries the answer had, and whether the container was
    /// one of them (its values are then the ones above).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed_entries: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_listed: Option<bool>,
}

/// One container of a pod whose containers exit at once.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExitCaseRecord {
    pub name: String,
    pub command: Vec<String>,
    pub want_exit_code: i32,
    pub container_id: Option<String>,
    pub final_status: Option<ContainerFinal>,
    pub start_error: Option<String>,
}

/// What `runsc-guard doctor --json` said while the pod ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DoctorRecord {
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    /// Running it failed (no binary, no answer): the reason.
    pub error: Option<String>,
    /// Its JSON could not be read: the reason.
    pub parse_error: Option<String>,
    /// The findings that are not `ok`.
    pub findings: Vec<DoctorFinding>,
    /// Whether the output names the pod as `<namespace>/<name>`.
    pub names_pod: bool,
    /// The pod as the doctor should name it.
    pub pod: String,
    /// Where its whole output was kept, relative to the results.
    pub output_file: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DoctorFinding {
    pub area: String,
    pub check: String,
    pub severity: String,
    pub summary: String,
}

/// The pod sandbox made with `ctr` whose cgroupsPath names a slice as its container name.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostileRecord {
    pub cgroups_path: String,
    pub container_id: String,
    /// What `ctr run` said when it failed (the guard's refusal, or anything else).
    pub run_error: Option<String>,
    /// `memory.max` of kubepods.slice before and after, and systemd's MemoryMax of it.
    pub kubepods_memory_max_before: Option<String>,
    pub kubepods_memory_max_after: Option<String>,
    pub kubepods_systemd_before: Option<String>,
    pub kubepods_systemd_after: Option<String>,
    /// The scope runsc makes (`<prefix>-<name>.scope`), its cgroup and `memory.max` while
    /// the sandbox ran.
    pub scope_unit: String,
    pub scope_cgroup: String,
    pub scope_memory_max: Option<String>,
    /// Where the planned-by-mistake unit (the name itself) would sit, and whether it existed.
    pub name_cgroup: String,
    pub name_cgroup_existed: bool,
    /// What the guard's record or the shim log says about widening.
    pub guard_says: Vec<String>,
    /// Units still loaded after the container was deleted.
    pub scope_units_left: Vec<String>,
}

/// Whatever of a pod is still there after StopPodSandbox + RemovePodSandbox.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Leftovers {
    pub processes: Vec<String>,
    pub cgroups: Vec<String>,
    pub scope_units: Vec<String>,
    pub mounts: Vec<String>,
    pub bundle_dirs: Vec<String>,
    pub shim_sockets: Vec<String>,
    pub sandboxes_listed: Vec<String>,
}

impl Leftovers {
    pub fn is_clean(&self) -> bool {
        self.processes.is_empty()
            && self.cgroups.is_empty()
            && self.scope_units.is_empty()
            && self.mounts.is_empty()
            && self.bundle_dirs.is_empty()
            && self.shim_sockets.is_empty()
            && self.sandboxes_listed.is_empty()
    }

    pub fn describe(&self) -> String {
        if self.is_clean() {
            return "nothing left".to_string();
        }
        let mut parts = Vec::new();
        for (what, v) in [
            ("processes", &self.processes),
            ("cgroups", &self.cgroups),
            ("scope units", &self.scope_units),
            ("mounts", &self.mounts),
            ("bundle dirs", &self.bundle_dirs),
            ("shim sockets", &self.shim_sockets),
            ("sandboxes still listed", &self.sandboxes_listed),
        ] {
            if !v.is_empty() {
                parts.push(format!("{what}: {}", v.join(", ")));
            }
        }
        parts.join("; ")
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeHealth {
    pub cri_answers: bool,
    pub cri_error: Option<String>,
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    pub pod: Option<PodInfo>,
    pub sandbox_id: Option<String>,
    pub container_id: Option<String>,
    pub run_pod_sandbox_error: Option<String>,
    pub sandbox: Option<SandboxInfo>,
    pub runsc_sandbox: Option<SandboxProc>,
    /// The container's pid as containerd reports it (under gVisor: the sandbox's pid).
    pub container_pid: Option<u64>,
    pub container_cgroup: Option<String>,
    pub container_cgroup_under_pod: Option<bool>,
    pub container_final: Option<ContainerFinal>,
    pub eater: Option<EaterProgress>,
    /// (milliseconds since StartContainer, MiB) each time the eater reported more.
    pub eater_timeline: Vec<(u64, u64)>,
    pub log_tail: Vec<String>,
    pub pod_slice_end: Option<CgroupFacts>,
    pub sandbox_cgroup_end: Option<CgroupFacts>,
    pub sandbox_alive_at_end: Option<bool>,
    /// The most memory the sandbox's own cgroup was seen holding (memory.peak where the kernel
    /// has it, else the largest memory.current seen): progress the log may not show.
    pub sandbox_cgroup_memory_max_bytes: Option<u64>,
    /// StartContainer never returned while the pod lived.
    pub start_blocked: bool,
    pub exec: Option<ExecRecord>,
    pub stats: Option<StatsRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_stats: Option<StatsRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_cases: Vec<ExitCaseRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doctor: Option<DoctorRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostile: Option<HostileRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_ops: Option<super::PodOpsRecord>,
    /// ExecSync, Exec and Attach exchanges (the pod-complete scenarios).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchanges: Vec<super::ExchangeRecord>,
    /// Shim processes per pod (the grouping scenario).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groupings: Vec<super::GroupingRecord>,
    pub leftovers: Option<Leftovers>,
    pub node_after: Option<NodeHealth>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcRss {
    pub pid: u32,
    pub name: String,
    pub rss_kib: Option<u64>,
}

/// Recorded, never asserted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurements {
    pub shims: Vec<ProcRss>,
    /// Sum of the pod's shim RSS, the largest seen while the pod ran.
    pub shim_rss_kib_max: Option<u64>,
    pub runsc: Vec<ProcRss>,
    pub run_pod_sandbox_ms: Option<u64>,
    pub create_container_ms: Option<u64>,
    pub start_container_ms: Option<u64>,
    /// From sending RunPodSandbox to ContainerStatus saying RUNNING.
    pub to_running_ms: Option<u64>,
    pub stop_pod_sandbox_ms: Option<u64>,
    pub remove_pod_sandbox_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub handler: String,
    pub description: String,
    pub passed: bool,
    pub outcome: Outcome,
    /// Scenario-specific reading of the evidence, e.g. `escaped` / `bounded`.
    pub verdict: Option<Verdict>,
    pub error: Option<String>,
    pub checks: Vec<Check>,
    pub evidence: Evidence,
    pub measurements: Measurements,
    pub steps: Vec<Step>,
    pub duration_ms: u64,
    /// The first attempt failed with a runsc panic in its sandbox's boot log and this report is
    /// of the second, run from scratch (`first_attempt` says what the first found).
    pub retried: bool,
    pub first_attempt: Option<FirstAttempt>,
}

impl ScenarioReport {
    pub fn failed_checks(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// One line for stdout.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} {} [{}]",
            if self.passed { "PASS" } else { "FAIL" },
            self.name,
            self.handler
        );
        if let Some(v) = &self.verdict {
            let _ = write!(s, " verdict={v}");
        }
        if self.retried {
            s.push_str(" (retried after a runsc panic)");
        }
        if let Some(e) = &self.error {
            let _ = write!(s, " error: {}", one_line(e, 200));
        }
        // Each failed check with its detail: CI keeps only this line of a failed run, and a
        // check's name alone ("nothing-left-behind") does not say what to look at.
        let failed: Vec<String> = self
            .failed_checks()
            .iter()
            .map(|c| format!("{} ({})", c.name, one_line(&c.detail, 400)))
            .collect();
        if !failed.is_empty() {
            let _ = write!(s, " failed checks: {}", failed.join("; "));
        }
        s
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub kernel: Option<String>,
    pub cri_runtime: Option<String>,
    pub cri_runtime_version: Option<String>,
    pub runsc_version: Option<String>,
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib_before: Option<u64>,
    pub mem_available_kib_after: Option<u64>,
    pub swap_total_kib: Option<u64>,
    pub setup_problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub suite: String,
    pub driver_version: String,
    pub started_unix: u64,
    pub duration_ms: u64,
    pub environment: Environment,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryEntry {
    pub name: String,
    pub handler: String,
    pub passed: bool,
    pub outcome: Outcome,
    pub verdict: Option<Verdict>,
    pub error: Option<String>,
    pub failed_checks: Vec<String>,
    pub retried: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub suite: String,
    pub passed: usize,
    pub failed: usize,
    /// Scenarios run a second time after a runsc panic (counted by their second outcome).
    pub retried: usize,
    pub scenarios: Vec<SummaryEntry>,
}

impl Summary {
    pub fn of(suite: &str, scenarios: &[ScenarioReport]) -> Self {
        let passed = scenarios.iter().filter(|s| s.passed).count();
        Summary {
            suite: suite.to_string(),
            passed,
            failed: scenarios.len() - passed,
            retried: scenarios.iter().filter(|s| s.retried).count(),
            scenarios: scenarios
                .iter()
                .map(|s| SummaryEntry {
                    name: s.name.clone(),
                    handler: s.handler.clone(),
                    passed: s.passed,
                    outcome: s.outcome,
                    verdict: s.verdict,
                    error: s.error.clone(),
                    failed_checks: s.failed_checks().iter().map(|c| c.name.clone()).collect(),
                    retried: s.retried,
                })
                .collect(),
        }
    }

    /// The closing line of stdout.
    pub fn closing_line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// `s` on one line (control characters become spaces), cut after `max` characters.
pub(super) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn scenario(name: &str, passed: bool) -> ScenarioReport {
        ScenarioReport {
            name: name.into(),
            handler: "runsc".into(),
            passed,
            outcome: if passed {
                Outcome::Passed
            } else {
                Outcome::Failed
            },
            checks: vec![Check {
                name: "exit-code".into(),
                ok: passed,
                detail: "exit 3 | wanted 3".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn summary_counts() {
        let s = Summary::of(
            "bookworm",
            &[
                scenario("a", true),
                scenario("b", false),
                scenario("c", true),
            ],
        );
        assert_eq!(s.passed, 2);
        assert_eq!(s.failed, 1);
        assert_eq!(s.closing_line(), "2 passed, 1 failed");
        assert_eq!(s.scenarios[1].failed_checks, vec!["exit-code".to_string()]);
        let json = serde_json::to_value(&s).expect("serialises");
        assert_eq!(json["suite"], "bookworm");
        assert_eq!(json["scenarios"][0]["passed"], true);
        assert_eq!(Summary::of("x", &[]).closing_line(), "0 passed, 0 failed");
    }

    #[test]
    fn leftovers_description() {
        let mut l = Leftovers::default();
        assert!(l.is_clean());
        l.processes.push("123 runsc-gofer".into());
        assert!(!l.is_clean());
        assert!(l.describe().contains("processes: 123 runsc-gofer"));
    }
}
