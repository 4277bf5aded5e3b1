//! The scenario registry and how each scenario's evidence is judged. Judging is pure: it reads
//! the evidence a run gathered and says which checks hold.

use crate::pod::{PodShape, Qos, MIB};
use crate::report::{Check, Evidence};

/// Where the suite's images live unless `--images` says otherwise: `<prefix>/busybox:1`,
/// `<prefix>/eater:1` (tests/e2e/images/build-images.sh).
pub const DEFAULT_IMAGE_PREFIX: &str = "localhost/e2e";
/// The eater image's entrypoint (tests/e2e/images/build-images.sh).
pub const EATER_PATH: &str = "/eater";

/// Node health after a scenario: the CRI still answers and this much memory is available.
pub const HEALTHY_MEM_AVAILABLE_KIB: u64 = 256 * 1024;

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub handler: &'static str,
    pub description: &'static str,
    /// Run when no `--scenario` filter is given.
    pub default: bool,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    /// A busybox pod whose container runs a script and exits.
    Exit(ExitSpec),
    /// A pod whose container eats memory.
    Eater(EaterSpec),
    /// A pod the guard must refuse.
    Refusal,
}

#[derive(Clone, Debug)]
pub struct ExitSpec {
    pub script: &'static str,
    pub exit_code: i32,
    pub log_contains: &'static str,
}

#[derive(Clone, Debug)]
pub struct EaterSpec {
    pub qos: Qos,
    pub slice_memory_max_mib: Option<u64>,
    pub sandbox_memory_mib: Option<u64>,
    pub overhead_mib: Option<u64>,
    pub container_limit_mib: Option<u64>,
    pub max_mib: u64,
    pub step_mib: u64,
    pub delay_ms: u64,
    pub expect: Expect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Show what stock runsc does: `escaped` or `bounded`, both pass with evidence.
    IncidentVerdict,
    /// runc: the kernel OOM-kills the container at the limit.
    OomKilled,
    /// The guard: killed near the limit, sandbox a leaf under the pod, exact total memory.
    Guarded,
    /// The guard with RuntimeClass overhead: the guest gets the container limit, the eater
    /// reaches at least `min_mib` before the driver stops the pod.
    Overhead { min_mib: u64 },
}

impl Scenario {
    pub fn image(&self, prefix: &str) -> String {
        let name = match self.kind {
            Kind::Eater(_) => "eater:1",
            _ => "busybox:1",
        };
        format!("{}/{name}", prefix.trim_end_matches('/'))
    }

    pub fn container_name(&self) -> &'static str {
        match self.kind {
            Kind::Eater(_) => "eater",
            _ => "busybox",
        }
    }

    pub fn command(&self) -> Vec<String> {
        match &self.kind {
            Kind::Exit(e) => vec!["/bin/sh".into(), "-c".into(), e.script.into()],
            Kind::Eater(e) => vec![
                EATER_PATH.into(),
                e.max_mib.to_string(),
                e.step_mib.to_string(),
                e.delay_ms.to_string(),
            ],
            Kind::Refusal => Vec::new(),
        }
    }

    pub fn shape(&self) -> PodShape {
        match &self.kind {
            Kind::Exit(_) => PodShape {
                qos: Qos::BestEffort,
                slice_memory_max: None,
                sandbox_memory_limit: None,
                overhead_memory: None,
                container_memory_limit: None,
            },
            Kind::Eater(e) => PodShape {
                qos: e.qos,
                slice_memory_max: e.slice_memory_max_mib.map(|m| m * MIB),
                sandbox_memory_limit: e.sandbox_memory_mib.map(|m| m * MIB),
                overhead_memory: e.overhead_mib.map(|m| m * MIB),
                container_memory_limit: e.container_limit_mib.map(|m| m * MIB),
            },
            // No memory limit anywhere: no resources, so no sandbox-memory annotation.
            Kind::Refusal => PodShape {
                qos: Qos::BestEffort,
                slice_memory_max: None,
                sandbox_memory_limit: None,
                overhead_memory: None,
                container_memory_limit: None,
            },
        }
    }

    /// The scenario's own time limit, before scaling.
    pub fn time_limit_secs(&self) -> u64 {
        match self.kind {
            Kind::Exit(_) => 300,
            Kind::Eater(_) => 600,
            Kind::Refusal => 240,
        }
    }
}

