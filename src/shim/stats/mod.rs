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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{MessageField, MessageFull};
use serde::Deserialize;

use crate::cgroup::{CgroupLayout, CgroupTree};
use crate::error::{Error, Result, RunscFailure};

/// A cgroup v1 "no limit" (page-rounded i64::MAX) or v2 "max".
const UNLIMITED: u64 = u64::MAX;

/// Where the sandbox process sits: the v2 path, or each v1 controller's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    pub unified: Option<String>,
    pub v1: BTreeMap<String, String>,
}

impl ProcCgroups {
    /// Parses `/proc/<pid>/cgroup`: `0::/path` (v2) and `N:ctrl,ctrl:/path` (v1).
    pub fn parse(text: &str) -> Self {
        let mut out = ProcCgroups::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                out.unified = Some(path.to_string());
            } else {
                for c in controllers.split(',') {
                    out.v1.insert(c.to_string(), path.to_string());
                }
            }
        }
        out
    }

    /// Reads `<proc root>/<pid>/cgroup`.
    pub fn of(proc_root: &Path, pid: i32) -> Result<Self> {
        let file = proc_root.join(pid.to_string()).join("cgroup");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::io("reading the sandbox's cgroup", &file, e))?;
        Ok(Self::parse(&text))
    }
}

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
            .map(|path| read_v2(&under(tree.root(), path)))
            .unwrap_or_default();
        if let Some(r) = runsc {
            overlay_v2(&mut m, r);
        }
        to_any(&m)
    } else {
        let mut m = cgroups.map(|c| read_v1(tree.root(), c)).unwrap_or_default();
        if let Some(r) = runsc {
            overlay_v1(&mut m, r);
        }
        to_any(&m)
    }
}

fn to_any<M: MessageFull>(m: &M) -> Result<Any> {
    let value = m
        .write_to_bytes()
        .map_err(|e| Error::Other(format!("encoding metrics: {e}")))?;
    Ok(Any {
        type_url: M::descriptor().full_name().to_string(),
        value,
        ..Default::default()
    })
}

