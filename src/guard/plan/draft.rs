//! The decision being built: what each rule has found so far, and why.

use std::collections::BTreeMap;

use super::contract::{Driver, Plan, SpecEdit, Verdict};
use crate::cgroup::{Bytes, CgroupPath};
use crate::guard::relax::LeafRelaxation;
use crate::guard::GuardInput;
use crate::options::GuardMode;

pub(super) const SYSTEMD_CGROUP: &str = "systemd-cgroup";
pub(super) const IGNORE_CGROUPS: &str = "ignore-cgroups";

/// A boolean runsc flag as the operator set it in `[runsc_config]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FlagSetting {
    Unset,
    Set(bool),
    /// A value Go's flag package would reject.
    Invalid(String),
}

impl FlagSetting {
    pub(super) fn read(config: &BTreeMap<String, String>, key: &str) -> Self {
        match config.get(key).map(String::as_str) {
            None => FlagSetting::Unset,
            // Go's strconv.ParseBool, which runsc's flags use.
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => FlagSetting::Set(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => FlagSetting::Set(false),
            Some(other) => FlagSetting::Invalid(other.to_string()),
        }
    }

    /// The value runsc runs with (runsc's default for both flags the guard reads is false).
    pub(super) fn effective(&self) -> bool {
        matches!(self, FlagSetting::Set(true))
    }
}

/// The decision being built.
pub(super) struct Draft<'a> {
    pub input: &'a GuardInput<'a>,
    pub reasons: Vec<String>,
    pub warnings: Vec<String>,
    pub refusals: Vec<String>,
    pub edits: Vec<SpecEdit>,
    /// runsc flags the guard sets, as `[runsc_config]` entries.
    pub overrides: BTreeMap<String, String>,
    pub driver: Driver,
    pub pod_cgroup: Option<CgroupPath>,
    pub leaf_cgroup: Option<CgroupPath>,
    pub pod_memory_limit: Option<Bytes>,
    pub limit_source: Option<String>,
    pub total_memory: Option<Bytes>,
    pub relax: Option<LeafRelaxation>,
}

impl<'a> Draft<'a> {
    /// An empty decision; the driver is what runsc.toml makes it until rule 1 says otherwise.
    pub fn new(input: &'a GuardInput<'a>) -> Self {
        let driver = if FlagSetting::read(input.runsc_config, SYSTEMD_CGROUP).effective() {
            Driver::Systemd
        } else {
            Driver::Cgroupfs
        };
        Draft {
            input,
            reasons: Vec::new(),
            warnings: Vec::new(),
            refusals: Vec::new(),
            edits: Vec::new(),
            overrides: BTreeMap::new(),
            driver,
            pod_cgroup: None,
            leaf_cgroup: None,
            pod_memory_limit: None,
            limit_source: None,
            total_memory: None,
            relax: None,
        }
    }

    pub fn active(&self) -> bool {
        self.input.mode != GuardMode::Off
    }

    pub fn reason(&mut self, text: impl Into<String>) {
        self.reasons.push(text.into());
    }

    /// Something that breaks the guarantee: refused in enforce mode, a warning otherwise.
    pub fn refuse(&mut self, text: impl Into<String>) {
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
    pub fn require_flag(&mut self, key: &str, want: bool, why: &str) -> bool {
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

    pub fn edit(&mut self, edit: SpecEdit) {
        self.edits.push(edit);
    }

    /// The finished plan.
    pub fn finish(self) -> Plan {
        let d = self;
        let input = d.input;
        let verdict = if !d.refusals.is_empty() {
            Verdict::Refused
        } else if d.edits.is_empty() && d.overrides.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Adjusted
        };
        Plan {
            container_id: input.container_id.to_string(),
            role: input.role,
            mode: input.mode,
            runsc_version: input.runsc_version.clone(),
            layout: input.tree.layout(),
            driver: d.driver,
            pod_cgroup: d.pod_cgroup,
            leaf_cgroup: d.leaf_cgroup,
            pod_memory_limit: d.pod_memory_limit,
            limit_source: d.limit_source,
            total_memory: d.total_memory,
            runsc_flags: d
                .overrides
                .iter()
                .map(|(k, v)| format!("--{k}={v}"))
                .collect(),
            runsc_config_overrides: d.overrides,
            spec_changes: d.edits.iter().map(ToString::to_string).collect(),
            edits: d.edits,
            relax: d.relax,
            verdict,
            reasons: d.reasons,
            warnings: d.warnings,
            refusals: d.refusals,
        }
    }
}
