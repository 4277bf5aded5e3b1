//! The pod-complete scenarios on one running busybox container: ExecSync, the streaming Exec
//! (with a tty and a resize, and without a tty reading stdin) and Attach, each through CRI as
//! kubelet and kubectl use it. The multi-container ones are in `multi.rs`.

use anyhow::Result;
use k8s_cri::v1::{AttachRequest, ExecRequest};

use super::observe::{node_health, observe_processes, shim_socket_paths};
use super::setup::{self, StartCall};
use super::{cleanup, multi, Ctx, Run};
use crate::report::ExchangeRecord;
use crate::scenarios::{PodComplete, Scenario, RESIZE_TO, STTY_SIZE_SAYS};
use crate::stream::{self, Step};

pub(super) async fn pod_complete_body(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    pc: PodComplete,
) -> Result<()> {
    match pc {
        PodComplete::ExecSync | PodComplete::ExecStream | PodComplete::Attach => {
            one_container_body(ctx, sc, run, pc).await
        }
        PodComplete::TwoContainerOom => multi::oom_body(ctx, sc, run).await,
        PodComplete::Grouping => multi::grouping_body(ctx, sc, run).await,
    }
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The attach container echoes every line of its stdin.
const ATTACH_SCRIPT: &str = "echo attach-ready; while read l; do echo \"echo:$l\"; done";

async fn one_container_body(ctx: &Ctx, sc: &Scenario, run: &Run, pc: PodComplete) -> Result<()> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let sandbox = setup::run_sandbox(ctx, sc, run, &pod).await?;
    let attach = pc == PodComplete::Attach;
    let command = if attach {
        argv(&["/bin/sh", "-c", ATTACH_SCRIPT])
    } else {
        argv(&["/bin/sleep", "3600"])
    };
    let id = setup::create_with(ctx, run, &pod, &sandbox, "busybox", command, |c| {
        c.stdin = attach;
    })
    .await?;
    let mut start = StartCall::send(ctx, sc, &id);
    setup::wait_running(ctx, sc, run, &mut start, &pod, &sandbox, &id).await?;
    observe_processes(ctx, run, &sandbox.id, &id, &pod.slice.path);
    let records = match pc {
        PodComplete::ExecSync => exec_sync(ctx, run, &id).await,
        PodComplete::ExecStream => exec_stream(ctx, run, &id).await,
        _ => vec![attach_once(ctx, run, &id).await],
    };
    for r in &records {
        run.step(format!(
            "{} {}: exit {:?}, stdout {:?}, stderr {:?}, error {:?}",
            r.via, r.name, r.exit_code, r.stdout, r.stderr, r.error
        ));
    }
    run.ev(|e| e.exchanges.extend(records));
    let sockets = shim_socket_paths(run);
    start.finish(run).await;
    cleanup::stop_pod(ctx, run, &sandbox.id).await;
    let ids = vec![sandbox.id, id];
    cleanup::settle_leftovers(ctx, run, &ids, &pod.uid, &sockets, None).await;
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

async fn exec_sync(ctx: &Ctx, run: &Run, id: &str) -> Vec<ExchangeRecord> {
    let cases = [
        (
            "exec-sync-output",
            argv(&["/bin/sh", "-c", "echo out; echo err >&2"]),
            0,
            vec!["out".to_string()],
            vec!["err".to_string()],
        ),
        (
            "exec-sync-failing",
            argv(&["/bin/sh", "-c", "echo failing >&2; exit 5"]),
            5,
            vec![],
            vec!["failing".to_string()],
        ),
    ];
    let mut out = Vec::new();
    for (name, command, code, want_stdout, want_stderr) in cases {
        run.step(format!("ExecSync {name}: {command:?}"));
        let mut rec = ExchangeRecord {
            name: name.into(),
            via: "ExecSync".into(),
            command: command.clone(),
            want_exit_code: Some(code),
            want_stdout,
            want_stderr,
            ..Default::default()
        };
        match ctx.cri.clone().exec_sync(id, &command, 60).await {
            Ok(r) => {
                rec.exit_code = Some(r.exit_code);
                rec.stdout = String::from_utf8_lossy(&r.stdout).into_owned();
                rec.stderr = String::from_utf8_lossy(&r.stderr).into_owned();
            }
            Err(e) => rec.error = Some(format!("{e:#}")),
        }
        out.push(rec);
    }
    out
}

/// One streaming exchange: the CRI call for the URL, then the WebSocket steps.
async fn stream_exchange(
    ctx: &Ctx,
    mut rec: ExchangeRecord,
    url: Result<String>,
    steps: &[Step],
) -> ExchangeRecord {
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            rec.error = Some(format!("{e:#}"));
            return rec;
        }
    };
    match stream::exchange(&url, steps, ctx.limit(60)).await {
        Ok(o) => {
            rec.protocol = o.protocol;
            rec.exit_code = o.exit_code;
            rec.stdout = o.stdout;
            rec.stderr = o.stderr;
            if rec.want_exit_code.is_some() && o.status.is_none() {
                rec.error = Some("the stream ended without a status on the error channel".into());
            }
        }
        Err(e) => rec.error = Some(format!("{e:#}")),
    }
    rec
}

