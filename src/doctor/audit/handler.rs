//! Each runsc handler: its runsc.toml, its options, and whether runsc gets `--systemd-cgroup`
//! where the node needs it.

use super::super::containerd::{runtime_table, HandlerKind, RUNSC_RUNTIME_TYPE};
use super::super::facts::{HandlerFacts, NodeFacts};
use super::super::{Area, Severity};
use super::{guarded, runsc_of, systemd_node, systemd_paths, Findings, INSTALL_SHIM, SNIPPETS};
use crate::options::RUNSC_OPTIONS_TYPE_URL;

const SYSTEMD_CGROUP: &str = "systemd-cgroup";

pub(super) fn handler(node: &NodeFacts, h: &HandlerFacts, f: &mut Findings) {
    let name = &h.handler.name;
    let check = |what: &str| format!("handler.{name}.{what}");
    let version = node.config.parsed.as_ref().map_or(2, |c| c.version);
    let table = runtime_table(version, name);

    if let Some(config) = &h.config {
        let origin = config
            .path
            .as_deref()
            .map_or("no ConfigPath (the shim's defaults)".to_string(), |p| {
                p.display().to_string()
            });
        match &config.error {
            Some(e) => f.fail(
                Area::Containerd,
                check("runsc-toml"),
                e.clone(),
                format!(
                    "fix the runsc.toml (the one the .deb installs documents every key) or the \
                     ConfigPath in {table}.options; the shim fails every Create until then"
                ),
            ),
            None => {
                f.ok(
                    Area::Containerd,
                    check("runsc-toml"),
                    format!(
                        "{origin}: binary_name {:?}, guard_mode {}, runsc_config {{{}}}",
                        config.binary_name,
                        config.guard_mode.as_deref().unwrap_or("enforce"),
                        config
                            .runsc_config
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                if !config.unknown_keys.is_empty() {
                    f.warn(
                        Area::Containerd,
                        check("runsc-toml-keys"),
                        format!(
                            "{origin} has keys the shim does not know: {} (they are ignored)",
                            config.unknown_keys.join(", ")
                        ),
                        "check their spelling against the documented runsc.toml the .deb installs; \
                         runsc flags go in [runsc_config]",
                    );
                }
                if config.guard_mode.as_deref() == Some("off") && node.shim.is_runsc_guard {
                    f.warn(
                        Area::Containerd,
                        check("guard-mode"),
                        format!("{origin} sets guard_mode = \"off\": pods of {name} are bounded only as gVisor's own shim bounds them"),
                        "remove guard_mode (enforce is the default) or set it to \"warn\"",
                    );
                }
            }
        }
        if config.path.is_some() {
            match h.handler.type_url.as_deref() {
                Some(RUNSC_OPTIONS_TYPE_URL) => {}
                None | Some("") => f.warn(
                    Area::Containerd,
                    check("type-url"),
                    format!("{table}.options has a ConfigPath but no TypeUrl"),
                    format!(
                        "add TypeUrl = {RUNSC_OPTIONS_TYPE_URL:?} beside ConfigPath: gVisor's \
                         shim refuses the options without it (this shim accepts them)"
                    ),
                ),
                Some(other) => f.fail(
                    Area::Containerd,
                    check("type-url"),
                    format!("{table}.options has TypeUrl = {other:?}"),
                    format!("set TypeUrl = {RUNSC_OPTIONS_TYPE_URL:?}: the shim refuses any other and every Create fails"),
                ),
            }
        }
    }
    if h.handler.runtime_path.is_some() {
        f.ok(
            Area::Containerd,
            check("runtime-path"),
            format!(
                "{name} runs the shim at runtime_path {} rather than the one on PATH",
                h.handler.runtime_path.as_deref().unwrap_or_default()
            ),
        );
    }
    systemd_cgroup(node, h, &table, f);
}

/// The incident's misconfiguration: a systemd node whose runsc handler does not give runsc
/// `--systemd-cgroup`, whichever shim the handler uses; and its mirror image on a cgroupfs node.
fn systemd_cgroup(node: &NodeFacts, h: &HandlerFacts, table: &str, f: &mut Findings) {
    let name = &h.handler.name;
    let flag = Flag {
        check: format!("handler.{name}.systemd-cgroup"),
        explicit: explicit_flag(h),
        guard: guarded(node, h),
        // runsc decides this itself, whichever shim calls it (the upstream VM suite shows the
        // stock runc-shim path bounded with such a runsc).
        auto: runsc_of(node, h)
            .is_some_and(|v| v.at_least(crate::runsc::version::AUTO_SYSTEMD_CGROUP_SINCE)),
        paths: systemd_paths(node),
    };
    match flag.paths {
        Some(true) | None => on_systemd(node, h, table, flag, f),
        Some(false) => on_cgroupfs(h, table, flag, f),
    }
}

/// What decides whether runsc gets `--systemd-cgroup` for a handler.
struct Flag {
    check: String,
    /// The handler's own config sets it.
    explicit: bool,
    /// runsc-guard's shim stands in front (and adds it for each systemd path).
    guard: bool,
    /// This runsc turns it on by itself.
    auto: bool,
    paths: Option<bool>,
}

fn explicit_flag(h: &HandlerFacts) -> bool {
    match h.handler.kind {
        HandlerKind::RuncShim => h.handler.systemd_cgroup == Some(true),
        HandlerKind::RunscShim => h
            .config
            .as_ref()
            .and_then(|c| c.runsc_config.get(SYSTEMD_CGROUP))
            .is_some_and(|v| v == "true"),
    }
}

const RECREATE: &str =
    "then restart containerd and recreate the handler's pods (kubectl delete pod \
                        ...; a running sandbox keeps the cgroup it was created in)";

/// A node whose pods get (or may get) systemd paths.
fn on_systemd(node: &NodeFacts, h: &HandlerFacts, table: &str, flag: Flag, f: &mut Findings) {
    let name = &h.handler.name;
    let Flag {
        check,
        explicit,
        guard,
        auto,
        paths,
    } = flag;
    let expected = paths.is_some() || systemd_node(node);
    if !expected {
        f.ok(
            Area::Containerd,
            check,
            format!("{name}: no kubepods tree and no systemd, so no systemd cgroupsPath to handle"),
        );
        return;
    }
    if guard {
        f.ok(
            Area::Containerd,
            check,
            format!(
                "{name}: runsc-guard adds --systemd-cgroup=true for every systemd \
                 cgroupsPath{}",
                if explicit {
                    " (runsc.toml sets it too)"
                } else {
                    ""
                }
            ),
        );
        return;
    }
    if explicit || auto {
        f.ok(
            Area::Containerd,
            check,
            format!(
                "{name}: runsc gets --systemd-cgroup{}",
                if explicit {
                    ""
                } else {
                    " (this runsc turns it on by itself)"
                }
            ),
        );
        return;
    }
    missing_flag(h, table, check, paths, f);
}

/// The incident: a systemd node where nothing gives runsc `--systemd-cgroup`.
fn missing_flag(
    h: &HandlerFacts,
    table: &str,
    check: String,
    paths: Option<bool>,
    f: &mut Findings,
) {
    let name = &h.handler.name;
    let severity = if paths.is_some() {
        Severity::Fail
    } else {
        Severity::Warn
    };
    let summary = format!(
        "{name}: this is a systemd node{} but runsc does not get --systemd-cgroup, so \
         it reads the pod's slice:prefix:name path as a relative cgroupfs path and puts \
         the sandbox under its own cgroup (system.slice), outside the pod: no memory \
         limit applies (the incident)",
        if paths.is_some() {
            " (the kubelet's pods are under kubepods.slice)"
        } else {
            ""
        }
    );
    let fix = match h.handler.kind {
        HandlerKind::RuncShim => format!(
            "best: make {name} runtime_type = {RUNSC_RUNTIME_TYPE:?} with runsc-guard's \
             shim ({SNIPPETS}); at least: set SystemdCgroup = true in \
             {table}.options (runsc before 20231106 still sizes the guest from the \
             leaf then); {RECREATE}"
        ),
        HandlerKind::RunscShim => format!(
            "{INSTALL_SHIM} (its guard adds the flag), or set systemd-cgroup = \"true\" \
             under [runsc_config] in the handler's runsc.toml; {RECREATE}"
        ),
    };
    f.push(Area::Containerd, check, severity, summary, Some(fix));
}

/// A cgroupfs node: runsc must not get `--systemd-cgroup` unless the guard chooses per pod.
fn on_cgroupfs(h: &HandlerFacts, table: &str, flag: Flag, f: &mut Findings) {
    let name = &h.handler.name;
    let Flag {
        check,
        explicit,
        guard,
        ..
    } = flag;
    if explicit && !guard {
        f.fail(
            Area::Containerd,
            check,
            format!(
                "{name}: the kubelet uses the cgroupfs driver (pods under /kubepods) \
                 but runsc gets --systemd-cgroup, so every pod fails with `invalid \
                 systemd path` or `expected cgroupsPath to be of format \
                 \"slice:prefix:name\"`"
            ),
            format!(
                "make the drivers agree: remove systemd-cgroup ({}), or switch the \
                 kubelet to cgroupDriver: systemd; {RECREATE}",
                match h.handler.kind {
                    HandlerKind::RuncShim => format!("SystemdCgroup in {table}.options"),
                    HandlerKind::RunscShim => "[runsc_config] in runsc.toml".to_string(),
                }
            ),
        );
    } else if explicit {
        f.warn(
            Area::Containerd,
            check,
            format!("{name}: runsc.toml sets systemd-cgroup on a cgroupfs node; the guard chooses the driver from each pod's path"),
            "remove systemd-cgroup from [runsc_config]: it is wrong for this node's pods",
        );
    } else {
        f.ok(
            Area::Containerd,
            check,
            format!("{name}: cgroupfs driver, and runsc does not get --systemd-cgroup"),
        );
    }
}
