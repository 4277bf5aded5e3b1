//! The decision against fixture cgroup trees made in temp dirs, one table row per situation the
//! guard knows, plus the verification and the record.

use std::collections::BTreeMap;

use oci_spec::runtime::Spec;
use serde_json::json;

use super::*;
use crate::annotations::{Role, GVISOR_CGROUP_PARENT, SANDBOX_MEMORY};
use crate::cgroup::{CgroupLayout, CgroupPath};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const UID: &str = "1a2b_3c4d";
const ID: &str = "abc123";

/// A cgroup tree in a temp dir: `(cgroup, limit file content)` pairs; `None` content makes the
/// directory without a limit file.
struct Fixture {
    dir: tempfile::TempDir,
    tree: CgroupTree,
}

fn fixture(layout: CgroupLayout, cgroups: &[(&str, Option<&str>)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (base, file) = match layout {
        CgroupLayout::Unified => {
            std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
            (root.to_path_buf(), "memory.max")
        }
        CgroupLayout::Legacy | CgroupLayout::Hybrid => {
            std::fs::create_dir_all(root.join("memory")).unwrap();
            if layout == CgroupLayout::Hybrid {
                std::fs::create_dir_all(root.join("unified")).unwrap();
                std::fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
            }
            (root.join("memory"), "memory.limit_in_bytes")
        }
    };
    for (cgroup, content) in cgroups {
        let d = base.join(cgroup.trim_start_matches('/'));
        std::fs::create_dir_all(&d).unwrap();
        if let Some(c) = content {
            std::fs::write(d.join(file), format!("{c}\n")).unwrap();
        }
    }
    let tree = CgroupTree::detect(root).unwrap();
    assert_eq!(tree.layout(), layout);
    Fixture { dir, tree }
}

const V1_MAX: &str = "9223372036854771712";

/// kubelet's systemd layout with the given limits (`"max"` for none) on kubepods.slice, the
/// QoS slice and the pod slice.
fn systemd_pod(qos: &str, kubepods: &str, qos_limit: &str, pod: &str) -> Fixture {
    let kp = "/kubepods.slice";
    let q = format!("{kp}/kubepods-{qos}.slice");
    let p = format!("{q}/kubepods-{qos}-pod{UID}.slice");
    fixture(
        CgroupLayout::Unified,
        &[(kp, Some(kubepods)), (&q, Some(qos_limit)), (&p, Some(pod))],
    )
}

fn systemd_path(qos: &str) -> String {
    if qos == "guaranteed" {
        format!("kubepods-pod{UID}.slice:cri-containerd:{ID}")
    } else {
        format!("kubepods-{qos}-pod{UID}.slice:cri-containerd:{ID}")
    }
}

fn pod_slice(qos: &str) -> String {
    if qos == "guaranteed" {
        format!("/kubepods.slice/kubepods-pod{UID}.slice")
    } else {
        format!("/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID}.slice")
    }
}

/// The incident's pod: Burstable under the systemd driver, 256 MiB on its slice and no limit
/// above it.
fn incident_pod() -> Fixture {
    systemd_pod("burstable", "max", "max", "268435456")
}

/// The sandbox spec containerd writes for the incident's pod: its systemd cgroupsPath, no memory
/// limit of its own, no annotation.
fn incident_spec() -> Spec {
    spec(Some(&systemd_path("burstable")), None, &[])
}

/// [`incident_spec`] with CRI's sandbox-memory annotation set to `value` (as written, so a test
/// can give garbage).
fn incident_spec_with_sandbox_memory(value: &str) -> Spec {
    spec(
        Some(&systemd_path("burstable")),
        None,
        &[(SANDBOX_MEMORY, value)],
    )
}

fn spec(cgroups_path: Option<&str>, limit: Option<i64>, annotations: &[(&str, &str)]) -> Spec {
    let mut linux = json!({});
    if let Some(p) = cgroups_path {
        linux["cgroupsPath"] = json!(p);
    }
    if let Some(l) = limit {
        linux["resources"] = json!({"memory": {"limit": l}, "cpu": {"shares": 2}});
    }
    let annotations: BTreeMap<_, _> = annotations.iter().cloned().collect();
    serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "linux": linux,
        "annotations": annotations,
    }))
    .unwrap()
}

/// What varies besides the tree and the spec; the defaults are the incident's node.
#[derive(Clone)]
struct Setup {
    mode: GuardMode,
    runsc_config: BTreeMap<String, String>,
    version: &'static str,
    systemd_running: bool,
    role: Role,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            mode: GuardMode::Enforce,
            runsc_config: BTreeMap::new(),
            version: "0.0~20221219.0",
            systemd_running: true,
            role: Role::Sandbox,
        }
    }
}

impl Setup {
    fn mode(mut self, mode: GuardMode) -> Self {
        self.mode = mode;
        self
    }
    fn flag(mut self, key: &str, value: &str) -> Self {
        self.runsc_config.insert(key.into(), value.into());
        self
    }
    fn version(mut self, v: &'static str) -> Self {
        self.version = v;
        self
    }
    fn no_systemd(mut self) -> Self {
        self.systemd_running = false;
        self
    }
    fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
}

fn run(fx: &Fixture, spec: &Spec, setup: &Setup) -> SandboxPlan {
    let version =
        RunscVersion::parse(setup.version).unwrap_or_else(|_| RunscVersion::unknown(setup.version));
    let input = GuardInput {
        container_id: ID,
        role: setup.role,
        spec,
        runsc_config: &setup.runsc_config,
        mode: setup.mode,
        runsc_version: &version,
        host: HostFacts {
            systemd_running: setup.systemd_running,
            host_memory: Some(Bytes(64 * GIB)),
        },
        tree: &fx.tree,
    };
    plan(&input)
}

