//! The decision: from a container's spec and the host, the runsc flags, spec edits and guest
//! size that keep its sandbox bounded by its pod.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{Linux, LinuxMemory, LinuxResources, Spec};
use serde::{Deserialize, Serialize};

use super::predict::{self, Placement};
use super::relax::{LeafRelaxation, RelaxTarget};
use super::{GuardInput, Role};
use crate::annotations::{GVISOR_CGROUP_PARENT, SANDBOX_MEMORY};
use crate::cgroup::{
    Bytes, CgroupError, CgroupLayout, CgroupPath, EffectiveLimit, MemoryLimit, SpecCgroupsPath,
};
use crate::error::Error;
use crate::options::GuardMode;
use crate::runsc::version::RunscVersion;

const SYSTEMD_CGROUP: &str = "systemd-cgroup";
const IGNORE_CGROUPS: &str = "ignore-cgroups";

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
        }
    }
}

/// The guard's decision for one container. Serialized as `runsc-guard plan --json` prints it
/// and as the bundle's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPlan {
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
    /// The spec edits, for [`SandboxPlan::apply`].
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

impl SandboxPlan {
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

    /// Applies the spec edits: call before writing the spec runsc will read.
    pub fn apply(&self, spec: &mut Spec) {
        for edit in &self.edits {
            match edit {
                SpecEdit::SetMemoryLimit { to, .. } => {
                    let linux = spec.linux_mut().get_or_insert_with(empty_linux);
                    let resources = linux
                        .resources_mut()
                        .get_or_insert_with(LinuxResources::default);
                    let memory = resources
                        .memory_mut()
                        .get_or_insert_with(LinuxMemory::default);
                    // Bytes come from a kernel limit or a parsed annotation, both below 2^62.
                    memory.set_limit(Some(i64::try_from(to.get()).unwrap_or(i64::MAX)));
                }
                SpecEdit::SetCgroupParent { to, .. } => {
                    spec.annotations_mut()
                        .get_or_insert_with(Default::default)
                        .insert(GVISOR_CGROUP_PARENT.to_string(), to.to_string());
                }
                SpecEdit::RemoveCgroupParent { .. } => {
                    if let Some(annotations) = spec.annotations_mut() {
                        annotations.remove(GVISOR_CGROUP_PARENT);
                    }
                }
                SpecEdit::SetCgroupsPath { to, .. } => {
                    spec.linux_mut()
                        .get_or_insert_with(empty_linux)
                        .set_cgroups_path(Some(to.as_str().into()));
                }
            }
        }
    }

    /// runsc.toml's `[runsc_config]` with the guard's overrides merged over it: the global flags
    /// for every runsc call for this container.
    pub fn runsc_config(&self, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut merged = base.clone();
        merged.extend(self.runsc_config_overrides.clone());
        merged
    }

    /// The one log line per container the guard writes (rule 7).
    pub fn summary(&self) -> String {
        let opt = |b: Option<Bytes>| b.map_or("unbounded".to_string(), |b| b.to_string());
        let mut line = format!(
            "runsc-guard {} {}: verdict={} mode={} driver={} pod_cgroup={} limit={} (from {}) \
             total_memory={}",
            self.role_name(),
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

    fn role_name(&self) -> &'static str {
        match self.role {
            Role::Sandbox => "sandbox",
            Role::Container => "container",
        }
    }
}

/// An empty `linux` section. `Linux::default()` is not empty: it brings default namespaces and
/// masked paths, which must not appear in a spec the guard only meant to give a limit.
fn empty_linux() -> Linux {
    serde_json::from_str("{}").unwrap_or_default()
}

/// A boolean runsc flag as the operator set it in `[runsc_config]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FlagSetting {
    Unset,
    Set(bool),
    /// A value Go's flag package would reject.
    Invalid(String),
}

impl FlagSetting {
    fn read(config: &BTreeMap<String, String>, key: &str) -> Self {
        match config.get(key).map(String::as_str) {
            None => FlagSetting::Unset,
            // Go's strconv.ParseBool, which runsc's flags use.
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => FlagSetting::Set(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => FlagSetting::Set(false),
            Some(other) => FlagSetting::Invalid(other.to_string()),
        }
    }

    /// The value runsc runs with (runsc's default for both flags the guard reads is false).
    fn effective(&self) -> bool {
        matches!(self, FlagSetting::Set(true))
    }
}

/// The decision being built.
struct Draft<'a> {
    input: &'a GuardInput<'a>,
    reasons: Vec<String>,
    warnings: Vec<String>,
    refusals: Vec<String>,
    edits: Vec<SpecEdit>,
    overrides: BTreeMap<String, String>,
}

