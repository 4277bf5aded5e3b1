//! Assertions both tiers make: the in-process tier (tests/pod_*.rs) and the daemon tier
//! (tests/shim_*.rs) check the same outcomes of the same requests, each reaching the shim its own
//! way, so the expectations are written once.

use runsc_guard::guard::{Role, Verdict};
use runsc_guard::options::GuardMode;
use serde_json::Value;

use super::bundle::Bundle;
use super::node::{config_json, pod_slice, record, scope, systemd_path, CGROUP_PARENT, POD_LIMIT};

/// An error `message` names every one of `expected`; `context` (the error's debug form, the
/// shim's log) is printed beside it when it does not.
pub fn assert_names_every(message: &str, expected: &[&str], context: &str) {
    for e in expected {
        assert!(
            message.contains(e),
            "the error must name {e:?}; got:\n{message}\n{context}"
        );
    }
}

/// The incident's pod, bounded by its slice: what the guard wrote into config.json for runsc and
/// the record it kept, the sandbox (pid `pid`) verified in its leaf with the pod's whole bound as
/// its guest. Returns the leaf cgroup.
pub fn assert_bounded_by_the_slice(bundle: &Bundle, pid: i32) -> String {
    // What runsc read: the path in its cgroupfs form, and the pod slice as the cgroup it records
    // (its memory.max is the guest's size, so runsc 20221219 reads the right limit from it).
    let spec = config_json(bundle);
    let slice = pod_slice();
    let leaf = scope(&bundle.id);
    assert_eq!(spec["linux"]["cgroupsPath"], leaf.as_str(), "{spec:#}");
    assert_eq!(
        spec["annotations"][CGROUP_PARENT],
        slice.as_str(),
        "{spec:#}"
    );
    assert_eq!(
        spec["linux"]["resources"]["memory"]["limit"],
        Value::Null,
        "the leaf needs no limit: runsc sizes the guest from the pod slice\n{spec:#}"
    );

    let rec = record(bundle);
    let plan = &rec.plan;
    assert_eq!(plan.verdict, Verdict::Adjusted);
    assert_eq!(plan.mode, GuardMode::Enforce);
    assert_eq!(plan.role, Role::Sandbox);
    assert_eq!(plan.driver.to_string(), "cgroupfs");
    assert_eq!(
        plan.pod_cgroup.as_ref().map(|p| p.to_string()),
        Some(slice.clone())
    );
    assert_eq!(
        plan.leaf_cgroup.as_ref().map(|p| p.to_string()),
        Some(leaf.clone())
    );
    assert_eq!(plan.pod_memory_limit.map(|b| b.get()), Some(POD_LIMIT));
    assert_eq!(plan.total_memory.map(|b| b.get()), Some(POD_LIMIT));
    assert_eq!(
        plan.runsc_flags,
        Vec::<String>::new(),
        "no flag: runsc's default cgroupfs driver is the right one without systemd"
    );
    assert_eq!(
        plan.spec_changes,
        [
            format!("linux.cgroupsPath: {} -> {leaf}", systemd_path(&bundle.id)),
            format!("annotations[{CGROUP_PARENT}]: unset -> {slice}"),
        ]
    );
    assert!(plan.relax.is_none(), "the guest has the pod's whole bound");
    let verification = rec.verification.as_ref().expect("the sandbox was verified");
    assert!(
        verification.passed,
        "verification: {:?}",
        verification.violations()
    );
    let checks: Vec<&str> = verification
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        checks,
        ["sandbox process", "placement", "guest memory", "pod bound"]
    );
    assert_eq!(verification.observation.pid, pid);
    assert_eq!(
        verification.observation.cgroup.as_deref(),
        Some(leaf.as_str())
    );
    assert_eq!(
        verification.observation.total_memory.map(|b| b.get()),
        Some(POD_LIMIT)
    );
    leaf
}
