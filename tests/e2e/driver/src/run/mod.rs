//! Running one scenario the way kubelet would drive a pod, gathering evidence on the way, and
//! cleaning up whatever happened. One file per phase: `setup.rs` (the node's and the pod's slices,
//! RunPodSandbox, CreateContainer, StartContainer), `observe.rs` (what the pod's processes,
//! cgroups and container show while it runs and before it goes), `cleanup.rs` (taking the pod
//! down, looking for leftovers, undoing whatever a failed scenario left) and `refusal.rs` (the
//! pod the guard must refuse). This file holds the record they share and the order of a pod's
//! phases.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cri::Cri;
use crate::report::{Evidence, Measurements, Outcome, ScenarioReport, Step};
use crate::scenarios::{self, Kind, Scenario};

mod cleanup;
mod doctor;
mod exits;
mod hostile;
mod multi;
mod observe;
mod pod_complete;
mod pod_ops;
mod refusal;
mod setup;

pub use setup::{default_cgroup_root, node_memory_bytes, setup_node, teardown_node};

/// What every scenario shares.
#[derive(Clone)]
pub struct Ctx {
    pub cri: Cri,
    pub cgroup_root: PathBuf,
    pub node_mem_total: u64,
    /// Image name prefix (`--images`).
    pub images: String,
    /// The results directory: each pod's log directory is copied to `<results>/pods/<scenario>`.
    pub results: PathBuf,
    /// The `runsc-guard` binary (`--runsc-guard`), for the scenarios that run its doctor.
    pub runsc_guard: PathBuf,
}

impl Ctx {
    /// The context for `args` on this node, after the node's set-up (`setup_node`); with the
    /// set-up's problems, each also printed.
    pub async fn on_node(cri: Cri, args: &crate::cli::Args) -> (Ctx, Vec<String>) {
        let ctx = Ctx {
            cri,
            cgroup_root: default_cgroup_root(),
            node_mem_total: node_memory_bytes(),
            images: args.images.clone(),
            results: args.results.clone(),
            runsc_guard: args.runsc_guard.clone(),
        };
        let problems = setup_node(&ctx).await;
        for p in &problems {
            eprintln!("e2e-driver: setup: {p}");
        }
        (ctx, problems)
    }

    pub fn limit(&self, secs: u64) -> Duration {
        self.cri.limit(secs)
    }
}

/// What a scenario has created, so clean-up can undo it whatever happened.
#[derive(Default)]
struct Created {
    sandboxes: Vec<String>,
    removed: BTreeSet<String>,
    /// Sandboxes StopPodSandbox was already sent for.
    stop_tried: BTreeSet<String>,
    slices: Vec<String>,
    pod_uid: Option<String>,
}

struct Shared {
    report: ScenarioReport,
    created: Created,
    t0: Instant,
}

/// The running scenario's record, shared between its task and the supervisor.
#[derive(Clone)]
struct Run(Arc<Mutex<Shared>>);

impl Run {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere must not lose the evidence gathered so far.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn step(&self, what: impl Into<String>) {
        let what = what.into();
        let mut s = self.lock();
        let t_ms = s.t0.elapsed().as_millis() as u64;
        eprintln!(
            "e2e-driver: [{} +{:.1}s] {what}",
            s.report.name,
            t_ms as f64 / 1000.0
        );
        s.report.steps.push(Step { t_ms, what });
    }

    fn ev<R>(&self, f: impl FnOnce(&mut Evidence) -> R) -> R {
        f(&mut self.lock().report.evidence)
    }

    fn ms<R>(&self, f: impl FnOnce(&mut Measurements) -> R) -> R {
        f(&mut self.lock().report.measurements)
    }

    fn note(&self, n: impl Into<String>) {
        let n = n.into();
        self.step(format!("note: {n}"));
        self.ev(|e| e.notes.push(n));
    }
}

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