impl<'a> Draft<'a> {
    fn new(input: &'a GuardInput<'a>) -> Self {
        Draft {
            input,
            reasons: Vec::new(),
            warnings: Vec::new(),
            refusals: Vec::new(),
            edits: Vec::new(),
            overrides: BTreeMap::new(),
        }
    }

    fn active(&self) -> bool {
        self.input.mode != GuardMode::Off
    }

    fn reason(&mut self, text: impl Into<String>) {
        self.reasons.push(text.into());
    }

    /// Something that breaks the guarantee: refused in enforce mode, a warning otherwise.
    fn refuse(&mut self, text: impl Into<String>) {
        let text = text.into();
        match self.input.mode {
            GuardMode::Enforce => {
                self.reasons.push(format!("refused: {text}"));
                self.refusals.push(text);
            }
            GuardMode::Warn => self
                .warnings
                .push(format!("enforce mode would refuse this: {text}")),
            GuardMode::Off => self
                .warnings
                .push(format!("not bounded by its pod (guard off): {text}")),
        }
    }

    /// Makes runsc run with boolean flag `key` = `want`, and returns the value it will run
    /// with. An operator's explicit contrary value is overridden in enforce mode and kept, with
    /// a loud warning, in warn mode (the operator's choice, the operator's risk).
    fn require_flag(&mut self, key: &str, want: bool, why: &str) -> bool {
        let setting = FlagSetting::read(self.input.runsc_config, key);
        match &setting {
            FlagSetting::Set(v) if *v == want => return want,
            FlagSetting::Unset if !want => return want,
            FlagSetting::Unset => {
                self.overrides.insert(key.to_string(), want.to_string());
                self.reason(format!("runsc gets --{key}={want}: {why}"));
                return want;
            }
            FlagSetting::Set(_) | FlagSetting::Invalid(_) => {}
        }
        let operator = self
            .input
            .runsc_config
            .get(key)
            .cloned()
            .unwrap_or_default();
        match self.input.mode {
            GuardMode::Enforce => {
                self.overrides.insert(key.to_string(), want.to_string());
                self.warnings.push(format!(
                    "runsc_config {key} = {operator:?} in runsc.toml is overridden with \
                     --{key}={want}: {why}; remove the key (or set guard_mode = \"warn\" to keep \
                     it at your own risk)"
                ));
                want
            }
            GuardMode::Warn | GuardMode::Off => {
                self.warnings.push(format!(
                    "KEPT runsc_config {key} = {operator:?} from runsc.toml because guard_mode \
                     is \"warn\", although {why}; this sandbox is NOT bounded by its pod"
                ));
                setting.effective()
            }
        }
    }

    fn edit(&mut self, edit: SpecEdit) {
        self.edits.push(edit);
    }
}

/// The facts the decision found, filled in as it goes.
struct Outcome {
    driver: Driver,
    pod_cgroup: Option<CgroupPath>,
    leaf_cgroup: Option<CgroupPath>,
    pod_memory_limit: Option<Bytes>,
    limit_source: Option<String>,
    total_memory: Option<Bytes>,
    relax: Option<LeafRelaxation>,
}

