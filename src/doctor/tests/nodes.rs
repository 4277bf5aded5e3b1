//! Whole nodes: the incident, its fix, and nodes with pieces missing.

use super::*;

#[test]
fn the_incidents_production_node_fails_and_names_the_pod() {
    let node = incident_node();
    let report = node.run(&incident_probe());
    assert_eq!(report.status, Severity::Fail);
    assert_eq!(report.exit_code, 2);
    assert_eq!(
        failed(&report),
        [
            "handler.runsc.systemd-cgroup",
            &format!("sandbox.{ID}.placement"),
            &format!("sandbox.{ID}.memory"),
        ]
    );
    // The misconfiguration itself, caught although the handler goes through runc's shim.
    let h = finding(&report, "handler.runsc.systemd-cgroup");
    assert!(
        h.summary.contains("does not get --systemd-cgroup"),
        "{}",
        h.summary
    );
    assert!(
        h.fix.as_deref().unwrap().contains("SystemdCgroup = true"),
        "{h:?}"
    );
    // The escape, with the pod's name from its bundle.
    let p = finding(&report, &format!("sandbox.{ID}.placement"));
    assert!(p.summary.contains("pod default/incident"), "{}", p.summary);
    assert!(
        p.summary.contains("OUTSIDE its pod's cgroup"),
        "{}",
        p.summary
    );
    assert!(p.summary.contains("/system.slice/"), "{}", p.summary);
    assert!(
        p.summary.contains("created through runc's shim"),
        "{}",
        p.summary
    );
    assert!(
        p.fix
            .as_deref()
            .unwrap()
            .contains("kubectl delete pod -n default incident"),
        "{p:?}"
    );
    // The guest sized at the whole node.
    let m = finding(&report, &format!("sandbox.{ID}.memory"));
    assert!(
        m.summary.contains("above its pod's limit 256 MiB"),
        "{}",
        m.summary
    );
    assert!(
        m.summary.contains("bytes, the whole node's memory)"),
        "{}",
        m.summary
    );
    // runsc 20231009's problems, not handled by anything on this node.
    assert_eq!(
        finding(&report, "runsc.runsc.leaf-sizing").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&report, "runsc.runsc.silent-systemd-path").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&report, "runsc.runsc.no-update").severity,
        Severity::Ok
    );
    assert_eq!(finding(&report, "containerd.shim").severity, Severity::Ok);
    assert_eq!(
        report.node.sandboxes.len(),
        1,
        "only the runsc-sandbox process counts"
    );
    let s = &report.node.sandboxes[0];
    assert_eq!(s.pod.label().as_deref(), Some("default/incident"));
    assert_eq!(s.pod_cgroup.as_ref().unwrap().as_str(), Node::pod_slice());
    // Every failure says what to do.
    assert!(report.failures().all(|f| f.fix.is_some()));
}

#[test]
fn the_fixed_node_is_all_well() {
    let leaf = format!("{}/cri-containerd-{ID}.scope", Node::pod_slice());
    let node = Node::new().systemd_v2_node(&leaf);
    node.write(
        "etc/containerd/runsc.toml",
        "[runsc_config]\nplatform = \"systrap\"\n",
    );
    let node = node.with_fixed_config().sandbox(
        4242,
        &format!("0::{leaf}"),
        POD_LIMIT,
        &format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}"),
    );
    let report = node.run(&guard_probe());
    let not_ok: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(report.exit_code, 0);
    let h = finding(&report, "handler.runsc.systemd-cgroup");
    assert!(
        h.summary.contains("runsc-guard adds --systemd-cgroup"),
        "{}",
        h.summary
    );
    let leaf_sizing = finding(&report, "runsc.runsc.leaf-sizing");
    assert!(
        leaf_sizing.summary.contains("runsc-guard sets"),
        "{}",
        leaf_sizing.summary
    );
    let m = finding(&report, &format!("sandbox.{ID}.memory"));
    assert!(
        m.summary.contains("within its pod's limit 256 MiB"),
        "{}",
        m.summary
    );
}

