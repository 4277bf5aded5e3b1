//! A container whose `process.args[0]` is not in its rootfs is refused at Create, as runc refuses
//! it, with nothing left behind; the sandbox (pause) container too.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::ttrpc::Code;
use serde_json::Value;

/// Rewrites the bundle's `process.args`.
fn set_args(bundle: &Bundle, args: &[&str]) {
    let path = bundle.path.join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(args);
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
}

async fn refused_at_create(env: &TestEnv, bundle: &Bundle, command: &str) {
    let config = env.write_runsc_toml("");
    let shim = env.start_shim(bundle).await;
    let err = shim
        .create(bundle.create_request(Some(env.options(&config))))
        .await
        .expect_err("Create of a container whose command is missing");
    assert_eq!(error_code(&err), Some(Code::INVALID_ARGUMENT), "{err:?}");
    let message = error_message(&err);
    for needed in ["process.args[0]", command, "rootfs"] {
        assert!(message.contains(needed), "{needed:?} in {message:?}");
    }
    assert!(!bundle.rootfs_is_mounted(), "the rootfs is unmounted again");
    let calls = env.calls();
    assert!(
        !calls
            .iter()
            .any(|c| subcommand(c) == Some("create") && c.contains(&bundle.id)),
        "runsc create never ran:\n{}",
        env.show(&calls)
    );
    shim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_whose_command_is_missing_is_refused_at_create() {
    if skip_unless_root("a_sandbox_whose_command_is_missing_is_refused_at_create") {
        return;
    }
    let env = TestEnv::new("noentry").await;
    let bundle = env
        .bundle("noentry-sb")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    set_args(&bundle, &["/pause"]);
    refused_at_create(&env, &bundle, "/pause").await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_whose_command_is_not_on_path_is_refused_and_one_on_path_runs() {
    if skip_unless_root("a_container_whose_command_is_not_on_path_is_refused_and_one_on_path_runs")
    {
        return;
    }
    let env = TestEnv::new("nopath").await;
    let config = env.write_runsc_toml("");
    let sandbox = env
        .bundle("nopath-sb")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, "nopath-sb")
        .build();
    let missing = env
        .bundle("nopath-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "nopath-sb")
        .build();
    set_args(&missing, &["nginx", "-g", "daemon off;"]);
    let sandbox_shim = env.start_shim(&sandbox).await;
    // Found through process.env's PATH (/usr/local/bin:/usr/bin:/bin).
    set_args(&sandbox, &["sleep", "infinity"]);
    sandbox_shim
        .create_ok("Create (sandbox)", &env, &sandbox, &config)
        .await;
    sandbox_shim.ok("Start (sandbox)", sandbox_shim.start().await);
    refused_at_create(&env, &missing, "nginx").await;
    sandbox_shim.kill_wait_delete("sandbox").await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}
