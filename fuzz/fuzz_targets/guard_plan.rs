//! The guard's plan for an arbitrary config.json: `BundleSpec` parses the bytes, then
//! `guard::decide` plans against a small fixed node (a cgroup v2 tree as the kubelet's systemd
//! driver lays it out, and a cgroup v1 one as its cgroupfs driver does), made once in a temp dir.
//!
//! Invariants: no panic; a plan is refused exactly when it says why; a plan's cgroups are
//! normalised paths; the plan survives its JSON form (`runsc-guard plan --json`, the bundle's
//! record); a plan that is not refused has edits that apply to the spec and leave a valid spec.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runsc_guard::annotations::Role;
use runsc_guard::bundle::BundleSpec;
use runsc_guard::cgroup::{Bytes, CgroupPath, CgroupTree};
use runsc_guard::guard::{decide, GuardInput, HostFacts, Plan, SpecEdit};
use runsc_guard::options::GuardMode;
use runsc_guard::runsc::version::RunscVersion;

const MIB: u64 = 1 << 20;

struct Node {
    /// Kept for the trees' lifetime; removed when the process ends normally.
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    unified: CgroupTree,
    legacy: CgroupTree,
    versions: [RunscVersion; 2],
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create fixture dir");
    std::fs::write(path, content).expect("write fixture file");
}

fn limit(bytes: Option<u64>, unlimited: &str) -> String {
    bytes.map_or_else(|| format!("{unlimited}\n"), |b| format!("{b}\n"))
}

fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        // v2, systemd driver: kubepods.slice, its QoS slices, pods with and without a limit.
        let v2 = dir.path().join("v2");
        write(&v2.join("cgroup.controllers"), "cpu io memory pids\n");
        for (cgroup, bytes) in [
            ("kubepods.slice", Some(4096 * MIB)),
            ("kubepods.slice/kubepods-burstable.slice", None),
            ("kubepods.slice/kubepods-besteffort.slice", None),
            (
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice",
                Some(256 * MIB),
            ),
            (
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5e6f.slice",
                None,
            ),
            ("kubepods.slice/kubepods-pod7a8b.slice", Some(512 * MIB)),
            ("system.slice", None),
        ] {
            write(&v2.join(cgroup).join("memory.max"), &limit(bytes, "max"));
        }
        // v1, cgroupfs driver.
        let v1 = dir.path().join("v1");
        for (cgroup, bytes) in [
            ("", None),
            ("kubepods", Some(4096 * MIB)),
            ("kubepods/burstable", None),
            ("kubepods/burstable/pod1a2b-3c4d", Some(256 * MIB)),
            ("kubepods/besteffort/pod5e6f", None),
            ("kubepods/pod7a8b", Some(512 * MIB)),
        ] {
            write(
                &v1.join("memory").join(cgroup).join("memory.limit_in_bytes"),
                &limit(bytes, "9223372036854771712"),
            );
        }
        let bundle = dir.path().join("bundle");
        Node {
            unified: CgroupTree::detect(&v2).expect("the v2 fixture tree"),
            legacy: CgroupTree::detect(&v1).expect("the v1 fixture tree"),
            bundle,
            versions: [
                RunscVersion::from_version_output(
                    "runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n",
                ),
                RunscVersion::from_version_output("runsc version release-20250512.0\n"),
            ],
            _dir: dir,
        }
    })
}

fn normalised(p: &CgroupPath) {
    assert_eq!(CgroupPath::parse(p.as_str()).as_ref().ok(), Some(p));
    assert!(!p.as_str().split('/').any(|c| c == ".."), "{p}");
}

fuzz_target!(|data: &[u8]| {
    let node = node();
    let Ok(spec) = BundleSpec::from_bytes(&node.bundle, data) else {
        return;
    };
    let Ok(role) = Role::from_annotations(spec.annotations()) else {
        return;
    };
    // The situation varies with the input, so one spec meets each tree, mode and runsc.
    let pick = data.len() + usize::from(data.first().copied().unwrap_or(0));
    let tree = if pick % 2 == 0 {
        &node.unified
    } else {
        &node.legacy
    };
    let mode = [GuardMode::Enforce, GuardMode::Warn, GuardMode::Off][pick % 3];
    let runsc_config = BTreeMap::new();
    let plan = decide(&GuardInput {
        container_id: "fuzz0123",
        role,
        spec: spec.spec(),
        runsc_config: &runsc_config,
        mode,
        runsc_version: &node.versions[(pick / 6) % 2],
        host: HostFacts {
            systemd_running: pick % 4 < 2,
            host_memory: Some(Bytes(16 << 30)),
        },
        tree,
    });
    assert_eq!(plan.is_refused(), !plan.refusals.is_empty(), "{plan:?}");
    let _ = plan.summary();
    for p in plan.pod_cgroup.iter().chain(plan.leaf_cgroup.iter()) {
        normalised(p);
    }
    for edit in &plan.edits {
        match edit {
            SpecEdit::SetCgroupParent { to, .. } | SpecEdit::SetCgroupsPath { to, .. } => {
                normalised(to)
            }
            _ => {}
        }
    }
    let json = serde_json::to_string(&plan).expect("a plan encodes");
    let again: Plan = serde_json::from_str(&json).expect("a plan decodes");
    assert_eq!(again, plan);
    if !plan.is_refused() {
        let mut spec = spec;
        spec.apply(&plan.edits)
            .unwrap_or_else(|e| panic!("the plan's edits break the spec: {e}\n{plan:?}"));
    }
});
