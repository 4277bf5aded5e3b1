//! `runsc-guard doctor`: the audit of a node that, in the incident, took a month by hand.
//!
//! Two halves, so the judgement can be tested on any node one can write down:
//! - [`gather`] reads the node (containerd's config and version, each runsc handler's runsc.toml
//!   and runsc, the cgroup tree, the `runsc-sandbox` processes under the proc root and their
//!   bundles) into [`NodeFacts`], with every read that failed kept as a sentence;
//! - [`audit`] is a pure function of those facts: it returns a [`Report`] of findings, each
//!   `ok`, `warn` or `fail`, every failure with what to do.
//!
//! Programs are run through a [`Probe`], so tests need neither containerd nor runsc.

mod audit;
pub mod containerd;
mod facts;
mod render;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

pub use audit::audit;
pub use facts::{
    gather, CgroupFacts, ConfigFile, ContainerdFacts, HandlerFacts, KubeletDriver, NodeFacts,
    PodIdentity, RunscFacts, RuntimeConfig, SandboxFacts, ShimFacts,
};
pub use render::render_table;

/// How bad a finding is. Ordered: the report's status is its worst finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Fail,
}

impl Severity {
    /// The exit status of `runsc-guard doctor`: 0 all well, 1 warnings only, 2 failures.
    pub fn exit_code(self) -> i32 {
        match self {
            Severity::Ok => 0,
            Severity::Warn => 1,
            Severity::Fail => 2,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Fail => "FAIL",
        })
    }
}

/// The part of the node a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Containerd,
    Runsc,
    Cgroups,
    Sandbox,
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Area::Containerd => "containerd",
            Area::Runsc => "runsc",
            Area::Cgroups => "cgroups",
            Area::Sandbox => "sandbox",
        })
    }
}

/// One thing the doctor checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub area: Area,
    /// A stable name for monitoring: `containerd.config`, `handler.runsc.systemd-cgroup`,
    /// `sandbox.<id>.placement`, ...
    pub check: String,
    pub severity: Severity,
    /// What was found, in one sentence.
    pub summary: String,
    /// What to do about it (always set for `warn` and `fail`).
    pub fix: Option<String>,
}

/// The audit of one node: the facts it rests on and the findings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The worst finding.
    pub status: Severity,
    pub exit_code: i32,
    pub node: NodeFacts,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(node: NodeFacts, findings: Vec<Finding>) -> Self {
        let status = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok);
        Report {
            status,
            exit_code: status.exit_code(),
            node,
            findings,
        }
    }

    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Fail)
    }
}

/// Where the doctor reads the node from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// containerd's main config file.
    pub containerd_config: PathBuf,
    /// A runsc.toml to read instead of the ConfigPath each handler names (for a node whose
    /// files are mounted elsewhere, or to check a file before installing it).
    pub runsc_config: Option<PathBuf>,
    pub cgroup_root: PathBuf,
    pub proc_root: PathBuf,
}

pub const DEFAULT_CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const DEFAULT_PROC_ROOT: &str = "/proc";

impl Default for Sources {
    fn default() -> Self {
        Sources {
            containerd_config: PathBuf::from(DEFAULT_CONTAINERD_CONFIG),
            runsc_config: None,
            cgroup_root: PathBuf::from(crate::cgroup::DEFAULT_CGROUP_ROOT),
            proc_root: PathBuf::from(DEFAULT_PROC_ROOT),
        }
    }
}

/// How the doctor finds and runs programs (`containerd --version`, `runsc --version`,
/// `containerd-shim-runsc-v1 -v`).
pub trait Probe {
    /// Finds a program the way a shell does: a name with a `/` is a path, anything else is
    /// looked up on PATH.
    fn find(&self, name: &str) -> Option<PathBuf>;
    /// Finds a program on another process's PATH (a `:`-separated list of directories).
    fn find_on(&self, name: &str, path_var: &str) -> Option<PathBuf>;
    /// Runs it and returns its stdout, or a sentence saying why not.
    fn run(&self, program: &Path, args: &[&str]) -> Result<String, String>;
    /// The Go toolchain that built a program (`go1.26.2`), if it is a Go binary that says.
    fn go_version(&self, program: &Path) -> Option<String>;
}

/// The real node's programs, on this process's PATH.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn go_version(&self, program: &Path) -> Option<String> {
        crate::runsc::toolchain::go_version_of(program)
    }

    fn find(&self, name: &str) -> Option<PathBuf> {
        crate::runsc::version::resolve_binary(name)
    }

    fn find_on(&self, name: &str, path_var: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        std::env::split_paths(path_var)
            .map(|dir| dir.join(name))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<String, String> {
        // Bounded like the shim's calls: a hung runsc or systemctl must not hang the audit.
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(std::process::Stdio::null());
        let name = args.first().copied().unwrap_or_default();
        let limit =
            crate::runsc::executor::limit_for(name).unwrap_or(std::time::Duration::from_secs(30));
        let output = crate::runsc::executor::output_within(cmd, limit)
            .map_err(|e| format!("cannot run {} {}: {e}", program.display(), args.join(" ")))?;
        if !output.status.success() {
            return Err(format!(
                "{} {} exited with {}: {}",
                program.display(),
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Reads the node and audits it.
pub fn run(sources: &Sources, probe: &dyn Probe) -> Report {
    audit(gather(sources, probe))
}
