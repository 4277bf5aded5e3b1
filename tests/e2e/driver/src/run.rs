//! Running one scenario the way kubelet would drive a pod, gathering evidence on the way, and
//! cleaning up whatever happened.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_cri::v1::ContainerState;

use crate::cgroup::{self, CGROUP_ROOT};
use crate::cri::Cri;
use crate::evidence;
use crate::logs;
use crate::pod::{self, PodIdentity, PodSlice, MIB, UID_LABEL};
use crate::procs::{self, Proc, RUNSC_PROCS, SHIM_PROCS};
use crate::report::{
    ContainerFinal, CriContainerState, ExecRecord, Leftovers, Measurements, NodeHealth, Outcome,
    PodInfo, ProcRss, SandboxProc, ScenarioReport, StatsRecord, Step,
};
use crate::scenarios::{self, Kind, Scenario};
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

/// What every scenario shares.
#[derive(Clone)]
pub struct Ctx {
    pub cri: Cri,
    pub cgroup_root: PathBuf,
    pub node_mem_total: u64,
    /// Image name prefix (`--images`).
    pub images: String,
    /// The results directory: each pod's log directory is copied to `<results>/pods/<scenario>`.
    pub results: PathBuf,
}

impl Ctx {
    pub fn limit(&self, secs: u64) -> Duration {
        self.cri.limit(secs)
    }
}

/// What a scenario has created, so clean-up can undo it whatever happened.
#[derive(Default)]
struct Created {
    sandboxes: Vec<String>,
    removed: BTreeSet<String>,
    /// Sandboxes StopPodSandbox was already sent for.
    stop_tried: BTreeSet<String>,
    slices: Vec<String>,
    pod_uid: Option<String>,
}

struct Shared {
    report: ScenarioReport,
    created: Created,
    t0: Instant,
}

/// The running scenario's record, shared between its task and the supervisor.
#[derive(Clone)]
struct Run(Arc<Mutex<Shared>>);

impl Run {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere must not lose the evidence gathered so far.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn step(&self, what: impl Into<String>) {
        let what = what.into();
        let mut s = self.lock();
        let t_ms = s.t0.elapsed().as_millis() as u64;
        eprintln!(
            "e2e-driver: [{} +{:.1}s] {what}",
            s.report.name,
            t_ms as f64 / 1000.0
        );
        s.report.steps.push(Step { t_ms, what });
    }

    fn ev<R>(&self, f: impl FnOnce(&mut crate::report::Evidence) -> R) -> R {
        f(&mut self.lock().report.evidence)
    }

    fn ms<R>(&self, f: impl FnOnce(&mut Measurements) -> R) -> R {
        f(&mut self.lock().report.measurements)
    }

    fn note(&self, n: impl Into<String>) {
        let n = n.into();
        self.step(format!("note: {n}"));
        self.ev(|e| e.notes.push(n));
    }
}

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// A fresh pod uid (the kernel's random UUID).
fn new_uid() -> Result<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .context("reading /proc/sys/kernel/random/uuid for a pod uid")?;
    Ok(raw.trim().to_string())
}

pub async fn run_scenario(ctx: &Ctx, sc: &Scenario) -> ScenarioReport {
    let run = Run(Arc::new(Mutex::new(Shared {
        report: ScenarioReport {
            name: sc.name.to_string(),
            handler: sc.handler.to_string(),
            description: sc.description.to_string(),
            ..Default::default()
        },
        created: Created::default(),
        t0: Instant::now(),
    })));
    run.step(format!("start (handler {})", sc.handler));
    let task = {
        let (ctx, sc, run) = (ctx.clone(), sc.clone(), run.clone());
        tokio::spawn(async move {
            match sc.kind {
                Kind::Refusal => refusal_body(&ctx, &sc, &run).await,
                _ => pod_body(&ctx, &sc, &run).await,
            }
        })
    };
    let limit = ctx.limit(sc.time_limit_secs());
    let abort = task.abort_handle();
    let (error, timed_out) = match tokio::time::timeout(limit, task).await {
        Err(_) => {
            abort.abort();
            (
                Some(format!(
                    "the scenario did not finish within its limit of {:.0} s",
                    limit.as_secs_f64()
                )),
                true,
            )
        }
        Ok(Err(join)) => (Some(format!("the scenario's task failed: {join}")), false),
        Ok(Ok(Err(e))) => (Some(format!("{e:#}")), false),
        Ok(Ok(Ok(()))) => (None, false),
    };
    if let Some(e) = &error {
        run.step(format!("error: {e}"));
    }
    cleanup(ctx, &run).await;

    let mut s = run.lock();
    let (checks, verdict) = scenarios::judge(sc, &s.report.evidence);
    let duration_ms = elapsed_ms(s.t0);
    let r = &mut s.report;
    r.error = error;
    r.checks = checks;
    r.verdict = verdict;
    r.passed = r.error.is_none() && r.checks.iter().all(|c| c.ok);
    r.outcome = if timed_out {
        Outcome::Timeout
    } else if r.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    r.duration_ms = duration_ms;
    r.clone()
}

