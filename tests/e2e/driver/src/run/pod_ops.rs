//! The bodies of the scenarios that change a running pod from outside (`scenarios/pod_ops.rs`):
//! UpdateContainerResources through CRI, and `systemctl restart containerd` under a running pod.
//! Both start one sleeping busybox the way `pod_body` does and take the pod down through CRI.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_cri::v1::{LinuxContainerResources, PodSandboxState};

use super::observe::{node_health, observe_processes, shim_socket_paths};
use super::setup::{self, StartCall};
use super::{cleanup, Ctx, Run};
use crate::cgroup;
use crate::pod::MIB;
use crate::procs;
use crate::report::{CriContainerState, PodOpsRecord, RestartRecord, UpdateRecord};
use crate::scenarios::{Scenario, UPDATE_ABOVE_MIB, UPDATE_TO_MIB};
use crate::systemd;

/// A running pod: its pieces, and the container.
struct Running {
    pod: setup::Pod,
    sandbox: setup::Sandbox,
    container_id: String,
}

async fn start_pod(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<Running> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let sandbox = setup::run_sandbox(ctx, sc, run, &pod).await?;
    observe_processes(ctx, run, &sandbox.id, "", &pod.slice.path);
    let container_id = setup::create_container(ctx, sc, run, &pod, &sandbox).await?;
    let mut start = StartCall::send(ctx, sc, &container_id);
    setup::wait_running(ctx, sc, run, &mut start, &pod, &sandbox, &container_id).await?;
    start.finish(run).await;
    observe_processes(ctx, run, &sandbox.id, &container_id, &pod.slice.path);
    Ok(Running {
        pod,
        sandbox,
        container_id,
    })
}

/// StopPodSandbox, RemovePodSandbox, then nothing of the pod may be left.
async fn end_pod(ctx: &Ctx, run: &Run, p: Running) {
    let sockets = shim_socket_paths(run);
    cleanup::stop_pod(ctx, run, &p.sandbox.id).await;
    let ids = vec![p.sandbox.id, p.container_id];
    cleanup::settle_leftovers(ctx, run, &ids, &p.pod.uid, &sockets, None).await;
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
}

fn record(run: &Run, f: impl FnOnce(&mut PodOpsRecord)) {
    run.ev(|e| f(e.pod_ops.get_or_insert_with(Default::default)));
}

