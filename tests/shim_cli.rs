//! The shim's informational command lines: `-v` (the version) and `-info` (the RuntimeInfo
//! containerd 2.x asks for, with the runtime options on stdin). Neither needs root, nor
//! containerd's TTRPC_ADDRESS, which containerd does not set for them.

mod common;

use common::prelude::*;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::types::introspection::RuntimeInfo;

fn shim(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(shim_binary());
    cmd.args(args).env_remove("TTRPC_ADDRESS");
    cmd
}

#[tokio::test]
async fn dash_v_prints_the_version() {
    let out = run_bounded(shim(&["-v"]), "containerd-shim-runsc-v1 -v").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "-v exits 0, got {}: stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(env!("CARGO_PKG_VERSION")),
        "-v prints version {}: {stdout:?}",
        env!("CARGO_PKG_VERSION")
    );
}

async fn runtime_info(stdin: &[u8]) -> RuntimeInfo {
    let out =
        run_bounded_with_input(shim(&["-info"]), stdin, "containerd-shim-runsc-v1 -info").await;
    assert!(
        out.status.success(),
        "-info exits 0, got {}: stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    RuntimeInfo::parse_from_bytes(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "-info prints a RuntimeInfo protobuf ({e}); got {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn dash_info_prints_the_runtime_info() {
    let info = runtime_info(b"").await;
    assert_eq!(info.name, RUNTIME_ID);
}

#[tokio::test]
async fn dash_info_accepts_the_runtime_options_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runsc.toml");
    std::fs::write(
        &config,
        format!(
            "binary_name = {:?}\nroot = {:?}\n",
            fake_runsc().display().to_string(),
            dir.path().join("runsc-root").display().to_string()
        ),
    )
    .unwrap();
    let options = runsc_guard::options::encode_cri_options(
        RUNSC_OPTIONS_TYPE_URL,
        &config.display().to_string(),
        b"",
    );
    let info = runtime_info(&options.write_to_bytes().unwrap()).await;
    assert_eq!(info.name, RUNTIME_ID);
}
