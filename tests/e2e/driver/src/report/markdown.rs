//! report.md: the evidence model rendered for people, one table row per scenario and then a
//! section each. Pure: the same report always renders to the same text.

use std::fmt::Write as _;

use super::model::{one_line, Evidence, Measurements, ProcRss, Report, ScenarioReport, Summary};
use crate::panics::FirstAttempt;
use crate::pod::MIB;

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

/// The outcome cell: `failed (escaped)`, `passed, retried`.
fn outcome_cell(s: &ScenarioReport) -> String {
    let outcome = match &s.verdict {
        Some(v) => format!("{} ({v})", s.outcome),
        None => s.outcome.to_string(),
    };
    if s.retried {
        format!("{outcome}, retried")
    } else {
        outcome
    }
}

/// Where the sandbox (else the container) sits: its cgroup, under the pod?, a leaf?
fn placement_cells(e: &Evidence) -> (String, Option<bool>, Option<bool>) {
    match &e.runsc_sandbox {
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
    }
}

fn total_memory_cell(e: &Evidence) -> String {
    e.runsc_sandbox
        .as_ref()
        .and_then(|p| {
            p.total_memory
                .map(|t| format!("{t} ({})", bytes_mib(t)))
                .or_else(|| p.total_memory_raw.clone())
        })
        .unwrap_or_else(|| "–".into())
}

fn pod_limit_cell(e: &Evidence) -> String {
    e.pod
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
        .unwrap_or_else(|| "–".into())
}

fn eater_cell(e: &Evidence) -> String {
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
    match e.sandbox_cgroup_memory_max_bytes {
        Some(b) => format!("{eater} (sandbox cgroup max {})", bytes_mib(b)),
        None => eater,
    }
}

fn oom_cell(e: &Evidence) -> String {
    match &e.container_final {
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
                    c.state.to_string()
                } else {
                    c.reason.clone()
                }
            )
        }
        None => "–".into(),
    }
}

fn measurements_cell(m: &Measurements) -> String {
    format!(
        "shim RSS {}; to running {}",
        m.shim_rss_kib_max
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "–".into()),
        opt_ms(m.to_running_ms)
    )
}

/// The cells of one row of the human table.
fn row(s: &ScenarioReport) -> Vec<String> {
    let e = &s.evidence;
    let (cgroup, under, leaf) = placement_cells(e);
    vec![
        s.name.clone(),
        s.handler.clone(),
        outcome_cell(s),
        cgroup,
        yes_no(under).to_string(),
        yes_no(leaf).to_string(),
        total_memory_cell(e),
        pod_limit_cell(e),
        eater_cell(e),
        oom_cell(e),
        measurements_cell(&s.measurements),
    ]
}

/// report.md for one run.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    heading(&mut md, report);
    table(&mut md, &report.scenarios);
    for s in &report.scenarios {
        section(&mut md, s);
    }
    let env = &report.environment;
    if !env.setup_problems.is_empty() {
        let _ = writeln!(md, "\n## Setup problems\n");
        for p in &env.setup_problems {
            let _ = writeln!(md, "- {}", cell(p));
        }
    }
    md
}

/// The title and the line of counts and environment under it.
fn heading(md: &mut String, report: &Report) {
    let summary = Summary::of(&report.suite, &report.scenarios);
    let env = &report.environment;
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
}

fn table(md: &mut String, scenarios: &[ScenarioReport]) {
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
    for s in scenarios {
        let cells: Vec<String> = row(s).iter().map(|c| cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
}

/// One scenario's section: the first attempt if retried, the error, the checks, what ExecSync
/// and ContainerStats said, times and RSS, the notes.
fn section(md: &mut String, s: &ScenarioReport) {
    let _ = writeln!(md, "\n## {} ({})\n\n{}\n", s.name, s.handler, s.description);
    if let Some(f) = &s.first_attempt {
        first_attempt(md, f);
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
    extra_evidence(md, e);
    measurements(md, &s.measurements);
    for n in &e.notes {
        let _ = writeln!(md, "- note: {}", cell(n));
    }
}

/// The evidence only some scenarios gather: ListContainerStats, exit codes, the doctor, the
/// ctr-made sandbox.
fn extra_evidence(md: &mut String, e: &Evidence) {
    if let Some(st) = &e.list_stats {
        let what = match &st.error {
            Some(err) => format!("failed: {err}"),
            None => format!(
                "{:?} entries, container listed {:?}, working set {:?} B, CPU {:?} ns",
                st.listed_entries,
                st.container_listed,
                st.working_set_bytes,
                st.cpu_usage_core_nanos
            ),
        };
        let _ = writeln!(md, "- ListContainerStats: {}", cell(&what));
    }
    for c in &e.exit_cases {
        let got = c
            .final_status
            .as_ref()
            .map_or("no status".to_string(), |f| {
                format!("{} exit {}", f.state, f.exit_code)
            });
        let _ = writeln!(
            md,
            "- container {} {:?}: {} (want {})",
            c.name,
            c.command,
            cell(&got),
            c.want_exit_code
        );
    }
    if let Some(d) = &e.doctor {
        let _ = writeln!(
            md,
            "- doctor: exit {:?}, names {}: {}, output {}",
            d.exit_code,
            d.pod,
            d.names_pod,
            d.output_file.as_deref().unwrap_or("-")
        );
        for f in &d.findings {
            let _ = writeln!(
                md,
                "  - {} {}: {}",
                f.severity,
                cell(&f.check),
                cell(&f.summary)
            );
        }
    }
    if let Some(h) = &e.hostile {
        let _ = writeln!(
            md,
            "- ctr sandbox {}: {}; scope {} memory.max {:?}; kubepods.slice memory.max {:?} -> \
             {:?}",
            cell(&h.cgroups_path),
            cell(h.run_error.as_deref().unwrap_or("ran")),
            h.scope_unit,
            h.scope_memory_max,
            h.kubepods_memory_max_before,
            h.kubepods_memory_max_after
        );
    }
}

fn first_attempt(md: &mut String, f: &FirstAttempt) {
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

fn measurements(md: &mut String, m: &Measurements) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;
    use crate::report::model::tests::scenario;
    use crate::report::{Environment, ExecRecord, Outcome};

    /// The whole of report.md for a report with every field set, as the driver rendered it
    /// before the model and its rendering were separated.
    #[test]
    fn renders_a_fixed_report() {
        assert_eq!(
            markdown(&fixture::report()),
            include_str!("testdata/report.md")
        );
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
            outcome: Outcome::Timeout,
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
}
