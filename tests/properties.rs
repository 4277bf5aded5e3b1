//! Property tests of the guard's parsers and of the planner, through the library's public API:
//! the cgroupsPath parser, the systemd slice expansion, the limit-file reader, the runsc.toml
//! decoder and `guard::decide`. Each checks an invariant on every generated case (never just
//! "no panic"), with a fixed case count so the whole file runs in seconds, and prints how many
//! cases passed on the terminal (past the test harness' capture), e.g.
//! `property cgroup_path_parse: 512 cases passed`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use runsc_guard::annotations::Role;
use runsc_guard::cgroup::{
    expand_slice, Bytes, CgroupPath, CgroupTree, MemoryLimit, SpecCgroupsPath, SystemdPath,
};
use runsc_guard::guard::{decide, GuardInput, HostFacts, Verdict};
use runsc_guard::options::{GuardMode, ShimConfig};
use runsc_guard::runsc::version::RunscVersion;

const MIB: u64 = 1 << 20;

/// Runs `test` on `cases` values of `strategy` and reports the count. A failure panics with
/// the (shrunk) failing value.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("property {name} failed: {e}");
    }
    // Written to the process' stderr, not through eprintln!, so it shows without --nocapture.
    let _ = writeln!(
        std::io::stderr().lock(),
        "property {name}: {cases} cases passed"
    );
}

/// Strings built from the pieces that matter to a path parser: separators, dots, colons,
/// dashes, control characters, non-ASCII, and ordinary names.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(":".to_string()),
        Just("-".to_string()),
        Just(".slice".to_string()),
        Just("pod".to_string()),
        Just("kubepods".to_string()),
        Just("\0".to_string()),
        Just("\n".to_string()),
        Just("\\".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        "[a-z0-9_]{1,6}",
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..12).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

fn no_traversal(p: &CgroupPath) -> Result<(), TestCaseError> {
    prop_assert!(p.as_str().starts_with('/'), "{p}");
    for c in p.as_str().split('/').skip(1) {
        prop_assert!(
            p.is_root() || (!c.is_empty() && c != "." && c != ".."),
            "{p} has component {c:?}"
        );
        prop_assert!(!c.chars().any(char::is_control), "{p:?}");
    }
    Ok(())
}

/// A path under `root`, with no `..`: what the guard opens stays in the tree it was given.
fn under(root: &Path, path: &Path) -> Result<(), TestCaseError> {
    prop_assert!(
        path.starts_with(root),
        "{} not under {}",
        path.display(),
        root.display()
    );
    prop_assert!(
        !path.components().any(|c| c == Component::ParentDir),
        "{}",
        path.display()
    );
    Ok(())
}

fn v2_tree(dir: &Path) -> CgroupTree {
    std::fs::write(dir.join("cgroup.controllers"), "cpu memory\n").unwrap();
    CgroupTree::detect(dir).unwrap()
}

#[test]
fn cgroup_path_parse() {
    let dir = tempfile::tempdir().unwrap();
    let tree = v2_tree(dir.path());
    check("cgroup_path_parse", 512, path_like(), |raw| {
        let parsed = CgroupPath::parse(&raw);
        let has_dotdot = raw.split('/').any(|c| c == "..");
        if let Ok(p) = parsed {
            prop_assert!(!has_dotdot, "{raw:?} has .. and parsed as {p}");
            no_traversal(&p)?;
            // Normal form: parsing it again gives it back.
            prop_assert_eq!(CgroupPath::parse(p.as_str()).ok(), Some(p.clone()));
            under(tree.root(), &tree.memory_dir(&p))?;
            for a in p.ancestors_to_root().iter().skip(1) {
                prop_assert!(p.is_strictly_under(a), "{p} under {a}");
            }
        }
        Ok(())
    });
}

