//! The doctor's table, for people. `--json` serializes the [`Report`] itself.

use std::fmt::Write;

use super::{Area, Report, SandboxFacts, Severity};

/// The report as a table: one row per finding, what to do under each warning and failure, and
/// the running sandboxes with their verdict.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    headline(report, &mut out);
    findings(report, &mut out);
    sandboxes(report, &mut out);
    out
}

/// The status and the count of each severity.
fn headline(report: &Report, out: &mut String) {
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "runsc-guard doctor: {} ({} ok, {} warnings, {} failures; exit {})\n",
        match report.status {
            Severity::Ok => "all well",
            Severity::Warn => "warnings",
            Severity::Fail => "FAILURES",
        },
        count(Severity::Ok),
        count(Severity::Warn),
        count(Severity::Fail),
        report.exit_code
    );
}

/// One row per finding, a blank line between areas, what to do under each problem.
fn findings(report: &Report, out: &mut String) {
    let width = report
        .findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(5)
        .clamp(5, 48);
    let _ = writeln!(out, "{:<6}  {:<width$}  finding", "status", "check");
    let _ = writeln!(out, "{:-<6}  {:-<width$}  {:-<7}", "", "", "");
    let mut area = None;
    for f in &report.findings {
        if area.is_some() && area != Some(f.area) {
            out.push('\n');
        }
        area = Some(f.area);
        let _ = writeln!(
            out,
            "{:<6}  {:<width$}  {}",
            f.severity.to_string(),
            f.check,
            f.summary
        );
        if let Some(fix) = f.fix.as_ref().filter(|_| f.severity != Severity::Ok) {
            let _ = writeln!(out, "{:<6}  {:<width$}  what to do: {fix}", "", "");
        }
    }
}

const SANDBOX_HEADER: [&str; 6] = [
    "pid",
    "pod",
    "cgroup",
    "pod limit",
    "--total-memory",
    "verdict",
];

/// The running sandboxes, one row each with the worst of its findings.
fn sandboxes(report: &Report, out: &mut String) {
    let sandboxes = &report.node.sandboxes;
    if sandboxes.is_empty() {
        return;
    }
    let rows: Vec<[String; 6]> = sandboxes.iter().map(|s| sandbox_row(report, s)).collect();
    let header = SANDBOX_HEADER;
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(out, "\nsandboxes:");
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    let _ = writeln!(
        out,
        "{}",
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())
    );
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
}

fn sandbox_row(report: &Report, s: &SandboxFacts) -> [String; 6] {
    let id = s
        .container_id
        .clone()
        .unwrap_or_else(|| format!("pid{}", s.pid));
    let verdict = report
        .findings
        .iter()
        .filter(|f| f.area == Area::Sandbox && f.check.starts_with(&format!("sandbox.{id}.")))
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok);
    [
        s.pid.to_string(),
        s.pod.label().unwrap_or_else(|| "-".to_string()),
        s.observation
            .cgroup
            .clone()
            .unwrap_or_else(|| "?".to_string()),
        s.pod_limit
            .as_ref()
            .map_or("-".to_string(), |l| l.limit().to_string()),
        s.observation
            .total_memory
            .map_or("?".to_string(), |t| t.to_string()),
        verdict.to_string(),
    ]
}
