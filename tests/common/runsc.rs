//! fake-runsc (tests/fake-runsc): where it is, its knobs (from its library, which the binary
//! uses too), and what it recorded.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

// Each test binary uses some of them.
#[allow(unused_imports)]
pub use fake_runsc::{
    state_file_name, CALLS_FILE, CGROUP_ROOT_ENV, FAKE_PID_BASE, KNOB_EXIT_CODE, KNOB_FAIL,
    KNOB_FAIL_MESSAGE, KNOB_RUN_MS, KNOB_SANDBOX_CGROUP, KNOB_STDOUT, KNOB_TOTAL_MEMORY,
    PROC_ROOT_ENV, VERSION_CALLS_ENV, VERSION_ENV,
};

/// fake-runsc, built by `cargo build --workspace` next to the test profile's shim (also when
/// the daemon tests run another build of the shim).
pub fn fake_runsc() -> PathBuf {
    let shim = PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-runsc-v1"));
    let fake = shim
        .parent()
        .expect("the shim binary is in a directory")
        .join("fake-runsc");
    assert!(
        fake.is_file(),
        "{} is missing: run `cargo build --workspace` first (the integration tests drive the \
         shim against this fake runsc)",
        fake.display()
    );
    fake
}

/// Splits recorded command lines into the `wait`s the shim runs in the background (whose place
/// among the others is a race) and all the others: `(others, waits)`.
pub fn split_waits(calls: &[Vec<String>]) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    calls
        .iter()
        .cloned()
        .partition(|argv| subcommand(argv) != Some("wait"))
}

/// The sub-command of a recorded runsc command line (the first argument not a flag).
pub fn subcommand(argv: &[String]) -> Option<&str> {
    argv.iter()
        .map(String::as_str)
        .find(|a| !a.starts_with('-'))
}

/// Every command line fake-runsc recorded under `runsc_state`, in order.
pub fn read_calls(runsc_state: &Path) -> Vec<Vec<String>> {
    let path = runsc_state.join(CALLS_FILE);
    let Ok(text) = fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", path.display()));
            v["argv"]
                .as_array()
                .expect("argv is an array")
                .iter()
                .map(|a| a.as_str().expect("argv holds strings").to_string())
                .collect()
        })
        .collect()
}