/// Stops and removes any sandbox the scenario left, then its pod slice. Never fails: problems
/// become notes.
async fn cleanup(ctx: &Ctx, run: &Run) {
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
        let limit = ctx.limit(60);
        let problems = systemd::remove_slice(&unit, limit).await;
        for p in problems {
            run.note(format!("clean-up of {unit}: {p}"));
        }
        let path = pod::slice_path(&unit);
        if cgroup::dir_of(&ctx.cgroup_root, &path).exists() {
            run.note(format!(
                "clean-up: the cgroup {path} still exists after stopping {unit}"
            ));
        } else {
            run.step(format!("removed {unit}"));
        }
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
/// naming this sandbox id). The guest is a throw-away VM; the report says it happened.
async fn force_kill_runsc(run: &Run, sandbox_id: &str) {
    let all = procs::snapshot();
    let ids = [sandbox_id.to_string()];
    let pids: Vec<String> = procs::runtime_procs_for(&all, &ids)
        .into_iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()))
        .map(|p| p.pid.to_string())
        .collect();
    if pids.is_empty() {
        return;
    }
    run.note(format!(
        "killing the runsc processes of sandbox {sandbox_id} (pids {}) so the pod can go",
        pids.join(" ")
    ));
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .status(),
    )
    .await;
    if !matches!(r, Ok(Ok(st)) if st.success()) {
        run.note(format!(
            "kill -KILL {} did not succeed: {r:?}",
            pids.join(" ")
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Creates the pod slice like kubelet: a systemd slice with MemoryMax, controllers enabled down
/// to it, the limit also written to memory.max directly (as runc's systemd driver does), then
/// read back. Returns what memory.max says.
async fn create_pod_slice(
    ctx: &Ctx,
    run: &Run,
    slice: &PodSlice,
    memory_max: Option<u64>,
) -> Result<Option<String>> {
    run.lock().created.slices.push(slice.unit.clone());
    systemd::start_slice(&slice.unit, memory_max, ctx.limit(60))
        .await
        .with_context(|| format!("creating the pod slice {}", slice.unit))?;
    let dir = cgroup::dir_of(&ctx.cgroup_root, &slice.path);
    if !dir.is_dir() {
        bail!(
            "systemd started {} but its cgroup {} does not exist",
            slice.unit,
            dir.display()
        );
    }
    for p in cgroup::enable_controllers_down_to(&ctx.cgroup_root, &slice.path) {
        run.note(format!("enabling controllers: {p}"));
    }
    let max_file = dir.join("memory.max");
    if let Some(m) = memory_max {
        let current = std::fs::read_to_string(&max_file).unwrap_or_default();
        if current.trim() != m.to_string() {
            std::fs::write(&max_file, m.to_string()).with_context(|| {
                format!(
                    "writing {m} to {} (systemd left {:?})",
                    max_file.display(),
                    current.trim()
                )
            })?;
        }
    }
    let read = std::fs::read_to_string(&max_file)
        .ok()
        .map(|s| s.trim().to_string());
    if let Some(m) = memory_max {
        if read.as_deref() != Some(m.to_string().as_str()) {
            bail!(
                "the pod slice's memory.max reads {read:?} after setting MemoryMax={m}: \
                 the memory controller is not enabled on the way down to {}",
                slice.path
            );
        }
    }
    run.step(format!(
        "pod slice {} ready, memory.max {}",
        slice.unit,
        read.as_deref().unwrap_or("(none)")
    ));
    Ok(read)
}

fn rss_list(procs: &[&Proc]) -> Vec<ProcRss> {
    procs
        .iter()
        .map(|p| ProcRss {
            pid: p.pid,
            name: p.name().to_string(),
            rss_kib: p.rss_kib,
        })
        .collect()
}

/// The sandbox process, shims and runsc processes of the pod, as they are now.
fn observe_processes(ctx: &Ctx, run: &Run, sandbox_id: &str, container_id: &str, pod_path: &str) {
    let all = procs::snapshot();
    let sandbox = procs::find_sandbox(&all, sandbox_id);
    let container_pid = run.ev(|e| e.container_pid);
    let mut children: Vec<u32> = sandbox.map(|p| vec![p.pid]).unwrap_or_default();
    children.extend(container_pid.and_then(|p| u32::try_from(p).ok()));
    let mut shims: Vec<&Proc> = SHIM_PROCS
        .iter()
        .flat_map(|name| procs::find_shims(&all, name, sandbox_id, &children))
        .collect();
    shims.sort_by_key(|p| p.pid);
    shims.dedup_by_key(|p| p.pid);
    let ids = [sandbox_id.to_string(), container_id.to_string()];
    let runsc: Vec<&Proc> = procs::runtime_procs_for(&all, &ids)
        .into_iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()))
        .collect();
    let shim_total: Option<u64> = if shims.is_empty() {
        None
    } else {
        Some(shims.iter().filter_map(|p| p.rss_kib).sum())
    };
    run.ms(|m| {
        if !shims.is_empty() {
            m.shims = rss_list(&shims);
        }
        if !runsc.is_empty() {
            m.runsc = rss_list(&runsc);
        }
        m.shim_rss_kib_max = match (m.shim_rss_kib_max, shim_total) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    });
    if let Some(p) = sandbox {
        let raw = procs::flag_value(&p.argv, "total-memory").map(str::to_string);
        let facts = p
            .cgroup
            .as_deref()
            .map(|c| cgroup::read_facts(&ctx.cgroup_root, c));
        let seen = facts
            .as_ref()
            .and_then(|f| match (f.memory_peak, f.memory_current) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            });
        let sp = SandboxProc {
            pid: p.pid,
            total_memory: raw.as_deref().and_then(|r| r.parse().ok()),
            total_memory_raw: raw,
            total_host_memory: procs::flag_value(&p.argv, "total-host-memory").map(str::to_string),
            cgroup: p.cgroup.clone(),
            under_pod_slice: p
                .cgroup
                .as_deref()
                .is_some_and(|c| cgroup::is_under(c, pod_path)),
            cgroup_is_leaf: facts.as_ref().map(|f| f.is_leaf()),
            cgroup_memory_max: facts.and_then(|f| f.memory_max),
            argv: p.argv.clone(),
        };
        run.ev(|e| {
            e.sandbox_alive_at_end = Some(true);
            e.runsc_sandbox = Some(sp);
            e.sandbox_cgroup_memory_max_bytes = match (e.sandbox_cgroup_memory_max_bytes, seen) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        });
    } else if run.ev(|e| e.runsc_sandbox.is_some()) {
        run.ev(|e| e.sandbox_alive_at_end = Some(false));
    }
}

