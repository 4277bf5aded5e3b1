//! The pod-complete scenarios with several containers in one pod: a sleeper beside an eater the
//! OOM killer ends, and how many shim processes serve a three-container pod with the shim's
//! grouping on and off.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_cri::v1::{ContainerConfig, ContainerState, ImageSpec};

use super::exits::wait_exited;
use super::observe::{node_health, observe_processes, shim_socket_paths};
use super::setup::{self, Pod, Sandbox, StartCall};
use super::{cleanup, Ctx, Run};
use crate::pod::MIB;
use crate::procs;
use crate::report::{ExitCaseRecord, GroupingRecord};
use crate::scenarios::{Scenario, EATER_PATH, GROUPING_CONTAINERS, NO_GROUPING_HANDLER};

/// The project's shim binary, as the process table names it.
const SHIM: &str = "containerd-shim-runsc-v1";

/// The sleeper's own memory limit; the eater has the rest of the pod's 256 MiB.
const SLEEPER_LIMIT: u64 = 64 * MIB;

fn set_memory_limit(c: &mut ContainerConfig, limit: u64) {
    if let Some(r) = c.linux.as_mut().and_then(|l| l.resources.as_mut()) {
        r.memory_limit_in_bytes = i64::try_from(limit).unwrap_or(i64::MAX);
    }
}

/// Creates and starts one container, waiting until it runs.
async fn start_one(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    (pod, sandbox): (&Pod, &Sandbox),
    name: &str,
    command: Vec<String>,
    adjust: impl FnOnce(&mut ContainerConfig),
) -> Result<(String, StartCall)> {
    let id = setup::create_with(ctx, run, pod, sandbox, name, command, adjust).await?;
    let mut start = StartCall::send(ctx, sc, &id);
    setup::wait_running(ctx, sc, run, &mut start, pod, sandbox, &id).await?;
    Ok((id, start))
}

fn sleep_cmd() -> Vec<String> {
    vec!["/bin/sleep".into(), "3600".into()]
}

