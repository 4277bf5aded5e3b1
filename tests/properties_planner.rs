//! Property tests of the planner, `guard::decide`, through the library's public API: on
//! generated pods and nodes, each checks an invariant of every plan (never just "no panic"), with
//! a fixed case count, and prints how many cases passed, as `tests/properties.rs` does for the
//! parsers.

use std::collections::BTreeMap;
use std::io::Write;

use proptest::prelude::*;
use serde_json::json;

use runsc_guard::annotations::Role;
use runsc_guard::cgroup::{Bytes, CgroupPath, CgroupTree};
use runsc_guard::guard::{decide, GuardInput, HostFacts, Verdict};
use runsc_guard::options::GuardMode;
use runsc_guard::runsc::version::RunscVersion;

mod property_check;
use property_check::check;

const MIB: u64 = 1 << 20;

/// One pod on a node, as the planner sees it.
#[derive(Debug, Clone)]
struct Pod {
    systemd_path: bool,
    systemd_flag: bool,
    systemd_running: bool,
    v2: bool,
    pod_limit: u64,
    qos_limit: Option<u64>,
    kubepods_limit: Option<u64>,
    spec_limit: Option<u64>,
    annotation: Option<u64>,
    version: &'static str,
    /// The sandbox's leaf exists already, with this limit (runsc then keeps it).
    leaf_limit: Option<u64>,
    /// A `dev.gvisor.spec.cgroup-parent` annotation from the pod.
    cgroup_parent: Option<&'static str>,
    /// `ignore-cgroups` in `[runsc_config]`.
    ignore_cgroups: bool,
}