/// [`run`] on the incident's node: [`Setup`]'s defaults.
fn run_with_defaults(fx: &Fixture, spec: &Spec) -> SandboxPlan {
    run(fx, spec, &Setup::default())
}

fn all_text(p: &SandboxPlan) -> String {
    [p.reasons.clone(), p.warnings.clone(), p.refusals.clone()]
        .concat()
        .join("\n")
}

/// The expected decision, as the plan's JSON fields.
struct Expect<'a> {
    driver: Driver,
    verdict: Verdict,
    pod_cgroup: Option<String>,
    pod_memory_limit: Option<u64>,
    /// The end of the limit source's path, or "annotation".
    limit_source: Option<&'static str>,
    total_memory: Option<u64>,
    runsc_flags: &'a [&'a str],
    /// The start of each spec change, in order.
    spec_changes: &'a [&'a str],
    /// `(from, to)` of the relaxation.
    relax: Option<(u64, u64)>,
    /// Words that must appear in the reasons, warnings or refusals.
    says: &'a [&'a str],
}

fn check(name: &str, p: &SandboxPlan, e: &Expect<'_>) {
    let ctx = format!("{name}:\n{}", serde_json::to_string_pretty(p).unwrap());
    assert_eq!(p.driver, e.driver, "driver, {ctx}");
    assert_eq!(p.verdict, e.verdict, "verdict, {ctx}");
    assert_eq!(
        p.pod_cgroup.as_ref().map(|c| c.to_string()),
        e.pod_cgroup,
        "pod_cgroup, {ctx}"
    );
    assert_eq!(
        p.pod_memory_limit.map(Bytes::get),
        e.pod_memory_limit,
        "pod_memory_limit, {ctx}"
    );
    match (&p.limit_source, e.limit_source) {
        (Some(got), Some(want)) => assert!(got.ends_with(want), "limit_source, {ctx}"),
        (got, want) => assert_eq!(got.as_deref(), want, "limit_source, {ctx}"),
    }
    assert_eq!(
        p.total_memory.map(Bytes::get),
        e.total_memory,
        "total_memory, {ctx}"
    );
    assert_eq!(p.runsc_flags, e.runsc_flags, "runsc_flags, {ctx}");
    assert_eq!(
        p.spec_changes.len(),
        e.spec_changes.len(),
        "spec_changes, {ctx}"
    );
    for (got, want) in p.spec_changes.iter().zip(e.spec_changes) {
        assert!(
            got.starts_with(want),
            "spec change {got:?} vs {want:?}, {ctx}"
        );
    }
    assert_eq!(
        p.relax.as_ref().map(|r| (r.from.get(), r.to.get())),
        e.relax,
        "relax, {ctx}"
    );
    let text = all_text(p);
    for word in e.says {
        assert!(text.contains(word), "{word:?} not said, {ctx}");
    }
    assert_eq!(p.is_refused(), !p.refusals.is_empty(), "{ctx}");
}

const SET_LIMIT: &str = "linux.resources.memory.limit: unset -> ";
const FLAG_SYSTEMD: &[&str] = &["--systemd-cgroup=true"];

/// The incident's plan: the systemd driver places the sandbox in the Burstable pod slice and the
/// guest gets the slice's 256 MiB through a limit on the leaf. A test names what differs from it
/// and takes the rest with `..incident_expect()`.
fn incident_expect() -> Expect<'static> {
    Expect {
        driver: Driver::Systemd,
        verdict: Verdict::Adjusted,
        pod_cgroup: Some(pod_slice("burstable")),
        pod_memory_limit: Some(256 * MIB),
        limit_source: Some("memory.max"),
        total_memory: Some(256 * MIB),
        runsc_flags: FLAG_SYSTEMD,
        spec_changes: &[SET_LIMIT],
        relax: None,
        says: &[],
    }
}

/// A plan under the cgroupfs driver for the pod cgroup `pod` with the incident's 256 MiB, sized
/// through a limit on the leaf and with no runsc flag. A test names what differs from it.
fn cgroupfs_pod_expect(pod: &str) -> Expect<'static> {
    Expect {
        driver: Driver::Cgroupfs,
        verdict: Verdict::Adjusted,
        pod_cgroup: Some(pod.to_string()),
        pod_memory_limit: Some(256 * MIB),
        limit_source: Some("memory.max"),
        total_memory: Some(256 * MIB),
        runsc_flags: &[],
        spec_changes: &[SET_LIMIT],
        relax: None,
        says: &[],
    }
}

/// The kubelet's cgroupfs layout for the Burstable pod: `(pod cgroup, the sandbox's leaf)`.
fn cgroupfs_pod_and_leaf() -> (String, String) {
    let pod = format!("/kubepods/burstable/pod{UID}");
    let leaf = format!("{pod}/{ID}");
    (pod, leaf)
}

