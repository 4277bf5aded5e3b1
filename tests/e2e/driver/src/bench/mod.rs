//! `--bench N`: N pod starts per runtime handler, interleaved so that drift in the guest hits
//! every handler alike, each CRI call timed; then the shim's own breakdown from its timing lines,
//! the by-hand runsc floor and the memory a pod costs. Writes bench.json, bench.md, bench.svg
//! and a summary.json (pods that worked / failed) for the runner.

mod floor;
mod memory;
mod pod;
mod render;
pub mod soak;
mod spans;
mod stats;

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::Args;
pub use pod::Sample;
use stats::Stats;

/// The handlers a bench compares when `--handlers` names none: this shim, containerd's runc
/// shim driving runsc (cgroupfs, then with the systemd driver on both sides), runc.
pub const DEFAULT_HANDLERS: &[&str] = &["runsc", "runsc-stock", "runsc-stock-systemd", "runc"];
/// The handlers whose shims the memory table weighs: this shim grouped and with grouping = false,
/// and containerd's runc shim (the same binary drives runsc for the stock path).
const MEMORY_HANDLERS: &[&str] = &["runsc", "runsc-nogroup", "runc"];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BenchReport {
    pub suite: String,
    pub n: usize,
    pub date: String,
    pub started_unix: u64,
    pub duration_s: u64,
    pub containerd: String,
    pub runsc: String,
    pub kernel: String,
    pub cpus: usize,
    pub mem_mib: u64,
    pub handlers: Vec<String>,
    pub samples: Vec<Sample>,
    pub breakdown: Vec<spans::Breakdown>,
    pub floor: Option<floor::Floor>,
    pub memory: Vec<memory::PodMemory>,
}

impl BenchReport {
    /// The stats of one phase (a `render::PHASES` name) over one handler's pods where that call
    /// worked (a pod whose StopPodSandbox failed still counts for its start).
    pub fn stats(&self, handler: &str, phase: &str) -> Option<Stats> {
        let pick = |s: &Sample| match phase {
            "RunPodSandbox" => s.run_pod_sandbox_ms,
            "CreateContainer" => s.create_container_ms,
            "StartContainer" => s.start_container_ms,
            "RunPodSandbox -> running" => s.to_running_ms,
            "StopPodSandbox" => s.stop_pod_sandbox_ms,
            "RemovePodSandbox" => s.remove_pod_sandbox_ms,
            _ => None,
        };
        Stats::of(
            self.samples
                .iter()
                .filter(|s| s.handler == handler)
                .filter_map(pick),
        )
    }
}

/// Round `r`'s order: the handlers rotated by r.
pub fn round_order(handlers: &[String], r: usize) -> Vec<String> {
    let n = handlers.len().max(1);
    (0..handlers.len())
        .map(|i| handlers[(i + r) % n].clone())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))
}

pub fn write_all(dir: &Path, r: &BenchReport) -> Result<()> {
    write(dir, "bench.json", &serde_json::to_string_pretty(r)?)?;
    write(dir, "bench.md", &render::markdown(r))?;
    write(dir, "bench.svg", &render::svg(r))?;
    let failed = r.samples.iter().filter(|s| s.failed()).count()
        + r.memory.iter().filter(|m| m.error.is_some()).count();
    let passed = r.samples.len() + r.memory.len() - failed;
    write(
        dir,
        "summary.json",
        &format!("{{\"passed\":{passed},\"failed\":{failed},\"scenarios\":[]}}\n"),
    )
}

