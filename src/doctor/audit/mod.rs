//! The judgement: from a node's facts to findings. Pure: everything it looks at is in
//! [`NodeFacts`].

mod cgroups;
mod containerd;
mod handler;
mod runsc;
mod sandbox;

use super::containerd::HandlerKind;
use super::facts::{HandlerFacts, KubeletDriver, NodeFacts};
use super::{Area, Finding, Report, Severity};
use crate::runsc::version::RunscVersion;

/// Where the runsc handler's snippets are: the .deb's copy, and the source's.
const SNIPPETS: &str = "/usr/share/runsc-guard/containerd/ (packaging/containerd/ in the source)";
const INSTALL_SHIM: &str = "install this project's shim on containerd's PATH (the runsc-guard \
                            .deb, or target/release/containerd-shim-runsc-v1 copied to \
                            /usr/local/bin) and restart containerd";

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
    containerd::containerd(&node, &mut f);
    containerd::shim(&node, &mut f);
    for h in &node.handlers {
        handler::handler(&node, h, &mut f);
    }
    for r in &node.runsc {
        runsc::runsc(&node, r, &mut f);
    }
    cgroups::cgroups(&node, &mut f);
    sandbox::sandboxes(&node, &mut f);
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