async fn exec_stream(ctx: &Ctx, run: &Run, id: &str) -> Vec<ExchangeRecord> {
    // The shell waits (up to ~20 s) for the resize to reach its terminal, then says the size.
    let tty_script = format!(
        "i=0; while [ \"size=$(stty size)\" != '{STTY_SIZE_SAYS}' ] && [ $i -lt 200 ]; do \
         i=$((i+1)); sleep 0.1; done; echo size=$(stty size)"
    );
    let tty_cmd = argv(&["/bin/sh", "-c", &tty_script]);
    let (width, height) = RESIZE_TO;
    run.step(format!("Exec with a tty, resize to {width}x{height}"));
    let rec = ExchangeRecord {
        name: "exec-tty-resize".into(),
        via: "Exec".into(),
        command: tty_cmd.clone(),
        tty: true,
        resize: Some(RESIZE_TO),
        want_exit_code: Some(0),
        want_stdout: vec![STTY_SIZE_SAYS.into()],
        ..Default::default()
    };
    // kubectl exec -it: stdin and a tty; CRI refuses stderr with a tty (it is the terminal).
    let url = ctx
        .cri
        .clone()
        .exec(ExecRequest {
            container_id: id.into(),
            cmd: tty_cmd,
            tty: true,
            stdin: true,
            stdout: true,
            stderr: false,
        })
        .await;
    let tty = stream_exchange(ctx, rec, url, &[Step::Resize { width, height }]).await;

    let line = "hello-stdin";
    let cmd = argv(&[
        "/bin/sh",
        "-c",
        "read l; echo \"got:$l\"; echo to-stderr >&2; exit 3",
    ]);
    run.step("Exec without a tty, reading stdin");
    let rec = ExchangeRecord {
        name: "exec-stdin".into(),
        via: "Exec".into(),
        command: cmd.clone(),
        stdin: Some(format!("{line}\n")),
        want_exit_code: Some(3),
        want_stdout: vec![format!("got:{line}")],
        want_stderr: vec!["to-stderr".into()],
        ..Default::default()
    };
    let url = ctx
        .cri
        .clone()
        .exec(ExecRequest {
            container_id: id.into(),
            cmd,
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .await;
    let plain = stream_exchange(ctx, rec, url, &[Step::Stdin(format!("{line}\n"))]).await;
    vec![tty, plain]
}

async fn attach_once(ctx: &Ctx, run: &Run, id: &str) -> ExchangeRecord {
    let line = "hello-attach";
    run.step("Attach with stdin");
    let rec = ExchangeRecord {
        name: "attach-stdin-stdout".into(),
        via: "Attach".into(),
        command: argv(&["/bin/sh", "-c", ATTACH_SCRIPT]),
        stdin: Some(format!("{line}\n")),
        want_stdout: vec![format!("echo:{line}")],
        ..Default::default()
    };
    let url = ctx
        .cri
        .clone()
        .attach(AttachRequest {
            container_id: id.into(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        })
        .await;
    let steps = [
        Step::Stdin(format!("{line}\n")),
        Step::AwaitStdout(format!("echo:{line}")),
        Step::Close,
    ];
    stream_exchange(ctx, rec, url, &steps).await
}
