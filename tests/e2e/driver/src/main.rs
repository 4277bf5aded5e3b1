//! e2e-driver: plays kubelet inside the e2e guest VM. It speaks containerd's CRI v1, creates pod
//! slices through systemd like kubelet's systemd cgroup driver, runs each scenario against a
//! runtime handler, gathers evidence from the host side of the guest and writes a report.
//!
//!     e2e-driver --suite SUITE --results DIR [--scenario NAME]... [--handlers H1,H2]
//!
//! Exit status: 0 when the scenarios ran (whatever their outcome: the runner aggregates
//! summary.json), 1 when the driver itself could not run, 2 for a bad command line.

#![warn(clippy::too_many_lines)]

mod bench;
mod cgroup;
mod cli;
mod cri;
mod evidence;
mod logs;
mod panics;
mod pod;
mod procs;
mod report;
mod run;
mod scenarios;
mod stream;
mod systemd;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::cli::{Args, Command};
use crate::report::{Environment, Report, ScenarioReport};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("e2e-driver: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match args.command.clone() {
        Command::Help => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::List => {
            for s in scenarios::registry() {
                println!(
                    "{:<20} {:<12} {}{}",
                    s.name,
                    s.handler,
                    if s.default { "" } else { "(on request) " },
                    s.description
                );
            }
            return ExitCode::SUCCESS;
        }
        Command::Render(dir) => {
            return match bench::render_again(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("e2e-driver: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Run | Command::Bench(_) | Command::Soak(_) | Command::BenchSoak(..) => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("e2e-driver: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let work = async {
        match args.command {
            Command::Bench(n) => bench::run(&args, n).await,
            Command::Soak(n) => bench::soak::run(&args, n).await,
            Command::BenchSoak(n, m) => {
                let bench = bench::run(&args, n).await;
                let soak = bench::soak::run(&args, m).await;
                bench.and(soak)
            }
            _ => run_suite(&args).await,
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-driver: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The driver writes to /sys/fs/cgroup and systemd: it must only ever run in the test VM.
async fn refuse_outside_vm(args: &Args) -> Result<()> {
    if args.allow_non_vm {
        return Ok(());
    }
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("systemd-detect-virt")
            .arg("--vm")
            .output(),
    )
    .await
    .context("systemd-detect-virt did not answer")?
    .context("running systemd-detect-virt (is this the e2e guest?)")?;
    let what = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || what == "none" {
        bail!(
            "this is not a virtual machine (systemd-detect-virt --vm says {what:?}): the driver \
             changes cgroups and systemd units, so it only runs in the e2e guest; pass \
             --allow-non-vm to override"
        );
    }
    Ok(())
}

async fn command_first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(cmd)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

async fn connect(args: &Args) -> Result<cri::Cri> {
    // containerd may still be starting when the guest suite calls the driver.
    let deadline = Instant::now() + Duration::from_secs_f64(60.0 * args.timeout_scale);
    loop {
        let attempt = async {
            let mut c = cri::Cri::connect(args.socket.clone(), args.timeout_scale).await?;
            c.version().await?;
            Ok::<_, anyhow::Error>(c)
        }
        .await;
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| {
                    format!(
                        "containerd's CRI does not answer on {}",
                        args.socket.display()
                    )
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Moves a first attempt's copied pod logs (`pods/<scenario>`) to `pods/<scenario>.attempt1`
/// so the retry's do not mix with them. Returns the new place, relative to the results.
fn set_aside_pod_logs(results: &std::path::Path, scenario: &str) -> Option<String> {
    set_aside_pod_logs_as(results, scenario, 1)
}

/// Moves an attempt's copied pod logs (`pods/<scenario>`) to `pods/<scenario>.attempt<N>`.
fn set_aside_pod_logs_as(
    results: &std::path::Path,
    scenario: &str,
    attempt: u32,
) -> Option<String> {
    let from = results.join("pods").join(scenario);
    let rel = format!("pods/{scenario}.attempt{attempt}");
    let to = results.join(&rel);
    if !from.is_dir() {
        return None;
    }
    let _ = std::fs::remove_dir_all(&to);
    match std::fs::rename(&from, &to) {
        Ok(()) => Some(rel),
        Err(e) => {
            eprintln!(
                "e2e-driver: moving {} to {}: {e} (the next attempt's pod logs join them)",
                from.display(),
                to.display()
            );
            None
        }
    }
}

/// What the report says of the guest before the first scenario.
async fn environment(version: &k8s_cri::v1::VersionResponse) -> Environment {
    let mi = evidence::meminfo();
    Environment {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
        cri_runtime: Some(version.runtime_name.clone()),
        cri_runtime_version: Some(version.runtime_version.clone()),
        runsc_version: command_first_line("runsc", &["--version"]).await,
        mem_total_kib: mi.get("MemTotal").copied(),
        mem_available_kib_before: mi.get("MemAvailable").copied(),
        mem_available_kib_after: None,
        swap_total_kib: mi.get("SwapTotal").copied(),
        setup_problems: Vec::new(),
    }
}

/// Attempts a scenario gets when each failure before the last came with a runsc panic.
const MAX_ATTEMPTS: u32 = 3;

/// One scenario, run again from scratch (up to `MAX_ATTEMPTS` in all) while its failure came
/// with a runsc panic in its sandbox's boot log (see `panics`); the last outcome counts and the
/// report keeps the first attempt's.
async fn run_with_retry(args: &Args, ctx: &run::Ctx, sc: &scenarios::Scenario) -> ScenarioReport {
    // run_scenario has cleaned up (sandboxes, pod slice) by the time it returns.
    let first = run::run_scenario(ctx, sc).await;
    let Some(panic) = panics::retry_reason(&first, &args.debug_logs) else {
        return first;
    };
    let pod_logs = set_aside_pod_logs(&args.results, sc.name);
    let (mut last, mut attempt, mut notes) = (panic.clone(), 2, Vec::new());
    let mut r = loop {
        eprintln!(
            "e2e-driver: {}: runsc panicked in {}: {}; attempt {attempt} of {MAX_ATTEMPTS}",
            sc.name,
            last.file.display(),
            last.line
        );
        let r = run::run_scenario(ctx, sc).await;
        let Some(again) = panics::retry_reason(&r, &args.debug_logs) else {
            break r;
        };
        notes.push(format!(
            "attempt {attempt} failed too, again with a runsc panic in {}: {}",
            again.file.display(),
            again.line
        ));
        if attempt == MAX_ATTEMPTS {
            break r;
        }
        // The next attempt's pod logs must not mix with this one's.
        let _ = set_aside_pod_logs_as(&args.results, sc.name, attempt);
        (last, attempt) = (again, attempt + 1);
    };
    r.evidence.notes.extend(notes);
    panics::mark_retried(&mut r, &first, panic, pod_logs);
    r
}

async fn run_suite(args: &Args) -> Result<()> {
    let registry = scenarios::registry();
    let mut selected = scenarios::select(&registry, &args.scenarios, &args.also, &args.handlers)
        .map_err(anyhow::Error::msg)?;
    for n in &args.skip {
        if !registry.iter().any(|s| s.name == n) {
            bail!("--skip {n}: no such scenario");
        }
        eprintln!("e2e-driver: skipping {n} (--skip)");
    }
    selected.retain(|s| !args.skip.iter().any(|n| n == s.name));
    if selected.is_empty() {
        bail!("no scenario matches the --scenario/--handlers filters");
    }
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("creating the results directory {}", args.results.display()))?;
    refuse_outside_vm(args).await?;
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut cri = connect(args).await?;
    let version = cri.version().await?;
    eprintln!(
        "e2e-driver: suite {}, {} {} (CRI {}), {} scenario(s)",
        args.suite,
        version.runtime_name,
        version.runtime_version,
        version.runtime_api_version,
        selected.len()
    );
    let mut env = environment(&version).await;
    let (ctx, problems) = run::Ctx::on_node(cri, args).await;
    env.setup_problems = problems;

    let mut results = Vec::new();
    for sc in &selected {
        let r = run_with_retry(args, &ctx, sc).await;
        println!("{}", r.line());
        results.push(r);
        // Keep a report on disk after every scenario: a guest that dies mid-suite still leaves
        // what was found so far.
        let partial = Report {
            suite: args.suite.clone(),
            driver_version: env!("CARGO_PKG_VERSION").to_string(),
            started_unix,
            duration_ms: started.elapsed().as_millis() as u64,
            environment: env.clone(),
            scenarios: results.clone(),
        };
        if let Err(e) = report::write_all(&args.results, &partial) {
            eprintln!("e2e-driver: writing the partial report: {e:#}");
        }
    }

    for p in run::teardown_node(&ctx).await {
        env.setup_problems.push(format!("teardown: {p}"));
    }
    env.mem_available_kib_after = evidence::meminfo().get("MemAvailable").copied();
    let report = Report {
        suite: args.suite.clone(),
        driver_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
        duration_ms: started.elapsed().as_millis() as u64,
        environment: env,
        scenarios: results,
    };
    let summary = report::write_all(&args.results, &report)?;
    println!("{}", summary.closing_line());
    Ok(())
}
