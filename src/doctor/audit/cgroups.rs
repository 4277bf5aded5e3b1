//! The cgroup tree: its layout, PID 1, the kubelet's driver, and whether containerd agrees.

use super::super::containerd::runtime_table;
use super::super::facts::{KubeletDriver, NodeFacts};
use super::super::Area;
use super::{systemd_paths, Findings};
use crate::cgroup::CgroupLayout;

pub(super) fn cgroups(node: &NodeFacts, f: &mut Findings) {
    let c = &node.cgroups;
    let root = c.root.display();
    let Some(layout) = c.layout else {
        f.fail(
            Area::Cgroups,
            "cgroups.layout",
            format!(
                "cannot read the cgroup tree: {}",
                c.error.as_deref().unwrap_or("unknown layout")
            ),
            "run the doctor on the node, or point --cgroup-root at the node's cgroup mount \
             (/sys/fs/cgroup)",
        );
        return;
    };
    f.ok(Area::Cgroups, "cgroups.layout", format!("{root}: {layout}"));
    pid1(node, f);
    kubelet_driver(node, f);
    driver_mismatch(node, f);
    if layout != CgroupLayout::Unified && systemd_paths(node) == Some(true) {
        f.ok(
            Area::Cgroups,
            "cgroups.v1-systemd",
            "cgroup v1 with the systemd driver: runsc treats the host as v1 and writes cgroupfs \
             directories itself",
        );
    }
}

fn pid1(node: &NodeFacts, f: &mut Findings) {
    match node.cgroups.systemd {
        Some(true) => f.ok(Area::Cgroups, "cgroups.systemd", "PID 1 is systemd"),
        Some(false) => f.ok(Area::Cgroups, "cgroups.systemd", "PID 1 is not systemd"),
        None => f.warn(
            Area::Cgroups,
            "cgroups.systemd",
            "cannot tell whether PID 1 is systemd (<proc>/1/comm is unreadable)",
            "run the doctor with the host's /proc (hostPID in a pod) or pass --proc",
        ),
    }
}

fn kubelet_driver(node: &NodeFacts, f: &mut Findings) {
    match node.cgroups.kubelet_driver {
        KubeletDriver::Systemd => f.ok(
            Area::Cgroups,
            "cgroups.kubelet-driver",
            "the kubelet uses the systemd driver (kubepods.slice)",
        ),
        KubeletDriver::Cgroupfs => f.ok(
            Area::Cgroups,
            "cgroups.kubelet-driver",
            "the kubelet uses the cgroupfs driver (/kubepods)",
        ),
        KubeletDriver::Both => f.warn(
            Area::Cgroups,
            "cgroups.kubelet-driver",
            "both kubepods.slice and /kubepods exist: one is left over from an earlier driver, \
             and a runtime that guesses from the tree can pick the wrong one",
            "check the kubelet's cgroupDriver, drain the node, and remove the stale tree (or \
             reboot) so only the driver in use remains",
        ),
        KubeletDriver::None => f.ok(
            Area::Cgroups,
            "cgroups.kubelet-driver",
            "no kubepods tree (no kubelet pods on this node yet)",
        ),
    }
}

/// The kubelet's driver against PID 1 and against containerd's default runtime.
fn driver_mismatch(node: &NodeFacts, f: &mut Findings) {
    let c = &node.cgroups;
    let driver = c.kubelet_driver;
    if driver == KubeletDriver::Systemd && c.systemd == Some(false) {
        f.fail(
            Area::Cgroups,
            "cgroups.driver-mismatch",
            "the pods are under kubepods.slice but PID 1 is not systemd: nothing can create \
             the pods' scopes",
            "use the kubelet's cgroupfs driver on a node without systemd (cgroupDriver: \
             cgroupfs, and SystemdCgroup = false in containerd's runc options)",
        );
    }
    if let Some(config) = &node.config.parsed {
        if let (Some(runc_systemd), Some(paths)) =
            (config.default_systemd_cgroup, systemd_paths(node))
        {
            if driver != KubeletDriver::Both && runc_systemd != paths {
                let (kubelet, containerd) = if paths {
                    ("systemd (kubepods.slice)", "false")
                } else {
                    ("cgroupfs (/kubepods)", "true")
                };
                f.fail(
                    Area::Cgroups,
                    "cgroups.driver-mismatch",
                    format!(
                        "the kubelet's driver is {kubelet} but containerd's default runtime {:?} \
                         has SystemdCgroup = {containerd}: runc pods fail to start with \
                         `expected cgroupsPath to be of format \"slice:prefix:name\"` or \
                         `invalid systemd path`",
                        config.default_runtime
                    ),
                    format!(
                        "make them agree: the kubelet's cgroupDriver and SystemdCgroup in {}.options \
                         (systemd on a systemd node), then restart containerd and the kubelet",
                        runtime_table(config.version, &config.default_runtime)
                    ),
                );
            }
        }
    }
}
