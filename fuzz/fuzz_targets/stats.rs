//! What the shim reads from the host for stats and the guard: `/proc/<pid>/cgroup`
//! (`ProcCgroups::parse`), the cgroup files' numbers and `key value` lines, the memory limit
//! files, `/proc/meminfo`, and `runsc events --stats` JSON (`RunscEvent::parse`).
//!
//! The first byte picks the parser the rest goes to.
//!
//! Invariants: no panic; each cgroup `/proc/<pid>/cgroup` names, joined to the cgroup root as the
//! stats read it, stays under the root with no `..`; a `key value` line's key is one word.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use runsc_guard::cgroup::{files, parse_limit_in_bytes, parse_memory_max, ProcCgroups};
use runsc_guard::guard::mem_total;
use runsc_guard::shim::stats::RunscEvent;

fn stays_under(cgroup: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let dir = files::under(root, cgroup);
    assert!(dir.starts_with(root), "{cgroup:?} -> {dir:?}");
    assert!(
        !dir.components().any(|c| c == Component::ParentDir),
        "{cgroup:?} -> {dir:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 6 {
        0 => {
            let c = ProcCgroups::parse(&text);
            for path in c.unified.iter().chain(c.v1.values()) {
                stays_under(path);
            }
            for controller in c.v1.keys() {
                assert!(!controller.contains(','), "{controller:?}");
            }
        }
        1 => {
            let _ = files::parse_number(&text);
            let _ = files::parse_numbers(&text);
        }
        2 => {
            for key in files::parse_keyed(&text).keys() {
                assert!(
                    !key.is_empty() && !key.contains(char::is_whitespace),
                    "{key:?}"
                );
            }
        }
        3 => {
            let _ = parse_memory_max(&text);
            let _ = parse_limit_in_bytes(&text);
        }
        4 => {
            let _ = mem_total(&text);
        }
        _ => {
            let _ = RunscEvent::parse(rest);
        }
    }
});
