//! Observation: what the pod's processes, cgroups, container and log show while it runs, and
//! the last looks before it goes. Nothing here decides anything; it fills the evidence.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1::ContainerState;

use super::setup::Pod;
use super::{elapsed_ms, Ctx, Run};
use crate::cgroup;
use crate::evidence;
use crate::logs;
use crate::pod::MIB;
use crate::procs::{self, Proc, RUNSC_PROCS, SHIM_PROCS};
use crate::report::{
    ContainerFinal, CriContainerState, ExecRecord, NodeHealth, ProcRss, SandboxProc, StatsRecord,
};
use crate::scenarios::{self, Kind, Scenario};

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

/// The larger of two readings, or whichever there is.
fn max_of(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The sandbox process, shims and runsc processes of the pod, as they are now.
pub(super) fn observe_processes(
    ctx: &Ctx,
    run: &Run,
    sandbox_id: &str,
    container_id: &str,
    pod_path: &str,
) {
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
        m.shim_rss_kib_max = max_of(m.shim_rss_kib_max, shim_total);
    });
    if let Some(p) = sandbox {
        observe_sandbox(ctx, run, p, pod_path);
    } else if run.ev(|e| e.runsc_sandbox.is_some()) {
        run.ev(|e| e.sandbox_alive_at_end = Some(false));
    }
}

/// The `runsc-sandbox` process found: its flags, its cgroup and what that cgroup holds.
fn observe_sandbox(ctx: &Ctx, run: &Run, p: &Proc, pod_path: &str) {
    let raw = procs::flag_value(&p.argv, "total-memory").map(str::to_string);
    let facts = p
        .cgroup
        .as_deref()
        .map(|c| cgroup::read_facts(&ctx.cgroup_root, c));
    let seen = facts
        .as_ref()
        .and_then(|f| max_of(f.memory_peak, f.memory_current));
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
        e.sandbox_cgroup_memory_max_bytes = max_of(e.sandbox_cgroup_memory_max_bytes, seen);
    });
}

/// The shim's listening unix sockets, read while it runs (checked for removal later).
pub(super) fn shim_socket_paths(run: &Run) -> Vec<String> {
    let pids: Vec<u32> = run.ms(|m| m.shims.iter().map(|p| p.pid).collect());
    let inodes: Vec<u64> = pids.iter().flat_map(|p| procs::socket_inodes(*p)).collect();
    let net = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    procs::unix_socket_paths(&net, &inodes)
}

pub(super) fn read_log(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| logs::messages(&t))
        .unwrap_or_default()
}

/// What PodSandboxStatus (verbose) says of a sandbox RunPodSandbox just returned.
pub(super) async fn record_sandbox_status(ctx: &Ctx, run: &Run, sandbox_id: &str) {
    let mut cri = ctx.cri.clone();
    match cri.pod_sandbox_status(sandbox_id).await {
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
}

/// Where the container landed, per containerd, and the pod's processes now that it runs.
pub(super) async fn locate_container(
    ctx: &Ctx,
    run: &Run,
    pod: &Pod,
    sandbox_id: &str,
    container_id: &str,
) {
    let mut cri = ctx.cri.clone();
    match cri.container_status(container_id, true).await {
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
                    cg.as_deref().map(|c| cgroup::is_under(c, &pod.slice.path));
                e.container_cgroup = cg;
            });
        }
        Err(e) => run.note(format!("verbose ContainerStatus: {e:#}")),
    }
    observe_processes(ctx, run, sandbox_id, container_id, &pod.slice.path);
    if let Some(p) = run.ev(|e| e.runsc_sandbox.clone()) {
        run.step(format!(
            "runsc-sandbox pid {} in {:?} (under pod slice: {}, leaf: {:?}), --total-memory {:?}",
            p.pid, p.cgroup, p.under_pod_slice, p.cgroup_is_leaf, p.total_memory_raw
        ));
    }
}

