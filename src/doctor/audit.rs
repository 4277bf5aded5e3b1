//! The judgement: from a node's facts to findings. Pure: everything it looks at is in
//! [`NodeFacts`].

use super::containerd::{runtime_table, Handler, HandlerKind, RUNSC_RUNTIME_TYPE};
use super::facts::{HandlerFacts, KubeletDriver, NodeFacts, RunscFacts, SandboxFacts};
use super::{Area, Finding, Report, Severity};
use crate::cgroup::{CgroupLayout, CgroupPath, MemoryLimit};
use crate::options::RUNSC_OPTIONS_TYPE_URL;
use crate::runsc::version::RunscVersion;

const SYSTEMD_CGROUP: &str = "systemd-cgroup";
/// release-20260615.0 turns `--systemd-cgroup` on by itself for a systemd path.
const AUTO_SYSTEMD_CGROUP_SINCE: u32 = 20260615;
/// Where the runsc handler's snippets are: the .deb's copy, and the source's.
const SNIPPETS: &str = "/usr/share/runsc-guard/containerd/ (packaging/containerd/ in the source)";
const INSTALL_SHIM: &str = "install this project's shim on containerd's PATH (the runsc-guard \
                            .deb, or target/release/containerd-shim-runsc-v1 copied to \
                            /usr/local/bin) and restart containerd";

/// A known problem of runsc releases before a date, and what this shim does about it.
struct KnownProblem {
    id: &'static str,
    before: u32,
    what: &'static str,
    this_shim: &'static str,
    /// How bad it is when this shim does not stand in front of that runsc.
    unhandled: Severity,
}

const KNOWN_PROBLEMS: &[KnownProblem] = &[
    KnownProblem {
        id: "leaf-sizing",
        before: 20231106,
        what: "sizes the guest (--total-memory) from its own cgroup only; a sandbox leaf that \
               says max while the pod's limit sits on the slice above gives the guest the whole \
               node (fixed in release-20231106.0)",
        this_shim: "sets the sandbox spec's memory limit to the pod's bound, so the leaf runsc \
                    creates carries it and --total-memory equals it, and checks that after create",
        unhandled: Severity::Warn,
    },
    KnownProblem {
        id: "silent-systemd-path",
        before: 20240603,
        what: "says nothing when a systemd cgroupsPath (slice:prefix:name) arrives without \
               --systemd-cgroup and puts the sandbox under its own cgroup, outside the pod \
               (a warning came in release-20240603.0, turning the flag on by itself in \
               release-20260615.0)",
        this_shim: "adds --systemd-cgroup=true to every runsc call of a pod whose path is \
                    systemd's, and checks the placement after create",
        unhandled: Severity::Warn,
    },
    KnownProblem {
        id: "no-update",
        before: 20260202,
        what: "has no `update` sub-command, so an in-place pod resize cannot reach a running \
               sandbox (release-20260202.0 added it)",
        this_shim: "answers Update with not-implemented, so a resize is reported as not applied \
                    instead of silently ignored; recreate the pod to resize it",
        unhandled: Severity::Ok,
    },
];

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn ok(&mut self, area: Area, check: impl Into<String>, summary: impl Into<String>) {
        self.push(area, check, Severity::Ok, summary, None::<String>);
    }

    fn warn(
        &mut self,
        area: Area,
        check: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(area, check, Severity::Warn, summary, Some(fix));
    }

    fn fail(
        &mut self,
        area: Area,
        check: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(area, check, Severity::Fail, summary, Some(fix));
    }

    fn push(
        &mut self,
        area: Area,
        check: impl Into<String>,
        severity: Severity,
        summary: impl Into<String>,
        fix: Option<impl Into<String>>,
    ) {
        self.0.push(Finding {
            area,
            check: check.into(),
            severity,
            summary: summary.into(),
            fix: fix.map(Into::into),
        });
    }
}

/// Audits the node.
pub fn audit(node: NodeFacts) -> Report {
    let mut f = Findings::default();
    containerd(&node, &mut f);
    shim(&node, &mut f);
    for h in &node.handlers {
        handler(&node, h, &mut f);
    }
    for r in &node.runsc {
        runsc(&node, r, &mut f);
    }
    cgroups(&node, &mut f);
    sandboxes(&node, &mut f);
    Report::new(node, f.0)
}