#[test]
fn systemd_driver_by_qos_class_and_limit_placement() {
    struct Row {
        name: &'static str,
        qos: &'static str,
        kubepods: &'static str,
        qos_limit: &'static str,
        pod: &'static str,
        source: Option<&'static str>,
        bound: Option<u64>,
    }
    let rows = [
        Row {
            name: "burstable, limit on the pod slice (the incident)",
            qos: "burstable",
            kubepods: "max",
            qos_limit: "max",
            pod: "268435456",
            source: Some("-pod1a2b_3c4d.slice/memory.max"),
            bound: Some(256 * MIB),
        },
        Row {
            name: "guaranteed, directly under kubepods.slice",
            qos: "guaranteed",
            kubepods: "8589934592",
            qos_limit: "max",
            pod: "536870912",
            source: Some("kubepods-pod1a2b_3c4d.slice/memory.max"),
            bound: Some(512 * MIB),
        },
        Row {
            name: "besteffort, only kubepods.slice (node allocatable) is limited",
            qos: "besteffort",
            kubepods: "4294967296",
            qos_limit: "max",
            pod: "max",
            source: Some("/kubepods.slice/memory.max"),
            bound: Some(4 * GIB),
        },
        Row {
            name: "burstable, limit only on the QoS slice",
            qos: "burstable",
            kubepods: "max",
            qos_limit: "1073741824",
            pod: "max",
            source: Some("kubepods-burstable.slice/memory.max"),
            bound: Some(GIB),
        },
    ];
    for row in rows {
        let fx = if row.qos == "guaranteed" {
            fixture(
                CgroupLayout::Unified,
                &[
                    ("/kubepods.slice", Some(row.kubepods)),
                    (&pod_slice("guaranteed"), Some(row.pod)),
                ],
            )
        } else {
            systemd_pod(row.qos, row.kubepods, row.qos_limit, row.pod)
        };
        let p = run_with_defaults(&fx, &spec(Some(&systemd_path(row.qos)), None, &[]));
        let bound = row.bound.unwrap();
        check(
            row.name,
            &p,
            &Expect {
                driver: Driver::Systemd,
                verdict: Verdict::Adjusted,
                pod_cgroup: Some(pod_slice(row.qos)),
                pod_memory_limit: row.bound,
                limit_source: row.source,
                total_memory: Some(bound),
                runsc_flags: FLAG_SYSTEMD,
                spec_changes: &[SET_LIMIT],
                relax: None,
                says: &["reads only its own cgroup's limit"],
            },
        );
        assert_eq!(
            p.leaf_cgroup.as_ref().unwrap().to_string(),
            format!("{}/cri-containerd-{ID}.scope", pod_slice(row.qos)),
            "{}",
            row.name
        );
        assert!(
            p.spec_changes[0].contains(&bound.to_string()),
            "{}",
            row.name
        );
    }
}

#[test]
fn the_incident_on_old_and_new_runsc() {
    let fx = incident_pod();
    let s = incident_spec();
    for (version, says) in [
        ("0.0~20221219.0", "reads only its own cgroup's limit"),
        ("release-20240729.0", "only one level up"),
    ] {
        let p = run(&fx, &s, &Setup::default().version(version));
        check(
            version,
            &p,
            &Expect {
                pod_memory_limit: Some(268435456),
                total_memory: Some(268435456),
                spec_changes: &["linux.resources.memory.limit: unset -> 268435456"],
                says: &[says, "cri-containerd-abc123.scope"],
                ..incident_expect()
            },
        );
    }
}

#[test]
fn spec_limits_below_and_above_the_pod() {
    let fx = incident_pod();
    let path = systemd_path("burstable");
    // Below: the spec's own limit sizes the guest and stays; nothing to relax past it.
    let p = run_with_defaults(&fx, &spec(Some(&path), Some(128 * MIB as i64), &[]));
    check(
        "spec below pod",
        &p,
        &Expect {
            total_memory: Some(128 * MIB),
            spec_changes: &[],
            says: &["spec's own memory limit 128 MiB is below"],
            ..incident_expect()
        },
    );
    // Above: lowered to the pod's bound.
    let p = run_with_defaults(&fx, &spec(Some(&path), Some(GIB as i64), &[]));
    check(
        "spec above pod",
        &p,
        &Expect {
            spec_changes: &["linux.resources.memory.limit: 1073741824 -> 268435456"],
            ..incident_expect()
        },
    );
}

#[test]
fn runtimeclass_overhead_sizes_the_guest_by_the_annotation_and_relaxes_the_leaf() {
    let fx = systemd_pod("burstable", "max", "max", &(320 * MIB).to_string());
    let s = incident_spec_with_sandbox_memory("268435456");
    let p = run_with_defaults(&fx, &s);
    check(
        "overhead",
        &p,
        &Expect {
            pod_memory_limit: Some(320 * MIB),
            spec_changes: &["linux.resources.memory.limit: unset -> 268435456"],
            relax: Some((256 * MIB, 320 * MIB)),
            says: &["RuntimeClass overhead", "raised"],
            ..incident_expect()
        },
    );
    let relax = p.relax.as_ref().unwrap();
    assert_eq!(
        relax.systemctl_args().unwrap(),
        [
            "set-property",
            "--runtime",
            "cri-containerd-abc123.scope",
            "MemoryMax=335544320"
        ]
    );
}

#[test]
fn annotations_never_widen_or_invent_a_bound() {
    // The pod is unbounded because a container declared no limit; kubepods.slice holds the
    // node's allocatable. The annotation sums only the declared limits: using it would impose
    // a limit Kubernetes did not, so the guest gets the bound the kernel enforces.
    let fx = systemd_pod("burstable", &(4 * GIB).to_string(), "max", "max");
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("268435456"));
    check(
        "annotation on an unbounded pod",
        &p,
        &Expect {
            pod_memory_limit: Some(4 * GIB),
            limit_source: Some("/kubepods.slice/memory.max"),
            total_memory: Some(4 * GIB),
            says: &["is not used", "pod's own cgroup has no limit"],
            ..incident_expect()
        },
    );

    // Above the bound: the tree wins.
    let fx = incident_pod();
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("536870912"));
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert!(
        all_text(&p).contains("above the pod's bound"),
        "{}",
        all_text(&p)
    );

    // "0" means unset; garbage is reported and ignored.
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("0"));
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("256Mi"));
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert!(p.warnings[0].contains(SANDBOX_MEMORY), "{:?}", p.warnings);
}

