//! `[runsc_config]` in runsc.toml: every entry becomes a runsc global flag, in key order, before the
//! sub-command of every call; `%ID%` in a path-like flag becomes the container id and its parent
//! directory is created, as gVisor's shim does for runsc 20221219.
//!
//! Needs root: as any other user the test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsc_config_flags_come_sorted_before_every_subcommand_with_the_id_expanded() {
    if skip_unless_root(
        "runsc_config_flags_come_sorted_before_every_subcommand_with_the_id_expanded",
    ) {
        return;
    }
    let env = TestEnv::new("flags").await;
    let logs = env.path("logs");
    // Written out of order on purpose.
    let config = env.write_runsc_toml(&format!(
        "[runsc_config]\nplatform = \"ptrace\"\nnetwork = \"none\"\n\
         debug-log = \"{}/%ID%/debug.log\"\ndebug = \"true\"\n",
        logs.display()
    ));
    let bundle = env
        .bundle("flags-c1")
        .annotation(CONTAINER_TYPE, "sandbox")
        .build();
    // containerd passes -debug when it runs with debug logging.
    let shim = env.start_shim_with(&bundle, &[], &["-debug"]).await;
    let id = shim.id().to_string();

    shim.create_ok("Create", &env, &bundle, &config).await;
    assert!(
        logs.join(&id).is_dir(),
        "the parent directory of debug-log ({}/<id>) is created",
        logs.display()
    );
    shim.ok("Start", shim.start().await);
    shim.ok("Kill (SIGKILL)", shim.kill(9, false).await);
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, 137);
    shim.ok("Delete", shim.delete().await);

    let debug_log = logs.join(&id).join("debug.log");
    let expected_flags = [
        "--debug=true".to_string(),
        format!("--debug-log={}", debug_log.display()),
        "--network=none".to_string(),
        "--platform=ptrace".to_string(),
    ];
    let global = env.global_flags(&bundle);
    let calls = env.calls();
    assert!(!calls.is_empty());
    for argv in &calls {
        assert!(
            argv.len() > global.len() + expected_flags.len(),
            "runsc {}",
            argv.join(" ")
        );
        assert_eq!(argv[..global.len()], global, "runsc {}", argv.join(" "));
        assert_eq!(
            argv[global.len()..global.len() + expected_flags.len()],
            expected_flags,
            "runsc_config flags, sorted, right after the shim's own: runsc {}",
            argv.join(" ")
        );
        let next = &argv[global.len() + expected_flags.len()];
        assert!(
            !next.starts_with('-'),
            "the sub-command follows the flags: runsc {}",
            argv.join(" ")
        );
    }
    let mut subcommands: Vec<&str> = calls.iter().filter_map(|c| subcommand(c)).collect();
    subcommands.sort_unstable();
    subcommands.dedup();
    for needed in ["create", "delete", "kill", "start", "wait"] {
        assert!(
            subcommands.contains(&needed),
            "{needed} ran with the flags: {subcommands:?}"
        );
    }

    shim.shutdown().await;
    env.assert_nothing_left().await;
}
