//! The harness checks itself: `assert_nothing_left` must see a leftover mount (also at a path
//! with a space, escaped in mountinfo), runsc state and a process, or the other tests' "nothing
//! left behind" would prove nothing.
//!
//! Needs root: as any other user the test prints "skipped: needs root" and passes.

mod common;

use std::fs;
use std::process::Stdio;

use common::prelude::*;
use nix::mount::{mount, umount, MsFlags};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_seen() {
    if skip_unless_root("leftovers_are_seen") {
        return;
    }
    let env = TestEnv::new("harness").await;
    assert_eq!(env.leftovers(), Vec::<String>::new());

    let source = env.path("source");
    let target = env.path("mount point with space");
    fs::create_dir_all(&source).unwrap();
    fs::create_dir_all(&target).unwrap();
    mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount");
    let left = env.leftovers();
    assert!(
        left.iter().any(|l| l.contains("mount point with space")),
        "{left:?}"
    );
    umount(&target).unwrap();

    // A running container in fake-runsc's state, and a `runsc wait` on it.
    fs::create_dir_all(&env.runsc_state).unwrap();
    let state = env.runsc_state.join(state_file_name("c1", "c1"));
    fs::write(
        &state,
        r#"{"id":"c1","status":"running","pid":1073741824,"annotations":{}}"#,
    )
    .unwrap();
    let mut waiter = tokio::process::Command::new(fake_runsc())
        .arg(format!("--root={}", env.runsc_state.display()))
        .args(["wait", "c1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("running fake-runsc wait");
    let left = env.leftovers();
    assert!(
        left.iter().any(|l| l.contains("c1_sandbox:c1.state")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .any(|l| l.contains("still runs") && l.contains("wait c1")),
        "{left:?}"
    );

    // `runsc kill` stops it; the wait returns; nothing is left once the state is deleted.
    let status = tokio::process::Command::new(fake_runsc())
        .arg(format!("--root={}", env.runsc_state.display()))
        .args(["kill", "c1", "9"])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let waited = tokio::time::timeout(TIMEOUT, waiter.wait())
        .await
        .expect("fake-runsc wait returns once the container is killed")
        .unwrap();
    assert!(waited.success());
    fs::remove_file(&state).unwrap();
    env.assert_nothing_left().await;
}
