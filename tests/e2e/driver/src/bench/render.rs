//! bench.md and bench.svg from a bench's results.

use std::fmt::Write as _;

use super::stats::Stats;
use super::BenchReport;

/// The phases of a pod start the tables show, with the sample field each reads.
pub const PHASES: &[&str] = &[
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "RunPodSandbox -> running",
    "StopPodSandbox",
    "RemovePodSandbox",
];

pub const THIS_SHIM: &str = "runsc";

fn cell(s: Option<Stats>) -> String {
    match s {
        Some(s) => format!("{:.0} / {:.0} / {:.0}", s.median, s.p90, s.min),
        None => "–".into(),
    }
}

fn ratio(a: Option<Stats>, b: Option<Stats>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "–".into(),
    }
}

pub fn markdown(r: &BenchReport) -> String {
    let mut o = String::new();
    latency(&mut o, r);
    ratios(&mut o, r);
    breakdown(&mut o, r);
    floor(&mut o, r);
    memory(&mut o, r);
    failures(&mut o, r);
    o
}

fn latency(o: &mut String, r: &BenchReport) {
    let _ = writeln!(
        o,
        "# Bench: suite {}, N = {} pods per handler",
        r.suite, r.n
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Run {} (unix {}), {} s. containerd {}, runsc {}, kernel {}, {} vCPU, {} MiB. Handlers \
         interleaved (each round starts with the next handler); runsc and shim debug logging off.",
        r.date, r.started_unix, r.duration_s, r.containerd, r.runsc, r.kernel, r.cpus, r.mem_mib
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "## CRI latency per handler (ms: median / p90 / min)");
    let _ = writeln!(o);
    let _ = write!(o, "| phase |");
    for h in &r.handlers {
        let _ = write!(o, " `{h}` |");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "|---|{}", "---|".repeat(r.handlers.len()));
    for phase in PHASES {
        let _ = write!(o, "| {phase} |");
        for h in &r.handlers {
            let _ = write!(o, " {} |", cell(r.stats(h, phase)));
        }
        let _ = writeln!(o);
    }
    let _ = write!(o, "| pods ok / StartContainer not returned |");
    for h in &r.handlers {
        let ok = r
            .samples
            .iter()
            .filter(|s| s.handler == *h && s.error.is_none())
            .count();
        let blocked = r
            .samples
            .iter()
            .filter(|s| {
                s.handler == *h && s.to_running_ms.is_some() && s.start_container_ms.is_none()
            })
            .count();
        let _ = write!(o, " {ok} / {blocked} |");
    }
    let _ = writeln!(o);
}

fn ratios(o: &mut String, r: &BenchReport) {
    let others: Vec<&String> = r.handlers.iter().filter(|h| *h != THIS_SHIM).collect();
    if r.handlers.iter().any(|h| h == THIS_SHIM) && !others.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "## Ratio of medians, this shim (`runsc`) / other handler (same run)"
        );
        let _ = writeln!(o);
        let _ = write!(o, "| phase |");
        for h in &others {
            let _ = write!(o, " / `{h}` |");
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "|---|{}", "---|".repeat(others.len()));
        for phase in PHASES {
            let _ = write!(o, "| {phase} |");
            for h in &others {
                let _ = write!(
                    o,
                    " {} |",
                    ratio(r.stats(THIS_SHIM, phase), r.stats(h, phase))
                );
            }
            let _ = writeln!(o);
        }
    }
}

fn breakdown(o: &mut String, r: &BenchReport) {
    if !r.breakdown.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "## The shim's time per RPC, from its timing lines (ms: median / p90 / min)"
        );
        let _ = writeln!(o);
        let _ = writeln!(o, "| RPC (pods) | span | time | share of total (medians) |");
        let _ = writeln!(o, "|---|---|---|---|");
        for b in &r.breakdown {
            let total = b
                .spans
                .iter()
                .find(|(k, _)| k == "total")
                .map(|(_, s)| s.median)
                .unwrap_or(0.0);
            for (k, s) in &b.spans {
                let share = if total > 0.0 {
                    format!("{:.1} %", 100.0 * s.median / total)
                } else {
                    "–".into()
                };
                let _ = writeln!(
                    o,
                    "| {} ({}) | {k} | {} | {share} |",
                    b.what,
                    b.n,
                    cell(Some(*s))
                );
            }
        }
    }
}

