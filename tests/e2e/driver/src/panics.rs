//! runsc's own crashes. Under software emulation the sentry of runsc 0.0~20240729 (systrap)
//! sometimes panics for reasons that have nothing to do with the scenario; its boot debug log
//! then holds a Go panic. A scenario on a runsc handler that failed with such a panic in its
//! sandbox's boot log is run once more from scratch; the report keeps the first attempt.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::evidence;
use crate::report::{Outcome, ScenarioReport};

/// Where the guest setup (tests/e2e/guest-suite.sh) points runsc's `--debug-log` per handler.
pub const DEFAULT_RUNSC_DEBUG_LOG: &str = "/var/log/runsc";
pub const DEFAULT_RUNSC_STOCK_DEBUG_LOG: &str = "/var/log/runsc-stock";
pub const DEFAULT_RUNSC_GVISOR_DEBUG_LOG: &str = "/var/log/runsc-gvisor";

/// runsc's debug-log directories, per runtime handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugLogDirs {
    /// The `runsc` handler (this project's shim).
    pub runsc: PathBuf,
    /// The `runsc-stock` handler (containerd's runc shim driving runsc).
    pub runsc_stock: PathBuf,
    /// The `runsc-gvisor` handler (gVisor's own shim, on the upstream suite).
    pub runsc_gvisor: PathBuf,
}

impl Default for DebugLogDirs {
    fn default() -> Self {
        DebugLogDirs {
            runsc: PathBuf::from(DEFAULT_RUNSC_DEBUG_LOG),
            runsc_stock: PathBuf::from(DEFAULT_RUNSC_STOCK_DEBUG_LOG),
            runsc_gvisor: PathBuf::from(DEFAULT_RUNSC_GVISOR_DEBUG_LOG),
        }
    }
}

impl DebugLogDirs {
    /// The debug-log directory of a handler's runsc; None for handlers without runsc (runc).
    pub fn for_handler(&self, handler: &str) -> Option<&Path> {
        match handler {
            "runsc" => Some(&self.runsc),
            "runsc-stock" => Some(&self.runsc_stock),
            crate::scenarios::GVISOR_HANDLER => Some(&self.runsc_gvisor),
            _ => None,
        }
    }
}

/// A Go panic found in a sandbox's boot log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PanicInfo {
    pub file: PathBuf,
    /// 1-based.
    pub line_no: usize,
    /// The `panic: ...` or `fatal error: ...` line.
    pub line: String,
}

/// What the first attempt of a retried scenario found.
#[derive(Clone, Debug, Serialize)]
pub struct FirstAttempt {
    pub outcome: Outcome,
    pub error: Option<String>,
    /// `name: detail` of each failed check.
    pub failed_checks: Vec<String>,
    pub sandbox_id: Option<String>,
    pub panic: PanicInfo,
    pub duration_ms: u64,
    /// Where its pod logs were set aside, relative to the results directory.
    pub pod_logs: Option<String>,
}

fn is_panic_line(line: &str) -> bool {
    line.starts_with("panic: ") || line.starts_with("fatal error: ")
}

/// The first Go panic in `path` if the file mentions `sandbox_id` (runsc's `Args:` line names
/// the bundle and the container id).
fn scan(path: &Path, sandbox_id: &str) -> Option<PanicInfo> {
    let mut reader = BufReader::new(File::open(path).ok()?);
    let mut buf = Vec::new();
    let (mut mentions, mut found) = (false, None);
    let mut line_no = 0;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        line_no += 1;
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        mentions = mentions || line.contains(sandbox_id);
        if found.is_none() && is_panic_line(line) {
            found = Some(PanicInfo {
                file: path.to_path_buf(),
                line_no,
                line: line.to_string(),
            });
        }
        if mentions && found.is_some() {
            break;
        }
    }
    found.filter(|_| mentions)
}