/// Decides how to create the container so that its sandbox is bounded by its pod.
pub fn plan(input: &GuardInput<'_>) -> SandboxPlan {
    let mut d = Draft::new(input);
    let layout = input.tree.layout();
    let operator_systemd = FlagSetting::read(input.runsc_config, SYSTEMD_CGROUP);
    let mut out = Outcome {
        driver: if operator_systemd.effective() {
            Driver::Systemd
        } else {
            Driver::Cgroupfs
        },
        pod_cgroup: None,
        leaf_cgroup: None,
        pod_memory_limit: None,
        limit_source: None,
        total_memory: None,
        relax: None,
    };
    if input.mode == GuardMode::Off {
        d.reason(
            "guard_mode is \"off\": nothing is changed beyond what gVisor's own shim does; this \
             is what runsc will do",
        );
    }

    // Rule 1: the path, validated before anything reads the tree.
    let path = match read_cgroups_path(input.spec) {
        Ok(Some(path)) => path,
        Ok(None) => {
            d.refuse(
                "the spec has no \"linux\" section, so it names no cgroup and runsc would place \
                 the sandbox at /<id>, outside any pod; containerd always writes one: check \
                 what produced this bundle's config.json",
            );
            SpecCgroupsPath::Empty
        }
        Err(message) => {
            d.refuse(message);
            return finish(d, out);
        }
    };
    let pod = path.pod_cgroup();
    out.pod_cgroup = pod.clone();

    // Rule 2: the driver, the same for every container of the pod.
    let (runsc_path, systemd_flag) = decide_driver(&mut d, &path, &mut out);
    let ignore_cgroups = if d.active() && pod.is_some() {
        d.require_flag(
            IGNORE_CGROUPS,
            false,
            "with ignore-cgroups runsc leaves the sandbox in the shim's cgroup, outside its pod",
        )
    } else {
        FlagSetting::read(input.runsc_config, IGNORE_CGROUPS).effective()
    };

    // Rule 3: the pod's cgroup and its bound.
    let mut bound = None;
    let mut pod_unreadable = None;
    match &pod {
        Some(pod) => match input.tree.effective_memory_limit(pod) {
            Ok(eff) => {
                d.reason(describe_bound(pod, &eff));
                out.pod_memory_limit = eff.limit.bytes();
                out.limit_source = eff.source.as_ref().map(|p| p.display().to_string());
                bound = Some(eff);
            }
            Err(e @ CgroupError::Symlink { .. }) => {
                // No fallback: a symlink in a cgroup tree means the tree cannot be trusted.
                d.refuse(format!("pod cgroup {pod}: {e}"));
                return finish(d, out);
            }
            Err(e) => pod_unreadable = Some(e),
        },
        None if input.role == Role::Sandbox => d.reason(not_a_pod(&path)),
        None => {}
    }

    if input.role == Role::Container {
        d.reason(
            "this container joins an existing sandbox: the guest's size was decided when the \
             sandbox was created; it only needs the same cgroup driver",
        );
        return finish(d, out);
    }

    // Rule 4: the guest's size.
    let spec_limit = spec_memory_limit(input.spec);
    let annotation = sandbox_memory_annotation(&mut d);
    let guest = match (&pod, &bound, pod_unreadable) {
        (Some(_), Some(eff), _) => size_guest(&mut d, eff, spec_limit, annotation),
        (Some(_), None, Some(err)) => match annotation {
            Some(a) => {
                d.warnings.push(format!(
                    "the pod cgroup cannot be used ({err}); the {SANDBOX_MEMORY} annotation \
                     ({a}) becomes the sandbox leaf's limit instead, which leaves no room for a \
                     RuntimeClass overhead"
                ));
                out.pod_memory_limit = Some(a);
                out.limit_source = Some("annotation".to_string());
                MemoryLimit::Limited(spec_limit.map_or(a, |s| s.min(a)))
            }
            None => {
                d.refuse(format!(
                    "the pod cgroup cannot be used ({err}) and the spec has no {SANDBOX_MEMORY} \
                     annotation to bound the sandbox with; systemd would create a missing slice \
                     without any limit. Check that the kubelet and containerd use the same \
                     cgroup driver, and for runsc-guard plan that --cgroup-root points at the \
                     node's cgroup mount"
                ));
                MemoryLimit::from(spec_limit)
            }
        },
        _ => MemoryLimit::from(spec_limit),
    };

    // Rule 5: where runsc will put the sandbox, and the limit on it.
    let placement = place_sandbox(
        &mut d,
        &runsc_path,
        systemd_flag,
        ignore_cgroups,
        pod.as_ref(),
        guest,
    );
    out.leaf_cgroup = placement.process_cgroup(layout).cloned();
    if let Some(leaf) = &out.leaf_cgroup {
        // runsc would follow a symlink out of the tree; a cgroup filesystem has none.
        if let Err(e @ CgroupError::Symlink { .. }) = input.tree.exists(leaf) {
            d.refuse(format!("the sandbox's cgroup {leaf}: {e}"));
            return finish(d, out);
        }
    }
    let mut runsc_spec_limit = spec_limit;
    if let (true, MemoryLimit::Limited(g)) = (d.active(), guest) {
        let sized_by_leaf = !matches!(placement, Placement::PodParent { .. } | Placement::NoCgroup);
        if sized_by_leaf && spec_limit != Some(g) {
            d.edit(SpecEdit::SetMemoryLimit {
                from: raw_spec_memory_limit(input.spec),
                to: g,
            });
            d.reason(leaf_limit_reason(input.runsc_version, g));
            runsc_spec_limit = Some(g);
        }
    }

    let prediction = predict::total_memory(
        &placement,
        runsc_spec_limit,
        input.runsc_version,
        input.tree,
    );
    out.total_memory = prediction
        .limit
        .bytes()
        .map(|b| input.host.host_memory.map_or(b, |host| b.min(host)));
    if let Some(pod) = &pod {
        check_outcome(&mut d, pod, &placement, layout, guest, &prediction);
    }
    out.relax = relaxation(&d, &placement, guest, bound.as_ref(), spec_limit);
    if let Some(r) = &out.relax {
        d.reason(format!(
            "once the sandbox has booted, its leaf's limit is raised {r}, so the room the pod \
             reserves beyond the guest (RuntimeClass overhead) is there for the sentry and \
             gofers, which share the pod's cgroup"
        ));
    }
    finish(d, out)
}