/// Whether the pods of this node get systemd cgroupsPaths (`slice:prefix:name`), and how sure
/// the doctor is: Some(true) when the kubelet's tree says so, Some(false) when it shows the
/// cgroupfs driver, None when nothing says (no kubepods tree yet).
fn systemd_paths(node: &NodeFacts) -> Option<bool> {
    match node.cgroups.kubelet_driver {
        KubeletDriver::Systemd | KubeletDriver::Both => Some(true),
        KubeletDriver::Cgroupfs => Some(false),
        KubeletDriver::None => None,
    }
}

fn systemd_node(node: &NodeFacts) -> bool {
    node.cgroups.systemd == Some(true)
}

fn containerd(node: &NodeFacts, f: &mut Findings) {
    let c = &node.containerd;
    match (&c.version, &c.error) {
        (Some(v), _) => f.ok(
            Area::Containerd,
            "containerd.version",
            format!(
                "containerd {v} ({})",
                c.binary
                    .as_deref()
                    .map_or("?".into(), |p| p.display().to_string())
            ),
        ),
        (None, e) => f.warn(
            Area::Containerd,
            "containerd.version",
            format!(
                "cannot tell containerd's version: {}",
                e.as_deref().unwrap_or("no answer")
            ),
            "run the doctor where `containerd --version` works (on the node, as root, with \
             containerd on PATH); the config checks below assume the config's own version",
        ),
    }

    let file = &node.config;
    let path = file.path.display();
    for e in &file.errors {
        f.fail(
            Area::Containerd,
            "containerd.config",
            e.clone(),
            format!(
                "fix {path} (containerd refuses to start, or starts without the CRI plugin, on a \
                 config it cannot parse); `containerd config dump` shows what containerd reads, \
                 and {SNIPPETS} has snippets that parse"
            ),
        );
    }
    if file.missing {
        f.warn(
            Area::Containerd,
            "containerd.config",
            format!("{path} does not exist: containerd runs with its defaults, which have no runsc handler"),
            format!(
                "write containerd's config with a runsc handler (runsc-v2.toml for containerd \
                 1.6/1.7, runsc-v3.toml for 2.x, in {SNIPPETS}) or pass --containerd-config FILE"
            ),
        );
    }
    let Some(config) = &file.parsed else {
        return;
    };
    let major = c.release.map(|(major, _)| major);
    match (config.version, major) {
        (3, Some(1)) => f.fail(
            Area::Containerd,
            "containerd.config-version",
            format!(
                "{path} is config version 3, which containerd {} cannot read",
                c.version.as_deref().unwrap_or("1.x")
            ),
            format!(
                "containerd 1.6/1.7 read version 2: use runsc-v2.toml's tables \
                 (plugins.\"io.containerd.grpc.v1.cri\", in {SNIPPETS}), or upgrade containerd \
                 to 2.x"
            ),
        ),
        (1, _) => f.warn(
            Area::Containerd,
            "containerd.config-version",
            format!("{path} has no `version`, so it is read as the deprecated version 1"),
            "add `version = 2` (containerd 1.x) or `version = 3` (2.x) and move the runtimes \
             to that version's tables; `containerd config migrate` does it for 2.x",
        ),
        (v, _) => f.ok(
            Area::Containerd,
            "containerd.config-version",
            format!(
                "{path}: config version {v}{}",
                if v == 2 && major.is_some_and(|m| m >= 2) {
                    " (containerd 2.x migrates it in memory at start)"
                } else {
                    ""
                }
            ),
        ),
    }
    if config.handlers.is_empty() {
        f.warn(
            Area::Containerd,
            "containerd.handlers",
            format!(
                "no runtime handler in {path} runs runsc (runtime_type {RUNSC_RUNTIME_TYPE:?}, \
                 or runc's shim with BinaryName = \"runsc\")"
            ),
            format!(
                "add {} with runtime_type = {RUNSC_RUNTIME_TYPE:?} ({SNIPPETS} has \
                 the snippet for each config version), restart containerd, and point a \
                 RuntimeClass with handler: runsc at it",
                runtime_table(config.version, "runsc")
            ),
        );
    } else {
        let names: Vec<String> = config
            .handlers
            .iter()
            .map(|h| format!("{} ({})", h.name, describe_kind(h)))
            .collect();
        f.ok(
            Area::Containerd,
            "containerd.handlers",
            format!("runsc handlers: {}", names.join(", ")),
        );
    }
}

fn describe_kind(h: &Handler) -> String {
    match h.kind {
        HandlerKind::RunscShim => format!("runtime_type {}", h.runtime_type),
        HandlerKind::RuncShim => format!(
            "runc's shim {} with BinaryName {:?}",
            h.runtime_type,
            h.binary_name.as_deref().unwrap_or_default()
        ),
    }
}

