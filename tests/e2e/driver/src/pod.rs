//! What kubelet would ask for: pod slice names (systemd cgroup driver), pod and container configs.
//!
//! Everything here is pure: it builds names and CRI messages from a scenario's numbers and a uid.

use std::collections::HashMap;

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata,
};
use serde::Serialize;

/// The namespace every e2e pod lives in (only used in names and log directories).
pub const POD_NAMESPACE: &str = "e2e";
/// The label that carries the pod uid, so clean-up can find a sandbox whose id it never learnt.
pub const UID_LABEL: &str = "e2e.runsc-guard/uid";

pub const MIB: u64 = 1024 * 1024;

/// Kubernetes QoS class: decides where kubelet puts the pod slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// A pod's slice as kubelet's systemd cgroup driver names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodSlice {
    /// Unit name, e.g. `kubepods-burstable-pod1234_abcd.slice`: what goes into `cgroup_parent`.
    pub unit: String,
    /// The slice units above it, outermost first (`kubepods.slice`, `kubepods-burstable.slice`).
    pub parents: Vec<String>,
    /// Its cgroup path below the cgroup2 mount, starting with `/`.
    pub path: String,
}

/// kubelet's pod slice for `uid`: `kubepods-<qos>-pod<uid with - as _>.slice`, or
/// `kubepods-pod<uid>.slice` for Guaranteed pods.
pub fn pod_slice(qos: Qos, uid: &str) -> PodSlice {
    let escaped = uid.replace('-', "_");
    let unit = match qos {
        Qos::Guaranteed => format!("kubepods-pod{escaped}.slice"),
        Qos::Burstable => format!("kubepods-burstable-pod{escaped}.slice"),
        Qos::BestEffort => format!("kubepods-besteffort-pod{escaped}.slice"),
    };
    let path = slice_path(&unit);
    let mut parents = slice_ancestors(&unit);
    parents.pop();
    PodSlice {
        unit,
        parents,
        path,
    }
}

/// The slice units systemd derives from a slice name, outermost first, ending with the unit
/// itself: every `-` opens a level (`a-b-c.slice` lives in `a.slice/a-b.slice/a-b-c.slice`).
pub fn slice_ancestors(unit: &str) -> Vec<String> {
    let stem = unit.strip_suffix(".slice").unwrap_or(unit);
    if stem.is_empty() || stem == "-" {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut prefix = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    out
}

/// The cgroup path (below the cgroup2 mount) of a slice unit: `/a.slice/a-b.slice`.
pub fn slice_path(unit: &str) -> String {
    let mut path = String::new();
    for s in slice_ancestors(unit) {
        path.push('/');
        path.push_str(&s);
    }
    path
}

/// The numbers that make a pod: what kubelet would compute from the pod spec.
#[derive(Clone, Debug, Serialize)]
pub struct PodShape {
    pub qos: Qos,
    /// The pod slice's `MemoryMax` (sum of container limits + RuntimeClass overhead), if any.
    pub slice_memory_max: Option<u64>,
    /// `LinuxPodSandboxConfig.resources.memory_limit_in_bytes` (becomes containerd's
    /// `io.kubernetes.cri.sandbox-memory` annotation). `None` sends no resources at all.
    pub sandbox_memory_limit: Option<u64>,
    /// `LinuxPodSandboxConfig.overhead.memory_limit_in_bytes` (RuntimeClass overhead), if any.
    pub overhead_memory: Option<u64>,
    /// The container's `memory_limit_in_bytes`, if any.
    pub container_memory_limit: Option<u64>,
}

/// The fixed parts of one pod: names and ids.
#[derive(Clone, Debug, Serialize)]
pub struct PodIdentity {
    pub name: String,
    pub uid: String,
    pub cgroup_parent: String,
    pub log_directory: String,
}

impl PodIdentity {
    pub fn new(name: &str, uid: &str, cgroup_parent: &str) -> Self {
        PodIdentity {
            name: name.to_string(),
            uid: uid.to_string(),
            cgroup_parent: cgroup_parent.to_string(),
            log_directory: format!("/var/log/pods/{POD_NAMESPACE}_{name}_{uid}"),
        }
    }
}

/// Host network, own pid namespace per container, shared IPC: kubelet's defaults for a
/// `hostNetwork: true` pod.
fn host_network_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn memory_resources(limit: u64) -> LinuxContainerResources {
    LinuxContainerResources {
        cpu_shares: 2,
        memory_limit_in_bytes: i64::try_from(limit).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

pub fn sandbox_config(id: &PodIdentity, shape: &PodShape) -> PodSandboxConfig {
    let resources = shape.sandbox_memory_limit.map(memory_resources);
    let overhead = shape.overhead_memory.map(|m| LinuxContainerResources {
        memory_limit_in_bytes: i64::try_from(m).unwrap_or(i64::MAX),
        ..Default::default()
    });
    let labels = HashMap::from([
        (UID_LABEL.to_string(), id.uid.clone()),
        ("io.kubernetes.pod.name".to_string(), id.name.clone()),
        (
            "io.kubernetes.pod.namespace".to_string(),
            POD_NAMESPACE.to_string(),
        ),
        ("io.kubernetes.pod.uid".to_string(), id.uid.clone()),
    ]);
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: id.name.clone(),
            uid: id.uid.clone(),
            namespace: POD_NAMESPACE.to_string(),
            attempt: 0,
        }),
        // kubelet leaves the hostname empty for host-network pods.
        hostname: String::new(),
        log_directory: id.log_directory.clone(),
        labels,
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: id.cgroup_parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(host_network_namespaces()),
                ..Default::default()
            }),
            resources,
            overhead,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// kubelet's oom_score_adj for a Burstable container: 1000 - 1000 * request / node memory,