/// `linux.cgroupsPath`, parsed. Ok(None) when the spec has no `linux` at all.
fn read_cgroups_path(spec: &Spec) -> Result<Option<SpecCgroupsPath>, String> {
    let Some(linux) = spec.linux() else {
        return Ok(None);
    };
    let raw = match linux.cgroups_path() {
        None => "",
        Some(p) => p
            .to_str()
            .ok_or_else(|| format!("linux.cgroupsPath {p:?} is not UTF-8"))?,
    };
    SpecCgroupsPath::parse(raw)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Rule 2. Returns the path as runsc will get it and whether runsc runs with
/// `--systemd-cgroup`.
fn decide_driver(
    d: &mut Draft<'_>,
    path: &SpecCgroupsPath,
    out: &mut Outcome,
) -> (SpecCgroupsPath, bool) {
    let layout = d.input.tree.layout();
    let operator = FlagSetting::read(d.input.runsc_config, SYSTEMD_CGROUP);
    if !d.active() {
        return (path.clone(), operator.effective());
    }
    let systemd_usable = d.input.host.systemd_running && layout.is_unified();
    match path {
        SpecCgroupsPath::Systemd(sd) if systemd_usable => {
            let flag = d.require_flag(
                SYSTEMD_CGROUP,
                true,
                &format!(
                    "linux.cgroupsPath {:?} is systemd's slice:prefix:name form and the host runs \
                     systemd, so the sandbox's scope {} must be created in the slice {} (without \
                     the flag runsc reads the path as a relative cgroupfs path and creates it \
                     under its own cgroup, outside the pod)",
                    sd.as_spec_string(),
                    sd.unit_name(),
                    sd.slice
                ),
            );
            out.driver = if flag {
                Driver::Systemd
            } else {
                Driver::Cgroupfs
            };
            (path.clone(), flag)
        }
        SpecCgroupsPath::Systemd(sd) => {
            // runsc's systemd driver needs cgroup v2 and a running systemd; without them the
            // same cgroup is reachable through its cgroupfs path, the directory systemd gives the unit.
            let leaf = sd.leaf();
            d.edit(SpecEdit::SetCgroupsPath {
                from: sd.as_spec_string(),
                to: leaf.clone(),
            });
            d.reason(format!(
                "runsc's systemd driver needs cgroup v2 and a running systemd, and this host has \
                 {}: the systemd path is given to runsc in its cgroupfs form {leaf}, the cgroup \
                 systemd would have used",
                if layout.is_unified() {
                    "no systemd".to_string()
                } else {
                    layout.to_string()
                }
            ));
            let flag = if layout.is_unified() {
                d.require_flag(
                    SYSTEMD_CGROUP,
                    false,
                    "runsc's systemd driver cannot work on this host",
                )
            } else {
                operator.effective()
            };
            out.driver = Driver::Cgroupfs;
            (SpecCgroupsPath::Absolute(leaf), flag)
        }
        SpecCgroupsPath::Absolute(_) => {
            let flag = if layout.is_unified() {
                d.require_flag(
                    SYSTEMD_CGROUP,
                    false,
                    "linux.cgroupsPath is a cgroupfs path, which runsc's systemd driver rejects",
                )
            } else {
                operator.effective()
            };
            out.driver = Driver::Cgroupfs;
            (path.clone(), flag)
        }
        SpecCgroupsPath::Relative(raw) => {
            d.refuse(format!(
                "linux.cgroupsPath {raw:?} is a relative cgroupfs path: runsc would create it \
                 under the parent of its own cgroup (containerd's), outside any pod, which is \
                 how the incident's sandboxes escaped; containerd writes absolute or \
                 slice:prefix:name paths, so check the runtime's configuration"
            ));
            out.driver = Driver::Cgroupfs;
            (path.clone(), operator.effective())
        }
        SpecCgroupsPath::Empty => (path.clone(), operator.effective()),
    }
}

fn describe_bound(pod: &CgroupPath, eff: &EffectiveLimit) -> String {
    match (&eff.limit, &eff.source) {
        (MemoryLimit::Limited(b), Some(source)) => format!(
            "pod cgroup {pod} (own limit {}) is bounded by {b} ({} bytes) from {}, the smallest \
             limit up to the root",
            eff.own,
            b.get(),
            source.display()
        ),
        _ => format!(
            "pod cgroup {pod} has no memory limit and neither has any ancestor: the kubelet \
             bounds this pod by nothing (a container without a memory limit, and no enforced \
             node allocatable), so the guest sees the host's memory, as it would under runc"
        ),
    }
}

fn not_a_pod(path: &SpecCgroupsPath) -> String {
    let what = match path {
        SpecCgroupsPath::Empty => "linux.cgroupsPath is empty (ctr, nerdctl or docker without a \
                               cgroup parent)"
            .to_string(),
        SpecCgroupsPath::Systemd(sd) => format!("linux.cgroupsPath is in the slice {}", sd.slice),
        SpecCgroupsPath::Absolute(p) => format!("linux.cgroupsPath {p} has no pod<uid> parent"),
        SpecCgroupsPath::Relative(raw) => format!("linux.cgroupsPath {raw:?} is relative"),
    };
    format!(
        "not bounded by a pod: {what}, so this is not a Kubernetes pod's sandbox and it is \
         bounded only by its own spec's limit, as runc would bound it"
    )
}

/// Rule 4: the smallest of the spec's limit, the pod's bound and, when the pod's own cgroup is
/// bounded, the sandbox-memory annotation if it is within the bound.
fn size_guest(
    d: &mut Draft<'_>,
    eff: &EffectiveLimit,
    spec_limit: Option<Bytes>,
    annotation: Option<Bytes>,
) -> MemoryLimit {
    let mut guest = eff.limit;
    if let Some(s) = spec_limit {
        if MemoryLimit::Limited(s).min(guest) != guest {
            d.reason(format!(
                "the sandbox spec's own memory limit {s} is below the pod's bound and sizes the \
                 guest"
            ));
        }
        guest = guest.min(MemoryLimit::Limited(s));
    }
    let Some(a) = annotation else {
        return guest;
    };
    match eff.limit {
        _ if !eff.own.is_limited() => d.reason(format!(
            "{SANDBOX_MEMORY}={} is not used: the pod's own cgroup has no limit (the kubelet \
             leaves it unbounded when a container declares no memory limit) and the annotation \
             sums only the declared limits, so applying it would impose a limit Kubernetes did \
             not",
            a.get()
        )),
        MemoryLimit::Limited(b) if a > b => d.reason(format!(
            "{SANDBOX_MEMORY}={} is above the pod's bound {b} and is not used: the cgroup tree \
             is the truth for the bound",
            a.get()
        )),
        _ => {
            if MemoryLimit::Limited(a).min(guest) != guest {
                d.reason(format!(
                    "{SANDBOX_MEMORY}={} ({a}) is below the pod's bound {}: the difference is the \
                     RuntimeClass overhead the kubelet adds to the pod cgroup for the sandbox's \
                     own processes, so the guest gets {a}",
                    a.get(),
                    eff.limit
                ));
            }
            guest = guest.min(MemoryLimit::Limited(a));
        }
    }
    guest
}

/// Rule 5: where runsc will put the sandbox, choosing `dev.gvisor.spec.cgroup-parent` for a
/// cgroupfs pod path when it gives the right size.
fn place_sandbox(
    d: &mut Draft<'_>,
    runsc_path: &SpecCgroupsPath,
    systemd_flag: bool,
    ignore_cgroups: bool,
    pod: Option<&CgroupPath>,
    guest: MemoryLimit,
) -> Placement {
    let input = d.input;
    let layout = input.tree.layout();
    let existing_parent = input
        .spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(GVISOR_CGROUP_PARENT))
        .cloned();
    let placement = if ignore_cgroups {
        Placement::NoCgroup
    } else {
        match runsc_path {
            SpecCgroupsPath::Systemd(sd) if systemd_flag => Placement::OwnLeaf {
                leaf: sd.leaf(),
                systemd_unit: Some(sd.unit_name()),
            },
            SpecCgroupsPath::Systemd(sd) => Placement::Elsewhere {
                why: format!(
                    "without --systemd-cgroup runsc reads {:?} as a relative cgroupfs path and \
                     creates it under its own cgroup, outside the pod",
                    sd.as_spec_string()
                ),
            },
            SpecCgroupsPath::Absolute(_) if systemd_flag && layout.is_unified() => {
                Placement::Elsewhere {
                    why: "runsc's systemd driver rejects a cgroupfs path, so runsc create fails"
                        .to_string(),
                }
            }
            SpecCgroupsPath::Absolute(leaf) => match pod {
                Some(pod) if d.active() => choose_cgroupfs_placement(d, pod, leaf, guest),
                // gVisor's shim names the pod cgroup for runsc (setPodCgroup).
                Some(pod) => Placement::PodParent {
                    parent: pod.clone(),
                    leaf: Some(leaf.clone()),
                },
                None => Placement::OwnLeaf {
                    leaf: leaf.clone(),
                    systemd_unit: None,
                },
            },
            SpecCgroupsPath::Relative(raw) => Placement::Elsewhere {
                why: format!("runsc joins {raw:?} to the parent of its own cgroup"),
            },
            SpecCgroupsPath::Empty if systemd_flag => Placement::Elsewhere {
                why: "with --systemd-cgroup and no path, runsc picks a scope in system.slice (or \
                      fails, on releases before 20240603)"
                    .to_string(),
            },
            SpecCgroupsPath::Empty => match CgroupPath::root().join(input.container_id) {
                Ok(leaf) => Placement::OwnLeaf {
                    leaf,
                    systemd_unit: None,
                },
                Err(_) => Placement::Elsewhere {
                    why: "runsc uses /<container id>, which is not a valid cgroup name here"
                        .to_string(),
                },
            },
        }
    };

    // The annotation is runsc's, and the guard decides it: a pass-through pod annotation must
    // not place the sandbox. gVisor's shim only ever sets it, so guard_mode=off keeps it.
    let chosen_parent = match &placement {
        Placement::PodParent { parent, .. } => Some(parent.to_string()),
        _ => None,
    };
    match (&existing_parent, &chosen_parent) {
        (Some(was), None) if d.active() => {
            d.edit(SpecEdit::RemoveCgroupParent { was: was.clone() });
            d.reason(format!(
                "the spec's {GVISOR_CGROUP_PARENT}={was:?} is removed: only the guard chooses the \
                 cgroup runsc records for the sandbox"
            ));
        }
        (Some(was), None) => {
            return match CgroupPath::parse(was) {
                Ok(parent) => Placement::PodParent {
                    leaf: placement.process_cgroup(layout).cloned(),
                    parent,
                },
                Err(e) => Placement::Elsewhere {
                    why: format!("the spec's {GVISOR_CGROUP_PARENT} is unusable: {e}"),
                },
            };
        }
        (was, Some(to)) if was.as_deref() != Some(to.as_str()) => {
            if let Placement::PodParent { parent, .. } = &placement {
                d.edit(SpecEdit::SetCgroupParent {
                    from: was.clone(),
                    to: parent.clone(),
                });
            }
        }
        _ => {}
    }
    placement
}