fn uses_runsc_shim(node: &NodeFacts) -> bool {
    node.handlers
        .iter()
        .any(|h| h.handler.kind == HandlerKind::RunscShim)
}

fn shim(node: &NodeFacts, f: &mut Findings) {
    let s = &node.shim;
    let needed = uses_runsc_shim(node);
    match (&s.path, s.is_runsc_guard) {
        (None, _) if needed => f.fail(
            Area::Containerd,
            "containerd.shim",
            format!(
                "containerd-shim-runsc-v1 is not on {}, so containerd cannot start a pod of the \
                 runsc handler",
                s.searched
            ),
            INSTALL_SHIM,
        ),
        (None, _) => f.ok(
            Area::Containerd,
            "containerd.shim",
            "containerd-shim-runsc-v1 is not installed (no handler needs it)",
        ),
        (Some(p), true) if needed => f.ok(
            Area::Containerd,
            "containerd.shim",
            format!(
                "{} is runsc-guard's shim (found on {})",
                p.display(),
                s.searched
            ),
        ),
        (Some(p), true) => f.warn(
            Area::Containerd,
            "containerd.shim",
            format!(
                "{} is runsc-guard's shim, but no handler uses it: the runsc handler goes \
                 through runc's shim, which bounds nothing",
                p.display()
            ),
            format!(
                "set the handler's runtime_type = {RUNSC_RUNTIME_TYPE:?} with TypeUrl and \
                 ConfigPath options ({SNIPPETS}), restart containerd and recreate \
                 the pods"
            ),
        ),
        (Some(p), false) => {
            let what = s
                .error
                .clone()
                .or_else(|| s.version.clone())
                .unwrap_or_else(|| "no -v answer".to_string());
            let summary = format!(
                "{} is not runsc-guard's shim ({what}): the guard does not protect these pods",
                p.display()
            );
            if needed {
                f.warn(Area::Containerd, "containerd.shim", summary, INSTALL_SHIM);
            } else {
                f.ok(Area::Containerd, "containerd.shim", summary);
            }
        }
    }
}

/// Whether this project's guard stands between containerd and runsc for the handler.
fn guarded(node: &NodeFacts, h: &HandlerFacts) -> bool {
    h.handler.kind == HandlerKind::RunscShim
        && node.shim.is_runsc_guard
        && h.config
            .as_ref()
            .is_some_and(|c| c.error.is_none() && c.guard_mode.as_deref() != Some("off"))
}

fn runsc_of<'a>(node: &'a NodeFacts, h: &HandlerFacts) -> Option<&'a RunscVersion> {
    node.runsc
        .iter()
        .find(|r| r.name == h.runsc_binary)
        .and_then(|r| r.version.as_ref())
}

fn handler(node: &NodeFacts, h: &HandlerFacts, f: &mut Findings) {
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

/// The seed's misconfiguration: a systemd node whose runsc handler does not give runsc
/// `--systemd-cgroup`, whichever shim the handler uses; and its mirror image on a cgroupfs node.
fn systemd_cgroup(node: &NodeFacts, h: &HandlerFacts, table: &str, f: &mut Findings) {
    let name = &h.handler.name;
    let check = format!("handler.{name}.systemd-cgroup");
    let explicit = match h.handler.kind {
        HandlerKind::RuncShim => h.handler.systemd_cgroup == Some(true),
        HandlerKind::RunscShim => h
            .config
            .as_ref()
            .and_then(|c| c.runsc_config.get(SYSTEMD_CGROUP))
            .is_some_and(|v| v == "true"),
    };
    let guard = guarded(node, h);
    let auto = h.handler.kind == HandlerKind::RunscShim
        && runsc_of(node, h).is_some_and(|v| v.at_least(AUTO_SYSTEMD_CGROUP_SINCE));
    let paths = systemd_paths(node);
    let recreate = "then restart containerd and recreate the handler's pods (kubectl delete pod \
                    ...; a running sandbox keeps the cgroup it was created in)";

    match paths {
        Some(true) | None => {
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
            let severity = if paths.is_some() {
                Severity::Fail
            } else {
                Severity::Warn
            };
            let summary = format!(
                "{name}: this is a systemd node{} but runsc does not get --systemd-cgroup, so \
                 it reads the pod's slice:prefix:name path as a relative cgroupfs path and puts \
                 the sandbox under its own cgroup (system.slice), outside the pod: no memory \
                 limit applies (the seed's incident)",
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
                     leaf then); {recreate}"
                ),
                HandlerKind::RunscShim => format!(
                    "{INSTALL_SHIM} (its guard adds the flag), or set systemd-cgroup = \"true\" \
                     under [runsc_config] in the handler's runsc.toml; {recreate}"
                ),
            };
            f.push(Area::Containerd, check, severity, summary, Some(fix));
        }
        Some(false) => {
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
                         kubelet to cgroupDriver: systemd; {recreate}",
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
    }
}

