//! Container ids runsc could confuse: runsc resolves ids by prefix (fake-runsc plays that), so
//! with `web` and `web-sidecar` in one root `runsc start web` is ambiguous, and once `web`'s
//! state is gone `runsc delete --force web` would reach `web-sidecar`. The shim refuses such an
//! id at Create, in either order, and its `delete` action never deletes an id runsc does not list.
//!
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::ttrpc::Code;

async fn refused(env: &TestEnv, bundle: &Bundle, config: &std::path::Path, other: &str) {
    let shim = env.start_shim(bundle).await;
    let before = env.calls().len();
    let err = shim
        .create(bundle.create_request(Some(env.options(config))))
        .await
        .expect_err("Create of a clashing id");
    assert_eq!(error_code(&err), Some(Code::INVALID_ARGUMENT), "{err:?}");
    let message = error_message(&err);
    for needed in [bundle.id.as_str(), other, "prefix", "runsc root"] {
        assert!(message.contains(needed), "{needed:?} in {message:?}");
    }
    assert!(!bundle.rootfs_is_mounted(), "nothing mounted");
    let calls = env.calls()[before..].to_vec();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(&bundle.id) && subcommand(c) == Some("create")),
        "no runsc create for the refused id:\n{}",
        env.show(&calls)
    );
    shim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_are_prefixes_of_each_other_are_refused_in_either_order() {
    if skip_unless_root("ids_that_are_prefixes_of_each_other_are_refused_in_either_order") {
        return;
    }
    let env = TestEnv::new("prefix").await;
    let config = env.write_runsc_toml("");
    let web = env
        .bundle("pfx-web")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let sidecar = env
        .bundle("pfx-web-sidecar")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let other = env
        .bundle("pfx-db")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();

    let web_shim = env.start_shim(&web).await;
    web_shim
        .create_ok("Create (web)", &env, &web, &config)
        .await;
    refused(&env, &sidecar, &config, "pfx-web").await;
    // An id that is no prefix of another is fine beside them.
    let other_shim = env.start_shim(&other).await;
    other_shim
        .create_ok("Create (db)", &env, &other, &config)
        .await;
    other_shim.ok("Start (db)", other_shim.start().await);
    other_shim.kill_wait_delete("db").await;
    other_shim.shutdown().await;
    run_to_the_end(&env, web_shim).await;

    // The other order: web-sidecar first, then web.
    let sidecar_shim = env.start_shim(&sidecar).await;
    sidecar_shim
        .create_ok("Create (web-sidecar)", &env, &sidecar, &config)
        .await;
    refused(&env, &web, &config, "pfx-web-sidecar").await;
    run_to_the_end(&env, sidecar_shim).await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_action_never_deletes_a_container_whose_id_its_own_begins() {
    if skip_unless_root("the_delete_action_never_deletes_a_container_whose_id_its_own_begins") {
        return;
    }
    let env = TestEnv::new("prefix-delete").await;
    let config = env.write_runsc_toml("");
    let web = env
        .bundle("pfd-web")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let sidecar = env
        .bundle("pfd-web-sidecar")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let web_shim = env.start_shim(&web).await;
    web_shim
        .create_ok("Create (web)", &env, &web, &config)
        .await;
    kill_shim_daemon(&env, web_shim).await;
    // web's runsc state is gone (deleted before its shim died); web-sidecar comes after.
    std::fs::remove_file(env.runsc_state.join("pfd-web_sandbox:pfd-web.state")).unwrap();
    let sidecar_shim = env.start_shim(&sidecar).await;
    sidecar_shim
        .create_ok("Create (web-sidecar)", &env, &sidecar, &config)
        .await;

    let out = env.run_delete_action(&web, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = sidecar_shim.ok("State (web-sidecar)", sidecar_shim.state().await);
    assert_eq!(
        state.status.enum_value(),
        Ok(containerd_shim_protos::api::Status::CREATED),
        "web-sidecar is untouched"
    );
    let calls = env.calls();
    assert!(
        !calls.contains(&env.argv(&web, &["delete", "--force", "pfd-web"])),
        "no runsc delete --force pfd-web, which runsc would resolve to pfd-web-sidecar:\n{}",
        env.show(&calls)
    );
    run_to_the_end(&env, sidecar_shim).await;
    env.assert_nothing_left().await;
}
