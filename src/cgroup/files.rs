//! The figures a cgroup's own files hold (memory, CPU, pids; v2 and v1), read as they are: the
//! shim's stats turn them into containerd's metrics.
//!
//! A file that is missing or unreadable reads as absent, never as an error: a cgroup that has
//! lost a controller, or a file a kernel does not have, leaves its figures out. Each file is
//! opened as the tree's limit files are ([`super::tree`]): without following a symlink, without
//! blocking on a FIFO, a regular file only, and read up to a bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::tree::open_cgroup_file;
use super::ProcCgroups;

/// A cgroup v1 "no limit" (page-rounded i64::MAX) or v2 "max".
pub const UNLIMITED: u64 = u64::MAX;

/// A stat file is a page or two; `cpuacct.usage_percpu` grows with the CPUs. More than this is
/// not a cgroup file.
const STAT_FILE_MAX: u64 = 64 * 1024;

/// `key value` lines, as `memory.stat`, `cpu.stat` and `memory.events` hold them.
pub type Keyed = BTreeMap<String, u64>;

/// A v2 cgroup's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Figures {
    pub cpu_stat: Keyed,
    pub memory_stat: Keyed,
    pub memory_events: Keyed,
    pub memory_current: Option<u64>,
    pub memory_max: Option<u64>,
    pub memory_swap_current: Option<u64>,
    pub memory_swap_max: Option<u64>,
    pub memory_peak: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<u64>,
}

impl V2Figures {
    /// The figures of the cgroup `cgroup` (as `/proc/<pid>/cgroup` names it) under `root`.
    pub fn of(root: &Path, cgroup: &str) -> Self {
        Self::read(&under(root, cgroup))
    }

    /// The figures of the cgroup directory `dir`.
    pub fn read(dir: &Path) -> Self {
        V2Figures {
            cpu_stat: keyed(dir, "cpu.stat"),
            memory_stat: keyed(dir, "memory.stat"),
            memory_events: keyed(dir, "memory.events"),
            memory_current: number(dir, "memory.current"),
            memory_max: number(dir, "memory.max"),
            memory_swap_current: number(dir, "memory.swap.current"),
            memory_swap_max: number(dir, "memory.swap.max"),
            memory_peak: number(dir, "memory.peak"),
            pids_current: number(dir, "pids.current"),
            pids_max: number(dir, "pids.max"),
        }
    }
}

/// A v1 cgroup's figures, each controller from its own hierarchy; None where the process has
/// no cgroup of that controller or its directory is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Figures {
    pub memory: Option<V1Memory>,
    pub cpuacct: Option<V1Cpuacct>,
    /// The `cpu` controller's `cpu.stat` (throttling).
    pub cpu_stat: Option<Keyed>,
    pub pids: Option<V1Pids>,
}

/// The `memory` controller's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Memory {
    pub stat: Keyed,
    pub oom_control: Keyed,
    /// `memory.*`
    pub usage: V1MemoryEntry,
    /// `memory.memsw.*`
    pub swap: V1MemoryEntry,
    /// `memory.kmem.*`
    pub kernel: V1MemoryEntry,
    /// `memory.kmem.tcp.*`
    pub kernel_tcp: V1MemoryEntry,
}

/// The four counters v1 keeps per memory kind: `<prefix>usage_in_bytes`, `limit_in_bytes`,
/// `max_usage_in_bytes` and `failcnt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1MemoryEntry {
    pub usage: Option<u64>,
    pub limit: Option<u64>,
    pub max: Option<u64>,
    pub failcnt: Option<u64>,
}

impl V1MemoryEntry {
    fn read(dir: &Path, prefix: &str) -> Self {
        V1MemoryEntry {
            usage: number(dir, &format!("{prefix}usage_in_bytes")),
            limit: number(dir, &format!("{prefix}limit_in_bytes")),
            max: number(dir, &format!("{prefix}max_usage_in_bytes")),
            failcnt: number(dir, &format!("{prefix}failcnt")),
        }
    }
}

/// The `cpuacct` controller's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Cpuacct {
    /// `cpuacct.usage`, nanoseconds.
    pub usage: Option<u64>,
    /// `cpuacct.stat`: `user` and `system` in USER_HZ ticks.
    pub stat: Keyed,
    /// `cpuacct.usage_percpu`, nanoseconds per CPU.
    pub usage_percpu: Vec<u64>,
}

/// The `pids` controller's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Pids {
    pub current: Option<u64>,
    pub max: Option<u64>,
}

impl V1Figures {
    /// The figures of the process whose cgroups are `cgroups`, under the v1 mount `root`.
    pub fn of(root: &Path, cgroups: &ProcCgroups) -> Self {
        let dir = |controller: &str, hierarchies: &[&str]| -> Option<PathBuf> {
            let path = cgroups.v1.get(controller)?;
            hierarchies
                .iter()
                .map(|h| under(&root.join(h), path))
                .find(|d| d.is_dir())
        };
        V1Figures {
            memory: dir("memory", &["memory"]).map(|d| V1Memory {
                stat: keyed(&d, "memory.stat"),
                oom_control: keyed(&d, "memory.oom_control"),
                usage: V1MemoryEntry::read(&d, "memory."),
                swap: V1MemoryEntry::read(&d, "memory.memsw."),
                kernel: V1MemoryEntry::read(&d, "memory.kmem."),
                kernel_tcp: V1MemoryEntry::read(&d, "memory.kmem.tcp."),
            }),
            cpuacct: dir("cpuacct", &["cpu,cpuacct", "cpuacct,cpu", "cpuacct"]).map(|d| {
                V1Cpuacct {
                    usage: number(&d, "cpuacct.usage"),
                    stat: keyed(&d, "cpuacct.stat"),
                    usage_percpu: parse_numbers(
                        &read(&d, "cpuacct.usage_percpu").unwrap_or_default(),
                    ),
                }
            }),
            cpu_stat: dir("cpu", &["cpu,cpuacct", "cpuacct,cpu", "cpu"])
                .map(|d| keyed(&d, "cpu.stat")),
            pids: dir("pids", &["pids"]).map(|d| V1Pids {
                current: number(&d, "pids.current"),
                max: number(&d, "pids.max"),
            }),
        }
    }
}

