//! One shim per pod: the containers of a pod share their sandbox's shim process (grouped by
//! `io.kubernetes.cri.sandbox-id`), `grouping = false` gives each its own, and Shutdown ends the
//! process only when it serves no container.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, KillRequest, StartRequest, StateRequest, WaitRequest,
};
use containerd_shim_protos::ttrpc::Code;
use containerd_shim_protos::types::task::Status;

fn pod_bundles(env: &TestEnv, pod: &str, apps: &[&str]) -> (Bundle, Vec<Bundle>) {
    let sandbox_id = format!("{pod}-sb");
    let sandbox = env
        .bundle(&sandbox_id)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, &sandbox_id)
        .build();
    let apps = apps
        .iter()
        .map(|app| {
            env.bundle(&format!("{pod}-{app}"))
                .annotation(CONTAINER_TYPE, "container")
                .annotation(SANDBOX_ID, &sandbox_id)
                .build()
        })
        .collect();
    (sandbox, apps)
}

/// A shim started for `bundle` (the pod's shim when one runs), its container created and started.
async fn started(env: &TestEnv, bundle: &Bundle, config: &std::path::Path, what: &str) -> Shim {
    let shim = env.start_shim_with_options(bundle, config).await;
    shim.create_ok(&format!("Create ({what})"), env, bundle, config)
        .await;
    shim.ok(&format!("Start ({what})"), shim.start().await);
    shim
}