/// Follows the container the way its scenario needs: until a run-to-completion container
/// exits, or while the eater eats.
pub(super) async fn watch(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    pod: &Pod,
    sandbox_id: &str,
    container_id: &str,
) {
    match &sc.kind {
        Kind::Exit(_) => wait_exit(ctx, run, container_id, &pod.log_file).await,
        Kind::Eater(spec) => {
            // The eater image has nothing but /eater: without arguments it prints its usage and
            // exits 2, which shows ExecSync works without disturbing the pod.
            record_exec(ctx, run, container_id, vec![scenarios::EATER_PATH.into()]).await;
            record_stats(ctx, run, container_id).await;
            let mut eater = EaterWatch::new(ctx, sandbox_id, container_id, pod, spec.max_mib);
            eater.follow(run).await;
        }
        Kind::Stats => watch_stats(ctx, run, sandbox_id, container_id, &pod.log_file).await,
        Kind::Refusal
        | Kind::ExitCodes(_)
        | Kind::HostileUnitName(_)
        | Kind::Update
        | Kind::ContainerdRestart
        | Kind::PodComplete(_) => {}
    }
}

/// Last looks before the pod goes: the container's final status, its log, the processes, the
/// pod slice's and sandbox cgroup's facts. Returns the shim's sockets, to check for later.
pub(super) async fn last_looks(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    pod: &Pod,
    sandbox_id: &str,
    container_id: &str,
) -> Vec<String> {
    record_final_status(ctx, run, container_id).await;
    let messages = read_log(&pod.log_file);
    run.ev(|e| {
        if matches!(sc.kind, Kind::Eater(_)) {
            e.eater = Some(logs::eater_progress(&messages));
        }
        e.log_tail = messages.iter().rev().take(12).rev().cloned().collect();
    });
    observe_processes(ctx, run, sandbox_id, container_id, &pod.slice.path);
    let sandbox_cgroup = run.ev(|e| e.runsc_sandbox.as_ref().and_then(|p| p.cgroup.clone()));
    let pod_facts = cgroup::read_facts(&ctx.cgroup_root, &pod.slice.path);
    run.step(format!(
        "pod slice: memory.max {:?}, peak {:?}, events {:?}",
        pod_facts.memory_max, pod_facts.memory_peak, pod_facts.memory_events
    ));
    run.ev(|e| {
        e.pod_slice_end = Some(pod_facts);
        e.sandbox_cgroup_end = sandbox_cgroup.map(|c| cgroup::read_facts(&ctx.cgroup_root, &c));
    });
    shim_socket_paths(run)
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

/// What one CRI ContainerStats entry says.
fn stats_record(s: &k8s_cri::v1::ContainerStats) -> StatsRecord {
    let mem = s.memory.unwrap_or_default();
    StatsRecord {
        working_set_bytes: mem.working_set_bytes.map(|v| v.value),
        usage_bytes: mem.usage_bytes.map(|v| v.value),
        rss_bytes: mem.rss_bytes.map(|v| v.value),
        cpu_usage_core_nanos: s
            .cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map(|v| v.value),
        ..Default::default()
    }
}

async fn record_stats(ctx: &Ctx, run: &Run, container_id: &str) {
    let mut cri = ctx.cri.clone();
    let rec = match cri.container_stats(container_id).await {
        Ok(s) => stats_record(&s),
        Err(e) => StatsRecord {
            error: Some(format!("{e:#}")),
            ..Default::default()
        },
    };
    run.step(format!(
        "ContainerStats: working set {:?}, CPU {:?} ns{}",
        rec.working_set_bytes,
        rec.cpu_usage_core_nanos,
        rec.error
            .as_deref()
            .map(|e| format!(", error {e}"))
            .unwrap_or_default()
    ));
    run.ev(|e| e.stats = Some(rec));
}

/// ListContainerStats of the pod: the entry of `container_id`, if it is there.
async fn record_list_stats(ctx: &Ctx, run: &Run, sandbox_id: &str, container_id: &str) {
    let mut cri = ctx.cri.clone();
    let rec = match cri.list_container_stats(sandbox_id).await {
        Ok(all) => {
            let mine = all
                .iter()
                .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == container_id));
            StatsRecord {
                listed_entries: Some(all.len()),
                container_listed: Some(mine.is_some()),
                ..mine.map(stats_record).unwrap_or_default()
            }
        }
        Err(e) => StatsRecord {
            error: Some(format!("{e:#}")),
            ..Default::default()
        },
    };
    run.step(format!(
        "ListContainerStats: {:?} entries, container listed {:?}, working set {:?}, CPU {:?} ns",
        rec.listed_entries, rec.container_listed, rec.working_set_bytes, rec.cpu_usage_core_nanos
    ));
    run.ev(|e| e.list_stats = Some(rec));
}

