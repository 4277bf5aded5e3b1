//! The memory guard in the real shim daemon's Create: the daemon reads a fixture cgroup tree and
//! a fixture /proc (RUNSC_GUARD_CGROUP_ROOT, RUNSC_GUARD_PROC_ROOT in the environment of `start`,
//! which the daemon and fake-runsc inherit; see tests/common/node.rs). What needs the daemon is
//! here: the rootfs mounted for a bounded sandbox and unmounted for one that fails verification,
//! the ttrpc code of a refusal, warn mode's log line, the `delete` action after the shim died.
//! The guard's decisions (refusals, sizing, a joining container, guard off, widening the leaf)
//! are tests/pod_guard.rs's, in process and as any user.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::fs;

use common::prelude::*;
use containerd_shim_protos::ttrpc::Code;
use runsc_guard::guard::Verdict;
use runsc_guard::options::GuardMode;

/// Expects Create to fail with FAILED_PRECONDITION and a message containing every `expected`;
/// returns the message.
async fn expect_refusal(
    shim: &Shim,
    bundle: &Bundle,
    config: &std::path::Path,
    env: &TestEnv,
    expected: &[&str],
) -> String {
    let err = shim
        .create(bundle.create_request(Some(env.options(config))))
        .await
        .expect_err("Create must fail");
    assert_eq!(
        error_code(&err),
        Some(Code::FAILED_PRECONDITION),
        "a guard refusal is FAILED_PRECONDITION, got {err:?}"
    );
    let message = error_message(&err);
    assert_names_every(&message, expected, &format!("shim log:\n{}", shim.log()));
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incidents_pod_is_bounded_by_its_slice() {
    if skip_unless_root("the_incidents_pod_is_bounded_by_its_slice") {
        return;
    }
    let env = TestEnv::new("gbounded").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "gbounded-s1", Some(POD_LIMIT)).build();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    let created = shim.create_ok("Create", &env, &bundle, &config).await;
    assert_eq!(created.pid, bundle.init_pid());
    assert!(bundle.rootfs_is_mounted());

    let leaf = assert_bounded_by_the_slice(&bundle, created.pid as i32);

    assert_eq!(
        node.processes(),
        [created.pid.to_string()],
        "the sandbox process"
    );
    let leaf_dir = node.cgroup_root.join(&leaf[1..]);
    assert_eq!(
        fs::read_to_string(leaf_dir.join("memory.max")).unwrap(),
        "max\n",
        "runsc made the leaf below the named parent without a limit"
    );
    run_to_the_end(&env, shim).await;
    assert_eq!(
        node.processes(),
        Vec::<String>::new(),
        "runsc delete took the sandbox process"
    );
    assert!(!leaf_dir.exists(), "runsc delete removed the leaf");
    // Checked last, so a difference here does not hide the checks above.
    assert_calls(&env, &lifecycle_argvs(&env, &bundle, &[]), "bounded pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_that_escaped_its_pod_is_deleted_and_create_fails() {
    if skip_unless_root("a_sandbox_that_escaped_its_pod_is_deleted_and_create_fails") {
        return;
    }
    let env = TestEnv::new("gescape").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("");
    let bundle = escaped_sandbox(&env, "gescape-s1");
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    let slice = pod_slice();
    let leaf = scope(&bundle.id);
    expect_refusal(
        &shim,
        &bundle,
        &config,
        &env,
        &[
            "runsc-guard refused container gescape-s1",
            "the created sandbox does not match the plan",
            &format!("placement: expected a leaf under the pod cgroup {slice} (planned: {leaf})"),
            "found /system.slice/escaped",
            "run `runsc-guard plan --bundle <bundle>` to see the decision",
            "the kubelet and containerd use the same cgroup driver",
        ],
    )
    .await;

    assert_failed_sandbox_is_gone(&env, &node, &bundle);
    let rec = record(&bundle);
    assert_eq!(rec.plan.verdict, Verdict::Adjusted);
    let verification = rec
        .verification
        .as_ref()
        .expect("the failed verification is kept");
    assert!(!verification.passed);
    let failed = failed_checks(verification);
    assert_eq!(failed, ["placement"], "only the placement is wrong");
    assert_eq!(
        verification.observation.cgroup.as_deref(),
        Some("/system.slice/escaped")
    );

    shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_eq!(env.topics(), Vec::<String>::new(), "nothing published");
    assert_deleted_right_after_create(
        &env,
        &bundle,
        "an escaped sandbox is deleted right after create",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_warn_mode_an_escaped_sandbox_runs_and_its_record_keeps_the_failure() {
    if skip_unless_root("in_warn_mode_an_escaped_sandbox_runs_and_its_record_keeps_the_failure") {
        return;
    }
    let env = TestEnv::new("gwarn").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("guard_mode = \"warn\"");
    let bundle = escaped_sandbox(&env, "gwarn-s1");
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    shim.create_ok("Create (warn mode)", &env, &bundle, &config)
        .await;
    let rec = record(&bundle);
    assert_eq!(rec.plan.mode, GuardMode::Warn);
    assert_eq!(
        rec.plan.verdict,
        Verdict::Adjusted,
        "warn mode plans as enforce does"
    );
    let verification = rec.verification.as_ref().expect("the verification is kept");
    assert!(!verification.passed);
    assert!(
        verification.violations()[0].starts_with("placement: expected a leaf under the pod cgroup"),
        "{:?}",
        verification.violations()
    );
    let log = shim.log();
    assert!(
        log.contains("found /system.slice/escaped") && log.contains("going on"),
        "the shim logs the violation and goes on:\n{log}"
    );

    run_to_the_end(&env, shim).await;
    assert_calls(&env, &lifecycle_argvs(&env, &bundle, &[]), "warn mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_after_the_shim_died_runs_runsc_with_the_guards_flags() {
    if skip_unless_root("delete_after_the_shim_died_runs_runsc_with_the_guards_flags") {
        return;
    }
    let env = TestEnv::new("gdied").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("[runsc_config]\nsystemd-cgroup = \"true\"");
    let bundle = sandbox_bundle(&env, "gdied-s1", Some(POD_LIMIT)).build();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);
    env.await_call("wait").await;

    kill_shim_daemon(&env, shim).await;
    let before = env.calls().len();

    let out = env.run_delete_action(&bundle, &node.vars()).await;
    assert!(
        out.status.success(),
        "delete failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = env.calls();
    assert_eq!(
        calls[before..],
        [env.argv(
            &bundle,
            &["--systemd-cgroup=false", "delete", "--force", &bundle.id]
        )],
        "the cleanup runs runsc with the flags the sandbox was created with:\n{}",
        env.show(&calls)
    );
    assert_eq!(
        node.processes(),
        Vec::<String>::new(),
        "the sandbox is gone"
    );
    assert!(!node.cgroup_root.join(&scope(&bundle.id)[1..]).exists());
    env.assert_nothing_left().await;
}
