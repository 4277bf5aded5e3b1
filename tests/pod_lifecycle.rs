//! The shim's task logic in process, as any user: `Pod` built as the daemon builds it, driven
//! through Create, State, Start, Pids, Kill, Wait and Delete against fake-runsc, with the exact
//! runsc command lines, the events in order, the roles the CRI annotations give, and nothing left
//! behind. No rootfs mount and no stdio: those are the daemon tests' (tests/shim_*.rs, as root).

mod common;

use std::fs;

use common::prelude::*;
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskStart};
use runsc_guard::shim::process::Status;
use runsc_guard::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_runs_the_exact_runsc_commands_and_sends_the_events_in_order() {
    let env = PodEnv::new("plifecycle");
    let config = env.write_runsc_toml("");
    let pod_logs = env.path("pod-logs");
    fs::create_dir_all(&pod_logs).unwrap();
    let bundle = env
        .bundle("plifecycle-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_LOG_DIRECTORY, pod_logs.display().to_string())
        .build();
    let id = bundle.id.clone();
    let b = bundle.path.display().to_string();

    let pid = env.create_ok("Create", &bundle, &config).await;
    assert_eq!(
        pid as u32,
        bundle.init_pid(),
        "Create returns the pid in init.pid"
    );
    assert!(
        bundle.init_pid() >= FAKE_PID_BASE,
        "init.pid holds fake-runsc's pid"
    );
    let ev: TaskCreate = env.event(TOPIC_CREATE, &id).await;
    assert_eq!(ev.bundle, b);
    assert_eq!(ev.pid, pid as u32);
    assert_eq!(ev.io.stdout, "", "no stdio asked, none reported");
    assert_eq!(env.pod.task_pid(&id).await, Some(pid));

    let state = env.ok("State (created)", env.pod.state(&init(&id)).await);
    assert_eq!(state.status, Status::Created);
    assert_eq!(state.process, init(&id));
    assert_eq!(state.pid, pid);
    assert_eq!(state.bundle, Some(bundle.path.clone()));
    assert_eq!(state.exit, None);

    let again = env.create(&bundle, &config).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists(_))),
        "a second Create of the same id: {again:?}"
    );

    assert_eq!(env.ok("Start", env.pod.start(&init(&id)).await), pid);
    let ev: TaskStart = env.event(TOPIC_START, &id).await;
    assert_eq!(ev.pid, pid as u32);
    let state = env.ok("State (running)", env.pod.state(&init(&id)).await);
    assert_eq!(state.status, Status::Running);
    assert_eq!(
        env.ok("Pids", env.pod.pids(&id).await),
        [1],
        "Pids reports `runsc ps`'s sandbox-internal pids"
    );

    env.ok("Kill (SIGTERM)", env.pod.kill(&init(&id), 15, false).await);
    let exit: TaskExit = env.event(TOPIC_EXIT, &id).await;
    assert_eq!(exit.container_id, id);
    assert_eq!(exit.id, id, "the init process' id is the container's");
    assert_eq!(exit.pid, pid as u32);
    assert_eq!(exit.exit_status, 143, "128 + SIGTERM");
    assert!(exit.exited_at.is_some(), "TaskExit has exited_at");
    let waited = env.ok("Wait", env.pod.wait(&init(&id)).await);
    assert_eq!(waited.status, 143);

    let (deleted_pid, deleted) = env.ok("Delete", env.pod.delete(&init(&id)).await);
    assert_eq!(deleted.status, 143);
    assert_eq!(deleted_pid, pid);
    let ev: TaskDelete = env.event(TOPIC_DELETE, &id).await;
    assert_eq!(ev.exit_status, 143);
    assert_eq!(ev.pid, pid as u32);
    let gone = env.pod.state(&init(&id)).await;
    assert!(
        matches!(gone, Err(Error::NotFound(_))),
        "State after Delete: {gone:?}"
    );

    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        [TOPIC_CREATE, TOPIC_START, TOPIC_EXIT, TOPIC_DELETE],
        "events, in order"
    );
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
    let env = PodEnv::new("pexits");
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("pexits-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_RUN_MS, "200")
        .annotation(KNOB_EXIT_CODE, "3")
        .build();
    let id = bundle.id.clone();
    let pid = env.create_ok("Create", &bundle, &config).await;
    env.ok("Start", env.pod.start(&init(&id)).await);

    // Wait is asked while the container still runs: it returns at the exit.
    let process = init(&id);
    let (waited, exit) = tokio::join!(
        env.pod.wait(&process),
        env.event::<TaskExit>(TOPIC_EXIT, &id)
    );
    assert_eq!(env.ok("Wait", waited).status, 3);
    assert_eq!(exit.exit_status, 3);
    assert_eq!(exit.pid, pid as u32);
    assert_eq!(exit.id, id);

    let state = env.ok("State (stopped)", env.pod.state(&init(&id)).await);
    assert_eq!(state.status, Status::Stopped);
    assert_eq!(state.exit.map(|e| e.status), Some(3));

    let err = env
        .pod
        .kill(&init(&id), 15, false)
        .await
        .expect_err("Kill after the exit must fail");
    assert!(
        matches!(err, Error::NotFound(_)),
        "Kill of a stopped container is NotFound (so CRI stops retrying), got {err:?}"
    );

    let (_, deleted) = env.ok("Delete", env.pod.delete(&init(&id)).await);
    assert_eq!(deleted.status, 3);
    let ev: TaskDelete = env.event(TOPIC_DELETE, &id).await;
    assert_eq!(ev.exit_status, 3);
    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        [TOPIC_CREATE, TOPIC_START, TOPIC_EXIT, TOPIC_DELETE],
        "events, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_killed_before_start_exits_and_is_deleted() {
    let env = PodEnv::new("pkillcreated");
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("pkillcreated-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let id = bundle.id.clone();
    env.create_ok("Create", &bundle, &config).await;
    env.ok("Kill (created)", env.pod.kill(&init(&id), 9, false).await);
    // No `runsc wait` watches a created container: the shim knows its end at once.
    let exit: TaskExit = env.event(TOPIC_EXIT, &id).await;
    assert_eq!(exit.exit_status, 137);
    assert_eq!(env.ok("Wait", env.pod.wait(&init(&id)).await).status, 137);
    env.ok("Delete", env.pod.delete(&init(&id)).await);
    env.assert_nothing_left().await;
    assert_eq!(env.topics(), [TOPIC_CREATE, TOPIC_EXIT, TOPIC_DELETE]);
    let (_, waits) = split_waits(&env.calls());
    assert!(waits.is_empty(), "no `runsc wait` without Start: {waits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_and_a_container_joining_it_share_the_pid_and_only_the_sandbox_logs() {
    let env = PodEnv::new("ppod");
    let config = env.write_runsc_toml("");
    let pod_logs = env.path("pod-logs");
    fs::create_dir_all(&pod_logs).unwrap();
    let logs = pod_logs.display().to_string();
    let sandbox = env
        .bundle("ppod-sandbox")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, "ppod-sandbox")
        .annotation(SANDBOX_LOG_DIRECTORY, logs.clone())
        .build();
    let app = env
        .bundle("ppod-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "ppod-sandbox")
        .annotation(SANDBOX_LOG_DIRECTORY, logs)
        .build();

    let sandbox_pid = env.create_ok("Create (sandbox)", &sandbox, &config).await;
    env.ok("Start (sandbox)", env.pod.start(&init(&sandbox.id)).await);
    let app_pid = env.create_ok("Create (container)", &app, &config).await;
    assert_eq!(
        app_pid, sandbox_pid,
        "a container's pid is its sandbox's (runsc writes the sandbox pid into every pid file)"
    );
    env.ok("Start (container)", env.pod.start(&init(&app.id)).await);
    assert_eq!(
        env.pod.task_pid(&app.id).await,
        Some(sandbox_pid),
        "the task pid"
    );

    env.kill_wait_delete(&app.id).await;
    env.kill_wait_delete(&sandbox.id).await;
    env.assert_nothing_left().await;

    let calls = env.calls();
    let create_of = |bundle: &Bundle| {
        calls
            .iter()
            .find(|c| subcommand(c) == Some("create") && c.last() == Some(&bundle.id))
            .cloned()
            .unwrap_or_else(|| panic!("no create of {}:\n{}", bundle.id, env.show(&calls)))
    };
    let user_log = pod_logs.join("gvisor.log").display().to_string();
    let mut sandbox_create = env.create_argv(&sandbox, &[]);
    let at = sandbox_create.len() - 1;
    sandbox_create.splice(at..at, ["--user-log".to_string(), user_log]);
    assert_eq!(
        create_of(&sandbox),
        sandbox_create,
        "the sandbox keeps the pod's gVisor log"
    );
    assert_eq!(
        create_of(&app),
        env.create_argv(&app, &[]),
        "a container joining the sandbox gets no --user-log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_without_cri_annotations_is_a_sandbox_of_its_own() {
    let env = PodEnv::new("pplain");
    let config = env.write_runsc_toml("");
    let bundle = env.bundle("pplain-c1").build();
    let id = bundle.id.clone();

    env.create_ok("Create", &bundle, &config).await;
    let calls = env.calls();
    assert_eq!(
        calls.get(..1),
        Some(&[env.create_argv(&bundle, &[])][..]),
        "a plain `runsc create` (no --user-log without a log directory):\n{}",
        env.show(&calls)
    );
    env.ok("Start", env.pod.start(&init(&id)).await);
    env.ok(
        "Kill (SIGKILL, all)",
        env.pod.kill(&init(&id), 9, true).await,
    );
    let kills: Vec<_> = env
        .calls()
        .into_iter()
        .filter(|c| subcommand(c) == Some("kill"))
        .collect();
    assert_eq!(
        kills.first(),
        Some(&env.argv(&bundle, &["kill", "--all", &id, "9"])),
        "Kill with all=true:\n{}",
        env.show(&kills)
    );
    assert_eq!(env.ok("Wait", env.pod.wait(&init(&id)).await).status, 137);
    env.ok("Delete", env.pod.delete(&init(&id)).await);
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsc_config_flags_come_sorted_before_every_subcommand_with_the_id_expanded() {
    let env = PodEnv::new("pflags");
    let logs = env.path("logs");
    // Written out of order on purpose.
    let config = env.write_runsc_toml(&format!(
        "[runsc_config]\nplatform = \"ptrace\"\nnetwork = \"none\"\n\
         debug-log = \"{}/%ID%/debug.log\"\ndebug = \"true\"\n",
        logs.display()
    ));
    let bundle = env
        .bundle("pflags-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let id = bundle.id.clone();

    env.create_ok("Create", &bundle, &config).await;
    assert!(
        logs.join(&id).is_dir(),
        "the parent directory of debug-log ({}/<id>) is created",
        logs.display()
    );
    env.run_to_the_end(&id).await;
    env.assert_nothing_left().await;

    let debug_log = logs.join(&id).join("debug.log");
    let expected_flags = [
        "--debug=true".to_string(),
        format!("--debug-log={}", debug_log.display()),
        "--network=none".to_string(),
        "--platform=ptrace".to_string(),
    ];
    let global = env.global_flags(&bundle);
    let calls = env.calls();
    for argv in &calls {
        assert!(
            argv.len() > global.len() + expected_flags.len(),
            "runsc {}",
            argv.join(" ")
        );
        assert_eq!(argv[..global.len()], global, "runsc {}", argv.join(" "));
        assert_eq!(
            argv[global.len()..global.len() + expected_flags.len()],
            expected_flags,
            "runsc_config flags, sorted, right after the shim's own: runsc {}",
            argv.join(" ")
        );
    }
    let mut subcommands: Vec<&str> = calls.iter().filter_map(|c| subcommand(c)).collect();
    subcommands.sort_unstable();
    subcommands.dedup();
    assert_eq!(
        subcommands,
        ["create", "delete", "kill", "start", "wait"],
        "no `runsc list`: the shim reads the root's state files itself"
    );
}
