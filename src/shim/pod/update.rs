//! Update: a container's new resources (containerd's `specs.LinuxResources`, as JSON).
//!
//! What bounds a gVisor sandbox on any runsc is the host cgroup that holds it, so the memory
//! limit goes there, through the guard (never above the pod's bound, only to the leaf the guard
//! verified; see `guard::update`). That leaf holds the whole sandbox: for a container joining a
//! pod it gets the limits of the pod's containers together, never one container's alone. The guest's own view (its
//! `--total-memory`, the limits inside the sandbox) changes only where runsc has `runsc update`
//! (release-20260202.0 and later), which gets the request as containerd sent it; otherwise the
//! log says what did not change in the guest and why. gVisor's own shim answers Update with
//! "not implemented".

use std::collections::HashMap;
use std::path::PathBuf;

use log::{info, warn};
use oci_spec::runtime::LinuxResources;

use super::Pod;
use crate::bundle::BundleSpec;
use crate::cgroup::Bytes;
use crate::error::{Error, Result};
use crate::guard::{MemoryRequest, MemoryUpdate};
use crate::shim::container::Container;
use crate::shim::ids::validate_id;
use crate::shim::process::Status;

impl Pod {
    /// Update of the container `id` with `resources`, the JSON of an OCI `LinuxResources`.
    pub async fn update(&self, id: &str, resources: &[u8]) -> Result<()> {
        let c = self.get(id).await?;
        c.init.expect(
            &[Status::Created, Status::Running, Status::Paused],
            "there is nothing to update",
        )?;
        let parsed: LinuxResources = serde_json::from_slice(resources).map_err(|e| {
            Error::invalid(
                "resources",
                format!("is not the JSON of an OCI LinuxResources ({e}); nothing was changed"),
            )
        })?;
        let memory = MemoryRequest::from_oci(parsed.memory().as_ref().and_then(|m| m.limit()))?;
        let sandbox_bundle = self.sandbox_bundle(&c).await?;
        if c.sandbox_id != c.id {
            info!(
                "{id}: update of a container of sandbox {}: the sandbox's leaf holds every \
                 container of the pod, so a memory limit bounds them together",
                c.sandbox_id
            );
        }
        // What follows the host's change, in the order it always had: this container's limit is
        // remembered, then the guest is told. The guard runs it once the sandbox's leaf took the
        // limit, and keeps what it says in the same write of the record.
        let guest = async {
            if let Some(request) = memory {
                self.memory_limits.set(id, request);
            }
            if parsed.cpu().is_some() {
                info!(
                    "{id}: cpu resources are not written to the sandbox's leaf: its pod's cgroup \
                     bounds the sandbox's CPU (the kubelet sets it)"
                );
            }
            self.update_guest(&c, resources).await
        };
        match memory {
            Some(request) => {
                let update = MemoryUpdate {
                    container_id: id,
                    sandbox_id: &c.sandbox_id,
                    sandbox_bundle: &sandbox_bundle,
                    pid: c.pid(),
                    request: self.leaf_request(&c, request).await,
                };
                self.guard.update_memory(update, guest).await?;
            }
            None => {
                guest.await;
            }
        }
        Ok(())
    }

    /// `runsc update` where the runsc in use has it; otherwise says why the guest keeps its
    /// resources. Returns the sentence logged, for the record.
    async fn update_guest(&self, c: &Container, resources: &[u8]) -> String {
        let id = &c.id;
        let binary = c.runsc.binary().to_string_lossy().into_owned();
        let version = match self.versions.version(&binary).await {
            Ok(v) => v,
            Err(e) => {
                let why = format!(
                    "the guest keeps its resources: runsc's version is unknown ({e}), so \
                     `runsc update` is not tried"
                );
                warn!("{id}: {why}");
                return why;
            }
        };
        if !version.has_update() {
            let why = format!(
                "the guest keeps its resources (its memory size was fixed at boot): runsc \
                 {version} has no `runsc update` (release-20260202.0 and later); the host \
                 cgroup bounds the sandbox"
            );
            info!("{id}: {why}");
            return why;
        }
        match c.runsc.update(id, resources).await {
            Ok(()) => {
                let done = format!("runsc {version} update applied the resources in the guest");
                info!("{id}: {done}");
                done
            }
            Err(e) => {
                let why = format!(
                    "the guest keeps its resources: {e}; the host cgroup bounds the sandbox"
                );
                warn!("{id}: {why}");
                why
            }
        }
    }

