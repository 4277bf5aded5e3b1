//! Exec processes as containerd and CRI drive them (ExecSync, `kubectl exec`, `ctr task exec`):
//! the exact runsc command lines, stdio with and without a terminal, stdin EOF, Kill, a missing
//! binary, large output and argument lists, event order, and a client that re-attaches.
//!
//! fake-runsc runs an exec's process on the host, as runsc runs it in the sandbox.
//! Needs root: as any other user each test prints "skipped: needs root" and passes.

mod common;

use common::prelude::*;
use containerd_shim_protos::api::Status;
use containerd_shim_protos::events::task::{TaskExecAdded, TaskExecStarted};
use containerd_shim_protos::ttrpc::Code;

/// A started sandbox container that runs until killed.
async fn running_container(env: &TestEnv, name: &str) -> (Shim, Bundle) {
    let config = env.write_runsc_toml("");
    let bundle = env
        .bundle(name)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, name)
        .build();
    let shim = env.start_shim(&bundle).await;
    shim.create_ok("Create", env, &bundle, &config).await;
    shim.ok("Start", shim.start().await);
    (shim, bundle)
}

/// Kill, Wait, Delete of the container, Shutdown, and nothing left (no exec process either).
async fn end(env: &TestEnv, shim: Shim, bundle: &Bundle) {
    shim.kill_wait_delete("container").await;
    shim.shutdown().await;
    env.assert_nothing_left().await;
    let exec_files: Vec<_> = std::fs::read_dir(&bundle.path)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("x-"))
        .collect();
    assert!(exec_files.is_empty(), "exec files left: {exec_files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_without_a_terminal_runs_and_reports_its_exit_in_order() {
    if skip_unless_root("an_exec_without_a_terminal_runs_and_reports_its_exit_in_order") {
        return;
    }
    let env = TestEnv::new("exec-plain").await;
    let (shim, bundle) = running_container(&env, "exec-plain").await;
    let id = shim.id().to_string();
    let fifos = Fifos::make(&env, "x-1", false, true, true);
    let mut stdout = fifos.open_stdout();
    let mut stderr = fifos.open_stderr();
    let spec = process_spec(&["sh", "-c", "echo out; echo err >&2; exit 3"], false);
    shim.ok("Exec", shim.exec("x-1", spec, &fifos, false).await);
    let added: TaskExecAdded = env.event(TOPIC_EXEC_ADDED, &id).await;
    assert_eq!(added.exec_id, "x-1");
    let state = shim.ok("State (created exec)", shim.state_exec("x-1").await);
    assert_eq!(state.status.enum_value(), Ok(Status::CREATED));

    let started = shim.ok("Start (exec)", shim.start_exec("x-1").await);
    assert!(started.pid > 0);
    stdout.read_until("out\n").await;
    stderr.read_until("err\n").await;
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-1").await);
    assert_eq!(waited.exit_status, 3);
    let exit = env.exec_exit(&id, "x-1").await;
    assert_eq!((exit.exit_status, exit.pid), (3, started.pid));
    let ev: TaskExecStarted = env.event(TOPIC_EXEC_STARTED, &id).await;
    assert_eq!((ev.exec_id.as_str(), ev.pid), ("x-1", started.pid));
    let state = shim.ok("State (exited exec)", shim.state_exec("x-1").await);
    assert_eq!(state.status.enum_value(), Ok(Status::STOPPED));
    assert_eq!((state.exit_status, state.exec_id.as_str()), (3, "x-1"));
    let err = shim.kill_exec("x-1", 9).await.expect_err("Kill after exit");
    assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{err:?}");
    let deleted = shim.ok("Delete (exec)", shim.delete_exec("x-1").await);
    assert_eq!(deleted.exit_status, 3);
    let err = shim
        .state_exec("x-1")
        .await
        .expect_err("State after Delete");
    assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{err:?}");
    // The container goes on.
    let state = shim.ok("State (container)", shim.state().await);
    assert_eq!(state.status.enum_value(), Ok(Status::RUNNING));

    let b = bundle.path.display().to_string();
    let calls = env.calls();
    let exec_call = calls
        .iter()
        .find(|c| subcommand(c) == Some("exec"))
        .unwrap_or_else(|| panic!("no runsc exec:\n{}", env.show(&calls)));
    assert_eq!(
        exec_call,
        &env.argv(
            &bundle,
            &[
                "exec",
                "--process",
                &format!("{b}/x-1.process.json"),
                "--detach",
                "--pid-file",
                &format!("{b}/x-1.pid"),
                "--internal-pid-file",
                &format!("{b}/x-1-internal.pid"),
                &id,
            ]
        )
    );
    assert_eq!(
        &env.topics()[..5],
        [
            TOPIC_CREATE,
            TOPIC_START,
            TOPIC_EXEC_ADDED,
            TOPIC_EXEC_STARTED,
            TOPIC_EXIT
        ],
        "events, in order"
    );
    end(&env, shim, &bundle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_reaches_the_exec_and_close_io_ends_it() {
    if skip_unless_root("stdin_reaches_the_exec_and_close_io_ends_it") {
        return;
    }
    let env = TestEnv::new("exec-stdin").await;
    let (shim, bundle) = running_container(&env, "exec-stdin").await;
    let fifos = Fifos::make(&env, "x-cat", true, true, false);
    let mut stdout = fifos.open_stdout();
    let mut stdin = fifos.open_stdin();
    shim.ok(
        "Exec",
        shim.exec("x-cat", process_spec(&["cat"], false), &fifos, false)
            .await,
    );
    shim.ok("Start (exec)", shim.start_exec("x-cat").await);
    write_all(&mut stdin, b"hello\n").await;
    stdout.read_until("hello\n").await;
    // What containerd wrote just before CloseIO still arrives, then EOF.
    write_all(&mut stdin, b"last words\n").await;
    shim.ok("CloseIO", shim.close_stdin("x-cat").await);
    stdout.read_until("last words\n").await;
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-cat").await);
    assert_eq!(waited.exit_status, 0, "cat ends at EOF");
    shim.ok("Delete (exec)", shim.delete_exec("x-cat").await);
    end(&env, shim, &bundle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_signals_the_exec_by_its_internal_pid() {
    if skip_unless_root("kill_signals_the_exec_by_its_internal_pid") {
        return;
    }
    let env = TestEnv::new("exec-kill").await;
    let (shim, bundle) = running_container(&env, "exec-kill").await;
    let fifos = Fifos::default();
    shim.ok(
        "Exec",
        shim.exec(
            "x-sleep",
            process_spec(&["sleep", "300"], false),
            &fifos,
            false,
        )
        .await,
    );
    let err = shim
        .kill_exec("x-sleep", 9)
        .await
        .expect_err("Kill before Start");
    assert_eq!(error_code(&err), Some(Code::NOT_FOUND), "{err:?}");
    shim.ok("Start (exec)", shim.start_exec("x-sleep").await);
    let err = shim
        .start_exec("x-sleep")
        .await
        .expect_err("a second Start");
    assert_eq!(error_code(&err), Some(Code::FAILED_PRECONDITION), "{err:?}");
    let state = shim.ok("State (exec)", shim.state_exec("x-sleep").await);
    assert_eq!(state.status.enum_value(), Ok(Status::RUNNING));
    let err = shim
        .delete_exec("x-sleep")
        .await
        .expect_err("Delete of a running exec");
    assert_eq!(error_code(&err), Some(Code::FAILED_PRECONDITION), "{err:?}");
    let internal = std::fs::read_to_string(bundle.path.join("x-sleep-internal.pid")).unwrap();
    shim.ok("Kill (exec)", shim.kill_exec("x-sleep", 9).await);
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-sleep").await);
    assert_eq!(waited.exit_status, 137);
    let calls = env.calls();
    assert!(
        calls.contains(&env.argv(&bundle, &["kill", "--pid", internal.trim(), shim.id(), "9"])),
        "kill by the internal pid:\n{}",
        env.show(&calls)
    );
    shim.ok("Delete (exec)", shim.delete_exec("x-sleep").await);
    end(&env, shim, &bundle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_whose_binary_is_missing_fails_at_start_and_leaves_nothing() {
    if skip_unless_root("an_exec_whose_binary_is_missing_fails_at_start_and_leaves_nothing") {
        return;
    }
    let env = TestEnv::new("exec-missing").await;
    let (shim, bundle) = running_container(&env, "exec-missing").await;
    let fifos = Fifos::make(&env, "x-missing", false, true, false);
    let _stdout = fifos.open_stdout();
    shim.ok(
        "Exec",
        shim.exec(
            "x-missing",
            process_spec(&["/no/such/binary", "arg"], false),
            &fifos,
            false,
        )
        .await,
    );
    let err = shim
        .start_exec("x-missing")
        .await
        .expect_err("Start of a missing binary");
    let message = error_message(&err);
    assert!(
        message.contains("/no/such/binary") && message.contains("no such file or directory"),
        "{message}"
    );
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-missing").await);
    assert_eq!(waited.exit_status, 128);
    shim.ok("Delete (exec)", shim.delete_exec("x-missing").await);
    assert!(
        !env.topics().iter().any(|t| t == TOPIC_EXEC_STARTED),
        "no TaskExecStarted: {:?}",
        env.topics()
    );
    // Bad requests are refused at Exec, naming the field.
    let err = shim
        .exec("x-empty", process_spec(&[], false), &fifos, false)
        .await
        .expect_err("Exec without args");
    assert!(error_message(&err).contains("spec.args"), "{err:?}");
    let err = shim
        .exec("-bad", process_spec(&["true"], false), &fifos, false)
        .await
        .expect_err("a bad exec id");
    assert_eq!(error_code(&err), Some(Code::INVALID_ARGUMENT), "{err:?}");
    end(&env, shim, &bundle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_output_and_large_argument_lists_work() {
    if skip_unless_root("large_output_and_large_argument_lists_work") {
        return;
    }
    let env = TestEnv::new("exec-large").await;
    let (shim, bundle) = running_container(&env, "exec-large").await;
    const SIZE: usize = 4 << 20;
    let fifos = Fifos::make(&env, "x-big", false, true, false);
    let mut stdout = fifos.open_stdout();
    let script = format!("head -c {SIZE} /dev/zero | tr '\\0' a");
    shim.ok(
        "Exec (large output)",
        shim.exec(
            "x-big",
            process_spec(&["sh", "-c", &script], false),
            &fifos,
            false,
        )
        .await,
    );
    shim.ok("Start (exec)", shim.start_exec("x-big").await);
    let out = stdout.read_bytes(SIZE).await;
    assert_eq!(out.len(), SIZE);
    assert!(out.iter().all(|&b| b == b'a'));
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-big").await);
    assert_eq!(waited.exit_status, 0);
    shim.ok("Delete (exec)", shim.delete_exec("x-big").await);

    let fifos = Fifos::make(&env, "x-args", false, true, false);
    let mut stdout = fifos.open_stdout();
    let many: Vec<String> = (0..20_000).map(|i| format!("argument-{i}")).collect();
    let mut args = vec!["sh", "-c", "echo \"$# ${20000}\"", "sh"];
    args.extend(many.iter().map(String::as_str));
    shim.ok(
        "Exec (20000 arguments)",
        shim.exec("x-args", process_spec(&args, false), &fifos, false)
            .await,
    );
    shim.ok("Start (exec)", shim.start_exec("x-args").await);
    stdout.read_until("20000 argument-19999\n").await;
    shim.ok("Wait (exec)", shim.wait_exec("x-args").await);
    shim.ok("Delete (exec)", shim.delete_exec("x-args").await);
    end(&env, shim, &bundle).await;
}

/// `ctr task attach` / containerd's task.Attach: a client that goes away and opens the fifos
/// again gets the output from then on and can still write stdin. The shim keeps both fifos open,
/// so neither a reader nor a writer leaving ends the process' stdio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_attaches_again_reads_output_and_writes_stdin() {
    if skip_unless_root("a_client_that_attaches_again_reads_output_and_writes_stdin") {
        return;
    }
    let env = TestEnv::new("exec-attach").await;
    let (shim, bundle) = running_container(&env, "exec-attach").await;
    let fifos = Fifos::make(&env, "x-echo", true, true, false);
    let script = "while read l; do echo \"echo:$l\"; done; echo bye";
    {
        let mut stdout = fifos.open_stdout();
        let mut stdin = fifos.open_stdin();
        shim.ok(
            "Exec",
            shim.exec(
                "x-echo",
                process_spec(&["sh", "-c", script], false),
                &fifos,
                false,
            )
            .await,
        );
        shim.ok("Start (exec)", shim.start_exec("x-echo").await);
        write_all(&mut stdin, b"one\n").await;
        stdout.read_until("echo:one\n").await;
    }
    // The first client has gone; the process lives on.
    let state = shim.ok("State (exec)", shim.state_exec("x-echo").await);
    assert_eq!(state.status.enum_value(), Ok(Status::RUNNING));
    let mut stdout = fifos.open_stdout();
    let mut stdin = fifos.open_stdin();
    write_all(&mut stdin, b"two\n").await;
    stdout.read_until("echo:two\n").await;
    shim.ok("CloseIO", shim.close_stdin("x-echo").await);
    stdout.read_until("bye\n").await;
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-echo").await);
    assert_eq!(waited.exit_status, 0);
    shim.ok("Delete (exec)", shim.delete_exec("x-echo").await);
    end(&env, shim, &bundle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_with_a_terminal_gets_a_pty_its_size_and_eof() {
    if skip_unless_root("an_exec_with_a_terminal_gets_a_pty_its_size_and_eof") {
        return;
    }
    let env = TestEnv::new("exec-tty").await;
    let (shim, bundle) = running_container(&env, "exec-tty").await;
    let fifos = Fifos::make(&env, "x-tty", true, true, false);
    let mut stdout = fifos.open_stdout();
    let mut stdin = fifos.open_stdin();
    let script = "read x; stty size; [ -t 0 ] && echo tty:yes; echo got:$x; cat; echo eof";
    shim.ok(
        "Exec (terminal)",
        shim.exec(
            "x-tty",
            process_spec(&["sh", "-c", script], true),
            &fifos,
            true,
        )
        .await,
    );
    shim.ok("Start (exec)", shim.start_exec("x-tty").await);
    shim.ok("ResizePty", shim.resize_pty("x-tty", 100, 30).await);
    write_all(&mut stdin, b"go\n").await;
    let out = stdout.read_until("got:go").await;
    assert!(out.contains("30 100"), "stty size after ResizePty: {out:?}");
    assert!(out.contains("tty:yes"), "stdin is a terminal: {out:?}");
    // CloseIO on a terminal: VEOF, so cat sees end of input.
    shim.ok("CloseIO", shim.close_stdin("x-tty").await);
    stdout.read_until("eof").await;
    let waited = shim.ok("Wait (exec)", shim.wait_exec("x-tty").await);
    assert_eq!(waited.exit_status, 0);
    let calls = env.calls();
    let exec_call = calls
        .iter()
        .find(|c| subcommand(c) == Some("exec"))
        .expect("runsc exec");
    assert!(
        exec_call.iter().any(|a| a == "--console-socket"),
        "{exec_call:?}"
    );
    let err = shim.resize_pty("", 80, 24).await.expect_err("no terminal");
    assert_eq!(error_code(&err), Some(Code::FAILED_PRECONDITION), "{err:?}");
    shim.ok("Delete (exec)", shim.delete_exec("x-tty").await);
    end(&env, shim, &bundle).await;
}

/// A container whose init has a terminal (`terminal: true` at Create, as `kubectl run -it` and
/// `ctr run -t` ask): runsc gets `--console-socket`, the pty's output reaches the stdout fifo,
/// ResizePty sets its size. A sandbox's terminal comes at create, a joining container's at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_a_terminal_gets_its_pty_at_create_or_start() {
    if skip_unless_root("a_container_with_a_terminal_gets_its_pty_at_create_or_start") {
        return;
    }
    let env = TestEnv::new("init-tty").await;
    let config = env.write_runsc_toml("");
    let sandbox = env
        .bundle("init-tty-sb")
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, "init-tty-sb")
        .annotation(KNOB_STDOUT, "hello from the sandbox's tty\n")
        .with_stdout()
        .build();
    let app = env
        .bundle("init-tty-app")
        .annotation(CONTAINER_TYPE, "container")
        .annotation(SANDBOX_ID, "init-tty-sb")
        .annotation(KNOB_STDOUT, "hello from the container's tty\n")
        .with_stdout()
        .build();
    let mut sandbox_out = sandbox.open_stdout();
    let mut app_out = app.open_stdout();
    let sandbox_shim = env.start_shim(&sandbox).await;
    let app_shim = env.start_shim(&app).await;
    let mut req = sandbox.create_request(Some(env.options(&config)));
    req.terminal = true;
    sandbox_shim.ok("Create (sandbox, tty)", sandbox_shim.create(req).await);
    sandbox_out.read_until("hello from the sandbox's tty").await;
    sandbox_shim.ok(
        "ResizePty (sandbox)",
        sandbox_shim.resize_pty("", 120, 40).await,
    );
    sandbox_shim.ok("Start (sandbox)", sandbox_shim.start().await);

    let mut req = app.create_request(Some(env.options(&config)));
    req.terminal = true;
    app_shim.ok("Create (container, tty)", app_shim.create(req).await);
    let err = app_shim
        .resize_pty("", 80, 24)
        .await
        .expect_err("ResizePty before the terminal came");
    assert_eq!(error_code(&err), Some(Code::FAILED_PRECONDITION), "{err:?}");
    app_shim.ok("Start (container)", app_shim.start().await);
    app_out.read_until("hello from the container's tty").await;
    app_shim.ok(
        "ResizePty (container)",
        app_shim.resize_pty("", 80, 24).await,
    );
    let state = app_shim.ok("State (container)", app_shim.state().await);
    assert!(state.terminal);

    let calls = env.calls();
    for bundle in [&sandbox, &app] {
        let create = calls
            .iter()
            .find(|c| subcommand(c) == Some("create") && c.last() == Some(&bundle.id))
            .expect("runsc create");
        assert!(create.iter().any(|a| a == "--console-socket"), "{create:?}");
    }
    app_shim.kill_wait_delete("container").await;
    sandbox_shim.kill_wait_delete("sandbox").await;
    app_shim.shutdown().await;
    sandbox_shim.shutdown().await;
    env.assert_nothing_left().await;
}
