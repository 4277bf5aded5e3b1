//! `start` as containerd 1.6/1.7 run it: they read its stdout and stderr together as the socket
//! address, so `start` prints exactly the address, even when the shim cannot join runsc.toml's
//! `shim_cgroup` or lower its OOM score (those are warnings in the shim log). `start` tells the
//! daemon which runsc runsc.toml names, so its version is learned once per node, not per shim.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::time::Instant;

use common::prelude::*;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{Client, TaskClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_prints_only_the_address_when_shim_cgroup_and_oom_score_cannot_be_applied() {
    if skip_unless_root(
        "start_prints_only_the_address_when_shim_cgroup_and_oom_score_cannot_be_applied",
    ) {
        return;
    }
    let env = TestEnv::new("start-quiet").await;
    let config = env.write_runsc_toml("shim_cgroup = \"/system.slice/no-such-shims\"");
    let bundle = env
        .bundle("start-quiet-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    // The daemon reads its own OOM score file from this proc root: an empty one, so writing the
    // score fails as it does without CAP_SYS_RESOURCE. The cgroup tree is the test's empty one,
    // where shim_cgroup does not exist.
    let proc_root = env.path("empty-proc");
    std::fs::create_dir_all(&proc_root).unwrap();
    let mut cmd = env.shim_command(&bundle);
    cmd.env("RUNSC_GUARD_PROC_ROOT", &proc_root).arg("start");
    let options = env.options(&config).write_to_bytes().unwrap();
    let out = run_bounded_with_input(cmd, &options, "containerd-shim-runsc-v1 start").await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "start failed: {stderr:?}");
    assert_eq!(stderr, "", "start writes nothing on stderr");
    assert!(
        stdout.starts_with("unix:///run/containerd/s/") && !stdout.contains(char::is_whitespace),
        "start's combined output is exactly the address, got {stdout:?}"
    );
    let address = std::fs::read_to_string(bundle.path.join("address")).unwrap();
    assert_eq!(address, stdout);
    let pid: i32 = std::fs::read_to_string(bundle.path.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // The warnings are in the shim log, and the daemon serves.
    let client = TaskClient::new(Client::connect(&address).await.expect("connecting"));
    let log = bundle.shim_log();
    assert!(
        log.contains("no-such-shims") && log.contains("oom_score_adj"),
        "the shim log warns about shim_cgroup and oom_score_adj:\n{log}"
    );
    let req = containerd_shim_protos::api::ShutdownRequest {
        id: bundle.id.clone(),
        ..Default::default()
    };
    let _ = client.shutdown(ctx(), &req).await;
    let deadline = Instant::now() + TIMEOUT;
    while process_is_ours(pid, &env.namespace) {
        assert!(
            Instant::now() < deadline,
            "the shim did not exit on Shutdown"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let socket = address.strip_prefix("unix://").unwrap();
    assert!(
        !std::path::Path::new(socket).exists(),
        "socket {socket} left behind"
    );
    env.assert_nothing_left().await;
}

/// One shim per pod, and each pod's shim would run `runsc --version`: the first shim to meet the
/// binary shares the answer through the runsc state root, and the next pod's shim, another
/// process, plans from it without running runsc for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_shim_of_the_node_asks_runsc_its_version() {
    if skip_unless_root("only_the_first_shim_of_the_node_asks_runsc_its_version") {
        return;
    }
    let env = TestEnv::new("version-shared").await;
    let config = env.write_runsc_toml("");
    let probes = env.path("version-calls");
    let vars = [(VERSION_CALLS_ENV, probes.clone().into_os_string())];
    let probes_run = || {
        std::fs::read_to_string(&probes)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse::<i32>().expect("a pid per line"))
            .collect::<Vec<_>>()
    };
    let mut shims = Vec::new();
    for pod in ["version-shared-a", "version-shared-b"] {
        let bundle = env
            .bundle(pod)
            .annotation(CONTAINER_TYPE, "sandbox")
            .annotation(SANDBOX_ID, pod)
            .build();
        let shim = env
            .start_shim_with_options_and(&bundle, &config, &vars)
            .await;
        shim.create_ok("Create", &env, &bundle, &config).await;
        shim.ok("Start", shim.start().await);
        shims.push((bundle, shim));
    }
    let (first, second) = (&shims[0].1, &shims[1].1);
    assert_ne!(first.pid(), second.pid(), "a shim per pod");
    assert_eq!(
        probes_run(),
        [first.pid()],
        "only the first shim runs runsc --version"
    );
    let cache = env.runsc_root().join(".runsc-guard-versions.json");
    let text = std::fs::read_to_string(&cache).expect("the shared cache is written");
    assert!(text.contains("0.0~20221219.0"), "{text}");
    let timing = second
        .log()
        .lines()
        .find(|l| l.contains("timing create version-shared-b"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no timing line:\n{}", second.log()));
    assert!(!timing.contains("runsc.version="), "{timing}");
    // Its start-up, up to that Create, in one line too.
    let daemon = second
        .log()
        .lines()
        .find(|l| l.contains("timing daemon version-shared-b: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no start-up timing line:\n{}", second.log()));
    for span in [
        "start=",
        "exec=",
        "publisher=",
        "service=",
        "ready=",
        "total=",
    ] {
        assert!(daemon.contains(span), "{span} in {daemon}");
    }
    for (bundle, shim) in shims {
        shim.kill_wait_delete(&bundle.id).await;
        shim.shutdown().await;
    }
    env.assert_nothing_left().await;
}
