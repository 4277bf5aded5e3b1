//! Each runsc binary the handlers run: whether it answers, and the known problems of its release.

use super::super::facts::{HandlerFacts, NodeFacts, RunscFacts};
use super::super::{Area, Severity};
use super::{guarded, Findings};
use crate::runsc::toolchain::GoRelease;
use crate::runsc::version::RunscVersion;

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

/// Go 1.26 came out in February 2026: a runsc release dated before it, built with Go 1.26 or
/// later, runs a sentry on a runtime its sources never met (see `runsc::toolchain`).
const GO_TOO_NEW_FOR_RELEASES_BEFORE: u32 = 20260201;
const GO_TOO_NEW: GoRelease = GoRelease {
    major: 1,
    minor: 26,
};

fn go_toolchain(version: &RunscVersion, r: &RunscFacts, check: String, f: &mut Findings) {
    let Some(go) = r.go.as_deref() else {
        return;
    };
    let too_new = GoRelease::parse(go).is_some_and(|g| g >= GO_TOO_NEW);
    let old_release = version
        .release_date()
        .is_some_and(|d| d < GO_TOO_NEW_FOR_RELEASES_BEFORE);
    if too_new && old_release {
        f.warn(
            Area::Runsc,
            check,
            format!(
                "runsc {version} was built with {go}, a Go newer than its release was made for: \
                 Debian's build of 0.0~20240729 with Go 1.26 panics in its sentry (\"running on \
                 goroutine N (task goroutine for kernel.Task ... is 0)\") in a few sandbox \
                 boots, where the same release built with Go 1.24 does not"
            ),
            "install a runsc built with the Go of its release's time (Debian trixie's \
             0.0~20240729.0-4+b7, built with Go 1.24, or gVisor's own release binaries) or a \
             runsc release made for this Go",
        );
    } else {
        f.ok(
            Area::Runsc,
            check,
            format!("runsc {version} built with {go}"),
        );
    }
}

pub(super) fn runsc(node: &NodeFacts, r: &RunscFacts, f: &mut Findings) {
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
    if !version.is_known() && version.knows_its_release() {
        f.ok(
            Area::Runsc,
            check("version"),
            format!("runsc {version}: dated by what it answers, not by its version text"),
        );
    } else if !version.is_known() {
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
    go_toolchain(version, r, check("go-toolchain"), f);
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