fn runsc(node: &NodeFacts, r: &RunscFacts, f: &mut Findings) {
    let users: Vec<&HandlerFacts> = node
        .handlers
        .iter()
        .filter(|h| h.runsc_binary == r.name)
        .collect();
    let handled = !users.is_empty() && users.iter().all(|h| guarded(node, h));
    let names: Vec<&str> = users.iter().map(|h| h.handler.name.as_str()).collect();
    let check = |what: &str| format!("runsc.{}.{what}", r.name);
    let Some(path) = &r.path else {
        f.fail(
            Area::Runsc,
            check("binary"),
            format!(
                "runsc {:?} (handler {}): {}",
                r.name,
                names.join(", "),
                r.error.as_deref().unwrap_or("not found")
            ),
            "install runsc (Debian: apt-get install runsc; or gVisor's release binaries) where \
             the handler's binary_name / BinaryName points",
        );
        return;
    };
    let Some(version) = &r.version else {
        f.fail(
            Area::Runsc,
            check("binary"),
            format!(
                "{} does not answer --version: {}",
                path.display(),
                r.error.as_deref().unwrap_or("no answer")
            ),
            "check that the file is a working runsc for this architecture",
        );
        return;
    };
    f.ok(
        Area::Runsc,
        check("binary"),
        format!(
            "{}: runsc {version} (handler {})",
            path.display(),
            names.join(", ")
        ),
    );
    if !version.is_known() {
        f.warn(
            Area::Runsc,
            check("version"),
            format!(
                "runsc {version} carries no release date; every known problem below is assumed"
            ),
            "use a dated release (release-YYYYMMDD.N or Debian's 0.0~YYYYMMDD) so the problems \
             it has can be told",
        );
    }
    for p in KNOWN_PROBLEMS {
        if version.at_least(p.before) {
            continue;
        }
        let check = check(p.id);
        if handled {
            f.ok(
                Area::Runsc,
                check,
                format!("runsc {version} {}; runsc-guard {}", p.what, p.this_shim),
            );
        } else {
            let summary = format!("runsc {version} {}", p.what);
            let fix = format!(
                "run it behind runsc-guard's shim, which {}; or upgrade runsc",
                p.this_shim
            );
            match p.unhandled {
                Severity::Ok => f.ok(Area::Runsc, check, summary),
                severity => f.push(Area::Runsc, check, severity, summary, Some(fix)),
            }
        }
    }
}

