//! Stats from fixture cgroup trees and runsc's `events --stats` output.

use super::*;
use containerd_shim::protos::protobuf::Message;
use std::fs;
use std::path::Path;

const RUNSC_EVENT: &str = r#"{"type":"stats","id":"app","data":{"cpu":{"usage":{"kernel":2000000,"user":5000000,"total":7000000,"percpu":[7000000]}},"memory":{"cache":4096,"usage":{"limit":268435456,"usage":52428800,"failcnt":0},"swap":{"limit":0,"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,"failcnt":0}},"pids":{"current":3}}}
"#;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn v2_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let pod = "kubepods.slice/pod.slice/cri-containerd-s1.scope";
    write(t.path(), "cgroup.controllers", "cpu memory pids\n");
    write(t.path(), &format!("{pod}/memory.current"), "104857600\n");
    write(t.path(), &format!("{pod}/memory.max"), "max\n");
    write(
        t.path(),
        &format!("{pod}/memory.stat"),
        "anon 73400320\nfile 31457280\ninactive_file 30000000\nslab 1024\n",
    );
    write(
        t.path(),
        &format!("{pod}/memory.events"),
        "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
    );
    write(
        t.path(),
        &format!("{pod}/cpu.stat"),
        "usage_usec 900000\nuser_usec 600000\nsystem_usec 300000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 500\n",
    );
    write(t.path(), &format!("{pod}/pids.current"), "12\n");
    write(t.path(), &format!("{pod}/pids.max"), "max\n");
    t
}

fn decode_v2(any: &Any) -> v2::Metrics {
    assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    v2::Metrics::parse_from_bytes(&any.value).unwrap()
}

#[test]
fn v2_host_figures() {
    let t = v2_tree();
    let tree = CgroupTree::detect(t.path()).unwrap();
    let c = ProcCgroups::parse("0::/kubepods.slice/pod.slice/cri-containerd-s1.scope\n");
    let m = decode_v2(&metrics(&tree, Some(&c), None).unwrap());
    assert_eq!(m.memory.usage, 104857600);
    assert_eq!(m.memory.usage_limit, u64::MAX);
    assert_eq!(m.memory.anon, 73400320);
    assert_eq!(m.memory.file, 31457280);
    assert_eq!(m.cpu.usage_usec, 900000);
    assert_eq!(m.cpu.nr_throttled, 2);
    assert_eq!(m.pids.current, 12);
    assert_eq!(m.memory_events.oom_kill, 1);
}

#[test]
fn runsc_figures_replace_the_sandbox_wide_ones() {
    let t = v2_tree();
    let tree = CgroupTree::detect(t.path()).unwrap();
    let c = ProcCgroups::parse("0::/kubepods.slice/pod.slice/cri-containerd-s1.scope\n");
    let r = RunscEvent::parse(RUNSC_EVENT.as_bytes()).unwrap().data;
    assert_eq!(r.cpu.usage.total, 7_000_000);
    let m = decode_v2(&metrics(&tree, Some(&c), Some(&r)).unwrap());
    assert_eq!(m.cpu.usage_usec, 7000, "the container's own CPU");
    assert_eq!(m.cpu.user_usec, 5000);
    assert_eq!(m.cpu.system_usec, 2000);
    assert_eq!(m.cpu.nr_throttled, 2, "throttling is the sandbox cgroup's");
    assert_eq!(m.memory.usage, 52428800);
    assert_eq!(
        m.memory.inactive_file, 0,
        "no host inactive_file against runsc's usage: the working set is the usage"
    );
    assert_eq!(
        m.memory.usage_limit, 268435456,
        "runsc's limit where the host has none"
    );
    assert_eq!(m.pids.current, 3);
    // No host cgroup at all: runsc's figures alone.
    let m = decode_v2(&metrics(&tree, None, Some(&r)).unwrap());
    assert_eq!(m.memory.usage, 52428800);
}

#[test]
fn v1_host_figures_from_each_hierarchy() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "memory/kubepods/pod1/s1/memory.usage_in_bytes",
        "2097152\n",
    );
    write(
        r,
        "memory/kubepods/pod1/s1/memory.limit_in_bytes",
        "268435456\n",
    );
    write(
        r,
        "memory/kubepods/pod1/s1/memory.max_usage_in_bytes",
        "4194304\n",
    );
    write(r, "memory/kubepods/pod1/s1/memory.failcnt", "0\n");
    write(
        r,
        "memory/kubepods/pod1/s1/memory.stat",
        "cache 1024\nrss 2048\ntotal_rss 2048\n",
    );
    write(
        r,
        "memory/kubepods/pod1/s1/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(
        r,
        "cpu,cpuacct/kubepods/pod1/s1/cpuacct.usage",
        "123456789\n",
    );
    write(
        r,
        "cpu,cpuacct/kubepods/pod1/s1/cpuacct.stat",
        "user 5\nsystem 3\n",
    );
    write(
        r,
        "cpu,cpuacct/kubepods/pod1/s1/cpuacct.usage_percpu",
        "100000000 23456789\n",
    );
    write(
        r,
        "cpu,cpuacct/kubepods/pod1/s1/cpu.stat",
        "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n",
    );
    write(r, "pids/kubepods/pod1/s1/pids.current", "5\n");
    write(r, "pids/kubepods/pod1/s1/pids.max", "max\n");
    let tree = CgroupTree::detect(r).unwrap();
    assert_eq!(type_url(tree.layout()), "io.containerd.cgroups.v1.Metrics");
    let c = ProcCgroups::parse(
        "9:pids:/kubepods/pod1/s1\n4:cpu,cpuacct:/kubepods/pod1/s1\n3:memory:/kubepods/pod1/s1\n",
    );
    let any = metrics(&tree, Some(&c), None).unwrap();
    assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
    let m = v1::Metrics::parse_from_bytes(&any.value).unwrap();
    assert_eq!(m.memory.usage.usage, 2097152);
    assert_eq!(m.memory.usage.limit, 268435456);
    assert_eq!(m.memory.usage.max, 4194304);
    assert_eq!(m.memory.cache, 1024);
    assert_eq!(m.memory.rss, 2048);
    assert_eq!(m.memory_oom_control.oom_kill, 2);
    assert_eq!(m.cpu.usage.total, 123456789);
    assert_eq!(m.cpu.usage.user, 50_000_000);
    assert_eq!(m.cpu.usage.per_cpu, [100000000, 23456789]);
    assert_eq!(m.cpu.throttling.throttled_periods, 1);
    assert_eq!(m.pids.current, 5);

    let ev = RunscEvent::parse(RUNSC_EVENT.as_bytes()).unwrap().data;
    let m =
        v1::Metrics::parse_from_bytes(&metrics(&tree, Some(&c), Some(&ev)).unwrap().value).unwrap();
    assert_eq!(m.cpu.usage.total, 7_000_000);
    assert_eq!(m.memory.usage.usage, 52428800);
    assert_eq!(m.memory.usage.limit, 268435456);
    assert_eq!(m.pids.current, 3);
}

#[test]
fn unreadable_runsc_output_is_an_error() {
    assert!(RunscEvent::parse(b"not json").is_err());
    assert_eq!(RunscEvent::parse(b"{}\n").unwrap(), RunscEvent::default());
}
