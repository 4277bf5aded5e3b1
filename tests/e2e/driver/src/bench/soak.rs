//! `--soak N`: N create/delete cycles of a pod with this shim, while one long-lived pod keeps its
//! grouped shim and sees a container created, started, stopped and removed in every cycle. What
//! the node holds is counted before (after one warm-up cycle) and after: nothing may grow.
//! Writes soak.json, soak.md and summary.json.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use super::pod::{self, BenchPod};
use crate::cli::Args;
use crate::procs;

/// The directories whose entries are counted (each a place a pod leaves a trace in).
const DIRS: &[(&str, &str)] = &[
    ("runsc state (shim)", "/run/containerd/runsc/k8s.io"),
    (
        "task bundles",
        "/run/containerd/io.containerd.runtime.v2.task/k8s.io",
    ),
    ("shim sockets", "/run/containerd/s"),
    ("pod log dirs", "/var/log/pods"),
    ("bench marker dirs", pod::MARKER_ROOT),
];

fn count_entries(dir: &str) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| d.flatten().count() as u64)
}

fn fds(pid: u32) -> u64 {
    count_entries(&format!("/proc/{pid}/fd"))
}

/// Cgroup directories under `root`, and how many of them are systemd scopes.
fn cgroups(root: &Path) -> (u64, u64) {
    let (mut dirs, mut scopes) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs += 1;
                if e.file_name().to_string_lossy().ends_with(".scope") {
                    scopes += 1;
                }
                stack.push(e.path());
            }
        }
    }
    (dirs, scopes)
}

