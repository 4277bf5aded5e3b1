//! Sandbox and container roles from the CRI annotations: where stdio is attached, and that a spec
//! without annotations is a sandbox of its own (and does not hang, unlike google/gvisor#4544).
//!
//! fake-runsc writes its stdout knob where a real sandbox's output would appear: at `create` for
//! a sandbox, at `start` for a container joining one. The text reaches the container's stdout fifo
//! only if the shim attached stdio to that runsc call.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_gets_stdio_at_create_and_a_container_joining_it_at_start() {
    if skip_unless_root("a_sandbox_gets_stdio_at_create_and_a_container_joining_it_at_start") {
        return;
    }
    let env = TestEnv::new("pod").await;
    let config = env.write_runsc_toml("");
    let sandbox = env
        .bundle("pod-sandbox")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, "pod-sandbox")
        .annotation(KNOB_STDOUT, "sandbox output at create\n")
        .with_stdout()
        .build();
    let app = env
        .bundle("pod-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "pod-sandbox")
        .annotation(KNOB_STDOUT, "app output at start\n")
        .with_stdout()
        .build();
    let mut sandbox_out = sandbox.open_stdout();
    let mut app_out = app.open_stdout();
    let sandbox_shim = env.start_shim(&sandbox).await;
    let app_shim = env.start_shim(&app).await;

    let sandbox_created = sandbox_shim
        .create_ok("Create (sandbox)", &env, &sandbox, &config)
        .await;
    sandbox_out.read_until("sandbox output at create\n").await;
    sandbox_shim.ok("Start (sandbox)", sandbox_shim.start().await);

    let app_created = app_shim
        .create_ok("Create (container)", &env, &app, &config)
        .await;
    assert_eq!(
        app_created.pid, sandbox_created.pid,
        "a container's pid is its sandbox's (runsc writes the sandbox pid into every pid file)"
    );
    app_shim.ok("Start (container)", app_shim.start().await);
    app_out.read_until("app output at start\n").await;

    app_shim.kill_wait_delete("container").await;
    sandbox_shim.kill_wait_delete("sandbox").await;
    app_shim.shutdown().await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_without_cri_annotations_is_a_sandbox_of_its_own() {
    if skip_unless_root("a_spec_without_cri_annotations_is_a_sandbox_of_its_own") {
        return;
    }
    let env = TestEnv::new("plain").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("plain-c1")
        .annotation(KNOB_STDOUT, "plain output at create\n")
        .with_stdout()
        .build();
    let mut out = bundle.open_stdout();
    let shim = env.start_shim(&bundle).await;
    let id = shim.id().to_string();

    shim.create_ok("Create", &env, &bundle, &config).await;
    out.read_until("plain output at create\n").await;
    let calls = env.calls();
    assert_eq!(
        calls.get(..1),
        Some(&[env.create_argv(&bundle, &[])][..]),
        "a plain `runsc create` (no --user-log without a log directory):\n{}",
        env.show(&calls)
    );

    shim.ok("Start", shim.start().await);
    shim.ok("Kill (SIGKILL, all)", shim.kill(9, true).await);
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
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, 137);
    shim.ok("Delete", shim.delete().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