fn floor(o: &mut String, r: &BenchReport) {
    if let Some(f) = &r.floor {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "## The floor: `runsc create` + `runsc start` of the shim's sandbox bundle by hand \
             (ms: median / p90 / min)"
        );
        let _ = writeln!(o);
        let _ = writeln!(o, "flags: `{}`", f.flags.join(" "));
        let _ = writeln!(o);
        let _ = writeln!(o, "| call | time |");
        let _ = writeln!(o, "|---|---|");
        let _ = writeln!(
            o,
            "| runsc create | {} |",
            cell(Stats::of(f.create_ms.iter().copied()))
        );
        let _ = writeln!(
            o,
            "| runsc start | {} |",
            cell(Stats::of(f.start_ms.iter().copied()))
        );
        let both = f.create_ms.iter().zip(&f.start_ms).map(|(c, s)| c + s);
        let _ = writeln!(o, "| create + start | {} |", cell(Stats::of(both)));
        for p in &f.problems {
            let _ = writeln!(o, "\nfloor problem: {p}");
        }
    }
}

fn memory(o: &mut String, r: &BenchReport) {
    if !r.memory.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "## Memory per pod (RSS, KiB)");
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "| handler | containers | shim processes | shim RSS | runtime processes besides the sandbox |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|");
        for m in &r.memory {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} |{}",
                m.handler,
                m.containers,
                m.shims,
                m.shim_rss_kib,
                m.beyond_sandbox_rss_kib,
                m.error
                    .as_deref()
                    .map(|e| format!(" error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

fn failures(o: &mut String, r: &BenchReport) {
    let failed: Vec<_> = r.samples.iter().filter(|s| s.error.is_some()).collect();
    if !failed.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "## Pods with errors");
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "A pod whose StartContainer never returned (marked \"start never returned\") still \
             counts for its start; the others are failures of the bench."
        );
        let _ = writeln!(o);
        for s in failed {
            let mark = if s.start_never_returned() {
                " (start never returned)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "- `{}` round {}{mark}: {}",
                s.handler,
                s.round,
                s.error.as_deref().unwrap_or_default()
            );
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar per handler and phase (RunPodSandbox, -> running): the median as the bar,
/// the min..p90 range as a line across it.
pub fn svg(r: &BenchReport) -> String {
    let phases = ["RunPodSandbox", "RunPodSandbox -> running"];
    let colors = ["#7aa6d6", "#2f6db3"];
    let max = r
        .handlers
        .iter()
        .flat_map(|h| phases.iter().filter_map(|p| r.stats(h, p)))
        .map(|s| s.p90.max(s.median))
        .fold(1.0_f64, f64::max);
    let (left, width, bar, gap) = (190.0, 520.0, 16.0, 14.0);
    let group = bar * phases.len() as f64 + gap;
    let height = 70.0 + group * r.handlers.len() as f64 + 40.0;
    let x = |v: f64| left + width * v / max;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="20" font-size="14">Pod start latency per handler, suite {} (N = {}, median bar, min–p90 line, ms)</text>"#,
        esc(&r.suite),
        r.n
    );
    for (i, (p, c)) in phases.iter().zip(colors).enumerate() {
        let lx = 10.0 + i as f64 * 220.0;
        let _ = writeln!(
            o,
            r#"<rect x="{lx}" y="32" width="12" height="12" fill="{c}"/><text x="{}" y="43">{}</text>"#,
            lx + 16.0,
            esc(p)
        );
    }
    for (hi, h) in r.handlers.iter().enumerate() {
        let y0 = 60.0 + group * hi as f64;
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + bar,
            esc(h)
        );
        for (pi, (p, c)) in phases.iter().zip(colors).enumerate() {
            let Some(s) = r.stats(h, p) else { continue };
            let y = y0 + bar * pi as f64;
            let _ = writeln!(
                o,
                r#"<rect x="{left}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{c}"/>"#,
                x(s.median) - left,
                bar - 2.0
            );
            let ym = y + bar / 2.0 - 1.0;
            let _ = writeln!(
                o,
                r##"<line x1="{:.1}" y1="{ym:.1}" x2="{:.1}" y2="{ym:.1}" stroke="#222" stroke-width="1.5"/>"##,
                x(s.min),
                x(s.p90)
            );
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{:.1}">{:.0}</text>"#,
                x(s.p90.max(s.median)) + 4.0,
                y + bar - 4.0,
                s.median
            );
        }
    }
    let axis_y = 60.0 + group * r.handlers.len() as f64 + 5.0;
    let _ = writeln!(
        o,
        r##"<line x1="{left}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#444"/>"##,
        left + width
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.0}</text>"#,
            x(v),
            axis_y + 16.0
        );
    }
    let _ = writeln!(o, "</svg>");
    o
}