#[test]
fn a_pod_without_any_limit_is_placed_but_not_sized() {
    let fx = systemd_pod("besteffort", "max", "max", "max");
    let s = spec(Some(&systemd_path("besteffort")), None, &[]);
    let p = run_with_defaults(&fx, &s);
    check(
        "no limit anywhere",
        &p,
        &Expect {
            driver: Driver::Systemd,
            verdict: Verdict::Adjusted,
            pod_cgroup: Some(pod_slice("besteffort")),
            pod_memory_limit: None,
            limit_source: None,
            total_memory: None,
            runsc_flags: FLAG_SYSTEMD,
            spec_changes: &[],
            relax: None,
            says: &["bounds this pod by nothing"],
        },
    );
    // With the flag already in runsc.toml there is nothing to change.
    let p = run(&fx, &s, &Setup::default().flag("systemd-cgroup", "true"));
    assert_eq!(p.verdict, Verdict::Ok, "{}", all_text(&p));
    assert!(p.runsc_flags.is_empty());
}

#[test]
fn containers_that_are_not_pods_keep_working() {
    let fx = fixture(
        CgroupLayout::Unified,
        &[("/system.slice", Some("max")), ("/default", None)],
    );
    struct Row {
        name: &'static str,
        spec: Spec,
        verdict: Verdict,
        driver: Driver,
        total: Option<u64>,
        flags: &'static [&'static str],
    }
    let rows = [
        Row {
            name: "ctr without a path",
            spec: spec(None, None, &[]),
            verdict: Verdict::Ok,
            driver: Driver::Cgroupfs,
            total: None,
            flags: &[],
        },
        Row {
            name: "nerdctl with a cgroupfs parent and a limit",
            spec: spec(Some("/default/abc123"), Some(512 * MIB as i64), &[]),
            verdict: Verdict::Ok,
            driver: Driver::Cgroupfs,
            total: Some(512 * MIB),
            flags: &[],
        },
        Row {
            name: "docker-style systemd path",
            spec: spec(Some("system.slice:docker:abc123"), None, &[]),
            verdict: Verdict::Adjusted,
            driver: Driver::Systemd,
            total: None,
            flags: FLAG_SYSTEMD,
        },
        Row {
            name: "a spec without a linux section at all is refused",
            spec: serde_json::from_value(json!({"ociVersion": "1.0.2"})).unwrap(),
            verdict: Verdict::Refused,
            driver: Driver::Cgroupfs,
            total: None,
            flags: &[],
        },
    ];
    for Row {
        name,
        spec: s,
        verdict,
        driver,
        total,
        flags,
    } in rows
    {
        let p = run_with_defaults(&fx, &s);
        assert_eq!(p.verdict, verdict, "{name}: {}", all_text(&p));
        assert_eq!(p.driver, driver, "{name}");
        assert_eq!(p.pod_cgroup, None, "{name}");
        assert_eq!(p.total_memory.map(Bytes::get), total, "{name}");
        assert_eq!(p.runsc_flags, flags, "{name}");
        let text = all_text(&p);
        if verdict == Verdict::Refused {
            assert!(text.contains("\"linux\""), "{name}: {text}");
        } else {
            assert!(text.contains("not bounded by a pod"), "{name}: {text}");
        }
    }
}

#[test]
fn cgroupfs_driver_on_v2_uses_the_pod_parent_when_it_gives_the_right_size() {
    let (pod, leaf) = cgroupfs_pod_and_leaf();
    let fx = fixture(
        CgroupLayout::Unified,
        &[
            ("/kubepods", Some("max")),
            ("/kubepods/burstable", Some("max")),
            (&pod, Some("268435456")),
        ],
    );
    let p = run_with_defaults(&fx, &spec(Some(&leaf), None, &[]));
    check(
        "cgroupfs v2",
        &p,
        &Expect {
            spec_changes: &["annotations[dev.gvisor.spec.cgroup-parent]: unset -> /kubepods/"],
            says: &["as gVisor's shim sets it"],
            ..cgroupfs_pod_expect(&pod)
        },
    );
    assert_eq!(p.leaf_cgroup.as_ref().unwrap().as_str(), leaf);

    // The annotation already names the pod: nothing to change.
    let s = spec(Some(&leaf), None, &[(GVISOR_CGROUP_PARENT, pod.as_str())]);
    assert_eq!(run_with_defaults(&fx, &s).verdict, Verdict::Ok);

    // An operator's systemd-cgroup=true would make runsc reject the path.
    let p = run(
        &fx,
        &spec(Some(&leaf), None, &[]),
        &Setup::default().flag("systemd-cgroup", "true"),
    );
    assert_eq!(p.runsc_flags, ["--systemd-cgroup=false"]);
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
}

#[test]
fn cgroupfs_overhead_and_v1_size_the_leaf_instead() {
    let (pod, leaf) = cgroupfs_pod_and_leaf();
    let ann = [(SANDBOX_MEMORY, "268435456")];

    // v2 with an overhead: through the pod cgroup runsc would see 320 MiB.
    let fx = fixture(
        CgroupLayout::Unified,
        &[
            ("/kubepods", Some("max")),
            (&pod, Some(&(320 * MIB).to_string())),
        ],
    );
    let p = run_with_defaults(&fx, &spec(Some(&leaf), None, &ann));
    check(
        "cgroupfs v2 overhead",
        &p,
        &Expect {
            pod_memory_limit: Some(320 * MIB),
            spec_changes: &["linux.resources.memory.limit: unset -> 268435456"],
            relax: Some((256 * MIB, 320 * MIB)),
            says: &[
                "is not set: with it runsc would size the guest from the pod cgroup to 320 MiB",
            ],
            ..cgroupfs_pod_expect(&pod)
        },
    );
    assert_eq!(
        p.relax.as_ref().unwrap().target,
        RelaxTarget::Cgroup {
            cgroup: CgroupPath::parse(&leaf).unwrap()
        }
    );

    // v1: runsc would put the processes in the annotated cgroup itself.
    let fx = fixture(
        CgroupLayout::Legacy,
        &[
            ("/kubepods", Some("8589934592")),
            ("/kubepods/burstable", Some(V1_MAX)),
            (&pod, Some("268435456")),
        ],
    );
    let p = run_with_defaults(&fx, &spec(Some(&leaf), None, &[]));
    check(
        "cgroupfs v1",
        &p,
        &Expect {
            limit_source: Some("memory/kubepods/burstable/pod1a2b_3c4d/memory.limit_in_bytes"),
            says: &["on cgroup v1"],
            ..cgroupfs_pod_expect(&pod)
        },
    );
    assert_eq!(p.leaf_cgroup.as_ref().unwrap().as_str(), leaf);
}

