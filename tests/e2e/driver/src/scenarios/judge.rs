//! How a scenario's evidence is judged. Pure: it reads the evidence a run gathered and says
//! which checks hold and, for some scenarios, what the evidence amounts to (the verdict).

use super::checks::{
    advisory, check, container_exited, eater_max, eater_text, leftovers_check, node_healthy,
    pod_slice_limit_intact, sandbox_placement, total_memory_exact,
};
use super::{
    DoctorExpect, EaterSpec, ExitSpec, Expect, HostileSpec, Kind, Scenario, DOCTOR_GUARD_WARNINGS,
};
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
    let (mut checks, verdict) = match &s.kind {
        Kind::Exit(spec) => (exit_checks(spec, ev), None),
        Kind::Eater(spec) => eater_checks(spec, ev),
        Kind::Refusal => (refusal_checks(ev), None),
        Kind::ExitCodes(_) => (exit_code_checks(ev), None),
        Kind::Stats => (stats_checks(ev), None),
        Kind::HostileUnitName(spec) => (hostile_checks(spec, ev), None),
        Kind::Update => (super::pod_ops::update_checks(ev), None),
        Kind::ContainerdRestart => (super::pod_ops::restart_checks(ev), None),
        Kind::PodComplete(pc) => (super::pod_complete::judge_pod_complete(*pc, ev), None),
    };
    if let Some(expect) = s.doctor {
        checks.extend(doctor_checks(expect, ev, verdict.as_ref()));
    }
    (checks, verdict)
}

