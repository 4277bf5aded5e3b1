//! How a scenario's evidence is judged. Pure: it reads the evidence a run gathered and says
//! which checks hold and, for some scenarios, what the evidence amounts to (the verdict).

use super::checks::{
    advisory, check, container_exited, eater_max, eater_text, leftovers_check, node_healthy,
    pod_slice_limit_intact, sandbox_placement, total_memory_exact,
};
use super::{EaterSpec, ExitSpec, Expect, Kind, Scenario};
use crate::pod::MIB;
use crate::report::{Check, Evidence, Verdict};

/// Escaped: the sandbox is outside the pod slice, or the eater got beyond the limit.
/// Memory counts from the eater's log or, when the log is silent, from the sandbox's cgroup.
pub fn incident_verdict(ev: &Evidence, limit_mib: u64) -> Option<Verdict> {
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
        (Some(true), _) | (_, Some(true)) => Some(Verdict::Escaped),
        (Some(false), Some(false)) => Some(Verdict::Bounded),
        _ => None,
    }
}

/// The checks for one scenario's evidence, and its verdict if it has one.
pub fn judge(s: &Scenario, ev: &Evidence) -> (Vec<Check>, Option<Verdict>) {
    match &s.kind {
        Kind::Exit(spec) => (exit_checks(spec, ev), None),
        Kind::Eater(spec) => eater_checks(spec, ev),
        Kind::Refusal => (refusal_checks(ev), None),
    }
}

fn exit_checks(spec: &ExitSpec, ev: &Evidence) -> Vec<Check> {
    let mut checks = vec![container_exited(ev)];
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
    checks
}

fn eater_checks(spec: &EaterSpec, ev: &Evidence) -> (Vec<Check>, Option<Verdict>) {
    let limit = spec.container_limit_mib.unwrap_or(u64::MAX);
    let started = ev.eater.as_ref().is_some_and(|e| e.started);
    let mut checks = Vec::new();
    if spec.expect == Expect::IncidentVerdict {
        // Behind containerd's runc shim, runsc loses the container's stdio: the log
        // stays empty and the sandbox cgroup's memory tells the story instead.
        checks.push(advisory("eater-started", started, eater_text(ev)));
    } else {
        checks.push(check("eater-started", started, eater_text(ev)));
    }
    let verdict = match spec.expect {
        Expect::IncidentVerdict => incident_checks(ev, limit, &mut checks),
        Expect::OomKilled => oom_killed_checks(ev, limit, &mut checks),
        Expect::Guarded => guarded_checks(spec, ev, limit, &mut checks),
        Expect::Overhead { min_mib } => {
            overhead_checks(spec, ev, min_mib, &mut checks);
            None
        }
    };
    (checks, verdict)
}

fn incident_checks(ev: &Evidence, limit: u64, checks: &mut Vec<Check>) -> Option<Verdict> {
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
    v
}

fn oom_killed_checks(ev: &Evidence, limit: u64, checks: &mut Vec<Check>) -> Option<Verdict> {
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
    c.map(|c| {
        if c.oom_killed() {
            Verdict::OomKilled
        } else {
            Verdict::Ended {
                state: c.state,
                exit_code: c.exit_code,
            }
        }
    })
}

fn guarded_checks(
    spec: &EaterSpec,
    ev: &Evidence,
    limit: u64,
    checks: &mut Vec<Check>,
) -> Option<Verdict> {
    checks.extend(sandbox_placement(ev));
    if let Some(want) = spec.sandbox_memory_mib {
        checks.push(total_memory_exact(ev, want * MIB));
    }
    let c = ev.container_final.as_ref();
    let killed =
        c.is_some_and(|c| c.state.is_exited()) && !ev.eater.as_ref().is_some_and(|e| e.done());
    checks.push(check(
        "container-killed",
        killed,
        format!(
            "final state {:?}, {}",
            c.map(|c| c.state.to_string()),
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
    incident_verdict(ev, limit)
}

fn overhead_checks(spec: &EaterSpec, ev: &Evidence, min_mib: u64, checks: &mut Vec<Check>) {
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

fn refusal_checks(ev: &Evidence) -> Vec<Check> {
    let err = ev.run_pod_sandbox_error.as_deref();
    vec![
        check(
            "run-pod-sandbox-failed",
            err.is_some() && ev.sandbox_id.is_none(),
            match (err, &ev.sandbox_id) {
                (Some(e), _) => format!("failed: {e}"),
                (None, Some(id)) => format!("succeeded: sandbox {id}"),
                (None, None) => "RunPodSandbox was not attempted".into(),
            },
        ),
        check(
            "error-mentions-runsc-guard",
            err.is_some_and(|e| e.contains("runsc-guard")),
            err.unwrap_or("no error").to_string(),
        ),
        leftovers_check(ev),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::by_name;
    use super::*;
    use crate::cgroup::CgroupFacts;
    use crate::logs::EaterProgress;
    use crate::report::{
        ContainerFinal, CriContainerState, Leftovers, NodeHealth, PodInfo, SandboxProc,
    };

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
            state: CriContainerState::Exited,
            exit_code: code,
            reason: reason.into(),
            message: String::new(),
        })
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
        assert_eq!(v, Some(Verdict::Escaped));
        let ev = Evidence {
            eater: eater(224, false),
            runsc_sandbox: sandbox(true, 4103303168),
            container_final: exited(137, "OOMKilled"),
            ..Default::default()
        };
        let (c, v) = judge(&s, &ev);
        assert!(failed(&c).is_empty());
        assert_eq!(v, Some(Verdict::Bounded));
        // A silent log (StartContainer blocked, stdio lost) under the pod slice: the cgroup
        // decides.
        let ev = Evidence {
            eater: Some(EaterProgress::default()),
            runsc_sandbox: sandbox(true, 4103303168),
            sandbox_cgroup_memory_max_bytes: Some(200 * MIB),
            ..Default::default()
        };
        assert_eq!(incident_verdict(&ev, 256), Some(Verdict::Bounded));
        let ev = Evidence {
            sandbox_cgroup_memory_max_bytes: Some(1100 * MIB),
            ..ev
        };
        assert_eq!(incident_verdict(&ev, 256), Some(Verdict::Escaped));
        // As seen in the bookworm guest: silent log, sandbox under system.slice, 1 GiB held.
        let (c, v) = judge(&s, &ev);
        assert!(failed(&c).is_empty(), "{c:?}");
        assert_eq!(v, Some(Verdict::Escaped));
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
        assert_eq!(v, Some(Verdict::OomKilled));
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
        assert_eq!(v, Some(Verdict::Bounded));
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
        assert_eq!(v, Some(Verdict::Escaped));
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
