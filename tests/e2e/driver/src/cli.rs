//! The command line (hand-parsed: a handful of flags does not need a parser crate).

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: e2e-driver --suite SUITE --results DIR [options]
       e2e-driver --bench N --suite SUITE --results DIR [--handlers H1,H2] [--no-memory]
       e2e-driver --soak N --suite SUITE --results DIR     (both: the bench, then the soak)
       e2e-driver --render DIR     (bench.md and bench.svg again from DIR/bench.json)
       e2e-driver --list

Plays kubelet over containerd's CRI inside the e2e guest VM, runs the scenarios and writes
DIR/report.md, DIR/report.json and DIR/summary.json. Exits 0 whatever the scenarios' outcome.

options:
  --suite SUITE          the guest's Debian suite (recorded in the report)
  --results DIR          where the report files go
  --scenario NAME        run only this scenario (repeatable; also runs on-request scenarios)
  --skip NAME            do not run this scenario (repeatable)
  --also NAME            run this on-request scenario beside the default ones (repeatable)
  --handlers H1,H2       run only scenarios on these runtime handlers
  --images PREFIX        image name prefix: PREFIX/busybox:1, PREFIX/eater:1 (default localhost/e2e)
  --socket PATH          containerd's socket (default /run/containerd/containerd.sock)
  --timeout-scale F      multiply every time limit by F (default 1)
  --runsc-debug-log DIR  runsc's debug logs for the runsc handler (default /var/log/runsc)
  --runsc-stock-debug-log DIR
                         runsc's debug logs for the runsc-stock handler (default
                         /var/log/runsc-stock); a failed scenario whose sandbox's boot log
                         there holds a Go panic is run once more
  --runsc-guard PATH     the runsc-guard binary whose doctor some scenarios run (default
                         /usr/local/bin/runsc-guard)
  --bench N              instead of the scenarios: N pod starts per handler, interleaved (default
                         handlers runsc, runsc-stock, runsc-stock-systemd, runc), the shim's
                         timing lines, the by-hand runsc floor and the memory per pod; writes
                         DIR/bench.{md,json,svg}
  --no-memory            --bench without the memory table
  --soak N               instead of the scenarios: N create/delete cycles of a runsc pod beside a
                         long-lived one; what the node holds before and after, DIR/soak.{md,json}
  --shim-log-dir DIR     where the shim's log files are (default /var/log/runsc-shim)
  --allow-non-vm         run even if systemd-detect-virt finds no VM (it changes cgroups!)
  --list                 list the scenarios and exit
  --help                 this text";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Run,
    Bench(usize),
    Soak(usize),
    /// `--bench N --soak M`: the bench, then the soak, on one boot of the guest.
    BenchSoak(usize, usize),
    /// `--render DIR`: a bench's tables and chart again from its bench.json.
    Render(PathBuf),
    List,
    Help,
}

#[derive(Debug)]
pub struct Args {
    pub command: Command,
    pub suite: String,
    pub results: PathBuf,
    pub scenarios: Vec<String>,
    pub skip: Vec<String>,
    /// On-request scenarios to run beside the default ones (`--also`).
    pub also: Vec<String>,
    pub handlers: Vec<String>,
    pub socket: PathBuf,
    pub images: String,
    pub timeout_scale: f64,
    pub allow_non_vm: bool,
    pub debug_logs: crate::panics::DebugLogDirs,
    pub runsc_guard: PathBuf,
    pub shim_log_dir: PathBuf,
    pub no_memory: bool,
}

