//! How long the shim takes to bring a pod's sandbox up on this machine, with fake-runsc as
//! runsc: the shim's own cost (runsc's is nothing here), `start` to the first RPC included.
//! Ignored by default (performance is measured, not asserted); run it with the release build:
//!
//! ```text
//! cargo test --release --test start_latency -- --ignored --nocapture
//! ```
//!
//! Each of `START_LATENCY_N` (default 20) rounds is one pod as the VM suite's node runs it: a
//! guarded sandbox on a fixture node (a pod slice with a memory limit), `start` with the runtime
//! options on stdin, Create (rootfs mount, guard plan and verification), Start, then Kill, Wait,
//! Delete and Shutdown. It prints the median, p90 and min of each phase and of the spans of the
//! shim's `timing` lines. Needs root.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::prelude::*;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `name=1.2ms` fields of the shim log's lines that begin with `prefix`.
fn spans(log: &str, prefix: &str) -> Vec<(String, f64)> {
    let Some(line) = log.lines().find(|l| l.contains(prefix)) else {
        return Vec::new();
    };
    let fields = line.split_once(": ").map_or("", |(_, f)| f);
    fields
        .split_whitespace()
        .filter_map(|f| {
            let (name, value) = f.split_once('=')?;
            let value: f64 = value.strip_suffix("ms")?.parse().ok()?;
            Some((name.to_string(), value))
        })
        .collect()
}

fn summary(name: &str, values: &mut [f64]) -> String {
    values.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "{name:<24} median {:>8.2} ms  p90 {:>8.2} ms  min {:>8.2} ms",
        at(0.5),
        at(0.9),
        values[0]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture, in release"]
async fn start_latency() {
    if skip_unless_root("start_latency") {
        return;
    }
    let rounds: usize = std::env::var("START_LATENCY_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let env = TestEnv::new("latency").await;
    let node = Node::with_pod(&env, 512 << 20);
    let config = env.write_runsc_toml("");
    let mut phases: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        let id = format!("latency-{round}");
        let bundle = sandbox_bundle(&env, &id, Some(512 << 20)).build();
        let began = Instant::now();
        let shim = env
            .start_shim_with_options_and(&bundle, &config, &node.vars())
            .await;
        let started = began.elapsed();
        let began = Instant::now();
        shim.create_ok("Create", &env, &bundle, &config).await;
        let created = began.elapsed();
        let began = Instant::now();
        shim.ok("Start", shim.start().await);
        let running = began.elapsed();
        let log = shim.log();
        shim.kill_wait_delete(&id).await;
        shim.shutdown().await;
        // The first round pays what later pods find ready (the version cache, page cache).
        if round == 0 {
            continue;
        }
        let mut add = |name: String, v: f64| phases.entry(name).or_default().push(v);
        add("1 start action".into(), ms(started));
        add("2 Create".into(), ms(created));
        add("3 Start".into(), ms(running));
        add("4 sum".into(), ms(started + created + running));
        for (prefix, tag) in [
            (format!("timing create {id}"), "create"),
            (format!("timing start {id}"), "start"),
            (format!("timing daemon {id}"), "daemon"),
        ] {
            for (name, v) in spans(&log, &prefix) {
                add(format!("{tag}.{name}"), v);
            }
        }
    }
    env.assert_nothing_left().await;
    println!("start_latency: {} rounds (the first not counted)", rounds);
    for (name, values) in &mut phases {
        println!("{}", summary(name, values));
    }
}
