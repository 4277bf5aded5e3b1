//! Restarts and faults as containerd lives them: containerd restarting while a task runs (the
//! shim keeps it, a new containerd connects, State and Wait resume, the exit reaches the new
//! containerd), a shim killed with SIGKILL cleaned up by `delete` with nothing leaked (the
//! sandbox process, its leaf cgroup, the mounts, the socket, runsc's state), and Pause and Update
//! through the task API. A sandbox killed from outside is tests/shim_exits.rs's.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::fs;
use std::time::Duration;

use common::prelude::*;
use containerd_shim_protos::api::{PauseRequest, ResumeRequest, UpdateTaskRequest, WaitRequest};
use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::ttrpc::Code;
use containerd_shim_protos::types::task::Status as TaskStatus;
use fake_runsc::KNOB_SANDBOX_PROCESS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_restarting_leaves_the_task_running_and_its_shim_reachable() {
    if skip_unless_root("containerd_restarting_leaves_the_task_running_and_its_shim_reachable") {
        return;
    }
    let mut env = TestEnv::new("restart").await;
    let (bundle, shim, created_pid) = env.started_sandbox("restart-c1").await;
    let id = shim.id().to_string();
    env.await_call("wait").await;
    // The old containerd waits on the task when it dies: its connection goes with it.
    let old_wait = {
        let client = shim.client.clone();
        let req = WaitRequest {
            id: id.clone(),
            ..Default::default()
        };
        tokio::spawn(async move { client.wait(ctx(), &req).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    old_wait.abort();
    let address = shim.address.clone();
    let shim_pid = shim.pid();
    let log = shim.log();
    drop(shim);
    env.restart_containerd().await;

    // The new containerd reads the bundle's address and connects, as on its start-up.
    let shim = env.reconnect(&bundle).await;
    assert_eq!(shim.address, address);
    let connected = shim.ok("Connect after the restart", shim.connect().await);
    assert_eq!(
        connected.shim_pid as i32, shim_pid,
        "the same shim\nlog:\n{log}"
    );
    assert_eq!(
        connected.task_pid, created_pid,
        "the task is the one created"
    );
    let state = shim.ok("State after the restart", shim.state().await);
    assert_eq!(state.status(), TaskStatus::RUNNING, "the task still runs");
    assert_eq!(state.pid, created_pid);
    // containerd's restored task waits again; the exit reaches it and the new event service.
    let new_wait = {
        let client = shim.client.clone();
        let req = WaitRequest {
            id: id.clone(),
            ..Default::default()
        };
        tokio::spawn(async move { client.wait(ctx(), &req).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    shim.ok("Kill after the restart", shim.kill(9, false).await);
    let waited = shim.ok("Wait after the restart", new_wait.await.unwrap());
    assert_eq!(waited.exit_status, 137);
    let exit: TaskExit = env.event(TOPIC_EXIT, &id).await;
    assert_eq!(
        exit.exit_status, 137,
        "TaskExit reached the restarted containerd"
    );
    // The restart was real: the shim's first publish after it failed, and it reconnected.
    assert!(
        shim.log()
            .contains("holding it and later events until containerd answers"),
        "the shim's connection to containerd did not break:\n{}",
        shim.log()
    );

    let deleted = shim.ok("Delete", shim.delete().await);
    assert_eq!(deleted.exit_status, 137);
    shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        [TOPIC_CREATE, TOPIC_START, TOPIC_EXIT, TOPIC_DELETE],
        "every event once, in order, across the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_a_containerd_that_is_down_for_long_and_keep_their_order() {
    if skip_unless_root("events_wait_for_a_containerd_that_is_down_for_long_and_keep_their_order") {
        return;
    }
    let mut env = TestEnv::new("cdown").await;
    let (_bundle, shim, _) = env.started_sandbox("cdown-c1").await;
    let id = shim.id().to_string();
    let _: containerd_shim_protos::events::task::TaskStart = env.event(TOPIC_START, &id).await;
    env.stop_containerd().await;
    // The task exits while containerd is away, for longer than containerd-shim's own publisher
    // retries an event (about 20 s).
    shim.ok("Kill", shim.kill(9, false).await);
    assert_eq!(shim.ok("Wait", shim.wait().await).exit_status, 137);
    tokio::time::sleep(Duration::from_secs(23)).await;
    assert_eq!(
        env.topics(),
        [TOPIC_CREATE, TOPIC_START],
        "nothing can arrive while containerd is down"
    );
    env.start_containerd().await;
    // The new containerd deletes the task at once; its TaskDelete comes after the held TaskExit.
    shim.ok("Delete", shim.delete().await);
    let _: containerd_shim_protos::events::task::TaskDelete = env.event(TOPIC_DELETE, &id).await;
    assert_eq!(
        env.topics(),
        [TOPIC_CREATE, TOPIC_START, TOPIC_EXIT, TOPIC_DELETE],
        "the held TaskExit arrived, once and before TaskDelete\nshim log:\n{}",
        shim.log()
    );
    let exit: TaskExit = env.event(TOPIC_EXIT, &id).await;
    assert_eq!(exit.exit_status, 137);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_killed_with_sigkill_is_cleaned_up_by_delete_with_nothing_leaked() {
    if skip_unless_root("a_shim_killed_with_sigkill_is_cleaned_up_by_delete_with_nothing_leaked") {
        return;
    }
    let env = TestEnv::new("shimkill").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "shimkill-s1", Some(POD_LIMIT))
        .annotation(KNOB_SANDBOX_PROCESS, "real")
        .build();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);
    env.await_call("wait").await;
    let sandbox_pid = bundle.init_pid() as i32;
    let leaf = node.cgroup_root.join(&scope(&bundle.id)[1..]);
    assert!(leaf.is_dir(), "runsc made the sandbox's leaf");
    assert!(bundle.rootfs_is_mounted());
    assert!(
        std::path::Path::new(&format!("/proc/{sandbox_pid}")).exists(),
        "the sandbox process runs"
    );

    let trace = kill_shim_daemon(&env, shim).await;
    let out = env.run_delete_action(&bundle, &node.vars()).await;
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bundle.rootfs_is_mounted(), "the rootfs is unmounted");
    assert!(!trace.socket.exists(), "the dead shim's socket is removed");
    assert!(
        !leaf.exists(),
        "runsc delete --force removed the sandbox's leaf"
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::path::Path::new(&format!("/proc/{sandbox_pid}/cmdline"))
        .metadata()
        .is_ok()
        && fs::read_to_string(format!("/proc/{sandbox_pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox process {sandbox_pid} outlived delete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_update_through_the_task_api() {
    if skip_unless_root("pause_resume_and_update_through_the_task_api") {
        return;
    }
    let env = TestEnv::new("ttupdate").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "ttupdate-s1", Some(POD_LIMIT)).build();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;
    let id = shim.id().to_string();
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);

    shim.ok(
        "Pause",
        shim.client
            .pause(
                ctx(),
                &PauseRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .await,
    );
    let state = shim.ok("State (paused)", shim.state().await);
    assert_eq!(state.status(), TaskStatus::PAUSED);
    shim.ok(
        "Resume",
        shim.client
            .resume(
                ctx(),
                &ResumeRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(
        shim.ok("State (resumed)", shim.state().await).status(),
        TaskStatus::RUNNING
    );

    // containerd's typeurl for specs.LinuxResources, with the JSON as value.
    let update = |limit: u64| UpdateTaskRequest {
        id: id.clone(),
        resources: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
                .to_string(),
            value: format!(r#"{{"memory":{{"limit":{limit}}}}}"#).into_bytes(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    shim.ok(
        "Update",
        shim.client.update(ctx(), &update(200 * MIB)).await,
    );
    let leaf_limit = node.cgroup_root.join(&scope(&id)[1..]).join("memory.max");
    assert_eq!(
        fs::read_to_string(&leaf_limit).unwrap().trim(),
        (200 * MIB).to_string()
    );
    let err = shim
        .client
        .update(ctx(), &update(1 << 30))
        .await
        .expect_err("an Update above the pod's bound");
    assert_eq!(error_code(&err), Some(Code::FAILED_PRECONDITION), "{err:?}");
    assert!(
        error_message(&err).contains("is above the pod's bound 256 MiB"),
        "{}",
        error_message(&err)
    );
    let missing = shim
        .client
        .update(
            ctx(),
            &UpdateTaskRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect_err("an Update without resources");
    assert_eq!(error_code(&missing), Some(Code::INVALID_ARGUMENT));
    assert_eq!(
        fs::read_to_string(&leaf_limit).unwrap().trim(),
        (200 * MIB).to_string(),
        "refusals change nothing"
    );
    let topics = env.topics();
    assert_eq!(
        topics,
        [TOPIC_CREATE, TOPIC_START, TOPIC_PAUSED, TOPIC_RESUMED],
        "events in order"
    );
    run_to_the_end_started(&env, shim).await;
}

/// Kill (SIGKILL), Wait, Delete, Shutdown of a started container, then nothing left.
async fn run_to_the_end_started(env: &TestEnv, shim: Shim) {
    shim.kill_wait_delete("container").await;
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