/// A count of pods or cycles: a whole number of at least 1.
fn count(flag: &str, v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{flag}: expected a whole number of at least 1, found {v:?}"
        )),
    }
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut suite = None;
    let mut results = None;
    let mut a = Args {
        command: Command::Run,
        suite: String::new(),
        results: PathBuf::new(),
        scenarios: Vec::new(),
        skip: Vec::new(),
        also: Vec::new(),
        handlers: Vec::new(),
        socket: PathBuf::from("/run/containerd/containerd.sock"),
        images: crate::scenarios::DEFAULT_IMAGE_PREFIX.to_string(),
        timeout_scale: 1.0,
        allow_non_vm: false,
        debug_logs: crate::panics::DebugLogDirs::default(),
        runsc_guard: PathBuf::from("/usr/local/bin/runsc-guard"),
        shim_log_dir: PathBuf::from("/var/log/runsc-shim"),
        no_memory: false,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--suite" => suite = Some(value("--suite")?),
            "--results" => results = Some(PathBuf::from(value("--results")?)),
            "--scenario" => a.scenarios.push(value("--scenario")?),
            "--skip" => a.skip.push(value("--skip")?),
            "--also" => a.also.push(value("--also")?),
            "--handlers" => a.handlers.extend(
                value("--handlers")?
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string),
            ),
            "--socket" => a.socket = PathBuf::from(value("--socket")?),
            "--images" => a.images = value("--images")?,
            "--timeout-scale" => {
                let v = value("--timeout-scale")?;
                a.timeout_scale = match v.parse::<f64>() {
                    Ok(f) if f.is_finite() && f > 0.0 => f,
                    _ => {
                        return Err(format!(
                            "--timeout-scale: expected a positive number, found {v:?}"
                        ))
                    }
                };
            }
            "--runsc-debug-log" => a.debug_logs.runsc = PathBuf::from(value("--runsc-debug-log")?),
            "--runsc-stock-debug-log" => {
                a.debug_logs.runsc_stock = PathBuf::from(value("--runsc-stock-debug-log")?)
            }
            "--runsc-guard" => a.runsc_guard = PathBuf::from(value("--runsc-guard")?),
            "--bench" => {
                let n = count("--bench", &value("--bench")?)?;
                a.command = match a.command {
                    Command::Soak(m) | Command::BenchSoak(_, m) => Command::BenchSoak(n, m),
                    _ => Command::Bench(n),
                };
            }
            "--soak" => {
                let m = count("--soak", &value("--soak")?)?;
                a.command = match a.command {
                    Command::Bench(n) | Command::BenchSoak(n, _) => Command::BenchSoak(n, m),
                    _ => Command::Soak(m),
                };
            }
            "--no-memory" => a.no_memory = true,
            "--render" => a.command = Command::Render(PathBuf::from(value("--render")?)),
            "--shim-log-dir" => a.shim_log_dir = PathBuf::from(value("--shim-log-dir")?),
            "--allow-non-vm" => a.allow_non_vm = true,
            "--list" => a.command = Command::List,
            "--help" | "-h" => a.command = Command::Help,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if matches!(
        a.command,
        Command::Run | Command::Bench(_) | Command::Soak(_) | Command::BenchSoak(..)
    ) {
        a.suite = suite.ok_or("--suite is required")?;
        a.results = results.ok_or("--results is required")?;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn runner_command_line() {
        // What tests/e2e/guest-suite.sh runs.
        let a = p(&[
            "--suite",
            "bookworm",
            "--results",
            "/mnt/results/bookworm",
            "--images",
            "localhost/e2e",
        ])
        .expect("parses");
        assert_eq!(a.images, "localhost/e2e");
        assert_eq!(a.command, Command::Run);
        assert_eq!(a.suite, "bookworm");
        assert_eq!(a.results, PathBuf::from("/mnt/results/bookworm"));
        assert!(a.scenarios.is_empty());
        assert_eq!(a.timeout_scale, 1.0);
        assert_eq!(
            a.debug_logs.for_handler("runsc"),
            Some(std::path::Path::new("/var/log/runsc"))
        );
        assert_eq!(
            a.debug_logs.for_handler("runsc-stock"),
            Some(std::path::Path::new("/var/log/runsc-stock"))
        );
        assert_eq!(a.debug_logs.for_handler("runc"), None);
    }

    #[test]
    fn debug_log_dirs() {
        let a = p(&[
            "--suite=sid",
            "--results=out",
            "--runsc-debug-log",
            "logs/runsc",
            "--runsc-stock-debug-log=logs/stock",
        ])
        .expect("parses");
        assert_eq!(a.debug_logs.runsc, PathBuf::from("logs/runsc"));
        assert_eq!(a.debug_logs.runsc_stock, PathBuf::from("logs/stock"));
    }

    #[test]
    fn filters_and_inline_values() {
        let a = p(&[
            "--suite=sid",
            "--results=out",
            "--scenario",
            "busybox-exit",
            "--scenario=incident-guard",
            "--handlers",
            "runsc, runc",
            "--timeout-scale",
            "2.5",
        ])
        .expect("parses");
        assert_eq!(a.scenarios, vec!["busybox-exit", "incident-guard"]);
        assert_eq!(a.handlers, vec!["runsc", "runc"]);
        assert_eq!(a.timeout_scale, 2.5);
    }

    #[test]
    fn bench_and_soak() {
        let a = p(&["--suite=s", "--results=o", "--bench", "3", "--no-memory"]).expect("parses");
        assert_eq!(a.command, Command::Bench(3));
        assert!(a.no_memory);
        let a = p(&["--suite=s", "--results=o", "--soak=100"]).expect("parses");
        assert_eq!(a.command, Command::Soak(100));
        let a = p(&["--suite=s", "--results=o", "--soak=20", "--bench", "5"]).expect("parses");
        assert_eq!(a.command, Command::BenchSoak(5, 20));
        assert_eq!(a.shim_log_dir, PathBuf::from("/var/log/runsc-shim"));
    }

    #[test]
    fn errors() {
        assert!(p(&["--results", "x"]).unwrap_err().contains("--suite"));
        assert!(p(&["--suite", "x"]).unwrap_err().contains("--results"));
        assert!(p(&["--suite"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--bogus"]).unwrap_err().contains("unknown"));
        assert!(p(&["--suite", "a", "--results", "b", "--timeout-scale", "0"]).is_err());
        assert_eq!(p(&["--list"]).expect("parses").command, Command::List);
        assert!(p(&["--suite", "a", "--results", "b", "--bench", "0"]).is_err());
        assert!(p(&["--bench", "3"]).unwrap_err().contains("--suite"));
    }
}