/// The shim's listening unix sockets, read while it runs (checked for removal later).
fn shim_socket_paths(run: &Run) -> Vec<String> {
    let pids: Vec<u32> = run.ms(|m| m.shims.iter().map(|p| p.pid).collect());
    let inodes: Vec<u64> = pids.iter().flat_map(|p| procs::socket_inodes(*p)).collect();
    let net = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    procs::unix_socket_paths(&net, &inodes)
}

fn read_log(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| logs::messages(&t))
        .unwrap_or_default()
}

async fn record_final_status(ctx: &Ctx, run: &Run, container_id: &str) {
    let mut cri = ctx.cri.clone();
    match cri.container_state(container_id).await {
        Ok(st) => {
            let fin = ContainerFinal {
                state: CriContainerState::from(st.state),
                exit_code: st.exit_code,
                reason: st.reason.clone(),
                message: st.message.clone(),
            };
            run.step(format!(
                "container status: {}, exit {}, reason {:?}",
                fin.state, fin.exit_code, fin.reason
            ));
            run.ev(|e| e.container_final = Some(fin));
        }
        Err(e) => run.note(format!("final ContainerStatus: {e:#}")),
    }
}

async fn record_stats(ctx: &Ctx, run: &Run, container_id: &str) {
    let mut cri = ctx.cri.clone();
    let rec = match cri.container_stats(container_id).await {
        Ok(s) => {
            let mem = s.memory.unwrap_or_default();
            StatsRecord {
                working_set_bytes: mem.working_set_bytes.map(|v| v.value),
                usage_bytes: mem.usage_bytes.map(|v| v.value),
                rss_bytes: mem.rss_bytes.map(|v| v.value),
                error: None,
            }
        }
        Err(e) => StatsRecord {
            error: Some(format!("{e:#}")),
            ..Default::default()
        },
    };
    run.ev(|e| e.stats = Some(rec));
}

async fn record_exec(ctx: &Ctx, run: &Run, container_id: &str, cmd: Vec<String>) {
    let mut cri = ctx.cri.clone();
    let mut rec = ExecRecord {
        command: cmd.clone(),
        ..Default::default()
    };
    match cri.exec_sync(container_id, &cmd, 30).await {
        Ok(r) => {
            let out = String::from_utf8_lossy(&r.stdout).into_owned();
            rec.exit_code = Some(r.exit_code);
            rec.guest_mem_total_kib = evidence::parse_meminfo(&out).get("MemTotal").copied();
            rec.stdout_head = out.chars().take(400).collect();
            rec.stderr_head = String::from_utf8_lossy(&r.stderr)
                .chars()
                .take(400)
                .collect();
            run.step(format!("ExecSync {cmd:?}: exit {}", r.exit_code));
        }
        Err(e) => {
            run.step(format!("ExecSync {cmd:?} failed (recorded): {e:#}"));
            rec.error = Some(format!("{e:#}"));
        }
    }
    run.ev(|e| e.exec = Some(rec));
}