/// The stats scenario's container: once its loop has run (its log says so), its stats, read
/// twice so a slow first sample does not decide.
async fn watch_stats(ctx: &Ctx, run: &Run, sandbox_id: &str, container_id: &str, log: &Path) {
    let deadline = Instant::now() + ctx.limit(90);
    loop {
        if read_log(log)
            .iter()
            .any(|l| l.contains(scenarios::STATS_READY))
        {
            run.step("the container's loop is done");
            break;
        }
        if Instant::now() >= deadline {
            run.note("the container's log never said it was ready; reading its stats anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        record_stats(ctx, run, container_id).await;
        record_list_stats(ctx, run, sandbox_id, container_id).await;
        let done = run.ev(|e| {
            [&e.stats, &e.list_stats].iter().all(|s| {
                s.as_ref().is_some_and(|s| {
                    s.working_set_bytes.unwrap_or(0) > 0 && s.cpu_usage_core_nanos.unwrap_or(0) > 0
                })
            })
        });
        if done {
            break;
        }
    }
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

pub(super) async fn node_health(ctx: &Ctx) -> NodeHealth {
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

/// Following the eater until it is killed, says `done`, or the time is up. Progress comes from
/// its log and, where the log stays empty (a shim that loses the container's stdio), from the
/// memory its sandbox's cgroup holds.
struct EaterWatch<'a> {
    ctx: &'a Ctx,
    sandbox_id: &'a str,
    container_id: &'a str,
    pod_path: &'a str,
    log_file: &'a Path,
    target_mib: u64,
    t: Instant,
    /// The most the eater's log has reported, MiB.
    last_mib: u64,
    /// The most the sandbox's cgroup was seen holding, bytes.
    last_mem: u64,
    last_progress: Instant,
    last_observe: Instant,
    sandbox_gone_at: Option<Instant>,
}

/// Whether the watch goes on.
enum Next {
    Continue,
    Stop,
}

impl<'a> EaterWatch<'a> {
    fn new(
        ctx: &'a Ctx,
        sandbox_id: &'a str,
        container_id: &'a str,
        pod: &'a Pod,
        target_mib: u64,
    ) -> Self {
        EaterWatch {
            ctx,
            sandbox_id,
            container_id,
            pod_path: &pod.slice.path,
            log_file: &pod.log_file,
            target_mib,
            t: Instant::now(),
            last_mib: 0,
            last_mem: 0,
            last_progress: Instant::now(),
            last_observe: Instant::now() - Duration::from_secs(10),
            sandbox_gone_at: None,
        }
    }

    async fn follow(&mut self, run: &Run) {
        let mut cri = self.ctx.cri.clone();
        let limit = self.ctx.limit(360);
        let stall_limit = self.ctx.limit(90);
        loop {
            if let Next::Stop = self.read_progress(run).await {
                break;
            }
            match cri.container_state(self.container_id).await {
                Ok(st) if st.state == ContainerState::ContainerExited as i32 => {
                    run.step(format!(
                        "container exited: code {}, reason {:?} (eater at {} MiB)",
                        st.exit_code, st.reason, self.last_mib
                    ));
                    break;
                }
                Ok(_) => {}
                Err(e) => run.note(format!("ContainerStatus while eating: {e:#}")),
            }
            if self.last_observe.elapsed() >= Duration::from_secs(3) {
                if let Next::Stop = self.observe_sandbox(run) {
                    break;
                }
            }
            if let Next::Stop = self.give_up(run, limit, stall_limit) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// What the eater's log says: more MiB (a timeline point, a step every 128 MiB), or `done`.
    async fn read_progress(&mut self, run: &Run) -> Next {
        let progress = logs::eater_progress(&read_log(self.log_file));
        if let Some(m) = progress.max_mib() {
            if m > self.last_mib {
                let at = elapsed_ms(self.t);
                run.ev(|e| e.eater_timeline.push((at, m)));
                if m / 128 > self.last_mib / 128 || m >= self.target_mib {
                    run.step(format!("eater at {m} MiB"));
                }
                self.last_mib = m;
                self.last_progress = Instant::now();
            }
        }
        if progress.done() {
            run.step(format!(
                "eater done at {} MiB; it now sleeps",
                self.last_mib
            ));
            record_stats(self.ctx, run, self.container_id).await;
            return Next::Stop;
        }
        Next::Continue
    }

    /// The pod's processes again: the memory the sandbox's cgroup holds (progress a silent log
    /// does not show) and whether the sandbox is still there.
    fn observe_sandbox(&mut self, run: &Run) -> Next {
        observe_processes(
            self.ctx,
            run,
            self.sandbox_id,
            self.container_id,
            self.pod_path,
        );
        self.last_observe = Instant::now();
        let (gone, mem) = run.ev(|e| {
            (
                e.sandbox_alive_at_end == Some(false),
                e.sandbox_cgroup_memory_max_bytes,
            )
        });
        let mem = mem.unwrap_or(0);
        let (last_mib, target_mib) = (self.last_mib, self.target_mib);
        if mem >= self.last_mem + MIB {
            if mem / (128 * MIB) > self.last_mem / (128 * MIB) && last_mib == 0 {
                run.step(format!("sandbox cgroup holds {} MiB", mem / MIB));
            }
            self.last_mem = mem;
            self.last_progress = Instant::now();
        }
        if last_mib == 0 && mem >= target_mib * MIB {
            run.note(format!(
                "the eater's log is silent, but its sandbox's cgroup holds {} MiB: at least \
                 the {target_mib} MiB it was asked to eat",
                mem / MIB
            ));
            return Next::Stop;
        }
        if gone && self.sandbox_gone_at.is_none() {
            run.note(format!(
                "the runsc-sandbox process is gone (eater at {last_mib} MiB) while the \
                 container is not reported exited"
            ));
            self.sandbox_gone_at = Some(Instant::now());
        }
        Next::Continue
    }

    /// The ends that are not the eater's own: a dead sandbox, no progress, the time limit.
    fn give_up(&self, run: &Run, limit: Duration, stall_limit: Duration) -> Next {
        let last_mib = self.last_mib;
        // A dead sandbox whose container never shows as exited: give containerd a moment.
        if self
            .sandbox_gone_at
            .is_some_and(|g| g.elapsed() >= self.ctx.limit(20))
        {
            run.note("the container was still not reported exited 20 s after its sandbox died");
            return Next::Stop;
        }
        if self.last_progress.elapsed() >= stall_limit {
            run.note(format!(
                "no progress for {:.0} s (log at {last_mib} MiB, sandbox cgroup at {} MiB)",
                stall_limit.as_secs_f64(),
                self.last_mem / MIB
            ));
            return Next::Stop;
        }
        if self.t.elapsed() >= limit {
            run.note(format!(
                "the eater neither finished nor was killed within {:.0} s (at {last_mib} MiB)",
                limit.as_secs_f64()
            ));
            return Next::Stop;
        }
        Next::Continue
    }
}