fn pods() -> impl Strategy<Value = Pod> {
    let mib = |lo: u64, hi: u64| (lo..hi).prop_map(|m| m * MIB);
    (
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        mib(16, 8192),
        prop::option::of(mib(16, 8192)),
        prop::option::of(mib(16, 16384)),
        prop::option::of(mib(1, 8192)),
        prop::option::of(mib(1, 8192)),
        prop::sample::select(vec![
            "0.0~20221219.0",
            "release-20231106.0",
            "release-20240729.0",
            "unknown-build",
        ]),
        (
            prop::option::weighted(0.2, mib(1, 16384)),
            prop::option::weighted(
                0.2,
                prop::sample::select(vec!["/", "/system.slice", "/kubepods", "relative"]),
            ),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |(
                (systemd_path, systemd_flag, systemd_running, v2),
                pod_limit,
                qos,
                kube,
                spec,
                ann,
                version,
                (leaf_limit, cgroup_parent, ignore_cgroups),
            )| Pod {
                systemd_path,
                systemd_flag,
                systemd_running,
                v2,
                pod_limit,
                qos_limit: qos,
                kubepods_limit: kube,
                spec_limit: spec,
                annotation: ann,
                version,
                leaf_limit,
                cgroup_parent,
                ignore_cgroups,
            },
        )
}

const UID: &str = "0f1e2d3c_4b5a_6978";
const ID: &str = "5f3c9a0e7d21";

/// The planner as a whole: a plan that is not refused names a leaf under the pod cgroup and a
/// guest no larger than the smallest limit on the way from the pod to the root.
#[test]
fn bounded_plans_stay_in_their_pod() {
    let bounded = std::sync::atomic::AtomicU32::new(0);
    check("planner_bounded_plans", 256, pods(), |pod| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (cgroups, pod_cgroup, spec_path) = if pod.systemd_path {
            let pod_slice = format!("kubepods-burstable-pod{UID}.slice");
            (
                [
                    "/kubepods.slice".to_string(),
                    "/kubepods.slice/kubepods-burstable.slice".to_string(),
                    format!("/kubepods.slice/kubepods-burstable.slice/{pod_slice}"),
                ],
                format!("/kubepods.slice/kubepods-burstable.slice/{pod_slice}"),
                format!("{pod_slice}:cri-containerd:{ID}"),
            )
        } else {
            (
                [
                    "/kubepods".to_string(),
                    "/kubepods/burstable".to_string(),
                    format!("/kubepods/burstable/pod{UID}"),
                ],
                format!("/kubepods/burstable/pod{UID}"),
                format!("/kubepods/burstable/pod{UID}/{ID}"),
            )
        };
        let limits = [pod.kubepods_limit, pod.qos_limit, Some(pod.pod_limit)];
        let (base, file, unlimited) = if pod.v2 {
            std::fs::write(root.join("cgroup.controllers"), "cpu memory\n").unwrap();
            (root.to_path_buf(), "memory.max", "max")
        } else {
            (
                root.join("memory"),
                "memory.limit_in_bytes",
                "9223372036854771712",
            )
        };
        for (cgroup, limit) in cgroups.iter().zip(limits) {
            let d = base.join(cgroup.trim_start_matches('/'));
            std::fs::create_dir_all(&d).unwrap();
            let text = limit.map_or(unlimited.to_string(), |l| l.to_string());
            std::fs::write(d.join(file), text).unwrap();
        }
        if let Some(l) = pod.leaf_limit {
            let leaf = if pod.systemd_path {
                format!("{pod_cgroup}/cri-containerd-{ID}.scope")
            } else {
                format!("{pod_cgroup}/{ID}")
            };
            let d = base.join(leaf.trim_start_matches('/'));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(file), l.to_string()).unwrap();
        }
        let bound = limits.iter().flatten().min().copied().unwrap();
        let tree = CgroupTree::detect(root).unwrap();

        let mut annotations = serde_json::Map::new();
        annotations.insert("io.kubernetes.cri.container-type".into(), json!("sandbox"));
        annotations.insert("io.kubernetes.cri.sandbox-id".into(), json!(ID));
        if let Some(a) = pod.annotation {
            annotations.insert(
                "io.kubernetes.cri.sandbox-memory".into(),
                json!(a.to_string()),
            );
        }
        if let Some(parent) = pod.cgroup_parent {
            annotations.insert("dev.gvisor.spec.cgroup-parent".into(), json!(parent));
        }
        let mut linux = json!({"cgroupsPath": spec_path});
        if let Some(l) = pod.spec_limit {
            linux["resources"] = json!({"memory": {"limit": l}});
        }
        let spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "linux": linux,
            "annotations": annotations,
        }))
        .unwrap();
        let mut runsc_config = BTreeMap::new();
        if pod.systemd_flag {
            runsc_config.insert("systemd-cgroup".to_string(), "true".to_string());
        }
        if pod.ignore_cgroups {
            runsc_config.insert("ignore-cgroups".to_string(), "true".to_string());
        }
        let version =
            RunscVersion::parse(pod.version).unwrap_or_else(|_| RunscVersion::unknown(pod.version));
        let plan = decide(&GuardInput {
            container_id: ID,
            role: Role::Sandbox,
            spec: &spec,
            runsc_config: &runsc_config,
            mode: GuardMode::Enforce,
            runsc_version: &version,
            host: HostFacts {
                systemd_running: pod.systemd_running,
                host_memory: Some(Bytes(64 << 30)),
            },
            tree: &tree,
        });
        if plan.verdict == Verdict::Refused {
            prop_assert!(!plan.refusals.is_empty());
            return Ok(());
        }
        let pod_path = CgroupPath::parse(&pod_cgroup).unwrap();
        prop_assert_eq!(
            plan.pod_cgroup.as_ref(),
            Some(&pod_path),
            "{:?}",
            plan.reasons
        );
        let leaf = plan.leaf_cgroup.clone();
        prop_assert!(
            leaf.as_ref()
                .is_some_and(|l| l == &pod_path || l.is_strictly_under(&pod_path)),
            "leaf {:?} not in pod {pod_path}: {:?}",
            leaf,
            plan.reasons
        );
        let guest = plan.total_memory.map(|b| b.get());
        prop_assert!(
            guest.is_some_and(|g| g <= bound),
            "guest {:?} above the bound {bound}: {:?}",
            guest,
            plan.reasons
        );
        bounded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    // Not vacuous: most generated pods are plannable (proptest may run a case more than once
    // while shrinking, which only happens on failure).
    let bounded = bounded.into_inner();
    let _ = writeln!(
        std::io::stderr().lock(),
        "property planner_bounded_plans: {bounded} of the cases were bounded plans, the rest refused"
    );
    assert!(
        bounded >= 64,
        "only {bounded} of 256 plans were not refused"
    );
}

