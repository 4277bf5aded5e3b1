//! Calls that take long: a hung runsc is killed at its limit and Create fails naming the
//! command, leaving nothing behind; a Create under way is visible to the rest of the shim (a
//! second Create of its id is AlreadyExists, Delete waits for it, Shutdown does not end it).
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use common::prelude::*;
use containerd_shim_protos::ttrpc;
use fake_runsc::{KNOB_HANG, KNOB_HANG_MS};
use runsc_guard::runsc::executor::CALL_TIMEOUT_ENV;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_runsc_create_is_killed_and_create_fails_naming_it() {
    if skip_unless_root("a_hung_runsc_create_is_killed_and_create_fails_naming_it") {
        return;
    }
    let env = TestEnv::new("hung").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("hung-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_HANG, "create")
        .build();
    let vars = [(CALL_TIMEOUT_ENV, OsString::from("1"))];
    let shim = env.start_shim_with(&bundle, &vars, &[]).await;
    let started = Instant::now();
    let err = shim
        .create(bundle.create_request(Some(env.options(&config))))
        .await
        .expect_err("Create of a hung runsc must fail");
    let message = error_message(&err);
    assert!(
        message.contains("runsc create failed") && message.contains("did not finish within"),
        "the error names the command and the limit: {message}\nshim log:\n{}",
        shim.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "Create returned after {:?}, not at the 1 s limit",
        started.elapsed()
    );
    assert!(!bundle.rootfs_is_mounted(), "the rootfs is unmounted");
    env.assert_no_mounts_or_runsc_state();
    let hung: Vec<_> = processes_mentioning(&bundle.id)
        .into_iter()
        .filter(|(_, cmdline)| cmdline.contains("--pid-file"))
        .collect();
    assert!(
        hung.is_empty(),
        "the hung runsc create was killed: {hung:?}"
    );
    shim.ok("Connect after a timed-out Create", shim.connect().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_under_way_is_seen_by_create_delete_and_shutdown() {
    if skip_unless_root("a_create_under_way_is_seen_by_create_delete_and_shutdown") {
        return;
    }
    let env = TestEnv::new("racing").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("racing-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_HANG, "create")
        .annotation(KNOB_HANG_MS, "2000")
        .build();
    let shim = env.start_shim(&bundle).await;
    let request = bundle.create_request(Some(env.options(&config)));

    let client = shim.client.clone();
    let first_request = request.clone();
    let first = tokio::spawn(async move { client.create(ctx(), &first_request).await });
    env.await_call("create").await;

    // The same id again while the first Create runs: refused, and nothing of the first undone.
    let err = shim
        .create(request)
        .await
        .expect_err("a second Create of the same id must fail");
    assert_eq!(
        error_code(&err),
        Some(ttrpc::Code::ALREADY_EXISTS),
        "{err:?}\nshim log:\n{}",
        shim.log()
    );

    // Shutdown while a Create runs must not end the shim under it.
    let req = containerd_shim_protos::shim::shim::ShutdownRequest {
        id: shim.id().to_string(),
        ..Default::default()
    };
    shim.ok("Shutdown", shim.client.shutdown(ctx(), &req).await);

    // Delete while the Create runs waits for it, then deletes what it made.
    let client = shim.client.clone();
    let delete_req = containerd_shim_protos::shim::shim::DeleteRequest {
        id: shim.id().to_string(),
        ..Default::default()
    };
    let delete = tokio::spawn(async move { client.delete(ctx(), &delete_req).await });
    let created = first.await.unwrap();
    shim.ok("the first Create", created);
    shim.ok("Delete during Create", delete.await.unwrap());
    let creates = env
        .calls()
        .iter()
        .filter(|c| subcommand(c) == Some("create"))
        .count();
    assert_eq!(
        creates,
        1,
        "runsc create ran once:\n{}",
        env.show(&env.calls())
    );
    assert!(!bundle.rootfs_is_mounted(), "Delete unmounted the rootfs");
    shim.ok("Connect after Delete", shim.connect().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
