//! The single checks the judgement is made of, each reading one part of the evidence, and the
//! wording of how far the eater got.

use super::HEALTHY_MEM_AVAILABLE_KIB;
use crate::pod::MIB;
use crate::report::{Check, Evidence};

pub(super) fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// A check that is reported but does not decide the outcome.
pub(super) fn advisory(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: format!("{name} (advisory)"),
        ok: true,
        detail: format!("{}{}", if ok { "" } else { "NOT MET: " }, detail.into()),
    }
}

pub(super) fn leftovers_check(ev: &Evidence) -> Check {
    match &ev.leftovers {
        Some(l) => check("nothing-left-behind", l.is_clean(), l.describe()),
        None => check("nothing-left-behind", false, "leftovers were not examined"),
    }
}

pub(super) fn node_healthy(ev: &Evidence) -> Check {
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

pub(super) fn container_exited(ev: &Evidence) -> Check {
    match &ev.container_final {
        Some(c) => check(
            "container-exited",
            c.state.is_exited(),
            format!(
                "state {}, exit {}, reason {:?}",
                c.state, c.exit_code, c.reason
            ),
        ),
        None => check("container-exited", false, "no final container status"),
    }
}

pub(super) fn eater_max(ev: &Evidence) -> Option<u64> {
    ev.eater.as_ref().and_then(|e| e.max_mib())
}

pub(super) fn eater_text(ev: &Evidence) -> String {
    let text = eater_log_text(ev);
    match ev.sandbox_cgroup_memory_max_bytes {
        Some(b) => format!("{text}; sandbox cgroup held up to {} MiB", b / MIB),
        None => text,
    }
}

pub(super) fn eater_log_text(ev: &Evidence) -> String {
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

pub(super) fn sandbox_placement(ev: &Evidence) -> Vec<Check> {
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
pub(super) fn pod_slice_limit_intact(ev: &Evidence) -> Check {
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

pub(super) fn total_memory_exact(ev: &Evidence, want: u64) -> Check {
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
