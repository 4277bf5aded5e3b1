//! The memory guard in the shim's Create, in process and as any user: the pod's guard reads a
//! fixture cgroup tree and a fixture /proc (see tests/common/node.rs), plans, refuses or edits the
//! spec and hands runsc its flags, runs `runsc create`, verifies the sandbox process fake-runsc
//! leaves in the fixture /proc, widens the leaf when the plan says so, and keeps its record in
//! `<bundle>/runsc-guard.json`. The daemon's side (the rootfs mount kept or undone, warn mode's
//! log line, the `delete` action after the shim died) is tests/shim_guard.rs's, as root.

mod common;

use std::fs;
use std::path::Path;

use common::prelude::*;
use runsc_guard::guard::{Role, Verdict};
use runsc_guard::options::GuardMode;
use runsc_guard::Error;
use serde_json::Value;

/// Expects Create to be refused by the guard with a message containing every `expected`;
/// returns the message.
async fn expect_refusal(env: &PodEnv, bundle: &Bundle, config: &Path, expected: &[&str]) -> String {
    let err = env
        .create(bundle, config)
        .await
        .expect_err("Create must fail");
    assert!(
        matches!(&err, Error::GuardRefused { container_id, .. } if *container_id == bundle.id),
        "a guard refusal (FAILED_PRECONDITION to containerd), got {err:?}"
    );
    let message = err.to_string();
    assert_names_every(&message, expected, "");
    assert!(
        env.pod.is_empty().await,
        "a refused container is not in the pod"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_slice_is_missing_is_refused_before_anything_is_set_up() {
    let (env, node) = PodEnv::on_node("pmissing", Node::new);
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "gmissing-s1", None).build();
    let before = fs::read(bundle.path.join("config.json")).unwrap();

    let slice = pod_slice();
    let message = expect_refusal(
        &env,
        &bundle,
        &config,
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

    // The pod goes on serving: the refused container is not in it.
    env.assert_nothing_left().await;
    assert_eq!(env.topics(), Vec::<String>::new(), "nothing published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incidents_pod_is_bounded_by_its_slice() {
    let (env, node) = PodEnv::on_node("pbounded", |d| Node::with_pod(d, POD_LIMIT));
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "gbounded-s1", Some(POD_LIMIT)).build();

    let created = env.create_ok("Create", &bundle, &config).await;
    assert_eq!(created as u32, bundle.init_pid());

    let leaf = assert_bounded_by_the_slice(&bundle, created);

    assert_eq!(
        node.processes(),
        [created.to_string()],
        "the sandbox process"
    );
    let leaf_dir = node.cgroup_root.join(&leaf[1..]);
    assert_eq!(
        fs::read_to_string(leaf_dir.join("memory.max")).unwrap(),
        "max\n",
        "runsc made the leaf below the named parent without a limit"
    );
    env.run_to_the_end(&bundle.id).await;
    env.assert_nothing_left().await;
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
    let (env, node) = PodEnv::on_node("pescape", |d| Node::with_pod(d, POD_LIMIT));
    let config = env.write_runsc_toml("");
    let bundle = escaped_sandbox(&env, "gescape-s1");

    let slice = pod_slice();
    let leaf = scope(&bundle.id);
    expect_refusal(
        &env,
        &bundle,
        &config,
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

    env.assert_nothing_left().await;
    assert_eq!(env.topics(), Vec::<String>::new(), "nothing published");
    assert_deleted_right_after_create(
        &env,
        &bundle,
        "an escaped sandbox is deleted right after create",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sized_to_the_host_is_refused() {
    let (env, node) = PodEnv::on_node("psize", |d| Node::with_pod(d, POD_LIMIT));
    let config = env.write_runsc_toml("");
    let host = host_memory();
    // runsc sized the guest from a leaf without a limit: the host's memory (the incident).
    let bundle = sandbox_bundle(&env, "gsize-s1", Some(POD_LIMIT))
        .annotation(KNOB_TOTAL_MEMORY, host.to_string())
        .build();

    expect_refusal(
        &env,
        &bundle,
        &config,
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

    env.assert_nothing_left().await;
    assert_deleted_right_after_create(
        &env,
        &bundle,
        "a wrongly sized sandbox is deleted right after create",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_joining_the_pod_gets_the_sandboxs_flags_and_no_verification() {
    let (env, node) = PodEnv::on_node("pjoin", |d| Node::with_pod(d, POD_LIMIT));
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

    let created = env.create_ok("Create (sandbox)", &sandbox, &config).await;
    env.ok("Start (sandbox)", env.pod.start(&init(&sandbox.id)).await);
    let joined = env.create_ok("Create (container)", &app, &config).await;
    assert_eq!(joined, created, "the container's pid is its sandbox's");
    env.ok("Start (container)", env.pod.start(&init(&app.id)).await);

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

    env.kill_wait_delete(&app.id).await;
    assert_eq!(
        node.processes(),
        [created.to_string()],
        "the sandbox process outlives a container of the pod"
    );
    env.kill_wait_delete(&sandbox.id).await;
    env.assert_nothing_left().await;
    assert_eq!(node.processes(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_guard_off_nothing_is_changed_or_verified() {
    let (env, node) = PodEnv::on_node("poff", |d| Node::with_pod(d, POD_LIMIT));
    let config = env.write_runsc_toml("guard_mode = \"off\"");
    let bundle = sandbox_bundle(&env, "goff-s1", Some(POD_LIMIT)).build();
    let before = fs::read(bundle.path.join("config.json")).unwrap();

    let created = env.create_ok("Create (guard off)", &bundle, &config).await;
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
    let proc_dir = node.proc_root.join(created.to_string());
    assert_eq!(
        fs::read_to_string(proc_dir.join("cgroup")).unwrap(),
        format!("0::/system.slice/{}\n", systemd_path(&bundle.id))
    );

    env.run_to_the_end(&bundle.id).await;
    env.assert_nothing_left().await;
    assert_calls(&env, &lifecycle_argvs(&env, &bundle, &[]), "guard off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_runtimeclass_overhead_the_guest_gets_the_annotation_and_the_leaf_is_widened() {
    // The kubelet added a 64 MiB overhead to the pod slice, not to the annotation.
    let slice_limit = 320 * MIB;
    let (env, node) = PodEnv::on_node("poverhead", |d| Node::with_pod(d, slice_limit));
    let config = env.write_runsc_toml("");
    let bundle = sandbox_bundle(&env, "goverhead-s1", Some(POD_LIMIT)).build();

    let created = env.create_ok("Create", &bundle, &config).await;
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
    assert_eq!(node.processes(), [created.to_string()]);

    env.run_to_the_end(&bundle.id).await;
    env.assert_nothing_left().await;
    assert!(
        !node.cgroup_root.join(&leaf[1..]).exists(),
        "runsc delete removed the leaf"
    );
    assert_calls(&env, &lifecycle_argvs(&env, &bundle, &[]), "overhead");
}
