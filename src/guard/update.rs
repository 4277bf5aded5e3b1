//! Update: new resources for a running sandbox, applied where they bound it: the host cgroup the
//! guard verified the sandbox in after create (its leaf under the pod cgroup), never above the
//! pod's bound.
//!
//! The target is never a name from the request: it is the leaf the plan chose and the check
//! after create observed the sandbox process in, seen there again now. A systemd scope is changed
//! through systemd (`systemctl set-property --runtime`, read back), a cgroupfs leaf by writing its
//! limit file, the same steps that widen the leaf after boot ([`LeafRelaxation`]). The guest's own
//! size (`--total-memory`) is fixed at boot; only `runsc update` (release-20260202.0 and later)
//! changes what the guest applies, which is the shim's call, not this module's.

use std::future::Future;
use std::path::Path;

use log::info;

use super::record::{GuardRecord, ResourceUpdate};
use super::relax::{LeafRelaxation, RelaxTarget};
use super::seam::Guard;
use super::{observe, Driver, Role};
use crate::cgroup::{Bytes, CgroupPath, CgroupTree, MemoryLimit};
use crate::error::{Error, Result};
use crate::options::GuardMode;

/// The memory limit an Update asks for, as `linux.resources.memory.limit` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryRequest {
    /// A limit in bytes.
    Limit(Bytes),
    /// `-1`: no limit of its own; the sandbox gets the pod's bound.
    Unlimited,
}

impl MemoryRequest {
    /// From the OCI field: absent or 0 asks for no change, -1 for no limit, other negatives are
    /// refused.
    pub fn from_oci(limit: Option<i64>) -> Result<Option<Self>> {
        match limit {
            None | Some(0) => Ok(None),
            Some(-1) => Ok(Some(MemoryRequest::Unlimited)),
            Some(l) if l > 0 => Ok(Some(MemoryRequest::Limit(Bytes(l as u64)))),
            Some(l) => Err(Error::invalid(
                "resources.memory.limit",
                format!("{l} is neither a number of bytes nor -1 (no limit)"),
            )),
        }
    }
}

/// An Update's memory limit, and the sandbox whose leaf takes it.
#[derive(Debug, Clone, Copy)]
pub struct MemoryUpdate<'a> {
    /// The container whose Update it is (the sandbox's, or one joining it).
    pub container_id: &'a str,
    pub sandbox_id: &'a str,
    /// The bundle holding the sandbox's guard record.
    pub sandbox_bundle: &'a Path,
    /// The sandbox process.
    pub pid: i32,
    pub request: MemoryRequest,
}

impl Guard {
    /// Applies a memory limit to the host cgroup that holds the sandbox whose record is in the
    /// sandbox's bundle, for an Update of one of its containers. Refuses a limit above the
    /// pod's bound and a sandbox the guard did not verify, before `guest` runs. Once the host's
    /// cgroup is changed, runs `guest`, the shim's step for the guest's own resources, and keeps
    /// what it says with the change: the record is read once and written once per Update.
    /// Returns what changed.
    pub async fn update_memory(
        &self,
        update: MemoryUpdate<'_>,
        guest: impl Future<Output = String>,
    ) -> Result<ResourceUpdate> {
        let MemoryUpdate {
            container_id,
            sandbox_id,
            sandbox_bundle,
            pid,
            request,
        } = update;
        let refuse = |reason: String| Error::GuardRefused {
            container_id: container_id.to_string(),
            reason: format!("{reason}; nothing was changed"),
        };
        let mut record = GuardRecord::read(sandbox_bundle).map_err(|e| {
            refuse(format!(
                "an Update needs the sandbox's guard record to know which cgroup holds it: {e}"
            ))
        })?;
        let tree = CgroupTree::detect(self.cgroup_root())
            .map_err(|e| refuse(format!("the cgroup tree cannot be read: {e}")))?;
        let leaf =
            verified_leaf(&record, sandbox_id, &tree, self.proc_root(), pid).map_err(refuse)?;
        let plan = &record.plan;
        // The tree is the truth, as for Create: the kubelet resizes the pod's cgroup before it
        // updates the pod's containers, and the sandbox's leaf can never exceed it anyway.
        let bound = match plan.pod_cgroup.as_ref() {
            Some(pod) => tree
                .effective_memory_limit(pod)
                .map(|e| e.limit.bytes())
                .unwrap_or(plan.pod_memory_limit),
            None => plan.pod_memory_limit,
        };
        let to = leaf_limit(request, bound, plan.pod_cgroup.as_ref()).map_err(refuse)?;
        let memory_from = tree.memory_limit(&leaf).ok().and_then(MemoryLimit::bytes);
        let target = relax_target(plan.driver, &leaf).map_err(refuse)?;
        let step = LeafRelaxation {
            target: target.clone(),
            from: memory_from.unwrap_or(to),
            to,
        };
        crate::timing::span("guard.update", step.run(&tree, self.executor()))
            .await
            .map_err(|e| Error::GuardRefused {
                container_id: container_id.to_string(),
                reason: format!("the sandbox's cgroup could not be changed: {e}"),
            })?;
        info!(
            "{container_id}: runsc-guard set the memory limit of the sandbox's leaf {target} from \
             {} to {to} (pod bound {})",
            memory_from.map_or_else(|| "max".to_string(), |b| b.to_string()),
            bound.map_or_else(|| "none".to_string(), |b| b.to_string()),
        );
        if plan.pod_memory_limit != bound {
            record.plan.pod_memory_limit = bound;
        }
        let update = ResourceUpdate {
            container_id: container_id.to_string(),
            target,
            memory_from,
            memory_to: to,
            pod_bound: bound,
            guest: Some(guest.await),
        };
        record.update = Some(update.clone());
        record.write(sandbox_bundle)?;
        Ok(update)
    }
}