#[test]
fn systemd_paths_without_a_usable_systemd_driver_are_translated() {
    let slice = pod_slice("burstable");
    // Hybrid: runsc sees v1 and cannot use its systemd driver.
    let fx = fixture(
        CgroupLayout::Hybrid,
        &[
            ("/kubepods.slice", Some(V1_MAX)),
            ("/kubepods.slice/kubepods-burstable.slice", Some(V1_MAX)),
            (&slice, Some("268435456")),
        ],
    );
    let s = incident_spec();
    let p = run_with_defaults(&fx, &s);
    check(
        "hybrid",
        &p,
        &Expect {
            driver: Driver::Cgroupfs,
            verdict: Verdict::Adjusted,
            pod_cgroup: Some(slice.clone()),
            pod_memory_limit: Some(256 * MIB),
            limit_source: Some("memory.limit_in_bytes"),
            total_memory: Some(256 * MIB),
            runsc_flags: &[],
            spec_changes: &["linux.cgroupsPath: kubepods-burstable-pod", SET_LIMIT],
            relax: None,
            says: &["cgroupfs form", "hybrid cgroups"],
        },
    );
    let mut applied = s.clone();
    p.apply(&mut applied);
    assert_eq!(
        applied
            .linux()
            .as_ref()
            .unwrap()
            .cgroups_path()
            .as_ref()
            .unwrap()
            .to_str(),
        Some(format!("{slice}/cri-containerd-{ID}.scope").as_str())
    );

    // v2 without systemd running: same translation, and systemd-cgroup must stay off.
    let fx = incident_pod();
    let p = run(
        &fx,
        &s,
        &Setup::default().no_systemd().flag("systemd-cgroup", "true"),
    );
    assert_eq!(p.driver, Driver::Cgroupfs);
    assert_eq!(p.runsc_flags, ["--systemd-cgroup=false"]);
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert!(all_text(&p).contains("no systemd"), "{}", all_text(&p));
}

#[test]
fn operator_systemd_cgroup_false_in_each_mode() {
    let fx = incident_pod();
    let s = incident_spec();
    let base = Setup::default().flag("systemd-cgroup", "false");

    let p = run(&fx, &s, &base.clone().mode(GuardMode::Enforce));
    assert_eq!(p.verdict, Verdict::Adjusted);
    assert_eq!(p.driver, Driver::Systemd);
    assert_eq!(p.runsc_flags, FLAG_SYSTEMD);
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert!(p.warnings[0].contains("overridden"), "{:?}", p.warnings);
    assert_eq!(
        p.runsc_config(&base.runsc_config)["systemd-cgroup"],
        "true",
        "the override wins over runsc.toml"
    );

    // warn: kept, loudly; the leaf is still limited, so the escaped sandbox is bounded by its
    // own cgroup even outside the pod.
    let p = run(&fx, &s, &base.clone().mode(GuardMode::Warn));
    assert_eq!(p.verdict, Verdict::Adjusted);
    assert_eq!(p.driver, Driver::Cgroupfs);
    assert!(p.runsc_flags.is_empty());
    assert_eq!(p.leaf_cgroup, None);
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    let text = all_text(&p);
    assert!(text.contains("KEPT runsc_config systemd-cgroup"), "{text}");
    assert!(text.contains("NOT bounded by its pod"), "{text}");
    assert!(text.contains("enforce mode would refuse this"), "{text}");

    // off: gVisor's own behaviour, the stock escape shown for what it is.
    let p = run(&fx, &s, &base.clone().mode(GuardMode::Off));
    assert_eq!(p.verdict, Verdict::Ok);
    assert!(p.runsc_flags.is_empty() && p.edits.is_empty());
    assert_eq!(p.total_memory, None, "runsc sees the host's memory");
    let text = all_text(&p);
    assert!(
        text.contains("not bounded by its pod (guard off)"),
        "{text}"
    );
    assert!(text.contains("relative cgroupfs path"), "{text}");
}

#[test]
fn ignore_cgroups_is_overridden_for_a_pod() {
    let fx = incident_pod();
    let s = incident_spec();
    let p = run(&fx, &s, &Setup::default().flag("ignore-cgroups", "true"));
    assert_eq!(p.runsc_config_overrides["ignore-cgroups"], "false");
    assert_eq!(p.verdict, Verdict::Adjusted);
    let p = run(
        &fx,
        &s,
        &Setup::default()
            .flag("ignore-cgroups", "true")
            .mode(GuardMode::Warn),
    );
    assert_eq!(p.total_memory, None);
    assert!(
        all_text(&p).contains("runsc ignores cgroups"),
        "{}",
        all_text(&p)
    );
}