fn cgroups(node: &NodeFacts, f: &mut Findings) {
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
    match c.systemd {
        Some(true) => f.ok(Area::Cgroups, "cgroups.systemd", "PID 1 is systemd"),
        Some(false) => f.ok(Area::Cgroups, "cgroups.systemd", "PID 1 is not systemd"),
        None => f.warn(
            Area::Cgroups,
            "cgroups.systemd",
            "cannot tell whether PID 1 is systemd (<proc>/1/comm is unreadable)",
            "run the doctor with the host's /proc (hostPID in a pod) or pass --proc",
        ),
    }
    let driver = c.kubelet_driver;
    match driver {
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
    if layout != CgroupLayout::Unified && systemd_paths(node) == Some(true) {
        f.ok(
            Area::Cgroups,
            "cgroups.v1-systemd",
            "cgroup v1 with the systemd driver: runsc treats the host as v1 and writes cgroupfs \
             directories itself",
        );
    }
}

fn sandboxes(node: &NodeFacts, f: &mut Findings) {
    if let Some(e) = &node.proc_error {
        f.fail(
            Area::Sandbox,
            "sandboxes",
            e.clone(),
            "run the doctor with the host's /proc (hostPID in a pod) or pass --proc",
        );
        return;
    }
    if node.cgroups.layout.is_none() {
        return;
    }
    if node.sandboxes.is_empty() {
        f.ok(
            Area::Sandbox,
            "sandboxes",
            "no gVisor sandbox (runsc-sandbox) is running",
        );
        return;
    }
    for s in &node.sandboxes {
        sandbox(node, s, f);
    }
}

/// Which shim made the sandbox, from runsc's `--root` (each shim's default root).
fn created_by(s: &SandboxFacts) -> String {
    match s.runsc_root.as_deref() {
        Some(root) if root.starts_with("/run/containerd/runc/") => format!(
            "; it was created through runc's shim (runsc root {root}), so by a handler with \
             BinaryName = runsc"
        ),
        Some(root) if root.starts_with("/run/containerd/runsc/") => {
            format!("; it was created by a runsc shim (runsc root {root})")
        }
        _ => String::new(),
    }
}

fn sandbox(node: &NodeFacts, s: &SandboxFacts, f: &mut Findings) {
    let id = s
        .container_id
        .clone()
        .unwrap_or_else(|| format!("pid{}", s.pid));
    let check = |what: &str| format!("sandbox.{id}.{what}");
    let who = match s.pod.label() {
        Some(pod) => format!("the sandbox of pod {pod} (pid {})", s.pid),
        None => format!("sandbox {id} (pid {})", s.pid),
    };
    let recreate = match (&s.pod.namespace, &s.pod.name) {
        (Some(ns), Some(name)) => format!("kubectl delete pod -n {ns} {name}"),
        _ => "delete the pod".to_string(),
    };
    let mut problems: Vec<String> = s.problems.clone();
    problems.extend(s.observation.problems.iter().cloned());
    if !problems.is_empty() {
        f.warn(
            Area::Sandbox,
            check("read"),
            format!("{who}: {}", problems.join("; ")),
            "run the doctor as root with the host's /proc and the containerd state directory \
             readable, so the sandbox's bundle and cgroup can be read",
        );
    }
    let own = s
        .observation
        .cgroup
        .as_deref()
        .and_then(|c| CgroupPath::parse(c).ok());
    let Some(pod) = &s.pod_cgroup else {
        f.ok(
            Area::Sandbox,
            check("placement"),
            format!(
                "{who} sits in {}, in no Kubernetes pod (ctr, nerdctl, Docker): no pod bound to hold",
                s.observation.cgroup.as_deref().unwrap_or("an unknown cgroup")
            ),
        );
        return;
    };
    match &own {
        Some(own) if own.is_strictly_under(pod) => f.ok(
            Area::Sandbox,
            check("placement"),
            format!("{who} sits in {own}, a leaf under its pod's cgroup"),
        ),
        Some(own) => f.fail(
            Area::Sandbox,
            check("placement"),
            format!(
                "{who} sits in {own}, OUTSIDE its pod's cgroup {pod}: the pod's memory limit \
                 does not apply to it{}{}",
                if own.as_str().starts_with("/system.slice")
                    || own.as_str().starts_with("/runtime.slice")
                {
                    " (it landed beside containerd, the escape of a systemd path read without \
                     --systemd-cgroup)"
                } else {
                    ""
                },
                created_by(s)
            ),
            format!(
                "fix the handler (see the handler.*.systemd-cgroup finding; runsc-guard's shim \
                 refuses such a sandbox instead), restart containerd, then {recreate}; until \
                 then the sandbox can take the node's memory"
            ),
        ),
        None => f.warn(
            Area::Sandbox,
            check("placement"),
            format!("{who}: its cgroup cannot be read, so its placement is unknown"),
            "run the doctor as root with the host's /proc",
        ),
    }
    let Some(limit) = &s.pod_limit else {
        return;
    };
    let limit = limit.limit();
    match (s.observation.total_memory, limit) {
        (None, _) => f.warn(
            Area::Sandbox,
            check("memory"),
            format!("{who}: no --total-memory on its command line, so the guest's size is unknown"),
            "check the runsc-sandbox process's command line (/proc/<pid>/cmdline)",
        ),
        (Some(total), MemoryLimit::Limited(bound)) if total > bound => f.fail(
            Area::Sandbox,
            check("memory"),
            format!(
                "{who} was booted with --total-memory {total} ({} bytes{}), above its pod's \
                 limit {bound}: the guest believes it has memory the pod does not",
                total.get(),
                if node.host_memory == Some(total) {
                    ", the whole node's memory"
                } else {
                    ""
                }
            ),
            format!(
                "run the handler behind runsc-guard's shim (it sizes the guest to the pod's \
                 bound) or runsc 20231106 or later with --systemd-cgroup, then {recreate}"
            ),
        ),
        (Some(total), MemoryLimit::Limited(bound)) => f.ok(
            Area::Sandbox,
            check("memory"),
            format!("{who}: guest {total}, within its pod's limit {bound}"),
        ),
        (Some(total), MemoryLimit::Unlimited) => f.ok(
            Area::Sandbox,
            check("memory"),
            format!("{who}: guest {total}; its pod has no memory limit"),
        ),
    }
}
