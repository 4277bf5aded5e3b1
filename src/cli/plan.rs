//! `runsc-guard plan` and `runsc-guard show`.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::args::{switch, value};
use super::{load_config, parse, Failure, EXIT_OK, EXIT_REFUSED};
use crate::annotations::Role;
use crate::cgroup::{CgroupTree, SpecCgroupsPath, DEFAULT_CGROUP_ROOT};
use crate::guard::{self, GuardInput, GuardRecord, HostFacts, Plan};
use crate::options::GuardMode;
use crate::runsc::version::{detect_blocking, resolve_binary, RunscVersion};

pub(super) const PLAN_HELP: &str = "\
usage: runsc-guard plan --bundle DIR [--cgroup-root DIR] [--runsc-version VERSION]
                        [--config RUNSC_TOML] [--mode enforce|warn|off] [--json]

Prints the decision the shim would make for the bundle's config.json, without running anything:
the cgroup driver, the pod's cgroup and effective memory limit (and where it was read), the guest
memory runsc will compute, the runsc flags and spec edits the guard applies, and why.

options:
  --bundle DIR              the bundle containerd wrote (its config.json is read)
  --cgroup-root DIR         the cgroup tree to judge against (default /sys/fs/cgroup)
  --runsc-version VERSION   the runsc release to assume (default: ask the installed runsc)
  --config RUNSC_TOML       the runsc.toml the shim would read (default: the shim's defaults)
  --mode MODE               override runsc.toml's guard_mode
  --json                    print the decision as one JSON object

exit status: 0, or 3 when the sandbox would be refused, 2 for a usage mistake, 1 on error.
";

pub(super) const SHOW_HELP: &str = "\
usage: runsc-guard show --bundle DIR [--json]

Prints the decision and the verification the shim recorded in the bundle (runsc-guard.json):
what was planned, what runsc really did (the sandbox's cgroup and --total-memory), and whether
they matched.
";

pub(super) fn plan(
    rest: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, Failure> {
    let opts = parse(
        rest,
        &[
            value("bundle"),
            value("cgroup-root"),
            value("runsc-version"),
            value("config"),
            value("mode"),
            switch("json"),
        ],
    )?;
    let bundle = PathBuf::from(
        opts.value("bundle")
            .ok_or_else(|| Failure::Usage("plan needs --bundle DIR".to_string()))?,
    );
    let config = load_config(opts.value("config"))?;
    let mode = match opts.value("mode") {
        Some(m) => m
            .parse::<GuardMode>()
            .map_err(|_| Failure::Usage(format!("--mode {m:?}: use enforce, warn or off")))?,
        None => config.guard_mode,
    };
    let version = match opts.value("runsc-version") {
        Some(v) => {
            RunscVersion::parse(v).map_err(|e| Failure::Usage(format!("--runsc-version: {e}")))?
        }
        None => installed_runsc(&config.binary_name, err)?,
    };
    let spec = read_spec(&bundle)?;
    let annotations = spec.annotations().clone().unwrap_or_default();
    let role = Role::from_annotations(&annotations)
        .map_err(|e| Failure::Error(format!("{}: {e}", bundle.join("config.json").display())))?;
    let tree = CgroupTree::detect(opts.value("cgroup-root").unwrap_or(DEFAULT_CGROUP_ROOT))
        .map_err(|e| Failure::Error(e.to_string()))?;
    let container_id = container_id(&bundle);
    // The plan reasons about a bundle that may come from another node: a systemd-style path
    // says the node runs systemd, and the node's memory is not known here.
    let systemd_running = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .and_then(|p| p.to_str())
        .is_some_and(|p| SpecCgroupsPath::parse(p).is_ok_and(|c| c.is_systemd()));
    let input = GuardInput {
        container_id: &container_id,
        role,
        spec: &spec,
        runsc_config: &config.runsc_config,
        mode,
        runsc_version: &version,
        host: HostFacts {
            systemd_running,
            host_memory: None,
        },
        tree: &tree,
    };
    let decision = guard::decide(&input);
    if opts.is_set("json") {
        writeln!(out, "{}", to_json(&decision)?)?;
    } else {
        write!(out, "{}", human(&decision))?;
    }
    Ok(if decision.is_refused() {
        EXIT_REFUSED
    } else {
        EXIT_OK
    })
}

pub(super) fn show(rest: &[String], out: &mut dyn Write) -> Result<i32, Failure> {
    let opts = parse(rest, &[value("bundle"), switch("json")])?;
    let bundle = opts
        .value("bundle")
        .ok_or_else(|| Failure::Usage("show needs --bundle DIR".to_string()))?;
    let record = GuardRecord::read(Path::new(bundle))?;
    if opts.is_set("json") {
        writeln!(out, "{}", to_json(&record)?)?;
        return Ok(EXIT_OK);
    }
    write!(out, "{}", human(&record.plan))?;
    match &record.verification {
        None => writeln!(out, "verification: not run")?,
        Some(v) => {
            writeln!(
                out,
                "verification: {} (pid {})",
                if v.passed { "passed" } else { "FAILED" },
                v.observation.pid
            )?;
            for c in &v.checks {
                writeln!(
                    out,
                    "  {} {}: expected {}, found {}",
                    if c.passed { "ok  " } else { "FAIL" },
                    c.name,
                    c.expected,
                    c.found
                )?;
            }
        }
    }
    if record.relaxed {
        writeln!(out, "leaf relaxed after boot")?;
    }
    if let Some(e) = &record.relax_error {
        writeln!(out, "leaf relaxation failed: {e}")?;
    }
    if let Some(u) = &record.update {
        writeln!(
            out,
            "updated by {}: memory limit of {} {} -> {}{}",
            u.container_id,
            u.target,
            u.memory_from
                .map_or_else(|| "max".to_string(), |b| b.to_string()),
            u.memory_to,
            u.guest
                .as_ref()
                .map_or_else(String::new, |g| format!("; {g}"))
        )?;
    }
    Ok(EXIT_OK)
}

/// The runsc the shim would run. When there is none to ask, the version is unknown, which the
/// plan treats as the oldest release; say so, since the plan may then differ from the node's.
fn installed_runsc(binary_name: &str, err: &mut dyn Write) -> Result<RunscVersion, Failure> {
    let found = resolve_binary(binary_name).ok_or_else(|| format!("{binary_name:?} not found"));
    match found.and_then(|path| detect_blocking(&path).map_err(|e| e.to_string())) {
        Ok(v) => Ok(v),
        Err(why) => {
            writeln!(
                err,
                "runsc-guard: runsc {why}: planning for the oldest release; pass \
                 --runsc-version to plan for another"
            )?;
            Ok(RunscVersion::unknown("unknown"))
        }
    }
}

fn read_spec(bundle: &Path) -> Result<Spec, Failure> {
    let file = bundle.join("config.json");
    // A symlink is followed: a bundle's files may be links legitimately.
    let text = crate::fsread::read_regular_to_string(
        &file,
        crate::fsread::SPEC_MAX,
        crate::fsread::Symlinks::Follow,
    )
    .map_err(|e| Failure::Error(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::Error(format!(
            "{} is not an OCI runtime spec: {e}",
            file.display()
        ))
    })
}

/// containerd names the bundle directory after the container.
fn container_id(bundle: &Path) -> String {
    let named = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
    named(bundle)
        .or_else(|| bundle.canonicalize().ok().as_deref().and_then(named))
        .unwrap_or_else(|| "unknown".to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Error(format!("cannot encode JSON: {e}")))
}

/// A short readable summary of a plan.
fn human(p: &Plan) -> String {
    let bytes = |b: Option<crate::cgroup::Bytes>, none: &str| {
        b.map_or(none.to_string(), |b| format!("{b} ({} bytes)", b.get()))
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("verdict", p.verdict.to_string()),
        ("driver", p.driver.to_string()),
        (
            "pod cgroup",
            p.pod_cgroup
                .as_ref()
                .map_or("none (not a Kubernetes pod)".to_string(), |c| c.to_string()),
        ),
        (
            "pod limit",
            match (&p.pod_memory_limit, &p.limit_source) {
                (Some(b), Some(src)) => format!("{} from {src}", bytes(Some(*b), "")),
                _ => "none".to_string(),
            },
        ),
        (
            "guest memory",
            match p.role {
                Role::Sandbox => bytes(p.total_memory, "unbounded (the host's memory)"),
                Role::Container => "decided by the sandbox".to_string(),
            },
        ),
    ];
    if let Some(leaf) = &p.leaf_cgroup {
        rows.push(("sandbox leaf", leaf.to_string()));
    }
    if !p.runsc_flags.is_empty() {
        rows.push(("runsc flags", p.runsc_flags.join(" ")));
    }
    for change in &p.spec_changes {
        rows.push(("spec change", change.clone()));
    }
    if let Some(r) = &p.relax {
        rows.push(("after boot", format!("relax the leaf's limit {r}")));
    }
    let role = p.role.name();
    let mut s = format!(
        "runsc-guard plan: {role} {} (mode {}, runsc {}, {})\n",
        p.container_id, p.mode, p.runsc_version, p.layout
    );
    for (k, v) in rows {
        s.push_str(&format!("  {:<13} {v}\n", format!("{k}:")));
    }
    for (title, items) in [("refused because", &p.refusals), ("warnings", &p.warnings)] {
        if !items.is_empty() {
            s.push_str(&format!("{title}:\n"));
            for item in items {
                s.push_str(&format!("  - {item}\n"));
            }
        }
    }
    s.push_str("reasons:\n");
    for r in p.reasons.iter().filter(|r| !r.starts_with("refused: ")) {
        s.push_str(&format!("  - {r}\n"));
    }
    s
}