#[test]
fn a_missing_pod_cgroup_falls_back_to_the_annotation_or_is_refused() {
    let fx = fixture(CgroupLayout::Unified, &[("/kubepods.slice", Some("max"))]);
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("268435456"));
    check(
        "missing pod, annotation",
        &p,
        &Expect {
            limit_source: Some("annotation"),
            says: &["does not exist", "becomes the sandbox leaf's limit"],
            ..incident_expect()
        },
    );
    let s = incident_spec();
    let p = run_with_defaults(&fx, &s);
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(
        p.refusals[0].contains("without any limit"),
        "{:?}",
        p.refusals
    );
    let err = p.refusal().unwrap().to_string();
    assert!(
        err.contains(ID) && err.contains(&pod_slice("burstable")),
        "{err}"
    );
    // warn mode goes on, and says so.
    let p = run(&fx, &s, &Setup::default().mode(GuardMode::Warn));
    assert_ne!(p.verdict, Verdict::Refused);
    assert!(
        p.warnings.iter().any(|w| w.contains("would refuse")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn bad_input_is_refused_with_the_field_named() {
    let slice = pod_slice("burstable");
    let fx = incident_pod();
    let garbage = fixture(
        CgroupLayout::Unified,
        &[
            ("/kubepods.slice", Some("max")),
            ("/kubepods.slice/kubepods-burstable.slice", Some("lots")),
            (&slice, Some("268435456")),
        ],
    );
    let symlinked = fixture(
        CgroupLayout::Unified,
        &[("/kubepods.slice/kubepods-burstable.slice", Some("max"))],
    );
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path(),
        symlinked.dir.path().join(slice.trim_start_matches('/')),
    )
    .unwrap();

    let nul = format!("/kubepods/burstable/pod{UID}/a\0b");
    let long = format!("/kubepods/{}", "x".repeat(5000));
    let rows: [(&str, &Fixture, Spec, &[&str]); 8] = [
        (
            "dot-dot",
            &fx,
            spec(Some("/kubepods/../system.slice/x"), None, &[]),
            &["linux.cgroupsPath", ".."],
        ),
        (
            "relative",
            &fx,
            spec(Some("kubepods/burstable/pod1/abc"), None, &[]),
            &["relative cgroupfs path"],
        ),
        (
            "invalid slice",
            &fx,
            spec(Some("kubepods--pod1.slice:cri-containerd:abc"), None, &[]),
            &["linux.cgroupsPath", "empty dash"],
        ),
        (
            "not a slice",
            &fx,
            spec(Some("kubepods-pod1:cri-containerd:abc"), None, &[]),
            &["linux.cgroupsPath", "end in \".slice\""],
        ),
        (
            "NUL",
            &fx,
            spec(Some(&nul), None, &[]),
            &["linux.cgroupsPath", "NUL"],
        ),
        (
            "too long",
            &fx,
            spec(Some(&long), None, &[]),
            &["linux.cgroupsPath", "at most"],
        ),
        (
            "garbage in memory.max",
            &garbage,
            incident_spec(),
            &[
                "kubepods-burstable.slice/memory.max",
                "\"lots",
                "not a memory limit",
            ],
        ),
        (
            "symlinked pod slice",
            &symlinked,
            incident_spec_with_sandbox_memory("268435456"),
            &["symlink"],
        ),
    ];
    for (name, fx, s, says) in rows {
        let p = run_with_defaults(fx, &s);
        assert_eq!(p.verdict, Verdict::Refused, "{name}: {}", all_text(&p));
        let refusals = p.refusals.join("\n");
        for word in says {
            assert!(
                refusals.contains(word),
                "{name}: {word:?} not in {refusals}"
            );
        }
        assert!(
            p.edits.is_empty() || name == "relative" || name == "garbage in memory.max",
            "{name}: {:?}",
            p.edits
        );
    }
    // Garbage in the tree with the annotation to fall back on: adjusted, with the file named.
    let p = run_with_defaults(&garbage, &incident_spec_with_sandbox_memory("268435456"));
    assert_eq!(p.verdict, Verdict::Adjusted);
    assert!(p.warnings[0].contains("memory.max"), "{:?}", p.warnings);
}

#[test]
fn a_pass_through_cgroup_parent_annotation_cannot_place_the_sandbox() {
    let fx = incident_pod();
    let s = spec(
        Some(&systemd_path("burstable")),
        None,
        &[(GVISOR_CGROUP_PARENT, "/")],
    );
    let p = run_with_defaults(&fx, &s);
    assert_eq!(p.verdict, Verdict::Adjusted);
    assert!(p
        .edits
        .contains(&SpecEdit::RemoveCgroupParent { was: "/".into() }));
    let mut applied = s.clone();
    p.apply(&mut applied);
    assert!(!applied
        .annotations()
        .as_ref()
        .unwrap()
        .contains_key(GVISOR_CGROUP_PARENT));
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
}

#[test]
fn containers_joining_the_sandbox_get_the_same_driver_and_no_sizing() {
    let fx = incident_pod();
    let s = spec(
        Some(&format!(
            "kubepods-burstable-pod{UID}.slice:cri-containerd:ctr1"
        )),
        Some(64 * MIB as i64),
        &[],
    );
    let p = run(&fx, &s, &Setup::default().role(Role::Container));
    assert_eq!(p.role, Role::Container);
    assert_eq!(p.driver, Driver::Systemd);
    assert_eq!(p.runsc_flags, FLAG_SYSTEMD);
    assert!(p.edits.is_empty());
    assert_eq!(p.total_memory, None);
    assert_eq!(
        p.pod_cgroup.as_ref().unwrap().to_string(),
        pod_slice("burstable")
    );
}

#[test]
fn an_unknown_runsc_is_treated_as_the_oldest() {
    let fx = incident_pod();
    let s = incident_spec();
    let p = run(&fx, &s, &Setup::default().version("VERSION_MISSING"));
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert!(
        all_text(&p).contains("not a dated release"),
        "{}",
        all_text(&p)
    );
}

#[test]
fn apply_edits_the_spec_and_nothing_else() {
    let fx = incident_pod();
    let s = incident_spec();
    let p = run_with_defaults(&fx, &s);
    let mut applied = s.clone();
    p.apply(&mut applied);
    let linux = applied.linux().as_ref().unwrap();
    assert_eq!(
        linux
            .resources()
            .as_ref()
            .unwrap()
            .memory()
            .as_ref()
            .unwrap()
            .limit(),
        Some(268435456)
    );
    assert_eq!(linux.namespaces(), s.linux().as_ref().unwrap().namespaces());
    // A spec without linux gets only what the edit needs.
    let mut bare: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2"})).unwrap();
    p.apply(&mut bare);
    let v = serde_json::to_value(&bare).unwrap();
    assert_eq!(
        v["linux"],
        json!({"resources": {"memory": {"limit": 268435456}}})
    );
}

#[test]
fn the_plan_serializes_with_the_issue_fields() {
    let (_fx, p) = incident_plan();
    let v = serde_json::to_value(&p).unwrap();
    for field in [
        "container_id",
        "role",
        "driver",
        "pod_cgroup",
        "pod_memory_limit",
        "limit_source",
        "total_memory",
        "runsc_flags",
        "spec_changes",
        "verdict",
        "reasons",
    ] {
        assert!(v.get(field).is_some(), "{field} missing in {v}");
    }
    assert_eq!(v["role"], "sandbox");
    assert_eq!(v["driver"], "systemd");
    assert_eq!(v["verdict"], "adjusted");
    assert_eq!(v["total_memory"], 268435456);
    let back: SandboxPlan = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);
    let line = p.summary();
    assert!(
        line.contains("driver=systemd") && line.contains("total_memory=256 MiB"),
        "{line}"
    );
}

