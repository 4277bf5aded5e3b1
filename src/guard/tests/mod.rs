//! The decision against fixture cgroup trees made in temp dirs, one table row per situation the
//! guard knows, plus the verification and the record.

mod driver;
mod placement;
mod sizing;
mod verify;

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
    /// The host's MemTotal; 64 GiB on the incident's node.
    host_memory: Option<Bytes>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            mode: GuardMode::Enforce,
            runsc_config: BTreeMap::new(),
            version: "0.0~20221219.0",
            systemd_running: true,
            role: Role::Sandbox,
            host_memory: Some(Bytes(64 * GIB)),
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
    fn host_memory(mut self, host: Option<Bytes>) -> Self {
        self.host_memory = host;
        self
    }
}

fn run(fx: &Fixture, spec: &Spec, setup: &Setup) -> Plan {
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
            host_memory: setup.host_memory,
        },
        tree: &fx.tree,
    };
    decide(&input)
}

/// [`run`] on the incident's node: [`Setup`]'s defaults.
fn run_with_defaults(fx: &Fixture, spec: &Spec) -> Plan {
    run(fx, spec, &Setup::default())
}

/// `spec` with the plan's edits, applied as the shim applies them (to the spec's JSON).
fn with_edits(p: &Plan, spec: &Spec) -> Spec {
    let mut raw = serde_json::to_value(spec).unwrap();
    for edit in &p.edits {
        edit.apply_to(&mut raw);
    }
    serde_json::from_value(raw).unwrap()
}

fn all_text(p: &Plan) -> String {
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

fn check(name: &str, p: &Plan, e: &Expect<'_>) {
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

/// A `/proc/<pid>/cmdline`: NUL-separated arguments.
fn cmdline(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in args {
        out.extend_from_slice(a.as_bytes());
        out.push(0);
    }
    out
}

/// The incident's plan, with the fixture tree it was made from.
fn incident_plan() -> (Fixture, Plan) {
    let fx = incident_pod();
    let p = run_with_defaults(&fx, &incident_spec());
    (fx, p)
}
