//! A container's life as runsc plays it: create, start, state, wait, kill, delete, pause and
//! resume, update.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fake_runsc::{CGROUP_ROOT_ENV, KNOB_SANDBOX_PROCESS, PROC_ROOT_ENV};
use serde_json::{json, Map, Value};

use crate::args::{one_id, parse_signal, Invocation};
use crate::failure::fail_if_asked;
use crate::sandbox::{host_memory, remove_dir, spawn_sandbox_process, SandboxProcess};
use crate::state::{Container, Ctx};
use crate::{exec, fake_pid, now_ms, rfc3339, POLL, WAIT_LIMIT};

pub(crate) const CONTAINER_TYPE: [&str; 2] = [
    "io.kubernetes.cri.container-type",
    "io.kubernetes.cri-o.ContainerType",
];
pub(crate) const SANDBOX_ID: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

pub(crate) fn first_annotation<'a>(
    annotations: &'a Map<String, Value>,
    keys: &[&str],
) -> Option<&'a str> {
    keys.iter().find_map(|k| annotations.get(*k)?.as_str())
}

pub(crate) fn create(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 0)?;
    let bundle = inv
        .flags
        .get("bundle")
        .ok_or("create: --bundle is required")?;
    let pid_file = inv
        .flags
        .get("pid-file")
        .ok_or("create: --pid-file is required")?;
    if ctx.load(id)?.is_some() {
        return Err(format!("container with id {id:?} already exists"));
    }
    let config = Path::new(bundle).join("config.json");
    let text = fs::read_to_string(&config)
        .map_err(|e| format!("reading spec {}: {e}", config.display()))?;
    let spec: Value = serde_json::from_str(&text)
        .map_err(|e| format!("reading spec {}: {e}", config.display()))?;
    let annotations = spec["annotations"].as_object().cloned().unwrap_or_default();
    let rootfs = Path::new(bundle).join(spec["root"]["path"].as_str().unwrap_or("rootfs"));
    if !rootfs.is_dir() {
        return Err(format!("rootfs {} is not a directory", rootfs.display()));
    }
    fail_if_asked(&Value::Object(annotations.clone()), "create")?;

    let joins_sandbox = first_annotation(&annotations, &CONTAINER_TYPE) == Some("container");
    let sandbox_id = first_annotation(&annotations, &SANDBOX_ID).unwrap_or(id);
    // runsc writes the sandbox's pid into every container's pid file.
    let real_process = !joins_sandbox
        && annotations
            .get(KNOB_SANDBOX_PROCESS)
            .and_then(Value::as_str)
            == Some("real");
    let pid = match ctx.load(sandbox_id)? {
        Some(sandbox) if joins_sandbox => sandbox.value["pid"].as_u64().unwrap_or_default() as u32,
        _ if real_process => spawn_sandbox_process(&ctx.state_path_in(id, sandbox_id)?)?,
        _ => fake_pid(id),
    };
    fs::write(pid_file, pid.to_string()).map_err(|e| format!("writing {pid_file}: {e}"))?;
    let mut cgroup_dir = None;
    if let (false, Some(proc_root)) = (joins_sandbox, std::env::var_os(PROC_ROOT_ENV)) {
        let cgroup_root = std::env::var_os(CGROUP_ROOT_ENV).map(PathBuf::from);
        let process = SandboxProcess::new(
            id,
            bundle,
            &spec,
            &inv.globals,
            cgroup_root.as_deref(),
            host_memory()?,
        )?;
        process.write(Path::new(&proc_root), pid)?;
        cgroup_dir = process.create_cgroup()?.map(|d| d.display().to_string());
    }
    let container = Container {
        value: json!({
            "id": id,
            "bundle": bundle,
            "pid": pid,
            "status": "created",
            "role": if joins_sandbox { "container" } else { "sandbox" },
            "sandbox_id": sandbox_id,
            "created_ms": now_ms(),
            "annotations": annotations,
            "globals": inv.globals,
            "cgroup_dir": cgroup_dir,
            "process_pid": if real_process { json!(pid) } else { Value::Null },
            "console_socket": inv.flags.get("console-socket"),
        }),
    };
    ctx.save(&container)?;
    if container.is_sandbox() {
        container.emit_stdout()?;
    }
    Ok(())
}

pub(crate) fn start(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let mut c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("start")?;
    if c.status() != "created" {
        return Err(format!("cannot start container in state {:?}", c.status()));
    }
    c.value["status"] = json!("running");
    c.value["started_ms"] = json!(now_ms());
    ctx.save(&c)?;
    if !c.is_sandbox() {
        c.emit_stdout()?;
    }
    Ok(())
}

pub(crate) fn state(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("state")?;
    let state = json!({
        "ociVersion": "1.0.2-dev",
        "id": c.id(),
        "status": c.status(),
        "pid": c.value["pid"],
        "bundle": c.value["bundle"],
        "annotations": c.value["annotations"],
        "created": rfc3339(c.value["created_ms"].as_u64().unwrap_or_default()),
        "owner": "",
    });
    println!("{state:#}");
    Ok(())
}