pub async fn run_scenario(ctx: &Ctx, sc: &Scenario) -> ScenarioReport {
    let run = Run(Arc::new(Mutex::new(Shared {
        report: ScenarioReport {
            name: sc.name.to_string(),
            handler: sc.handler.to_string(),
            description: sc.description.to_string(),
            ..Default::default()
        },
        created: Created::default(),
        t0: Instant::now(),
    })));
    run.step(format!("start (handler {})", sc.handler));
    let task = {
        let (ctx, sc, run) = (ctx.clone(), sc.clone(), run.clone());
        tokio::spawn(async move {
            match sc.kind {
                Kind::Refusal => refusal::refusal_body(&ctx, &sc, &run).await,
                Kind::ExitCodes(cases) => exits::exit_codes_body(&ctx, &sc, &run, cases).await,
                Kind::HostileUnitName(spec) => hostile::hostile_body(&ctx, &sc, &run, &spec).await,
                Kind::Update => pod_ops::update_body(&ctx, &sc, &run).await,
                Kind::ContainerdRestart => pod_ops::restart_body(&ctx, &sc, &run).await,
                Kind::PodComplete(pc) => pod_complete::pod_complete_body(&ctx, &sc, &run, pc).await,
                Kind::Exit(_) | Kind::Eater(_) | Kind::Stats => pod_body(&ctx, &sc, &run).await,
            }
        })
    };
    let limit = ctx.limit(sc.time_limit_secs());
    let abort = task.abort_handle();
    let (error, timed_out) = match tokio::time::timeout(limit, task).await {
        Err(_) => {
            abort.abort();
            (
                Some(format!(
                    "the scenario did not finish within its limit of {:.0} s",
                    limit.as_secs_f64()
                )),
                true,
            )
        }
        Ok(Err(join)) => (Some(format!("the scenario's task failed: {join}")), false),
        Ok(Ok(Err(e))) => (Some(format!("{e:#}")), false),
        Ok(Ok(Ok(()))) => (None, false),
    };
    if let Some(e) = &error {
        run.step(format!("error: {e}"));
    }
    cleanup::cleanup(ctx, &run).await;

    let mut s = run.lock();
    let (checks, verdict) = scenarios::judge(sc, &s.report.evidence);
    let duration_ms = elapsed_ms(s.t0);
    let r = &mut s.report;
    r.error = error;
    r.checks = checks;
    r.verdict = verdict;
    r.passed = r.error.is_none() && r.checks.iter().all(|c| c.ok);
    r.outcome = if timed_out {
        Outcome::Timeout
    } else if r.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    r.duration_ms = duration_ms;
    r.clone()
}

/// A pod that runs one container, phase by phase. An error ends the scenario (clean-up follows
/// in `run_scenario`); a failure the scenario can live with is a note.
async fn pod_body(ctx: &Ctx, sc: &Scenario, run: &Run) -> Result<()> {
    let pod = setup::prepare_pod(ctx, sc, run).await?;
    let sandbox = setup::run_sandbox(ctx, sc, run, &pod).await?;
    // Where the sandbox landed and how big its guest is are fixed once RunPodSandbox returns:
    // take them now, so a sandbox that dies later (stock runsc 20240729 sometimes panics in its
    // sentry under emulation) still shows its placement and --total-memory.
    observe::observe_processes(ctx, run, &sandbox.id, "", &pod.slice.path);
    // The doctor audits sandboxes, whose place and size are fixed now; asked later, it would
    // miss a stock sandbox that its sentry's panic has already ended.
    if let Some(expect) = sc.doctor {
        doctor::run_doctor(ctx, sc, run, expect).await;
    }
    let container_id = setup::create_container(ctx, sc, run, &pod, &sandbox).await?;
    let mut start = setup::StartCall::send(ctx, sc, &container_id);
    setup::wait_running(ctx, sc, run, &mut start, &pod, &sandbox, &container_id).await?;

    observe::locate_container(ctx, run, &pod, &sandbox.id, &container_id).await;
    observe::watch(ctx, sc, run, &pod, &sandbox.id, &container_id).await;
    let sockets = observe::last_looks(ctx, sc, run, &pod, &sandbox.id, &container_id).await;
    start.finish(run).await;

    cleanup::stop_pod(ctx, run, &sandbox.id).await;
    let ids = vec![sandbox.id, container_id];
    cleanup::settle_leftovers(ctx, run, &ids, &pod.uid, &sockets, None).await;
    let health = observe::node_health(ctx).await;
    run.ev(|e| e.node_after = Some(health));
    Ok(())
}
