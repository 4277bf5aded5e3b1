//! Update in process, as any user, on the fixture node (tests/common/node.rs): the memory limit
//! goes to the sandbox's leaf the guard verified (a cgroupfs leaf here; the node has no
//! systemd), never above the pod's bound, for the sandbox and for a container joining it; the
//! guard's record keeps what changed; `runsc update --resources=-` runs only on a runsc that has
//! it (release-20260202.0 and later), and every refusal changes nothing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::prelude::*;
use runsc_guard::guard::RelaxTarget;
use runsc_guard::Error;
use serde_json::Value;

fn memory(limit: i64) -> Vec<u8> {
    format!(r#"{{"memory":{{"limit":{limit},"swap":{limit}}},"cpu":{{"shares":512,"quota":50000,"period":100000}}}}"#)
        .into_bytes()
}

fn leaf_limit(node: &Node, id: &str) -> String {
    let file = node.cgroup_root.join(&scope(id)[1..]).join("memory.max");
    fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .to_string()
}

fn expect_refused(r: Result<(), Error>, what: &str, expected: &[&str]) -> String {
    let message = match r {
        Err(e @ Error::GuardRefused { .. }) => e.to_string(),
        other => panic!("{what}: a guard refusal (FAILED_PRECONDITION), got {other:?}"),
    };
    for e in expected {
        assert!(message.contains(e), "{what}: {e:?} not in:\n{message}");
    }
    message
}

/// A runsc.toml whose runsc is fake-runsc reporting `version`.
fn runsc_toml_with_version(env: &TestDir, version: &str) -> PathBuf {
    let wrapper = env.write_file(
        "bin/runsc-versioned",
        &format!(
            "#!/bin/sh\nFAKE_RUNSC_VERSION={version} exec {} \"$@\"\n",
            fake_runsc().display()
        ),
    );
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    env.write_file(
        "runsc-versioned.toml",
        &format!(
            "binary_name = {:?}\nroot = {:?}\n",
            wrapper.display().to_string(),
            env.runsc_root().display().to_string()
        ),
    )
}

fn state_of(env: &TestDir, id: &str) -> Value {
    // `<id>_sandbox:<sandbox id>.state`, as runsc names it.
    let prefix = format!("{id}_sandbox:");
    let file = fs::read_dir(&env.runsc_state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".state"))
        })
        .unwrap_or_else(|| panic!("no state file of {id} in {}", env.runsc_state.display()));
    serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap()
}

