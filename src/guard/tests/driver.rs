//! Rule 1, the driver, and the guard modes, against fixture trees.

use super::*;

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
    let applied = with_edits(&p, &s);
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
    // Garbage in the tree with the annotation to fall back on: still refused (the tree cannot
    // be trusted), with the file named.
    let p = run_with_defaults(&garbage, &incident_spec_with_sandbox_memory("268435456"));
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(p.refusals[0].contains("memory.max"), "{:?}", p.refusals);
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
fn flag_override_annotations_that_defeat_the_bound_are_stripped() {
    let fx = incident_pod();
    let s = spec(
        Some(&systemd_path("burstable")),
        None,
        &[
            ("dev.gvisor.flag.ignore-cgroups", "true"),
            ("dev.gvisor.flag.systemd-cgroup", "false"),
            ("dev.gvisor.flag.debug", "true"),
        ],
    );
    for mode in [GuardMode::Enforce, GuardMode::Warn] {
        let setup = Setup::default()
            .mode(mode)
            .flag("allow-flag-override", "true");
        let p = run(&fx, &s, &setup);
        assert_eq!(p.verdict, Verdict::Adjusted, "{mode}: {:?}", p.reasons);
        let edited = with_edits(&p, &s);
        let annotations = edited.annotations().clone().unwrap_or_default();
        assert!(
            !annotations.contains_key("dev.gvisor.flag.ignore-cgroups"),
            "{mode}: {annotations:?}"
        );
        assert!(
            !annotations.contains_key("dev.gvisor.flag.systemd-cgroup"),
            "{mode}: {annotations:?}"
        );
        // A flag that does not touch the bound is the operator's business.
        assert_eq!(
            annotations.get("dev.gvisor.flag.debug").map(String::as_str),
            Some("true")
        );
        assert_eq!(p.warnings.len(), 2, "{mode}: {:?}", p.warnings);
        assert!(p.warnings[0].contains("dev.gvisor.flag.ignore-cgroups"));
        assert!(p.runsc_flags.iter().any(|f| f == "--systemd-cgroup=true"));
    }
    // guard_mode = "off" changes nothing, as gVisor's own shim would.
    let off = run(&fx, &s, &Setup::default().mode(GuardMode::Off));
    assert!(off.edits.is_empty(), "{:?}", off.edits);
}
