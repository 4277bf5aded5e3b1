//! What fake-runsc and the tests that drive it agree on: the annotations that steer a
//! container, the environment it reads, and the files it leaves under `--root`. The binary
//! (`src/main.rs`) and the shim's integration tests both take these names from here, so a knob
//! is defined once.

/// Exit status of the container when it stops by itself (default 0).
pub const KNOB_EXIT_CODE: &str = "dev.runsc-guard.test/exit-code";
/// After `start`, the container runs this many milliseconds, then stops by itself. Absent: it
/// runs until killed.
pub const KNOB_RUN_MS: &str = "dev.runsc-guard.test/run-ms";
/// Comma-separated sub-command names that fail for this container (e.g. `create`, `start`).
pub const KNOB_FAIL: &str = "dev.runsc-guard.test/fail";
/// The error message of a failure asked for with `KNOB_FAIL`.
pub const KNOB_FAIL_MESSAGE: &str = "dev.runsc-guard.test/fail-message";
/// Text written to stdout where the container's stdio is attached: at `create` for a sandbox,
/// at `start` for a container joining a sandbox.
pub const KNOB_STDOUT: &str = "dev.runsc-guard.test/stdout";
/// The whole `/proc/<pid>/cgroup` text of the sandbox process (e.g. `0::/system.slice/escaped`),
/// instead of the computed one.
pub const KNOB_SANDBOX_CGROUP: &str = "dev.runsc-guard.test/sandbox-cgroup";
/// The sandbox process' `--total-memory` (bytes), instead of the computed one.
pub const KNOB_TOTAL_MEMORY: &str = "dev.runsc-guard.test/total-memory";
/// Comma-separated sub-command names that hang for this container before doing anything (as a
/// wedged runsc would), for [`KNOB_HANG_MS`] milliseconds: the shim's timeouts and the calls
/// racing a slow one.
pub const KNOB_HANG: &str = "dev.runsc-guard.test/hang";
/// How long a sub-command named by [`KNOB_HANG`] hangs, in milliseconds (default 60000).
pub const KNOB_HANG_MS: &str = "dev.runsc-guard.test/hang-ms";

/// `real`: `create` of a sandbox starts a real process standing for `runsc-sandbox` (its pid is
/// the sandbox's), which the shim gets as an orphan, as it gets a real sandbox: it exits with the
/// sandbox init's exit status once that stops, 137 once the container is deleted, and dies when a
/// test kills it, after which every container of the sandbox is stopped and `wait` can no longer
/// tell an exit status. Absent: the pid is fake and nothing runs.
pub const KNOB_SANDBOX_PROCESS: &str = "dev.runsc-guard.test/sandbox-process";
/// Set in the environment of that process: the state file it follows.
pub const SANDBOX_PROCESS_ENV: &str = "FAKE_RUNSC_SANDBOX_STATE";

/// Where the shim's guard looks for the sandbox process; unset, no process is faked. The shim
/// reads the same variable (a fixture /proc instead of the host's).
pub const PROC_ROOT_ENV: &str = "RUNSC_GUARD_PROC_ROOT";
/// The fixture cgroup tree the shim's guard reads; the fake reads limits from it too and makes
/// the cgroups runsc would make. Unset, the fake reads no cgroup tree at all (never the host's).
pub const CGROUP_ROOT_ENV: &str = "RUNSC_GUARD_CGROUP_ROOT";
/// What `--version` prints instead of [`DEFAULT_VERSION`].
pub const VERSION_ENV: &str = "FAKE_RUNSC_VERSION";
/// A file `--version` appends one line to each time it runs: the pid of the process that ran it
/// (the shim), so a test can count the probes (they carry no `--root` to record them under).
pub const VERSION_CALLS_ENV: &str = "FAKE_RUNSC_VERSION_CALLS";
/// What `--version` prints by default: runsc 20221219, the oldest release the guard knows.
pub const DEFAULT_VERSION: &str = "runsc version 0.0~20221219.0\nspec: 1.0.2-dev";

/// Under `--root`: one JSON line per invocation, `{"argv":[..],"cwd":".."}`, argv without argv0.
pub const CALLS_FILE: &str = "calls.jsonl";
/// Under `--root`: `<container id>_sandbox:<sandbox id>.state` is the state of one container,
/// named as runsc names its state files (the shim lists a root's containers from these names).
pub const STATE_FILE_SUFFIX: &str = ".state";
/// Between the container id and the sandbox id in a state file's name.
pub const STATE_FILE_SANDBOX: &str = "_sandbox:";

/// The state file's name of container `id` in sandbox `sandbox_id`.
pub fn state_file_name(id: &str, sandbox_id: &str) -> String {
    format!("{id}{STATE_FILE_SANDBOX}{sandbox_id}{STATE_FILE_SUFFIX}")
}

/// Fake pids start above any possible pid_max (2^22), so a stray kill(2) hits nothing.
pub const FAKE_PID_BASE: u32 = 0x4000_0000;

/// What `events --stats` reports for every container that is not stopped: its CPU usage
/// (nanoseconds), memory usage (bytes) and pids, in runsc's `boot.Event` shape.
pub const EVENT_CPU_NS: u64 = 7_000_000;
pub const EVENT_MEMORY_USAGE: u64 = 50 << 20;
pub const EVENT_PIDS: u64 = 3;
