//! Stats (containerd's `task.Metrics`, kubelet's `ContainerStats`): what a container costs the
//! host.
//!
//! The base is the host cgroup that holds the sandbox (from `/proc/<sandbox pid>/cgroup`): that
//! is what bounds the pod, sentry and gofers included. Its figures go out as cgroup v2 metrics
//! (`io.containerd.cgroups.v2.Metrics`) on a unified host and as v1 metrics
//! (`io.containerd.cgroups.v1.Metrics`) otherwise, chosen by the host's layout as runc's shim
//! chooses, never by a flag. Where `runsc events --stats` tells a container's own figures (CPU
//! usage per container; memory usage, its limit and pids as runsc sees them), those replace the
//! sandbox-wide ones, so two containers of a pod do not both report the whole pod's CPU.

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{MessageField, MessageFull};
use serde::Deserialize;

use crate::cgroup::files::{Keyed, V1Figures, V1MemoryEntry, V2Figures, UNLIMITED};
use crate::cgroup::{CgroupLayout, CgroupTree, ProcCgroups};
use crate::error::{Error, Result, RunscFailure};

/// What `runsc events --stats` prints (runsc's `boot.Event`, the same since 20221219).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscEvent {
    #[serde(default)]
    pub data: RunscStats,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscStats {
    #[serde(default)]
    pub cpu: RunscCpu,
    #[serde(default)]
    pub memory: RunscMemory,
    #[serde(default)]
    pub pids: RunscPids,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscCpu {
    #[serde(default)]
    pub usage: RunscCpuUsage,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscCpuUsage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub user: u64,
    #[serde(default)]
    pub kernel: u64,
    #[serde(default)]
    pub percpu: Vec<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscMemory {
    #[serde(default)]
    pub cache: u64,
    #[serde(default)]
    pub usage: RunscMemoryEntry,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscMemoryEntry {
    #[serde(default)]
    pub usage: u64,
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub max: u64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RunscPids {
    #[serde(default)]
    pub current: u64,
    #[serde(default)]
    pub limit: u64,
}

impl RunscEvent {
    /// The first JSON line of `runsc events --stats` output.
    pub fn parse(out: &[u8]) -> Result<Self> {
        let text = String::from_utf8_lossy(out);
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        serde_json::from_str(line).map_err(|e| {
            Error::runsc(
                "events",
                RunscFailure::Failed,
                format!("unreadable output {line:?}: {e}"),
            )
        })
    }
}

/// The metrics of a container: the host cgroup of its sandbox (if readable), with runsc's own
/// figures for the container (if any) in their place, wrapped as containerd expects.
pub fn metrics(
    tree: &CgroupTree,
    cgroups: Option<&ProcCgroups>,
    runsc: Option<&RunscStats>,
) -> Result<Any> {
    if tree.layout().is_unified() {
        let mut m = cgroups
            .and_then(|c| c.unified.as_deref())
            .map(|path| v2_metrics(&V2Figures::of(tree.root(), path)))
            .unwrap_or_default();
        if let Some(r) = runsc {
            overlay_v2(&mut m, r);
        }
        to_any(&m)
    } else {
        let mut m = cgroups
            .map(|c| v1_metrics(&V1Figures::of(tree.root(), c)))
            .unwrap_or_default();
        if let Some(r) = runsc {
            overlay_v1(&mut m, r);
        }
        to_any(&m)
    }
}

fn to_any<M: MessageFull>(m: &M) -> Result<Any> {
    // Other: encoding a message the shim built fails only past protobuf's 2 GiB limit, an
    // invariant of ours and nothing a caller could act on.
    let value = m
        .write_to_bytes()
        .map_err(|e| Error::Other(format!("encoding metrics: {e}")))?;
    Ok(Any {
        type_url: M::descriptor().full_name().to_string(),
        value,
        ..Default::default()
    })
}

fn get(m: &Keyed, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}

/// A v2 cgroup's figures as containerd's v2 metrics; a figure the cgroup lacks is 0, its memory
/// limit unlimited.
pub fn v2_metrics(f: &V2Figures) -> v2::Metrics {
    let (cpu, mem, events) = (&f.cpu_stat, &f.memory_stat, &f.memory_events);
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: f.pids_current.unwrap_or(0),
            limit: f.pids_max.unwrap_or(0),
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: get(cpu, "usage_usec"),
            user_usec: get(cpu, "user_usec"),
            system_usec: get(cpu, "system_usec"),
            nr_periods: get(cpu, "nr_periods"),
            nr_throttled: get(cpu, "nr_throttled"),
            throttled_usec: get(cpu, "throttled_usec"),
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: get(mem, "anon"),
            file: get(mem, "file"),
            kernel_stack: get(mem, "kernel_stack"),
            slab: get(mem, "slab"),
            sock: get(mem, "sock"),
            shmem: get(mem, "shmem"),
            file_mapped: get(mem, "file_mapped"),
            file_dirty: get(mem, "file_dirty"),
            file_writeback: get(mem, "file_writeback"),
            inactive_anon: get(mem, "inactive_anon"),
            active_anon: get(mem, "active_anon"),
            inactive_file: get(mem, "inactive_file"),
            active_file: get(mem, "active_file"),
            unevictable: get(mem, "unevictable"),
            pgfault: get(mem, "pgfault"),
            pgmajfault: get(mem, "pgmajfault"),
            usage: f.memory_current.unwrap_or(0),
            usage_limit: f.memory_max.unwrap_or(UNLIMITED),
            swap_usage: f.memory_swap_current.unwrap_or(0),
            swap_limit: f.memory_swap_max.unwrap_or(0),
            max_usage: f.memory_peak.unwrap_or(0),
            ..Default::default()
        }),
        memory_events: MessageField::some(v2::MemoryEvents {
            low: get(events, "low"),
            high: get(events, "high"),
            max: get(events, "max"),
            oom: get(events, "oom"),
            oom_kill: get(events, "oom_kill"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn v1_entry(e: &V1MemoryEntry) -> v1::MemoryEntry {
    v1::MemoryEntry {
        usage: e.usage.unwrap_or(0),
        limit: e.limit.unwrap_or(0),
        max: e.max.unwrap_or(0),
        failcnt: e.failcnt.unwrap_or(0),
        ..Default::default()
    }
}

/// A v1 cgroup's figures as containerd's v1 metrics: a controller the process has no cgroup of
/// is left out (CPU always is there, empty), a figure its cgroup lacks is 0.
pub fn v1_metrics(f: &V1Figures) -> v1::Metrics {
    let mut m = v1::Metrics::default();
    if let Some(d) = &f.memory {
        let stat = &d.stat;
        m.memory = MessageField::some(v1::MemoryStat {
            cache: get(stat, "cache"),
            rss: get(stat, "rss"),
            rss_huge: get(stat, "rss_huge"),
            mapped_file: get(stat, "mapped_file"),
            dirty: get(stat, "dirty"),
            writeback: get(stat, "writeback"),
            pg_fault: get(stat, "pgfault"),
            pg_maj_fault: get(stat, "pgmajfault"),
            inactive_anon: get(stat, "inactive_anon"),
            active_anon: get(stat, "active_anon"),
            inactive_file: get(stat, "inactive_file"),
            active_file: get(stat, "active_file"),
            unevictable: get(stat, "unevictable"),
            hierarchical_memory_limit: get(stat, "hierarchical_memory_limit"),
            hierarchical_swap_limit: get(stat, "hierarchical_memsw_limit"),
            total_cache: get(stat, "total_cache"),
            total_rss: get(stat, "total_rss"),
            total_inactive_file: get(stat, "total_inactive_file"),
            total_active_file: get(stat, "total_active_file"),
            usage: MessageField::some(v1_entry(&d.usage)),
            swap: MessageField::some(v1_entry(&d.swap)),
            kernel: MessageField::some(v1_entry(&d.kernel)),
            kernel_tcp: MessageField::some(v1_entry(&d.kernel_tcp)),
            ..Default::default()
        });
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: get(&d.oom_control, "oom_kill_disable"),
            under_oom: get(&d.oom_control, "under_oom"),
            oom_kill: get(&d.oom_control, "oom_kill"),
            ..Default::default()
        });
    }
    let mut cpu = v1::CPUStat::default();
    if let Some(d) = &f.cpuacct {
        // cpuacct.stat counts USER_HZ ticks (100 a second on Linux).
        let ns = |k: &str| get(&d.stat, k) * 10_000_000;
        cpu.usage = MessageField::some(v1::CPUUsage {
            total: d.usage.unwrap_or(0),
            user: ns("user"),
            kernel: ns("system"),
            per_cpu: d.usage_percpu.clone(),
            ..Default::default()
        });
    }
    if let Some(stat) = &f.cpu_stat {
        cpu.throttling = MessageField::some(v1::Throttle {
            periods: get(stat, "nr_periods"),
            throttled_periods: get(stat, "nr_throttled"),
            throttled_time: get(stat, "throttled_time"),
            ..Default::default()
        });
    }
    m.cpu = MessageField::some(cpu);
    if let Some(p) = &f.pids {
        m.pids = MessageField::some(v1::PidsStat {
            current: p.current.unwrap_or(0),
            limit: p.max.unwrap_or(0),
            ..Default::default()
        });
    }
    m
}

/// runsc's figures for the container, where it gives them, in place of the sandbox's.
fn overlay_v2(m: &mut v2::Metrics, r: &RunscStats) {
    let cpu = m.cpu.mut_or_insert_default();
    if r.cpu.usage.total > 0 {
        cpu.usage_usec = r.cpu.usage.total / 1000;
        cpu.user_usec = r.cpu.usage.user / 1000;
        cpu.system_usec = r.cpu.usage.kernel / 1000;
    }
    let mem = m.memory.mut_or_insert_default();
    if r.memory.usage.usage > 0 {
        mem.usage = r.memory.usage.usage;
        // The sandbox cgroup's inactive_file is not part of runsc's usage: kubelet's working
        // set (usage - inactive_file) would come out 0 (seen on containerd 2.1 with runsc
        // 20240729, whose usage is the guest's and smaller).
        mem.inactive_file = 0;
    }
    if r.memory.usage.limit > 0 && (mem.usage_limit == 0 || mem.usage_limit == UNLIMITED) {
        mem.usage_limit = r.memory.usage.limit;
    }
    if r.memory.cache > 0 {
        mem.file = r.memory.cache;
    }
    if r.pids.current > 0 {
        m.pids.mut_or_insert_default().current = r.pids.current;
    }
}

fn overlay_v1(m: &mut v1::Metrics, r: &RunscStats) {
    if r.cpu.usage.total > 0 {
        let usage = m.cpu.mut_or_insert_default().usage.mut_or_insert_default();
        usage.total = r.cpu.usage.total;
        usage.user = r.cpu.usage.user;
        usage.kernel = r.cpu.usage.kernel;
        if !r.cpu.usage.percpu.is_empty() {
            usage.per_cpu = r.cpu.usage.percpu.clone();
        }
    }
    let mem = m.memory.mut_or_insert_default();
    let entry = mem.usage.mut_or_insert_default();
    if r.memory.usage.usage > 0 {
        entry.usage = r.memory.usage.usage;
        // As for v2: the host's inactive file pages are not in runsc's usage.
        mem.inactive_file = 0;
        mem.total_inactive_file = 0;
    }
    if r.memory.usage.limit > 0 && (entry.limit == 0 || entry.limit >= 1 << 62) {
        entry.limit = r.memory.usage.limit;
    }
    if r.memory.cache > 0 {
        mem.cache = r.memory.cache;
    }
    if r.pids.current > 0 {
        m.pids.mut_or_insert_default().current = r.pids.current;
    }
}

/// Whether metrics for this layout are v2 (for logs and tests).
pub fn type_url(layout: CgroupLayout) -> &'static str {
    if layout.is_unified() {
        "io.containerd.cgroups.v2.Metrics"
    } else {
        "io.containerd.cgroups.v1.Metrics"
    }
}

#[cfg(test)]
mod tests;
