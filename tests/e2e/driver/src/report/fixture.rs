//! A report with every field set, for the tests of what gets written (report.json,
//! summary.json, report.md, the stdout lines) and of how evidence is judged.

use crate::cgroup::CgroupFacts;
use crate::logs::EaterProgress;
use crate::panics::{FirstAttempt, PanicInfo};
use crate::pod::Qos;
use crate::report::*;

/// Cgroup facts with every field set.
pub fn facts(path: &str, max: &str) -> CgroupFacts {
    CgroupFacts {
        path: path.into(),
        exists: true,
        memory_max: Some(max.into()),
        memory_current: Some(1234),
        memory_peak: Some(268435456),
        memory_events: [("oom_kill".to_string(), 2u64), ("max".to_string(), 7)]
            .into_iter()
            .collect(),
        controllers: Some("cpu memory pids".into()),
        subtree_control: Some("memory".into()),
        children: vec!["a".into()],
        procs: 3,
    }
}

/// A failed, retried scenario with a verdict and every piece of evidence.
pub fn scenario() -> ScenarioReport {
    ScenarioReport {
        name: "incident-guard".into(),
        handler: "runsc".into(),
        description: "The same pod | under runsc-guard.".into(),
        passed: false,
        outcome: Outcome::Failed,
        verdict: Some(Verdict::Bounded),
        error: Some("StartContainer failed:\nboom | twice".into()),
        checks: vec![
            Check {
                name: "sandbox-under-pod-slice".into(),
                ok: true,
                detail: "runsc-sandbox 42 in /kubepods.slice/x".into(),
            },
            Check {
                name: "killed-near-limit".into(),
                ok: false,
                detail: "eater reached 300 MiB (limit 256 MiB, want 128..=256)".into(),
            },
        ],
        evidence: evidence(),
        measurements: measurements(),
        steps: vec![Step {
            t_ms: 0,
            what: "start (handler runsc)".into(),
        }],
        duration_ms: 65000,
        retried: true,
        first_attempt: Some(first_attempt()),
    }
}

/// Three scenarios (that one, a passed one, a timed-out one) and an environment with a setup
/// problem.
pub fn report() -> Report {
    let mut plain = ScenarioReport {
        name: "busybox-exit".into(),
        handler: "runc".into(),
        description: "busybox".into(),
        passed: true,
        outcome: Outcome::Passed,
        ..Default::default()
    };
    plain.evidence.container_final = Some(ContainerFinal {
        state: CriContainerState::Exited,
        exit_code: 3,
        reason: String::new(),
        message: String::new(),
    });
    plain.evidence.container_cgroup = Some("/kubepods.slice/y".into());
    plain.evidence.container_cgroup_under_pod = Some(false);
    plain.evidence.pod = Some(PodInfo {
        slice_memory_max_configured: None,
        ..Default::default()
    });
    let mut timeout = ScenarioReport {
        name: "refusal-guard".into(),
        handler: "runsc".into(),
        outcome: Outcome::Timeout,
        ..Default::default()
    };
    timeout.verdict = Some(Verdict::Ended {
        state: CriContainerState::Running,
        exit_code: 0,
    });
    timeout.evidence.eater = Some(EaterProgress {
        started: true,
        ..Default::default()
    });
    Report {
        suite: "sid".into(),
        driver_version: "0.1.0".into(),
        started_unix: 1700000000,
        duration_ms: 123456,
        environment: Environment {
            kernel: Some("6.1.0-13-amd64".into()),
            cri_runtime: Some("containerd".into()),
            cri_runtime_version: Some("2.1.9".into()),
            runsc_version: Some("runsc version | release-20240729.0".into()),
            mem_total_kib: Some(4000000),
            mem_available_kib_before: Some(3600000),
            mem_available_kib_after: Some(3500000),
            swap_total_kib: Some(0),
            setup_problems: vec!["teardown: kubepods.slice | busy".into()],
        },
        scenarios: vec![scenario(), plain, timeout],
    }
}

