//! Rule 4, placement and the spec edits, against fixture trees.

use super::*;

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
    let applied = with_edits(&p, &s);
    assert!(!applied
        .annotations()
        .as_ref()
        .unwrap()
        .contains_key(GVISOR_CGROUP_PARENT));
    assert_eq!(p.total_memory, Some(Bytes(256 * MIB)));
}

#[test]
fn apply_edits_the_spec_and_nothing_else() {
    let fx = incident_pod();
    let s = incident_spec();
    let p = run_with_defaults(&fx, &s);
    let applied = with_edits(&p, &s);
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
    let bare: Spec = serde_json::from_value(json!({"ociVersion": "1.0.2"})).unwrap();
    let bare = with_edits(&p, &bare);
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
    let back: Plan = serde_json::from_value(v).unwrap();
    assert_eq!(back, p);
    let line = p.summary();
    assert!(
        line.contains("driver=systemd") && line.contains("total_memory=256 MiB"),
        "{line}"
    );
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
fn a_symlinked_leaf_is_refused_even_outside_a_pod() {
    let fx = fixture(CgroupLayout::Unified, &[("/default", Some("max"))]);
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), fx.dir.path().join("default/abc123")).unwrap();
    let p = run_with_defaults(&fx, &spec(Some("/default/abc123"), None, &[]));
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(p.refusals[0].contains("symlink"), "{:?}", p.refusals);
}

#[test]
fn the_leaf_widened_is_runscs_scope_even_when_the_name_ends_in_slice() {
    // The overhead case with a name that ends in .slice: runsc still creates
    // cri-containerd-kubepods.slice.scope in the pod; the widening must touch that scope and
    // never kubepods.slice, which holds every pod of the node.
    let fx = systemd_pod("burstable", "max", "max", &(320 * MIB).to_string());
    let path = format!("kubepods-burstable-pod{UID}.slice:cri-containerd:kubepods.slice");
    let s = spec(Some(&path), None, &[(SANDBOX_MEMORY, "268435456")]);
    let p = run_with_defaults(&fx, &s);
    let scope = "cri-containerd-kubepods.slice.scope";
    assert_eq!(
        p.leaf_cgroup.as_ref().map(|l| l.to_string()),
        Some(format!("{}/{scope}", pod_slice("burstable")))
    );
    let relax = p
        .relax
        .as_ref()
        .expect("the leaf is widened to the pod's bound");
    assert_eq!(
        relax.target,
        RelaxTarget::SystemdScope {
            unit: scope.to_string()
        }
    );
}
