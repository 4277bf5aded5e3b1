//! The running sandboxes: where each sits, and whether its guest fits its pod's bound.

use super::super::facts::{NodeFacts, SandboxFacts};
use super::super::Area;
use super::Findings;
use crate::cgroup::{CgroupPath, MemoryLimit};

pub(super) fn sandboxes(node: &NodeFacts, f: &mut Findings) {
    if let Some(e) = &node.proc_error {
        f.fail(
            Area::Sandbox,
            "sandboxes",
            e.clone(),
            "run the doctor with the host's /proc (hostPID in a pod) or pass --proc",
        );
        return;
    }
    if node.cgroups.layout.is_none() {
        return;
    }
    if node.sandboxes.is_empty() {
        f.ok(
            Area::Sandbox,
            "sandboxes",
            "no gVisor sandbox (runsc-sandbox) is running",
        );
        return;
    }
    for s in &node.sandboxes {
        sandbox(node, s, f);
    }
}

/// Which shim made the sandbox, from runsc's `--root` (each shim's default root).
fn created_by(s: &SandboxFacts) -> String {
    match s.runsc_root.as_deref() {
        Some(root) if root.starts_with("/run/containerd/runc/") => format!(
            "; it was created through runc's shim (runsc root {root}), so by a handler with \
             BinaryName = runsc"
        ),
        Some(root) if root.starts_with("/run/containerd/runsc/") => {
            format!("; it was created by a runsc shim (runsc root {root})")
        }
        _ => String::new(),
    }
}

fn sandbox(node: &NodeFacts, s: &SandboxFacts, f: &mut Findings) {
    let id = s
        .container_id
        .clone()
        .unwrap_or_else(|| format!("pid{}", s.pid));
    let who = match s.pod.label() {
        Some(pod) => format!("the sandbox of pod {pod} (pid {})", s.pid),
        None => format!("sandbox {id} (pid {})", s.pid),
    };
    let recreate = match (&s.pod.namespace, &s.pod.name) {
        (Some(ns), Some(name)) => format!("kubectl delete pod -n {ns} {name}"),
        _ => "delete the pod".to_string(),
    };
    let it = Subject {
        id: &id,
        who: &who,
        recreate: &recreate,
    };
    unreadable(s, &it, f);
    if placement(s, &it, f) {
        memory(node, s, &it, f);
    }
}

/// The sandbox a finding is about, as the findings name it.
struct Subject<'a> {
    id: &'a str,
    who: &'a str,
    recreate: &'a str,
}

impl Subject<'_> {
    fn check(&self, what: &str) -> String {
        format!("sandbox.{}.{what}", self.id)
    }
}

/// What could not be read about the sandbox.
fn unreadable(s: &SandboxFacts, it: &Subject, f: &mut Findings) {
    let who = it.who;
    let mut problems: Vec<String> = s.problems.clone();
    problems.extend(s.observation.problems.iter().cloned());
    if !problems.is_empty() {
        f.warn(
            Area::Sandbox,
            it.check("read"),
            format!("{who}: {}", problems.join("; ")),
            "run the doctor as root with the host's /proc and the containerd state directory \
             readable, so the sandbox's bundle and cgroup can be read",
        );
    }
}

/// Where the sandbox sits against its pod's cgroup; false when it belongs to no pod.
fn placement(s: &SandboxFacts, it: &Subject, f: &mut Findings) -> bool {
    let (who, recreate) = (it.who, it.recreate);
    let own = s
        .observation
        .cgroup
        .as_deref()
        .and_then(|c| CgroupPath::parse(c).ok());
    let Some(pod) = &s.pod_cgroup else {
        f.ok(
            Area::Sandbox,
            it.check("placement"),
            format!(
                "{who} sits in {}, in no Kubernetes pod (ctr, nerdctl, Docker): no pod bound to hold",
                s.observation.cgroup.as_deref().unwrap_or("an unknown cgroup")
            ),
        );
        return false;
    };
    match &own {
        Some(own) if own.is_strictly_under(pod) => f.ok(
            Area::Sandbox,
            it.check("placement"),
            format!("{who} sits in {own}, a leaf under its pod's cgroup"),
        ),
        Some(own) => f.fail(
            Area::Sandbox,
            it.check("placement"),
            format!(
                "{who} sits in {own}, OUTSIDE its pod's cgroup {pod}: the pod's memory limit \
                 does not apply to it{}{}",
                if own.as_str().starts_with("/system.slice")
                    || own.as_str().starts_with("/runtime.slice")
                {
                    " (it landed beside containerd, the escape of a systemd path read without \
                     --systemd-cgroup)"
                } else {
                    ""
                },
                created_by(s)
            ),
            format!(
                "fix the handler (see the handler.*.systemd-cgroup finding; runsc-guard's shim \
                 refuses such a sandbox instead), restart containerd, then {recreate}; until \
                 then the sandbox can take the node's memory"
            ),
        ),
        None => f.warn(
            Area::Sandbox,
            it.check("placement"),
            format!("{who}: its cgroup cannot be read, so its placement is unknown"),
            "run the doctor as root with the host's /proc",
        ),
    }
    true
}

/// The guest's size (`--total-memory`) against its pod's memory limit.
fn memory(node: &NodeFacts, s: &SandboxFacts, it: &Subject, f: &mut Findings) {
    let (who, recreate) = (it.who, it.recreate);
    let Some(limit) = &s.pod_limit else {
        return;
    };
    let limit = limit.limit();
    match (s.observation.total_memory, limit) {
        (None, _) => f.warn(
            Area::Sandbox,
            it.check("memory"),
            format!("{who}: no --total-memory on its command line, so the guest's size is unknown"),
            "check the runsc-sandbox process's command line (/proc/<pid>/cmdline)",
        ),
        (Some(total), MemoryLimit::Limited(bound)) if total > bound => f.fail(
            Area::Sandbox,
            it.check("memory"),
            format!(
                "{who} was booted with --total-memory {total} ({} bytes{}), above its pod's \
                 limit {bound}: the guest believes it has memory the pod does not",
                total.get(),
                if node.host_memory == Some(total) {
                    ", the whole node's memory"
                } else {
                    ""
                }
            ),
            format!(
                "run the handler behind runsc-guard's shim (it sizes the guest to the pod's \
                 bound) or runsc 20231106 or later with --systemd-cgroup, then {recreate}"
            ),
        ),
        (Some(total), MemoryLimit::Limited(bound)) => f.ok(
            Area::Sandbox,
            it.check("memory"),
            format!("{who}: guest {total}, within its pod's limit {bound}"),
        ),
        (Some(total), MemoryLimit::Unlimited) => f.ok(
            Area::Sandbox,
            it.check("memory"),
            format!("{who}: guest {total}; its pod has no memory limit"),
        ),
    }
}
