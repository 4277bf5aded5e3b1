//! `start` as containerd 1.6/1.7 run it: they read its stdout and stderr together as the socket
//! address, so `start` prints exactly the address, even when the shim cannot join runsc.toml's
//! `shim_cgroup` or lower its OOM score (those are warnings in the shim log).
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use std::time::Instant;

use common::*;
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
