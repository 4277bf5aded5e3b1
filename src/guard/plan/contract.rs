//! The decision as the rest of the project sees it: the plan `runsc-guard plan --json` prints
//! and the bundle's record keeps, and the spec edits it carries.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::annotations::{Role, GVISOR_CGROUP_PARENT};
use crate::cgroup::{Bytes, CgroupLayout, CgroupPath};
use crate::error::Error;
use crate::guard::relax::LeafRelaxation;
use crate::options::GuardMode;
use crate::runsc::version::RunscVersion;

/// How runsc will create the sandbox's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// `--systemd-cgroup=true`: a transient scope unit in the pod's slice.
    Systemd,
    /// runsc writes cgroupfs directories itself.
    Cgroupfs,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Systemd => "systemd",
            Driver::Cgroupfs => "cgroupfs",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing needed changing.
    Ok,
    /// Flags or the spec are changed; apply them.
    Adjusted,
    /// The bound cannot be guaranteed: Create must fail (enforce mode only).
    Refused,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Adjusted => "adjusted",
            Verdict::Refused => "refused",
        })
    }
}

/// One change to the container's spec before `runsc create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum SpecEdit {
    /// `linux.resources.memory.limit`: runsc gives the leaf it creates this limit and sizes the
    /// guest from it.
    SetMemoryLimit { from: Option<i64>, to: Bytes },
    /// `dev.gvisor.spec.cgroup-parent`: runsc records this cgroup and reads its limit.
    SetCgroupParent {
        from: Option<String>,
        to: CgroupPath,
    },
    /// A `dev.gvisor.spec.cgroup-parent` the guard did not choose (a pod annotation passed
    /// through by containerd must not pick the sandbox's cgroup).
    RemoveCgroupParent { was: String },
    /// `linux.cgroupsPath`: a systemd path in the cgroupfs form runsc can use without systemd.
    SetCgroupsPath { from: String, to: CgroupPath },
    /// An annotation runsc would read against the plan (a `dev.gvisor.flag.*` override).
    RemoveAnnotation { key: String, was: String },
}

impl fmt::Display for SpecEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecEdit::SetMemoryLimit { from, to } => write!(
                f,
                "linux.resources.memory.limit: {} -> {} ({to})",
                from.map_or("unset".to_string(), |v| v.to_string()),
                to.get()
            ),
            SpecEdit::SetCgroupParent { from, to } => write!(
                f,
                "annotations[{GVISOR_CGROUP_PARENT}]: {} -> {to}",
                from.as_deref().unwrap_or("unset")
            ),
            SpecEdit::RemoveCgroupParent { was } => {
                write!(f, "annotations[{GVISOR_CGROUP_PARENT}]: {was} -> removed")
            }
            SpecEdit::SetCgroupsPath { from, to } => {
                write!(f, "linux.cgroupsPath: {from} -> {to}")
            }
            SpecEdit::RemoveAnnotation { key, was } => {
                write!(f, "annotations[{key}]: {was} -> removed")
            }
        }
    }
}

impl SpecEdit {
    /// Applies the edit to a spec's JSON, touching nothing else, so fields oci-spec does not
    /// model survive. The one way an edit reaches a spec: the shim's bundle and the tests alike.
    pub fn apply_to(&self, spec: &mut Value) {
        match self {
            SpecEdit::SetMemoryLimit { to, .. } => {
                let memory = object_at(spec, &["linux", "resources", "memory"]);
                memory.insert("limit".to_string(), Value::from(to.get()));
            }
            SpecEdit::SetCgroupParent { to, .. } => {
                object_at(spec, &["annotations"]).insert(
                    GVISOR_CGROUP_PARENT.to_string(),
                    Value::from(to.to_string()),
                );
            }
            SpecEdit::RemoveCgroupParent { .. } => {
                if let Some(annotations) =
                    spec.get_mut("annotations").and_then(Value::as_object_mut)
                {
                    annotations.remove(GVISOR_CGROUP_PARENT);
                }
            }
            SpecEdit::SetCgroupsPath { to, .. } => {
                object_at(spec, &["linux"])
                    .insert("cgroupsPath".to_string(), Value::from(to.as_str()));
            }
            SpecEdit::RemoveAnnotation { key, .. } => {
                if let Some(annotations) =
                    spec.get_mut("annotations").and_then(Value::as_object_mut)
                {
                    annotations.remove(key);
                }
            }
        }
    }
}

