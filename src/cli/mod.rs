//! `runsc-guard`: the operator's command.
//!
//! - `plan`: the decision the shim would make for a bundle, without running anything;
//! - `show`: the decision and verification the shim recorded in a bundle;
//! - `version`: this build, and the runsc it would run.
//!
//! Exit status: 0, or 3 when `plan` refuses the sandbox, 2 for a usage mistake, 1 for any other
//! error.

mod args;
mod doctor;
mod plan;

use std::io::Write;

use crate::options::{ShimConfig, DEFAULT_BINARY};
use crate::runsc::version::{detect_blocking, resolve_binary};

pub const EXIT_OK: i32 = 0;
pub const EXIT_ERROR: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_REFUSED: i32 = 3;

const USAGE: &str = "\
usage: runsc-guard <command> [options]

commands:
  plan --bundle DIR [--cgroup-root DIR] [--runsc-version VERSION] [--config RUNSC_TOML]
       [--mode enforce|warn|off] [--json]
      Print the decision the shim would make for the bundle's config.json against the cgroup
      tree at --cgroup-root (default /sys/fs/cgroup). Exits 3 when the sandbox is refused.
  show --bundle DIR [--json]
      Print the decision and verification the shim recorded in the bundle.
  version [--config RUNSC_TOML]
      Print this build's version, the runsc it would run, and each behaviour of runsc the shim
      gates on (the release that brought it, whether this runsc has it, what the shim does).
  doctor [--json] [--containerd-config FILE] [--runsc-config FILE] [--cgroup-root DIR] [--proc DIR]
      Audit this node: containerd's runsc handlers, runsc, cgroups, and every running sandbox
      against its pod's limit. Exits 0 all well, 1 warnings only, 2 failures.

`runsc-guard <command> --help` describes each command.
";

/// Runs the command line (without argv[0]) and returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some((command, rest)) = args.split_first() else {
        let _ = write!(err, "{USAGE}");
        return EXIT_USAGE;
    };
    let result = match command.as_str() {
        _ if rest.iter().any(|a| a == "--help" || a == "-h") => match command_help(command) {
            Some(help) => {
                let _ = write!(out, "{help}");
                Ok(EXIT_OK)
            }
            None => Err(Failure::Usage(format!("unknown command {command:?}"))),
        },
        "plan" => plan::plan(rest, out, err),
        "doctor" => doctor::doctor(rest, out),
        "show" => plan::show(rest, out),
        "version" => version(rest, out),
        "help" | "--help" | "-h" => {
            let _ = write!(out, "{USAGE}");
            Ok(EXIT_OK)
        }
        other => Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            let _ = writeln!(err, "runsc-guard: {message}\n\n{USAGE}");
            EXIT_USAGE
        }
        Err(Failure::Error(message)) => {
            let _ = writeln!(err, "runsc-guard: {message}");
            EXIT_ERROR
        }
    }
}

/// The `--help` of each command.
fn command_help(command: &str) -> Option<&'static str> {
    match command {
        "plan" => Some(plan::PLAN_HELP),
        "show" => Some(plan::SHOW_HELP),
        "version" => Some(VERSION_HELP),
        "doctor" => Some(doctor::HELP),
        _ => None,
    }
}

const VERSION_HELP: &str = "\
usage: runsc-guard version [--config RUNSC_TOML]

Prints this build's version and the runsc the shim would run: runsc.toml's binary_name (default
`runsc` from PATH) and what its `--version` says.
";

/// Why a command did not complete.
enum Failure {
    Usage(String),
    Error(String),
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        Failure::Error(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Error(format!("cannot write the output: {e}"))
    }
}

fn parse(rest: &[String], spec: &[args::OptionSpec]) -> Result<args::Parsed, Failure> {
    args::parse(rest, spec).map_err(Failure::Usage)
}

/// The runsc.toml named by `--config`, or the defaults.
fn load_config(path: Option<&str>) -> Result<ShimConfig, Failure> {
    match path {
        Some(p) => Ok(ShimConfig::from_file(std::path::Path::new(p))?),
        None => Ok(ShimConfig::default()),
    }
}

fn version(rest: &[String], out: &mut dyn Write) -> Result<i32, Failure> {
    let opts = parse(rest, &[args::value("config")])?;
    let config = load_config(opts.value("config"))?;
    writeln!(out, "runsc-guard {}", env!("CARGO_PKG_VERSION"))?;
    match resolve_binary(&config.binary_name) {
        None => {
            let hint = if config.binary_name == DEFAULT_BINARY {
                "is not on PATH"
            } else {
                "does not exist or is not executable"
            };
            writeln!(out, "runsc: not found ({:?} {hint})", config.binary_name)?;
        }
        Some(path) => match detect_blocking(&path) {
            Ok(v) => {
                writeln!(out, "runsc: {v} ({})", path.display())?;
                for g in v.gates() {
                    writeln!(
                        out,
                        "  gate {} (release-{}.0): {}: {}",
                        g.name,
                        g.since,
                        if g.holds { "yes" } else { "no" },
                        g.shim
                    )?;
                }
            }
            Err(e) => writeln!(
                out,
                "runsc: {} does not answer --version: {e}",
                path.display()
            )?,
        },
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_str(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn usage_mistakes_exit_2() {
        assert_eq!(run_str(&[]).0, EXIT_USAGE);
        let (code, _, err) = run_str(&["frobnicate"]);
        assert_eq!(code, EXIT_USAGE);
        assert!(
            err.contains("unknown command") && err.contains("usage:"),
            "{err}"
        );
        let (code, _, err) = run_str(&["plan"]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("--bundle"), "{err}");
        assert_eq!(run_str(&["help"]).0, EXIT_OK);
    }

    #[test]
    fn version_lists_the_gates_of_the_runsc_it_finds() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let runsc = dir.path().join("runsc");
        std::fs::write(&runsc, "#!/bin/sh\necho 'runsc version 0.0~20240729.0'\n").unwrap();
        std::fs::set_permissions(&runsc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let toml = dir.path().join("runsc.toml");
        std::fs::write(
            &toml,
            format!("binary_name = {:?}\n", runsc.to_str().unwrap()),
        )
        .unwrap();
        // Another test thread forking while the script was open for writing makes exec fail
        // with ETXTBSY for a moment.
        let out = (0..20)
            .map(|_| run_str(&["version", "--config", toml.to_str().unwrap()]).1)
            .find(|out| !out.contains("busy"))
            .unwrap();
        assert!(out.contains("runsc: 0.0~20240729.0 ("), "{out}");
        assert!(
            out.contains("  gate parent-memory-limit (release-20231106.0): yes: "),
            "{out}"
        );
        assert!(
            out.contains("  gate update (release-20260202.0): no: "),
            "{out}"
        );
        assert_eq!(out.matches("  gate ").count(), 5, "{out}");
    }

    #[test]
    fn version_says_when_runsc_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("runsc.toml");
        std::fs::write(&toml, "binary_name = \"/nonexistent/runsc\"\n").unwrap();
        let (code, out, _) = run_str(&["version", "--config", toml.to_str().unwrap()]);
        assert_eq!(code, EXIT_OK);
        assert!(out.starts_with("runsc-guard "), "{out}");
        assert!(
            out.contains("runsc: not found (\"/nonexistent/runsc\""),
            "{out}"
        );
    }
}
