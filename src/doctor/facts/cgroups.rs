//! Reading the cgroup tree's shape and the host's memory.

use super::super::Sources;
use super::{CgroupFacts, KubeletDriver};
use crate::cgroup::{CgroupPath, CgroupTree};

pub(super) fn cgroup_facts(
    sources: &Sources,
    tree: Option<&CgroupTree>,
    error: Option<&crate::cgroup::CgroupError>,
) -> CgroupFacts {
    let systemd = crate::fsread::read_regular_to_string(
        &sources.proc_root.join("1/comm"),
        crate::fsread::LINE_MAX,
        crate::fsread::Symlinks::Follow,
    )
    .ok()
    .map(|c| c.trim() == "systemd");
    let exists = |name: &str| {
        tree.is_some_and(|t| {
            CgroupPath::parse(name)
                .ok()
                .is_some_and(|p| t.exists(&p).unwrap_or(false))
        })
    };
    let kubelet_driver = match (exists("/kubepods.slice"), exists("/kubepods")) {
        (true, true) => KubeletDriver::Both,
        (true, false) => KubeletDriver::Systemd,
        (false, true) => KubeletDriver::Cgroupfs,
        (false, false) => KubeletDriver::None,
    };
    CgroupFacts {
        root: sources.cgroup_root.clone(),
        layout: tree.map(CgroupTree::layout),
        systemd,
        kubelet_driver,
        error: error.map(ToString::to_string),
    }
}
