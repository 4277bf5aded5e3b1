//! A pod sandbox that only containerd's own API can make: its cgroupsPath is
//! `<pod slice>:cri-containerd:kubepods.slice`, a name CRI never produces (it puts the container
//! id there). runsc names the scope `<prefix>-<name>.scope` whatever the name is, so the one
//! unit the guard may widen is `cri-containerd-kubepods.slice.scope`; taking the name itself as
//! the unit would set MemoryMax on the node's kubepods.slice. `ctr run` drives this project's
//! shim with the guest's runsc.toml and the annotations CRI gives a pod's sandbox.

use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::observe::{node_health, observe_processes, shim_socket_paths};
use super::setup;
use super::{cleanup, Ctx, Run};
use crate::cgroup;
use crate::pod::{MIB, POD_NAMESPACE};
use crate::report::HostileRecord;
use crate::scenarios::{HostileSpec, Scenario, HOSTILE_PREFIX};
use crate::systemd;

/// The runtime the guest's containerd knows this project's shim by, and its options file.
const SHIM_RUNTIME: &str = "io.containerd.runsc.v1";
const RUNSC_TOML: &str = "/etc/containerd/runsc.toml";
const NAMESPACE: &str = "k8s.io";
const NODE_SLICE: &str = "kubepods.slice";
const BUNDLES: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";