/// The JSON object at `path` below `v`, each step made an object if it is missing, null or not
/// an object. An empty `linux` stays empty: no default namespaces or masked paths appear in a
/// spec the guard only meant to give a limit.
fn object_at<'v>(v: &'v mut Value, path: &[&str]) -> &'v mut Map<String, Value> {
    let mut cur = v;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            unreachable!("just made an object")
        };
        cur = map.entry(key.to_string()).or_insert(Value::Null);
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

/// The guard's decision for one container. Serialized as `runsc-guard plan --json` prints it
/// and as the bundle's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub container_id: String,
    pub role: Role,
    pub mode: GuardMode,
    pub runsc_version: RunscVersion,
    pub layout: CgroupLayout,
    pub driver: Driver,
    /// The pod's cgroup, relative to the cgroup root; None when the path names no pod.
    pub pod_cgroup: Option<CgroupPath>,
    /// Where the sandbox's processes will sit (the sandbox only, when known).
    pub leaf_cgroup: Option<CgroupPath>,
    /// The pod's effective memory bound (the smallest limit up to the root), or the
    /// sandbox-memory annotation when the pod cgroup cannot be read.
    pub pod_memory_limit: Option<Bytes>,
    /// The file the bound was read from, or `annotation`.
    pub limit_source: Option<String>,
    /// The memory the guest will see (runsc's `--total-memory`); None when unbounded (the
    /// host's memory) or for a container that joins a sandbox.
    pub total_memory: Option<Bytes>,
    /// The runsc global flags the guard adds or overrides, as runsc reads them.
    pub runsc_flags: Vec<String>,
    /// The same, as `[runsc_config]` entries to merge over runsc.toml's.
    pub runsc_config_overrides: BTreeMap<String, String>,
    /// The spec edits, for people.
    pub spec_changes: Vec<String>,
    /// The spec edits, for [`SpecEdit::apply_to`].
    pub edits: Vec<SpecEdit>,
    /// What to widen once the sandbox has booted.
    pub relax: Option<LeafRelaxation>,
    pub verdict: Verdict,
    /// Why each decision was made, in order.
    pub reasons: Vec<String>,
    /// What an operator should look at (always logged).
    pub warnings: Vec<String>,
    /// Why the plan is refused (non-empty exactly when the verdict is `refused`).
    pub refusals: Vec<String>,
}

impl Plan {
    pub fn is_refused(&self) -> bool {
        self.verdict == Verdict::Refused
    }

    /// The error Create fails with when the plan is refused.
    pub fn refusal(&self) -> Option<Error> {
        self.is_refused().then(|| Error::GuardRefused {
            container_id: self.container_id.clone(),
            reason: self.refusals.join("; "),
        })
    }

    /// runsc.toml's `[runsc_config]` with the guard's overrides merged over it: the global flags
    /// for every runsc call for this container.
    pub fn runsc_config(&self, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut merged = base.clone();
        merged.extend(self.runsc_config_overrides.clone());
        merged
    }

    /// The one log line per container the guard writes.
    pub fn summary(&self) -> String {
        let opt = |b: Option<Bytes>| b.map_or("unbounded".to_string(), |b| b.to_string());
        let mut line = format!(
            "runsc-guard {} {}: verdict={} mode={} driver={} pod_cgroup={} limit={} (from {}) \
             total_memory={}",
            self.role.name(),
            self.container_id,
            self.verdict,
            self.mode,
            self.driver,
            self.pod_cgroup
                .as_ref()
                .map_or("none".to_string(), |p| p.to_string()),
            opt(self.pod_memory_limit),
            self.limit_source.as_deref().unwrap_or("nowhere"),
            opt(self.total_memory),
        );
        if !self.runsc_flags.is_empty() {
            line.push_str(&format!(" flags=[{}]", self.runsc_flags.join(" ")));
        }
        if !self.spec_changes.is_empty() {
            line.push_str(&format!(" changes=[{}]", self.spec_changes.join("; ")));
        }
        if let Some(r) = &self.relax {
            line.push_str(&format!(" relax={r}"));
        }
        if !self.refusals.is_empty() {
            line.push_str(&format!(" refused: {}", self.refusals.join("; ")));
        }
        line
    }
}
