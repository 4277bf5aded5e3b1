//! What runsc will do with a sandbox: which cgroup it records, where its processes sit, and the
//! `--total-memory` it computes from them. A model of gVisor's `runsc/container/container.go`
//! and `runsc/cgroup/`, kept apart from the decision so the decision can check that its own
//! edits produce the size it wants.
//!
//! runsc computes `--total-memory = min(host memory, MemoryLimit(recorded cgroup))` at create,
//! where the recorded cgroup is the one named by `dev.gvisor.spec.cgroup-parent` when the
//! annotation is present, otherwise the container's own cgroup. `MemoryLimit` reads that
//! cgroup's own limit; from release-20231106 a v2 `max` makes it read the parent's, one level
//! only. runsc writes the spec's resources only into a cgroup it creates (a new cgroupfs
//! directory, or a new systemd scope's properties); a pre-existing cgroup keeps its limits.

use crate::cgroup::{Bytes, CgroupLayout, CgroupPath, CgroupTree, MemoryLimit};
use crate::runsc::version::RunscVersion;

/// Where runsc will put the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Placement {
    /// runsc creates the sandbox's own leaf (a systemd scope, or a cgroupfs directory) and
    /// records it: the leaf's limit is the spec's `linux.resources.memory.limit`.
    OwnLeaf {
        leaf: CgroupPath,
        /// The scope unit, with the systemd driver.
        systemd_unit: Option<String>,
    },
    /// `dev.gvisor.spec.cgroup-parent` names `parent`: runsc records it and reads its limit,
    /// and its processes sit in `leaf` below it (cgroup v2), or in `parent` itself (v1).
    PodParent {
        parent: CgroupPath,
        leaf: Option<CgroupPath>,
    },
    /// Somewhere the guard cannot name: runsc resolves the path against its own cgroup, or
    /// rejects it. `why` says which.
    Elsewhere { why: String },
    /// `--ignore-cgroups`: the sandbox stays in the cgroup of whoever ran runsc.
    NoCgroup,
}

impl Placement {
    /// The cgroup the sandbox's processes will sit in, when known.
    pub(super) fn process_cgroup(&self, layout: CgroupLayout) -> Option<&CgroupPath> {
        match self {
            Placement::OwnLeaf { leaf, .. } => Some(leaf),
            // runsc joins the sub cgroup only with cgroupfs on v2 ("joining non-leaf cgroups is
            // illegal in v2"); on v1 it joins the parent itself.
            Placement::PodParent { parent, leaf } => {
                if layout.is_unified() {
                    leaf.as_ref().or(Some(parent))
                } else {
                    Some(parent)
                }
            }
            Placement::Elsewhere { .. } | Placement::NoCgroup => None,
        }
    }
}

/// The `--total-memory` runsc will compute, before the host-memory cap, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Prediction {
    pub limit: MemoryLimit,
    pub explanation: String,
}

/// Predicts runsc's `--total-memory` for a placement. `spec_limit` is the sandbox spec's memory
/// limit as runsc will receive it (after the guard's edits).
pub(super) fn total_memory(
    placement: &Placement,
    spec_limit: Option<Bytes>,
    version: &RunscVersion,
    tree: &CgroupTree,
) -> Prediction {
    match placement {
        Placement::NoCgroup => Prediction {
            limit: MemoryLimit::Unlimited,
            explanation: "runsc ignores cgroups (ignore-cgroups), so the guest sees the host's \
                          memory"
                .to_string(),
        },
        Placement::Elsewhere { why } => Prediction {
            // runsc creates the cgroup it resolves to, with the spec's resources.
            limit: page_rounded(spec_limit),
            explanation: match spec_limit {
                Some(b) => format!("{why}; runsc creates that cgroup with the spec's limit {b}"),
                None => format!("{why}; the spec has no memory limit for it"),
            },
        },
        Placement::OwnLeaf { leaf, .. } => recorded_cgroup_limit(leaf, spec_limit, version, tree),
        Placement::PodParent { parent, .. } => {
            recorded_cgroup_limit(parent, spec_limit, version, tree)
        }
    }
}

/// `MemoryLimit()` of the cgroup runsc records.
fn recorded_cgroup_limit(
    cgroup: &CgroupPath,
    spec_limit: Option<Bytes>,
    version: &RunscVersion,
    tree: &CgroupTree,
) -> Prediction {
    let (own, mut explanation) = match tree.exists(cgroup) {
        Ok(true) => match tree.memory_limit(cgroup) {
            Ok(limit) => (
                limit,
                format!(
                    "runsc reads {} ({limit}), which exists already and keeps its limit",
                    tree.memory_limit_file(cgroup).display()
                ),
            ),
            Err(e) => (
                MemoryLimit::Unlimited,
                format!("runsc cannot read the limit of {cgroup} ({e})"),
            ),
        },
        Ok(false) => (
            page_rounded(spec_limit),
            match spec_limit {
                Some(b) => format!("runsc creates {cgroup} with the spec's memory limit {b}"),
                None => format!("runsc creates {cgroup} without a memory limit"),
            },
        ),
        Err(e) => (
            MemoryLimit::Unlimited,
            format!("runsc's cgroup {cgroup} cannot be inspected ({e})"),
        ),
    };
    if own.is_limited() {
        return Prediction {
            limit: own,
            explanation,
        };
    }
    // gVisor commit 42b69d015 (release-20231106.0): on v2, a leaf without a limit sends runsc to its parent, one level only.
    let parent = cgroup.parent().filter(|p| !p.is_root());
    match parent {
        Some(parent) if tree.layout().is_unified() && version.reads_parent_memory_limit() => {
            let limit = tree.memory_limit(&parent).unwrap_or(MemoryLimit::Unlimited);
            explanation.push_str(&format!(
                "; runsc {version} then reads the parent {parent} ({limit})"
            ));
            Prediction { limit, explanation }
        }
        _ => {
            explanation.push_str(&format!(
                "; runsc {version} reads no further, so the guest sees the host's memory"
            ));
            Prediction {
                limit: MemoryLimit::Unlimited,
                explanation,
            }
        }
    }
}

/// The kernel stores a limit in whole pages, and runsc reads it back that way.
fn page_rounded(limit: Option<Bytes>) -> MemoryLimit {
    MemoryLimit::from(limit.map(Bytes::page_floor))
}
