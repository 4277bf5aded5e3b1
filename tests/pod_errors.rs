//! Bad input and failing runsc, in process and as any user: each Create fails with an error that
//! names what was wrong, sends no event, and leaves nothing behind (no runsc state, no process,
//! no container in the pod, config.json as it was); the pod goes on serving. The daemon's side (the ttrpc codes, the
//! rootfs unmounted after a failed `runsc create`) is tests/shim_bad_input.rs's, as root.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::prelude::*;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use runsc_guard::Error;

/// Expects Create of `bundle` with `options` to fail naming every `expected`, then checks that
/// nothing was left. Returns the error.
async fn assert_create_fails(
    env: &PodEnv,
    bundle: &Bundle,
    options: Option<Any>,
    expected: &[&str],
) -> Error {
    let config_before = std::fs::read(bundle.path.join("config.json")).unwrap();
    let err = env
        .pod
        .create(env.create_task(bundle, options))
        .await
        .expect_err("Create must fail");
    let message = err.to_string();
    assert_names_every(&message, expected, &format!("{err:?}"));
    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        Vec::<String>::new(),
        "nothing sent for a failed Create"
    );
    assert!(
        !bundle.path.join("runsc-shim.json").exists(),
        "a failed Create removes the state the `delete` action would read"
    );
    assert_eq!(
        std::fs::read(bundle.path.join("config.json")).unwrap(),
        config_before,
        "config.json is as it was"
    );

    err
}

