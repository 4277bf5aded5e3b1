//! Clean-up: taking the pod down (timed, as evidence), looking for whatever of it is left, and,
//! whatever happened, undoing what the scenario created so the next one starts clean.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{elapsed_ms, Ctx, Run};
use crate::cgroup;
use crate::evidence;
use crate::pod::{self, MIB, UID_LABEL};
use crate::procs::{self, RUNSC_PROCS, SHIM_PROCS};
use crate::report::Leftovers;
use crate::systemd;

const CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";
const CRI_NAMESPACE: &str = "k8s.io";
/// Where containerd and runsc keep per-container state, searched for leftovers.
const STATE_DIRS: &[&str] = &[
    "/run/containerd/io.containerd.runtime.v2.task/k8s.io",
    "/run/containerd/runsc/k8s.io",
    "/run/containerd/runsc",
    "/run/runsc",
];

/// Runtime processes and cri-containerd cgroups before a scenario, to spot what it adds.
pub(super) struct Baseline {
    pids: BTreeSet<u32>,
    cgroups: Vec<String>,
}

pub(super) fn baseline(ctx: &Ctx) -> Baseline {
    Baseline {
        pids: procs::snapshot()
            .iter()
            .filter(|p| RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
            .map(|p| p.pid)
            .collect(),
        cgroups: cgroup::find_dirs_mentioning(&ctx.cgroup_root, &["cri-containerd".to_string()], 7),
    }
}

/// Runtime processes (runsc, shims) that were not there at `before`, with their arguments.
pub(super) fn new_runtime_procs(before: &Baseline) -> Vec<String> {
    procs::snapshot()
        .iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
        .filter(|p| !before.pids.contains(&p.pid))
        .map(|p| format!("{} {}", p.pid, p.argv.join(" ")))
        .collect()
}

/// The pod's own end: StopPodSandbox and RemovePodSandbox, timed. A failure is evidence
/// (leftovers), not the end of the scenario.
pub(super) async fn stop_pod(ctx: &Ctx, run: &Run, sandbox_id: &str) {
    let mut cri = ctx.cri.clone();
    run.lock().created.stop_tried.insert(sandbox_id.to_string());
    let t = Instant::now();
    match cri.stop_pod_sandbox(sandbox_id).await {
        Ok(()) => run.ms(|m| m.stop_pod_sandbox_ms = Some(elapsed_ms(t))),
        Err(e) => run.note(format!("{e:#}")),
    }
    let t = Instant::now();
    match cri.remove_pod_sandbox(sandbox_id).await {
        Ok(()) => {
            run.ms(|m| m.remove_pod_sandbox_ms = Some(elapsed_ms(t)));
            run.lock().created.removed.insert(sandbox_id.to_string());
            run.step("pod stopped and removed");
        }
        Err(e) => run.note(format!("{e:#}")),
    }
}

/// Stops and removes any sandbox the scenario left, then its pod slice. Never fails: problems
/// become notes.
pub(super) async fn cleanup(ctx: &Ctx, run: &Run) {
    let (sandboxes, tried, slices, uid) = {
        let s = run.lock();
        let left: Vec<String> = s
            .created
            .sandboxes
            .iter()
            .filter(|id| !s.created.removed.contains(*id))
            .cloned()
            .collect();
        (
            left,
            s.created.stop_tried.clone(),
            s.created.slices.clone(),
            s.created.pod_uid.clone(),
        )
    };
    if let Some(dir) = run.ev(|e| e.pod.as_ref().map(|p| p.log_directory.clone())) {
        let name = run.lock().report.name.clone();
        let dest = ctx.results.join("pods").join(name);
        if let Err(e) = copy_logs(Path::new(&dir), &dest, 0) {
            run.note(format!("copying the pod's logs from {dir}: {e}"));
        }
    }
    let mut cri = ctx.cri.clone();
    let mut all = sandboxes;
    if let Some(uid) = uid {
        match cri.list_pod_sandboxes(UID_LABEL, &uid).await {
            Ok(items) => all.extend(items.into_iter().map(|p| p.id)),
            Err(e) => run.note(format!("clean-up: listing the pod's sandboxes: {e:#}")),
        }
    }
    all.sort();
    all.dedup();
    for id in all {
        // A sandbox whose StopPodSandbox already failed once gets its runsc processes killed
        // first: asking again would only wait for the same time-out, and an escaped sandbox
        // left running would distort every scenario after it.
        if tried.contains(&id) {
            force_kill_runsc(run, &id).await;
        }
        if stop_and_remove(ctx, run, &id, "clean-up").await.is_err() && !tried.contains(&id) {
            force_kill_runsc(run, &id).await;
            let _ = stop_and_remove(ctx, run, &id, "clean-up after kill").await;
        }
    }
    for unit in slices {
        remove_pod_slice(ctx, run, &unit).await;
    }
}

async fn remove_pod_slice(ctx: &Ctx, run: &Run, unit: &str) {
    let limit = ctx.limit(60);
    let problems = systemd::remove_slice(unit, limit).await;
    for p in problems {
        run.note(format!("clean-up of {unit}: {p}"));
    }
    let path = pod::slice_path(unit);
    if cgroup::dir_of(&ctx.cgroup_root, &path).exists() {
        run.note(format!(
            "clean-up: the cgroup {path} still exists after stopping {unit}"
        ));
    } else {
        run.step(format!("removed {unit}"));
    }
}

/// Copies a pod's log directory (container logs, the shim's and runsc's logs when they write
/// there) into the results, each file cut at 4 MiB.
fn copy_logs(from: &Path, to: &Path, depth: usize) -> std::io::Result<()> {
    const MAX: u64 = 4 * MIB;
    if !from.is_dir() || depth > 3 {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)?.flatten() {
        let ty = e.file_type()?;
        let dest = to.join(e.file_name());
        if ty.is_dir() {
            copy_logs(&e.path(), &dest, depth + 1)?;
        } else if ty.is_file() {
            use std::io::Read;
            let mut buf = Vec::new();
            std::fs::File::open(e.path())?
                .take(MAX)
                .read_to_end(&mut buf)?;
            std::fs::write(dest, buf)?;
        }
    }
    Ok(())
}

/// StopPodSandbox + RemovePodSandbox, failures noted; Ok when the sandbox is gone.
async fn stop_and_remove(ctx: &Ctx, run: &Run, id: &str, why: &str) -> Result<()> {
    let mut cri = ctx.cri.clone();
    run.step(format!("{why}: stopping and removing sandbox {id}"));
    run.lock().created.stop_tried.insert(id.to_string());
    if let Err(e) = cri.stop_pod_sandbox(id).await {
        run.note(format!("{why}: {e:#}"));
    }
    match cri.remove_pod_sandbox(id).await {
        Ok(()) => {
            run.lock().created.removed.insert(id.to_string());
            Ok(())
        }
        Err(e) => {
            run.note(format!("{why}: {e:#}"));
            Err(e)
        }
    }
}

/// Last resort for a sandbox containerd cannot stop: SIGKILL its runsc processes (only those
/// naming this sandbox id); the report says it happened.
async fn force_kill_runsc(run: &Run, sandbox_id: &str) {
    let killed = procs::kill_runsc_of(sandbox_id, Duration::from_secs(2)).await;
    if !killed.pids.is_empty() {
        run.note(format!(
            "killed the runsc processes of sandbox {sandbox_id} (pids {}) so the pod can go",
            killed.pids.join(" ")
        ));
    }
    if let Some(p) = killed.problem {
        run.note(p);
    }
}

/// Everything of the pod still around, looking for `ids` (sandbox and container ids); with a
/// baseline, also runtime processes and `cri-containerd` cgroups that appeared since.
async fn collect_leftovers(
    ctx: &Ctx,
    ids: &[String],
    uid: &str,
    shim_sockets: &[String],
    baseline: Option<&Baseline>,
) -> Leftovers {
    let mut l = Leftovers::default();
    let all = procs::snapshot();
    let mut seen = BTreeSet::new();
    for p in procs::runtime_procs_for(&all, ids) {
        seen.insert(p.pid);
        l.processes.push(format!("{} {}", p.pid, p.argv.join(" ")));
    }
    if let Some(b) = baseline {
        for p in all.iter().filter(|p| {
            (RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
                && !b.pids.contains(&p.pid)
                && !seen.contains(&p.pid)
        }) {
            l.processes.push(format!(
                "{} {} (new since the scenario began)",
                p.pid,
                p.argv.join(" ")
            ));
        }
    }
    l.cgroups = cgroup::find_dirs_mentioning(&ctx.cgroup_root, ids, 7);
    if let Some(b) = baseline {
        for c in cgroup::find_dirs_mentioning(&ctx.cgroup_root, &["cri-containerd".to_string()], 7)
        {
            if !b.cgroups.contains(&c) && !l.cgroups.contains(&c) {
                l.cgroups.push(c);
            }
        }
    }
    for id in ids {
        match systemd::list_units(&format!("cri-containerd-{id}.scope"), ctx.limit(30)).await {
            Ok(units) => l.scope_units.extend(units),
            Err(e) => l.scope_units.push(format!("(could not list units: {e:#})")),
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    l.mounts = evidence::mounts_mentioning(&mountinfo, ids);
    l.bundle_dirs = state_dirs_naming(ids);
    l.shim_sockets = shim_sockets_left(ids, shim_sockets);
    let mut cri = ctx.cri.clone();
    match cri.list_pod_sandboxes(UID_LABEL, uid).await {
        Ok(items) => l.sandboxes_listed = items.into_iter().map(|p| p.id).collect(),
        Err(e) => l
            .sandboxes_listed
            .push(format!("(ListPodSandbox failed: {e:#})")),
    }
    l
}

/// Entries of the runtimes' state directories whose name contains one of `ids`.
fn state_dirs_naming(ids: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in STATE_DIRS {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if ids
                    .iter()
                    .any(|id| !id.is_empty() && name.contains(id.as_str()))
                {
                    found.push(with_contents(&format!("{dir}/{name}")));
                }
            }
        }
    }
    found
}

/// A left-behind path, with what a directory still holds (what left it there is in the names).
fn with_contents(path: &str) -> String {
    let Ok(entries) = std::fs::read_dir(path) else {
        return path.to_string();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let more = names.len().saturating_sub(12);
    names.truncate(12);
    if more > 0 {
        names.push(format!("and {more} more"));
    }
    format!("{path} (holds: {})", names.join(", "))
}

/// Which of the shim sockets seen while the pod ran, and of those containerd's shim protocol
/// names for `ids`, still exist.
fn shim_sockets_left(ids: &[String], seen: &[String]) -> Vec<String> {
    let mut sockets: Vec<String> = seen.to_vec();
    for id in ids {
        let p = evidence::shim_socket_path(CONTAINERD_ADDRESS, CRI_NAMESPACE, id);
        sockets.push(format!("{p}.debug"));
        sockets.push(p);
    }
    sockets.sort();
    sockets.dedup();
    sockets
        .into_iter()
        .filter(|s| Path::new(s).exists())
        .collect()
}

/// Polls for leftovers until none remain or the time is up (processes take a moment to exit).
pub(super) async fn settle_leftovers(
    ctx: &Ctx,
    run: &Run,
    ids: &[String],
    uid: &str,
    shim_sockets: &[String],
    baseline: Option<&Baseline>,
) {
    let deadline = Instant::now() + ctx.limit(30);
    loop {
        let l = collect_leftovers(ctx, ids, uid, shim_sockets, baseline).await;
        if l.is_clean() || Instant::now() >= deadline {
            run.step(format!("leftovers: {}", l.describe()));
            run.ev(|e| e.leftovers = Some(l));
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