// Verification.

fn cmdline(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in args {
        out.extend_from_slice(a.as_bytes());
        out.push(0);
    }
    out
}

/// The incident's plan, with the fixture tree it was made from.
fn incident_plan() -> (Fixture, SandboxPlan) {
    let fx = incident_pod();
    let p = run_with_defaults(&fx, &incident_spec());
    (fx, p)
}

#[test]
fn verification_passes_when_runsc_did_what_was_planned() {
    let (_fx, p) = incident_plan();
    let leaf = p.leaf_cgroup.clone().unwrap();
    for args in [
        [
            "runsc-sandbox",
            "--root=/run/runsc",
            "boot",
            "--total-memory",
            "268435456",
            ID,
        ],
        [
            "runsc-sandbox",
            "--root=/run/runsc",
            "boot",
            "--cpu-num=2",
            "--total-memory=268435456",
            ID,
        ],
    ] {
        let obs = Observation::parse(
            4242,
            CgroupLayout::Unified,
            &format!("0::{leaf}\n"),
            &cmdline(&args),
        );
        let v = verify(&p, &obs);
        assert!(v.passed, "{:?}", v.violations());
        assert!(v.failure(ID).is_none());
    }
}

#[test]
fn verification_names_what_was_expected_and_found() {
    let (_fx, p) = incident_plan();
    let leaf = p.leaf_cgroup.clone().unwrap();
    let escaped = "/system.slice/containerd.service/kubepods-burstable-pod1a2b_3c4d.slice:cri-containerd:abc123";
    let node_ram = "540672000000";
    let rows: [(&str, String, Vec<u8>, &[&str]); 5] = [
        (
            "escaped from the pod (the incident)",
            format!("0::{escaped}\n"),
            cmdline(&["runsc-sandbox", "boot", "--total-memory", node_ram]),
            &[
                "placement",
                "expected a leaf under the pod cgroup",
                escaped,
                "guest memory",
                node_ram,
                "pod bound",
                "runsc-guard plan",
            ],
        ),
        (
            "in the pod cgroup itself, not a leaf",
            format!("0::{}\n", pod_slice("burstable")),
            cmdline(&["runsc-sandbox", "boot", "--total-memory", "268435456"]),
            &["placement"],
        ),
        (
            "right place, wrong size",
            format!("0::{leaf}\n"),
            cmdline(&["runsc-sandbox", "boot", "--total-memory", "134217728"]),
            &[
                "guest memory",
                "expected --total-memory 268435456 (256 MiB)",
                "found 134217728 (128 MiB)",
            ],
        ),
        (
            "no --total-memory",
            format!("0::{leaf}\n"),
            cmdline(&["runsc-sandbox", "boot"]),
            &["no --total-memory"],
        ),
        (
            "not the sandbox process",
            format!("0::{leaf}\n"),
            cmdline(&["runsc-gofer", "gofer", "--total-memory=268435456"]),
            &["sandbox process", "runsc-gofer"],
        ),
    ];
    for (name, cgroup, args, says) in rows {
        let v = verify(
            &p,
            &Observation::parse(7, CgroupLayout::Unified, &cgroup, &args),
        );
        assert!(!v.passed, "{name}");
        let err = v.failure(ID).unwrap().to_string();
        for word in says {
            assert!(err.contains(word), "{name}: {word:?} not in {err}");
        }
    }
}

#[test]
fn verification_reads_v1_and_a_fake_proc() {
    let (pod, leaf) = cgroupfs_pod_and_leaf();
    let fx = fixture(
        CgroupLayout::Legacy,
        &[("/kubepods", Some(V1_MAX)), (&pod, Some("268435456"))],
    );
    let p = run_with_defaults(&fx, &spec(Some(&leaf), None, &[]));
    let proc_root = tempfile::tempdir().unwrap();
    let pid_dir = proc_root.path().join("31337");
    std::fs::create_dir_all(&pid_dir).unwrap();
    std::fs::write(
        pid_dir.join("cgroup"),
        format!(
            "12:pids:{leaf}\n7:memory:{leaf}\n1:name=systemd:/system.slice/containerd.service\n"
        ),
    )
    .unwrap();
    std::fs::write(
        pid_dir.join("cmdline"),
        cmdline(&["runsc-sandbox", "boot", "--total-memory=268435456"]),
    )
    .unwrap();
    let obs = observe(proc_root.path(), 31337, CgroupLayout::Legacy).unwrap();
    assert_eq!(obs.cgroup.as_deref(), Some(leaf.as_str()));
    assert!(
        verify(&p, &obs).passed,
        "{:?}",
        verify(&p, &obs).violations()
    );
    let err = observe(proc_root.path(), 1, CgroupLayout::Legacy)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1/cgroup"), "{err}");
}

