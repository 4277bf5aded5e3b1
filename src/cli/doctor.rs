//! `runsc-guard doctor`: audits the node it runs on (see `runsc_guard::doctor`).

use std::io::Write;
use std::path::PathBuf;

use super::{args, parse, Failure};
use crate::doctor::{self, Probe, Sources, SystemProbe};

pub const HELP: &str = "\
usage: runsc-guard doctor [--json] [--containerd-config FILE] [--runsc-config FILE]
                          [--cgroup-root DIR] [--proc DIR]

Audits the node it runs on and prints one table (with --json, the same as one JSON object):
  containerd  its version (`containerd --version`), its config's version (2 or 3), every
              runtime handler that runs runsc (runtime_type io.containerd.runsc.v1, or runc's
              shim with BinaryName = runsc) with TypeUrl, ConfigPath and SystemdCgroup, the
              runsc.toml each reads, and whether the containerd-shim-runsc-v1 on PATH is this
              project's;
  runsc       each handler's runsc: path, version, and the known problems of that release
              with what runsc-guard's shim does about each;
  cgroups     v1, v2 or hybrid; whether PID 1 is systemd; the kubelet's driver as the kubepods
              tree shows it; mismatches between them and the handlers (a systemd node whose
              runsc handler does not give runsc --systemd-cgroup is the incident);
  sandboxes   every running runsc-sandbox process: its pod (namespace/name from the CRI
              annotations in its bundle), its cgroup, the pod's effective memory limit, its
              --total-memory, and a verdict.

Every warning and failure says what to do.

options:
  --json                    print the report as one JSON object (status, exit_code, node,
                            findings[] with area, check, severity, summary, fix)
  --containerd-config FILE  containerd's config (default /etc/containerd/config.toml; its
                            `imports` are followed)
  --runsc-config FILE       read this runsc.toml instead of the ConfigPath each handler names
  --cgroup-root DIR         the cgroup mount (default /sys/fs/cgroup)
  --proc DIR                the proc filesystem to find sandboxes in (default /proc)

exit status: 0 all well, 1 warnings only, 2 failures (2 also for a usage mistake).
Run it as root on the node: the sandboxes' bundles and /proc/<pid>/cgroup need it.
";

pub fn doctor(rest: &[String], out: &mut dyn Write) -> Result<i32, Failure> {
    doctor_with(rest, out, &SystemProbe)
}

/// The command with the programs it runs injected, for tests.
pub fn doctor_with(
    rest: &[String],
    out: &mut dyn Write,
    probe: &dyn Probe,
) -> Result<i32, Failure> {
    let opts = parse(
        rest,
        &[
            args::switch("json"),
            args::value("containerd-config"),
            args::value("runsc-config"),
            args::value("cgroup-root"),
            args::value("proc"),
        ],
    )?;
    let defaults = Sources::default();
    let sources = Sources {
        containerd_config: opts
            .value("containerd-config")
            .map_or(defaults.containerd_config, PathBuf::from),
        runsc_config: opts.value("runsc-config").map(PathBuf::from),
        cgroup_root: opts
            .value("cgroup-root")
            .map_or(defaults.cgroup_root, PathBuf::from),
        proc_root: opts.value("proc").map_or(defaults.proc_root, PathBuf::from),
    };
    let report = doctor::run(&sources, probe);
    if opts.is_set("json") {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Error(format!("cannot serialize the report: {e}")))?;
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", doctor::render_table(&report))?;
    }
    Ok(report.exit_code)
}