/// The first Go panic (`panic: ` or `fatal error: ` at the start of a line) in a runsc boot
/// log (`*boot*` in `log_dir`) that belongs to `sandbox_id`, i.e. mentions it. Files in name
/// (= time) order; None when the directory is missing or unreadable.
pub fn sandbox_panicked(log_dir: &Path, sandbox_id: &str) -> Option<PanicInfo> {
    if sandbox_id.is_empty() {
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("boot"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().find_map(|f| scan(f, sandbox_id))
}

/// Whether a scenario's attempt earns a retry: it failed, it ran on a runsc handler, and a boot
/// log of its sandbox holds a Go panic. The sandbox is the one RunPodSandbox returned, else any
/// id containerd's RunPodSandbox error names.
pub fn retry_reason(r: &ScenarioReport, dirs: &DebugLogDirs) -> Option<PanicInfo> {
    if r.passed {
        return None;
    }
    let dir = dirs.for_handler(&r.handler)?;
    let mut ids: Vec<String> = r.evidence.sandbox_id.iter().cloned().collect();
    if let Some(e) = &r.evidence.run_pod_sandbox_error {
        for id in evidence::hex_ids(e) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.iter().find_map(|id| sandbox_panicked(dir, id))
}

/// Folds the failed first attempt into the retry's report: `retried`, the first attempt's
/// outcome, and a note first among the notes.
pub fn mark_retried(
    retry: &mut ScenarioReport,
    first: &ScenarioReport,
    panic: PanicInfo,
    pod_logs: Option<String>,
) {
    let how = match first.outcome {
        Outcome::Failed => "failed".to_string(),
        other => format!("failed ({other})"),
    };
    let note = format!(
        "attempt 1 {how}: runsc sentry panic in {} (line {}): {}; retried with a fresh pod",
        panic.file.display(),
        panic.line_no,
        panic.line
    );
    retry.retried = true;
    retry.first_attempt = Some(FirstAttempt {
        outcome: first.outcome,
        error: first.error.clone(),
        failed_checks: first
            .failed_checks()
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect(),
        sandbox_id: first.evidence.sandbox_id.clone(),
        panic,
        duration_ms: first.duration_ms,
        pod_logs,
    });
    retry.evidence.notes.insert(0, note);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Check;
    use std::fs;

    const ID: &str = "3f1c0a9e8b7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b";
    const OTHER: &str = "aa1c0a9e8b7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b";
    const PANIC: &str = "panic: running on goroutine 1234 (task goroutine for kernel.Task \
                         0xc000abc000 is 0)";

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("e2e-driver-panics-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("fixture dir");
            Dir(dir)
        }
        fn write(&self, name: &str, content: &str) -> PathBuf {
            let p = self.0.join(name);
            fs::write(&p, content).expect("write fixture");
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A runsc boot debug log for sandbox `id`, optionally ending in a sentry panic.
    fn boot_log(id: &str, panic: bool) -> String {
        let mut s = format!(
            "I0801 10:00:00.000001    4242 main.go:201] ***************************\n\
             I0801 10:00:00.000002    4242 main.go:202] Args: [runsc-sandbox --root=/run/containerd/runsc/k8s.io \
             --debug=true --debug-log=/var/log/runsc/ boot --bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/{id} \
             --controller-fd=10 {id}]\n\
             I0801 10:00:00.000003    4242 main.go:203] Git Revision: 0\n\
             D0801 10:00:05.000000    4242 syscalls.go:12] [   1:   1] mmap\n"
        );
        if panic {
            s.push_str(PANIC);
            s.push_str("\n\ngoroutine 1234 [running]:\nruntime.throw(...)\n");
        }
        s
    }

    #[test]
    fn panic_in_the_sandbox_boot_log() {
        let d = Dir::new("panic");
        let f = d.write(
            "runsc.log.20240801-100000.000001.boot.txt",
            &boot_log(ID, true),
        );
        let p = sandbox_panicked(&d.0, ID).expect("panic found");
        assert_eq!(p.file, f);
        assert_eq!(p.line, PANIC);
        assert_eq!(p.line_no, 5);
    }

    #[test]
    fn clean_log_and_other_sandbox_and_other_commands() {
        let d = Dir::new("clean");
        d.write(
            "runsc.log.20240801-100000.000001.boot.txt",
            &boot_log(ID, false),
        );
        // Another sandbox panicked: not ours.
        d.write(
            "runsc.log.20240801-100100.000001.boot.txt",
            &boot_log(OTHER, true),
        );
        // Not a boot log.
        d.write(
            "runsc.log.20240801-100000.000002.gofer.txt",
            &boot_log(ID, true),
        );
        assert_eq!(sandbox_panicked(&d.0, ID), None);
        assert!(sandbox_panicked(&d.0, OTHER).is_some());
        assert_eq!(sandbox_panicked(&d.0, ""), None);
        assert_eq!(sandbox_panicked(&d.0.join("missing"), ID), None);
    }

    #[test]
    fn fatal_error_counts_and_mid_line_panic_does_not() {
        let d = Dir::new("fatal");
        let log = format!(
            "{}fatal error: concurrent map writes\n",
            boot_log(ID, false)
        );
        d.write("runsc.log.1.boot.txt", &log);
        let p = sandbox_panicked(&d.0, ID).expect("fatal error found");
        assert_eq!(p.line, "fatal error: concurrent map writes");
        let d = Dir::new("midline");
        let log = format!(
            "{}W0801 10:00:06.000000    4242 x.go:1] recovered: panic: nothing\n",
            boot_log(ID, false)
        );
        d.write("runsc.log.1.boot.txt", &log);
        assert_eq!(sandbox_panicked(&d.0, ID), None);
    }

    fn failed(handler: &str, sandbox: Option<&str>) -> ScenarioReport {
        let mut r = ScenarioReport {
            name: "busybox-exit".into(),
            handler: handler.into(),
            outcome: Outcome::Failed,
            checks: vec![Check {
                name: "exit-code".into(),
                ok: false,
                detail: "no exit code".into(),
            }],
            duration_ms: 1234,
            ..Default::default()
        };
        r.evidence.sandbox_id = sandbox.map(str::to_string);
        r
    }

    #[test]
    fn retry_only_failed_runsc_scenarios_with_a_panic() {
        let d = Dir::new("retry");
        d.write("runsc.log.1.boot.txt", &boot_log(ID, true));
        let dirs = DebugLogDirs {
            runsc: d.0.clone(),
            runsc_stock: d.0.join("stock-missing"),
            runsc_gvisor: d.0.join("gvisor-missing"),
        };
        assert!(retry_reason(&failed("runsc", Some(ID)), &dirs).is_some());
        let mut passed = failed("runsc", Some(ID));
        passed.passed = true;
        assert_eq!(retry_reason(&passed, &dirs), None);
        assert_eq!(retry_reason(&failed("runc", Some(ID)), &dirs), None);
        assert_eq!(retry_reason(&failed("runsc-stock", Some(ID)), &dirs), None);
        assert_eq!(retry_reason(&failed("runsc", Some(OTHER)), &dirs), None);
        assert_eq!(retry_reason(&failed("runsc", None), &dirs), None);
        // RunPodSandbox failed: the id comes from containerd's error.
        let mut r = failed("runsc", None);
        r.evidence.run_pod_sandbox_error =
            Some(format!("failed to start sandbox \"{ID}\": task exited"));
        assert!(retry_reason(&r, &dirs).is_some());
    }

    #[test]
    fn retried_report_keeps_the_first_attempt() {
        let d = Dir::new("mark");
        d.write("runsc.log.1.boot.txt", &boot_log(ID, true));
        let first = failed("runsc", Some(ID));
        let p = sandbox_panicked(&d.0, ID).expect("panic");
        let mut second = ScenarioReport {
            name: "busybox-exit".into(),
            handler: "runsc".into(),
            passed: true,
            outcome: Outcome::Passed,
            ..Default::default()
        };
        second.evidence.notes.push("later".into());
        mark_retried(
            &mut second,
            &first,
            p,
            Some("pods/busybox-exit.attempt1".into()),
        );
        assert!(second.retried);
        assert!(second.passed);
        let note = &second.evidence.notes[0];
        assert!(
            note.starts_with("attempt 1 failed: runsc sentry panic in "),
            "{note}"
        );
        assert!(note.contains(PANIC) && note.ends_with("; retried with a fresh pod"));
        assert_eq!(second.evidence.notes[1], "later");
        let fa = second.first_attempt.as_ref().expect("first attempt");
        assert_eq!(
            fa.failed_checks,
            vec!["exit-code: no exit code".to_string()]
        );
        assert_eq!(fa.sandbox_id.as_deref(), Some(ID));
        let json = serde_json::to_value(&second).expect("serialises");
        assert_eq!(json["retried"], true);
        assert_eq!(json["first_attempt"]["outcome"], "failed");
        assert_eq!(json["first_attempt"]["panic"]["line"], PANIC);
    }
}
