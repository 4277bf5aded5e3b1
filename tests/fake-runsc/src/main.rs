//! fake-runsc: a stand-in for runsc in the shim's integration tests.
//!
//! It speaks runsc's command line (global flags, then a sub-command with its flags, then the
//! container id) and plays the container states a real runsc would report, without running
//! anything (but a process standing for the sandbox, when a test asks for one with
//! `KNOB_SANDBOX_PROCESS`: the shim reaps it as it reaps a real sandbox). Everything it knows lives in files under `--root`, so several invocations (and
//! several shims) share it the way they share a real runsc root:
//! - `<root>/calls.jsonl`: one JSON line per invocation, `{"argv":[..],"cwd":".."}`, argv without
//!   argv0, so a test can assert the exact command lines the shim ran;
//! - `<root>/<id>_sandbox:<sandbox id>.state`: the state of one container (runsc's own naming).
//!
//! Failures look like runsc's: a `{"level":"error","msg":..,"time":..}` line appended to the
//! `--log` file, the message on stderr, exit status 1.
//!
//! A test steers a container through annotations of its OCI spec, read from `config.json` at
//! `create`: see the `KNOB_*` constants of the crate's library, which the tests share.
//!
//! When `RUNSC_GUARD_PROC_ROOT` is set (the shim's guard reads the sandbox process from there),
//! `create` of a sandbox also leaves what the guard verifies: `<proc root>/<pid>/cgroup` and
//! `<proc root>/<pid>/cmdline`, see [`sandbox::SandboxProcess`]; and, in the fixture tree named by
//! `RUNSC_GUARD_CGROUP_ROOT`, the sandbox's cgroup when runsc would create it. `delete` removes
//! what `create` left.
//!
//! The command line is read in `args`, the root's state files kept in `state`, the container's
//! life played in `lifecycle` (with `exec` for processes run in it), what runsc reports in
//! `events`, the sandbox as the host sees it in `sandbox`, and the failures a test asks for in
//! `failure`; this file dispatches the sub-command.

mod args;
mod events;
mod exec;
mod failure;
#[cfg(test)]
mod fixture;
mod lifecycle;
mod sandbox;
mod state;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fake_runsc::{
    DEFAULT_VERSION, FAKE_PID_BASE, SANDBOX_PROCESS_ENV, VERSION_CALLS_ENV, VERSION_ENV,
};

use args::{parse, Invocation};
use state::Ctx;

/// A `wait` never blocks longer than this, so a forgotten one cannot outlive a test run.
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(600);
pub(crate) const POLL: Duration = Duration::from_millis(10);

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// RFC 3339 in UTC with milliseconds, from milliseconds since the epoch.
pub(crate) fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// A stable fake pid per container id, above FAKE_PID_BASE.
pub(crate) fn fake_pid(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    FAKE_PID_BASE + (hash & 0x0fff_ffff)
}

fn run(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let Some(command) = inv.command.as_deref() else {
        return Err("fake-runsc: no subcommand".to_string());
    };
    ctx.root()?;
    match command {
        "create" => lifecycle::create(ctx, inv),
        "start" => lifecycle::start(ctx, inv),
        "state" => lifecycle::state(ctx, inv),
        "wait" => lifecycle::wait(ctx, inv),
        "kill" => lifecycle::kill(ctx, inv),
        "delete" => lifecycle::delete(ctx, inv),
        "ps" => events::ps(ctx, inv),
        "list" => events::list(ctx, inv),
        "exec" => match exec::exec(ctx, inv)? {
            exec::Outcome::Detached => Ok(()),
            exec::Outcome::Exited(code) => std::process::exit(code),
        },
        "events" => events::events(ctx, inv),
        "pause" => lifecycle::pause_resume(ctx, inv, true),
        "resume" => lifecycle::pause_resume(ctx, inv, false),
        "update" => lifecycle::update(ctx, inv),
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

fn main() -> ExitCode {
    if let Some(state) = std::env::var_os(SANDBOX_PROCESS_ENV) {
        return sandbox::sandbox_process(Path::new(&state));
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let inv = parse(&argv);
    let globals = inv.as_ref().map(|i| &i.globals);
    let ctx = Ctx {
        root: globals.ok().and_then(|g| g.get("root")).map(PathBuf::from),
        log: globals.ok().and_then(|g| g.get("log")).map(PathBuf::from),
    };
    if std::env::var_os(exec::EXEC_CHILD_ENV).is_none() {
        ctx.record(&argv);
    }
    let result = inv.and_then(|inv| {
        if inv.version {
            if let Some(calls) = std::env::var_os(VERSION_CALLS_ENV) {
                let ppid = std::os::unix::process::parent_id();
                if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(calls) {
                    let _ = f.write_all(format!("{ppid}\n").as_bytes());
                }
            }
            let version =
                std::env::var(VERSION_ENV).unwrap_or_else(|_| DEFAULT_VERSION.to_string());
            println!("{version}");
            return Ok(());
        }
        ctx.log_line("info", &format!("fake-runsc {}", argv.join(" ")));
        run(&ctx, &inv)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            ctx.log_line("error", &msg);
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_pids_are_above_any_pid_max() {
        for id in ["a", "c1", "a-much-longer-container-id-0123456789abcdef"] {
            let pid = fake_pid(id);
            assert!((FAKE_PID_BASE..0x5000_0000).contains(&pid), "{pid:#x}");
            assert!(i32::try_from(pid).is_ok());
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }
}
