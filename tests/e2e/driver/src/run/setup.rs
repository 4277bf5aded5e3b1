//! Set-up: the node-level slices once per suite, then for each pod what kubelet does before its
//! container runs (pod slice, log directory, RunPodSandbox, CreateContainer, StartContainer).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_cri::v1::{ContainerState, PodSandboxConfig};

use super::cleanup::{baseline, new_runtime_procs};
use super::observe::{read_log, record_sandbox_status};
use super::{elapsed_ms, Ctx, Run};
use crate::cgroup::{self, CGROUP_ROOT};
use crate::evidence;
use crate::pod::{self, PodIdentity, PodShape, PodSlice, MIB};
use crate::procs;
use crate::report::{CriContainerState, PodInfo};
use crate::scenarios::{Kind, Scenario};
use crate::systemd;

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

/// A fresh pod uid (the kernel's random UUID).
fn new_uid() -> Result<String> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .context("reading /proc/sys/kernel/random/uuid for a pod uid")?;
    Ok(raw.trim().to_string())
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

/// A fresh pod for a scenario: its shape, uid, slice and identity, recorded in the report.
/// `slice_created` says whether the scenario creates the slice (the refusal pod's never exists).
pub(super) fn new_pod(
    sc: &Scenario,
    run: &Run,
    slice_created: bool,
) -> Result<(PodShape, String, PodSlice, PodIdentity)> {
    let shape = sc.shape();
    let uid = new_uid()?;
    let slice = pod::pod_slice(shape.qos, &uid);
    let id = PodIdentity::new(sc.name, &uid, &slice.unit);
    run.lock().created.pod_uid = Some(uid.clone());
    run.ev(|e| e.pod = Some(pod_info(sc, &id, &slice, slice_created)));
    Ok((shape, uid, slice, id))
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

/// A pod ready for RunPodSandbox: its slice exists with its limit, its image is there, its log
/// directories are made.
pub(super) struct Pod {
    pub shape: PodShape,
    pub uid: String,
    pub slice: PodSlice,
    pub id: PodIdentity,
    pub image: String,
    /// The container's log file, as containerd writes it.
    pub log_file: PathBuf,
}

pub(super) async fn prepare_pod(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<Pod> {
    let mut cri = ctx.cri.clone();
    let (shape, uid, slice, id) = new_pod(sc, run, true)?;

    let read = create_pod_slice(ctx, run, &slice, shape.slice_memory_max).await?;
    run.ev(|e| {
        if let Some(p) = e.pod.as_mut() {
            p.slice_memory_max_read = read;
        }
    });

    let image = sc.image(&ctx.images);
    if !cri.image_present(&image).await? {
        bail!(
            "image {image} is not in containerd's k8s.io namespace: the guest setup must import \
             it (ctr -n k8s.io images import) before the driver runs"
        );
    }
    // kubelet creates the pod's log directory before RunPodSandbox (runsc shims log there);
    // the container's directory below it too.
    let log_file = Path::new(&id.log_directory).join(pod::container_log_path(sc.container_name()));
    if let Some(dir) = log_file.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the log directory {}", dir.display()))?;
    }
    Ok(Pod {
        shape,
        uid,
        slice,
        id,
        image,
        log_file,
    })
}

/// A sandbox RunPodSandbox returned.
pub(super) struct Sandbox {
    pub id: String,
    pub config: PodSandboxConfig,
    /// When RunPodSandbox was sent.
    pub sent: Instant,
}

/// RunPodSandbox → RUNNING, timed like kubelet would see it, then what PodSandboxStatus says.
pub(super) async fn run_sandbox(ctx: &Ctx, sc: &Scenario, run: &Run, pod: &Pod) -> Result<Sandbox> {
    let mut cri = ctx.cri.clone();
    let sandbox_config = pod::sandbox_config(&pod.id, &pod.shape);
    let before = baseline(ctx);
    let t0 = Instant::now();
    run.step(format!(
        "RunPodSandbox (handler {}, cgroup_parent {})",
        sc.handler, pod.slice.unit
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
    record_sandbox_status(ctx, run, &sandbox_id).await;
    Ok(Sandbox {
        id: sandbox_id,
        config: sandbox_config,
        sent: t0,
    })
}

pub(super) async fn create_container(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    pod: &Pod,
    sandbox: &Sandbox,
) -> Result<String> {
    create_named(ctx, run, pod, sandbox, sc.container_name(), sc.command()).await
}

/// CreateContainer of one container `name` running `command` in the pod's image.
pub(super) async fn create_named(
    ctx: &Ctx,
    run: &Run,
    pod: &Pod,
    sandbox: &Sandbox,
    name: &str,
    command: Vec<String>,
) -> Result<String> {
    create_with(ctx, run, pod, sandbox, name, command, |_| {}).await
}

/// `create_named`, with `adjust` changing the container's config before it is sent.
pub(super) async fn create_with(
    ctx: &Ctx,
    run: &Run,
    pod: &Pod,
    sandbox: &Sandbox,
    name: &str,
    command: Vec<String>,
    adjust: impl FnOnce(&mut k8s_cri::v1::ContainerConfig),
) -> Result<String> {
    let mut cri = ctx.cri.clone();
    let oom_adj = match pod.shape.container_memory_limit {
        Some(l) => pod::burstable_oom_score_adj(l, ctx.node_mem_total),
        None => 1000,
    };
    let container_config = pod::container_config(&pod::ContainerSpec {
        name,
        image: &pod.image,
        command,
        memory_limit: pod.shape.container_memory_limit,
        oom_score_adj: oom_adj,
    });
    let mut container_config = container_config;
    adjust(&mut container_config);
    let t_create = Instant::now();
    let container_id = cri
        .create_container(&sandbox.id, container_config, sandbox.config.clone())
        .await?;
    run.ms(|m| m.create_container_ms = Some(elapsed_ms(t_create)));
    run.ev(|e| e.container_id = Some(container_id.clone()));
    run.step(format!("container {name} {container_id} created"));
    Ok(container_id)
}

/// The StartContainer call running in the background.
pub(super) struct StartCall {
    task: Option<tokio::task::JoinHandle<(Result<()>, u64)>>,
    /// When it was sent.
    sent: Instant,
    /// Its error, once it returned one (or that it never returned).
    error: Option<String>,
}

impl StartCall {
    /// StartContainer may block (containerd's runc shim driving runsc hands the FIFOs over at
    /// the wrong moment and waits until the container exits), so it runs on its own and the
    /// driver watches the container meanwhile. Its limit is the scenario's: giving up on the RPC
    /// makes containerd kill the task.
    pub(super) fn send(ctx: &Ctx, sc: &Scenario, container_id: &str) -> StartCall {
        let sent = Instant::now();
        let mut cri = ctx.cri.clone();
        let cid = container_id.to_string();
        let limit = ctx.limit(sc.time_limit_secs());
        let task = tokio::spawn(async move {
            let r = cri.start_container(&cid, limit).await;
            (r, elapsed_ms(sent))
        });
        StartCall {
            task: Some(task),
            sent,
            error: None,
        }
    }

    /// Its result, the first time it is seen finished.
    async fn poll(&mut self, run: &Run) -> Option<Result<()>> {
        if !self.task.as_ref().is_some_and(|t| t.is_finished()) {
            return None;
        }
        let t = self.task.take()?;
        let (r, ms) = t.await.unwrap_or_else(|e| (Err(anyhow!("{e}")), 0));
        run.ms(|m| m.start_container_ms = Some(ms));
        if let Err(e) = &r {
            self.error = Some(format!("{e:#}"));
        }
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
    pub(super) async fn finish(&mut self, run: &Run) {
        if let Some(Err(e)) = self.poll(run).await {
            run.note(format!("StartContainer failed: {e:#}"));
        }
        if let Some(t) = self.task.take() {
            run.note(format!(
                "StartContainer had not returned {:.0} s after it was sent",
                self.sent.elapsed().as_secs_f64()
            ));
            run.ev(|e| e.start_blocked = true);
            self.error = Some("StartContainer never returned".into());
            t.abort();
        }
    }

    /// Gives a StartContainer whose container already ended up to `limit` to return.
    pub(super) async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.task.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What went wrong with it, once `finish` has run.
    pub(super) fn error(&self) -> Option<String> {
        self.error.clone()
    }
}

/// Waits until ContainerStatus says RUNNING (or the container already exited), StartContainer
/// fails, or the time is up. An eater whose StartContainer hangs is watched anyway once its
/// sandbox is up or its log says something.
pub(super) async fn wait_running(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    start: &mut StartCall,
    pod: &Pod,
    sandbox: &Sandbox,
    container_id: &str,
) -> Result<()> {
    let mut cri = ctx.cri.clone();
    let t_start = start.sent;
    let running_limit = ctx.limit(120);
    // An eater whose StartContainer hangs may be running all the same: after this long, watch it.
    let blocked_limit = ctx.limit(30);
    let deadline = Instant::now() + running_limit;
    let mut seen_state = String::new();
    loop {
        if let Some(Err(e)) = start.poll(run).await {
            bail!("StartContainer failed: {e:#}");
        }
        match cri.container_state(container_id).await {
            Ok(st) => {
                seen_state = CriContainerState::from(st.state).to_string();
                if st.state == ContainerState::ContainerRunning as i32 {
                    let ms = elapsed_ms(sandbox.sent);
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
            let sandbox_up = procs::find_sandbox(&procs::snapshot(), &sandbox.id).is_some();
            let said_something = !read_log(&pod.log_file).is_empty();
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
    Ok(())
}
