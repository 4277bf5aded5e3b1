//! Rule 0, before the driver: runsc flags a pod may set through annotations.
//!
//! With `allow-flag-override`, runsc reads every `dev.gvisor.flag.<name>` annotation of the spec
//! as the flag `<name>` (gVisor `runsc/config/config.go`, `NewFromFlags` and the annotation
//! override), after the command line: a pod annotation would beat the flags the guard chose.
//! The flags that decide where the sandbox lives or how its errors reach the shim are stripped
//! from the spec, whatever runsc.toml says, so neither enforce nor warn mode ever runs a sandbox
//! a pod annotation moved out of its bound.

use super::contract::SpecEdit;
use super::draft::{Draft, FlagSetting};

/// The annotation prefix runsc reads flag overrides from.
const FLAG_OVERRIDE_PREFIX: &str = "dev.gvisor.flag.";

/// Flags a pod annotation may not override: the cgroup driver and cgroup handling (the bound),
/// and the flags the shim owns (state root and error log).
const PROTECTED_FLAGS: &[&str] = &[
    "ignore-cgroups",
    "systemd-cgroup",
    "root",
    "log",
    "log-fd",
    "log-format",
];

pub(super) fn strip(d: &mut Draft<'_>) {
    let Some(annotations) = d.input.spec.annotations().as_ref() else {
        return;
    };
    let mut found: Vec<(String, String)> = annotations
        .iter()
        .filter_map(|(k, v)| {
            let flag = k.strip_prefix(FLAG_OVERRIDE_PREFIX)?;
            PROTECTED_FLAGS
                .contains(&flag)
                .then(|| (k.clone(), v.clone()))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return;
    }
    let allowed = FlagSetting::read(d.input.runsc_config, "allow-flag-override").effective();
    for (key, value) in found {
        let text = if allowed {
            format!(
                "annotation {key}={value:?} would override the runsc flag the guard sets \
                 (runsc.toml allows flag overrides): removed from the spec"
            )
        } else {
            format!(
                "annotation {key}={value:?} removed from the spec: it would override the guard's \
                 runsc flag if allow-flag-override were set"
            )
        };
        d.warnings.push(text.clone());
        d.reason(text);
        d.edit(SpecEdit::RemoveAnnotation { key, was: value });
    }
}
