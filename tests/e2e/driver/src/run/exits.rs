//! Containers that exit at once, one after the other in one pod: what CRI reports as each one's
//! exit code. A short-lived init is where a shim can lose the real status (the exit comes
//! before anyone waits for it).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_cri::v1::ContainerState;

use super::observe::{node_health, observe_processes, read_log, shim_socket_paths};
use super::setup::{self, StartCall};
use super::{cleanup, Ctx, Run};
use crate::pod;
use crate::report::{ContainerFinal, CriContainerState, ExitCaseRecord};
use crate::scenarios::{ExitCase, Scenario};

pub(super) async fn exit_codes_body(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    cases: &[ExitCase],
) -> Result<()> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let sandbox = setup::run_sandbox(ctx, sc, run, &pod).await?;
    observe_processes(ctx, run, &sandbox.id, "", &pod.slice.path);
    let mut ids = vec![sandbox.id.clone()];
    for case in cases {
        let rec = run_case(ctx, sc, run, &pod, &sandbox, case).await;
        ids.extend(rec.container_id.clone());
        run.ev(|e| e.exit_cases.push(rec));
    }
    let sockets = shim_socket_paths(run);
    cleanup::stop_pod(ctx, run, &sandbox.id).await;
    cleanup::settle_leftovers(ctx, run, &ids, &pod.uid, &sockets, None).await;
    let health = node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}

/// One container: create, start, wait for its exit, read its status. Failures are recorded in
/// the case, so the next case still runs.
async fn run_case(
    ctx: &Ctx,
    sc: &Scenario,
    run: &Run,
    pod: &setup::Pod,
    sandbox: &setup::Sandbox,
    case: &ExitCase,
) -> ExitCaseRecord {
    let command: Vec<String> = case.command.iter().map(|s| s.to_string()).collect();
    let mut rec = ExitCaseRecord {
        name: case.name.to_string(),
        command: command.clone(),
        want_exit_code: case.exit_code,
        ..Default::default()
    };
    let id = match setup::create_named(ctx, run, pod, sandbox, case.name, command).await {
        Ok(id) => id,
        Err(e) => {
            rec.start_error = Some(format!("{e:#}"));
            return rec;
        }
    };
    rec.container_id = Some(id.clone());
    let mut start = StartCall::send(ctx, sc, &id);
    let log = Path::new(&pod.id.log_directory).join(pod::container_log_path(case.name));
    rec.final_status = wait_exited(ctx, run, &id).await;
    if !read_log(&log).is_empty() {
        run.step(format!("{}: log {:?}", case.name, read_log(&log)));
    }
    start.settle(ctx.limit(15)).await;
    start.finish(run).await;
    if let Some(e) = start.error() {
        rec.start_error = Some(e);
    }
    rec
}

/// Polls ContainerStatus until the container is EXITED (or the time is up): its last status.
pub(super) async fn wait_exited(ctx: &Ctx, run: &Run, id: &str) -> Option<ContainerFinal> {
    let mut cri = ctx.cri.clone();
    let deadline = Instant::now() + ctx.limit(90);
    let mut last = None;
    loop {
        match cri.container_state(id).await {
            Ok(st) => {
                let fin = ContainerFinal {
                    state: CriContainerState::from(st.state),
                    exit_code: st.exit_code,
                    reason: st.reason.clone(),
                    message: st.message.clone(),
                };
                let exited = st.state == ContainerState::ContainerExited as i32;
                last = Some(fin);
                if exited {
                    break;
                }
            }
            Err(e) => run.note(format!("ContainerStatus of {id}: {e:#}")),
        }
        if Instant::now() >= deadline {
            run.note(format!(
                "container {id} had not exited {:.0} s after StartContainer",
                ctx.limit(90).as_secs_f64()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Some(f) = &last {
        run.step(format!(
            "container {id}: {}, exit {}, reason {:?}",
            f.state, f.exit_code, f.reason
        ));
    }
    last
}
