//! The refusal: a pod the guard must refuse (its cgroup parent missing, no memory limit).
//! RunPodSandbox should fail; whatever it did start is observed and taken down, and what is left
//! of it afterwards is the evidence.

use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::cleanup::{baseline, new_runtime_procs, settle_leftovers};
use super::observe::{node_health, observe_processes, shim_socket_paths};
use super::setup::new_pod;
use super::{elapsed_ms, Ctx, Run};
use crate::cgroup;
use crate::evidence;
use crate::pod;
use crate::scenarios::Scenario;
use crate::systemd;

pub(super) async fn refusal_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
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
