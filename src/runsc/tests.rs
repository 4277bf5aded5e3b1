use super::*;
use crate::error::RunscFailure;
use crate::runsc::version::RunscVersion;

fn flags(extra: &[(&str, &str)]) -> GlobalFlags {
    GlobalFlags::new(
        "/run/containerd/runsc/k8s.io",
        Path::new("/b"),
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn global_flags_come_first_in_a_stable_order() {
    let f = flags(&[
        ("platform", "ptrace"),
        ("debug", "true"),
        ("systemd-cgroup", "true"),
    ]);
    assert_eq!(
        f.to_args(),
        vec![
            "--root=/run/containerd/runsc/k8s.io",
            "--log=/b/log.json",
            "--log-format=json",
            "--debug=true",
            "--platform=ptrace",
            "--systemd-cgroup=true",
        ]
    );
    let r = Runsc::new("runsc".into(), f, Arc::new(TokioExecutor));
    let args = r.args(&["start", "abc"]);
    assert_eq!(&args[args.len() - 2..], &["start", "abc"]);
}

#[test]
fn id_is_substituted_in_path_flags_only() {
    let dir = tempfile::tempdir().unwrap();
    let debug_log = dir.path().join("logs/%ID%/debug.log");
    let mut f = flags(&[
        ("debug-log", debug_log.to_str().unwrap()),
        ("platform", "%ID%"),
    ]);
    let old = RunscVersion::parse("0.0~20240729.0").unwrap();
    f.substitute_id("c1", Some(&old)).unwrap();
    assert_eq!(
        f.extra["debug-log"],
        dir.path().join("logs/c1/debug.log").to_str().unwrap()
    );
    assert_eq!(f.extra["platform"], "%ID%");
    assert!(dir.path().join("logs/c1").is_dir());

    // Not knowing the runsc: as for the older releases.
    let mut f = flags(&[("debug-log", debug_log.to_str().unwrap())]);
    f.substitute_id("c2", None).unwrap();
    assert!(f.extra["debug-log"].contains("/logs/c2/"));
}

#[test]
fn a_runsc_that_expands_ids_itself_gets_the_flags_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("logs/%ID%/%CID%.log");
    let pattern = pattern.to_str().unwrap();
    for text in ["release-20260309.0", "release-20260905.0"] {
        let mut f = flags(&[("debug-log", pattern)]);
        let v = RunscVersion::parse(text).unwrap();
        f.substitute_id("c1", Some(&v)).unwrap();
        assert_eq!(f.extra["debug-log"], pattern, "{text}");
    }
    let undated = RunscVersion::unknown("VERSION_MISSING").answering_features();
    let mut f = flags(&[("debug-log", pattern)]);
    f.substitute_id("c1", Some(&undated)).unwrap();
    assert_eq!(f.extra["debug-log"], pattern);
    assert!(
        !dir.path().join("logs").exists(),
        "runsc makes its directories"
    );
}

#[test]
fn gone_is_what_runsc_itself_says() {
    assert!(says_gone("sandbox is not running"));
    assert!(says_gone("container \"x\" does not exist"));
    assert!(!says_gone("permission denied"));
    assert!(is_gone(&Error::runsc("kill", RunscFailure::Gone, "x")));
    assert!(is_gone(&Error::NotFound("c1".into())));
    for kind in [
        RunscFailure::BinaryUnavailable,
        RunscFailure::TimedOut,
        RunscFailure::Failed,
    ] {
        // Whatever the words: only the kind counts.
        assert!(
            !is_gone(&Error::runsc("kill", kind, "container not found")),
            "{kind:?}"
        );
    }
}

fn kind_of(err: &Error) -> RunscFailure {
    match err {
        Error::Runsc { kind, .. } => *kind,
        other => panic!("not a runsc failure: {other:?}"),
    }
}

/// A missing or unexecutable runsc binary says nothing of the container: never "gone", so
/// Delete and Kill do not forget a sandbox that still runs.
#[tokio::test]
async fn a_runsc_that_cannot_run_is_never_gone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-runsc");
    let not_executable = dir.path().join("runsc-0644");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let garbage = dir.path().join("runsc-garbage");
    std::fs::write(&garbage, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
    for binary in [missing, not_executable, garbage] {
        let r = Runsc::new(binary.clone(), flags(&[]), Arc::new(TokioExecutor));
        let err = r.state("c1").await.unwrap_err();
        assert_eq!(
            kind_of(&err),
            RunscFailure::BinaryUnavailable,
            "{binary:?}: {err}"
        );
        assert!(!is_gone(&err), "{binary:?}: {err}");
        assert!(err.to_string().contains(binary.to_str().unwrap()), "{err}");
    }
}

/// What runsc says when it ran decides: its own "does not exist" is gone, anything else a failure.
#[tokio::test]
async fn a_runsc_that_ran_is_classified_by_what_it_said() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let gone = script(
        "runsc-gone",
        "echo 'container \"c1\" does not exist' >&2; exit 1",
    );
    let failed = script("runsc-failed", "echo 'permission denied' >&2; exit 1");
    let unreadable = script("runsc-unreadable", "echo 'not json'");
    for (binary, want) in [
        (gone, RunscFailure::Gone),
        (failed, RunscFailure::Failed),
        (unreadable, RunscFailure::Failed),
    ] {
        let r = Runsc::new(binary.clone(), flags(&[]), Arc::new(TokioExecutor));
        // Another test thread forking while a script was open for writing makes exec fail with
        // ETXTBSY for a moment; that is the test's race.
        let mut err = r.state("c1").await.unwrap_err();
        for _ in 0..20 {
            if !err.to_string().contains("busy") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            err = r.state("c1").await.unwrap_err();
        }
        assert_eq!(kind_of(&err), want, "{binary:?}: {err}");
    }
}