/// A pod whose cgroup is missing, sized by the sandbox-memory annotation alone.
#[derive(Debug, Clone)]
struct MissingPod {
    systemd_path: bool,
    kubepods_limit: Option<u64>,
    /// Any number, from a plausible pod's to the integer limits.
    annotation: u64,
    host_memory: Option<u64>,
    warn: bool,
}

fn missing_pods() -> impl Strategy<Value = MissingPod> {
    (
        any::<bool>(),
        prop::option::weighted(0.3, (16..65536u64).prop_map(|m| m * MIB)),
        prop_oneof![
            (1..65536u64).prop_map(|m| m * MIB),
            (1u64 << 61)..u64::MAX,
            Just(i64::MAX as u64),
            Just(1u64 << 62),
            Just((1u64 << 62) - 1),
            any::<u64>(),
        ],
        prop::option::weighted(0.8, (1024..(1u64 << 30)).prop_map(|m| m * MIB)),
        any::<bool>(),
    )
        .prop_map(
            |(systemd_path, kubepods_limit, annotation, host_memory, warn)| MissingPod {
                systemd_path,
                kubepods_limit,
                annotation,
                host_memory,
                warn,
            },
        )
}

/// The pod cgroup is missing and the sandbox-memory annotation is any number: the guest is
/// never larger than the host's MemTotal, the annotation is never the pod's bound when it is
/// above MemTotal or from 2^62 up, and enforce mode refuses such an annotation.
#[test]
fn a_missing_pod_never_sizes_the_guest_above_the_host() {
    check(
        "missing_pod_guest_within_host",
        256,
        missing_pods(),
        |pod| {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            std::fs::write(root.join("cgroup.controllers"), "cpu memory\n").unwrap();
            let (kubepods, spec_path) = if pod.systemd_path {
                (
                    "kubepods.slice",
                    format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}"),
                )
            } else {
                ("kubepods", format!("/kubepods/burstable/pod{UID}/{ID}"))
            };
            std::fs::create_dir_all(root.join(kubepods)).unwrap();
            let limit = pod
                .kubepods_limit
                .map_or("max".to_string(), |l| l.to_string());
            std::fs::write(root.join(kubepods).join("memory.max"), limit).unwrap();
            let tree = CgroupTree::detect(root).unwrap();
            let spec = serde_json::from_value(json!({
                "ociVersion": "1.0.2",
                "linux": {"cgroupsPath": spec_path},
                "annotations": {
                    "io.kubernetes.cri.container-type": "sandbox",
                    "io.kubernetes.cri.sandbox-id": ID,
                    "io.kubernetes.cri.sandbox-memory": pod.annotation.to_string(),
                },
            }))
            .unwrap();
            let version = RunscVersion::parse("release-20240729.0").unwrap();
            let plan = decide(&GuardInput {
                container_id: ID,
                role: Role::Sandbox,
                spec: &spec,
                runsc_config: &BTreeMap::new(),
                mode: if pod.warn {
                    GuardMode::Warn
                } else {
                    GuardMode::Enforce
                },
                runsc_version: &version,
                host: HostFacts {
                    systemd_running: true,
                    host_memory: pod.host_memory.map(Bytes),
                },
                tree: &tree,
            });
            let absurd =
                pod.annotation >= 1 << 62 || pod.host_memory.is_some_and(|h| pod.annotation > h);
            if let (Some(host), Some(total)) = (pod.host_memory, plan.total_memory) {
                prop_assert!(
                    total.get() <= host,
                    "guest {total} above the host's {host}: {:?}",
                    plan.reasons
                );
            }
            if let Some(total) = plan.total_memory {
                prop_assert!(total.get() < 1 << 62, "guest {total}: {:?}", plan.reasons);
            }
            if absurd {
                prop_assert_ne!(plan.limit_source.as_deref(), Some("annotation"));
                if !pod.warn {
                    prop_assert_eq!(plan.verdict, Verdict::Refused);
                    // Past i64::MAX it is not a number of bytes at all: a warning names it.
                    prop_assert!(
                        plan.refusals
                            .iter()
                            .chain(&plan.warnings)
                            .any(|r| r.contains(&pod.annotation.to_string())),
                        "{:?}",
                        plan.refusals
                    );
                }
            }
            Ok(())
        },
    );
}
