//! Checkpoint answers a clear "not implemented" (UNIMPLEMENTED), not the generic "not
//! supported" of an RPC the shim does not know.
//!
//! Needs root: as any other user the test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::api::CheckpointTaskRequest;
use containerd_shim_protos::ttrpc::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_is_refused_clearly() {
    if skip_unless_root("checkpoint_is_refused_clearly") {
        return;
    }
    let env = TestEnv::new("ckpt").await;
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle("ckpt-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    let shim = env.start_shim(&bundle).await;
    shim.create_ok("Create", &env, &bundle, &config).await;
    let req = CheckpointTaskRequest {
        id: bundle.id.clone(),
        path: env.path("ckpt").display().to_string(),
        ..Default::default()
    };
    let err = shim
        .client
        .checkpoint(ctx(), &req)
        .await
        .expect_err("Checkpoint");
    assert_eq!(error_code(&err), Some(Code::UNIMPLEMENTED), "{err:?}");
    assert!(
        error_message(&err).contains("checkpoint of a task is not implemented"),
        "{err:?}"
    );
    shim.kill_wait_delete("c1").await;
    shim.shutdown().await;
    env.assert_nothing_left().await;
}
