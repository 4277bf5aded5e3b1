//! runsc's state files of a pod, through the pod as the daemon builds it, against fake-runsc:
//! a `runsc delete` runs alone among the pod's runsc commands, and a lock file runsc leaves
//! beside a deleted container's state (a command racing the delete recreates it) is removed.

mod common;

use std::time::Duration;

use common::prelude::*;
use fake_runsc::{KNOB_HANG, KNOB_HANG_MS};

/// A sandbox and a container joining it, both started; the container's `runsc delete` takes
/// `delete_ms`.
async fn pod_of_two(env: &PodEnv, name: &str, delete_ms: u64) -> (Bundle, Bundle) {
    let config = env.write_runsc_toml("");
    let sandbox_id = format!("{name}-sandbox");
    let sandbox = env
        .bundle(&sandbox_id)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, sandbox_id.clone())
        .build();
    let app = env
        .bundle(&format!("{name}-app"))
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, sandbox_id.clone())
        .annotation(KNOB_HANG, "delete")
        .annotation(KNOB_HANG_MS, delete_ms.to_string())
        .build();
    for b in [&sandbox, &app] {
        env.create_ok("Create", b, &config).await;
        env.ok("Start", env.pod.start(&init(&b.id)).await);
    }
    (sandbox, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_runs_alone_among_the_pods_runsc_commands() {
    let env = PodEnv::new("psfalone");
    let (sandbox, app) = pod_of_two(&env, "psfalone", 3000).await;
    env.ok("Kill", env.pod.kill(&init(&app.id), 9, false).await);
    env.ok("Wait", env.pod.wait(&init(&app.id)).await);

    let app_init = init(&app.id);
    let delete = env.pod.delete(&app_init);
    tokio::pin!(delete);
    // Once runsc is deleting the container (fake-runsc records a call as it begins)...
    let deleting = |c: &Vec<String>| subcommand(c) == Some("delete") && c.last() == Some(&app.id);
    while !env.calls().iter().any(deleting) {
        tokio::select! {
            r = &mut delete => panic!("Delete returned before runsc deleted: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    // ... a runsc command about another container of the pod waits for it.
    let pids = env.pod.pids(&sandbox.id);
    tokio::pin!(pids);
    tokio::select! {
        r = &mut pids => panic!(
            "`runsc ps` of the sandbox ran while `runsc delete` of a container of its pod ran \
             ({r:?}):\n{}",
            env.show(&env.calls())
        ),
        r = &mut delete => panic!("Delete returned within 300 ms of a 3 s runsc delete: {r:?}"),
        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    let (deleted, listed) = tokio::join!(delete, pids);
    env.ok("Delete (container)", deleted);
    env.ok("Pids (sandbox)", listed);

    let calls = env.calls();
    let order: Vec<_> = calls
        .iter()
        .filter_map(|c| match subcommand(c) {
            Some(s @ ("delete" | "ps")) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["delete", "ps"], "{}", env.show(&calls));
    env.kill_wait_delete(&sandbox.id).await;
    env.assert_nothing_left().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_file_runsc_recreates_during_a_delete_goes_with_the_container() {
    let env = PodEnv::new("psflock");
    let (sandbox, app) = pod_of_two(&env, "psflock", 500).await;
    // As runsc leaves it: a command that found the state file just before the delete removed it
    // opens `<container>_sandbox:<sandbox>.lock` with O_CREAT.
    let lock = env
        .runsc_state
        .join(format!("{}_sandbox:{}.lock", app.id, sandbox.id));
    std::fs::write(&lock, b"").unwrap();
    // Another container's lock file, whose state is still there, stays.
    let sandbox_lock = env
        .runsc_state
        .join(format!("{}_sandbox:{}.lock", sandbox.id, sandbox.id));
    std::fs::write(&sandbox_lock, b"").unwrap();

    env.kill_wait_delete(&app.id).await;
    assert!(!lock.exists(), "{} is left behind", lock.display());
    assert!(
        sandbox_lock.exists(),
        "the running sandbox's lock file was removed"
    );

    env.kill_wait_delete(&sandbox.id).await;
    env.assert_nothing_left().await;
}