async fn running(shim: &Shim) -> bool {
    shim.ok("State", shim.state().await).status.enum_value() == Ok(Status::RUNNING)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_containers_of_a_pod_share_one_shim_which_stays_until_the_last_is_deleted() {
    if skip_unless_root(
        "the_containers_of_a_pod_share_one_shim_which_stays_until_the_last_is_deleted",
    ) {
        return;
    }
    let env = TestEnv::new("group").await;
    let config = env.write_runsc_toml("");
    let (sandbox, apps) = pod_bundles(&env, "group", &["web", "sidecar"]);
    let sandbox_shim = started(&env, &sandbox, &config, "sandbox").await;

    let mut app_shims = Vec::new();
    for app in &apps {
        let shim = env.start_shim_with_options(app, &config).await;
        assert_eq!(
            shim.address, sandbox_shim.address,
            "{}: start returns the pod shim's address",
            app.id
        );
        assert_eq!(
            shim.pid(),
            sandbox_shim.pid(),
            "{}: shim.pid names the pod's shim",
            app.id
        );
        shim.create_ok("Create (container)", &env, app, &config)
            .await;
        shim.ok("Start (container)", shim.start().await);
        let connected = shim.ok("Connect", shim.connect().await);
        assert_eq!(connected.shim_pid, sandbox_shim.pid() as u32);
        app_shims.push(shim);
    }
    let shim_pid = sandbox_shim.pid();
    // The daemons: the shim binary serving a socket (a `start` has exited by now).
    let daemons = shim_daemons(&env.namespace);
    assert_eq!(
        daemons.iter().map(|(pid, _)| *pid).collect::<Vec<_>>(),
        vec![shim_pid],
        "one shim process for the three containers: {daemons:?}"
    );

    // Deleting one container leaves the others running, and its Shutdown leaves the shim.
    let sidecar = app_shims.pop().unwrap();
    sidecar.kill_wait_delete("sidecar").await;
    sidecar.shutdown().await;
    assert!(
        process_is_ours(shim_pid, &env.namespace),
        "the pod's shim stays"
    );
    assert!(running(&sandbox_shim).await, "the sandbox still runs");
    let web = app_shims.pop().unwrap();
    assert!(running(&web).await, "the other container still runs");
    let err = web
        .client
        .state(
            ctx(),
            &StateRequest {
                id: apps[1].id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect_err("State of the deleted container");
    assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{err:?}");

    web.kill_wait_delete("web").await;
    web.shutdown().await;
    assert!(
        process_is_ours(shim_pid, &env.namespace),
        "the sandbox remains"
    );
    sandbox_shim.kill_wait_delete("sandbox").await;
    // No container left: Shutdown ends the process, and the socket goes with it.
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_grouping_false_every_container_has_a_shim_of_its_own() {
    if skip_unless_root("with_grouping_false_every_container_has_a_shim_of_its_own") {
        return;
    }
    let env = TestEnv::new("nogroup").await;
    let config = env.write_runsc_toml("grouping = false");
    let (sandbox, apps) = pod_bundles(&env, "nogroup", &["web", "sidecar"]);
    let sandbox_shim = started(&env, &sandbox, &config, "sandbox").await;
    let mut app_shims = Vec::new();
    for app in &apps {
        let shim = env.start_shim_with_options(app, &config).await;
        shim.create_ok("Create (container)", &env, app, &config)
            .await;
        shim.ok("Start (container)", shim.start().await);
        app_shims.push(shim);
    }
    let mut pids: Vec<i32> = app_shims.iter().map(Shim::pid).collect();
    pids.push(sandbox_shim.pid());
    let mut addresses: Vec<&str> = app_shims.iter().map(|s| s.address.as_str()).collect();
    addresses.push(&sandbox_shim.address);
    pids.sort();
    pids.dedup();
    addresses.sort();
    addresses.dedup();
    assert_eq!(pids.len(), 3, "three shim processes: {pids:?}");
    assert_eq!(addresses.len(), 3, "three addresses: {addresses:?}");

    // Each container's shim ends with its container; the others run on.
    for (shim, app) in app_shims.into_iter().zip(&apps) {
        let pid = shim.pid();
        shim.kill_wait_delete(&app.id).await;
        shim.shutdown().await;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while process_is_ours(pid, &env.namespace) {
            assert!(
                std::time::Instant::now() < deadline,
                "{}'s shim stays",
                app.id
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(running(&sandbox_shim).await, "the sandbox still runs");
    }
    sandbox_shim.kill_wait_delete("sandbox").await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}

/// containerd 2.0 and 2.1 (before their fix) sent a pod's containers to the sandbox's shim
/// connection without running `start` for them, whatever the shim's grouping; a shim of one
/// container per process must still serve them, and Shutdown must wait for the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_sent_to_the_sandboxs_connection_are_served_there() {
    if skip_unless_root("containers_sent_to_the_sandboxs_connection_are_served_there") {
        return;
    }
    let env = TestEnv::new("routed").await;
    let config = env.write_runsc_toml("grouping = false");
    let (sandbox, apps) = pod_bundles(&env, "routed", &["web"]);
    let app = &apps[0];
    let shim = started(&env, &sandbox, &config, "sandbox").await;
    let create: CreateTaskRequest = app.create_request(Some(env.options(&config)));
    shim.ok(
        "Create (container, sandbox's connection)",
        shim.client.create(ctx(), &create).await,
    );
    let id = app.id.clone();
    shim.ok(
        "Start (container)",
        shim.client
            .start(
                ctx(),
                &StartRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .await,
    );
    // The sandbox's task is deleted first, as containerd 2.0 may: Shutdown must leave the shim.
    shim.kill_wait_delete("sandbox").await;
    let pid = shim.pid();
    let client = shim.client.clone();
    shim.shutdown().await;
    assert!(
        process_is_ours(pid, &env.namespace),
        "Shutdown with a container left must not end the shim"
    );
    client
        .kill(
            ctx(),
            &KillRequest {
                id: id.clone(),
                signal: 9,
                ..Default::default()
            },
        )
        .await
        .ok();
    let waited = client
        .wait(
            ctx(),
            &WaitRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("Wait (container)");
    assert_eq!(waited.exit_status, 137);
    client
        .delete(
            ctx(),
            &DeleteRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("Delete (container)");
    let _ = client
        .shutdown(
            ctx(),
            &containerd_shim_protos::api::ShutdownRequest {
                id,
                ..Default::default()
            },
        )
        .await;
    env.assert_nothing_left().await;
}

/// The pod's `/dev/shm` is one tmpfs for the pod: Create rewrites config.json before runsc
/// reads it (the sandbox names it to runsc, each container's bind mount becomes that tmpfs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_turns_the_pods_shm_into_one_tmpfs_before_runsc_reads_the_spec() {
    if skip_unless_root("create_turns_the_pods_shm_into_one_tmpfs_before_runsc_reads_the_spec") {
        return;
    }
    let env = TestEnv::new("shm").await;
    let config = env.write_runsc_toml("");
    let (sandbox, apps) = pod_bundles(&env, "shm", &["web"]);
    let add_shm = |bundle: &Bundle| {
        let path = bundle.path.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/dev/shm", "type": "bind", "source": "/run/pod-shm",
                "options": ["rbind", "rw"]
            }));
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    };
    let read = |bundle: &Bundle| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(bundle.path.join("config.json")).unwrap()).unwrap()
    };
    add_shm(&sandbox);
    add_shm(&apps[0]);
    let shim = env.start_shim_with_options(&sandbox, &config).await;
    shim.create_ok("Create (sandbox)", &env, &sandbox, &config)
        .await;
    let spec = read(&sandbox);
    let hint = |field: &str| {
        spec["annotations"][format!("dev.gvisor.spec.mount.gvisorinternaldevshm.{field}")].clone()
    };
    assert_eq!(hint("source"), "/run/pod-shm");
    assert_eq!(hint("share"), "pod");
    assert_eq!(hint("type"), "tmpfs");
    let shm = |spec: &serde_json::Value| {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .cloned()
            .unwrap()
    };
    assert_eq!(shm(&spec)["type"], "tmpfs");
    let app_shim = env.start_shim_with_options(&apps[0], &config).await;
    app_shim
        .create_ok("Create (container)", &env, &apps[0], &config)
        .await;
    let app_spec = read(&apps[0]);
    assert_eq!(shm(&app_spec)["type"], "tmpfs");
    assert_eq!(shm(&app_spec)["options"], serde_json::json!(["rw"]));
    app_shim.kill_wait_delete("container").await;
    app_shim.shutdown().await;
    shim.kill_wait_delete("sandbox").await;
    shim.shutdown().await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_shim_removes_its_socket_when_the_sandboxs_bundle_went_first() {
    if skip_unless_root("the_pods_shim_removes_its_socket_when_the_sandboxs_bundle_went_first") {
        return;
    }
    let env = TestEnv::new("sockgone").await;
    let config = env.write_runsc_toml("");
    let (sandbox, apps) = pod_bundles(&env, "sockgone", &["app"]);
    let sandbox_shim = started(&env, &sandbox, &config, "sandbox").await;
    let app_shim = started(&env, &apps[0], &config, "container").await;

    // As after an OOM kill of the whole sandbox: containerd deletes the sandbox's task first and
    // removes its bundle, the directory the pod's shim was started in, while a container remains.
    sandbox_shim.kill_wait_delete("sandbox").await;
    sandbox_shim.shutdown().await;
    std::fs::remove_dir_all(&sandbox.path).unwrap();

    // The container went with its sandbox.
    app_shim.ok("Wait (container)", app_shim.wait().await);
    app_shim.ok("Delete (container)", app_shim.delete().await);
    // The last Shutdown ends the shim, which must remove its socket without the `address` file
    // of its (gone) working directory.
    app_shim.shutdown().await;
    env.assert_nothing_left().await;
}