fn sandbox(env: &PodEnv, id: &str) -> Bundle {
    env.bundle(id).annotation(CONTAINER_TYPE, "sandbox").build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_config_json_is_named() {
    let env = PodEnv::new("pbadspec");
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("pbadspec-c1")
        .config_json("{ \"ociVersion\": \"1.0.2\", this is not json")
        .build();
    assert_create_fails(&env, &bundle, Some(env.options(&config)), &["config.json"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_path_that_does_not_exist_is_named() {
    let env = PodEnv::new("pnopath");
    let missing = env.path("missing/runsc.toml");
    let bundle = sandbox(&env, "pnopath-c1");
    let path = missing.display().to_string();
    assert_create_fails(&env, &bundle, Some(env.options(&missing)), &[&path]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_key_of_the_wrong_type_is_named() {
    let env = PodEnv::new("pbadtoml");
    let config = env.write_file("bad/runsc.toml", "io_uid = \"x\"\n");
    let bundle = sandbox(&env, "pbadtoml-c1");
    assert_create_fails(&env, &bundle, Some(env.options(&config)), &["io_uid"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_type_url_is_named() {
    let env = PodEnv::new("ptypeurl");
    let config = env.write_runsc_toml("");
    let bundle = sandbox(&env, "ptypeurl-c1");
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
    let env = PodEnv::new("panytype");
    let bundle = sandbox(&env, "panytype-c1");
    let options = Any {
        type_url: "type.googleapis.com/example.v1.Unknown".to_string(),
        value: b"\x0a\x01x".to_vec(),
        ..Default::default()
    };
    assert_create_fails(&env, &bundle, Some(options), &["example.v1.Unknown"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_container_id_is_named() {
    let env = PodEnv::new("pbadid");
    let config = env.write_runsc_toml("");
    let bundle = sandbox(&env, "pbadid-c1");
    let mut req = env.create_task(&bundle, Some(env.options(&config)));
    req.id = "-rf".to_string();
    let err = env.pod.create(req).await.expect_err("Create must fail");
    assert!(
        matches!(&err, Error::InvalidArgument { field, .. } if field == "id"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"-rf\""), "{err}");
    env.assert_nothing_left().await;
    assert_eq!(env.calls(), Vec::<Vec<String>>::new(), "no runsc call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_runsc_binary_is_named() {
    let env = PodEnv::new("pnobinary");
    let binary = env.path("no-such-dir/runsc");
    let config = env.write_file(
        "bad/runsc.toml",
        &format!(
            "binary_name = {:?}\nroot = {:?}\n",
            binary.display().to_string(),
            env.runsc_root().display().to_string()
        ),
    );
    let bundle = sandbox(&env, "pnobinary-c1");
    let name = binary.display().to_string();
    assert_create_fails(&env, &bundle, Some(env.options(&config)), &[&name]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_runsc_create_returns_runscs_last_logged_error() {
    let env = PodEnv::new("pcreatefails");
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("pcreatefails-c1")
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
    let err = assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&config)),
        &["boom: no space"],
    )
    .await;
    assert!(matches!(err, Error::Runsc { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("an older error"),
        "the last error line, not an older one: {err}"
    );
    let calls = env.calls();
    let id = bundle.id.as_str();
    assert_eq!(
        calls[..2],
        [
            env.create_argv(&bundle, &[]),
            env.argv(&bundle, &["delete", "--force", id]),
        ],
        "runsc create ran (after the id check), then the clean-up of what it may have left:\n{}",
        env.show(&calls)
    );

    // The pod goes on serving.
    let good = sandbox(&env, "pcreatefails-c2");
    env.create_ok("Create after a failed Create", &good, &config)
        .await;
    env.run_to_the_end(&good.id).await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsc_that_logs_nothing_is_reported_by_its_stderr() {
    let env = PodEnv::new("pstderr");
    let runsc = env.write_file(
        "bin/quiet-runsc",
        "#!/bin/sh\necho 'quiet-runsc: cannot do that' >&2\nexit 1\n",
    );
    std::fs::set_permissions(&runsc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = env.write_file(
        "quiet/runsc.toml",
        &format!(
            "binary_name = {:?}\nroot = {:?}\n",
            runsc.display().to_string(),
            env.runsc_root().display().to_string()
        ),
    );
    let bundle = sandbox(&env, "pstderr-c1");
    assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&config)),
        &["quiet-runsc: cannot do that"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_runsc_start_stops_the_container_and_delete_still_cleans_up() {
    let env = PodEnv::new("pstartfails");
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("pstartfails-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(KNOB_FAIL, "start")
        .annotation(KNOB_FAIL_MESSAGE, "start refused: out of quota")
        .build();
    let id = bundle.id.clone();
    env.create_ok("Create", &bundle, &config).await;
    let err = env
        .pod
        .start(&init(&id))
        .await
        .expect_err("Start must fail");
    assert!(
        err.to_string().contains("start refused: out of quota"),
        "Start's error carries runsc's: {err:?}"
    );
    // Stopped, so containerd can delete it.
    let state = env.ok(
        "State after a failed Start",
        env.pod.state(&init(&id)).await,
    );
    assert_eq!(state.exit.map(|e| e.status), Some(128));
    env.ok(
        "Delete after a failed Start",
        env.pod.delete(&init(&id)).await,
    );
    env.assert_nothing_left().await;
    assert_eq!(env.topics(), [TOPIC_CREATE, TOPIC_EXIT, TOPIC_DELETE]);
}

/// A ConfigPath that is a FIFO would block Create until some writer came; it is refused at once,
/// and so is a file that is not runsc.toml, without quoting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_path_that_is_not_a_regular_file_is_refused_at_once() {
    let env = PodEnv::new("pfifocfg");
    let fifo = env.path("runsc.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let bundle = sandbox(&env, "pfifocfg-c1");
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
    let bundle = sandbox(&env, "pfifocfg-c2");
    let err = assert_create_fails(
        &env,
        &bundle,
        Some(env.options(&secret)),
        &["line 1", "not a valid runsc.toml"],
    )
    .await;
    assert!(
        !err.to_string().contains("SECRET"),
        "the file is quoted: {err}"
    );
}

/// `[runsc_config]` comes after the shim's own flags, so `root` there would win over the shim's
/// `--root`: refused at Create, naming the key and its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsc_config_key_the_shim_owns_is_refused_at_create() {
    let env = PodEnv::new("pownedflag");
    for (n, key) in ["root", "log", "log-format"].iter().enumerate() {
        let config = env.write_runsc_toml(&format!("[runsc_config]\n{key} = \"/tmp/elsewhere\"\n"));
        let bundle = sandbox(&env, &format!("pownedflag-c{n}"));
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
    let env = PodEnv::new("plogdir");
    let config = env.write_runsc_toml("");
    let file = env.write_file("not-a-dir", "");
    let cases = [
        "var/log/pods/x".to_string(),
        "/var/log/pods/../../../etc/cron.d".to_string(),
        file.display().to_string(),
    ];
    for (n, dir) in cases.iter().enumerate() {
        let bundle = env
            .bundle(&format!("plogdir-c{n}"))
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

/// The runsc binary gone from under a running container (a package upgrade, a bad binary_name):
/// Kill and Delete say runsc could not be run, the container is neither reported exited nor
/// forgotten, and once runsc is back Delete finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_runsc_binary_is_never_taken_for_a_gone_container() {
    use runsc_guard::error::RunscFailure;
    let env = PodEnv::new("pnobinary");
    let (config, runsc) = env.write_runsc_toml_with_own_binary();
    let bundle = sandbox(&env, "pnobinary-c1");
    let id = bundle.id.clone();
    env.create_ok("Create", &bundle, &config).await;
    env.ok("Start", env.pod.start(&init(&id)).await);
    let topics_before = env.topics();

    std::fs::remove_file(&runsc).unwrap();
    let unavailable = |r: Result<(), Error>, what: &str| match r {
        Err(Error::Runsc {
            kind: RunscFailure::BinaryUnavailable,
            message,
            ..
        }) => assert!(message.contains("runsc"), "{what}: {message}"),
        other => panic!("{what} must say runsc could not be run, got {other:?}"),
    };
    unavailable(env.pod.kill(&init(&id), 9, false).await, "Kill");
    unavailable(env.pod.delete(&init(&id)).await.map(|_| ()), "Delete");
    assert_eq!(
        env.topics(),
        topics_before,
        "no exit and no delete reported for a container nobody could stop"
    );
    // State cannot ask runsc either: it says so, and never that the container stopped.
    match env.pod.state(&init(&id)).await {
        Ok(state) => assert_eq!(state.status, runsc_guard::shim::process::Status::Running),
        Err(e) => unavailable(Err(e), "State"),
    }

    std::os::unix::fs::symlink(fake_runsc(), &runsc).unwrap();
    env.ok(
        "Delete once runsc is back",
        env.pod.delete(&init(&id)).await,
    );
    env.assert_nothing_left().await;
}
