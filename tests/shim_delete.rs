//! The `delete` sub-command: what containerd runs, in the bundle, when the shim is gone. It must
//! run `runsc delete --force <id>`, unmount `<bundle>/rootfs` and answer a DeleteResponse with
//! exit status 137 on stdout.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;
use nix::mount::{mount, MsFlags};

fn delete_response(out: &std::process::Output, bundle: &Bundle) -> DeleteResponse {
    assert!(
        out.status.success(),
        "delete failed ({}): stderr {:?}\nshim log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        bundle.shim_log()
    );
    DeleteResponse::parse_from_bytes(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "delete's stdout is not a DeleteResponse ({e}): {:?}",
            out.stdout
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_after_the_shim_was_killed_uses_the_configured_runsc_and_cleans_up() {
    if skip_unless_root("delete_after_the_shim_was_killed_uses_the_configured_runsc_and_cleans_up")
    {
        return;
    }
    let env = TestEnv::new("killed").await;
    let (bundle, shim, _) = env.started_sandbox("killed-c1").await;
    let id = shim.id().to_string();
    assert!(bundle.rootfs_is_mounted());
    // Everything the shim runs before it dies is recorded before the count below.
    env.await_call("wait").await;

    // The shim dies without a word, as under the OOM killer.
    let trace = kill_shim_daemon(&env, shim).await;
    let before = env.calls().len();

    let out = env.run_delete_action(&bundle, &[]).await;
    let response = delete_response(&out, &bundle);
    assert_eq!(response.exit_status, 137, "128 + SIGKILL");

    let calls = env.calls();
    assert_eq!(
        calls[before..],
        [env.argv(&bundle, &["delete", "--force", &id])],
        "delete runs the runsc and root of the runsc.toml the container was created with:\n{}",
        env.show(&calls)
    );
    assert!(!bundle.rootfs_is_mounted(), "delete unmounts the rootfs");
    // A killed daemon cannot remove its socket: `delete`, the last step containerd runs for that
    // shim, removes it once nothing answers on it.
    assert!(
        !trace.socket.exists(),
        "delete removes the dead shim's socket {}",
        trace.socket.display()
    );
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_without_a_shim_uses_runsc_from_path_and_the_default_root() {
    if skip_unless_root("delete_without_a_shim_uses_runsc_from_path_and_the_default_root") {
        return;
    }
    let mut env = TestEnv::new("noshim").await;
    env.use_default_runsc_root();
    let bundle = env
        .bundle("noshim-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    // A rootfs a shim mounted before it died.
    mount(
        Some(&bundle.rootfs_source),
        &bundle.path.join("rootfs"),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .expect("bind-mounting the rootfs");
    assert!(bundle.rootfs_is_mounted());

    let out = env
        .run_delete_action(&bundle, &[("PATH", env.path_with_fake_runsc())])
        .await;
    let response = delete_response(&out, &bundle);
    assert_eq!(response.exit_status, 137, "128 + SIGKILL");
    let calls = env.calls();
    // runsc's root (the default, under /run/containerd/runsc) holds no such container, so nothing is
    // deleted: `delete --force` of an id runsc does not have would reach a container whose id it
    // begins (runsc resolves by prefix). The shim reads the root's state files; runsc never runs.
    assert!(
        calls.is_empty(),
        "no runsc call for a container runsc's root does not hold:\n{}",
        env.show(&calls)
    );
    assert!(!bundle.rootfs_is_mounted(), "delete unmounts the rootfs");
    env.assert_nothing_left().await;
}

/// `delete` and `start` take the id from containerd's command line; both check it as Create
/// does, so an id that runsc would read as a flag (or that names another path) runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_start_refuse_an_id_the_task_api_would_refuse() {
    if skip_unless_root("delete_and_start_refuse_an_id_the_task_api_would_refuse") {
        return;
    }
    let env = TestEnv::new("badid").await;
    let _config = env.write_runsc_toml("");
    for bad in ["--all", "-x", "a/../../b", ".."] {
        let mut bundle = env.bundle("badid-c1").build();
        bundle.id = bad.to_string();
        let out = env.run_delete_action(&bundle, &[]).await;
        assert!(!out.status.success(), "delete -id {bad:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("invalid id"),
            "delete -id {bad:?}: {stderr}"
        );

        let mut cmd = env.shim_command(&bundle);
        cmd.arg("start");
        let out = run_bounded(cmd, "containerd-shim-runsc-v1 start").await;
        assert!(!out.status.success(), "start -id {bad:?} succeeded");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("unix://"),
            "start -id {bad:?} printed an address"
        );
    }
    assert!(env.calls().is_empty(), "runsc ran: {:?}", env.calls());
    env.assert_nothing_left().await;
}

/// The runsc binary removed under a running sandbox (a package upgrade): the daemon's Kill and
/// Delete answer that runsc could not be run, never NotFound, and the task is still there; once
/// runsc is back, Delete finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_delete_never_answer_not_found_when_the_runsc_binary_is_missing() {
    if skip_unless_root("kill_and_delete_never_answer_not_found_when_the_runsc_binary_is_missing") {
        return;
    }
    let env = TestEnv::new("nobinary").await;
    let (config, runsc) = env.write_runsc_toml_with_own_binary();
    let bundle = env
        .bundle("nobinary-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let shim = env.start_shim_with_options(&bundle, &config).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);

    std::fs::remove_file(&runsc).unwrap();
    for (what, err) in [
        ("Kill", shim.kill(9, false).await.map(|_| ()).unwrap_err()),
        ("Delete", shim.delete().await.map(|_| ()).unwrap_err()),
    ] {
        assert_ne!(
            error_code(&err),
            Some(containerd_shim_protos::ttrpc::Code::NOT_FOUND),
            "{what}: {err:?}"
        );
        assert!(
            error_message(&err).contains("runsc binary"),
            "{what} says runsc could not be run: {}",
            error_message(&err)
        );
    }
    // State cannot ask runsc either: it says so, never NotFound.
    if let Err(e) = shim.state().await {
        assert_ne!(
            error_code(&e),
            Some(containerd_shim_protos::ttrpc::Code::NOT_FOUND),
            "State: {e:?}"
        );
    }

    std::os::unix::fs::symlink(fake_runsc(), &runsc).unwrap();
    shim.kill_wait_delete("the sandbox once runsc is back")
        .await;
}
