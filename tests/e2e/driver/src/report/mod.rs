//! What a run found and the three files written from it: report.json with everything and
//! summary.json for the runner (both the evidence model, `model.rs`, serialised), and report.md
//! for people (`markdown.rs`).

use std::fs;
use std::path::Path;

use anyhow::Context;

#[cfg(test)]
pub mod fixture;
mod markdown;
mod model;
mod outcome;
mod pod_complete;
mod pod_ops;

pub use markdown::markdown;
pub use model::*;
pub use outcome::{CriContainerState, Outcome, Verdict};
pub use pod_complete::{ExchangeRecord, GroupingRecord};
pub use pod_ops::{PodOpsRecord, RestartRecord, UpdateRecord};

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

    /// report.json, summary.json and the stdout lines of a report with every field set, byte for byte what the
    /// driver wrote before the outcomes were typed (demo-table.py and run.sh read them).
    #[test]
    fn json_files_of_a_fixed_report() {
        let report = fixture::report();
        let dir = std::env::temp_dir().join(format!("e2e-driver-report-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let summary = write_all(&dir, &report).expect("writes");
        let read = |name: &str| fs::read_to_string(dir.join(name)).expect("written");
        assert_eq!(read("report.json"), include_str!("testdata/report.json"));
        assert_eq!(read("summary.json"), include_str!("testdata/summary.json"));
        let lines: Vec<String> = report.scenarios.iter().map(|s| s.line()).collect();
        assert_eq!(
            format!("{}\n{}\n", lines.join("\n"), summary.closing_line()),
            include_str!("testdata/stdout.txt")
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