fn under(root: &Path, cgroup: &str) -> PathBuf {
    let mut dir = root.to_path_buf();
    dir.extend(cgroup.split('/').filter(|c| !c.is_empty() && *c != ".."));
    dir
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A single number, `max` as unlimited.
fn number(dir: &Path, file: &str) -> Option<u64> {
    let text = read(dir, file)?;
    let t = text.trim();
    if t == "max" {
        Some(UNLIMITED)
    } else {
        t.parse().ok()
    }
}

/// `key value` lines.
fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// A v2 cgroup's figures.
pub fn read_v2(dir: &Path) -> v2::Metrics {
    let cpu = keyed(dir, "cpu.stat");
    let mem = keyed(dir, "memory.stat");
    let events = keyed(dir, "memory.events");
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: number(dir, "pids.current").unwrap_or(0),
            limit: number(dir, "pids.max").unwrap_or(0),
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: get(&cpu, "usage_usec"),
            user_usec: get(&cpu, "user_usec"),
            system_usec: get(&cpu, "system_usec"),
            nr_periods: get(&cpu, "nr_periods"),
            nr_throttled: get(&cpu, "nr_throttled"),
            throttled_usec: get(&cpu, "throttled_usec"),
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: get(&mem, "anon"),
            file: get(&mem, "file"),
            kernel_stack: get(&mem, "kernel_stack"),
            slab: get(&mem, "slab"),
            sock: get(&mem, "sock"),
            shmem: get(&mem, "shmem"),
            file_mapped: get(&mem, "file_mapped"),
            file_dirty: get(&mem, "file_dirty"),
            file_writeback: get(&mem, "file_writeback"),
            inactive_anon: get(&mem, "inactive_anon"),
            active_anon: get(&mem, "active_anon"),
            inactive_file: get(&mem, "inactive_file"),
            active_file: get(&mem, "active_file"),
            unevictable: get(&mem, "unevictable"),
            pgfault: get(&mem, "pgfault"),
            pgmajfault: get(&mem, "pgmajfault"),
            usage: number(dir, "memory.current").unwrap_or(0),
            usage_limit: number(dir, "memory.max").unwrap_or(UNLIMITED),
            swap_usage: number(dir, "memory.swap.current").unwrap_or(0),
            swap_limit: number(dir, "memory.swap.max").unwrap_or(0),
            max_usage: number(dir, "memory.peak").unwrap_or(0),
            ..Default::default()
        }),
        memory_events: MessageField::some(v2::MemoryEvents {
            low: get(&events, "low"),
            high: get(&events, "high"),
            max: get(&events, "max"),
            oom: get(&events, "oom"),
            oom_kill: get(&events, "oom_kill"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A v1 cgroup's figures, each controller from its own hierarchy.
pub fn read_v1(root: &Path, cgroups: &ProcCgroups) -> v1::Metrics {
    let dir = |controller: &str, hierarchies: &[&str]| -> Option<PathBuf> {
        let path = cgroups.v1.get(controller)?;
        hierarchies
            .iter()
            .map(|h| under(&root.join(h), path))
            .find(|d| d.is_dir())
    };
    let mut m = v1::Metrics::default();
    if let Some(d) = dir("memory", &["memory"]) {
        let stat = keyed(&d, "memory.stat");
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        let entry = |prefix: &str| v1::MemoryEntry {
            usage: number(&d, &format!("{prefix}usage_in_bytes")).unwrap_or(0),
            limit: number(&d, &format!("{prefix}limit_in_bytes")).unwrap_or(0),
            max: number(&d, &format!("{prefix}max_usage_in_bytes")).unwrap_or(0),
            failcnt: number(&d, &format!("{prefix}failcnt")).unwrap_or(0),
            ..Default::default()
        };
        let oom = keyed(&d, "memory.oom_control");
        m.memory = MessageField::some(v1::MemoryStat {
            cache: get("cache"),
            rss: get("rss"),
            rss_huge: get("rss_huge"),
            mapped_file: get("mapped_file"),
            dirty: get("dirty"),
            writeback: get("writeback"),
            pg_fault: get("pgfault"),
            pg_maj_fault: get("pgmajfault"),
            inactive_anon: get("inactive_anon"),
            active_anon: get("active_anon"),
            inactive_file: get("inactive_file"),
            active_file: get("active_file"),
            unevictable: get("unevictable"),
            hierarchical_memory_limit: get("hierarchical_memory_limit"),
            hierarchical_swap_limit: get("hierarchical_memsw_limit"),
            total_cache: get("total_cache"),
            total_rss: get("total_rss"),
            total_inactive_file: get("total_inactive_file"),
            total_active_file: get("total_active_file"),
            usage: MessageField::some(entry("memory.")),
            swap: MessageField::some(entry("memory.memsw.")),
            kernel: MessageField::some(entry("memory.kmem.")),
            kernel_tcp: MessageField::some(entry("memory.kmem.tcp.")),
            ..Default::default()
        });
        m.memory_oom_control = MessageField::some(v1::MemoryOomControl {
            oom_kill_disable: oom.get("oom_kill_disable").copied().unwrap_or(0),
            under_oom: oom.get("under_oom").copied().unwrap_or(0),
            oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
            ..Default::default()
        });
    }
    let mut cpu = v1::CPUStat::default();
    if let Some(d) = dir("cpuacct", &["cpu,cpuacct", "cpuacct,cpu", "cpuacct"]) {
        // cpuacct.stat counts USER_HZ ticks (100 a second on Linux).
        let ticks = keyed(&d, "cpuacct.stat");
        let ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * 10_000_000;
        cpu.usage = MessageField::some(v1::CPUUsage {
            total: number(&d, "cpuacct.usage").unwrap_or(0),
            user: ns("user"),
            kernel: ns("system"),
            per_cpu: read(&d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect(),
            ..Default::default()
        });
    }
    if let Some(d) = dir("cpu", &["cpu,cpuacct", "cpuacct,cpu", "cpu"]) {
        let stat = keyed(&d, "cpu.stat");
        let get = |k: &str| stat.get(k).copied().unwrap_or(0);
        cpu.throttling = MessageField::some(v1::Throttle {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_time"),
            ..Default::default()
        });
    }
    m.cpu = MessageField::some(cpu);
    if let Some(d) = dir("pids", &["pids"]) {
        m.pids = MessageField::some(v1::PidsStat {
            current: number(&d, "pids.current").unwrap_or(0),
            limit: number(&d, "pids.max").unwrap_or(0),
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
