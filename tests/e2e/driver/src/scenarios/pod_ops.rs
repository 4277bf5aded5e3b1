//! Scenarios that change a running pod from outside, as kubelet and an operator do: Update of
//! its resources through CRI (in-place resize), and containerd restarted while it runs. Their
//! evidence is `report::PodOpsRecord`; their bodies are `run/pod_ops.rs`.

use super::checks::{check, leftovers_check, node_healthy};
use super::{Kind, Scenario};
use crate::pod::MIB;
use crate::report::{Check, CriContainerState, Evidence};

/// The update scenario's pod: a 256 MiB slice and container limit; an update to 192 MiB, then
/// one to 512 MiB, above the pod's bound.
pub const UPDATE_POD_MIB: u64 = 256;
pub const UPDATE_TO_MIB: u64 = 192;
pub const UPDATE_ABOVE_MIB: u64 = 512;
/// The busybox that just stays up.
pub const SLEEPER: &str = "echo up; exec sleep 3600";

pub fn pod_ops_scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "update",
            handler: "runsc",
            description: "UpdateContainerResources through CRI on a running container of a \
                          Burstable pod (256 MiB slice and limit): 192 MiB becomes the sandbox \
                          cgroup's memory.max; 512 MiB, above the pod's bound, is refused and \
                          changes nothing.",
            default: true,
            kind: Kind::Update,
            doctor: None,
        },
        Scenario {
            name: "containerd-restart",
            handler: "runsc",
            description: "containerd restarted (systemctl restart) while a pod runs: the same \
                          shim keeps serving it, ContainerStatus says RUNNING, ExecSync works, \
                          then StopPodSandbox and RemovePodSandbox leave nothing behind; the \
                          shim's RSS before and after is recorded.",
            default: true,
            kind: Kind::ContainerdRestart,
            doctor: None,
        },
    ]
}

fn bytes(mib: u64) -> String {
    (mib * MIB).to_string()
}

pub(super) fn update_checks(ev: &Evidence) -> Vec<Check> {
    let Some(u) = ev.pod_ops.as_ref().and_then(|p| p.update.as_ref()) else {
        return vec![check("update", false, "the update was never tried")];
    };
    let want = bytes(UPDATE_TO_MIB);
    vec![
        check(
            "update-applied",
            u.update_error.is_none() && u.memory_max_after.as_deref() == Some(want.as_str()),
            format!(
                "UpdateContainerResources {} bytes: {}; {} memory.max {:?} -> {:?} (want {want})",
                u.requested_bytes,
                u.update_error.as_deref().unwrap_or("ok"),
                u.sandbox_cgroup.as_deref().unwrap_or("?"),
                u.memory_max_before,
                u.memory_max_after
            ),
        ),
        check(
            "update-above-bound-refused",
            u.above_error
                .as_deref()
                .is_some_and(|e| e.contains("above the pod's bound"))
                && u.memory_max_after_above.as_deref() == Some(want.as_str()),
            format!(
                "UpdateContainerResources {} bytes: {}; memory.max then {:?} (want unchanged \
                 {want})",
                u.above_bytes,
                u.above_error.as_deref().unwrap_or("accepted"),
                u.memory_max_after_above
            ),
        ),
        leftovers_check(ev),
        node_healthy(ev),
    ]
}

pub(super) fn restart_checks(ev: &Evidence) -> Vec<Check> {
    let Some(r) = ev.pod_ops.as_ref().and_then(|p| p.restart.as_ref()) else {
        return vec![check(
            "containerd-restart",
            false,
            "containerd was never restarted",
        )];
    };
    vec![
        check(
            "containerd-restarted",
            r.restart_error.is_none() && r.cri_back_ms.is_some(),
            format!(
                "systemctl restart containerd: {}; CRI answered again after {:?} ms",
                r.restart_error.as_deref().unwrap_or("ok"),
                r.cri_back_ms
            ),
        ),
        check(
            "same-shim-and-sandbox",
            !r.shim_pids_before.is_empty()
                && r.shim_pids_after == r.shim_pids_before
                && r.sandbox_pid_before.is_some()
                && r.sandbox_pid_after == r.sandbox_pid_before,
            format!(
                "shims {:?} -> {:?}, runsc-sandbox {:?} -> {:?}",
                r.shim_pids_before, r.shim_pids_after, r.sandbox_pid_before, r.sandbox_pid_after
            ),
        ),
        check(
            "pod-running-after-restart",
            r.container_state_after.as_deref()
                == Some(CriContainerState::Running.to_string().as_str())
                && r.sandbox_ready_after == Some(true),
            format!(
                "container {:?}, sandbox ready {:?}",
                r.container_state_after, r.sandbox_ready_after
            ),
        ),
        check(
            "exec-after-restart",
            r.exec_after
                .as_ref()
                .is_some_and(|(code, out)| *code == 0 && out.trim() == "alive"),
            format!(
                "ExecSync echo alive: {}",
                match (&r.exec_after, &r.exec_error) {
                    (Some((c, o)), _) => format!("exit {c}, stdout {o:?}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "not run".to_string(),
                }
            ),
        ),
        leftovers_check(ev),
        node_healthy(ev),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Leftovers, NodeHealth, PodOpsRecord, RestartRecord};

    #[test]
    fn a_pod_that_lived_through_the_restart_passes() {
        let mut ev = Evidence {
            leftovers: Some(Leftovers::default()),
            node_after: Some(NodeHealth {
                cri_answers: true,
                mem_available_kib: Some(1 << 20),
                ..Default::default()
            }),
            ..Default::default()
        };
        ev.pod_ops = Some(PodOpsRecord {
            restart: Some(RestartRecord {
                shim_pids_before: vec![991],
                shim_pids_after: vec![991],
                sandbox_pid_before: Some(1014),
                sandbox_pid_after: Some(1014),
                cri_back_ms: Some(896),
                // As the run records it, from CRI's state.
                container_state_after: Some(CriContainerState::Running.to_string()),
                sandbox_ready_after: Some(true),
                exec_after: Some((0, "alive\n".to_string())),
                ..Default::default()
            }),
            ..Default::default()
        });
        let failed: Vec<String> = restart_checks(&ev)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
    }
}
