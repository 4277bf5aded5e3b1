//! The task lifecycle driven like containerd drives it: the exact runsc command lines, the events,
//! the exit status, and nothing left behind.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::fs;

use common::prelude::*;
use containerd_shim_protos::api::Status;
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskStart};

/// Shutdown of a deleted container, then nothing left, and the four task events were published
/// in lifecycle order.
async fn shut_down_after_every_task_event(env: &TestEnv, shim: Shim) {
    shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        [TOPIC_CREATE, TOPIC_START, TOPIC_EXIT, TOPIC_DELETE],
        "events, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_runs_the_exact_runsc_commands_and_publishes_the_events() {
    if skip_unless_root("full_lifecycle_runs_the_exact_runsc_commands_and_publishes_the_events") {
        return;
    }
    let env = TestEnv::new("lifecycle").await;
    let config = env.write_runsc_toml("");
    let pod_logs = env.path("pod-logs");
    fs::create_dir_all(&pod_logs).unwrap();
    let bundle = env
        .bundle("lifecycle-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_LOG_DIRECTORY, pod_logs.display().to_string())
        .annotation(KNOB_STDOUT, "hello from the sandbox\n")
        .with_stdout()
        .build();
    let mut stdout = bundle.open_stdout();
    let shim = env.start_shim(&bundle).await;
    let id = shim.id().to_string();
    let b = bundle.path.display().to_string();

    let created = shim.create_ok("Create", &env, &bundle, &config).await;
    let pid = bundle.init_pid();
    assert!(
        pid >= FAKE_PID_BASE,
        "init.pid holds fake-runsc's pid, got {pid}"
    );
    assert_eq!(created.pid, pid, "Create returns the pid in init.pid");
    assert!(
        bundle.rootfs_is_mounted(),
        "the rootfs mount is on <bundle>/rootfs after Create"
    );
    stdout.read_until("hello from the sandbox\n").await;
    let ev: TaskCreate = env.event(TOPIC_CREATE, &id).await;
    assert_eq!(ev.bundle, b);
    assert_eq!(ev.pid, pid);
    assert_eq!(
        ev.io.stdout,
        bundle.stdout.as_ref().unwrap().display().to_string()
    );

    let state = shim.ok("State (created)", shim.state().await);
    assert_eq!(state.status.enum_value(), Ok(Status::CREATED));
    assert_eq!(state.id, id);
    assert_eq!(state.pid, pid);
    assert_eq!(state.bundle, b);

    let started = shim.ok("Start", shim.start().await);
    assert_eq!(started.pid, pid);
    let ev: TaskStart = env.event(TOPIC_START, &id).await;
    assert_eq!(ev.pid, pid);

    let state = shim.ok("State (running)", shim.state().await);
    assert_eq!(state.status.enum_value(), Ok(Status::RUNNING));

    let pids = shim.ok("Pids", shim.pids().await);
    let pids: Vec<u32> = pids.processes.iter().map(|p| p.pid).collect();
    assert_eq!(pids, [1], "Pids reports `runsc ps`'s sandbox-internal pids");

    let connected = shim.ok("Connect", shim.connect().await);
    assert_eq!(connected.shim_pid, shim.pid() as u32, "Connect's shim pid");
    assert_eq!(connected.task_pid, pid, "Connect's task pid");

    shim.ok("Kill (SIGTERM)", shim.kill(15, false).await);
    let exit: TaskExit = env.event(TOPIC_EXIT, &id).await;
    assert_eq!(exit.container_id, id);
    assert_eq!(exit.id, id, "the init process' id is the container's");
    assert_eq!(exit.pid, pid);
    assert_eq!(exit.exit_status, 143, "128 + SIGTERM");
    assert!(exit.exited_at.is_some(), "TaskExit has exited_at");
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, 143);

    let deleted = shim.ok("Delete", shim.delete().await);
    assert_eq!(deleted.exit_status, 143);
    assert_eq!(deleted.pid, pid);
    let ev: TaskDelete = env.event(TOPIC_DELETE, &id).await;
    assert_eq!(ev.exit_status, 143);
    assert_eq!(ev.pid, pid);
    assert!(!bundle.rootfs_is_mounted(), "Delete unmounts the rootfs");

    shut_down_after_every_task_event(&env, shim).await;
    for e in env.events() {
        assert_eq!(e.namespace, env.namespace, "namespace of {}", e.topic);
    }

    // Checked last, so a difference here does not hide the checks above.
    let calls = env.calls();
    let (others, waits) = split_waits(&calls);
    let user_log = pod_logs.join("gvisor.log").display().to_string();
    let pid_file = bundle.path.join("init.pid").display().to_string();
    let expected = vec![
        env.argv(
            &bundle,
            &[
                "create",
                "--bundle",
                &b,
                "--pid-file",
                &pid_file,
                "--user-log",
                &user_log,
                &id,
            ],
        ),
        env.argv(&bundle, &["state", &id]),
        env.argv(&bundle, &["start", &id]),
        env.argv(&bundle, &["state", &id]),
        env.argv(&bundle, &["ps", "--format", "json", &id]),
        env.argv(&bundle, &["kill", &id, "15"]),
        // Once `runsc wait` returns, what is left of the container goes with its init, as in
        // gVisor's shim (before TaskExit, so before Delete).
        env.argv(&bundle, &["kill", "--all", &id, "9"]),
        env.argv(&bundle, &["delete", &id]),
    ];
    assert!(
        others == expected,
        "runsc command lines (without `wait`):\n{}\nexpected:\n{}",
        env.show(&others),
        env.show(&expected)
    );
    assert_eq!(
        waits,
        [env.argv(&bundle, &["wait", &id])],
        "one `runsc wait` after start"
    );
    let start_at = calls.iter().position(|c| subcommand(c) == Some("start"));
    let wait_at = calls.iter().position(|c| subcommand(c) == Some("wait"));
    assert!(
        wait_at > start_at,
        "`wait` runs after `start`:\n{}",
        env.show(&calls)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_exits_by_itself_reports_its_status() {
    if skip_unless_root("a_container_that_exits_by_itself_reports_its_status") {
        return;
    }
    let env = TestEnv::new("exits").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("exits-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_RUN_MS, "200")
        .annotation(KNOB_EXIT_CODE, "3")
        .build();
    let shim = env.start_shim(&bundle).await;
    let id = shim.id().to_string();
    shim.create_ok("Create", &env, &bundle, &config).await;
    let pid = bundle.init_pid();
    shim.ok("Start", shim.start().await);

    // Wait is sent while the container still runs: it blocks until the exit.
    let (waited, exit) = tokio::join!(shim.wait(), env.event::<TaskExit>(TOPIC_EXIT, &id));
    let waited = shim.ok("Wait", waited);
    assert_eq!(waited.exit_status, 3);
    assert!(waited.exited_at.is_some(), "Wait has exited_at");
    assert_eq!(exit.exit_status, 3);
    assert_eq!(exit.pid, pid);
    assert_eq!(exit.id, id);

    let state = shim.ok("State (stopped)", shim.state().await);
    assert_eq!(state.status.enum_value(), Ok(Status::STOPPED));
    assert_eq!(state.exit_status, 3);

    let err = shim
        .kill(15, false)
        .await
        .expect_err("Kill after the exit must fail");
    assert_eq!(
        error_code(&err),
        Some(containerd_shim_protos::ttrpc::Code::NOT_FOUND),
        "Kill of a stopped container is NotFound, got {err:?}"
    );

    let deleted = shim.ok("Delete", shim.delete().await);
    assert_eq!(deleted.exit_status, 3);
    let ev: TaskDelete = env.event(TOPIC_DELETE, &id).await;
    assert_eq!(ev.exit_status, 3);

    shut_down_after_every_task_event(&env, shim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_options_the_shim_runs_runsc_from_path_with_the_default_root() {
    if skip_unless_root("without_options_the_shim_runs_runsc_from_path_with_the_default_root") {
        return;
    }
    let mut env = TestEnv::new("defaults").await;
    env.use_default_runsc_root();
    let bundle = env
        .bundle("defaults-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let path = env.path_with_fake_runsc();
    let shim = env.start_shim_with(&bundle, &[("PATH", path)], &[]).await;

    shim.ok(
        "Create without options",
        shim.create(bundle.create_request(None)).await,
    );
    let calls = env.calls();
    assert_eq!(
        calls.get(..1),
        Some(&[env.create_argv(&bundle, &[])][..]),
        "runsc from PATH with --root={DEFAULT_RUNSC_ROOT}/<namespace>:\n{}",
        env.show(&calls)
    );
    run_to_the_end(&env, shim).await;
}
