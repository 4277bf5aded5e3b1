//! What a run found: the per-scenario records and the three files written from them
//! (report.md for people, report.json with everything, summary.json for the runner).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::cgroup::CgroupFacts;
use crate::logs::EaterProgress;
use crate::panics::FirstAttempt;
use crate::pod::{Qos, MIB};

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

#[derive(Clone, Debug, Default, Serialize)]
pub struct ContainerFinal {
    pub state: String,
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
    /// `passed`, `failed`, or `timeout` (the scenario's own time limit hit).
    pub outcome: String,
    /// Scenario-specific reading of the evidence, e.g. `escaped` / `bounded`.
    pub verdict: Option<String>,
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
        let failed: Vec<&str> = self
            .failed_checks()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        if !failed.is_empty() {
            let _ = write!(s, " failed checks: {}", failed.join(", "));
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
    pub outcome: String,
    pub verdict: Option<String>,
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
                    outcome: s.outcome.clone(),
                    verdict: s.verdict.clone(),
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

fn one_line(s: &str, max: usize) -> String {
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

/// Markdown table cells must not contain `|` or newlines.
fn cell(s: &str) -> String {
    one_line(s, 160).replace('|', "\\|")
}

fn bytes_mib(b: u64) -> String {
    if b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    }
}

fn opt_ms(ms: Option<u64>) -> String {
    ms.map(|m| format!("{:.1} s", m as f64 / 1000.0))
        .unwrap_or_else(|| "–".to_string())
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "–",
    }
}

/// The cells of one row of the human table.
fn row(s: &ScenarioReport) -> Vec<String> {
    let e = &s.evidence;
    let outcome = match &s.verdict {
        Some(v) => format!("{} ({v})", s.outcome),
        None => s.outcome.clone(),
    };
    let outcome = if s.retried {
        format!("{outcome}, retried")
    } else {
        outcome
    };
    let (cgroup, under, leaf) = match &e.runsc_sandbox {
        Some(p) => (
            p.cgroup.clone().unwrap_or_else(|| "?".into()),
            Some(p.under_pod_slice),
            p.cgroup_is_leaf,
        ),
        None => (
            e.container_cgroup.clone().unwrap_or_else(|| "–".into()),
            e.container_cgroup_under_pod,
            None,
        ),
    };
    let total_memory = e
        .runsc_sandbox
        .as_ref()
        .and_then(|p| {
            p.total_memory
                .map(|t| format!("{t} ({})", bytes_mib(t)))
                .or_else(|| p.total_memory_raw.clone())
        })
        .unwrap_or_else(|| "–".into());
    let pod_limit = e
        .pod
        .as_ref()
        .map(|p| {
            let slice = p
                .slice_memory_max_configured
                .map(bytes_mib)
                .unwrap_or_else(|| "none".into());
            match p.container_memory_limit {
                Some(c) => format!("slice {slice}, container {}", bytes_mib(c)),
                None => format!("slice {slice}"),
            }
        })
        .unwrap_or_else(|| "–".into());
    let eater = e
        .eater
        .as_ref()
        .map(|p| match (p.max_mib(), p.done()) {
            (Some(m), true) => format!("done {m} MiB"),
            (Some(m), false) => format!("{m} MiB"),
            (None, _) if p.started => "started, 0 MiB".into(),
            (None, _) => "no output".into(),
        })
        .unwrap_or_else(|| "–".into());
    let eater = match e.sandbox_cgroup_memory_max_bytes {
        Some(b) => format!("{eater} (sandbox cgroup max {})", bytes_mib(b)),
        None => eater,
    };
    let oom = match &e.container_final {
        Some(c) => {
            let kills = e
                .pod_slice_end
                .as_ref()
                .and_then(|f| f.oom_kills())
                .map(|k| format!(", slice oom_kill {k}"))
                .unwrap_or_default();
            format!(
                "{} (exit {}, {}{kills})",
                if c.oom_killed() { "yes" } else { "no" },
                c.exit_code,
                if c.reason.is_empty() {
                    c.state.as_str()
                } else {
                    c.reason.as_str()
                }
            )
        }
        None => "–".into(),
    };
    let m = &s.measurements;
    let measurements = format!(
        "shim RSS {}; to running {}",
        m.shim_rss_kib_max
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "–".into()),
        opt_ms(m.to_running_ms)
    );
    vec![
        s.name.clone(),
        s.handler.clone(),
        outcome,
        cgroup,
        yes_no(under).to_string(),
        yes_no(leaf).to_string(),
        total_memory,
        pod_limit,
        eater,
        oom,
        measurements,
    ]
}

