//! containerd itself: its version, its config file, the runsc handlers it names, and the shim
//! it would run for them.

use super::super::containerd::{
    runtime_table, ContainerdConfig, Handler, HandlerKind, RUNSC_RUNTIME_TYPE,
};
use super::super::facts::NodeFacts;
use super::super::Area;
use super::{Findings, INSTALL_SHIM, SNIPPETS};

pub(super) fn containerd(node: &NodeFacts, f: &mut Findings) {
    version(node, f);
    config_file(node, f);
    let Some(config) = &node.config.parsed else {
        return;
    };
    config_version(node, config, f);
    default_runtime(node, config, f);
    handlers(node, config, f);
}

/// containerd 1.6 and 1.7 add their runc runtime only while the config names no runtime at all:
/// a config version 2 that names runsc but not the default runtime leaves CRI unstarted.
fn default_runtime(node: &NodeFacts, config: &ContainerdConfig, f: &mut Findings) {
    let major = node.containerd.release.map(|(major, _)| major);
    let default = &config.default_runtime;
    if config.version != 2
        || major.is_some_and(|m| m >= 2)
        || config.runtime_names.is_empty()
        || config.runtime_names.contains(default)
    {
        return;
    }
    f.fail(
        Area::Containerd,
        "containerd.default-runtime",
        format!(
            "{} names the runtimes {} but not the default runtime {default:?}: containerd 1.6 \
             and 1.7 then do not start their CRI plugin (containerd's log: failed to load plugin \
             io.containerd.grpc.v1.cri ... no corresponding runtime configured in \
             `containerd.runtimes` for `containerd` `default_runtime_name = \"{default}\"`), so no \
             pod starts on this node",
            node.config.path.display(),
            config.runtime_names.join(", ")
        ),
        format!(
            "add {} with runtime_type = \"io.containerd.runc.v2\" and the kubelet's cgroup \
             driver in SystemdCgroup (runc-v2.toml in {SNIPPETS}), then restart containerd",
            runtime_table(config.version, default)
        ),
    );
}

fn version(node: &NodeFacts, f: &mut Findings) {
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
}

fn config_file(node: &NodeFacts, f: &mut Findings) {
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
}

fn config_version(node: &NodeFacts, config: &ContainerdConfig, f: &mut Findings) {
    let c = &node.containerd;
    let path = node.config.path.display();
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
}

fn handlers(node: &NodeFacts, config: &ContainerdConfig, f: &mut Findings) {
    let path = node.config.path.display();
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

pub(super) fn shim(node: &NodeFacts, f: &mut Findings) {
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