pub(super) async fn hostile_body(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    spec: &HostileSpec,
) -> Result<()> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let id: String = Sha256::digest(pod.uid.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let scope_cgroup = format!("{}/{}", pod.slice.path, spec.scope_unit());
    let mut rec = HostileRecord {
        cgroups_path: format!("{}:{HOSTILE_PREFIX}:{}", pod.slice.unit, spec.name),
        container_id: id.clone(),
        scope_unit: spec.scope_unit(),
        scope_cgroup: scope_cgroup.clone(),
        name_cgroup: format!("{}/{}", pod.slice.path, spec.name),
        ..Default::default()
    };
    let (max, sd) = kubepods_limits(ctx).await;
    rec.kubepods_memory_max_before = max;
    rec.kubepods_systemd_before = sd;
    run.step(format!(
        "kubepods.slice before: memory.max {:?}, MemoryMax {:?}",
        rec.kubepods_memory_max_before, rec.kubepods_systemd_before
    ));
    run.ev(|e| e.sandbox_id = Some(id.clone()));

    let args = run_args(sc, spec, &pod, &rec);
    run.step(format!("ctr {}", args.join(" ")));
    if let Err(e) = ctr(ctx, &args, 180).await {
        run.step(format!("ctr run failed: {e}"));
        rec.run_error = Some(e);
    } else {
        run.step(format!("ctr run: container {id} running"));
        observe_processes(ctx, run, &id, "", &pod.slice.path);
        let facts = cgroup::read_facts(&ctx.cgroup_root, &scope_cgroup);
        rec.scope_memory_max = facts.memory_max.clone();
        rec.name_cgroup_existed = cgroup::dir_of(&ctx.cgroup_root, &rec.name_cgroup).exists();
        rec.guard_says = guard_record(&id);
        run.step(format!(
            "scope {}: memory.max {:?}; {} exists: {}; guard: {}",
            rec.scope_unit,
            rec.scope_memory_max,
            rec.name_cgroup,
            rec.name_cgroup_existed,
            rec.guard_says.join("; ")
        ));
    }
    let (max, sd) = kubepods_limits(ctx).await;
    rec.kubepods_memory_max_after = max;
    rec.kubepods_systemd_after = sd;
    run.step(format!(
        "kubepods.slice after: memory.max {:?}, MemoryMax {:?}",
        rec.kubepods_memory_max_after, rec.kubepods_systemd_after
    ));
    let pod_facts = cgroup::read_facts(&ctx.cgroup_root, &pod.slice.path);
    run.ev(|e| e.pod_slice_end = Some(pod_facts));

    let sockets = shim_socket_paths(run);
    take_down(ctx, run, &id).await;
    restore_kubepods(ctx, run, &rec).await;
    rec.scope_units_left = systemd::list_units(&spec.scope_unit(), ctx.limit(30))
        .await
        .unwrap_or_else(|e| vec![format!("(could not list units: {e:#})")]);
    run.ev(|e| e.hostile = Some(rec));
    cleanup::settle_leftovers(ctx, run, &[id], &pod.uid, &sockets, None).await;
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

/// `ctr run` of the sandbox: this project's shim with the guest's runsc.toml, the hostile
/// cgroupsPath, and the annotations containerd's CRI gives a pod's sandbox.
fn run_args(
    sc: &Scenario,
    spec: &HostileSpec,
    pod: &setup::Pod,
    rec: &HostileRecord,
) -> Vec<String> {
    let id = rec.container_id.clone();
    let mut args: Vec<String> = [
        "-n",
        NAMESPACE,
        "run",
        "-d",
        "--runtime",
        SHIM_RUNTIME,
        "--runtime-config-path",
        RUNSC_TOML,
        "--cgroup",
        rec.cgroups_path.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let annotations = [
        ("io.kubernetes.cri.container-type", "sandbox".to_string()),
        ("io.kubernetes.cri.sandbox-id", id.clone()),
        ("io.kubernetes.cri.sandbox-name", sc.name.to_string()),
        ("io.kubernetes.cri.sandbox-namespace", POD_NAMESPACE.into()),
        ("io.kubernetes.cri.sandbox-uid", pod.uid.clone()),
        (
            "io.kubernetes.cri.sandbox-memory",
            (spec.sandbox_memory_mib * MIB).to_string(),
        ),
        (
            "io.kubernetes.cri.sandbox-log-directory",
            pod.id.log_directory.clone(),
        ),
    ];
    for (k, v) in annotations {
        args.push("--annotation".into());
        args.push(format!("{k}={v}"));
    }
    args.extend([
        pod.image.clone(),
        id.clone(),
        "/bin/sleep".into(),
        "3600".into(),
    ]);
    args
}

/// `ctr ARGS` within `secs` (scaled): Ok, or what it said when it failed.
async fn ctr(ctx: &Ctx, args: &[String], secs: u64) -> Result<(), String> {
    let limit = ctx.limit(secs);
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new("ctr")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("no answer within {:.0} s", limit.as_secs_f64()))?
    .map_err(|e| format!("running ctr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

/// kubepods.slice's `memory.max` and systemd's `MemoryMax` of it.
async fn kubepods_limits(ctx: &Ctx) -> (Option<String>, Option<String>) {
    let max = std::fs::read_to_string(
        cgroup::dir_of(&ctx.cgroup_root, &format!("/{NODE_SLICE}")).join("memory.max"),
    )
    .ok()
    .map(|s| s.trim().to_string());
    let sd = systemd::systemctl(
        &["show", "--property=MemoryMax", "--value", NODE_SLICE],
        ctx.limit(30),
    )
    .await
    .ok()
    .map(|s| s.trim().to_string());
    (max, sd)
}

/// What the guard kept in the bundle about widening the leaf.
fn guard_record(id: &str) -> Vec<String> {
    let path = format!("{BUNDLES}/{id}/runsc-guard.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return vec![format!("no guard record at {path}")];
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![format!("{path} is not JSON")];
    };
    let mut says = Vec::new();
    if let Some(r) = v.pointer("/plan/relax") {
        says.push(format!("planned relax {r}"));
    }
    if let Some(r) = v.get("relaxed") {
        says.push(format!("relaxed {r}"));
    }
    if let Some(e) = v.get("relax_error").filter(|e| !e.is_null()) {
        says.push(format!("relax_error {e}"));
    }
    says
}

/// Kills and deletes the task and the container; problems are notes.
async fn take_down(ctx: &Ctx, run: &Run, id: &str) {
    let n = |a: &[&str]| -> Vec<String> {
        ["-n", NAMESPACE]
            .iter()
            .chain(a.iter())
            .map(|s| s.to_string())
            .collect()
    };
    if ctr(ctx, &n(&["task", "kill", "-s", "SIGKILL", id]), 60)
        .await
        .is_ok()
    {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let Err(e) = ctr(ctx, &n(&["task", "delete", "--force", id]), 90).await {
        if !e.contains("not found") {
            run.note(format!("ctr task delete {id}: {e}"));
        }
    }
    if let Err(e) = ctr(ctx, &n(&["container", "delete", id]), 60).await {
        if !e.contains("not found") {
            run.note(format!("ctr container delete {id}: {e}"));
        }
    }
    run.step("ctr: task and container deleted");
}

/// Puts kubepods.slice back when the scenario changed it, so later scenarios are not judged
/// on a node the guard broke.
async fn restore_kubepods(ctx: &Ctx, run: &Run, rec: &HostileRecord) {
    if rec.kubepods_memory_max_after == rec.kubepods_memory_max_before
        && rec.kubepods_systemd_after == rec.kubepods_systemd_before
    {
        return;
    }
    let to = rec.kubepods_systemd_before.as_deref().unwrap_or("infinity");
    match systemd::systemctl(
        &[
            "set-property",
            "--runtime",
            NODE_SLICE,
            &format!("MemoryMax={to}"),
        ],
        ctx.limit(30),
    )
    .await
    {
        Ok(_) => run.note(format!(
            "kubepods.slice changed: MemoryMax set back to {to}"
        )),
        Err(e) => run.note(format!("kubepods.slice changed and not restored: {e:#}")),
    }
}
