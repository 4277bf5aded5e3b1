//! Rules 2 and 3, the pod's bound and the guest's size, against fixture trees.

use super::*;

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
    let RelaxAction::Systemctl { set, .. } = relax.action() else {
        panic!("{relax:?} is not widened through systemd");
    };
    assert_eq!(
        set,
        [
            "set-property",
            "--runtime",
            "--",
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
fn a_limit_read_from_the_tree_wins_over_the_annotation_when_the_pod_is_missing() {
    // The pod slice is missing, kubepods.slice says 200 MiB, the annotation 256 MiB: the
    // limit that was read bounds the sandbox.
    let fx = fixture(
        CgroupLayout::Unified,
        &[("/kubepods.slice", Some(&(200 * MIB).to_string()))],
    );
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("268435456"));
    assert_eq!(p.verdict, Verdict::Adjusted, "{}", all_text(&p));
    assert_eq!(p.pod_memory_limit, Some(Bytes(200 * MIB)));
    assert_eq!(p.total_memory, Some(Bytes(200 * MIB)));
    assert!(
        p.limit_source
            .as_deref()
            .is_some_and(|s| s.ends_with("kubepods.slice/memory.max")),
        "{:?}",
        p.limit_source
    );
}

#[test]
fn garbage_on_the_way_up_refuses_even_with_the_annotation() {
    // The pod's own limit reads fine, its QoS slice's file is garbage: the tree cannot be
    // trusted, and the annotation does not stand in for it.
    let slice = pod_slice("burstable");
    let fx = fixture(
        CgroupLayout::Unified,
        &[
            ("/kubepods.slice", Some("max")),
            ("/kubepods.slice/kubepods-burstable.slice", Some("lots")),
            (&slice, Some("268435456")),
        ],
    );
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory("268435456"));
    assert_eq!(p.verdict, Verdict::Refused, "{}", all_text(&p));
    let refusals = p.refusals.join("\n");
    assert!(
        refusals.contains("kubepods-burstable.slice/memory.max") && refusals.contains("\"lots"),
        "{refusals}"
    );
}

#[test]
fn an_annotation_above_the_nodes_memory_is_refused_naming_it() {
    // The pod slice is missing and the annotation says more than the node has: that bounds
    // nothing (the guest would be sized to the host), so it is refused, saying which field,
    // which value and what to do.
    let fx = fixture(CgroupLayout::Unified, &[("/kubepods.slice", Some("max"))]);
    let above = (64 * GIB + 1).to_string();
    let p = run_with_defaults(&fx, &incident_spec_with_sandbox_memory(&above));
    assert_eq!(p.verdict, Verdict::Refused, "{}", all_text(&p));
    assert_eq!(p.refusals.len(), 1, "{:?}", p.refusals);
    let r = &p.refusals[0];
    assert!(
        r.starts_with(&format!("invalid annotation {SANDBOX_MEMORY}: {above} is above the host's memory (MemTotal 64 GiB, {} bytes)", 64 * GIB)),
        "{r}"
    );
    assert!(
        r.contains("pod cgroup is missing") && r.contains("same cgroup driver"),
        "{r}"
    );
    let err = p.refusal().unwrap().to_string();
    assert!(err.contains(ID) && err.contains(&above), "{err}");
    // Exactly the host's memory is a figure a pod can have.
    let p = run_with_defaults(
        &fx,
        &incident_spec_with_sandbox_memory(&(64 * GIB).to_string()),
    );
    assert_ne!(p.verdict, Verdict::Refused, "{}", all_text(&p));
    assert_eq!(p.total_memory, Some(Bytes(64 * GIB)));
}

#[test]
fn an_annotation_near_the_integer_limits_is_refused_even_without_the_hosts_memory() {
    let fx = fixture(CgroupLayout::Unified, &[("/kubepods.slice", Some("max"))]);
    for value in ["9223372036854775807", "4611686018427387904"] {
        for host in [None, Some(Bytes(64 * GIB))] {
            let setup = Setup::default().host_memory(host);
            let p = run(&fx, &incident_spec_with_sandbox_memory(value), &setup);
            assert_eq!(p.verdict, Verdict::Refused, "{value}: {}", all_text(&p));
            assert_eq!(p.refusals.len(), 1, "{:?}", p.refusals);
            let r = &p.refusals[0];
            assert!(r.contains(SANDBOX_MEMORY) && r.contains(value), "{r}");
            if host.is_none() {
                assert!(r.contains("2^62 bytes or more"), "{r}");
            }
        }
    }
    // Just below 2^62, with the host's memory unknown, the annotation stands as before.
    let below = ((1u64 << 62) - 1).to_string();
    let setup = Setup::default().host_memory(None);
    let p = run(&fx, &incident_spec_with_sandbox_memory(&below), &setup);
    assert_ne!(p.verdict, Verdict::Refused, "{}", all_text(&p));
    // Even with a limit read above the missing pod, the figure is refused: it is no pod's.
    let fx = fixture(
        CgroupLayout::Unified,
        &[("/kubepods.slice", Some(&(200 * MIB).to_string()))],
    );
    let p = run(
        &fx,
        &incident_spec_with_sandbox_memory("9223372036854775807"),
        &setup,
    );
    assert_eq!(p.verdict, Verdict::Refused, "{}", all_text(&p));
}

#[test]
fn warn_mode_never_sizes_the_guest_from_an_absurd_annotation() {
    let fx = fixture(CgroupLayout::Unified, &[("/kubepods.slice", Some("max"))]);
    let setup = Setup::default().mode(GuardMode::Warn);
    let p = run(
        &fx,
        &incident_spec_with_sandbox_memory("9223372036854775807"),
        &setup,
    );
    assert_ne!(p.verdict, Verdict::Refused);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("would refuse") && w.contains(SANDBOX_MEMORY)),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.pod_memory_limit, None, "{}", all_text(&p));
    assert_ne!(p.limit_source.as_deref(), Some("annotation"));
    assert!(
        p.total_memory.is_none_or(|t| t <= Bytes(64 * GIB)),
        "{:?}",
        p.total_memory
    );
}
