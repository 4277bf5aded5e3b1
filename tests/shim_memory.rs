//! The memory a shim daemon holds for a pod: the real binary, started through `start` as
//! containerd starts it, serving a pod of one container and then of four (one shim per pod), with
//! fake-runsc as runsc. It prints the daemon's resident memory (`/proc/<pid>/smaps_rollup`,
//! `/proc/<pid>/status`) and asserts nothing about it: memory is measured, not asserted, and the
//! figures go to docs/MEASUREMENTS.md.
//!
//! Not part of `make test` (ignored): `make shim-memory` runs it against the release binary
//! (`RUNSC_GUARD_TEST_SHIM`), which is what a node runs; `SHIM_MEMORY_MAPS=1` also prints the
//! daemon's largest mappings. Needs root.

mod common;

use std::io::Write;

use common::prelude::*;

/// What the kernel counts for one process, in KiB (threads as a count).
#[derive(Debug, Default)]
struct Resident {
    rss: u64,
    anonymous: u64,
    file: u64,
    pss: u64,
    threads: u64,
    hwm: u64,
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn resident(pid: i32) -> Resident {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .expect("reading the daemon's smaps_rollup");
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading its status");
    Resident {
        rss: field(&status, "VmRSS"),
        anonymous: field(&rollup, "Anonymous"),
        file: field(&status, "RssFile"),
        pss: field(&rollup, "Pss"),
        threads: field(&status, "Threads"),
        hwm: field(&status, "VmHWM"),
    }
}

/// The mappings holding the most resident memory, with what they map.
fn largest_mappings(pid: i32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("reading smaps");
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.get(5).copied().unwrap_or("[anon]");
            current = format!("{} {} {name}", fields[0], fields[1]);
        } else if let Some(rest) = line.strip_prefix("Rss:") {
            let kib = rest
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            maps.push((kib, current.clone()));
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    maps.iter()
        .take(16)
        .map(|(kib, what)| format!("  {kib:>6} KiB  {what}\n"))
        .collect()
}

fn report(what: &str, pid: i32) {
    let r = resident(pid);
    let mut line = format!(
        "shim memory, {what}: VmRSS {} KiB (anonymous {}, file-backed {}), Pss {} KiB, \
         threads {}, VmHWM {} KiB\n",
        r.rss, r.anonymous, r.file, r.pss, r.threads, r.hwm
    );
    if std::env::var_os("SHIM_MEMORY_MAPS").is_some() {
        line.push_str(&largest_mappings(pid));
    }
    // Written to the stream itself: the harness captures `eprintln!` of passing tests.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by `make shim-memory`"]
async fn the_memory_of_a_grouped_shim_serving_one_and_then_four_containers() {
    if skip_unless_root("the_memory_of_a_grouped_shim_serving_one_and_then_four_containers") {
        return;
    }
    let env = TestEnv::new("memory").await;
    let config = env.write_runsc_toml("");
    let sandbox_id = "memory-sb";
    let sandbox = env
        .bundle(sandbox_id)
        .annotation(CONTAINER_TYPE, "sandbox")
        .annotation(SANDBOX_ID, sandbox_id)
        .build();
    let pod = env.start_shim_with_options(&sandbox, &config).await;
    pod.create_ok("Create (sandbox)", &env, &sandbox, &config)
        .await;
    pod.ok("Start (sandbox)", pod.start().await);
    let pid = pod.pid();
    report("1 container", pid);

    let mut shims = Vec::new();
    for app in ["web", "sidecar", "log"] {
        let bundle = env
            .bundle(&format!("memory-{app}"))
            .annotation(CONTAINER_TYPE, "container")
            .annotation(SANDBOX_ID, sandbox_id)
            .build();
        let shim = env.start_shim_with_options(&bundle, &config).await;
        assert_eq!(shim.pid(), pid, "{app}: one shim for the pod");
        shim.create_ok("Create (container)", &env, &bundle, &config)
            .await;
        shim.ok("Start (container)", shim.start().await);
        shims.push(shim);
    }
    report("4 containers", pid);

    for shim in shims {
        shim.kill_wait_delete("container").await;
        shim.shutdown().await;
    }
    report("1 container, after 3 were deleted", pid);
    pod.kill_wait_delete("sandbox").await;
    pod.shutdown().await;
    env.assert_nothing_left().await;
}