pub fn markdown(report: &Report) -> String {
    let summary = Summary::of(&report.suite, &report.scenarios);
    let env = &report.environment;
    let mut md = String::new();
    let _ = writeln!(md, "# e2e report: suite `{}`\n", report.suite);
    let _ = writeln!(
        md,
        "{} — kernel {}, {} {}, runsc {}, MemTotal {} kB, duration {}\n",
        summary.closing_line(),
        env.kernel.as_deref().unwrap_or("?"),
        env.cri_runtime.as_deref().unwrap_or("?"),
        env.cri_runtime_version.as_deref().unwrap_or("?"),
        env.runsc_version.as_deref().map(cell).unwrap_or("?".into()),
        env.mem_total_kib
            .map(|k| k.to_string())
            .unwrap_or("?".into()),
        opt_ms(Some(report.duration_ms)),
    );
    let header = [
        "scenario",
        "handler",
        "outcome",
        "sandbox cgroup",
        "under pod?",
        "leaf?",
        "total-memory",
        "pod limit",
        "eater progress",
        "OOM-killed",
        "measurements",
    ];
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(header.len()));
    for s in &report.scenarios {
        let cells: Vec<String> = row(s).iter().map(|c| cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    for s in &report.scenarios {
        let _ = writeln!(md, "\n## {} ({})\n\n{}\n", s.name, s.handler, s.description);
        if let Some(f) = &s.first_attempt {
            let _ = writeln!(
                md,
                "- retried: attempt 1 ended `{}` with a runsc panic in {} (line {}): {}{}",
                f.outcome,
                f.panic.file.display(),
                f.panic.line_no,
                cell(&f.panic.line),
                f.pod_logs
                    .as_deref()
                    .map(|p| format!("; its pod logs are in {p}"))
                    .unwrap_or_default()
            );
            if let Some(e) = &f.error {
                let _ = writeln!(md, "  - attempt 1 error: {}", cell(e));
            }
            for c in &f.failed_checks {
                let _ = writeln!(md, "  - attempt 1 failed check: {}", cell(c));
            }
        }
        if let Some(e) = &s.error {
            let _ = writeln!(md, "- error: {}", cell(e));
        }
        for c in &s.checks {
            let _ = writeln!(
                md,
                "- [{}] {}: {}",
                if c.ok { "x" } else { " " },
                c.name,
                cell(&c.detail)
            );
        }
        let e = &s.evidence;
        if let Some(x) = &e.exec {
            let what = match (&x.error, x.exit_code) {
                (Some(err), _) => format!("failed: {err}"),
                (None, Some(code)) => format!("exit {code}"),
                (None, None) => "no answer".into(),
            };
            let _ = writeln!(md, "- ExecSync {:?}: {}", x.command, cell(&what));
        }
        if let Some(st) = &e.stats {
            let what = match &st.error {
                Some(err) => format!("failed: {err}"),
                None => format!(
                    "working set {:?} B, usage {:?} B",
                    st.working_set_bytes, st.usage_bytes
                ),
            };
            let _ = writeln!(md, "- ContainerStats: {}", cell(&what));
        }
        let m = &s.measurements;
        if m.run_pod_sandbox_ms.is_some() {
            let _ = writeln!(
                md,
                "- times: RunPodSandbox {}, CreateContainer {}, StartContainer {}, to RUNNING {}, \
                 StopPodSandbox {}, RemovePodSandbox {}",
                opt_ms(m.run_pod_sandbox_ms),
                opt_ms(m.create_container_ms),
                opt_ms(m.start_container_ms),
                opt_ms(m.to_running_ms),
                opt_ms(m.stop_pod_sandbox_ms),
                opt_ms(m.remove_pod_sandbox_ms)
            );
        }
        if !m.shims.is_empty() || !m.runsc.is_empty() {
            let list = |v: &[ProcRss]| {
                v.iter()
                    .map(|p| {
                        format!(
                            "{} {} KiB",
                            p.name,
                            p.rss_kib.map(|k| k.to_string()).unwrap_or("?".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                md,
                "- RSS: shims [{}]; runsc [{}]",
                list(&m.shims),
                list(&m.runsc)
            );
        }
        for n in &e.notes {
            let _ = writeln!(md, "- note: {}", cell(n));
        }
    }
    if !env.setup_problems.is_empty() {
        let _ = writeln!(md, "\n## Setup problems\n");
        for p in &env.setup_problems {
            let _ = writeln!(md, "- {}", cell(p));
        }
    }
    md
}

pub fn write_all(dir: &Path, report: &Report) -> anyhow::Result<Summary> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating the results directory {}", dir.display()))?;
    let summary = Summary::of(&report.suite, &report.scenarios);
    let write = |name: &str, content: String| {
        let p = dir.join(name);
        fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
    };
    write("report.json", serde_json::to_string_pretty(report)?)?;
    write("summary.json", serde_json::to_string_pretty(&summary)?)?;
    write("report.md", markdown(report))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str, passed: bool) -> ScenarioReport {
        ScenarioReport {
            name: name.into(),
            handler: "runsc".into(),
            passed,
            outcome: if passed { "passed" } else { "failed" }.into(),
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
    fn markdown_escapes_cells_and_lists_checks() {
        let report = Report {
            suite: "sid".into(),
            driver_version: "0".into(),
            started_unix: 0,
            duration_ms: 1500,
            environment: Environment {
                kernel: Some("6.1".into()),
                cri_runtime: Some("containerd".into()),
                cri_runtime_version: Some("2.1.9".into()),
                runsc_version: None,
                mem_total_kib: Some(4000000),
                mem_available_kib_before: None,
                mem_available_kib_after: None,
                swap_total_kib: None,
                setup_problems: vec![],
            },
            scenarios: vec![{
                let mut s = scenario("busybox-exit", false);
                s.evidence.exec = Some(ExecRecord {
                    command: vec!["/eater".into()],
                    error: Some("Exec is not supported".into()),
                    ..Default::default()
                });
                s.measurements.shims.push(ProcRss {
                    pid: 1,
                    name: "containerd-shim-runsc-v1".into(),
                    rss_kib: Some(7648),
                });
                s
            }],
        };
        let md = markdown(&report);
        assert!(md.contains("- ExecSync [\"/eater\"]: failed: Exec is not supported"));
        assert!(md.contains("- RSS: shims [containerd-shim-runsc-v1 7648 KiB]; runsc []"));
        assert!(md.contains("0 passed, 1 failed"));
        assert!(md.contains("| busybox-exit | runsc | failed |"));
        assert!(md.contains("exit 3 \\| wanted 3"));
    }

    #[test]
    fn retried_scenario_in_markdown_line_and_summary() {
        let mut s = scenario("busybox-exit", true);
        s.retried = true;
        s.first_attempt = Some(crate::panics::FirstAttempt {
            outcome: "timeout".into(),
            error: Some("the scenario did not finish".into()),
            failed_checks: vec!["exit-code: no exit code".into()],
            sandbox_id: None,
            panic: crate::panics::PanicInfo {
                file: "/var/log/runsc/runsc.log.1.boot.txt".into(),
                line_no: 7,
                line: "panic: running on goroutine 1".into(),
            },
            duration_ms: 1,
            pod_logs: Some("pods/busybox-exit.attempt1".into()),
        });
        let report = Report {
            suite: "sid".into(),
            driver_version: "0".into(),
            started_unix: 0,
            duration_ms: 1,
            environment: Environment {
                kernel: None,
                cri_runtime: None,
                cri_runtime_version: None,
                runsc_version: None,
                mem_total_kib: None,
                mem_available_kib_before: None,
                mem_available_kib_after: None,
                swap_total_kib: None,
                setup_problems: vec![],
            },
            scenarios: vec![s.clone(), scenario("other", false)],
        };
        let md = markdown(&report);
        assert!(
            md.contains("| busybox-exit | runsc | passed, retried |"),
            "{md}"
        );
        assert!(md.contains(
            "- retried: attempt 1 ended `timeout` with a runsc panic in \
             /var/log/runsc/runsc.log.1.boot.txt (line 7): panic: running on goroutine 1; \
             its pod logs are in pods/busybox-exit.attempt1"
        ));
        assert!(md.contains("  - attempt 1 failed check: exit-code: no exit code"));
        assert!(s.line().contains("(retried after a runsc panic)"));
        let sum = Summary::of("sid", &report.scenarios);
        assert_eq!(sum.retried, 1);
        assert!(sum.scenarios[0].retried && !sum.scenarios[1].retried);
        assert_eq!(sum.closing_line(), "1 passed, 1 failed");
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