#[test]
fn spec_cgroups_path_parse() {
    let dir = tempfile::tempdir().unwrap();
    let tree = v2_tree(dir.path());
    let systemd_like = (
        "(kubepods(-burstable|-besteffort)?-pod[a-z0-9_]{1,8}|system|-|)(\\.slice)?",
        "(cri-containerd|[a-z.:-]{0,4})",
        "([0-9a-f]{1,12}|[a-z/.:-]{0,6})",
    )
        .prop_map(|(s, p, n)| format!("{s}:{p}:{n}"));
    let raw = prop_oneof![2 => path_like(), 1 => systemd_like];
    check("spec_cgroups_path_parse", 512, raw, |raw| {
        let Ok(parsed) = SpecCgroupsPath::parse(&raw) else {
            return Ok(());
        };
        prop_assert!(!raw.contains('\0'), "{raw:?}");
        if let Some(leaf) = parsed.leaf() {
            no_traversal(&leaf)?;
            under(tree.root(), &tree.memory_dir(&leaf))?;
            if let Some(pod) = parsed.pod_cgroup() {
                prop_assert!(leaf.is_strictly_under(&pod), "{leaf} not under pod {pod}");
            }
        }
        match &parsed {
            SpecCgroupsPath::Systemd(s) => {
                // The spec form round-trips, and the unit sits in its slice.
                let again = SystemdPath::parse(&s.as_spec_string());
                prop_assert_eq!(again.as_ref().ok(), Some(s));
                prop_assert!(s.leaf().is_strictly_under(&s.slice_cgroup()), "{s:?}");
                let (leaf, unit) = (s.leaf(), s.unit_name());
                prop_assert_eq!(leaf.name(), Some(unit.as_str()));
            }
            SpecCgroupsPath::Relative(r) => {
                prop_assert!(!r.split('/').any(|c| c == ".."), "{r:?}");
            }
            _ => {}
        }
        Ok(())
    });
}

#[test]
fn slice_expansion() {
    let valid = prop::collection::vec("[a-z0-9_]{1,8}", 1..6).prop_map(|parts| parts.join("-"));
    check("slice_expansion_valid", 256, valid, |stem| {
        let slice = format!("{stem}.slice");
        let path = expand_slice(&slice).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let components: Vec<&str> = path.components().collect();
        prop_assert_eq!(components.len(), parts.len());
        for (i, c) in components.iter().enumerate() {
            prop_assert_eq!(c.to_string(), format!("{}.slice", parts[..=i].join("-")));
        }
        prop_assert_eq!(path.name(), Some(slice.as_str()));
        no_traversal(&path)?;
        Ok(())
    });
    check("slice_expansion_any", 512, path_like(), |raw| {
        if let Ok(path) = expand_slice(&raw) {
            no_traversal(&path)?;
            prop_assert!(raw.ends_with(".slice"), "{raw:?}");
            prop_assert!(path.is_root() == (raw == "-.slice"), "{raw:?} -> {path}");
            if !path.is_root() {
                prop_assert_eq!(path.name(), Some(raw.as_str()));
            }
        }
        Ok(())
    });
}

#[test]
fn limit_files() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2");
    let v1 = dir.path().join("v1");
    std::fs::create_dir_all(v2.join("pod")).unwrap();
    std::fs::create_dir_all(v1.join("memory/pod")).unwrap();
    let v2 = v2_tree(&v2);
    let v1 = CgroupTree::detect(&v1).unwrap();
    let pod = CgroupPath::parse("/pod").unwrap();
    let content = prop_oneof![
        any::<u64>().prop_map(|n| format!("{n}\n")),
        Just("max\n".to_string()),
        Just("-1\n".to_string()),
        "[0-9a-z \\n-]{0,24}",
        any::<String>(),
    ];
    check("limit_files_read", 512, content, |text| {
        for tree in [&v2, &v1] {
            std::fs::write(tree.memory_limit_file(&pod), &text).unwrap();
            let unified = tree.layout().is_unified();
            match tree.memory_limit(&pod) {
                Ok(MemoryLimit::Limited(Bytes(b))) => {
                    prop_assert_eq!(text.trim().parse::<u64>().ok(), Some(b), "{:?}", text);
                    prop_assert!(unified || b < 1 << 62, "v1 huge value {b} read as a limit");
                }
                Ok(MemoryLimit::Unlimited) => {
                    let t = text.trim();
                    let ok = if unified {
                        t == "max"
                    } else {
                        t == "-1" || t.parse::<u64>().is_ok_and(|n| n >= 1 << 62)
                    };
                    prop_assert!(ok, "{text:?} read as unlimited");
                }
                Err(_) => {
                    // Refused content is never a plain number (or "max" on v2).
                    let t = text.trim();
                    prop_assert!(
                        t.parse::<u64>().is_err() && !(unified && t == "max"),
                        "{text:?} refused"
                    );
                }
            }
        }
        Ok(())
    });
    // What the guard writes, it reads back.
    check("limit_files_round_trip", 256, 1u64..(1 << 61), |n| {
        for tree in [&v2, &v1] {
            tree.write_memory_limit(&pod, Bytes(n))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                tree.memory_limit(&pod).ok(),
                Some(MemoryLimit::Limited(Bytes(n)))
            );
        }
        Ok(())
    });
}