/// The evidence of `scenario()`: every field set.
fn evidence() -> Evidence {
    Evidence {
        pod: Some(PodInfo {
            name: "incident-guard".into(),
            uid: "u-1".into(),
            qos: Some(Qos::Burstable),
            cgroup_parent: "kubepods-burstable-podu_1.slice".into(),
            log_directory: "/var/log/pods/e2e_incident-guard_u-1".into(),
            slice_path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu_1.slice"
                .into(),
            slice_created: true,
            slice_memory_max_configured: Some(268435456),
            slice_memory_max_read: Some("268435456".into()),
            sandbox_memory_limit: Some(268435456),
            overhead_memory: Some(67108864),
            container_memory_limit: Some(268435456),
        }),
        sandbox_id: Some("abc".into()),
        container_id: Some("def".into()),
        run_pod_sandbox_error: Some("no error really".into()),
        sandbox: Some(SandboxInfo {
            state: "SANDBOX_READY".into(),
            pid: Some(41),
            cgroups_path: Some("kubepods-burstable-podu_1.slice:cri-containerd:abc".into()),
            sandbox_memory_annotation: Some("268435456".into()),
            runtime_type: Some("io.containerd.runsc.v1".into()),
            error: None,
        }),
        runsc_sandbox: Some(SandboxProc {
            pid: 42,
            total_memory: Some(268435456),
            total_memory_raw: Some("268435456".into()),
            total_host_memory: Some("1".into()),
            cgroup: Some("/kubepods.slice/x".into()),
            under_pod_slice: true,
            cgroup_is_leaf: Some(true),
            cgroup_memory_max: Some("max".into()),
            argv: vec!["runsc-sandbox".into(), "--total-memory=268435456".into()],
        }),
        container_pid: Some(42),
        container_cgroup: Some("/kubepods.slice/x".into()),
        container_cgroup_under_pod: Some(true),
        container_final: Some(ContainerFinal {
            state: CriContainerState::Exited,
            exit_code: 137,
            reason: "OOMKilled".into(),
            message: "killed".into(),
        }),
        eater: Some(EaterProgress {
            started: true,
            eaten_mib: Some(300),
            done_mib: None,
            other: vec!["malloc failed at 301 MiB".into()],
        }),
        eater_timeline: vec![(100, 16), (200, 300)],
        log_tail: vec!["start".into(), "eaten 300 MiB".into()],
        pod_slice_end: Some(facts("/kubepods.slice/p", "268435456")),
        sandbox_cgroup_end: Some(facts("/kubepods.slice/x", "max")),
        sandbox_alive_at_end: Some(false),
        sandbox_cgroup_memory_max_bytes: Some(268435456 + 1024),
        start_blocked: true,
        exec: Some(ExecRecord {
            command: vec!["/eater".into()],
            exit_code: Some(2),
            stdout_head: "usage".into(),
            stderr_head: "err".into(),
            error: None,
            guest_mem_total_kib: Some(262144),
        }),
        stats: Some(StatsRecord {
            working_set_bytes: Some(10),
            usage_bytes: Some(20),
            rss_bytes: Some(5),
            error: None,
            ..Default::default()
        }),
        list_stats: None,
        exit_cases: Vec::new(),
        doctor: None,
        hostile: None,
        pod_ops: None,
        exchanges: Vec::new(),
        groupings: Vec::new(),
        leftovers: Some(Leftovers {
            processes: vec!["1 runsc".into()],
            cgroups: vec!["/x".into()],
            ..Default::default()
        }),
        node_after: Some(NodeHealth {
            cri_answers: true,
            cri_error: None,
            mem_total_kib: Some(4000000),
            mem_available_kib: Some(3000000),
        }),
        notes: vec!["a note | with a pipe".into(), "second".into()],
    }
}

fn measurements() -> Measurements {
    Measurements {
        shims: vec![ProcRss {
            pid: 7,
            name: "containerd-shim-runsc-v1".into(),
            rss_kib: Some(7648),
        }],
        shim_rss_kib_max: Some(8000),
        runsc: vec![ProcRss {
            pid: 42,
            name: "runsc-sandbox".into(),
            rss_kib: None,
        }],
        run_pod_sandbox_ms: Some(1500),
        create_container_ms: Some(250),
        start_container_ms: None,
        to_running_ms: Some(3100),
        stop_pod_sandbox_ms: Some(900),
        remove_pod_sandbox_ms: Some(40),
    }
}

fn first_attempt() -> FirstAttempt {
    FirstAttempt {
        outcome: Outcome::Timeout,
        error: Some("the scenario did not finish".into()),
        failed_checks: vec!["exit-code: no exit code".into()],
        sandbox_id: Some("abc0".into()),
        panic: PanicInfo {
            file: "/var/log/runsc/runsc.log.1.boot.txt".into(),
            line_no: 7,
            line: "panic: | x".into(),
        },
        duration_ms: 1,
        pod_logs: Some("pods/incident-guard.attempt1".into()),
    }
}