#[test]
fn the_record_round_trips_through_the_bundle() {
    let (_fx, p) = incident_plan();
    let bundle = tempfile::tempdir().unwrap();
    let mut record = GuardRecord::new(p.clone());
    let obs = Observation::parse(
        9,
        CgroupLayout::Unified,
        &format!("0::{}\n", p.leaf_cgroup.as_ref().unwrap()),
        &cmdline(&["runsc-sandbox", "--total-memory=268435456"]),
    );
    record.verification = Some(verify(&p, &obs));
    record.write(bundle.path()).unwrap();
    assert!(bundle.path().join(RECORD_FILE).is_file());
    assert_eq!(GuardRecord::read(bundle.path()).unwrap(), record);

    let empty = tempfile::tempdir().unwrap();
    let err = GuardRecord::read(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no guard record"), "{err}");
    std::fs::write(empty.path().join(RECORD_FILE), "{").unwrap();
    let err = GuardRecord::read(empty.path()).unwrap_err().to_string();
    assert!(err.contains("not a guard record"), "{err}");
}

#[test]
fn reads_mem_total() {
    let meminfo = "MemTotal:       16318504 kB\nMemFree:         1000 kB\n";
    assert_eq!(mem_total(meminfo), Some(Bytes(16318504 * 1024)));
    assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    assert_eq!(mem_total("MemTotal: lots kB\n"), None);
}

#[test]
fn role_follows_the_annotations_module() {
    use crate::annotations::{CONTAINER_TYPE, SANDBOX_ID};
    let ann = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(Role::from_annotations(&ann(&[])), Ok(Role::Sandbox));
    let c = ann(&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "pod")]);
    assert_eq!(Role::from_annotations(&c), Ok(Role::Container));
}

#[test]
fn guard_off_does_what_gvisors_shim_does_and_no_more() {
    let (pod, leaf) = cgroupfs_pod_and_leaf();
    let fx = fixture(CgroupLayout::Unified, &[(&pod, Some("268435456"))]);
    let s = spec(Some(&leaf), None, &[(SANDBOX_MEMORY, "268435456")]);
    let p = run(&fx, &s, &Setup::default().mode(GuardMode::Off));
    // setPodCgroup: the pod cgroup for runsc, nothing else.
    assert_eq!(
        p.edits,
        [SpecEdit::SetCgroupParent {
            from: None,
            to: CgroupPath::parse(&pod).unwrap()
        }]
    );
    assert!(p.runsc_flags.is_empty());
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
    assert_eq!(p.relax, None);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn cgroupfs_bound_on_the_qos_cgroup_depends_on_the_runsc_release() {
    // The pod is unbounded, its QoS cgroup is not: runsc from 20231106 reads one level up from
    // the pod cgroup and gets it right through the annotation; 20221219 does not, so the leaf
    // carries the limit instead.
    let (pod, leaf) = cgroupfs_pod_and_leaf();
    let fx = fixture(
        CgroupLayout::Unified,
        &[
            ("/kubepods/burstable", Some("1073741824")),
            (&pod, Some("max")),
        ],
    );
    let s = spec(Some(&leaf), None, &[]);
    let new = run(&fx, &s, &Setup::default().version("release-20240729.0"));
    assert!(new.spec_changes[0].starts_with("annotations[dev.gvisor.spec.cgroup-parent]"));
    assert_eq!(new.total_memory, Some(Bytes(GIB)));
    let old = run_with_defaults(&fx, &s);
    assert_eq!(
        old.spec_changes,
        ["linux.resources.memory.limit: unset -> 1073741824 (1 GiB)"]
    );
    assert_eq!(old.total_memory, Some(Bytes(GIB)));
    for p in [&new, &old] {
        assert_eq!(p.verdict, Verdict::Adjusted);
        assert_eq!(p.leaf_cgroup.as_ref().unwrap().as_str(), leaf);
    }
}

#[test]
fn a_leaf_left_over_with_another_limit_is_refused_before_create() {
    // runsc keeps the limit of a cgroup that exists already, so it would not size the guest.
    let slice = pod_slice("burstable");
    let scope = format!("{slice}/cri-containerd-{ID}.scope");
    let fx = fixture(
        CgroupLayout::Unified,
        &[(&slice, Some("268435456")), (&scope, Some("max"))],
    );
    let p = run_with_defaults(&fx, &incident_spec());
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(p.refusals[0].contains("exists already"), "{:?}", p.refusals);
}

#[test]
fn warn_mode_adjusts_but_never_refuses() {
    let fx = incident_pod();
    let s = spec(Some("kubepods/burstable/pod1/abc"), None, &[]);
    let p = run(&fx, &s, &Setup::default().mode(GuardMode::Warn));
    assert_ne!(p.verdict, Verdict::Refused);
    assert!(p.refusals.is_empty() && p.refusal().is_none());
    assert!(
        p.warnings[0].contains("relative cgroupfs path"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn a_symlinked_leaf_is_refused_even_outside_a_pod() {
    let fx = fixture(CgroupLayout::Unified, &[("/default", Some("max"))]);
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), fx.dir.path().join("default/abc123")).unwrap();
    let p = run_with_defaults(&fx, &spec(Some("/default/abc123"), None, &[]));
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(p.refusals[0].contains("symlink"), "{:?}", p.refusals);
}