/// runsc flag names as the shim accepts them, and values without control characters.
fn flags() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z][a-z0-9_.-]{0,12}", "[ -~]{0,16}", 0..5).prop_filter(
        "flags the shim owns",
        |m| {
            !m.keys()
                .any(|k| matches!(k.as_str(), "root" | "log" | "log-fd" | "log-format"))
        },
    )
}

#[test]
fn runsc_toml_decoder() {
    let config = (
        "[a-z/]{1,12}",
        "/[a-z/]{0,12}",
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        prop_oneof![
            Just(GuardMode::Enforce),
            Just(GuardMode::Warn),
            Just(GuardMode::Off)
        ],
        flags(),
    )
        .prop_map(
            |(binary_name, root, io_uid, io_gid, grouping, guard_mode, runsc_config)| ShimConfig {
                binary_name,
                root,
                io_uid,
                io_gid,
                grouping,
                guard_mode,
                runsc_config,
                ..ShimConfig::default()
            },
        );
    check("runsc_toml_round_trip", 256, config, |c| {
        let text = toml::to_string(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back =
            ShimConfig::from_toml(&text, "t").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, c);
        Ok(())
    });

    // Any document: never a panic, never the file's values in the error, and what is
    // accepted becomes runsc arguments that are each one flag.
    let line = prop_oneof![
        Just("[runsc_config]".to_string()),
        Just("guard_mode = \"SECRETx\"".to_string()),
        Just("io_uid = \"SECRETx\"".to_string()),
        Just("binary_name = [\"SECRETx\"]".to_string()),
        Just("root = \"/SECRETx\"".to_string()),
        Just("root = \"SECRETx\"".to_string()),
        Just("-----BEGIN SECRETx-----".to_string()),
        Just("x = SECRETx".to_string()),
        "[a-z_-]{1,8} = \"[ -~]{0,8}SECRETx\"",
        "[a-z_-]{1,8} = [0-9]{1,3}",
        "\"[a-z\\t=\\n -]{0,6}\" = \"[a-z]{0,4}\"",
        "[ -~]{0,20}",
    ];
    let doc = prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"));
    check("runsc_toml_any_document", 512, doc, |text| {
        match ShimConfig::from_toml(&text, "ConfigPath /etc/x") {
            Ok(c) => {
                prop_assert!(Path::new(&c.root).is_absolute());
                for (k, v) in &c.runsc_config {
                    let arg = format!("--{k}={v}");
                    prop_assert!(!arg.chars().any(char::is_control), "{arg:?}");
                    prop_assert!(!k.contains('=') && !k.starts_with('-'), "{k:?}");
                    prop_assert!(!matches!(
                        k.as_str(),
                        "root" | "log" | "log-fd" | "log-format"
                    ));
                }
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains("SECRETx"), "the error quotes the file: {e}");
                prop_assert!(e.contains("/etc/x"), "{e}");
            }
        }
        Ok(())
    });
}

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