/// Debian sid's runsc 0.0~20240729.0-7+b1 is that release rebuilt with Go 1.26, whose sentry
/// panics; trixie's build of it with Go 1.24 does not.
#[test]
fn a_runsc_release_built_with_a_much_newer_go_is_a_warning() {
    let leaf = format!("{}/cri-containerd-{ID}.scope", Node::pod_slice());
    let node = Node::new().systemd_v2_node(&leaf);
    node.write("etc/containerd/runsc.toml", "[runsc_config]\n");
    let node = node.with_fixed_config().sandbox(
        4242,
        &format!("0::{leaf}"),
        POD_LIMIT,
        &format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}"),
    );
    let probe = |go: &str| {
        guard_probe()
            .with("runsc", Ok("runsc version 0.0~20240729.0\nspec: 1.1.0\n"))
            .built_with("runsc", go)
    };
    let sid = node.run(&probe("go1.26.2"));
    let go = finding(&sid, "runsc.runsc.go-toolchain");
    assert_eq!(go.severity, Severity::Warn, "{go:#?}");
    assert!(go.summary.contains("built with go1.26.2"), "{}", go.summary);
    assert!(go
        .fix
        .as_deref()
        .unwrap_or("")
        .contains("0.0~20240729.0-4+b7"));
    let not_ok: Vec<_> = sid
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    assert_eq!(sid.exit_code, 1, "{not_ok:#?}");
    let trixie = node.run(&probe("go1.24.4"));
    let go = finding(&trixie, "runsc.runsc.go-toolchain");
    assert_eq!(go.severity, Severity::Ok, "{go:#?}");
    assert_eq!(trixie.exit_code, 0, "{:#?}", trixie.findings);
    // A release made for Go 1.26 is no problem.
    let newer = guard_probe()
        .with("runsc", Ok("runsc version release-20260615.0\n"))
        .built_with("runsc", "go1.26.2");
    let report = node.run(&newer);
    assert_eq!(
        finding(&report, "runsc.runsc.go-toolchain").severity,
        Severity::Ok
    );
}

#[test]
fn the_stock_shim_without_systemd_cgroup_fails_on_a_systemd_node() {
    let leaf = format!("{}/cri-containerd-{ID}.scope", Node::pod_slice());
    let node = Node::new().systemd_v2_node(&leaf);
    node.write("etc/containerd/runsc.toml", "");
    let node = node.with_fixed_config();
    let probe = incident_probe().with(
        "containerd-shim-runsc-v1",
        Ok("containerd-shim-runsc-v1:\n  Version:  release-20231009.0\n"),
    );
    let report = node.run(&probe);
    assert_eq!(failed(&report), ["handler.runsc.systemd-cgroup"]);
    assert_eq!(finding(&report, "containerd.shim").severity, Severity::Warn);
    assert!(finding(&report, "handler.runsc.systemd-cgroup")
        .fix
        .as_deref()
        .unwrap()
        .contains("systemd-cgroup = \"true\""));
}

#[test]
fn cgroup_v1_with_the_cgroupfs_driver() {
    let pod = format!("/kubepods/burstable/pod{}", UID.replace('_', "-"));
    let leaf = format!("{pod}/{ID}");
    let node = Node::new();
    for (cgroup, limit) in [
        ("", "9223372036854771712"),
        ("/kubepods", "3800000000"),
        ("/kubepods/burstable", "9223372036854771712"),
        (pod.as_str(), "268435456"),
        (leaf.as_str(), "268435456"),
    ] {
        node.write(
            &format!("sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes"),
            &format!("{limit}\n"),
        );
    }
    node.write("proc/1/comm", "init\n");
    node.write("etc/containerd/runsc.toml", "");
    let config = fixed_config(&node.path("etc/containerd/runsc.toml"))
        .replace("SystemdCgroup = true", "SystemdCgroup = false");
    let node = node.containerd_config(&config).sandbox(
        77,
        &format!("12:pids:/x\n5:memory:{leaf}\n0::/"),
        POD_LIMIT,
        &leaf,
    );
    let report = node.run(&guard_probe());
    assert_eq!(report.node.cgroups.layout, Some(CgroupLayout::Legacy));
    assert_eq!(report.node.cgroups.kubelet_driver, KubeletDriver::Cgroupfs);
    assert_eq!(report.node.cgroups.systemd, Some(false));
    assert!(failed(&report).is_empty(), "{:#?}", report.findings);
    assert_eq!(report.exit_code, 0, "{:#?}", report.findings);
    assert_eq!(
        finding(&report, &format!("sandbox.{ID}.placement")).severity,
        Severity::Ok
    );

    // The same node with runc's shim told to use systemd: every pod fails to start.
    let wrong = INCIDENT_CONFIG.replace(
        "BinaryName = \"runsc\"",
        "BinaryName = \"runsc\"\n  SystemdCgroup = true",
    );
    fs::write(&node.sources.containerd_config, wrong).unwrap();
    let report = node.run(&guard_probe());
    let h = finding(&report, "handler.runsc.systemd-cgroup");
    assert_eq!(h.severity, Severity::Fail);
    assert!(h.summary.contains("invalid systemd path"), "{}", h.summary);
    // And containerd's default runc disagrees with the kubelet's driver.
    assert_eq!(
        finding(&report, "cgroups.driver-mismatch").severity,
        Severity::Fail
    );
}

