//! The pod-complete scenarios: what kubelet does with a running gVisor pod beyond starting it
//! (ExecSync, a streaming Exec with and without a terminal, Attach), a pod whose second
//! container is OOM-killed, stats, and how many shim processes serve a pod.

use super::checks::{check, leftovers_check};
use super::{Kind, Scenario};
use crate::report::{Check, Evidence, ExchangeRecord};

/// Which pod-complete scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodComplete {
    ExecSync,
    ExecStream,
    Attach,
    TwoContainerOom,
    Grouping,
}

/// The second handler of the guest (tests/e2e/guest-suite.sh): the project's shim with
/// `grouping = false` in its runsc.toml.
pub const NO_GROUPING_HANDLER: &str = "runsc-nogroup";

/// The terminal size the tty exec sends (columns, rows) and what `stty size` then prints.
pub const RESIZE_TO: (u16, u16) = (123, 45);
pub const STTY_SIZE_SAYS: &str = "size=45 123";

/// Containers of the grouping pod (besides its sandbox).
pub const GROUPING_CONTAINERS: usize = 3;

fn scenario(name: &'static str, description: &'static str, pc: PodComplete) -> Scenario {
    Scenario {
        name,
        handler: "runsc",
        description,
        default: true,
        kind: Kind::PodComplete(pc),
        doctor: None,
    }
}

pub(super) fn pod_complete_scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "exec-sync",
            "ExecSync in a running busybox container: `sh -c 'echo out; echo err >&2'` exits 0 \
             with `out` on stdout and `err` on stderr; `sh -c 'exit 5'` exits 5.",
            PodComplete::ExecSync,
        ),
        scenario(
            "exec-stream",
            "CRI Exec through containerd's streaming server over WebSocket (v4.channel.k8s.io), \
             as kubectl exec -it: with a tty and a resize to 123x45, `stty size` inside says \
             `45 123`; without a tty, a shell reads a line from stdin, echoes it on stdout, \
             writes stderr and exits 3.",
            PodComplete::ExecStream,
        ),
        scenario(
            "attach",
            "CRI Attach to a running container with stdin: a line written to its stdin comes \
             back on its stdout through the attach stream.",
            PodComplete::Attach,
        ),
        scenario(
            "two-container-oom",
            "A pod of a sleeper and an eater (pod slice and sandbox-memory 256 MiB): both \
             containers end, the eater with exit 137 and reason OOMKilled.",
            PodComplete::TwoContainerOom,
        ),
        scenario(
            "grouping",
            "A pod of three busybox containers: one shim process serves it (grouping, the \
             default); the same pod on the runsc-nogroup handler (`grouping = false`) has one \
             shim per container, its sandbox's included (four).",
            PodComplete::Grouping,
        ),
    ]
}

pub(super) fn judge_pod_complete(pc: PodComplete, ev: &Evidence) -> Vec<Check> {
    let mut checks = match pc {
        PodComplete::ExecSync | PodComplete::ExecStream | PodComplete::Attach => {
            exchange_checks(ev)
        }
        PodComplete::TwoContainerOom => oom_checks(ev),
        PodComplete::Grouping => grouping_checks(ev),
    };
    checks.push(leftovers_check(ev));
    checks
}

fn exchange_check(x: &ExchangeRecord) -> Check {
    let mut missing: Vec<String> = Vec::new();
    for w in &x.want_stdout {
        if !x.stdout.contains(w.as_str()) {
            missing.push(format!("stdout lacks {w:?}"));
        }
    }
    for w in &x.want_stderr {
        if !x.stderr.contains(w.as_str()) {
            missing.push(format!("stderr lacks {w:?}"));
        }
    }
    if let Some(want) = x.want_exit_code {
        if x.exit_code != Some(want) {
            missing.push(format!("exit code {:?}, want {want}", x.exit_code));
        }
    }
    if let Some(e) = &x.error {
        missing.push(format!("error: {e}"));
    }
    check(
        &x.name,
        missing.is_empty(),
        format!(
            "{} {:?}{}: exit {:?}, stdout {:?}, stderr {:?}{}",
            x.via,
            x.command,
            if x.tty { " (tty)" } else { "" },
            x.exit_code,
            x.stdout,
            x.stderr,
            if missing.is_empty() {
                String::new()
            } else {
                format!("; {}", missing.join("; "))
            }
        ),
    )
}

fn exchange_checks(ev: &Evidence) -> Vec<Check> {
    if ev.exchanges.is_empty() {
        return vec![check("exchanges", false, "no exchange was made")];
    }
    ev.exchanges.iter().map(exchange_check).collect()
}