/// The memory.max an Update gives the sandbox's leaf: the limit asked for, never above the pod's
/// `bound`; "no limit" is the pod's bound. Otherwise why not.
fn leaf_limit(
    request: MemoryRequest,
    bound: Option<Bytes>,
    pod_cgroup: Option<&CgroupPath>,
) -> std::result::Result<Bytes, String> {
    match (request, bound) {
        (MemoryRequest::Limit(l), Some(b)) if l.page_floor() > b => Err(format!(
            "resources.memory.limit {l} ({} bytes) is above the pod's bound {b} ({} bytes, the \
             pod cgroup {}): the sandbox's cgroup never exceeds its pod's; raise the pod's limit \
             first",
            l.get(),
            b.get(),
            pod_cgroup.map_or_else(|| "unknown".to_string(), |p| p.to_string())
        )),
        (MemoryRequest::Limit(l), _) => Ok(l.page_floor()),
        (MemoryRequest::Unlimited, Some(b)) => Ok(b),
        (MemoryRequest::Unlimited, None) => Err(
            "resources.memory.limit -1 (no limit) for a sandbox whose pod has no bound: the \
             guard gives no cgroup an unlimited memory.max"
                .to_string(),
        ),
    }
}

/// What the limit is written to: the scope the plan placed the sandbox in, as runsc's systemd
/// driver names it, or the leaf itself under cgroupfs.
fn relax_target(driver: Driver, leaf: &CgroupPath) -> std::result::Result<RelaxTarget, String> {
    match driver {
        Driver::Systemd => match leaf.name().filter(|n| n.ends_with(".scope")) {
            Some(unit) => Ok(RelaxTarget::SystemdScope {
                unit: unit.to_string(),
            }),
            None => Err(format!(
                "the sandbox's leaf {leaf} is not a systemd scope under the systemd driver"
            )),
        },
        Driver::Cgroupfs => Ok(RelaxTarget::Cgroup {
            cgroup: leaf.clone(),
        }),
    }
}

/// The sandbox's leaf, when the guard verified the sandbox in it at create and the sandbox
/// process `pid` still sits there; otherwise why not.
fn verified_leaf(
    record: &GuardRecord,
    sandbox_id: &str,
    tree: &CgroupTree,
    proc_root: &Path,
    pid: i32,
) -> std::result::Result<CgroupPath, String> {
    let plan = &record.plan;
    if plan.role != Role::Sandbox || plan.container_id != sandbox_id {
        return Err(format!(
            "the record found is of the {} container {}, not of the sandbox {sandbox_id}",
            plan.role.name(),
            plan.container_id,
        ));
    }
    if plan.mode == GuardMode::Off {
        return Err(
            "the guard is off for this sandbox (guard_mode = \"off\"), so no cgroup of it was \
             verified"
                .to_string(),
        );
    }
    let (Some(leaf), Some(_pod)) = (plan.leaf_cgroup.as_ref(), plan.pod_cgroup.as_ref()) else {
        return Err(format!(
            "sandbox {} is not in a pod cgroup the guard found, so it has no verified leaf",
            plan.container_id
        ));
    };
    let Some(verification) = record.verification.as_ref().filter(|v| v.passed) else {
        return Err(format!(
            "sandbox {} was not verified in its planned leaf {leaf} at create",
            plan.container_id
        ));
    };
    let seen_then = verification.observation.cgroup.as_deref();
    if seen_then.and_then(|c| CgroupPath::parse(c).ok()).as_ref() != Some(leaf) {
        return Err(format!(
            "sandbox {} was seen in {} at create, not in its planned leaf {leaf}",
            plan.container_id,
            seen_then.unwrap_or("no cgroup")
        ));
    }
    let now = observe(proc_root, pid, tree.layout()).map_err(|e| e.to_string())?;
    let seen_now = now.cgroup.as_deref();
    if seen_now.and_then(|c| CgroupPath::parse(c).ok()).as_ref() != Some(leaf) {
        return Err(format!(
            "the sandbox process {pid} now sits in {}, not in its verified leaf {leaf}",
            seen_now.unwrap_or("no cgroup")
        ));
    }
    Ok(leaf.clone())
}