/// clamped to [3, 999] (above Guaranteed's -997, below BestEffort's 1000). The request equals the limit here (only a limit is declared).
pub fn burstable_oom_score_adj(request: u64, node_memory: u64) -> i64 {
    if node_memory == 0 {
        return 999;
    }
    let adj = 1000 - (1000u128 * u128::from(request) / u128::from(node_memory)) as i64;
    adj.clamp(3, 999)
}

pub struct ContainerSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub command: Vec<String>,
    pub memory_limit: Option<u64>,
    pub oom_score_adj: i64,
}

/// The container log path relative to the pod's log directory, as kubelet names it.
pub fn container_log_path(name: &str) -> String {
    format!("{name}/0.log")
}

pub fn container_config(spec: &ContainerSpec<'_>) -> ContainerConfig {
    let resources = LinuxContainerResources {
        cpu_shares: 2,
        memory_limit_in_bytes: spec
            .memory_limit
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX))
            .unwrap_or(0),
        oom_score_adj: spec.oom_score_adj,
        ..Default::default()
    };
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: spec.name.to_string(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: spec.image.to_string(),
            ..Default::default()
        }),
        command: spec.command.clone(),
        envs: vec![KeyValue {
            key: "PATH".to_string(),
            value: "/bin:/sbin:/usr/bin:/usr/sbin".to_string(),
        }],
        log_path: container_log_path(spec.name),
        linux: Some(LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(host_network_namespaces()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    #[test]
    fn burstable_slice_replaces_dashes_in_uid() {
        let s = pod_slice(Qos::Burstable, UID);
        assert_eq!(
            s.unit,
            "kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice"
        );
        assert_eq!(
            s.parents,
            vec!["kubepods.slice", "kubepods-burstable.slice"]
        );
        assert_eq!(
            s.path,
            "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice"
        );
    }

    #[test]
    fn besteffort_slice() {
        let s = pod_slice(Qos::BestEffort, "a-b");
        assert_eq!(s.unit, "kubepods-besteffort-poda_b.slice");
        assert_eq!(
            s.path,
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poda_b.slice"
        );
    }

    #[test]
    fn guaranteed_slice_sits_directly_under_kubepods() {
        let s = pod_slice(Qos::Guaranteed, UID);
        assert_eq!(
            s.unit,
            "kubepods-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice"
        );
        assert_eq!(s.parents, vec!["kubepods.slice"]);
        assert_eq!(
            s.path,
            "/kubepods.slice/kubepods-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice"
        );
    }

    #[test]
    fn slice_paths() {
        assert_eq!(slice_path("kubepods.slice"), "/kubepods.slice");
        assert_eq!(slice_path("system.slice"), "/system.slice");
        assert_eq!(slice_path("-.slice"), "");
        assert_eq!(slice_path("a-b-c.slice"), "/a.slice/a-b.slice/a-b-c.slice");
    }

    #[test]
    fn sandbox_config_carries_limits_and_host_network() {
        let id = PodIdentity::new("incident", UID, "kubepods-burstable-podx.slice");
        let shape = PodShape {
            qos: Qos::Burstable,
            slice_memory_max: Some(320 * MIB),
            sandbox_memory_limit: Some(256 * MIB),
            overhead_memory: Some(64 * MIB),
            container_memory_limit: Some(256 * MIB),
        };
        let c = sandbox_config(&id, &shape);
        let linux = c.linux.as_ref().expect("linux config");
        assert_eq!(linux.cgroup_parent, "kubepods-burstable-podx.slice");
        assert_eq!(
            linux.resources.as_ref().map(|r| r.memory_limit_in_bytes),
            Some(268435456)
        );
        assert_eq!(
            linux.overhead.as_ref().map(|r| r.memory_limit_in_bytes),
            Some(67108864)
        );
        let ns = linux
            .security_context
            .as_ref()
            .and_then(|s| s.namespace_options.as_ref())
            .expect("namespace options");
        assert_eq!(ns.network, NamespaceMode::Node as i32);
        assert_eq!(c.hostname, "");
        assert_eq!(c.log_directory, format!("/var/log/pods/e2e_incident_{UID}"));
        assert_eq!(c.labels.get(UID_LABEL).map(String::as_str), Some(UID));
    }

    #[test]
    fn no_limit_means_no_resources() {
        let id = PodIdentity::new("refusal", UID, "kubepods-besteffort-podx.slice");
        let shape = PodShape {
            qos: Qos::BestEffort,
            slice_memory_max: None,
            sandbox_memory_limit: None,
            overhead_memory: None,
            container_memory_limit: None,
        };
        let c = sandbox_config(&id, &shape);
        let linux = c.linux.expect("linux config");
        assert!(linux.resources.is_none());
        assert!(linux.overhead.is_none());
    }

    #[test]
    fn oom_score_adj_like_kubelet() {
        assert_eq!(burstable_oom_score_adj(256 * MIB, 4096 * MIB), 938);
        assert_eq!(burstable_oom_score_adj(0, 4096 * MIB), 999);
        assert_eq!(burstable_oom_score_adj(8192 * MIB, 4096 * MIB), 3);
        assert_eq!(burstable_oom_score_adj(1, 0), 999);
    }

    #[test]
    fn container_config_log_path_and_limit() {
        let c = container_config(&ContainerSpec {
            name: "eater",
            image: "localhost/e2e/eater:1",
            command: vec!["/eater".into(), "1024".into()],
            memory_limit: Some(256 * MIB),
            oom_score_adj: 938,
        });
        assert_eq!(c.log_path, "eater/0.log");
        let r = c.linux.and_then(|l| l.resources).expect("resources");
        assert_eq!(r.memory_limit_in_bytes, 268435456);
        assert_eq!(r.oom_score_adj, 938);
    }
}