impl Scenario {
    fn with_qos(mut self, qos: Qos) -> Self {
        if let Kind::Eater(e) = &mut self.kind {
            e.qos = qos;
        }
        self
    }

    fn on_request(mut self) -> Self {
        self.default = false;
        self
    }
}

/// The incident's pod: Burstable, 256 MiB container limit (so 256 MiB sandbox-memory) and a
/// 256 MiB pod slice; the eater goes for 1 GiB in 16 MiB steps.
fn incident(
    name: &'static str,
    handler: &'static str,
    description: &'static str,
    expect: Expect,
) -> Scenario {
    Scenario {
        name,
        handler,
        description,
        default: true,
        kind: Kind::Eater(EaterSpec {
            qos: Qos::Burstable,
            slice_memory_max_mib: Some(256),
            sandbox_memory_mib: Some(256),
            overhead_mib: None,
            container_limit_mib: Some(256),
            max_mib: 1024,
            step_mib: 16,
            delay_ms: 50,
            expect,
        }),
    }
}

fn busybox_exit(name: &'static str, handler: &'static str) -> Scenario {
    Scenario {
        name,
        handler,
        description: "busybox `sh -c 'echo hello; exit 3'`: exit code 3, `hello` in the log, \
                      and after StopPodSandbox + RemovePodSandbox nothing of the pod is left \
                      (runsc processes, shim, scopes/cgroups, mounts, shim socket).",
        default: true,
        kind: Kind::Exit(ExitSpec {
            script: "echo hello; exit 3",
            exit_code: 3,
            log_contains: "hello",
        }),
    }
}

pub fn registry() -> Vec<Scenario> {
    vec![
        busybox_exit("busybox-exit", "runsc"),
        incident(
            "incident-stock",
            "runsc-stock",
            "The seed's incident with what the cluster ran (containerd's runc shim driving runsc, \
             no systemd-cgroup): records where the sandbox lands, --total-memory, how far the \
             eater gets. Passes with the evidence; the verdict says `escaped` or `bounded`.",
            Expect::IncidentVerdict,
        ),
        incident(
            "incident-runc",
            "runc",
            "The same pod under runc (systemd cgroup driver): OOM-killed near 256 MiB, exit 137, \
             reason OOMKilled.",
            Expect::OomKilled,
        ),
        incident(
            "incident-guard",
            "runsc",
            "The same pod under runsc-guard: killed near 256 MiB (not beyond), the sandbox a leaf \
             cgroup under the pod slice, --total-memory exactly 268435456, node healthy.",
            Expect::Guarded,
        ),
        Scenario {
            name: "overhead-guard",
            handler: "runsc",
            description: "RuntimeClass overhead: pod slice MemoryMax 320 MiB, container limit \
                          (sandbox-memory) 256 MiB, 64 MiB overhead. The guest must see 256 MiB \
                          (--total-memory 268435456) and the eater reach 240 MiB before the pod \
                          is stopped.",
            default: true,
            kind: Kind::Eater(EaterSpec {
                qos: Qos::Burstable,
                slice_memory_max_mib: Some(320),
                sandbox_memory_mib: Some(256),
                overhead_mib: Some(64),
                container_limit_mib: Some(256),
                max_mib: 240,
                step_mib: 16,
                delay_ms: 50,
                expect: Expect::Overhead { min_mib: 240 },
            }),
        },
        Scenario {
            name: "refusal-guard",
            handler: "runsc",
            description: "cgroup_parent names a pod slice that does not exist and the pod has no \
                          memory limit (no sandbox-memory annotation): RunPodSandbox must fail \
                          with an error naming runsc-guard and leave nothing behind.",
            default: true,
            kind: Kind::Refusal,
        },
        // On request (`--scenario NAME`): a Guaranteed pod, whose slice sits directly under
        // kubepods.slice, and baselines that show whether the testbed itself works.
        incident(
            "incident-guard-guaranteed",
            "runsc",
            "incident-guard with a Guaranteed pod (slice kubepods-pod<uid>.slice).",
            Expect::Guarded,
        )
        .with_qos(Qos::Guaranteed)
        .on_request(),
        busybox_exit("busybox-exit-runc", "runc").on_request(),
        busybox_exit("busybox-exit-stock", "runsc-stock").on_request(),
    ]
}

