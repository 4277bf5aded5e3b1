//! Pause and Resume in process, as any user: `runsc pause`/`runsc resume` with TaskPaused and
//! TaskResumed in order, State saying paused, the no-ops and refusals runc's shim has, and a
//! paused container still killed and deleted with nothing left.

mod common;

use common::prelude::*;
use containerd_shim_protos::events::task::{TaskPaused, TaskResumed};
use runsc_guard::shim::process::Status;
use runsc_guard::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_freeze_and_thaw_with_their_events_in_order() {
    let env = PodEnv::new("ppause");
    let config = env.write_runsc_toml("");
    let bundle = env.bundle("ppause-c1").build();
    let id = bundle.id.clone();
    env.create_ok("Create", &bundle, &config).await;

    let early = env.pod.pause(&id).await;
    assert!(
        matches!(&early, Err(Error::FailedPrecondition(m)) if m.contains("is created: only a running container can be paused")),
        "Pause before Start: {early:?}"
    );
    let early = env.pod.resume(&id).await;
    assert!(
        matches!(&early, Err(Error::FailedPrecondition(m)) if m.contains("is created: only a paused container can be resumed")),
        "Resume before Start: {early:?}"
    );

    env.ok("Start", env.pod.start(&init(&id)).await);
    env.ok("Resume (running: a no-op)", env.pod.resume(&id).await);
    env.ok("Pause", env.pod.pause(&id).await);
    let ev: TaskPaused = env.event(TOPIC_PAUSED, &id).await;
    assert_eq!(ev.container_id, id);
    let state = env.ok("State (paused)", env.pod.state(&init(&id)).await);
    assert_eq!(state.status, Status::Paused, "runsc state says paused");
    env.ok("Pause again (a no-op)", env.pod.pause(&id).await);

    env.ok("Resume", env.pod.resume(&id).await);
    let ev: TaskResumed = env.event(TOPIC_RESUMED, &id).await;
    assert_eq!(ev.container_id, id);
    let state = env.ok("State (resumed)", env.pod.state(&init(&id)).await);
    assert_eq!(state.status, Status::Running);

    env.kill_wait_delete(&id).await;
    let missing = env.pod.pause(&id).await;
    assert!(
        matches!(missing, Err(Error::NotFound(_))),
        "Pause after Delete: {missing:?}"
    );
    env.assert_nothing_left().await;
    assert_eq!(
        env.topics(),
        [
            TOPIC_CREATE,
            TOPIC_START,
            TOPIC_PAUSED,
            TOPIC_RESUMED,
            TOPIC_EXIT,
            TOPIC_DELETE
        ],
        "one TaskPaused and one TaskResumed, in order: the no-ops send nothing"
    );
    let calls = env.calls();
    let (others, _) = split_waits(&calls);
    let subs: Vec<&str> = others.iter().filter_map(|c| subcommand(c)).collect();
    assert_eq!(
        subs,
        ["create", "start", "pause", "state", "resume", "state", "kill", "kill", "delete"],
        "{}",
        env.show(&others)
    );
    assert_eq!(
        others[2],
        env.argv(&bundle, &["pause", &id]),
        "the exact pause command line"
    );
    assert_eq!(others[4], env.argv(&bundle, &["resume", &id]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_container_is_killed_and_deleted_and_a_failed_pause_changes_nothing() {
    let env = PodEnv::new("ppausekill");
    let config = env.write_runsc_toml("");
    let failing = env
        .bundle("ppausekill-f")
        .annotation(KNOB_FAIL, "pause")
        .build();
    env.create_ok("Create (failing)", &failing, &config).await;
    env.ok("Start (failing)", env.pod.start(&init(&failing.id)).await);
    let err = env.pod.pause(&failing.id).await;
    assert!(
        matches!(&err, Err(Error::Runsc { command, .. }) if command == "pause"),
        "runsc pause failed: {err:?}"
    );
    let state = env.ok("State", env.pod.state(&init(&failing.id)).await);
    assert_eq!(
        state.status,
        Status::Running,
        "a failed pause changes nothing"
    );
    env.kill_wait_delete(&failing.id).await;

    let bundle = env.bundle("ppausekill-c").build();
    let id = bundle.id.clone();
    env.create_ok("Create", &bundle, &config).await;
    env.ok("Start", env.pod.start(&init(&id)).await);
    env.ok("Pause", env.pod.pause(&id).await);
    // runsc signals only running or stopped containers: a SIGKILL thaws it first.
    env.kill_wait_delete(&id).await;

    let paused = env.bundle("ppausekill-d").build();
    env.create_ok("Create (deleted paused)", &paused, &config)
        .await;
    env.ok(
        "Start (deleted paused)",
        env.pod.start(&init(&paused.id)).await,
    );
    env.ok("Pause (deleted paused)", env.pod.pause(&paused.id).await);
    let (_, exit) = env.ok(
        "Delete of a paused container",
        env.pod.delete(&init(&paused.id)).await,
    );
    assert_eq!(exit.status, 137, "Delete kills what still runs");
    env.assert_nothing_left().await;
    let exit_of = |id: &str| -> u32 {
        env.events()
            .iter()
            .filter(|e| e.topic == TOPIC_EXIT)
            .map(|e| e.decode::<containerd_shim_protos::events::task::TaskExit>())
            .find(|e| e.container_id == id)
            .map(|e| e.exit_status)
            .unwrap_or_else(|| panic!("no TaskExit for {id}"))
    };
    assert_eq!(exit_of(&id), 137);
    assert_eq!(exit_of(&paused.id), 137);
}
