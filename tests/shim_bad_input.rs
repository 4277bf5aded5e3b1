//! Bad input: each returns a ttrpc error whose message names what was wrong, publishes nothing,
//! and leaves nothing behind (rootfs unmounted, no runsc state, no process); the shim keeps
//! serving and shuts down cleanly.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
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
    for e in expected {
        assert!(
            message.contains(e),
            "the error must name {e:?}; got {err:?}\nshim log:\n{}",
            shim.log()
        );
    }
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

fn sandbox(env: &TestEnv, id: &str) -> Bundle {
    env.bundle(id).annotation(CONTAINER_TYPE, "sandbox").build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_config_json_is_named() {
    if skip_unless_root("a_malformed_config_json_is_named") {
        return;
    }
    let env = TestEnv::new("badspec").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("badspec-c1")
        .config_json("{ \"ociVersion\": \"1.0.2\", this is not json")
        .build();
    assert_create_fails(&env, &bundle, Some(env.options(&config)), &["config.json"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_path_that_does_not_exist_is_named() {
    if skip_unless_root("a_config_path_that_does_not_exist_is_named") {
        return;
    }
    let env = TestEnv::new("nopath").await;
    let missing = env.path("missing/runsc.toml");
    let bundle = sandbox(&env, "nopath-c1");
    let path = missing.display().to_string();
    assert_create_fails(&env, &bundle, Some(env.options(&missing)), &[&path]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_key_of_the_wrong_type_is_named() {
    if skip_unless_root("a_toml_key_of_the_wrong_type_is_named") {
        return;
    }
    let env = TestEnv::new("badtoml").await;
    let config = env.write_runsc_toml("io_uid = \"x\"");
    let bundle = sandbox(&env, "badtoml-c1");
    assert_create_fails(&env, &bundle, Some(env.options(&config)), &["io_uid"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_type_url_is_named() {
    if skip_unless_root("an_unknown_type_url_is_named") {
        return;
    }
    let env = TestEnv::new("typeurl").await;
    let config = env.write_runsc_toml("");
    let bundle = sandbox(&env, "typeurl-c1");
    let options = runsc_guard::options::encode_cri_options(
        "io.containerd.kata.v1.options",
        &config.display().to_string(),
        b"",
    );
    assert_create_fails(
        &env,
        &bundle,
        Some(options),
        &["io.containerd.kata.v1.options"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_options_message_is_named() {
    if skip_unless_root("an_unknown_options_message_is_named") {
        return;
    }
    let env = TestEnv::new("anytype").await;
    let bundle = sandbox(&env, "anytype-c1");
    let options = Any {
        type_url: "type.googleapis.com/example.v1.Unknown".to_string(),
        value: b"\x0a\x01x".to_vec(),
        ..Default::default()
    };
    assert_create_fails(&env, &bundle, Some(options), &["example.v1.Unknown"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_runsc_binary_is_named() {
    if skip_unless_root("a_missing_runsc_binary_is_named") {
        return;
    }
    let env = TestEnv::new("nobinary").await;
    let binary = env.path("no-such-dir/runsc");
    let config = env.write_file(
        "runsc.toml",
        &format!(
            "binary_name = {:?}\nroot = {:?}\n",
            binary.display().to_string(),
            env.runsc_root().display().to_string()
        ),
    );
    let bundle = sandbox(&env, "nobinary-c1");
    let name = binary.display().to_string();
    assert_create_fails(&env, &bundle, Some(env.options(&config)), &[&name]).await;
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
        calls.get(1).and_then(|c| subcommand(c)),
        Some("create"),
        "runsc create ran:\n{}",
        env.show(&calls)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsc_that_logs_nothing_is_reported_by_its_stderr() {
    if skip_unless_root("a_runsc_that_logs_nothing_is_reported_by_its_stderr") {
        return;
    }
    let env = TestEnv::new("stderr").await;
    let runsc = env.write_file(
        "bin/quiet-runsc",
        "#!/bin/sh\necho 'quiet-runsc: cannot do that' >&2\nexit 1\n",
    );
    std::fs::set_permissions(&runsc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = env.write_file(
        "runsc.toml",
        &format!(
            "binary_name = {:?}\nroot = {:?}\n",
            runsc.display().to_string(),
            env.runsc_root().display().to_string()
        ),
    );
    let bundle = sandbox(&env, "stderr-c1");
    assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&config)),
        &["quiet-runsc: cannot do that"],
    )
    .await;
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

/// A ConfigPath that is a FIFO would block Create (and `start`) until some writer came; it is
/// refused at once, and so is a file that is not runsc.toml, without quoting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_path_that_is_not_a_regular_file_is_refused_at_once() {
    if skip_unless_root("a_config_path_that_is_not_a_regular_file_is_refused_at_once") {
        return;
    }
    let env = TestEnv::new("fifocfg").await;
    let fifo = env.path("runsc.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let bundle = sandbox(&env, "fifocfg-c1");
    let started = std::time::Instant::now();
    let name = fifo.display().to_string();
    assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&fifo)),
        &[&name, "FIFO", "regular file"],
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "refused at once, not after a timeout: {:?}",
        started.elapsed()
    );

    let secret = env.write_file("secret", "-----BEGIN KEY-----\nhunter2SECRET\n");
    let bundle = sandbox(&env, "fifocfg-c2");
    let message = assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&secret)),
        &["line 1", "not a valid runsc.toml"],
    )
    .await;
    assert!(!message.contains("SECRET"), "the file is quoted: {message}");
}

/// `[runsc_config]` comes after the shim's own flags, so `root` there would win over the shim's
/// `--root`: refused at Create, naming the key and its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsc_config_key_the_shim_owns_is_refused_at_create() {
    if skip_unless_root("a_runsc_config_key_the_shim_owns_is_refused_at_create") {
        return;
    }
    let env = TestEnv::new("ownedflag").await;
    for (n, key) in ["root", "log", "log-format"].iter().enumerate() {
        let config = env.write_runsc_toml(&format!("[runsc_config]\n{key} = \"/tmp/elsewhere\"\n"));
        let bundle = sandbox(&env, &format!("ownedflag-c{n}"));
        let field = format!("runsc_config.{key} ");
        assert_create_fails(
            &env,
            &bundle,
            Some(env.options(&config)),
            &[&field, "set by the shim"],
        )
        .await;
    }
    assert!(env.calls().is_empty(), "runsc never ran: {:?}", env.calls());
}

/// The pod's log directory becomes runsc's `--user-log`, a file runsc (as root) creates: a
/// relative path, `..` or a file where the directory belongs is refused before runsc runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_sandbox_log_directory_is_refused_before_runsc_runs() {
    if skip_unless_root("a_bad_sandbox_log_directory_is_refused_before_runsc_runs") {
        return;
    }
    let env = TestEnv::new("logdir").await;
    let config = env.write_runsc_toml("");
    let file = env.write_file("not-a-dir", "");
    let cases = [
        "var/log/pods/x".to_string(),
        "/var/log/pods/../../../etc/cron.d".to_string(),
        file.display().to_string(),
    ];
    for (n, dir) in cases.iter().enumerate() {
        let bundle = env
            .bundle(&format!("logdir-c{n}"))
            .annotation(CONTAINER_TYPE, "sandbox")
            .annotation(SANDBOX_LOG_DIRECTORY, dir.clone())
            .build();
        assert_create_fails(
            &env,
            &bundle,
            Some(env.options(&config)),
            &["io.kubernetes.cri.sandbox-log-directory", dir],
        )
        .await;
    }
    assert!(env.calls().is_empty(), "runsc never ran: {:?}", env.calls());
}