/// runsc create leaves the sandbox running with runsc's stdio: the call must return when
/// runsc exits, not when the sandbox does (it once waited on a stderr pipe the sandbox held).
#[tokio::test]
async fn create_returns_while_its_children_hold_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("runsc");
    let child_pid = dir.path().join("child.pid");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 60 &\necho $! > {}\nexit 0\n",
            child_pid.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Runsc::new(
        script,
        GlobalFlags::new(dir.path().join("root"), dir.path(), BTreeMap::new()),
        Arc::new(TokioExecutor),
    );
    let opts = CreateOpts {
        bundle: dir.path(),
        pid_file: &dir.path().join("init.pid"),
        console_socket: None,
        user_log: None,
    };
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        r.create("c", &opts, ProcessIo::default()),
    )
    .await;
    if let Ok(pid) = std::fs::read_to_string(&child_pid) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    done.expect("create waited for the sandbox's stdio")
        .unwrap();
}

#[tokio::test]
async fn a_missing_binary_says_what_to_do() {
    let r = Runsc::new(
        "/nonexistent/runsc".into(),
        flags(&[]),
        Arc::new(TokioExecutor),
    );
    let err = r.state("x").await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/runsc"), "{err}");
    assert!(err.contains("binary_name"), "{err}");
}

#[tokio::test]
async fn a_failed_call_reports_the_error_logged_during_that_call() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path();
    std::fs::write(
        bundle.join("log.json"),
        "{\"level\":\"error\",\"msg\":\"stale error\"}\n",
    )
    .unwrap();
    // A stand-in runsc that logs an error the way runsc does, then fails.
    let script = bundle.join("runsc");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor a; do case $a in --log=*) log=${a#--log=};; esac; done\n\
         echo '{\"level\":\"info\",\"msg\":\"starting\"}' >> \"$log\"\n\
         echo '{\"level\":\"error\",\"msg\":\"creating container: boom\"}' >> \"$log\"\n\
         echo '{\"level\":\"info\",\"msg\":\"exiting\"}' >> \"$log\"\n\
         exit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Runsc::new(
        script,
        GlobalFlags::new(bundle.join("root"), bundle, BTreeMap::new()),
        Arc::new(TokioExecutor),
    );
    let err = r.kill("x", 9, true).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "runsc kill failed: creating container: boom"
    );
}

#[tokio::test]
async fn a_hung_call_fails_naming_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("runsc");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Runsc::new(
        script,
        GlobalFlags::new(dir.path().join("root"), dir.path(), BTreeMap::new()),
        Arc::new(TokioExecutor),
    )
    .with_call_limit(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = r.kill("c1", 9, false).await.unwrap_err().to_string();
    assert!(err.starts_with("runsc kill failed: "), "{err}");
    assert!(err.contains("did not finish within"), "{err}");
    let err = r.state("c1").await.unwrap_err().to_string();
    assert!(err.starts_with("runsc state failed: "), "{err}");
    let opts = CreateOpts {
        bundle: dir.path(),
        pid_file: &dir.path().join("init.pid"),
        console_socket: None,
        user_log: None,
    };
    let err = r
        .create("c1", &opts, ProcessIo::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("runsc create failed: "), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn state_files_name_the_containers_as_runsc_list_does() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "web_sandbox:web.state",
        "web_sandbox:web.lock",
        "web-sidecar_sandbox:web.state",
        "db_sandbox:db.state",
        "notes.txt",
        "_sandbox:x.state",
    ] {
        std::fs::write(dir.path().join(name), "{}").unwrap();
    }
    assert_eq!(
        list_state_files(dir.path()).unwrap(),
        ["db", "web", "web-sidecar"]
    );
    assert!(list_state_files(&dir.path().join("absent"))
        .unwrap()
        .is_empty());
}

/// Once runsc deleted a container, no command of it runs again, not even one that waited for the
/// delete: each would write runsc's log into a bundle containerd is removing. A delete that
/// failed for another reason leaves the container to later commands.
#[tokio::test]
async fn nothing_runs_for_a_container_after_runsc_deleted_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let refuse = dir.path().join("refuse-delete");
    let script = dir.path().join("runsc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a; do last=$a; done\necho \"$*\" >> {calls}\n\
             case \"$*\" in *' delete '*) [ -e {refuse} ] && {{ echo 'permission denied' >&2; \
             exit 1; }}; exit 0;; esac\n\
             echo '{{\"id\":\"'$last'\",\"pid\":1,\"status\":\"running\"}}'\n",
            calls = calls.display(),
            refuse = refuse.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Runsc::new(script, flags(&[]), Arc::new(TokioExecutor));
    let count = || {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .count()
    };
    // The script was just written: another test thread's fork may hold it open for a moment.
    let mut first = r.state("c1").await;
    for _ in 0..20 {
        if first.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        first = r.state("c1").await;
    }
    first.unwrap();

    std::fs::write(&refuse, b"").unwrap();
    let err = r.delete("c1", false).await.unwrap_err();
    assert_eq!(kind_of(&err), RunscFailure::Failed, "{err}");
    r.state("c1")
        .await
        .expect("a failed delete leaves the container");

    std::fs::remove_file(&refuse).unwrap();
    r.delete("c1", false).await.unwrap();
    let ran = count();
    let clone = r.clone();
    for err in [
        r.state("c1").await.unwrap_err(),
        clone.kill("c1", 9, true).await.unwrap_err(),
    ] {
        assert!(is_gone(&err), "{err}");
    }
    assert_eq!(count(), ran, "runsc ran after it deleted the container");
    // A second delete runs (it is how Delete finds the container gone) and says so.
    r.delete("c1", false).await.unwrap();
}
