//! Exit statuses and exit events as containerd sees them: a container killed before it started,
//! Kill after the exit, inits that exit at once, a sandbox killed from outside.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::api::Status;
use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::ttrpc::Code;
use fake_runsc::KNOB_SANDBOX_PROCESS;

const TOPIC_OOM: &str = "/tasks/oom";

fn count(env: &TestEnv, topic: &str, id: &str) -> usize {
    env.events()
        .iter()
        .filter(|e| e.topic == topic)
        .filter(|e| topic != TOPIC_EXIT || e.decode::<TaskExit>().container_id == id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_of_a_created_container_ends_it_and_a_later_kill_is_not_found() {
    if skip_unless_root("kill_of_a_created_container_ends_it_and_a_later_kill_is_not_found") {
        return;
    }
    let env = TestEnv::new("kill-created").await;
    let config = env.write_runsc_toml("");
    let sandbox = env
        .bundle("kill-created-sb")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, "kill-created-sb")
        .build();
    let app = env
        .bundle("kill-created-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "kill-created-sb")
        .build();
    let sandbox_shim = env.start_shim(&sandbox).await;
    let app_shim = env.start_shim(&app).await;
    sandbox_shim
        .create_ok("Create (sandbox)", &env, &sandbox, &config)
        .await;
    sandbox_shim.ok("Start (sandbox)", sandbox_shim.start().await);
    app_shim
        .create_ok("Create (container)", &env, &app, &config)
        .await;

    // A container joining the pod, killed before Start: it ends, the sandbox goes on.
    app_shim.ok("Kill (created container)", app_shim.kill(15, false).await);
    let exit: TaskExit = env.event(TOPIC_EXIT, &app.id).await;
    assert_eq!(exit.exit_status, 143, "128 + SIGTERM");
    let waited = app_shim.ok("Wait", app_shim.wait().await);
    assert_eq!(waited.exit_status, 143);
    let state = app_shim.ok("State", app_shim.state().await);
    assert_eq!(state.status.enum_value(), Ok(Status::STOPPED));
    let err = app_shim
        .kill(9, false)
        .await
        .expect_err("Kill after the exit");
    assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{err:?}");
    let deleted = app_shim.ok("Delete", app_shim.delete().await);
    assert_eq!(deleted.exit_status, 143);
    assert_eq!(count(&env, TOPIC_EXIT, &app.id), 1, "one TaskExit");
    let sandbox_state = sandbox_shim.ok("State (sandbox)", sandbox_shim.state().await);
    assert_eq!(sandbox_state.status.enum_value(), Ok(Status::RUNNING));
    let calls = env.calls();
    assert!(
        calls.contains(&env.argv(&app, &["delete", "--force", &app.id])),
        "the created container is ended with runsc delete --force:\n{}",
        env.show(&calls)
    );
    assert!(
        !calls.contains(&env.argv(&app, &["kill", &app.id, "15"])),
        "runsc cannot signal a created container:\n{}",
        env.show(&calls)
    );

    sandbox_shim.kill_wait_delete("sandbox").await;
    app_shim.shutdown().await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_of_a_created_sandbox_ends_it() {
    if skip_unless_root("kill_of_a_created_sandbox_ends_it") {
        return;
    }
    let env = TestEnv::new("kill-created-sb").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("kill-created-sb-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let shim = env.start_shim(&bundle).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Kill (signal 0)", shim.kill(0, false).await);
    let state = shim.ok("State", shim.state().await);
    assert_eq!(
        state.status.enum_value(),
        Ok(Status::CREATED),
        "signal 0 ends nothing"
    );
    shim.ok("Kill (created)", shim.kill(9, false).await);
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, 137);
    let err = shim.kill(9, true).await.expect_err("Kill after the exit");
    assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{err:?}");
    let deleted = shim.ok("Delete", shim.delete().await);
    assert_eq!(deleted.exit_status, 137);
    assert_eq!(count(&env, TOPIC_EXIT, &bundle.id), 1, "one TaskExit");
    shim.shutdown().await;
    env.assert_nothing_left().await;
}

/// A sandbox whose init exits at once: the sandbox process exits before `runsc wait` can ask
/// (fake-runsc's `wait` then fails as runsc's does), and the shim still reports the real status.
async fn a_sandbox_init_that_exits_at_once_reports(name: &str, code: u32) {
    let env = TestEnv::new(name).await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle(&format!("{name}-c1"))
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_SANDBOX_PROCESS, "real")
        .annotation(KNOB_RUN_MS, "0")
        .annotation(KNOB_EXIT_CODE, code.to_string())
        .build();
    let shim = env.start_shim(&bundle).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, code, "Wait\nshim log:\n{}", shim.log());
    let exit: TaskExit = env.event(TOPIC_EXIT, &bundle.id).await;
    assert_eq!(exit.exit_status, code, "TaskExit");
    let deleted = shim.ok("Delete", shim.delete().await);
    assert_eq!(deleted.exit_status, code, "Delete");
    assert_eq!(count(&env, TOPIC_EXIT, &bundle.id), 1, "one TaskExit");
    assert!(
        shim.log().contains("its init's status"),
        "runsc wait could not tell, the reaper did:\n{}",
        shim.log()
    );
    shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_init_that_exits_at_once_with_7_reports_7() {
    if skip_unless_root("a_sandbox_init_that_exits_at_once_with_7_reports_7") {
        return;
    }
    a_sandbox_init_that_exits_at_once_reports("exit7", 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_init_that_exits_at_once_with_0_reports_0() {
    if skip_unless_root("a_sandbox_init_that_exits_at_once_with_0_reports_0") {
        return;
    }
    a_sandbox_init_that_exits_at_once_reports("exit0", 0).await;
}

/// Two containers of a pod, each with its shim, the sandbox a real process.
async fn pod_with_real_sandbox(
    env: &TestEnv,
    name: &str,
    app_knobs: &[(&str, &str)],
) -> (Bundle, Shim, Bundle, Shim) {
    let config = env.write_runsc_toml("");
    let sandbox_id = format!("{name}-sb");
    let sandbox = env
        .bundle(&sandbox_id)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, &sandbox_id)
        .annotation(KNOB_SANDBOX_PROCESS, "real")
        .build();
    let mut app = env
        .bundle(&format!("{name}-app"))
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, &sandbox_id);
    for (k, v) in app_knobs {
        app = app.annotation(k, *v);
    }
    let app = app.build();
    let sandbox_shim = env.start_shim(&sandbox).await;
    let app_shim = env.start_shim(&app).await;
    sandbox_shim
        .create_ok("Create (sandbox)", env, &sandbox, &config)
        .await;
    sandbox_shim.ok("Start (sandbox)", sandbox_shim.start().await);
    app_shim
        .create_ok("Create (container)", env, &app, &config)
        .await;
    app_shim.ok("Start (container)", app_shim.start().await);
    (sandbox, sandbox_shim, app, app_shim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_joining_a_pod_that_exits_at_once_reports_its_status() {
    if skip_unless_root("a_container_joining_a_pod_that_exits_at_once_reports_its_status") {
        return;
    }
    let env = TestEnv::new("app-exit7").await;
    let (_sandbox, sandbox_shim, app, app_shim) = pod_with_real_sandbox(
        &env,
        "app-exit7",
        &[(KNOB_RUN_MS, "0"), (KNOB_EXIT_CODE, "7")],
    )
    .await;
    let waited = app_shim.ok("Wait", app_shim.wait().await);
    assert_eq!(waited.exit_status, 7);
    let deleted = app_shim.ok("Delete", app_shim.delete().await);
    assert_eq!(deleted.exit_status, 7);
    assert_eq!(count(&env, TOPIC_EXIT, &app.id), 1, "one TaskExit");
    sandbox_shim.kill_wait_delete("sandbox").await;
    app_shim.shutdown().await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_killed_from_outside_ends_every_container_with_137() {
    if skip_unless_root("a_sandbox_killed_from_outside_ends_every_container_with_137") {
        return;
    }
    let env = TestEnv::new("sb-killed").await;
    let (sandbox, sandbox_shim, app, app_shim) =
        pod_with_real_sandbox(&env, "sb-killed", &[]).await;
    env.await_call("wait").await;
    // SIGKILL of runsc-sandbox, as the host's OOM killer or an operator does it.
    let pid = sandbox.init_pid() as i32;
    assert!(
        pid < FAKE_PID_BASE as i32,
        "the sandbox is a real process (pid {pid})"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the sandbox process");
    for (what, shim, id) in [
        ("sandbox", &sandbox_shim, &sandbox.id),
        ("container", &app_shim, &app.id),
    ] {
        let waited = shim.ok(&format!("Wait ({what})"), shim.wait().await);
        assert_eq!(waited.exit_status, 137, "{what}\nshim log:\n{}", shim.log());
        let exit: TaskExit = env.event(TOPIC_EXIT, id).await;
        assert_eq!(exit.exit_status, 137, "TaskExit ({what})");
        let err = shim.kill(9, false).await.expect_err("Kill after the exit");
        assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{what}: {err:?}");
    }
    for (what, shim, id) in [
        ("container", &app_shim, &app.id),
        ("sandbox", &sandbox_shim, &sandbox.id),
    ] {
        let deleted = shim.ok(&format!("Delete ({what})"), shim.delete().await);
        assert_eq!(deleted.exit_status, 137, "Delete ({what})");
        assert_eq!(count(&env, TOPIC_EXIT, id), 1, "one TaskExit ({what})");
    }
    app_shim.shutdown().await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_oom_killed_by_the_host_reports_oom_before_exit_137() {
    if skip_unless_root("a_sandbox_oom_killed_by_the_host_reports_oom_before_exit_137") {
        return;
    }
    let env = TestEnv::new("sb-oom").await;
    // A node whose pod slice is bounded (256 MiB) and counts OOM kills.
    const POD_UID: &str = "0c9e8d7f_6a5b_4c3d_2e1f_0a9b8c7d6e5f";
    let slice =
        format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID}.slice");
    let cgroup_root = env.path("node/cgroup");
    let proc_root = env.path("node/proc");
    let write = |rel: &str, text: &str| {
        let path = cgroup_root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("cgroup.controllers", "cpuset cpu io memory pids\n");
    write("kubepods.slice/memory.max", "max\n");
    write(
        "kubepods.slice/kubepods-burstable.slice/memory.max",
        "max\n",
    );
    write(&format!("{slice}/memory.max"), "268435456\n");
    write(&format!("{slice}/memory.events"), "oom 0\noom_kill 0\n");
    std::fs::create_dir_all(&proc_root).unwrap();
    let vars = [
        (CGROUP_ROOT_ENV, cgroup_root.clone().into_os_string()),
        (PROC_ROOT_ENV, proc_root.into_os_string()),
    ];
    let config = env.write_runsc_toml("");
    let id = "sb-oom-s1";
    let bundle = env
        .bundle(id)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, id)
        .annotation("io.kubernetes.cri.sandbox-memory", "268435456")
        .annotation(KNOB_SANDBOX_PROCESS, "real")
        .cgroups_path(&format!(
            "kubepods-burstable-pod{POD_UID}.slice:cri-containerd:{id}"
        ))
        .build();
    let shim = env.start_shim_with(&bundle, &vars, &[]).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);
    env.await_call("wait").await;

    // The host's OOM killer takes the sandbox: the pod slice counts it, the sandbox dies of
    // SIGKILL.
    write(&format!("{slice}/memory.events"), "oom 1\noom_kill 1\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bundle.init_pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the sandbox process");
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, 137, "shim log:\n{}", shim.log());
    let exit: TaskExit = env.event(TOPIC_EXIT, id).await;
    assert_eq!(exit.exit_status, 137);
    let topics: Vec<String> = env
        .topics()
        .into_iter()
        .filter(|t| t == TOPIC_OOM || t == TOPIC_EXIT)
        .collect();
    assert_eq!(
        topics,
        [TOPIC_OOM, TOPIC_EXIT],
        "TaskOOM, then one TaskExit"
    );
    let deleted = shim.ok("Delete", shim.delete().await);
    assert_eq!(deleted.exit_status, 137);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