/// With a cgroupfs pod path, gVisor's shim sets `dev.gvisor.spec.cgroup-parent` to the pod
/// cgroup: runsc then records the pod cgroup and reads *its* limit, and (on v2) puts the
/// processes in the leaf below it. runsc never writes limits into a cgroup that exists already,
/// so with the annotation the spec's memory limit changes nothing: the guest's size is
/// whatever the pod cgroup's own file says (or, from 20231106, its parent's when it says
/// `max`). That is right exactly when it equals the guest size decided by rule 4, the common
/// case (every container declares a limit, no overhead). Otherwise (an overhead to keep out of
/// the guest, a bound that comes from an ancestor, cgroup v1 where runsc would put the
/// processes in the pod cgroup itself) the guard leaves the annotation out: runsc then records
/// the leaf, which it creates with the spec's limit, exactly like the systemd scope.
fn choose_cgroupfs_placement(
    d: &mut Draft<'_>,
    pod: &CgroupPath,
    leaf: &CgroupPath,
    guest: MemoryLimit,
) -> Placement {
    let input = d.input;
    let via_pod = Placement::PodParent {
        parent: pod.clone(),
        leaf: Some(leaf.clone()),
    };
    let own_leaf = Placement::OwnLeaf {
        leaf: leaf.clone(),
        systemd_unit: None,
    };
    if !input.tree.layout().is_unified() {
        d.reason(format!(
            "{GVISOR_CGROUP_PARENT} is not set: on cgroup v1 runsc would put the sandbox's \
             processes in the cgroup it names, the pod cgroup itself; runsc creates the leaf \
             {leaf} instead and sizes the guest from its limit"
        ));
        return own_leaf;
    }
    if !matches!(input.tree.exists(pod), Ok(true)) {
        return own_leaf;
    }
    let from_pod = predict::total_memory(&via_pod, None, input.runsc_version, input.tree);
    if page_floor(from_pod.limit) == page_floor(guest) {
        d.reason(format!(
            "{GVISOR_CGROUP_PARENT}={pod}, as gVisor's shim sets it: runsc records the pod cgroup \
             and sizes the guest from it ({guest}), with its processes in the leaf {leaf}"
        ));
        via_pod
    } else {
        d.reason(format!(
            "{GVISOR_CGROUP_PARENT} is not set: with it runsc would size the guest from the pod \
             cgroup to {} instead of {guest} ({}); runsc creates the leaf {leaf} with the limit \
             instead",
            from_pod.limit, from_pod.explanation
        ));
        own_leaf
    }
}

