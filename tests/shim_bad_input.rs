//! Failed Create and Start in the daemon: a ttrpc error whose message names what was wrong,
//! nothing published, and nothing left behind (the rootfs mounted for the Create unmounted, no
//! runsc state, no process); the shim keeps serving and shuts down cleanly. Each kind of bad
//! input (spec, options, runsc.toml, runsc binary, runsc's errors) is tests/pod_errors.rs's, in
//! process and as any user.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;

/// Starts a shim for `bundle`, expects Create with `options` to fail naming every `expected`,
/// then checks that nothing was left. Returns the error message.
async fn assert_create_fails(
    env: &TestEnv,
    bundle: &Bundle,
    options: Option<Any>,
    expected: &[&str],
) -> String {
    let shim = env.start_shim(bundle).await;
    let err = shim
        .create(bundle.create_request(options))
        .await
        .expect_err("Create must fail");
    let message = error_message(&err);
    assert_names_every(
        &message,
        expected,
        &format!("{err:?}\nshim log:\n{}", shim.log()),
    );
    assert!(
        !bundle.rootfs_is_mounted(),
        "the rootfs is unmounted after a failed Create"
    );
    env.assert_no_mounts_or_runsc_state();
    shim.ok("Connect after a failed Create", shim.connect().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        Vec::<String>::new(),
        "nothing published for a failed Create"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_runsc_create_returns_runscs_logged_error() {
    if skip_unless_root("a_failing_runsc_create_returns_runscs_logged_error") {
        return;
    }
    let env = TestEnv::new("createfails").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("createfails-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_FAIL, "create")
        .annotation(KNOB_FAIL_MESSAGE, "boom: no space")
        .build();
    // runsc's log keeps every call's lines: the error is the last one, not the first.
    std::fs::write(
        bundle.path.join("log.json"),
        "{\"level\":\"error\",\"msg\":\"an older error\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let message = assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&config)),
        &["boom: no space"],
    )
    .await;
    assert!(
        !message.contains("an older error"),
        "the last error line, not an older one: {message:?}"
    );
    let calls = env.calls();
    assert_eq!(
        calls.first().and_then(|c| subcommand(c)),
        Some("create"),
        "runsc create ran:\n{}",
        env.show(&calls)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_runsc_start_returns_runscs_logged_error_and_delete_still_cleans_up() {
    if skip_unless_root(
        "a_failing_runsc_start_returns_runscs_logged_error_and_delete_still_cleans_up",
    ) {
        return;
    }
    let env = TestEnv::new("startfails").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("startfails-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_FAIL, "start")
        .annotation(KNOB_FAIL_MESSAGE, "start refused: out of quota")
        .build();
    let shim = env.start_shim(&bundle).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    let err = shim.start().await.expect_err("Start must fail");
    assert!(
        error_message(&err).contains("start refused: out of quota"),
        "Start's error carries runsc's: {err:?}\nshim log:\n{}",
        shim.log()
    );
    shim.ok("Delete after a failed Start", shim.delete().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