    /// What the sandbox's leaf gets for an Update of `c` asking `request`. The leaf holds every
    /// container of the pod, so for a container joining the sandbox it gets the sum of their
    /// limits with this one's new one: this one's alone would cap its siblings with it. Where
    /// one of them has no limit, or this shim does not serve the sandbox and cannot see them
    /// (`grouping = false`), the leaf follows the pod's bound.
    async fn leaf_request(&self, c: &Container, request: MemoryRequest) -> MemoryRequest {
        let MemoryRequest::Limit(mine) = request else {
            return request;
        };
        if c.sandbox_id == c.id {
            return request;
        }
        let containers = self.containers.lock().await;
        if !containers.contains_key(&c.sandbox_id) {
            info!(
                "{}: sandbox {} is served by another shim, whose other containers this one \
                 cannot see: its leaf gets the pod's bound, the container's limit only the guest",
                c.id, c.sandbox_id
            );
            return MemoryRequest::Unlimited;
        }
        let mut sum = mine.get();
        let siblings = containers.values().filter(|o| {
            o.sandbox_id == c.sandbox_id
                && o.id != c.id
                && o.id != c.sandbox_id
                && o.status() != Status::Stopped
        });
        for other in siblings {
            match self
                .memory_limits
                .get(&other.id)
                .or_else(|| spec_limit(other))
            {
                Some(MemoryRequest::Limit(b)) => sum = sum.saturating_add(b.get()),
                _ => {
                    info!(
                        "{}: container {} of the pod has no memory limit: sandbox {}'s leaf \
                         gets the pod's bound",
                        c.id, other.id, c.sandbox_id
                    );
                    return MemoryRequest::Unlimited;
                }
            }
        }
        if sum != mine.get() {
            info!(
                "{}: sandbox {}'s leaf gets {sum} bytes, the limits of the pod's containers \
                 together",
                c.id, c.sandbox_id
            );
        }
        MemoryRequest::Limit(Bytes(sum))
    }

    /// The bundle holding the sandbox's guard record: the container's own for a sandbox; for a
    /// container joining one, the sandbox's as this shim serves it, or its sibling in
    /// containerd's task directory (each bundle is `<state dir>/<namespace>/<id>`) when another
    /// shim serves the sandbox (`grouping = false`).
    async fn sandbox_bundle(&self, c: &Container) -> Result<PathBuf> {
        if c.sandbox_id == c.id {
            return Ok(c.bundle.clone());
        }
        if let Some(sandbox) = self.containers.lock().await.get(&c.sandbox_id) {
            return Ok(sandbox.bundle.clone());
        }
        validate_id(&c.sandbox_id)?;
        c.bundle
            .parent()
            .map(|dir| dir.join(&c.sandbox_id))
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "container {}: its bundle {} has no parent to find sandbox {}'s in",
                    c.id,
                    c.bundle.display(),
                    c.sandbox_id
                ))
            })
    }
}

/// The memory limit each container's last Update set, which its spec no longer tells.
#[derive(Default)]
pub(super) struct MemoryLimits(std::sync::Mutex<HashMap<String, MemoryRequest>>);

impl MemoryLimits {
    fn get(&self, id: &str) -> Option<MemoryRequest> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
    }

    fn set(&self, id: &str, request: MemoryRequest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), request);
    }

    pub(super) fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The limit a container was created with (`linux.resources.memory.limit` of its spec).
fn spec_limit(c: &Container) -> Option<MemoryRequest> {
    let spec = BundleSpec::load(&c.bundle).ok()?;
    let limit = spec
        .spec()
        .linux()
        .as_ref()?
        .resources()
        .as_ref()?
        .memory()
        .as_ref()?
        .limit();
    MemoryRequest::from_oci(limit).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What containerd's CRI sends for an UpdateContainerResources (Go's specs.LinuxResources,
    /// nil fields as null or left out, newer runtime-spec fields included).
    #[test]
    fn containerd_resources_json_is_read() {
        let json = br#"{"devices":null,"memory":{"limit":201326592,"swap":201326592,
            "checkBeforeUpdate":true},"cpu":{"shares":2,"quota":0,"period":100000},
            "unified":{"memory.oom.group":"1"}}"#;
        let r: LinuxResources = serde_json::from_slice(json).unwrap();
        let limit = r.memory().as_ref().and_then(|m| m.limit());
        assert_eq!(
            MemoryRequest::from_oci(limit).unwrap(),
            Some(MemoryRequest::Limit(crate::cgroup::Bytes(201326592)))
        );
        let none: LinuxResources = serde_json::from_slice(br#"{"cpu":{"shares":2}}"#).unwrap();
        assert_eq!(
            MemoryRequest::from_oci(none.memory().as_ref().and_then(|m| m.limit())).unwrap(),
            None
        );
    }
}
