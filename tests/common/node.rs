//! The node as the memory guard sees it, for the guard tests of both tiers: a fixture cgroup v2
//! tree and /proc in the test's temp directory, the incident's pod (a Burstable pod whose slice
//! is bounded), its bundles, and what the guard leaves (its record, the edited config.json).
//!
//! The host runs no systemd and the fixture tree is cgroup v2, so the guard gives runsc a
//! pod's systemd path (`kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`) in its cgroupfs
//! form, and names the pod slice in `dev.gvisor.spec.cgroup-parent` when the slice's own limit
//! is the guest's size: runsc 20221219 (what fake-runsc reports) then reads the slice's
//! `memory.max` for `--total-memory`, and no runsc flag is needed.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;

use runsc_guard::guard::{GuardRecord, Verification};
use serde_json::Value;

use super::bundle::{Bundle, BundleBuilder};
use super::env::TestDir;
use super::runsc::{split_waits, CGROUP_ROOT_ENV, KNOB_SANDBOX_CGROUP, PROC_ROOT_ENV};
use super::{CONTAINER_TYPE, SANDBOX_ID};

pub const MIB: u64 = 1 << 20;
/// The incident's pod: its slice has MemoryMax=256M.
pub const POD_LIMIT: u64 = 256 * MIB;
pub const POD_UID: &str = "6b1d3c2a_8f4e_4a0b_9c7d_2e5f1a3b4c6d";
pub const SANDBOX_MEMORY: &str = "io.kubernetes.cri.sandbox-memory";
pub const CGROUP_PARENT: &str = "dev.gvisor.spec.cgroup-parent";

/// The pod slice, as systemd lays it out (and the guard expands it).
pub fn pod_slice() -> String {
    format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID}.slice")
}

/// The cgroupsPath containerd writes for a container of the pod with the systemd driver.
pub fn systemd_path(id: &str) -> String {
    format!("kubepods-burstable-pod{POD_UID}.slice:cri-containerd:{id}")
}

/// The cgroup systemd would give that container: its scope in the pod slice.
pub fn scope(id: &str) -> String {
    format!("{}/cri-containerd-{id}.scope", pod_slice())
}

/// The host's MemTotal in bytes: what runsc caps the guest at, and what a sandbox sized from a
/// leaf without a limit gets (the incident).
pub fn host_memory() -> u64 {
    let meminfo = fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kib * 1024
}

/// The node as the guard sees it: a cgroup v2 tree (kubepods.slice and its Burstable slice
/// unlimited, as the kubelet leaves them without enforced node allocatable) and an empty /proc,
/// both in the test's temp directory.
pub struct Node {
    pub cgroup_root: PathBuf,
    pub proc_root: PathBuf,
}

impl Node {
    pub fn new(env: &TestDir) -> Node {
        let node = Node {
            cgroup_root: env.path("node/cgroup"),
            proc_root: env.path("node/proc"),
        };
        node.write("cgroup.controllers", "cpuset cpu io memory pids\n");
        node.write("kubepods.slice/memory.max", "max\n");
        node.write(
            "kubepods.slice/kubepods-burstable.slice/memory.max",
            "max\n",
        );
        fs::create_dir_all(&node.proc_root).unwrap();
        // The guard reads the host's memory through its proc root; fake-runsc caps the guest at
        // the real host's, so the fixture says the same.
        fs::write(
            node.proc_root.join("meminfo"),
            format!("MemTotal: {} kB\n", host_memory() / 1024),
        )
        .unwrap();
        node
    }

