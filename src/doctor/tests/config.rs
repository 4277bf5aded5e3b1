//! containerd configs the doctor must judge: unparsable, of the wrong version, without runsc.

use super::*;

#[test]
fn a_containerd_config_that_does_not_parse() {
    let node = Node::new()
        .systemd_v2_node("/system.slice/x")
        .containerd_config("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"\n");
    let report = node.run(&guard_probe());
    let c = finding(&report, "containerd.config");
    assert_eq!(c.severity, Severity::Fail);
    assert!(c.summary.contains("is not valid TOML"), "{}", c.summary);
    assert!(
        c.fix.as_deref().unwrap().contains("containerd config dump"),
        "{c:?}"
    );
    assert_eq!(report.exit_code, 2);
    assert!(report.node.handlers.is_empty());
}

#[test]
fn a_fifo_in_place_of_containerd_s_config_is_refused_at_once() {
    use crate::fsread::testing::{fifo, within_two_seconds};
    let node = Node::new().systemd_v2_node("/system.slice/x");
    std::fs::create_dir_all(node.path("etc/containerd")).unwrap();
    let path = fifo(&node.path("etc/containerd"), "config.toml");
    let report = within_two_seconds(move || node.run(&guard_probe()));
    let c = finding(&report, "containerd.config");
    assert_eq!(c.severity, Severity::Fail);
    assert_eq!(
        c.summary,
        format!("cannot read {}: a FIFO, not a regular file", path.display())
    );
}

#[test]
fn config_version_3_on_containerd_1x() {
    let node = Node::new().systemd_v2_node("/system.slice/x").containerd_config(
        "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc]\n  runtime_type = \"io.containerd.runsc.v1\"\n",
    );
    let report = node.run(&guard_probe());
    assert_eq!(
        finding(&report, "containerd.config-version").severity,
        Severity::Fail
    );
    let probe = guard_probe().with(
        "containerd",
        Ok("containerd github.com/containerd/containerd/v2 v2.1.4 abc\n"),
    );
    let report = node.run(&probe);
    assert_eq!(
        finding(&report, "containerd.config-version").severity,
        Severity::Ok
    );
    assert_eq!(report.node.handlers[0].handler.name, "runsc");
}

#[test]
fn a_config_without_a_runsc_handler() {
    let node = Node::new()
        .systemd_v2_node("/system.slice/x")
        .containerd_config(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n",
        );
    let report = node.run(&guard_probe());
    let h = finding(&report, "containerd.handlers");
    assert_eq!(h.severity, Severity::Warn);
    assert!(
        h.fix
            .as_deref()
            .unwrap()
            .contains("/usr/share/runsc-guard/containerd/"),
        "{h:?}"
    );
    // The kubelet's pods are in kubepods.slice but runc's SystemdCgroup is unset.
    assert_eq!(
        finding(&report, "cgroups.driver-mismatch").severity,
        Severity::Fail
    );
}

#[test]
fn a_v2_config_with_runsc_but_no_runc() {
    // Debian's config.toml with only the runsc handler appended: containerd 1.6 starts no CRI.
    let node = Node::new().systemd_v2_node("/system.slice/x").containerd_config(
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc]\n  runtime_type = \"io.containerd.runsc.v1\"\n",
    );
    let report = node.run(&guard_probe());
    let d = finding(&report, "containerd.default-runtime");
    assert_eq!(d.severity, Severity::Fail);
    assert!(d.summary.contains("\"runc\""), "{}", d.summary);
    assert!(d.summary.contains("runsc"), "{}", d.summary);
    assert!(d.fix.as_deref().unwrap().contains("runc-v2.toml"), "{d:?}");
    assert_eq!(report.exit_code, 2);
    // containerd 2.x is not judged by this rule.
    let probe = guard_probe().with(
        "containerd",
        Ok("containerd github.com/containerd/containerd/v2 v2.1.4 abc\n"),
    );
    let report = node.run(&probe);
    assert!(!report
        .findings
        .iter()
        .any(|f| f.check == "containerd.default-runtime"));
}
