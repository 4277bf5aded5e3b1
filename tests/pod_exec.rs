//! Exec in process, as any user: the checks at Exec and a Start whose binary is missing, against
//! fake-runsc. Running execs and their exits (which come from the daemon's reaper) are the daemon
//! tests' (tests/shim_exec.rs).

mod common;

use common::prelude::*;
use runsc_guard::shim::exec::ExecRequest;
use runsc_guard::shim::io::StdioPaths;
use runsc_guard::Error;

fn request(args: &[&str]) -> ExecRequest {
    ExecRequest {
        stdio: StdioPaths::default(),
        spec: process_spec(args, false).value,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_checks_its_request_and_a_missing_binary_fails_start_leaving_nothing() {
    let env = PodEnv::new("pexec");
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("pexec-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let id = bundle.id.clone();
    env.create_ok("Create", &bundle, &config).await;
    env.ok("Start", env.pod.start(&init(&id)).await);

    let err = env
        .pod
        .exec(&exec_of(&id, "x"), request(&[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { .. }) && err.to_string().contains("spec.args"),
        "{err}"
    );
    // Exec ids are checked where the reference to the process is made.
    let err = runsc_guard::shim::process::ProcessRef::new(&id, "-x").unwrap_err();
    assert!(err.to_string().contains("exec_id"), "{err}");
    let err = env
        .pod
        .exec(&init(&id), request(&["true"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exec_id"), "{err}");
    let err = env
        .pod
        .exec(&exec_of("nope", "x"), request(&["true"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");

    let missing = exec_of(&id, "x-missing");
    env.ok(
        "Exec",
        env.pod.exec(&missing, request(&["/no/such/binary"])).await,
    );
    let err = env
        .pod
        .exec(&missing, request(&["true"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    let err = env.pod.start(&missing).await.unwrap_err();
    assert!(
        err.to_string().contains("/no/such/binary")
            && err.to_string().contains("no such file or directory"),
        "{err}"
    );
    let exit = env.ok("Wait (exec)", env.pod.wait(&missing).await);
    assert_eq!(exit.status, 128);
    env.ok("Delete (exec)", env.pod.delete(&missing).await);
    for f in [
        "x-missing.process.json",
        "x-missing.pid",
        "x-missing-internal.pid",
    ] {
        assert!(!bundle.path.join(f).exists(), "{f} left behind");
    }
    assert!(
        !env.topics().iter().any(|t| t == TOPIC_EXEC_STARTED),
        "{:?}",
        env.topics()
    );
    env.kill_wait_delete(&id).await;
    env.assert_nothing_left().await;
}