fn utc_date(unix: u64) -> String {
    std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `--render DIR`: bench.md and bench.svg again from DIR/bench.json (after a change to the
/// tables or the chart, without a new run).
pub fn render_again(dir: &Path) -> Result<()> {
    let path = dir.join("bench.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let r: BenchReport =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    write(dir, "bench.md", &render::markdown(&r))?;
    write(dir, "bench.svg", &render::svg(&r))
}

pub async fn run(args: &Args, n: usize) -> Result<()> {
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("creating {}", args.results.display()))?;
    crate::refuse_outside_vm(args).await?;
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut cri = crate::connect(args).await?;
    let version = cri.version().await?;
    let env = crate::environment(&version).await;
    let (ctx, _) = crate::run::Ctx::on_node(cri.clone(), args).await;
    let handlers: Vec<String> = if args.handlers.is_empty() {
        DEFAULT_HANDLERS.iter().map(|h| h.to_string()).collect()
    } else {
        args.handlers.clone()
    };
    let image = format!("{}/busybox:1", args.images);
    let mut r = BenchReport {
        suite: args.suite.clone(),
        n,
        date: utc_date(started_unix),
        started_unix,
        containerd: version.runtime_version.clone(),
        runsc: env.runsc_version.clone().unwrap_or_default(),
        kernel: env.kernel.clone().unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_mib: env.mem_total_kib.unwrap_or(0) / 1024,
        handlers: handlers.clone(),
        ..Default::default()
    };
    for round in 0..n {
        for h in round_order(&handlers, round) {
            let s = pod::sample(&cri, &h, round, &image).await;
            eprintln!(
                "e2e-driver: bench {h} round {round}: RunPodSandbox {:?} ms, running {:?} ms{}",
                s.run_pod_sandbox_ms.map(|v| v.round()),
                s.to_running_ms.map(|v| v.round()),
                s.error
                    .as_deref()
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default()
            );
            r.samples.push(s);
        }
        r.duration_s = started.elapsed().as_secs();
        let _ = write_all(&args.results, &r);
    }
    if handlers.iter().any(|h| h == "runsc") {
        let timings = spans::read_dir(&args.shim_log_dir);
        let mine = r.samples.iter().filter(|s| s.handler == "runsc");
        let sandboxes: Vec<String> = mine.clone().map(|s| s.sandbox_id.clone()).collect();
        let containers: Vec<String> = mine.flat_map(|s| s.container_ids.clone()).collect();
        r.breakdown = spans::breakdown(&timings, &sandboxes, &containers);
        r.floor = Some(floor::measure(&cri, &image, n).await);
        let _ = write_all(&args.results, &r);
    }
    if !args.no_memory {
        for h in MEMORY_HANDLERS {
            for c in [1, 4] {
                r.memory.push(memory::measure(&cri, h, c, &image).await);
            }
        }
    }
    for p in crate::run::teardown_node(&ctx).await {
        eprintln!("e2e-driver: teardown: {p}");
    }
    r.duration_s = started.elapsed().as_secs();
    write_all(&args.results, &r)?;
    print!("{}", render::markdown(&r));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_handlers() {
        let h: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(round_order(&h, 0), ["a", "b", "c"]);
        assert_eq!(round_order(&h, 1), ["b", "c", "a"]);
        assert_eq!(round_order(&h, 5), ["c", "a", "b"]);
    }

    fn sample(handler: &str, rps: f64, running: f64) -> Sample {
        Sample {
            handler: handler.into(),
            run_pod_sandbox_ms: Some(rps),
            to_running_ms: Some(running),
            start_container_ms: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_stock_pod_whose_start_never_returned_is_no_bench_failure() {
        let stuck = Sample {
            error: Some("StopPodSandbox not timed: StartContainer never returned".into()),
            ..sample("runsc-stock", 1000.0, 2000.0)
        };
        assert!(stuck.start_never_returned() && !stuck.failed());
        let never_ran = Sample {
            to_running_ms: None,
            error: Some("RunPodSandbox: refused".into()),
            ..sample("runsc-stock", 1000.0, 2000.0)
        };
        assert!(never_ran.failed());
        let ours = Sample {
            start_container_ms: Some(700.0),
            error: Some("StopPodSandbox: deadline exceeded".into()),
            ..sample("runsc", 1000.0, 2000.0)
        };
        assert!(ours.failed());
        let dir = std::env::temp_dir().join(format!("e2e-bench-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = BenchReport {
            handlers: vec!["runsc".into(), "runsc-stock".into()],
            samples: vec![stuck, never_ran, ours],
            ..Default::default()
        };
        write_all(&dir, &r).unwrap();
        let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
        assert_eq!(summary, "{\"passed\":1,\"failed\":2,\"scenarios\":[]}\n");
        let md = std::fs::read_to_string(dir.join("bench.md")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            md.contains("`runsc-stock` round 0 (start never returned):"),
            "{md}"
        );
    }

    #[test]
    fn tables_and_chart_name_every_handler() {
        let r = BenchReport {
            suite: "bookworm".into(),
            n: 2,
            handlers: vec!["runsc".into(), "runc".into()],
            samples: vec![
                sample("runsc", 1000.0, 2000.0),
                sample("runsc", 1200.0, 2400.0),
                sample("runc", 500.0, 1000.0),
                sample("runc", 500.0, 1000.0),
            ],
            ..Default::default()
        };
        let md = render::markdown(&r);
        assert!(
            md.contains("| RunPodSandbox -> running | 2200 / 2400 / 2000 | 1000 / 1000 / 1000 |"),
            "{md}"
        );
        assert!(md.contains("| RunPodSandbox | 2.20 |"), "{md}");
        assert!(
            md.contains("| pods ok / StartContainer not returned | 2 / 2 | 2 / 2 |"),
            "{md}"
        );
        let svg = render::svg(&r);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">runsc</text>") && svg.contains(">runc</text>"));
    }
}
