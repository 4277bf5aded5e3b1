//! The memory guard in the real shim's Create: the daemon reads a fixture cgroup tree and a
//! fixture /proc (RUNSC_GUARD_CGROUP_ROOT, RUNSC_GUARD_PROC_ROOT in the environment of `start`,
//! which the daemon and fake-runsc inherit), plans, refuses or applies, runs `runsc create`,
//! verifies the sandbox process fake-runsc leaves in the fixture /proc, and keeps its record in
//! `<bundle>/runsc-guard.json`.
//!
//! The host runs no systemd and the fixture tree is cgroup v2, so the guard gives runsc a
//! pod's systemd path (`kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`) in its cgroupfs
//! form, and names the pod slice in `dev.gvisor.spec.cgroup-parent` when the slice's own limit
//! is the guest's size: runsc 20221219 (what fake-runsc reports) then reads the slice's
//! `memory.max` for `--total-memory`, and no runsc flag is needed.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::fs;

use common::*;
use containerd_shim_protos::ttrpc::Code;
use runsc_guard::guard::{Role, Verdict};
use runsc_guard::options::GuardMode;
use serde_json::Value;

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
    for e in expected {
        assert!(
            message.contains(e),
            "the error must contain {e:?}; got:\n{message}\nshim log:\n{}",
            shim.log()
        );
    }
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_slice_is_missing_is_refused_before_anything_is_set_up() {
    if skip_unless_root("a_pod_whose_slice_is_missing_is_refused_before_anything_is_set_up") {
        return;
    }
    let env = TestEnv::new("gmissing").await;
    let node = Node::new(&env);
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "gmissing-s1", None).build();
    let before = fs::read(bundle.path.join("config.json")).unwrap();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    let slice = pod_slice();
    let message = expect_refusal(
        &shim,
        &bundle,
        &config,
        &env,
        &[
            "runsc-guard refused container gmissing-s1",
            &format!(
                "the pod cgroup cannot be used (cgroup {slice} does not exist under {})",
                node.cgroup_root.display()
            ),
            "the spec has no io.kubernetes.cri.sandbox-memory annotation",
            "systemd would create a missing slice without any limit",
            "Check that the kubelet and containerd use the same cgroup driver",
        ],
    )
    .await;

    assert_eq!(
        env.calls(),
        Vec::<Vec<String>>::new(),
        "no runsc call at all (`--version` runs without --root, so fake-runsc records none)"
    );
    assert!(!bundle.rootfs_is_mounted(), "the rootfs was never mounted");
    env.assert_no_mounts_or_runsc_state();
    assert_eq!(node.processes(), Vec::<String>::new(), "no sandbox process");
    assert_eq!(
        fs::read(bundle.path.join("config.json")).unwrap(),
        before,
        "a refused plan changes nothing in config.json"
    );

    let rec = record(&bundle);
    assert_eq!(rec.plan.verdict, Verdict::Refused);
    assert_eq!(rec.plan.container_id, "gmissing-s1");
    assert_eq!(
        rec.plan.pod_cgroup.as_ref().map(|p| p.to_string()),
        Some(slice)
    );
    assert_eq!(rec.plan.refusals.len(), 1, "{:?}", rec.plan.refusals);
    assert!(
        message.ends_with(&rec.plan.refusals[0]),
        "the error is the recorded refusal:\n{message}\n{:?}",
        rec.plan.refusals
    );
    assert!(rec.verification.is_none(), "nothing was created to verify");

    shim.ok("Connect after the refusal", shim.connect().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_eq!(env.topics(), Vec::<String>::new(), "nothing published");
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

    // What runsc read: the path in its cgroupfs form, and the pod slice as the cgroup it records
    // (its memory.max is the guest's size, so runsc 20221219 reads the right limit from it).
    let spec = config_json(&bundle);
    let slice = pod_slice();
    let leaf = scope(&bundle.id);
    assert_eq!(spec["linux"]["cgroupsPath"], leaf.as_str(), "{spec:#}");
    assert_eq!(
        spec["annotations"][CGROUP_PARENT],
        slice.as_str(),
        "{spec:#}"
    );
    assert_eq!(
        spec["linux"]["resources"]["memory"]["limit"],
        Value::Null,
        "the leaf needs no limit: runsc sizes the guest from the pod slice\n{spec:#}"
    );

    let rec = record(&bundle);
    let plan = &rec.plan;
    assert_eq!(plan.verdict, Verdict::Adjusted);
    assert_eq!(plan.mode, GuardMode::Enforce);
    assert_eq!(plan.role, Role::Sandbox);
    assert_eq!(plan.driver.to_string(), "cgroupfs");
    assert_eq!(
        plan.pod_cgroup.as_ref().map(|p| p.to_string()),
        Some(slice.clone())
    );
    assert_eq!(
        plan.leaf_cgroup.as_ref().map(|p| p.to_string()),
        Some(leaf.clone())
    );
    assert_eq!(plan.pod_memory_limit.map(|b| b.get()), Some(POD_LIMIT));
    assert_eq!(plan.total_memory.map(|b| b.get()), Some(POD_LIMIT));
    assert_eq!(
        plan.runsc_flags,
        Vec::<String>::new(),
        "no flag: runsc's default cgroupfs driver is the right one without systemd"
    );
    assert_eq!(
        plan.spec_changes,
        [
            format!("linux.cgroupsPath: {} -> {leaf}", systemd_path(&bundle.id)),
            format!("annotations[{CGROUP_PARENT}]: unset -> {slice}"),
        ]
    );
    assert!(plan.relax.is_none(), "the guest has the pod's whole bound");
    let verification = rec.verification.as_ref().expect("the sandbox was verified");
    assert!(
        verification.passed,
        "verification: {:?}",
        verification.violations()
    );
    let checks: Vec<&str> = verification
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        checks,
        ["sandbox process", "placement", "guest memory", "pod bound"]
    );
    assert_eq!(verification.observation.pid, created.pid as i32);
    assert_eq!(
        verification.observation.cgroup.as_deref(),
        Some(leaf.as_str())
    );
    assert_eq!(
        verification.observation.total_memory.map(|b| b.get()),
        Some(POD_LIMIT)
    );

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
async fn a_guest_sized_to_the_host_is_refused() {
    if skip_unless_root("a_guest_sized_to_the_host_is_refused") {
        return;
    }
    let env = TestEnv::new("gsize").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("");
    let host = host_memory();
    // runsc sized the guest from a leaf without a limit: the host's memory (the incident).
    let bundle = sandbox_bundle(&env, "gsize-s1", Some(POD_LIMIT))
        .annotation(KNOB_TOTAL_MEMORY, host.to_string())
        .build();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    expect_refusal(
        &shim,
        &bundle,
        &config,
        &env,
        &[
            "runsc-guard refused container gsize-s1",
            &format!("guest memory: expected --total-memory {POD_LIMIT} (256 MiB), found {host} ("),
            "runsc sized the guest from a different cgroup than planned",
            &format!("pod bound: expected --total-memory at most the pod's bound {POD_LIMIT}"),
        ],
    )
    .await;

    assert_failed_sandbox_is_gone(&env, &node, &bundle);
    let verification = record(&bundle)
        .verification
        .expect("the failed verification is kept");
    let failed = failed_checks(&verification);
    assert_eq!(failed, ["guest memory", "pod bound"]);

    shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_deleted_right_after_create(
        &env,
        &bundle,
        "a wrongly sized sandbox is deleted right after create",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_joining_the_pod_gets_the_sandboxs_flags_and_no_verification() {
    if skip_unless_root("a_container_joining_the_pod_gets_the_sandboxs_flags_and_no_verification") {
        return;
    }
    let env = TestEnv::new("gjoin").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    // The operator asked for the systemd driver, which this host cannot give: the guard
    // overrides it for every container of the pod, or the systemd path would escape.
    let config = env.write_runsc_toml("[runsc_config]\nsystemd-cgroup = \"true\"");
    let sandbox = sandbox_bundle(&env, "gjoin-s1", Some(POD_LIMIT)).build();
    let app = env
        .bundle("gjoin-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "gjoin-s1")
        .cgroups_path(&systemd_path("gjoin-app"))
        .build();
    let sandbox_shim = env.start_shim_with(&sandbox, &node.vars(), &[]).await;
    let app_shim = env.start_shim_with(&app, &node.vars(), &[]).await;

    let created = sandbox_shim
        .create_ok("Create (sandbox)", &env, &sandbox, &config)
        .await;
    sandbox_shim.ok("Start (sandbox)", sandbox_shim.start().await);
    let joined = app_shim
        .create_ok("Create (container)", &env, &app, &config)
        .await;
    assert_eq!(
        joined.pid, created.pid,
        "the container's pid is its sandbox's"
    );
    app_shim.ok("Start (container)", app_shim.start().await);

    let guard_flag = "--systemd-cgroup=false";
    let sandbox_rec = record(&sandbox);
    let app_rec = record(&app);
    assert_eq!(sandbox_rec.plan.runsc_flags, [guard_flag]);
    assert_eq!(app_rec.plan.runsc_flags, [guard_flag], "the same driver");
    assert!(
        sandbox_rec.verification.as_ref().is_some_and(|v| v.passed),
        "the sandbox is verified: {:?}",
        sandbox_rec.verification
    );
    assert_eq!(app_rec.plan.role, Role::Container);
    assert_eq!(app_rec.plan.verdict, Verdict::Adjusted);
    assert!(
        app_rec.verification.is_none(),
        "a joining container shares the sandbox checked at its creation"
    );
    assert_eq!(
        app_rec.plan.total_memory, None,
        "the guest was sized by the sandbox"
    );
    let app_spec = config_json(&app);
    assert_eq!(
        app_spec["linux"]["cgroupsPath"],
        scope("gjoin-app").as_str()
    );
    assert_eq!(app_spec["annotations"][CGROUP_PARENT], Value::Null);
    assert_eq!(
        app_spec["linux"]["resources"]["memory"]["limit"],
        Value::Null
    );

    let calls = env.calls();
    let create_of = |bundle: &Bundle| {
        calls
            .iter()
            .find(|c| subcommand(c) == Some("create") && c.last() == Some(&bundle.id))
            .cloned()
            .unwrap_or_else(|| panic!("no create of {}:\n{}", bundle.id, env.show(&calls)))
    };
    assert_eq!(
        create_of(&sandbox),
        env.create_argv(&sandbox, &[guard_flag])
    );
    assert_eq!(create_of(&app), env.create_argv(&app, &[guard_flag]));
    // Every call for either container carries the flag, right after the shim's own.
    for argv in &calls {
        assert_eq!(
            argv.get(3).map(String::as_str),
            Some(guard_flag),
            "runsc {}",
            argv.join(" ")
        );
    }

    app_shim.kill_wait_delete("container").await;
    assert_eq!(
        node.processes(),
        [created.pid.to_string()],
        "the sandbox process outlives a container of the pod"
    );
    sandbox_shim.kill_wait_delete("sandbox").await;
    app_shim.shutdown().await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
    assert_eq!(node.processes(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_guard_off_nothing_is_changed_or_verified() {
    if skip_unless_root("with_the_guard_off_nothing_is_changed_or_verified") {
        return;
    }
    let env = TestEnv::new("goff").await;
    let node = Node::with_pod(&env, POD_LIMIT);
    let config = env.write_runsc_toml("guard_mode = \"off\"");
    let bundle = sandbox_bundle(&env, "goff-s1", Some(POD_LIMIT)).build();
    let before = fs::read(bundle.path.join("config.json")).unwrap();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    let created = shim
        .create_ok("Create (guard off)", &env, &bundle, &config)
        .await;
    assert_eq!(
        fs::read(bundle.path.join("config.json")).unwrap(),
        before,
        "guard off: config.json is runsc's as containerd wrote it"
    );
    let rec = record(&bundle);
    assert_eq!(rec.plan.mode, GuardMode::Off);
    assert_eq!(rec.plan.verdict, Verdict::Ok);
    assert!(rec.plan.edits.is_empty(), "{:?}", rec.plan.edits);
    assert!(
        rec.plan.runsc_flags.is_empty(),
        "{:?}",
        rec.plan.runsc_flags
    );
    assert!(rec.plan.relax.is_none());
    assert!(rec.verification.is_none(), "guard off verifies nothing");
    assert!(
        rec.plan
            .warnings
            .iter()
            .any(|w| w.starts_with("not bounded by its pod (guard off)")),
        "the plan says what runsc will do: {:?}",
        rec.plan.warnings
    );
    // What runsc 20221219 does with that path and no --systemd-cgroup, unchecked: the
    // incident's escape, sized to the host.
    let proc_dir = node.proc_root.join(created.pid.to_string());
    assert_eq!(
        fs::read_to_string(proc_dir.join("cgroup")).unwrap(),
        format!("0::/system.slice/{}\n", systemd_path(&bundle.id))
    );

    run_to_the_end(&env, shim).await;
    assert_calls(&env, &lifecycle_argvs(&env, &bundle, &[]), "guard off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_runtimeclass_overhead_the_guest_gets_the_annotation_and_the_leaf_is_widened() {
    if skip_unless_root(
        "with_a_runtimeclass_overhead_the_guest_gets_the_annotation_and_the_leaf_is_widened",
    ) {
        return;
    }
    let env = TestEnv::new("goverhead").await;
    // The kubelet added a 64 MiB overhead to the pod slice, not to the annotation.
    let slice_limit = 320 * MIB;
    let node = Node::with_pod(&env, slice_limit);
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "goverhead-s1", Some(POD_LIMIT)).build();
    let shim = env.start_shim_with(&bundle, &node.vars(), &[]).await;

    let created = shim.create_ok("Create", &env, &bundle, &config).await;
    // runsc must size the guest from its own leaf: the pod slice would give it 320 MiB.
    let spec = config_json(&bundle);
    let leaf = scope(&bundle.id);
    assert_eq!(spec["linux"]["cgroupsPath"], leaf.as_str(), "{spec:#}");
    assert_eq!(spec["annotations"][CGROUP_PARENT], Value::Null, "{spec:#}");
    assert_eq!(
        spec["linux"]["resources"]["memory"]["limit"], POD_LIMIT,
        "{spec:#}"
    );

    let rec = record(&bundle);
    assert_eq!(rec.plan.verdict, Verdict::Adjusted);
    assert_eq!(
        rec.plan.pod_memory_limit.map(|b| b.get()),
        Some(slice_limit)
    );
    assert_eq!(rec.plan.total_memory.map(|b| b.get()), Some(POD_LIMIT));
    assert!(
        rec.plan.runsc_flags.is_empty(),
        "{:?}",
        rec.plan.runsc_flags
    );
    let verification = rec.verification.as_ref().expect("the sandbox was verified");
    assert!(verification.passed, "{:?}", verification.violations());
    assert_eq!(
        verification.observation.total_memory.map(|b| b.get()),
        Some(POD_LIMIT)
    );
    // Once booted, the leaf (created by runsc with the guest's size) gets the pod's bound, so
    // the sentry and gofers have the overhead.
    assert!(rec.relaxed, "relax error: {:?}", rec.relax_error);
    assert_eq!(rec.relax_error, None);
    let leaf_limit = node.cgroup_root.join(&leaf[1..]).join("memory.max");
    assert_eq!(
        fs::read_to_string(&leaf_limit).unwrap().trim(),
        slice_limit.to_string(),
        "the leaf's limit after create"
    );
    assert_eq!(node.processes(), [created.pid.to_string()]);

    run_to_the_end(&env, shim).await;
    assert!(
        !node.cgroup_root.join(&leaf[1..]).exists(),
        "runsc delete removed the leaf"
    );
    assert_calls(&env, &lifecycle_argvs(&env, &bundle, &[]), "overhead");
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
        [
            env.list_argv(&bundle, &["--systemd-cgroup=false"]),
            env.argv(
                &bundle,
                &["--systemd-cgroup=false", "delete", "--force", &bundle.id]
            )
        ],
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