fn updates(env: &TestDir) -> Vec<Vec<String>> {
    env.calls()
        .into_iter()
        .filter(|c| subcommand(c) == Some("update"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_sets_the_verified_leafs_limit_and_refuses_one_above_the_pods_bound() {
    let (env, node) = PodEnv::on_node("pupdate", |d| Node::with_pod(d, POD_LIMIT));
    let config = env.write_runsc_toml("");
    let sandbox = sandbox_bundle(&env, "pupdate-s1", Some(POD_LIMIT)).build();
    let app = env
        .bundle("pupdate-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "pupdate-s1")
        .cgroups_path(&systemd_path("pupdate-app"))
        .build();
    env.create_ok("Create (sandbox)", &sandbox, &config).await;
    env.ok("Start (sandbox)", env.pod.start(&init(&sandbox.id)).await);
    env.create_ok("Create (container)", &app, &config).await;
    env.ok("Start (container)", env.pod.start(&init(&app.id)).await);
    assert_eq!(leaf_limit(&node, &sandbox.id), "max");

    // The sandbox's own Update.
    env.ok(
        "Update (sandbox, 200 MiB)",
        env.pod.update(&sandbox.id, &memory(200 * MIB as i64)).await,
    );
    assert_eq!(leaf_limit(&node, &sandbox.id), (200 * MIB).to_string());
    let rec = record(&sandbox);
    let update = rec.update.as_ref().expect("the record keeps the update");
    assert_eq!(update.container_id, sandbox.id);
    assert_eq!(
        update.target,
        RelaxTarget::Cgroup {
            cgroup: runsc_guard::cgroup::CgroupPath::parse(&scope(&sandbox.id)).unwrap()
        }
    );
    assert_eq!(update.memory_from, None, "the leaf had no limit of its own");
    assert_eq!(update.memory_to.get(), 200 * MIB);
    assert_eq!(update.pod_bound.map(|b| b.get()), Some(POD_LIMIT));
    let guest = update.guest.as_deref().unwrap_or_default();
    assert!(
        guest.contains("has no `runsc update` (release-20260202.0 and later)"),
        "what did not change in the guest, and why: {guest}"
    );
    assert_eq!(
        updates(&env),
        Vec::<Vec<String>>::new(),
        "runsc 20221219 has no update"
    );

    // A container of the pod: its sandbox's leaf holds it, so the limit goes there.
    env.ok(
        "Update (container, 128 MiB)",
        env.pod.update(&app.id, &memory(128 * MIB as i64)).await,
    );
    assert_eq!(leaf_limit(&node, &sandbox.id), (128 * MIB).to_string());
    let rec = record(&sandbox);
    let update = rec.update.as_ref().unwrap();
    assert_eq!(
        update.container_id, app.id,
        "the sandbox's record names whose update it was"
    );
    assert_eq!(update.memory_from.map(|b| b.get()), Some(200 * MIB));
    assert!(
        record(&app).update.is_none(),
        "only the sandbox's record holds the leaf"
    );

    // Above the pod's bound: refused, nothing changed.
    let above = 512 * MIB;
    let message = expect_refused(
        env.pod.update(&app.id, &memory(above as i64)).await,
        "Update above the bound",
        &[
            "runsc-guard refused container pupdate-app",
            &format!("resources.memory.limit 512 MiB ({above} bytes) is above the pod's bound 256 MiB ({POD_LIMIT} bytes, the pod cgroup {})", pod_slice()),
            "raise the pod's limit first",
            "nothing was changed",
        ],
    );
    assert!(message.contains("pupdate-app"));
    assert_eq!(
        leaf_limit(&node, &sandbox.id),
        (128 * MIB).to_string(),
        "unchanged"
    );

    // -1 (no limit of its own) gives the sandbox the pod's bound.
    env.ok(
        "Update (-1)",
        env.pod.update(&sandbox.id, &memory(-1)).await,
    );
    assert_eq!(leaf_limit(&node, &sandbox.id), POD_LIMIT.to_string());

    // Malformed requests name the field.
    for (bad, field) in [
        (
            &b"{not json"[..],
            "invalid resources: is not the JSON of an OCI LinuxResources",
        ),
        (
            &br#"{"memory":{"limit":-5}}"#[..],
            "invalid resources.memory.limit: -5 is neither",
        ),
    ] {
        let r = env.pod.update(&sandbox.id, bad).await;
        assert!(
            matches!(&r, Err(e @ Error::InvalidArgument { .. }) if e.to_string().contains(field)),
            "{field}: {r:?}"
        );
    }
    assert_eq!(
        leaf_limit(&node, &sandbox.id),
        POD_LIMIT.to_string(),
        "unchanged"
    );
    // No memory asked: nothing to change on the host.
    env.ok(
        "Update (cpu only)",
        env.pod
            .update(&sandbox.id, br#"{"cpu":{"shares":2}}"#)
            .await,
    );
    assert_eq!(leaf_limit(&node, &sandbox.id), POD_LIMIT.to_string());

    env.kill_wait_delete(&app.id).await;
    let gone = env.pod.update(&app.id, &memory(100 * MIB as i64)).await;
    assert!(
        matches!(gone, Err(Error::NotFound(_))),
        "after Delete: {gone:?}"
    );
    env.kill_wait_delete(&sandbox.id).await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsc_with_update_gets_the_request_on_stdin() {
    let (env, node) = PodEnv::on_node("pupdnew", |d| Node::with_pod(d, POD_LIMIT));
    let config = runsc_toml_with_version(&env, "release-20260202.0");
    let sandbox = sandbox_bundle(&env, "pupdnew-s1", Some(POD_LIMIT)).build();
    env.create_ok("Create", &sandbox, &config).await;
    env.ok("Start", env.pod.start(&init(&sandbox.id)).await);
    let request = memory(192 * MIB as i64);
    env.ok("Update", env.pod.update(&sandbox.id, &request).await);
    assert_eq!(leaf_limit(&node, &sandbox.id), (192 * MIB).to_string());
    assert_eq!(
        updates(&env),
        [env.argv(&sandbox, &["update", "--resources=-", &sandbox.id])],
        "the exact runsc update command line"
    );
    let given = &state_of(&env, &sandbox.id)["resources"];
    let sent: Value = serde_json::from_slice(&request).unwrap();
    assert_eq!(given, &sent, "runsc read the request as containerd sent it");
    let rec = record(&sandbox);
    assert_eq!(
        rec.update.and_then(|u| u.guest).as_deref(),
        Some("runsc release-20260202.0 update applied the resources in the guest")
    );

    // runsc update failing: the host cgroup (what bounds the sandbox) is changed anyway, and
    // the record says the guest kept its resources.
    let failing = sandbox_bundle(&env, "pupdnew-s2", Some(POD_LIMIT))
        .annotation(KNOB_FAIL, "update")
        .build();
    env.create_ok("Create (failing)", &failing, &config).await;
    env.ok("Start (failing)", env.pod.start(&init(&failing.id)).await);
    env.ok(
        "Update (runsc fails)",
        env.pod.update(&failing.id, &request).await,
    );
    assert_eq!(leaf_limit(&node, &failing.id), (192 * MIB).to_string());
    let guest = record(&failing)
        .update
        .and_then(|u| u.guest)
        .unwrap_or_default();
    assert!(
        guest.starts_with("the guest keeps its resources: runsc update failed"),
        "{guest}"
    );

    env.kill_wait_delete(&failing.id).await;
    env.kill_wait_delete(&sandbox.id).await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_without_a_verified_leaf_is_refused_and_changes_nothing() {
    // No pod cgroup in the tree the guard reads: a container outside any pod.
    let env = PodEnv::new("pupdnopod");
    let config = env.write_runsc_toml("");
    let bundle = env.bundle("pupdnopod-c1").build();
    env.create_ok("Create", &bundle, &config).await;
    env.ok("Start", env.pod.start(&init(&bundle.id)).await);
    expect_refused(
        env.pod.update(&bundle.id, &memory(100 * MIB as i64)).await,
        "no pod",
        &[
            "is not in a pod cgroup the guard found",
            "nothing was changed",
        ],
    );

    // Guard off: nothing of the sandbox was verified.
    let off = env.write_file(
        "off.toml",
        &format!(
            "binary_name = {:?}\nroot = {:?}\nguard_mode = \"off\"\n",
            fake_runsc().display().to_string(),
            env.runsc_root().display().to_string()
        ),
    );
    let unguarded = env.bundle("pupdnopod-c2").build();
    env.create_ok("Create (off)", &unguarded, &off).await;
    env.ok("Start (off)", env.pod.start(&init(&unguarded.id)).await);
    expect_refused(
        env.pod
            .update(&unguarded.id, &memory(100 * MIB as i64))
            .await,
        "guard off",
        &["the guard is off for this sandbox (guard_mode = \"off\")"],
    );

    // A stopped container.
    env.ok("Kill", env.pod.kill(&init(&bundle.id), 9, false).await);
    env.ok("Wait", env.pod.wait(&init(&bundle.id)).await);
    let stopped = env.pod.update(&bundle.id, &memory(100 * MIB as i64)).await;
    assert!(
        matches!(&stopped, Err(Error::FailedPrecondition(m)) if m.contains("is stopped: there is nothing to update")),
        "{stopped:?}"
    );
    env.ok("Delete", env.pod.delete(&init(&bundle.id)).await);
    env.kill_wait_delete(&unguarded.id).await;
    env.assert_nothing_left().await;
}

/// A container's Update in a pod of several: the sandbox's leaf holds them all, so it gets their
/// limits together (the new one and its siblings'), never the one container's alone, which would
/// cap the others with it; a sibling without a limit leaves the leaf at the pod's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containers_update_gives_the_leaf_the_limits_of_the_pods_containers_together() {
    let (env, node) = PodEnv::on_node("pupsum", |d| Node::with_pod(d, POD_LIMIT));
    let config = env.write_runsc_toml("");
    let sandbox = sandbox_bundle(&env, "pupsum-s1", Some(POD_LIMIT)).build();
    let app = |id: &str, limit: Option<u64>| {
        let b = env
            .bundle(id)
            .annotation(CONTAINER_TYPE, "container")
            .annotation(SANDBOX_ID, "pupsum-s1")
            .cgroups_path(&systemd_path(id));
        match limit {
            Some(l) => b.memory_limit(l),
            None => b,
        }
        .build()
    };
    let (web, side) = (
        app("pupsum-web", Some(100 * MIB)),
        app("pupsum-side", Some(100 * MIB)),
    );
    env.create_ok("Create (sandbox)", &sandbox, &config).await;
    env.ok("Start (sandbox)", env.pod.start(&init(&sandbox.id)).await);
    for b in [&web, &side] {
        env.create_ok("Create (container)", b, &config).await;
        env.ok("Start (container)", env.pod.start(&init(&b.id)).await);
    }

    env.ok(
        "Update (web, 64 MiB)",
        env.pod.update(&web.id, &memory(64 * MIB as i64)).await,
    );
    assert_eq!(
        leaf_limit(&node, &sandbox.id),
        (164 * MIB).to_string(),
        "web's new 64 MiB and side's 100 MiB"
    );
    env.ok(
        "Update (side, 50 MiB)",
        env.pod.update(&side.id, &memory(50 * MIB as i64)).await,
    );
    assert_eq!(
        leaf_limit(&node, &sandbox.id),
        (114 * MIB).to_string(),
        "side's 50 MiB and web's 64 MiB from its own Update"
    );

    // A third container without a limit: the leaf follows the pod.
    let free = app("pupsum-free", None);
    env.create_ok("Create (container)", &free, &config).await;
    env.ok("Start (container)", env.pod.start(&init(&free.id)).await);
    env.ok(
        "Update (web, 32 MiB)",
        env.pod.update(&web.id, &memory(32 * MIB as i64)).await,
    );
    assert_eq!(leaf_limit(&node, &sandbox.id), POD_LIMIT.to_string());

    for id in [&free.id, &side.id, &web.id, &sandbox.id] {
        env.kill_wait_delete(id).await;
    }
    env.assert_nothing_left().await;
}