/// `cgroup` (as `/proc/<pid>/cgroup` names it) under `root`, with no way out of it: empty and
/// `..` components are dropped.
pub fn under(root: &Path, cgroup: &str) -> PathBuf {
    let mut dir = root.to_path_buf();
    dir.extend(cgroup.split('/').filter(|c| !c.is_empty() && *c != ".."));
    dir
}

fn read(dir: &Path, file: &str) -> Option<String> {
    read_file(&dir.join(file))
}

/// A cgroup file's text, None when it cannot be opened as a regular file or read.
pub(super) fn read_file(path: &Path) -> Option<String> {
    use std::io::Read;
    let f = open_cgroup_file(
        path,
        std::fs::OpenOptions::new().read(true),
        "a cgroup file",
    )
    .ok()?;
    let mut bytes = Vec::new();
    f.take(STAT_FILE_MAX).read_to_end(&mut bytes).ok()?;
    String::from_utf8(bytes).ok()
}

/// A single number, `max` as unlimited.
fn number(dir: &Path, file: &str) -> Option<u64> {
    parse_number(&read(dir, file)?)
}

/// `key value` lines; a line that is not one is skipped.
fn keyed(dir: &Path, file: &str) -> Keyed {
    parse_keyed(&read(dir, file).unwrap_or_default())
}

/// The text of a one-number file (`memory.current`, `pids.max`, ...): the number, `max` as
/// [`UNLIMITED`], None for anything else.
pub fn parse_number(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        Some(UNLIMITED)
    } else {
        t.parse().ok()
    }
}

/// The text of a file of whitespace-separated numbers (`cpuacct.usage_percpu`); a word that is
/// not a number is skipped.
pub fn parse_numbers(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The text of a `key value` file (`memory.stat`, `cpu.stat`, ...); a line that is not one is
/// skipped.
pub fn parse_keyed(text: &str) -> Keyed {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_files_as_they_are() {
        let t = tempfile::tempdir().unwrap();
        let leaf = "kubepods.slice/pod.slice/s1.scope";
        write(t.path(), &format!("{leaf}/memory.current"), "104857600\n");
        write(t.path(), &format!("{leaf}/memory.max"), "max\n");
        write(
            t.path(),
            &format!("{leaf}/memory.stat"),
            "anon 73400320\nfile 31457280\nnot-a-line\n",
        );
        write(t.path(), &format!("{leaf}/cpu.stat"), "usage_usec 900000\n");
        write(t.path(), &format!("{leaf}/pids.current"), "12\n");
        let f = V2Figures::of(t.path(), &format!("/{leaf}"));
        assert_eq!(f.memory_current, Some(104857600));
        assert_eq!(f.memory_max, Some(UNLIMITED));
        assert_eq!(f.memory_stat.len(), 2);
        assert_eq!(f.memory_stat["file"], 31457280);
        assert_eq!(f.cpu_stat["usage_usec"], 900000);
        assert_eq!(f.pids_current, Some(12));
        assert_eq!(f.pids_max, None, "a missing file is absent");
        assert!(f.memory_events.is_empty());
        // `..` leads nowhere outside the root.
        assert_eq!(V2Figures::of(t.path(), &format!("/../{leaf}")), f);
    }

    #[test]
    fn v1_files_from_each_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "memory/k/p/s/memory.usage_in_bytes", "2097152\n");
        write(
            r,
            "memory/k/p/s/memory.memsw.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            r,
            "memory/k/p/s/memory.oom_control",
            "under_oom 0\noom_kill 2\n",
        );
        write(r, "cpu,cpuacct/k/p/s/cpuacct.usage_percpu", "100 23 x\n");
        write(r, "cpu,cpuacct/k/p/s/cpu.stat", "nr_throttled 1\n");
        let c = ProcCgroups::parse("4:cpu,cpuacct:/k/p/s\n3:memory:/k/p/s\n2:pids:/k/p/s\n");
        let f = V1Figures::of(r, &c);
        let memory = f.memory.unwrap();
        assert_eq!(memory.usage.usage, Some(2097152));
        assert_eq!(memory.usage.limit, None);
        assert_eq!(memory.swap.limit, Some(9223372036854771712));
        assert_eq!(memory.oom_control["oom_kill"], 2);
        let cpuacct = f.cpuacct.unwrap();
        assert_eq!(cpuacct.usage_percpu, [100, 23]);
        assert_eq!(cpuacct.usage, None);
        assert_eq!(f.cpu_stat.unwrap()["nr_throttled"], 1);
        assert_eq!(f.pids, None, "no pids hierarchy directory");
    }

    #[test]
    fn a_fifo_or_a_directory_reads_as_absent_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &t.path().join("memory.current"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        fs::create_dir(t.path().join("memory.stat")).unwrap();
        let f = V2Figures::read(t.path());
        assert_eq!(f.memory_current, None);
        assert!(f.memory_stat.is_empty());
    }
}