fn memory_max(ctx: &Ctx, cgroup: Option<&str>) -> Option<String> {
    let dir = cgroup::dir_of(&ctx.cgroup_root, cgroup?);
    std::fs::read_to_string(dir.join("memory.max"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn memory(mib: u64) -> LinuxContainerResources {
    LinuxContainerResources {
        cpu_shares: 2,
        memory_limit_in_bytes: i64::try_from(mib * MIB).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

pub(super) async fn update_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    let p = start_pod(ctx, sc, run).await?;
    let mut cri = ctx.cri.clone();
    let sandbox_cgroup = run.ev(|e| e.runsc_sandbox.as_ref().and_then(|s| s.cgroup.clone()));
    let mut u = UpdateRecord {
        memory_max_before: memory_max(ctx, sandbox_cgroup.as_deref()),
        sandbox_cgroup: sandbox_cgroup.clone(),
        requested_bytes: UPDATE_TO_MIB * MIB,
        above_bytes: UPDATE_ABOVE_MIB * MIB,
        ..Default::default()
    };
    run.step(format!(
        "UpdateContainerResources memory {UPDATE_TO_MIB} MiB (sandbox cgroup {}, memory.max {:?})",
        sandbox_cgroup.as_deref().unwrap_or("?"),
        u.memory_max_before
    ));
    u.update_error = cri
        .update_container_resources(&p.container_id, memory(UPDATE_TO_MIB))
        .await
        .err()
        .map(|e| format!("{e:#}"));
    u.memory_max_after = memory_max(ctx, sandbox_cgroup.as_deref());
    run.step(format!(
        "UpdateContainerResources memory {UPDATE_ABOVE_MIB} MiB (memory.max now {:?})",
        u.memory_max_after
    ));
    u.above_error = cri
        .update_container_resources(&p.container_id, memory(UPDATE_ABOVE_MIB))
        .await
        .err()
        .map(|e| format!("{e:#}"));
    u.memory_max_after_above = memory_max(ctx, sandbox_cgroup.as_deref());
    run.step(format!(
        "above the bound: {}; memory.max {:?}",
        u.above_error.as_deref().unwrap_or("accepted"),
        u.memory_max_after_above
    ));
    record(run, |r| r.update = Some(u));
    end_pod(ctx, run, p).await;
    Ok(())
}

/// The pod's shim pids, its sandbox's pid and the shims' RSS, as they are now.
fn pod_processes(ctx: &Ctx, run: &Run, p: &Running) -> (Vec<u32>, Option<u32>, Option<u64>) {
    observe_processes(ctx, run, &p.sandbox.id, &p.container_id, &p.pod.slice.path);
    let (shims, rss) = run.ms(|m| {
        let mut pids: Vec<u32> = m.shims.iter().map(|s| s.pid).collect();
        pids.sort_unstable();
        let rss = m.shims.iter().map(|s| s.rss_kib).sum::<Option<u64>>();
        (pids, rss)
    });
    let sandbox = procs::find_sandbox(&procs::snapshot(), &p.sandbox.id).map(|s| s.pid);
    (shims, sandbox, rss)
}

pub(super) async fn restart_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    let p = start_pod(ctx, sc, run).await?;
    let mut cri = ctx.cri.clone();
    let mut r = RestartRecord::default();
    (
        r.shim_pids_before,
        r.sandbox_pid_before,
        r.shim_rss_kib_before,
    ) = pod_processes(ctx, run, &p);
    run.step(format!(
        "systemctl restart containerd (shims {:?}, runsc-sandbox {:?})",
        r.shim_pids_before, r.sandbox_pid_before
    ));
    r.restart_error = systemd::systemctl(&["restart", "containerd"], ctx.limit(90))
        .await
        .err()
        .map(|e| format!("{e:#}"));
    let back = Instant::now();
    let deadline = back + ctx.limit(60);
    while r.cri_back_ms.is_none() && Instant::now() < deadline {
        match cri.version().await {
            Ok(_) => r.cri_back_ms = Some(back.elapsed().as_millis() as u64),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    run.step(format!("CRI answers again after {:?} ms", r.cri_back_ms));
    match cri.container_state(&p.container_id).await {
        Ok(st) => r.container_state_after = Some(CriContainerState::from(st.state).to_string()),
        Err(e) => run.note(format!("ContainerStatus after the restart: {e:#}")),
    }
    match cri.pod_sandbox_status(&p.sandbox.id).await {
        Ok(s) => {
            r.sandbox_ready_after = s
                .status
                .map(|st| st.state == PodSandboxState::SandboxReady as i32)
        }
        Err(e) => run.note(format!("PodSandboxStatus after the restart: {e:#}")),
    }
    let echo = vec!["/bin/echo".to_string(), "alive".to_string()];
    match cri.exec_sync(&p.container_id, &echo, 30).await {
        Ok(out) => {
            r.exec_after = Some((
                out.exit_code,
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ))
        }
        Err(e) => r.exec_error = Some(format!("{e:#}")),
    }
    (r.shim_pids_after, r.sandbox_pid_after, r.shim_rss_kib_after) = pod_processes(ctx, run, &p);
    run.step(format!(
        "after the restart: container {:?}, sandbox ready {:?}, exec {:?}, shims {:?} (RSS {:?} \
         -> {:?} KiB)",
        r.container_state_after,
        r.sandbox_ready_after,
        r.exec_after,
        r.shim_pids_after,
        r.shim_rss_kib_before,
        r.shim_rss_kib_after
    ));
    record(run, |rec| rec.restart = Some(r));
    end_pod(ctx, run, p).await;
    Ok(())
}