/// The reason for the leaf's limit, in terms of the runsc release.
fn leaf_limit_reason(version: &RunscVersion, guest: Bytes) -> String {
    let how = if !version.is_known() {
        format!(
            "runsc {version} is not a dated release and is treated as the oldest, which reads \
             only its own cgroup's limit"
        )
    } else if version.needs_leaf_limit() {
        format!(
            "runsc {version} reads only its own cgroup's limit (reading the parent's came in \
             20231106)"
        )
    } else {
        format!(
            "runsc {version} would read the pod's limit only when the leaf has none and only one \
             level up, so the leaf carries the size itself"
        )
    };
    format!(
        "the sandbox spec's linux.resources.memory.limit is set to {} ({guest}) before runsc \
         create: runsc gives the leaf it creates that limit and computes --total-memory from \
         it; {how}",
        guest.get()
    )
}

/// Checks that what runsc will do matches the decision: the sandbox in a leaf under its pod,
/// the guest at the decided size. A mismatch here is a refusal, found before anything runs.
fn check_outcome(
    d: &mut Draft<'_>,
    pod: &CgroupPath,
    placement: &Placement,
    layout: CgroupLayout,
    guest: MemoryLimit,
    prediction: &predict::Prediction,
) {
    match (placement.process_cgroup(layout), placement) {
        (Some(cgroup), _) if cgroup.is_strictly_under(pod) => {}
        (Some(cgroup), _) => d.refuse(format!(
            "the sandbox's processes would sit in {cgroup}, not in a leaf under the pod cgroup \
             {pod}"
        )),
        (None, Placement::Elsewhere { why }) => d.refuse(format!(
            "the sandbox would not sit under its pod cgroup {pod}: {why}"
        )),
        (None, _) => d.refuse(format!(
            "the sandbox would not sit under its pod cgroup {pod}: runsc ignores cgroups"
        )),
    }
    if page_floor(prediction.limit) != page_floor(guest) {
        d.refuse(format!(
            "runsc would size the guest to {} instead of {guest}: {}",
            prediction.limit, prediction.explanation
        ));
    }
}