/// What the node holds now; `shim_pid` is the long-lived pod's shim.
pub fn census(shim_pid: Option<u32>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let snap = procs::snapshot();
    if let Some(c) = snap.iter().find(|p| p.name() == "containerd") {
        m.insert("containerd RSS KiB".into(), c.rss_kib.unwrap_or(0));
        m.insert("containerd fds".into(), fds(c.pid));
    }
    if let Some(pid) = shim_pid {
        if let Some(s) = snap.iter().find(|p| p.pid == pid) {
            m.insert("long-lived shim RSS KiB".into(), s.rss_kib.unwrap_or(0));
            m.insert("long-lived shim fds".into(), fds(pid));
        }
    }
    let shims = snap
        .iter()
        .filter(|p| procs::SHIM_PROCS.contains(&p.name()))
        .count();
    m.insert("shim processes".into(), shims as u64);
    let runsc = snap
        .iter()
        .filter(|p| procs::RUNSC_PROCS.contains(&p.name()))
        .count();
    m.insert("runsc processes".into(), runsc as u64);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_or(0, |t| t.lines().count());
    m.insert("mounts".into(), mounts as u64);
    let (dirs, scopes) = cgroups(Path::new("/sys/fs/cgroup"));
    m.insert("cgroups".into(), dirs);
    m.insert("scopes".into(), scopes);
    let unix = std::fs::read_to_string("/proc/net/unix").map_or(0, |t| t.lines().count());
    m.insert("unix sockets".into(), unix.saturating_sub(1) as u64);
    for (name, dir) in DIRS {
        m.insert((*name).into(), count_entries(dir));
    }
    m
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SoakReport {
    pub suite: String,
    pub n: usize,
    pub cycles_ok: usize,
    pub duration_s: u64,
    pub before: BTreeMap<String, u64>,
    pub after: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

/// A row grows when its count is higher after; an RSS when it is more than 10 % and 1 MiB
/// higher (allocators keep some pages; a leak per cycle shows far above that after 100).
pub fn grew(name: &str, before: u64, after: u64) -> bool {
    if name.contains("RSS") {
        after > before + (before / 10).max(1024)
    } else {
        after > before
    }
}

pub fn markdown(r: &SoakReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Soak: suite {}, {} cycles ({} ok), {} s\n\n| what | before | after | delta | verdict |\n|---|---|---|---|---|",
        r.suite, r.n, r.cycles_ok, r.duration_s
    );
    for (k, b) in &r.before {
        let a = r.after.get(k).copied().unwrap_or(0);
        let verdict = if grew(k, *b, a) { "GREW" } else { "flat" };
        let _ = writeln!(
            o,
            "| {k} | {b} | {a} | {:+} | {verdict} |",
            a as i64 - *b as i64
        );
    }
    for e in &r.errors {
        let _ = writeln!(o, "\nerror: {e}");
    }
    o
}

/// One cycle: a whole pod, and a container through the long-lived pod.
async fn cycle(cri: &crate::cri::Cri, long: &mut BenchPod, i: usize, image: &str) -> Result<()> {
    let s = pod::sample(cri, "runsc", i, image).await;
    if let Some(e) = s.error {
        return Err(anyhow!("pod: {e}"));
    }
    let name = format!("churn-{i}");
    let (id, _) = long.create(&name).await?;
    long.start(&id);
    long.wait_running(&name, &id, cri.limit(180)).await?;
    let mut c = cri.clone();
    // No grace: the container's init is `sleep`, which ignores SIGTERM as a pid 1 does.
    c.stop_container(&id, 0).await?;
    c.remove_container(&id).await?;
    long.containers.retain(|x| *x != id);
    let _ = std::fs::remove_file(long.marker_dir.join(format!("ready-{name}")));
    Ok(())
}

pub async fn run(args: &Args, n: usize) -> Result<()> {
    std::fs::create_dir_all(&args.results)
        .with_context(|| format!("creating {}", args.results.display()))?;
    crate::refuse_outside_vm(args).await?;
    let started = Instant::now();
    let cri = crate::connect(args).await?;
    let (ctx, _) = crate::run::Ctx::on_node(cri.clone(), args).await;
    let image = format!("{}/busybox:1", args.images);
    let mut r = SoakReport {
        suite: args.suite.clone(),
        n,
        ..Default::default()
    };
    let mut long = BenchPod::prepare(&cri, "runsc", "soak-long", &image).await?;
    let body = async {
        long.run_sandbox().await?;
        let (id, _) = long.create("c0").await?;
        long.start(&id);
        long.wait_running("c0", &id, cri.limit(180)).await?;
        let sid = long.sandbox_id.clone().unwrap_or_default();
        let shim_pid = procs::find_shims(&procs::snapshot(), "containerd-shim-runsc-v1", &sid, &[])
            .first()
            .map(|p| p.pid);
        if let Err(e) = cycle(&cri, &mut long, 0, &image).await {
            r.errors.push(format!("warm-up: {e:#}"));
        }
        r.before = census(shim_pid);
        for i in 1..=n {
            match cycle(&cri, &mut long, i, &image).await {
                Ok(()) => r.cycles_ok += 1,
                Err(e) => r.errors.push(format!("cycle {i}: {e:#}")),
            }
            if i % 10 == 0 {
                eprintln!("e2e-driver: soak {i}/{n}: {} ok", r.cycles_ok);
            }
        }
        r.after = census(shim_pid);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(e) = body {
        r.errors.push(format!("{e:#}"));
    }
    let (_, _, problems) = long.teardown().await;
    r.errors.extend(problems);
    for p in crate::run::teardown_node(&ctx).await {
        r.errors.push(format!("teardown: {p}"));
    }
    r.duration_s = started.elapsed().as_secs();
    let grown = r
        .before
        .iter()
        .filter(|(k, b)| grew(k, **b, r.after.get(*k).copied().unwrap_or(0)))
        .count();
    let failed = grown + usize::from(!r.errors.is_empty());
    std::fs::write(
        args.results.join("soak.json"),
        serde_json::to_string_pretty(&r)?,
    )?;
    std::fs::write(args.results.join("soak.md"), markdown(&r))?;
    std::fs::write(
        args.results.join("summary.json"),
        format!(
            "{{\"passed\":{},\"failed\":{failed},\"scenarios\":[]}}\n",
            r.before.len() - grown
        ),
    )?;
    print!("{}", markdown(&r));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_rules() {
        assert!(grew("mounts", 10, 11));
        assert!(!grew("mounts", 10, 10));
        assert!(!grew("containerd RSS KiB", 40000, 43000));
        assert!(grew("containerd RSS KiB", 40000, 45000));
        assert!(!grew("long-lived shim RSS KiB", 5000, 5900));
    }
}