async fn node_health(ctx: &Ctx) -> NodeHealth {
    let mut cri = ctx.cri.clone();
    let (cri_answers, cri_error) = match cri.version().await {
        Ok(_) => (true, None),
        Err(e) => (false, Some(format!("{e:#}"))),
    };
    let mi = evidence::meminfo();
    NodeHealth {
        cri_answers,
        cri_error,
        mem_total_kib: mi.get("MemTotal").copied(),
        mem_available_kib: mi.get("MemAvailable").copied(),
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
    for dir in STATE_DIRS {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if ids
                    .iter()
                    .any(|id| !id.is_empty() && name.contains(id.as_str()))
                {
                    l.bundle_dirs.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    let mut sockets: Vec<String> = shim_sockets.to_vec();
    for id in ids {
        let p = evidence::shim_socket_path(CONTAINERD_ADDRESS, CRI_NAMESPACE, id);
        sockets.push(format!("{p}.debug"));
        sockets.push(p);
    }
    sockets.sort();
    sockets.dedup();
    l.shim_sockets = sockets
        .into_iter()
        .filter(|s| Path::new(s).exists())
        .collect();
    let mut cri = ctx.cri.clone();
    match cri.list_pod_sandboxes(UID_LABEL, uid).await {
        Ok(items) => l.sandboxes_listed = items.into_iter().map(|p| p.id).collect(),
        Err(e) => l
            .sandboxes_listed
            .push(format!("(ListPodSandbox failed: {e:#})")),
    }
    l
}

/// Polls for leftovers until none remain or the time is up (processes take a moment to exit).
async fn settle_leftovers(
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

/// Runtime processes and cri-containerd cgroups before a scenario, to spot what it adds.
struct Baseline {
    pids: BTreeSet<u32>,
    cgroups: Vec<String>,
}

/// Runtime processes (runsc, shims) that were not there at `before`, with their arguments.
fn new_runtime_procs(before: &Baseline) -> Vec<String> {
    procs::snapshot()
        .iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
        .filter(|p| !before.pids.contains(&p.pid))
        .map(|p| format!("{} {}", p.pid, p.argv.join(" ")))
        .collect()
}

fn baseline(ctx: &Ctx) -> Baseline {
    Baseline {
        pids: procs::snapshot()
            .iter()
            .filter(|p| RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
            .map(|p| p.pid)
            .collect(),
        cgroups: cgroup::find_dirs_mentioning(&ctx.cgroup_root, &["cri-containerd".to_string()], 7),
    }
}

fn pod_info(sc: &Scenario, id: &PodIdentity, slice: &PodSlice, created: bool) -> PodInfo {
    let shape = sc.shape();
    PodInfo {
        name: id.name.clone(),
        uid: id.uid.clone(),
        qos: Some(shape.qos),
        cgroup_parent: id.cgroup_parent.clone(),
        log_directory: id.log_directory.clone(),
        slice_path: slice.path.clone(),
        slice_created: created,
        slice_memory_max_configured: shape.slice_memory_max,
        slice_memory_max_read: None,
        sandbox_memory_limit: shape.sandbox_memory_limit,
        overhead_memory: shape.overhead_memory,
        container_memory_limit: shape.container_memory_limit,
    }
}

/// The StartContainer call running in the background.
struct StartCall {
    task: Option<tokio::task::JoinHandle<(Result<()>, u64)>>,
}

impl StartCall {
    /// Its result, the first time it is seen finished.
    async fn poll(&mut self, run: &Run) -> Option<Result<()>> {
        if !self.task.as_ref().is_some_and(|t| t.is_finished()) {
            return None;
        }
        let t = self.task.take()?;
        let (r, ms) = t.await.unwrap_or_else(|e| (Err(anyhow!("{e}")), 0));
        run.ms(|m| m.start_container_ms = Some(ms));
        run.step(format!(
            "StartContainer returned after {ms} ms: {}",
            match &r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            }
        ));
        Some(r)
    }

    /// Before the pod goes: record the result, or that it never came (then give up on it).
    async fn finish(&mut self, run: &Run, sent: Instant) {
        if let Some(Err(e)) = self.poll(run).await {
            run.note(format!("StartContainer failed: {e:#}"));
        }
        if let Some(t) = self.task.take() {
            run.note(format!(
                "StartContainer had not returned {:.0} s after it was sent",
                sent.elapsed().as_secs_f64()
            ));
            run.ev(|e| e.start_blocked = true);
            t.abort();
        }
    }
}

/// A fresh pod for a scenario: its shape, uid, slice and identity, recorded in the report.
/// `slice_created` says whether the scenario creates the slice (the refusal pod's never exists).
fn new_pod(
    sc: &Scenario,
    run: &Run,
    slice_created: bool,
) -> Result<(pod::PodShape, String, pod::PodSlice, PodIdentity)> {
    let shape = sc.shape();
    let uid = new_uid()?;
    let slice = pod::pod_slice(shape.qos, &uid);
    let id = PodIdentity::new(sc.name, &uid, &slice.unit);
    run.lock().created.pod_uid = Some(uid.clone());
    run.ev(|e| e.pod = Some(pod_info(sc, &id, &slice, slice_created)));
    Ok((shape, uid, slice, id))
}

async fn pod_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    let mut cri = ctx.cri.clone();
    let (shape, uid, slice, id) = new_pod(sc, run, true)?;

    let read = create_pod_slice(ctx, run, &slice, shape.slice_memory_max).await?;
    run.ev(|e| {
        if let Some(p) = e.pod.as_mut() {
            p.slice_memory_max_read = read;
        }
    });

    let image = sc.image(&ctx.images);
    let image = image.as_str();
    if !cri.image_present(image).await? {
        bail!(
            "image {image} is not in containerd's k8s.io namespace: the guest setup must import \
             it (ctr -n k8s.io images import) before the driver runs"
        );
    }
    // kubelet creates the pod's log directory before RunPodSandbox (runsc shims log there);
    // the container's directory below it too.
    let cname = sc.container_name();
    let log_file = Path::new(&id.log_directory).join(pod::container_log_path(cname));
    if let Some(dir) = log_file.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the log directory {}", dir.display()))?;
    }

    // RunPodSandbox → RUNNING, timed like kubelet would see it.
    let sandbox_config = pod::sandbox_config(&id, &shape);
    let before = baseline(ctx);
    let t0 = Instant::now();
    run.step(format!(
        "RunPodSandbox (handler {}, cgroup_parent {})",
        sc.handler, slice.unit
    ));
    let sandbox_id = match cri
        .run_pod_sandbox(sandbox_config.clone(), sc.handler)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            run.ev(|ev| ev.run_pod_sandbox_error = Some(format!("{e:#}")));
            // What the runtime had started by then tells a hang from a refusal.
            let new = new_runtime_procs(&before);
            run.note(format!(
                "runtime processes started since RunPodSandbox was sent: {}",
                if new.is_empty() {
                    "none".to_string()
                } else {
                    new.join("; ")
                }
            ));
            return Err(e);
        }
    };
    run.ms(|m| m.run_pod_sandbox_ms = Some(elapsed_ms(t0)));
    {
        let mut s = run.lock();
        s.created.sandboxes.push(sandbox_id.clone());
        s.report.evidence.sandbox_id = Some(sandbox_id.clone());
    }
    run.step(format!("sandbox {sandbox_id}"));
    match cri.pod_sandbox_status(&sandbox_id).await {
        Ok(st) => {
            let state = st
                .status
                .as_ref()
                .map(|s| {
                    k8s_cri::v1::PodSandboxState::try_from(s.state)
                        .map(|x| x.as_str_name().to_string())
                        .unwrap_or_else(|_| s.state.to_string())
                })
                .unwrap_or_default();
            let info = evidence::sandbox_info(&state, &st.info);
            run.step(format!(
                "sandbox cgroupsPath {:?}, sandbox-memory annotation {:?}",
                info.cgroups_path, info.sandbox_memory_annotation
            ));
            run.ev(|e| e.sandbox = Some(info));
        }
        Err(e) => run.note(format!("PodSandboxStatus: {e:#}")),
    }
    // Where the sandbox landed and how big its guest is are fixed once RunPodSandbox returns:
    // take them now, so a sandbox that dies later (stock runsc 20240729 sometimes panics in its
    // sentry under emulation) still shows its placement and --total-memory.
    observe_processes(ctx, run, &sandbox_id, "", &slice.path);

    let node_mem = ctx.node_mem_total;
    let oom_adj = match shape.container_memory_limit {
        Some(l) => pod::burstable_oom_score_adj(l, node_mem),
        None => 1000,
    };
    let container_config = pod::container_config(&pod::ContainerSpec {
        name: cname,
        image,
        command: sc.command(),
        memory_limit: shape.container_memory_limit,
        oom_score_adj: oom_adj,
    });
    let t_create = Instant::now();
    let container_id = cri
        .create_container(&sandbox_id, container_config, sandbox_config)
        .await?;
    run.ms(|m| m.create_container_ms = Some(elapsed_ms(t_create)));
    run.ev(|e| e.container_id = Some(container_id.clone()));
    run.step(format!("container {container_id} created"));

    // StartContainer may block (containerd's runc shim driving runsc hands the FIFOs over at
    // the wrong moment and waits until the container exits), so it runs on its own and the
    // driver watches the container meanwhile. Its limit is the scenario's: giving up on the RPC
    // makes containerd kill the task.
    let t_start = Instant::now();
    let start_task = {
        let mut cri = ctx.cri.clone();
        let cid = container_id.clone();
        let limit = ctx.limit(sc.time_limit_secs());
        tokio::spawn(async move {
            let r = cri.start_container(&cid, limit).await;
            (r, elapsed_ms(t_start))
        })
    };
    let mut start = StartCall {
        task: Some(start_task),
    };
    let running_limit = ctx.limit(120);
    // An eater whose StartContainer hangs may be running all the same: after this long, watch it.
    let blocked_limit = ctx.limit(30);
    let deadline = Instant::now() + running_limit;
    let mut seen_state = String::new();
    loop {
        if let Some(Err(e)) = start.poll(run).await {
            bail!("StartContainer failed: {e:#}");
        }
        match cri.container_state(&container_id).await {
            Ok(st) => {
                seen_state = CriContainerState::from(st.state).to_string();
                if st.state == ContainerState::ContainerRunning as i32 {
                    let ms = elapsed_ms(t0);
                    run.ms(|m| m.to_running_ms = Some(ms));
                    run.step(format!(
                        "container RUNNING {ms} ms after RunPodSandbox was sent"
                    ));
                    break;
                }
                if st.state == ContainerState::ContainerExited as i32 {
                    run.note("the container exited before a RUNNING status was seen");
                    break;
                }
            }
            Err(e) => run.note(format!("ContainerStatus while starting: {e:#}")),
        }
        let pending = start.task.is_some();
        if pending && t_start.elapsed() >= blocked_limit && matches!(sc.kind, Kind::Eater(_)) {
            let sandbox_up = procs::find_sandbox(&procs::snapshot(), &sandbox_id).is_some();
            let said_something = !read_log(&log_file).is_empty();
            if sandbox_up || said_something {
                run.note(format!(
                    "StartContainer has not returned after {:.0} s (container {seen_state}); \
                     watching the container anyway",
                    t_start.elapsed().as_secs_f64()
                ));
                break;
            }
        }
        if Instant::now() >= deadline {
            if pending {
                run.note(format!(
                    "the container was not running {:.0} s after StartContainer (state \
                     {seen_state}, StartContainer still pending); watching it anyway",
                    running_limit.as_secs_f64()
                ));
                break;
            }
            bail!(
                "the container was not running {:.0} s after StartContainer (last state {seen_state})",
                running_limit.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Where the container landed, per containerd.
    match cri.container_status(&container_id, true).await {
        Ok(st) => {
            let (pid, cgroups_path) = evidence::info_pid_and_cgroups_path(&st.info);
            // containerd reports pid 0 for a container that has not started.
            let pid = pid.filter(|p| *p != 0);
            let cg = pid.and_then(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cgroup"))
                    .ok()
                    .and_then(|t| procs::parse_proc_cgroup(&t))
            });
            run.step(format!(
                "container pid {pid:?}, cgroupsPath {cgroups_path:?}, cgroup {cg:?}"
            ));
            run.ev(|e| {
                e.container_pid = pid;
                e.container_cgroup_under_pod =
                    cg.as_deref().map(|c| cgroup::is_under(c, &slice.path));
                e.container_cgroup = cg;
            });
        }
        Err(e) => run.note(format!("verbose ContainerStatus: {e:#}")),
    }
    observe_processes(ctx, run, &sandbox_id, &container_id, &slice.path);
    if let Some(p) = run.ev(|e| e.runsc_sandbox.clone()) {
        run.step(format!(
            "runsc-sandbox pid {} in {:?} (under pod slice: {}, leaf: {:?}), --total-memory {:?}",
            p.pid, p.cgroup, p.under_pod_slice, p.cgroup_is_leaf, p.total_memory_raw
        ));
    }

    match &sc.kind {
        Kind::Exit(_) => wait_exit(ctx, run, &container_id, &log_file).await,
        Kind::Eater(spec) => {
            // The eater image has nothing but /eater: without arguments it prints its usage and
            // exits 2, which shows ExecSync works without disturbing the pod.
            record_exec(ctx, run, &container_id, vec![scenarios::EATER_PATH.into()]).await;
            record_stats(ctx, run, &container_id).await;
            watch_eater(
                ctx,
                run,
                &sandbox_id,
                &container_id,
                &slice.path,
                &log_file,
                spec.max_mib,
            )
            .await;
        }
        Kind::Refusal => {}
    }

    // Last looks before the pod goes.
    record_final_status(ctx, run, &container_id).await;
    let messages = read_log(&log_file);
    run.ev(|e| {
        if matches!(sc.kind, Kind::Eater(_)) {
            e.eater = Some(logs::eater_progress(&messages));
        }
        e.log_tail = messages.iter().rev().take(12).rev().cloned().collect();
    });
    observe_processes(ctx, run, &sandbox_id, &container_id, &slice.path);
    let sandbox_cgroup = run.ev(|e| e.runsc_sandbox.as_ref().and_then(|p| p.cgroup.clone()));
    let pod_facts = cgroup::read_facts(&ctx.cgroup_root, &slice.path);
    run.step(format!(
        "pod slice: memory.max {:?}, peak {:?}, events {:?}",
        pod_facts.memory_max, pod_facts.memory_peak, pod_facts.memory_events
    ));
    run.ev(|e| {
        e.pod_slice_end = Some(pod_facts);
        e.sandbox_cgroup_end = sandbox_cgroup.map(|c| cgroup::read_facts(&ctx.cgroup_root, &c));
    });
    let sockets = shim_socket_paths(run);
    start.finish(run, t_start).await;

    // Stop and remove, timed. A failure is evidence (leftovers), not the end of the scenario.
    run.lock().created.stop_tried.insert(sandbox_id.clone());
    let t = Instant::now();
    match cri.stop_pod_sandbox(&sandbox_id).await {
        Ok(()) => run.ms(|m| m.stop_pod_sandbox_ms = Some(elapsed_ms(t))),
        Err(e) => run.note(format!("{e:#}")),
    }
    let t = Instant::now();
    match cri.remove_pod_sandbox(&sandbox_id).await {
        Ok(()) => {
            run.ms(|m| m.remove_pod_sandbox_ms = Some(elapsed_ms(t)));
            run.lock().created.removed.insert(sandbox_id.clone());
            run.step("pod stopped and removed");
        }
        Err(e) => run.note(format!("{e:#}")),
    }

    let ids = vec![sandbox_id, container_id];
    settle_leftovers(ctx, run, &ids, &uid, &sockets, None).await;
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

/// Waits for a run-to-completion container to exit.
async fn wait_exit(ctx: &Ctx, run: &Run, container_id: &str, log_file: &Path) {
    let mut cri = ctx.cri.clone();
    let deadline = Instant::now() + ctx.limit(90);
    loop {
        match cri.container_state(container_id).await {
            Ok(st) if st.state == ContainerState::ContainerExited as i32 => {
                run.step(format!("container exited with {}", st.exit_code));
                break;
            }
            Ok(_) => {}
            Err(e) => run.note(format!("ContainerStatus: {e:#}")),
        }
        if Instant::now() >= deadline {
            run.note(format!(
                "the container had not exited {:.0} s after starting",
                ctx.limit(90).as_secs_f64()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // containerd may write the last log lines just after the exit.
    for _ in 0..10 {
        if !read_log(log_file).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Follows the eater until it is killed, says `done`, or the time is up. Progress comes from its
/// log and, where the log stays empty (a shim that loses the container's stdio), from the memory
/// its sandbox's cgroup holds.
async fn watch_eater(
    ctx: &Ctx,
    run: &Run,
    sandbox_id: &str,
    container_id: &str,
    pod_path: &str,
    log_file: &Path,
    target_mib: u64,
) {
    let mut cri = ctx.cri.clone();
    let t = Instant::now();
    let limit = ctx.limit(360);
    let stall_limit = ctx.limit(90);
    let mut last_mib = 0u64;
    let mut last_mem = 0u64;
    let mut last_progress = Instant::now();
    let mut last_observe = Instant::now() - Duration::from_secs(10);
    let mut sandbox_gone_at: Option<Instant> = None;
    loop {
        let progress = logs::eater_progress(&read_log(log_file));
        if let Some(m) = progress.max_mib() {
            if m > last_mib {
                let at = elapsed_ms(t);
                run.ev(|e| e.eater_timeline.push((at, m)));
                if m / 128 > last_mib / 128 || m >= target_mib {
                    run.step(format!("eater at {m} MiB"));
                }
                last_mib = m;
                last_progress = Instant::now();
            }
        }
        if progress.done() {
            run.step(format!("eater done at {last_mib} MiB; it now sleeps"));
            record_stats(ctx, run, container_id).await;
            break;
        }
        match cri.container_state(container_id).await {
            Ok(st) if st.state == ContainerState::ContainerExited as i32 => {
                run.step(format!(
                    "container exited: code {}, reason {:?} (eater at {last_mib} MiB)",
                    st.exit_code, st.reason
                ));
                break;
            }
            Ok(_) => {}
            Err(e) => run.note(format!("ContainerStatus while eating: {e:#}")),
        }
        if last_observe.elapsed() >= Duration::from_secs(3) {
            observe_processes(ctx, run, sandbox_id, container_id, pod_path);
            last_observe = Instant::now();
            let (gone, mem) = run.ev(|e| {
                (
                    e.sandbox_alive_at_end == Some(false),
                    e.sandbox_cgroup_memory_max_bytes,
                )
            });
            let mem = mem.unwrap_or(0);
            if mem >= last_mem + MIB {
                if mem / (128 * MIB) > last_mem / (128 * MIB) && last_mib == 0 {
                    run.step(format!("sandbox cgroup holds {} MiB", mem / MIB));
                }
                last_mem = mem;
                last_progress = Instant::now();
            }
            if last_mib == 0 && mem >= target_mib * MIB {
                run.note(format!(
                    "the eater's log is silent, but its sandbox's cgroup holds {} MiB: at least \
                     the {target_mib} MiB it was asked to eat",
                    mem / MIB
                ));
                break;
            }
            if gone && sandbox_gone_at.is_none() {
                run.note(format!(
                    "the runsc-sandbox process is gone (eater at {last_mib} MiB) while the \
                     container is not reported exited"
                ));
                sandbox_gone_at = Some(Instant::now());
            }
        }
        // A dead sandbox whose container never shows as exited: give containerd a moment.
        if sandbox_gone_at.is_some_and(|g| g.elapsed() >= ctx.limit(20)) {
            run.note("the container was still not reported exited 20 s after its sandbox died");
            break;
        }
        if last_progress.elapsed() >= stall_limit {
            run.note(format!(
                "no progress for {:.0} s (log at {last_mib} MiB, sandbox cgroup at {} MiB)",
                stall_limit.as_secs_f64(),
                last_mem / MIB
            ));
            break;
        }
        if t.elapsed() >= limit {
            run.note(format!(
                "the eater neither finished nor was killed within {:.0} s (at {last_mib} MiB)",
                limit.as_secs_f64()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn refusal_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    let mut cri = ctx.cri.clone();
    let (shape, uid, slice, id) = new_pod(sc, run, false)?;
    let slice_dir = cgroup::dir_of(&ctx.cgroup_root, &slice.path);
    if slice_dir.exists() {
        bail!(
            "the pod slice {} exists before the scenario: the refusal needs a missing one",
            slice.path
        );
    }
    // kubelet creates the pod's log directory before RunPodSandbox (runsc shims log there).
    std::fs::create_dir_all(&id.log_directory)
        .with_context(|| format!("creating the log directory {}", id.log_directory))?;
    let before = baseline(ctx);
    let config = pod::sandbox_config(&id, &shape);
    run.step(format!(
        "RunPodSandbox with cgroup_parent {} (not created) and no resources",
        slice.unit
    ));
    let t0 = Instant::now();
    let mut ids = Vec::new();
    match cri.run_pod_sandbox(config, sc.handler).await {
        Ok(sandbox_id) => {
            run.ms(|m| m.run_pod_sandbox_ms = Some(elapsed_ms(t0)));
            run.step(format!("RunPodSandbox succeeded: sandbox {sandbox_id}"));
            let mut s = run.lock();
            s.created.sandboxes.push(sandbox_id.clone());
            s.report.evidence.sandbox_id = Some(sandbox_id.clone());
            ids.push(sandbox_id);
        }
        Err(e) => {
            let msg = format!("{e:#}");
            run.ms(|m| m.run_pod_sandbox_ms = Some(elapsed_ms(t0)));
            run.step(format!("RunPodSandbox failed: {msg}"));
            let new = new_runtime_procs(&before);
            if !new.is_empty() {
                run.note(format!(
                    "runtime processes still there after the failure: {}",
                    new.join("; ")
                ));
            }
            ids.extend(evidence::hex_ids(&msg));
            run.ev(|ev| ev.run_pod_sandbox_error = Some(msg));
        }
    }
    if let Some(sid) = ids.first().cloned() {
        if run.ev(|e| e.sandbox_id.is_some()) {
            // It ran: observe it like any pod, then take it down before looking for leftovers.
            observe_processes(ctx, run, &sid, "", &slice.path);
            let sockets = shim_socket_paths(run);
            cri.stop_pod_sandbox(&sid).await?;
            cri.remove_pod_sandbox(&sid).await?;
            run.lock().created.removed.insert(sid);
            settle_leftovers(ctx, run, &ids, &uid, &sockets, Some(&before)).await;
        } else {
            settle_leftovers(ctx, run, &ids, &uid, &[], Some(&before)).await;
        }
    } else {
        settle_leftovers(ctx, run, &ids, &uid, &[], Some(&before)).await;
    }
    // systemd creates a missing parent slice when a scope is started in it: that is left over too.
    let state = systemd::active_state(&slice.unit, ctx.limit(30))
        .await
        .unwrap_or_else(|e| format!("unknown ({e:#})"));
    if slice_dir.exists() || state == "active" {
        run.lock().created.slices.push(slice.unit.clone());
        run.ev(|e| {
            if let Some(l) = e.leftovers.as_mut() {
                l.cgroups.push(format!(
                    "{} (the missing pod slice was created; unit {state})",
                    slice.path
                ));
            }
        });
    }
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

/// kubelet's node-level slices, created once before the scenarios and removed after them.
pub const NODE_SLICES: &[&str] = &[
    "kubepods.slice",
    "kubepods-burstable.slice",
    "kubepods-besteffort.slice",
];

/// Starts the node-level slices and enables controllers down to them. Returns problems.
pub async fn setup_node(ctx: &Ctx) -> Vec<String> {
    let mut problems = Vec::new();
    for p in cgroup::enable_controllers_down_to(&ctx.cgroup_root, "") {
        problems.push(format!("root controllers: {p}"));
    }
    for unit in NODE_SLICES {
        if let Err(e) = systemd::start_slice(unit, None, ctx.limit(60)).await {
            problems.push(format!("{e:#}"));
            continue;
        }
        for p in cgroup::enable_controllers_down_to(&ctx.cgroup_root, &pod::slice_path(unit)) {
            problems.push(format!("{unit}: {p}"));
        }
    }
    problems
}

pub async fn teardown_node(ctx: &Ctx) -> Vec<String> {
    let mut problems = Vec::new();
    for unit in NODE_SLICES.iter().rev() {
        problems.extend(systemd::remove_slice(unit, ctx.limit(60)).await);
    }
    problems
}

pub fn default_cgroup_root() -> PathBuf {
    PathBuf::from(CGROUP_ROOT)
}

/// Node memory in bytes (for kubelet's oom_score_adj formula).
pub fn node_memory_bytes() -> u64 {
    evidence::meminfo()
        .get("MemTotal")
        .map(|k| k * 1024)
        .unwrap_or(4096 * MIB)
}