/// The leaf is sized for the guest; once booted it may take what the pod allows (but no more
/// than the spec's own limit, which was an explicit request for this leaf).
fn relaxation(
    d: &Draft<'_>,
    placement: &Placement,
    guest: MemoryLimit,
    bound: Option<&EffectiveLimit>,
    spec_limit: Option<Bytes>,
) -> Option<LeafRelaxation> {
    if !d.active() || !d.refusals.is_empty() {
        return None;
    }
    let Placement::OwnLeaf { leaf, systemd_unit } = placement else {
        return None;
    };
    let guest = guest.bytes()?;
    let bound = bound?.limit.bytes()?;
    let ceiling = spec_limit.map_or(bound, |s| s.min(bound)).page_floor();
    (ceiling > guest.page_floor()).then(|| LeafRelaxation {
        target: match systemd_unit {
            Some(unit) => RelaxTarget::SystemdScope { unit: unit.clone() },
            None => RelaxTarget::Cgroup {
                cgroup: leaf.clone(),
            },
        },
        from: guest,
        to: ceiling,
    })
}

fn page_floor(limit: MemoryLimit) -> Option<Bytes> {
    limit.bytes().map(Bytes::page_floor)
}

fn raw_spec_memory_limit(spec: &Spec) -> Option<i64> {
    spec.linux()
        .as_ref()?
        .resources()
        .as_ref()?
        .memory()
        .as_ref()?
        .limit()
}