#[test]
fn no_runsc_installed() {
    let node = Node::new().systemd_v2_node("/system.slice/x");
    node.write(
        "etc/containerd/runsc.toml",
        "binary_name = \"/opt/gvisor/runsc\"\n",
    );
    let node = node.with_fixed_config();
    let probe = FakeProbe::default()
        .with("containerd", Ok(CONTAINERD_1_6))
        .with(
            "containerd-shim-runsc-v1",
            Ok(&crate::shim::info::version_text()),
        );
    let report = node.run(&probe);
    let f = finding(&report, "runsc./opt/gvisor/runsc.binary");
    assert_eq!(f.severity, Severity::Fail);
    assert!(f.summary.contains("/opt/gvisor/runsc"), "{}", f.summary);
    assert!(f.fix.as_deref().unwrap().contains("install runsc"), "{f:?}");
    assert_eq!(finding(&report, "sandboxes").severity, Severity::Ok);
    assert_eq!(report.exit_code, 2);
}

#[test]
fn nothing_installed_at_all() {
    let report = Node::new().run(&FakeProbe::default());
    assert_eq!(
        finding(&report, "containerd.version").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&report, "containerd.config").severity,
        Severity::Warn
    );
    assert_eq!(finding(&report, "cgroups.layout").severity, Severity::Fail);
    assert!(finding(&report, "cgroups.layout")
        .fix
        .as_deref()
        .unwrap()
        .contains("--cgroup-root"));
    assert_eq!(report.exit_code, 2);
}

#[test]
fn unreadable_files_are_reported_not_fatal() {
    // A directory where a file should be cannot be read, even by root.
    let escaped = format!("/system.slice/kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}");
    let node = Node::new().systemd_v2_node(&escaped);
    fs::create_dir_all(node.path("etc/containerd/runsc.toml")).unwrap();
    let node = node.with_fixed_config().sandbox(
        4242,
        &format!("0::{escaped}"),
        NODE_MEMORY_KIB * 1024,
        "unused",
    );
    let bundle_spec = node.path(&format!(
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"
    ));
    fs::remove_file(&bundle_spec).unwrap();
    fs::create_dir(&bundle_spec).unwrap();
    fs::remove_file(node.path("proc/1/comm")).unwrap();
    fs::create_dir(node.path("proc/1/comm")).unwrap();
    let report = node.run(&guard_probe());

    let toml = finding(&report, "handler.runsc.runsc-toml");
    assert_eq!(toml.severity, Severity::Fail);
    assert!(toml.summary.contains("runsc.toml"), "{}", toml.summary);
    assert_eq!(finding(&report, "cgroups.systemd").severity, Severity::Warn);
    let read = finding(&report, &format!("sandbox.{ID}.read"));
    assert_eq!(read.severity, Severity::Warn);
    assert!(read.summary.contains("config.json"), "{}", read.summary);
    // Without the bundle the pod is still found from where the sandbox escaped from.
    let p = finding(&report, &format!("sandbox.{ID}.placement"));
    assert_eq!(p.severity, Severity::Fail);
    assert!(
        p.summary
            .contains(&format!("pod {}", UID.replace('_', "-"))),
        "{}",
        p.summary
    );

    // An unreadable containerd config is a failure that names the file.
    fs::remove_file(&node.sources.containerd_config).unwrap();
    fs::create_dir(&node.sources.containerd_config).unwrap();
    let report = node.run(&guard_probe());
    let c = finding(&report, "containerd.config");
    assert_eq!(c.severity, Severity::Fail);
    assert!(c.summary.contains("config.toml"), "{}", c.summary);
}