/// `runsc wait`, as `Sandbox.Wait` behaves (runsc 20221219 and since): the exit status comes from
/// the sandbox over its control socket, so it is known while the sandbox lives. A sandbox's init
/// that stopped before the call took the sandbox with it (played with a sandbox process only),
/// and a sandbox that died during the call is gone too: runsc, not the sandbox's parent, fails
/// ("exit status is unavailable"). A container
/// joining a sandbox that died fails the same way; one that stopped by itself in a live sandbox
/// tells its status.
pub(crate) fn wait(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 0)?;
    let first = ctx.load_existing(id)?;
    first.check_fail("wait")?;
    let unavailable = || {
        format!(
            "waiting on container {id:?}: sandbox no longer running and its exit status is \
             unavailable"
        )
    };
    // Only a sandbox with a process (KNOB_SANDBOX_PROCESS) plays this: without one, the shim has
    // no sandbox exit to reap, and the status stays known as before.
    if first.is_sandbox() && first.status() == "stopped" && first.has_process() {
        return Err(unavailable());
    }
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let c = ctx.load_existing(id)?;
        if c.status() == "stopped" {
            if c.died_with_sandbox() {
                return Err(unavailable());
            }
            let status = c.value["exit_status"].as_u64().unwrap_or_default();
            println!("{}", json!({"id": id, "exitStatus": status}));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("fake-runsc: gave up waiting for {id:?}"));
        }
        std::thread::sleep(POLL);
    }
}

pub(crate) fn kill(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 1)?;
    let signal = parse_signal(&inv.args[1])?;
    let mut c = ctx.load_existing(id)?;
    c.check_fail("kill")?;
    if c.status() == "stopped" {
        return Err("sandbox is not running".to_string());
    }
    if c.status() == "paused" {
        return Err(format!(
            "cannot signal container {:?} in state paused",
            c.id()
        ));
    }
    if let Some(pid) = inv.flags.get("pid") {
        return exec::kill_pid(pid, signal);
    }
    // runsc signals only running or stopped containers (container.SignalContainer, in 20221219
    // and after).
    if c.status() == "created" {
        return Err(format!(
            "cannot signal container {:?} in state created",
            c.id()
        ));
    }
    if signal != 0 {
        c.stop(128 + signal, now_ms());
        ctx.save(&c)?;
    }
    Ok(())
}

pub(crate) fn delete(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 0)?;
    let force = inv.flags.get("force").is_some_and(|v| v != "false");
    let resolved = ctx.resolve(id)?;
    let Some(c) = resolved
        .as_deref()
        .map(|full| ctx.load(full))
        .transpose()?
        .flatten()
    else {
        return if force {
            Ok(())
        } else {
            Err(format!("container {id:?} does not exist"))
        };
    };
    c.check_fail("delete")?;
    if !force && !matches!(c.status(), "created" | "stopped") {
        return Err("cannot delete container that is not stopped without --force flag".into());
    }
    if let (true, Some(proc_root)) = (c.is_sandbox(), std::env::var_os(PROC_ROOT_ENV)) {
        SandboxProcess::remove(
            Path::new(&proc_root),
            c.value["pid"].as_u64().unwrap_or_default(),
        )?;
    }
    // runsc removes the cgroup it created.
    if let Some(dir) = c.value["cgroup_dir"].as_str() {
        remove_dir(Path::new(dir))?;
    }
    let path = ctx.state_path(c.id())?;
    fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))
}

/// `runsc pause` / `runsc resume`: a running container becomes paused and back (runsc's
/// `Container.Pause` and `Resume` require exactly that state).
pub(crate) fn pause_resume(ctx: &Ctx, inv: &Invocation, pause: bool) -> Result<(), String> {
    let mut c = ctx.load_existing(one_id(inv, 0)?)?;
    let command = if pause { "pause" } else { "resume" };
    c.check_fail(command)?;
    let (from, to) = if pause {
        ("running", "paused")
    } else {
        ("paused", "running")
    };
    if c.status() != from {
        return Err(format!(
            "cannot {command} container {:?} in state {}",
            c.id(),
            c.status()
        ));
    }
    c.value["status"] = json!(to);
    ctx.save(&c)?;
    Ok(())
}

/// `runsc update --resources=- <id>` (release-20260202.0 and later): the LinuxResources JSON on
/// stdin, kept in the state as `resources` so a test can read what runsc was given.
pub(crate) fn update(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let mut c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("update")?;
    if inv.flags.get("resources").map(String::as_str) != Some("-") {
        return Err("update: only --resources=- is played".to_string());
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| format!("update: reading stdin: {e}"))?;
    let resources: Value =
        serde_json::from_str(&text).map_err(|e| format!("update: resources are not JSON: {e}"))?;
    if c.status() != "running" && c.status() != "paused" {
        return Err(format!(
            "cannot update container {:?} in state {}",
            c.id(),
            c.status()
        ));
    }
    c.value["resources"] = resources;
    ctx.save(&c)?;
    Ok(())
}