/// The spec's memory limit, when it is one (0 and -1 mean none).
fn spec_memory_limit(spec: &Spec) -> Option<Bytes> {
    raw_spec_memory_limit(spec)
        .filter(|l| *l > 0)
        .map(|l| Bytes(l.unsigned_abs()))
}

/// `io.kubernetes.cri.sandbox-memory`: the sum of the limits the pod's containers declare; "0"
/// means unset. Garbage is reported and ignored.
fn sandbox_memory_annotation(d: &mut Draft<'_>) -> Option<Bytes> {
    let value = d
        .input
        .spec
        .annotations()
        .as_ref()?
        .get(SANDBOX_MEMORY)?
        .clone();
    match value.trim().parse::<i64>() {
        Ok(n) if n > 0 => Some(Bytes(n.unsigned_abs())),
        Ok(_) => None,
        Err(_) => {
            d.warnings.push(format!(
                "annotation {SANDBOX_MEMORY}={value:?} is not a number of bytes and is ignored"
            ));
            None
        }
    }
}

fn finish(d: Draft<'_>, out: Outcome) -> SandboxPlan {
    let input = d.input;
    let verdict = if !d.refusals.is_empty() {
        Verdict::Refused
    } else if d.edits.is_empty() && d.overrides.is_empty() {
        Verdict::Ok
    } else {
        Verdict::Adjusted
    };
    SandboxPlan {
        container_id: input.container_id.to_string(),
        role: input.role,
        mode: input.mode,
        runsc_version: input.runsc_version.clone(),
        layout: input.tree.layout(),
        driver: out.driver,
        pod_cgroup: out.pod_cgroup,
        leaf_cgroup: out.leaf_cgroup,
        pod_memory_limit: out.pod_memory_limit,
        limit_source: out.limit_source,
        total_memory: out.total_memory,
        runsc_flags: d
            .overrides
            .iter()
            .map(|(k, v)| format!("--{k}={v}"))
            .collect(),
        runsc_config_overrides: d.overrides,
        spec_changes: d.edits.iter().map(ToString::to_string).collect(),
        edits: d.edits,
        relax: out.relax,
        verdict,
        reasons: d.reasons,
        warnings: d.warnings,
        refusals: d.refusals,
    }
}