    /// A node where the pod slice exists with `memory.max` = `limit`.
    pub fn with_pod(env: &TestDir, limit: u64) -> Node {
        let node = Node::new(env);
        node.write(
            &format!("{}/memory.max", pod_slice()),
            &format!("{limit}\n"),
        );
        node
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.cgroup_root.join(rel.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// The environment of `start` that points the guard (and fake-runsc) at this node.
    pub fn vars(&self) -> Vec<(&'static str, OsString)> {
        vec![
            (CGROUP_ROOT_ENV, self.cgroup_root.clone().into()),
            (PROC_ROOT_ENV, self.proc_root.clone().into()),
        ]
    }

    /// The fake sandbox processes in the fixture /proc.
    pub fn processes(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.proc_root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        names.sort();
        names
    }
}

/// The incident's sandbox: Burstable, its systemd cgroupsPath, and `sandbox_memory` if any.
pub fn sandbox_bundle<'a>(
    env: &'a TestDir,
    id: &str,
    sandbox_memory: Option<u64>,
) -> BundleBuilder<'a> {
    let b = env
        .bundle(id)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, id)
        .cgroups_path(&systemd_path(id));
    match sandbox_memory {
        Some(bytes) => b.annotation(SANDBOX_MEMORY, bytes.to_string()),
        None => b,
    }
}

/// The guard's record in the bundle.
pub fn record(bundle: &Bundle) -> GuardRecord {
    GuardRecord::read(&bundle.path).unwrap_or_else(|e| panic!("the guard record: {e}"))
}

/// The bundle's config.json as runsc reads it (after the guard's edits).
pub fn config_json(bundle: &Bundle) -> Value {
    let text = fs::read_to_string(bundle.path.join("config.json")).expect("reading config.json");
    serde_json::from_str(&text).expect("config.json is JSON")
}

/// The runsc calls of a container run to the end (Start, Kill, Wait, Delete; without the `wait`),
/// each with `guard_flags` after the shim's own global flags.
pub fn lifecycle_argvs(env: &TestDir, bundle: &Bundle, guard_flags: &[&str]) -> Vec<Vec<String>> {
    let id = bundle.id.as_str();
    let with = |rest: &[&str]| {
        let mut all = guard_flags.to_vec();
        all.extend(rest);
        env.argv(bundle, &all)
    };
    vec![
        env.create_argv(bundle, guard_flags),
        with(&["start", id]),
        with(&["kill", id, "9"]),
        with(&["kill", "--all", id, "9"]),
        with(&["delete", id]),
    ]
}

/// The runsc command lines recorded, the background `wait`s aside, are `expected`.
pub fn assert_calls(env: &TestDir, expected: &[Vec<String>], what: &str) {
    let calls = env.calls();
    let (others, _waits) = split_waits(&calls);
    assert!(
        others == expected,
        "{what}: runsc command lines (without `wait`):\n{}\nexpected:\n{}",
        env.show(&others),
        env.show(expected)
    );
}

/// The names of the checks of a verification that did not pass, in order.
pub fn failed_checks(verification: &Verification) -> Vec<&str> {
    verification
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect()
}

/// A sandbox whose verification failed: its rootfs unmounted, no mount or runsc state left, and
/// its process gone from the fixture /proc.
pub fn assert_failed_sandbox_is_gone(env: &TestDir, node: &Node, bundle: &Bundle) {
    assert!(!bundle.rootfs_is_mounted(), "the rootfs is unmounted");
    env.assert_no_mounts_or_runsc_state();
    assert_eq!(
        node.processes(),
        Vec::<String>::new(),
        "the sandbox is gone"
    );
}

/// The only runsc calls were the create and the `delete --force` the guard runs when the created
/// sandbox fails verification.
pub fn assert_deleted_right_after_create(env: &TestDir, bundle: &Bundle, what: &str) {
    assert_calls(
        env,
        &[
            env.create_argv(bundle, &[]),
            env.argv(bundle, &["delete", "--force", &bundle.id]),
        ],
        what,
    );
}

/// The incident's sandbox in a pod bounded by its slice, reported by fake-runsc where the stock
/// configuration puts it: outside the pod.
pub fn escaped_sandbox(env: &TestDir, id: &str) -> Bundle {
    sandbox_bundle(env, id, Some(POD_LIMIT))
        .annotation(KNOB_SANDBOX_CGROUP, "0::/system.slice/escaped")
        .build()
}
