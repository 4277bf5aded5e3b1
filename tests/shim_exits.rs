//! Exit statuses and exit events as containerd sees them: a container killed before it started,
//! Kill after the exit, inits that exit at once, a sandbox killed from outside.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::*;
use containerd_shim_protos::api::Status;
use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::ttrpc::Code;

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