/// Every container reported EXITED with its own exit code.
fn exit_code_checks(ev: &Evidence) -> Vec<Check> {
    let mut checks = Vec::new();
    if ev.exit_cases.is_empty() {
        checks.push(check("exit-codes", false, "no container was run"));
    }
    for c in &ev.exit_cases {
        let fin = c.final_status.as_ref();
        let exited = fin.is_some_and(|f| f.state.is_exited());
        let code = fin.map(|f| f.exit_code);
        checks.push(check(
            &format!("exit-code-{}", c.name),
            exited && code == Some(c.want_exit_code),
            format!(
                "{:?}: state {}, exit {code:?}, reason {:?}, want exit {}{}",
                c.command,
                fin.map_or("unknown".to_string(), |f| f.state.to_string()),
                fin.map(|f| f.reason.as_str()),
                c.want_exit_code,
                c.start_error
                    .as_deref()
                    .map(|e| format!("; StartContainer: {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    checks.push(leftovers_check(ev));
    checks
}

fn stats_check(name: &str, rec: Option<&crate::report::StatsRecord>) -> Check {
    let Some(r) = rec else {
        return check(name, false, "not asked");
    };
    if let Some(e) = &r.error {
        return check(name, false, format!("failed: {e}"));
    }
    let ws = r.working_set_bytes.unwrap_or(0);
    let cpu = r.cpu_usage_core_nanos.unwrap_or(0);
    let listed = r.container_listed != Some(false);
    check(
        name,
        listed && ws > 0 && cpu > 0,
        format!(
            "{}working set {:?} B, CPU {:?} ns (both must be non-zero)",
            match (r.listed_entries, r.container_listed) {
                (Some(n), Some(l)) => format!("{n} entries, container listed: {l}; "),
                _ => String::new(),
            },
            r.working_set_bytes,
            r.cpu_usage_core_nanos
        ),
    )
}

fn stats_checks(ev: &Evidence) -> Vec<Check> {
    vec![
        stats_check("container-stats", ev.stats.as_ref()),
        stats_check("list-container-stats", ev.list_stats.as_ref()),
        leftovers_check(ev),
    ]
}

/// kubepods.slice untouched, and either the runsc scope widened to the pod's bound or a clean
/// refusal.
fn hostile_checks(spec: &HostileSpec, ev: &Evidence) -> Vec<Check> {
    let Some(h) = &ev.hostile else {
        return vec![check(
            "ctr-run",
            false,
            "the ctr container was not attempted",
        )];
    };
    let mut checks = vec![check(
        "kubepods-slice-unchanged",
        h.kubepods_memory_max_before.is_some()
            && h.kubepods_memory_max_after == h.kubepods_memory_max_before
            && h.kubepods_systemd_after == h.kubepods_systemd_before,
        format!(
            "memory.max {:?} -> {:?}, systemd MemoryMax {:?} -> {:?}",
            h.kubepods_memory_max_before,
            h.kubepods_memory_max_after,
            h.kubepods_systemd_before,
            h.kubepods_systemd_after
        ),
    )];
    match &h.run_error {
        Some(err) => checks.push(check(
            "refused-by-runsc-guard",
            err.contains("runsc-guard"),
            format!("ctr run failed: {err}"),
        )),
        None => {
            let cg = ev.runsc_sandbox.as_ref().and_then(|p| p.cgroup.clone());
            checks.push(check(
                "sandbox-in-runsc-scope",
                cg.as_deref() == Some(h.scope_cgroup.as_str()),
                format!("runsc-sandbox in {cg:?}, want {}", h.scope_cgroup),
            ));
            let want = (spec.slice_memory_max_mib * MIB).to_string();
            checks.push(check(
                "scope-widened-to-pod-bound",
                h.scope_memory_max.as_deref() == Some(want.as_str()),
                format!(
                    "{} memory.max {:?}, want {want}; guard: {}",
                    h.scope_unit,
                    h.scope_memory_max,
                    h.guard_says.join("; ")
                ),
            ));
            checks.push(total_memory_exact(ev, spec.sandbox_memory_mib * MIB));
            let want_slice = spec.slice_memory_max_mib * MIB;
            let got = ev.pod_slice_end.as_ref().map(|f| f.memory_max_bytes());
            checks.push(check(
                "pod-slice-limit-intact",
                got == Some(Some(want_slice)),
                format!("pod slice memory.max {got:?}, want {want_slice}"),
            ));
        }
    }
    let mut left = leftovers_check(ev);
    if !h.scope_units_left.is_empty() {
        left.ok = false;
        left.detail = format!("{}; units: {}", left.detail, h.scope_units_left.join(", "));
    }
    checks.push(left);
    checks.push(node_healthy(ev));
    checks
}

/// What the doctor must have said while the pod ran.
fn doctor_checks(expect: DoctorExpect, ev: &Evidence, verdict: Option<&Verdict>) -> Vec<Check> {
    let Some(d) = &ev.doctor else {
        return vec![check("doctor-ran", false, "runsc-guard doctor was not run")];
    };
    if let Some(e) = d.error.as_deref().or(d.parse_error.as_deref()) {
        return vec![check(
            "doctor-ran",
            false,
            format!("{}: {e}", d.command.join(" ")),
        )];
    }
    let listed: Vec<String> = d
        .findings
        .iter()
        .map(|f| format!("{} {}: {}", f.severity, f.check, f.summary))
        .collect();
    match expect {
        DoctorExpect::NamesPodIfEscaped => {
            let pod_failed = d
                .findings
                .iter()
                .any(|f| f.severity == "fail" && f.summary.contains(&d.pod));
            if verdict == Some(&Verdict::Bounded) {
                return vec![check(
                    "doctor-no-false-alarm",
                    !pod_failed,
                    format!(
                        "the sandbox stayed in its pod; {} named in a failure: {pod_failed}; \
                         findings: {}",
                        d.pod,
                        listed.join(" | ")
                    ),
                )];
            }
            vec![
                check(
                    "doctor-exit-2",
                    d.exit_code == Some(2),
                    format!("exit {:?}", d.exit_code),
                ),
                check(
                    "doctor-names-pod",
                    d.names_pod && pod_failed,
                    format!(
                        "{} named in a failure: {pod_failed}; findings: {}",
                        d.pod,
                        listed.join(" | ")
                    ),
                ),
            ]
        }
        DoctorExpect::Clean => {
            let unexpected: Vec<String> = d
                .findings
                .iter()
                .filter(|f| {
                    f.severity != "warn"
                        || !DOCTOR_GUARD_WARNINGS.iter().any(|(c, _)| *c == f.check)
                })
                .map(|f| format!("{} {}: {}", f.severity, f.check, f.summary))
                .collect();
            vec![check(
                "doctor-clean",
                matches!(d.exit_code, Some(0 | 1)) && unexpected.is_empty(),
                format!(
                    "exit {:?}; findings not allowed: {}",
                    d.exit_code,
                    if unexpected.is_empty() {
                        "none".to_string()
                    } else {
                        unexpected.join(" | ")
                    }
                ),
            )]
        }
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
        ContainerFinal, CriContainerState, DoctorFinding, DoctorRecord, ExitCaseRecord,
        HostileRecord, Leftovers, NodeHealth, PodInfo, SandboxProc, StatsRecord,
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
        // The doctor's part is judged in doctor_judgement.
        let s = Scenario {
            doctor: None,
            ..by_name("incident-stock")
        };
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
        let s = Scenario {
            doctor: None,
            ..by_name("incident-guard")
        };
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

    #[test]
    fn exit_code_judgement() {
        let s = by_name("exit-code");
        let case = |name: &str, want: i32, got: i32| ExitCaseRecord {
            name: name.into(),
            want_exit_code: want,
            final_status: exited(got, "Error"),
            ..Default::default()
        };
        let ev = Evidence {
            exit_cases: vec![case("exit7", 7, 7), case("true", 0, 0)],
            leftovers: Some(Leftovers::default()),
            ..Default::default()
        };
        assert!(failed(&judge(&s, &ev).0).is_empty());
        // What a shim that loses a short-lived init's status reports.
        let ev = Evidence {
            exit_cases: vec![case("exit7", 7, 128), case("true", 0, 0)],
            ..ev
        };
        assert_eq!(failed(&judge(&s, &ev).0), vec!["exit-code-exit7"]);
        assert_eq!(
            failed(&judge(&s, &Evidence::default()).0),
            vec!["exit-codes", "nothing-left-behind"]
        );
    }

    #[test]
    fn stats_judgement() {
        let s = by_name("stats");
        let good = StatsRecord {
            working_set_bytes: Some(4 << 20),
            cpu_usage_core_nanos: Some(120_000_000),
            ..Default::default()
        };
        let ev = Evidence {
            stats: Some(good.clone()),
            list_stats: Some(StatsRecord {
                listed_entries: Some(1),
                container_listed: Some(true),
                ..good.clone()
            }),
            leftovers: Some(Leftovers::default()),
            ..Default::default()
        };
        assert!(failed(&judge(&s, &ev).0).is_empty());
        let ev = Evidence {
            stats: Some(StatsRecord {
                error: Some("ContainerStats: not implemented".into()),
                ..Default::default()
            }),
            list_stats: Some(StatsRecord {
                listed_entries: Some(1),
                container_listed: Some(false),
                ..good
            }),
            ..ev
        };
        assert_eq!(
            failed(&judge(&s, &ev).0),
            vec!["container-stats", "list-container-stats"]
        );
    }

    fn hostile(run_error: Option<&str>, kubepods_after: &str, scope_max: &str) -> Evidence {
        let scope = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu.slice/\
                     cri-containerd-kubepods.slice.scope";
        Evidence {
            hostile: Some(HostileRecord {
                run_error: run_error.map(str::to_string),
                kubepods_memory_max_before: Some("max".into()),
                kubepods_memory_max_after: Some(kubepods_after.into()),
                kubepods_systemd_before: Some("infinity".into()),
                kubepods_systemd_after: Some("infinity".into()),
                scope_unit: "cri-containerd-kubepods.slice.scope".into(),
                scope_cgroup: scope.into(),
                scope_memory_max: Some(scope_max.into()),
                ..Default::default()
            }),
            runsc_sandbox: Some(SandboxProc {
                pid: 9,
                total_memory: Some(268435456),
                cgroup: Some(scope.into()),
                under_pod_slice: true,
                ..Default::default()
            }),
            pod_slice_end: Some(CgroupFacts {
                exists: true,
                memory_max: Some((320 * MIB).to_string()),
                ..Default::default()
            }),
            leftovers: Some(Leftovers::default()),
            node_after: healthy(),
            ..Default::default()
        }
    }

    #[test]
    fn hostile_unit_name_judgement() {
        let s = by_name("hostile-unit-name");
        let widened = (320 * MIB).to_string();
        let c = judge(&s, &hostile(None, "max", &widened)).0;
        assert!(failed(&c).is_empty(), "{c:?}");
        // The guard took the name for the unit: kubepods.slice got the pod's bound.
        assert_eq!(
            failed(&judge(&s, &hostile(None, &widened, "268435456")).0),
            vec!["kubepods-slice-unchanged", "scope-widened-to-pod-bound"]
        );
        let refused = "failed to create shim task: runsc-guard refused container x: bad name";
        assert!(failed(&judge(&s, &hostile(Some(refused), "max", "")).0).is_empty());
        assert_eq!(
            failed(&judge(&s, &hostile(Some("ctr: no such image"), "max", "")).0),
            vec!["refused-by-runsc-guard"]
        );
    }

    fn doctor(exit: i32, findings: &[(&str, &str, &str)]) -> Evidence {
        Evidence {
            doctor: Some(DoctorRecord {
                exit_code: Some(exit),
                pod: "e2e/incident-stock".into(),
                names_pod: findings.iter().any(|f| f.2.contains("e2e/incident-stock")),
                findings: findings
                    .iter()
                    .map(|(sev, check, summary)| DoctorFinding {
                        area: "sandbox".into(),
                        check: check.to_string(),
                        severity: sev.to_string(),
                        summary: summary.to_string(),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn doctor_judgement() {
        let escaped = [(
            "fail",
            "sandbox.abc.placement",
            "the sandbox of pod e2e/incident-stock (pid 9) sits in /system.slice/x",
        )];
        assert!(
            doctor_checks(DoctorExpect::NamesPodIfEscaped, &doctor(2, &escaped), None)
                .iter()
                .all(|c| c.ok)
        );
        let c = doctor_checks(DoctorExpect::NamesPodIfEscaped, &doctor(0, &[]), None);
        assert_eq!(failed(&c), vec!["doctor-exit-2", "doctor-names-pod"]);
        assert!(doctor_checks(DoctorExpect::Clean, &doctor(0, &[]), None)
            .iter()
            .all(|c| c.ok));
        assert_eq!(
            failed(&doctor_checks(
                DoctorExpect::Clean,
                &doctor(2, &escaped),
                None
            )),
            vec!["doctor-clean"]
        );
        // runsc kept the stock sandbox in its pod: the doctor must not blame the pod.
        let bounded = Some(&Verdict::Bounded);
        let c = doctor_checks(DoctorExpect::NamesPodIfEscaped, &doctor(0, &[]), bounded);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let c = doctor_checks(
            DoctorExpect::NamesPodIfEscaped,
            &doctor(2, &escaped),
            bounded,
        );
        assert_eq!(failed(&c), vec!["doctor-no-false-alarm"]);
        let escaped_verdict = Some(&Verdict::Escaped);
        let c = doctor_checks(
            DoctorExpect::NamesPodIfEscaped,
            &doctor(0, &[]),
            escaped_verdict,
        );
        assert_eq!(failed(&c), vec!["doctor-exit-2", "doctor-names-pod"]);
        let not_run = doctor_checks(DoctorExpect::Clean, &Evidence::default(), None);
        assert_eq!(failed(&not_run), vec!["doctor-ran"]);
        let mut unknown = doctor(2, &[]);
        if let Some(d) = unknown.doctor.as_mut() {
            d.parse_error = Some("the output is not JSON".into());
        }
        assert_eq!(
            failed(&doctor_checks(
                DoctorExpect::NamesPodIfEscaped,
                &unknown,
                None
            )),
            vec!["doctor-ran"]
        );
    }
}