pub(super) async fn oom_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let sandbox = setup::run_sandbox(ctx, sc, run, &pod).await?;
    observe_processes(ctx, run, &sandbox.id, "", &pod.slice.path);
    let (sleeper, mut sleeper_start) = start_one(
        ctx,
        sc,
        run,
        (&pod, &sandbox),
        "sleeper",
        sleep_cmd(),
        |c| set_memory_limit(c, SLEEPER_LIMIT),
    )
    .await?;
    let eater_image = format!("{}/eater:1", ctx.images.trim_end_matches('/'));
    let eater_cmd: Vec<String> = [EATER_PATH, "1024", "16", "50"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let eater = setup::create_with(ctx, run, &pod, &sandbox, "eater", eater_cmd.clone(), |c| {
        c.image = Some(ImageSpec {
            image: eater_image,
            ..Default::default()
        });
    })
    .await?;
    let mut eater_start = StartCall::send(ctx, sc, &eater);
    observe_processes(ctx, run, &sandbox.id, &eater, &pod.slice.path);
    let sockets = shim_socket_paths(run);
    let eater_final = wait_exited(ctx, run, &eater).await;
    let sleeper_final = wait_exited(ctx, run, &sleeper).await;
    eater_start.settle(ctx.limit(15)).await;
    for (start, name, id, command, fin) in [
        (
            &mut sleeper_start,
            "sleeper",
            &sleeper,
            sleep_cmd(),
            sleeper_final,
        ),
        (&mut eater_start, "eater", &eater, eater_cmd, eater_final),
    ] {
        start.finish(run).await;
        let rec = ExitCaseRecord {
            name: name.into(),
            command,
            want_exit_code: 137,
            container_id: Some(id.clone()),
            final_status: fin,
            start_error: start.error(),
        };
        run.ev(|e| e.exit_cases.push(rec));
    }
    cleanup::stop_pod(ctx, run, &sandbox.id).await;
    let ids = vec![sandbox.id, sleeper, eater];
    cleanup::settle_leftovers(ctx, run, &ids, &pod.uid, &sockets, None).await;
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

/// The shim daemons serving any of `ids`: the shim binary started with `-id <one of them>`,
/// not a `start` or `delete` call, nor a daemon's own child that has not exec'd yet.
fn pod_shims(ids: &[String]) -> Vec<(u32, String)> {
    let all = procs::snapshot();
    let daemons: Vec<&procs::Proc> = all
        .iter()
        .filter(|p| p.name() == SHIM)
        .filter(|p| !p.argv.iter().any(|a| a == "start" || a == "delete"))
        .filter(|p| procs::flag_value(&p.argv, "id").is_some_and(|v| ids.iter().any(|i| i == v)))
        .collect();
    let pids: BTreeSet<u32> = daemons.iter().map(|p| p.pid).collect();
    daemons
        .into_iter()
        .filter(|p| !pids.contains(&p.ppid))
        .map(|p| {
            let id = procs::flag_value(&p.argv, "id").unwrap_or_default();
            (p.pid, id.to_string())
        })
        .collect()
}

pub(super) async fn grouping_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    for (handler, grouping) in [(sc.handler, true), (NO_GROUPING_HANDLER, false)] {
        let on = Scenario {
            handler,
            ..sc.clone()
        };
        grouping_pod(ctx, &on, run, grouping).await?;
    }
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

/// One three-container pod on `sc.handler`: its shims counted while everything runs, then the
/// pod taken down and what it left recorded.
async fn grouping_pod(ctx: &Ctx, sc: &Scenario, run: &Run, grouping: bool) -> Result<()> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let sandbox = setup::run_sandbox(ctx, sc, run, &pod).await?;
    let mut ids = vec![sandbox.id.clone()];
    let mut starts = Vec::new();
    for i in 1..=GROUPING_CONTAINERS {
        let (id, start) = start_one(
            ctx,
            sc,
            run,
            (&pod, &sandbox),
            &format!("c{i}"),
            sleep_cmd(),
            |_| {},
        )
        .await?;
        ids.push(id);
        starts.push(start);
    }
    let mut cri = ctx.cri.clone();
    let mut running = 1;
    for id in &ids[1..] {
        if cri
            .container_state(id)
            .await
            .is_ok_and(|s| s.state == ContainerState::ContainerRunning as i32)
        {
            running += 1;
        }
    }
    let want = if grouping { 1 } else { ids.len() };
    // A shim's `start` for a joining container exits at once, but give the table a moment.
    let deadline = Instant::now() + ctx.limit(20);
    let mut shims = pod_shims(&ids);
    while shims.len() != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        shims = pod_shims(&ids);
    }
    run.step(format!(
        "{}: {running} of {} tasks running, shims {shims:?} (want {want})",
        sc.handler,
        ids.len()
    ));
    observe_processes(ctx, run, &sandbox.id, &ids[1], &pod.slice.path);
    let sockets = shim_socket_paths(run);
    for s in &mut starts {
        s.finish(run).await;
    }
    cleanup::stop_pod(ctx, run, &sandbox.id).await;
    cleanup::settle_leftovers(ctx, run, &ids, &pod.uid, &sockets, None).await;
    let left_behind = run.ev(|e| {
        e.leftovers
            .as_ref()
            .map_or(Some("not examined".to_string()), |l| {
                (!l.is_clean()).then(|| l.describe())
            })
    });
    run.ev(|e| {
        e.groupings.push(GroupingRecord {
            handler: sc.handler.into(),
            grouping,
            ids: ids.clone(),
            running,
            want_shims: want,
            shims,
            left_behind,
            error: None,
        })
    });
    if running != ids.len() {
        bail!("{}: only {running} of {} tasks ran", sc.handler, ids.len());
    }
    Ok(())
}