/// The eater EXITED with 137 and OOMKilled; the sleeper EXITED too.
fn oom_checks(ev: &Evidence) -> Vec<Check> {
    let mut checks = Vec::new();
    if ev.exit_cases.len() != 2 {
        checks.push(check(
            "containers",
            false,
            format!("{} of 2 containers recorded", ev.exit_cases.len()),
        ));
    }
    for c in &ev.exit_cases {
        let fin = c.final_status.as_ref();
        let exited = fin.is_some_and(|f| f.state.is_exited());
        let code = fin.map(|f| f.exit_code);
        let reason = fin.map(|f| f.reason.as_str());
        let ok = if c.name == "eater" {
            exited && code == Some(137) && reason == Some("OOMKilled")
        } else {
            exited
        };
        checks.push(check(
            &format!("{}-ended", c.name),
            ok,
            format!(
                "state {}, exit {code:?}, reason {reason:?}{}",
                fin.map_or("unknown".to_string(), |f| f.state.to_string()),
                if c.name == "eater" {
                    "; want EXITED, 137, OOMKilled"
                } else {
                    "; want EXITED"
                }
            ),
        ));
    }
    checks
}

fn grouping_checks(ev: &Evidence) -> Vec<Check> {
    if ev.groupings.len() != 2 {
        return vec![check(
            "grouping",
            false,
            format!(
                "{} of 2 pods (grouping on, off) recorded",
                ev.groupings.len()
            ),
        )];
    }
    ev.groupings
        .iter()
        .map(|g| {
            check(
                &format!("shims-{}", g.handler),
                g.error.is_none()
                    && g.running == g.ids.len()
                    && g.shims.len() == g.want_shims
                    && g.left_behind.is_none(),
                format!(
                    "grouping = {}: {} of {} tasks running, {} shim process(es) {:?}, want {}; \
                     left behind: {}{}",
                    g.grouping,
                    g.running,
                    g.ids.len(),
                    g.shims.len(),
                    g.shims,
                    g.want_shims,
                    g.left_behind.as_deref().unwrap_or("nothing"),
                    g.error
                        .as_deref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ContainerFinal, CriContainerState, ExitCaseRecord, GroupingRecord};

    fn x(stdout: &str, exit: Option<i32>) -> ExchangeRecord {
        ExchangeRecord {
            name: "exec-no-tty".into(),
            via: "Exec".into(),
            want_exit_code: Some(3),
            want_stdout: vec!["got:hi".into()],
            stdout: stdout.into(),
            exit_code: exit,
            ..Default::default()
        }
    }

    #[test]
    fn exchanges_need_output_and_exit_code() {
        assert!(exchange_check(&x("got:hi\n", Some(3))).ok);
        assert!(!exchange_check(&x("got:hi\n", Some(0))).ok);
        assert!(!exchange_check(&x("", Some(3))).ok);
        assert!(!judge_pod_complete(PodComplete::ExecSync, &Evidence::default())[0].ok);
    }

    fn fin(code: i32, reason: &str) -> Option<ContainerFinal> {
        Some(ContainerFinal {
            state: CriContainerState::from(k8s_cri::v1::ContainerState::ContainerExited as i32),
            exit_code: code,
            reason: reason.into(),
            message: String::new(),
        })
    }

    #[test]
    fn oom_wants_the_eater_oom_killed() {
        let case = |name: &str, f| ExitCaseRecord {
            name: name.into(),
            final_status: f,
            ..Default::default()
        };
        let ev = Evidence {
            exit_cases: vec![
                case("sleeper", fin(137, "Error")),
                case("eater", fin(137, "OOMKilled")),
            ],
            ..Default::default()
        };
        assert!(oom_checks(&ev).iter().all(|c| c.ok));
        let ev = Evidence {
            exit_cases: vec![case("sleeper", None), case("eater", fin(128, "Error"))],
            ..Default::default()
        };
        assert!(oom_checks(&ev).iter().all(|c| !c.ok));
    }

    #[test]
    fn grouping_counts_shims() {
        let g = |grouping, n, want| GroupingRecord {
            handler: if grouping {
                "runsc"
            } else {
                NO_GROUPING_HANDLER
            }
            .into(),
            grouping,
            ids: vec!["s".into(), "a".into(), "b".into(), "c".into()],
            running: 4,
            want_shims: want,
            shims: (0..n).map(|i| (i as u32, "s".to_string())).collect(),
            left_behind: None,
            error: None,
        };
        let ok = Evidence {
            groupings: vec![g(true, 1, 1), g(false, 4, 4)],
            ..Default::default()
        };
        assert!(grouping_checks(&ok).iter().all(|c| c.ok));
        let bad = Evidence {
            groupings: vec![g(true, 4, 1), g(false, 4, 4)],
            ..Default::default()
        };
        assert!(!grouping_checks(&bad)[0].ok);
    }
}