/// The scenarios to run: by name when `names` is given (unknown names are an error), else the
/// default ones; then only those whose handler is in `handlers`, when given.
pub fn select(
    all: &[Scenario],
    names: &[String],
    handlers: &[String],
) -> Result<Vec<Scenario>, String> {
    for n in names {
        if !all.iter().any(|s| s.name == n) {
            let known: Vec<&str> = all.iter().map(|s| s.name).collect();
            return Err(format!(
                "--scenario {n}: no such scenario (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(all
        .iter()
        .filter(|s| {
            if names.is_empty() {
                s.default
            } else {
                names.iter().any(|n| n == s.name)
            }
        })
        .filter(|s| handlers.is_empty() || handlers.iter().any(|h| h == s.handler))
        .cloned()
        .collect())
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// A check that is reported but does not decide the outcome.
fn advisory(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: format!("{name} (advisory)"),
        ok: true,
        detail: format!("{}{}", if ok { "" } else { "NOT MET: " }, detail.into()),
    }
}

fn leftovers_check(ev: &Evidence) -> Check {
    match &ev.leftovers {
        Some(l) => check("nothing-left-behind", l.is_clean(), l.describe()),
        None => check("nothing-left-behind", false, "leftovers were not examined"),
    }
}

fn node_healthy(ev: &Evidence) -> Check {
    match &ev.node_after {
        Some(n) => {
            let avail = n.mem_available_kib.unwrap_or(0);
            check(
                "node-healthy",
                n.cri_answers && avail >= HEALTHY_MEM_AVAILABLE_KIB,
                format!(
                    "CRI {}; MemAvailable {} kB (need {})",
                    if n.cri_answers {
                        "answers".to_string()
                    } else {
                        format!("does not answer: {}", n.cri_error.as_deref().unwrap_or("?"))
                    },
                    avail,
                    HEALTHY_MEM_AVAILABLE_KIB
                ),
            )
        }
        None => check("node-healthy", false, "node health was not examined"),
    }
}

fn container_exited(ev: &Evidence) -> Check {
    match &ev.container_final {
        Some(c) => check(
            "container-exited",
            c.state == "CONTAINER_EXITED",
            format!(
                "state {}, exit {}, reason {:?}",
                c.state, c.exit_code, c.reason
            ),
        ),
        None => check("container-exited", false, "no final container status"),
    }
}

fn eater_max(ev: &Evidence) -> Option<u64> {
    ev.eater.as_ref().and_then(|e| e.max_mib())
}

fn eater_text(ev: &Evidence) -> String {
    let text = eater_log_text(ev);
    match ev.sandbox_cgroup_memory_max_bytes {
        Some(b) => format!("{text}; sandbox cgroup held up to {} MiB", b / MIB),
        None => text,
    }
}

fn eater_log_text(ev: &Evidence) -> String {
    match &ev.eater {
        Some(e) => match (e.max_mib(), e.done()) {
            (Some(m), true) => format!("eater done at {m} MiB"),
            (Some(m), false) => format!("eater reached {m} MiB"),
            (None, _) if e.started => "eater started, nothing eaten".into(),
            (None, _) => "eater printed nothing".into(),
        },
        None => "no eater log".into(),
    }
}

fn sandbox_placement(ev: &Evidence) -> Vec<Check> {
    match &ev.runsc_sandbox {
        Some(p) => vec![
            check(
                "sandbox-under-pod-slice",
                p.under_pod_slice,
                format!(
                    "runsc-sandbox {} in {}",
                    p.pid,
                    p.cgroup.as_deref().unwrap_or("?")
                ),
            ),
            check(
                "sandbox-cgroup-is-leaf",
                p.cgroup_is_leaf == Some(true),
                format!("leaf: {:?}", p.cgroup_is_leaf),
            ),
        ],
        None => vec![check(
            "sandbox-found",
            false,
            "no runsc-sandbox process naming the sandbox id was seen",
        )],
    }
}

/// The runtime must leave the pod slice's limit as kubelet set it.
fn pod_slice_limit_intact(ev: &Evidence) -> Check {
    let want = ev.pod.as_ref().and_then(|p| p.slice_memory_max_configured);
    let got = ev.pod_slice_end.as_ref().map(|f| f.memory_max_bytes());
    check(
        "pod-slice-limit-intact",
        got == Some(want),
        format!(
            "pod slice memory.max at the end {:?}, configured {want:?}",
            ev.pod_slice_end
                .as_ref()
                .and_then(|f| f.memory_max.as_deref())
        ),
    )
}

fn total_memory_exact(ev: &Evidence, want: u64) -> Check {
    let got = ev.runsc_sandbox.as_ref().and_then(|p| p.total_memory);
    check(
        "total-memory-exact",
        got == Some(want),
        format!(
            "--total-memory {} (want {want})",
            got.map(|g| g.to_string())
                .unwrap_or_else(|| "absent".into())
        ),
    )
}

/// Escaped: the sandbox is outside the pod slice, or the eater got beyond the limit.
/// Memory counts from the eater's log or, when the log is silent, from the sandbox's cgroup.
pub fn incident_verdict(ev: &Evidence, limit_mib: u64) -> Option<&'static str> {
    let outside = ev.runsc_sandbox.as_ref().map(|p| !p.under_pod_slice);
    let by_log = eater_max(ev).map(|m| m > limit_mib);
    let by_cgroup = ev
        .sandbox_cgroup_memory_max_bytes
        .map(|b| b > limit_mib.saturating_mul(MIB));
    let beyond = match (by_log, by_cgroup) {
        (None, None) => None,
        (a, b) => Some(a == Some(true) || b == Some(true)),
    };
    match (outside, beyond) {
        (Some(true), _) | (_, Some(true)) => Some("escaped"),
        (Some(false), Some(false)) => Some("bounded"),
        _ => None,
    }
}

/// The checks for one scenario's evidence, and its verdict if it has one.
pub fn judge(s: &Scenario, ev: &Evidence) -> (Vec<Check>, Option<String>) {
    let mut checks = Vec::new();
    let mut verdict = None;
    match &s.kind {
        Kind::Exit(spec) => {
            checks.push(container_exited(ev));
            let code = ev.container_final.as_ref().map(|c| c.exit_code);
            checks.push(check(
                "exit-code",
                code == Some(spec.exit_code),
                format!("exit {code:?}, want {}", spec.exit_code),
            ));
            let in_log = ev.log_tail.iter().any(|l| l.contains(spec.log_contains));
            checks.push(check(
                "log-has-output",
                in_log,
                format!("{:?} in the container log: {in_log}", spec.log_contains),
            ));
            checks.push(leftovers_check(ev));
        }
        Kind::Eater(spec) => {
            let limit = spec.container_limit_mib.unwrap_or(u64::MAX);
            let started = ev.eater.as_ref().is_some_and(|e| e.started);
            if spec.expect == Expect::IncidentVerdict {
                // Behind containerd's runc shim, runsc loses the container's stdio: the log
                // stays empty and the sandbox cgroup's memory tells the story instead.
                checks.push(advisory("eater-started", started, eater_text(ev)));
            } else {
                checks.push(check("eater-started", started, eater_text(ev)));
            }
            match spec.expect {
                Expect::IncidentVerdict => {
                    let v = incident_verdict(ev, limit);
                    checks.push(check(
                        "evidence-complete",
                        v.is_some() && ev.runsc_sandbox.is_some(),
                        format!(
                            "sandbox found: {}, {}",
                            ev.runsc_sandbox.is_some(),
                            eater_text(ev)
                        ),
                    ));
                    verdict = v.map(str::to_string);
                }
                Expect::OomKilled => {
                    checks.push(container_exited(ev));
                    let c = ev.container_final.as_ref();
                    checks.push(check(
                        "exit-137",
                        c.map(|c| c.exit_code) == Some(137),
                        format!("exit {:?}", c.map(|c| c.exit_code)),
                    ));
                    checks.push(check(
                        "reason-oomkilled",
                        c.is_some_and(|c| c.oom_killed()),
                        format!("reason {:?}", c.map(|c| c.reason.as_str())),
                    ));
                    let m = eater_max(ev);
                    checks.push(check(
                        "not-beyond-limit",
                        m.is_some_and(|m| m <= limit),
                        format!("{} (limit {limit} MiB)", eater_text(ev)),
                    ));
                    checks.push(node_healthy(ev));
                    verdict = c.map(|c| {
                        if c.oom_killed() {
                            "oom-killed".into()
                        } else {
                            format!("{} exit {}", c.state, c.exit_code)
                        }
                    });
                }
                Expect::Guarded => {
                    checks.extend(sandbox_placement(ev));
                    if let Some(want) = spec.sandbox_memory_mib {
                        checks.push(total_memory_exact(ev, want * MIB));
                    }
                    let c = ev.container_final.as_ref();
                    let killed = c.is_some_and(|c| c.state == "CONTAINER_EXITED")
                        && !ev.eater.as_ref().is_some_and(|e| e.done());
                    checks.push(check(
                        "container-killed",
                        killed,
                        format!(
                            "final state {:?}, {}",
                            c.map(|c| c.state.as_str()),
                            eater_text(ev)
                        ),
                    ));
                    let m = eater_max(ev);
                    // "Near" the limit: at least half of it, never beyond it.
                    checks.push(check(
                        "killed-near-limit",
                        m.is_some_and(|m| m <= limit && m >= limit / 2),
                        format!(
                            "{} (limit {limit} MiB, want {}..={limit})",
                            eater_text(ev),
                            limit / 2
                        ),
                    ));
                    checks.push(advisory(
                        "reason-oomkilled",
                        c.is_some_and(|c| c.oom_killed()),
                        format!(
                            "reason {:?}, exit {:?}",
                            c.map(|c| c.reason.as_str()),
                            c.map(|c| c.exit_code)
                        ),
                    ));
                    checks.push(pod_slice_limit_intact(ev));
                    checks.push(node_healthy(ev));
                    verdict = incident_verdict(ev, limit).map(str::to_string);
                }
                Expect::Overhead { min_mib } => {
                    checks.extend(sandbox_placement(ev));
                    if let Some(want) = spec.sandbox_memory_mib {
                        checks.push(total_memory_exact(ev, want * MIB));
                    }
                    let m = eater_max(ev);
                    checks.push(check(
                        "eater-reached-target",
                        m.is_some_and(|m| m >= min_mib),
                        format!("{} (want at least {min_mib} MiB)", eater_text(ev)),
                    ));
                    let c = ev.container_final.as_ref();
                    checks.push(advisory(
                        "not-oom-killed",
                        !c.is_some_and(|c| c.oom_killed()),
                        format!("reason {:?}", c.map(|c| c.reason.as_str())),
                    ));
                    checks.push(pod_slice_limit_intact(ev));
                    checks.push(node_healthy(ev));
                }
            }
        }
        Kind::Refusal => {
            let err = ev.run_pod_sandbox_error.as_deref();
            checks.push(check(
                "run-pod-sandbox-failed",
                err.is_some() && ev.sandbox_id.is_none(),
                match (err, &ev.sandbox_id) {
                    (Some(e), _) => format!("failed: {e}"),
                    (None, Some(id)) => format!("succeeded: sandbox {id}"),
                    (None, None) => "RunPodSandbox was not attempted".into(),
                },
            ));
            checks.push(check(
                "error-mentions-runsc-guard",
                err.is_some_and(|e| e.contains("runsc-guard")),
                err.unwrap_or("no error").to_string(),
            ));
            checks.push(leftovers_check(ev));
        }
    }
    (checks, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupFacts;
    use crate::logs::EaterProgress;
    use crate::report::{ContainerFinal, Leftovers, NodeHealth, PodInfo, SandboxProc};

    fn by_name(name: &str) -> Scenario {
        registry()
            .into_iter()
            .find(|s| s.name == name)
            .expect("registered")
    }

    fn failed(checks: &[Check]) -> Vec<String> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.clone())
            .collect()
    }

    fn eater(max: u64, done: bool) -> Option<EaterProgress> {
        Some(EaterProgress {
            started: true,
            eaten_mib: Some(max),
            done_mib: done.then_some(max),
            other: vec![],
        })
    }

    fn sandbox(under: bool, total: u64) -> Option<SandboxProc> {
        Some(SandboxProc {
            pid: 99,
            total_memory: Some(total),
            cgroup: Some("/x".into()),
            under_pod_slice: under,
            cgroup_is_leaf: Some(true),
            ..Default::default()
        })
    }

    /// The pod as kubelet set it up, and its slice at the end still limited to `slice_mib`.
    fn pod_with_slice(ev: Evidence, slice_mib: u64) -> Evidence {
        Evidence {
            pod: Some(PodInfo {
                slice_memory_max_configured: Some(slice_mib * MIB),
                ..Default::default()
            }),
            pod_slice_end: Some(CgroupFacts {
                exists: true,
                memory_max: Some((slice_mib * MIB).to_string()),
                ..Default::default()
            }),
            ..ev
        }
    }

    fn healthy() -> Option<NodeHealth> {
        Some(NodeHealth {
            cri_answers: true,
            cri_error: None,
            mem_total_kib: Some(4_000_000),
            mem_available_kib: Some(3_000_000),
        })
    }

    fn exited(code: i32, reason: &str) -> Option<ContainerFinal> {
        Some(ContainerFinal {
            state: "CONTAINER_EXITED".into(),
            exit_code: code,
            reason: reason.into(),
            message: String::new(),
        })
    }

    #[test]
    fn registry_names_are_unique_and_the_six_are_default() {
        let all = registry();
        let mut names: Vec<&str> = all.iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        let default: Vec<&str> = all.iter().filter(|s| s.default).map(|s| s.name).collect();
        assert_eq!(
            default,
            vec![
                "busybox-exit",
                "incident-stock",
                "incident-runc",
                "incident-guard",
                "overhead-guard",
                "refusal-guard"
            ]
        );
    }

    #[test]
    fn selection() {
        let all = registry();
        let s = select(&all, &[], &["runc".into()]).expect("valid");
        assert_eq!(
            s.iter().map(|s| s.name).collect::<Vec<_>>(),
            vec!["incident-runc"]
        );
        let s = select(&all, &["busybox-exit-runc".into()], &[]).expect("valid");
        assert_eq!(s.len(), 1);
        assert!(select(&all, &["nope".into()], &[]).is_err());
    }

    #[test]
    fn incident_shape_and_command() {
        let s = by_name("incident-guard");
        let shape = s.shape();
        assert_eq!(shape.slice_memory_max, Some(268435456));
        assert_eq!(shape.sandbox_memory_limit, Some(268435456));
        assert_eq!(s.command(), vec!["/eater", "1024", "16", "50"]);
        assert_eq!(s.image("localhost/e2e"), "localhost/e2e/eater:1");
        assert_eq!(
            by_name("busybox-exit").image("localhost/e2e/"),
            "localhost/e2e/busybox:1"
        );
        let o = by_name("overhead-guard").shape();
        assert_eq!(o.slice_memory_max, Some(320 * MIB));
        assert_eq!(o.sandbox_memory_limit, Some(256 * MIB));
        assert!(by_name("refusal-guard")
            .shape()
            .sandbox_memory_limit
            .is_none());
        assert_eq!(
            by_name("incident-guard-guaranteed").shape().qos,
            Qos::Guaranteed
        );
        assert!(!by_name("incident-guard-guaranteed").default);
    }

    #[test]
    fn busybox_exit_judgement() {
        let s = by_name("busybox-exit");
        let mut ev = Evidence {
            container_final: exited(3, "Error"),
            log_tail: vec!["hello".into()],
            leftovers: Some(Leftovers::default()),
            ..Default::default()
        };
        let (c, _) = judge(&s, &ev);
        assert!(failed(&c).is_empty(), "{c:?}");
        ev.leftovers = Some(Leftovers {
            processes: vec!["1 runsc-gofer".into()],
            ..Default::default()
        });
        ev.container_final = exited(0, "Completed");
        assert_eq!(
            failed(&judge(&s, &ev).0),
            vec!["exit-code", "nothing-left-behind"]
        );
    }

    #[test]
    fn stock_escape_and_bounded_both_pass() {
        let s = by_name("incident-stock");
        let ev = Evidence {
            eater: eater(1024, true),
            runsc_sandbox: sandbox(false, 4103303168),
            ..Default::default()
        };
        let (c, v) = judge(&s, &ev);
        assert!(failed(&c).is_empty());
        assert_eq!(v.as_deref(), Some("escaped"));
        let ev = Evidence {
            eater: eater(224, false),
            runsc_sandbox: sandbox(true, 4103303168),
            container_final: exited(137, "OOMKilled"),
            ..Default::default()
        };
        let (c, v) = judge(&s, &ev);
        assert!(failed(&c).is_empty());
        assert_eq!(v.as_deref(), Some("bounded"));
        // A silent log (StartContainer blocked, stdio lost) under the pod slice: the cgroup
        // decides.
        let ev = Evidence {
            eater: Some(EaterProgress::default()),
            runsc_sandbox: sandbox(true, 4103303168),
            sandbox_cgroup_memory_max_bytes: Some(200 * MIB),
            ..Default::default()
        };
        assert_eq!(incident_verdict(&ev, 256), Some("bounded"));
        let ev = Evidence {
            sandbox_cgroup_memory_max_bytes: Some(1100 * MIB),
            ..ev
        };
        assert_eq!(incident_verdict(&ev, 256), Some("escaped"));
        // As seen in the bookworm guest: silent log, sandbox under system.slice, 1 GiB held.
        let (c, v) = judge(&s, &ev);
        assert!(failed(&c).is_empty(), "{c:?}");
        assert_eq!(v.as_deref(), Some("escaped"));
        // No sandbox process seen: the evidence is not complete.
        let ev = Evidence {
            eater: eater(224, false),
            ..Default::default()
        };
        assert_eq!(failed(&judge(&s, &ev).0), vec!["evidence-complete"]);
    }

    #[test]
    fn runc_needs_oomkilled_137_within_limit() {
        let s = by_name("incident-runc");
        let ev = Evidence {
            eater: eater(240, false),
            container_final: exited(137, "OOMKilled"),
            node_after: healthy(),
            ..Default::default()
        };
        let (c, v) = judge(&s, &ev);
        assert!(failed(&c).is_empty(), "{c:?}");
        assert_eq!(v.as_deref(), Some("oom-killed"));
        let ev = Evidence {
            eater: eater(1024, true),
            container_final: None,
            node_after: healthy(),
            ..Default::default()
        };
        assert_eq!(
            failed(&judge(&s, &ev).0),
            vec![
                "container-exited",
                "exit-137",
                "reason-oomkilled",
                "not-beyond-limit"
            ]
        );
    }

    #[test]
    fn guard_judgement() {
        let s = by_name("incident-guard");
        let good = pod_with_slice(
            Evidence {
                eater: eater(208, false),
                runsc_sandbox: sandbox(true, 268435456),
                container_final: exited(128, "Error"),
                node_after: healthy(),
                ..Default::default()
            },
            256,
        );
        let (c, v) = judge(&s, &good);
        assert!(failed(&c).is_empty(), "{c:?}");
        assert_eq!(v.as_deref(), Some("bounded"));
        assert!(c
            .iter()
            .any(|c| c.name == "reason-oomkilled (advisory)" && c.detail.starts_with("NOT MET")));
        let mut bad = pod_with_slice(
            Evidence {
                eater: eater(1024, true),
                runsc_sandbox: sandbox(false, 4103303168),
                container_final: None,
                node_after: healthy(),
                ..Default::default()
            },
            256,
        );
        // Someone lifted the pod's limit.
        if let Some(f) = bad.pod_slice_end.as_mut() {
            f.memory_max = Some("max".into());
        }
        let (c, v) = judge(&s, &bad);
        assert_eq!(
            failed(&c),
            vec![
                "sandbox-under-pod-slice",
                "total-memory-exact",
                "container-killed",
                "killed-near-limit",
                "pod-slice-limit-intact"
            ]
        );
        assert_eq!(v.as_deref(), Some("escaped"));
    }

    #[test]
    fn overhead_judgement() {
        let s = by_name("overhead-guard");
        let ev = pod_with_slice(
            Evidence {
                eater: eater(240, true),
                runsc_sandbox: sandbox(true, 268435456),
                node_after: healthy(),
                ..Default::default()
            },
            320,
        );
        assert!(failed(&judge(&s, &ev).0).is_empty());
        let ev = pod_with_slice(
            Evidence {
                eater: eater(224, false),
                runsc_sandbox: sandbox(true, 335544320),
                node_after: healthy(),
                ..Default::default()
            },
            320,
        );
        assert_eq!(
            failed(&judge(&s, &ev).0),
            vec!["total-memory-exact", "eater-reached-target"]
        );
    }

    #[test]
    fn refusal_judgement() {
        let s = by_name("refusal-guard");
        let ev = Evidence {
            run_pod_sandbox_error: Some(
                "RunPodSandbox: failed to create shim task: runsc-guard refused container x".into(),
            ),
            leftovers: Some(Leftovers::default()),
            ..Default::default()
        };
        assert!(failed(&judge(&s, &ev).0).is_empty());
        let ev = Evidence {
            sandbox_id: Some("abc".into()),
            leftovers: Some(Leftovers::default()),
            ..Default::default()
        };
        assert_eq!(
            failed(&judge(&s, &ev).0),
            vec!["run-pod-sandbox-failed", "error-mentions-runsc-guard"]
        );
    }
}
