//! Reading (and, for pod slices, preparing) the guest's cgroup v2 tree. Every function takes the
//! cgroup2 mount point as an argument, so the unit tests run against fixture trees.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `path` is `ancestor` or lies below it (both cgroup paths starting with `/`).
pub fn is_under(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.trim_end_matches('/');
    if ancestor.is_empty() {
        return path.starts_with('/');
    }
    path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A flat-keyed cgroup file (`memory.events`, `memory.stat`): `key value` per line.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let k = f.next()?;
            let v = f.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// `memory.max`-style value: a number of bytes, or `None` for `max`.
pub fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| format!("expected a byte count or \"max\", found {t:?}"))
}

pub fn dir_of(root: &Path, cgroup: &str) -> PathBuf {
    root.join(cgroup.trim_start_matches('/'))
}

/// What one cgroup looks like at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CgroupFacts {
    pub path: String,
    pub exists: bool,
    /// `memory.max` as written (`max` or bytes); absent when the memory controller is off.
    pub memory_max: Option<String>,
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub memory_events: BTreeMap<String, u64>,
    pub controllers: Option<String>,
    pub subtree_control: Option<String>,
    /// Child cgroups (directory names).
    pub children: Vec<String>,
    /// Number of processes directly in this cgroup.
    pub procs: usize,
}

impl CgroupFacts {
    /// A leaf: no child cgroups.
    pub fn is_leaf(&self) -> bool {
        self.exists && self.children.is_empty()
    }

    pub fn oom_kills(&self) -> Option<u64> {
        self.memory_events.get("oom_kill").copied()
    }

    pub fn memory_max_bytes(&self) -> Option<u64> {
        self.memory_max
            .as_deref()
            .and_then(|m| parse_limit(m).ok().flatten())
    }
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

pub fn read_facts(root: &Path, cgroup: &str) -> CgroupFacts {
    let dir = dir_of(root, cgroup);
    let mut f = CgroupFacts {
        path: cgroup.to_string(),
        exists: dir.is_dir(),
        ..Default::default()
    };
    if !f.exists {
        return f;
    }
    f.memory_max = read_trim(&dir.join("memory.max"));
    f.memory_current = read_trim(&dir.join("memory.current")).and_then(|s| s.parse().ok());
    f.memory_peak = read_trim(&dir.join("memory.peak")).and_then(|s| s.parse().ok());
    f.memory_events = fs::read_to_string(dir.join("memory.events"))
        .map(|t| parse_flat_keyed(&t))
        .unwrap_or_default();
    f.controllers = read_trim(&dir.join("cgroup.controllers"));
    f.subtree_control = read_trim(&dir.join("cgroup.subtree_control"));
    if let Ok(entries) = fs::read_dir(&dir) {
        f.children = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        f.children.sort();
    }
    f.procs = fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0);
    f
}

/// Like kubelet at start-up: enable every controller a cgroup has in its `subtree_control`, on
/// each level from the root down to `cgroup` (inclusive). Each controller is written on its own
/// so one the kernel refuses does not hide the others. Returns what could not be enabled.
pub fn enable_controllers_down_to(root: &Path, cgroup: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut levels = vec![String::new()];
    let mut acc = String::new();
    for part in cgroup.split('/').filter(|p| !p.is_empty()) {
        acc.push('/');
        acc.push_str(part);
        levels.push(acc.clone());
    }
    for level in levels {
        let dir = dir_of(root, &level);
        let Some(available) = read_trim(&dir.join("cgroup.controllers")) else {
            problems.push(format!("{}: no cgroup.controllers", dir.display()));
            continue;
        };
        let enabled = read_trim(&dir.join("cgroup.subtree_control")).unwrap_or_default();
        for c in available.split_whitespace() {
            if enabled.split_whitespace().any(|e| e == c) {
                continue;
            }
            if let Err(e) = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}")) {
                problems.push(format!("{}: +{c}: {e}", dir.display()));
            }
        }
    }
    problems
}

/// Cgroup directories (paths below the mount) whose name contains any of `needles`, searched
/// down to `max_depth` levels.
pub fn find_dirs_mentioning(root: &Path, needles: &[String], max_depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(PathBuf::from(root), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let child_rel = format!("{rel}/{name}");
            if needles.iter().any(|n| !n.is_empty() && name.contains(n)) {
                out.push(child_rel.clone());
            }
            if depth + 1 < max_depth {
                stack.push((e.path(), child_rel, depth + 1));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture(PathBuf);

    impl Fixture {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("e2e-driver-cgroup-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("fixture dir");
            Fixture(dir)
        }
        fn write(&self, rel: &str, content: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, content).expect("write");
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn under() {
        let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice";
        assert!(is_under(&format!("{pod}/cri-containerd-a.scope"), pod));
        assert!(is_under(pod, pod));
        assert!(!is_under(&format!("{pod}2/cri-containerd-a.scope"), pod));
        assert!(!is_under(
            "/system.slice/kubepods-burstable-podx.slice:cri-containerd:a",
            pod
        ));
        assert!(is_under("/a", "/"));
        assert!(is_under("/a/b", "/a/"));
    }

    #[test]
    fn events_and_limits() {
        let ev = parse_flat_keyed("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n");
        assert_eq!(ev.get("oom_kill"), Some(&1));
        assert_eq!(ev.get("max"), Some(&12));
        assert_eq!(parse_limit("max\n"), Ok(None));
        assert_eq!(parse_limit("268435456\n"), Ok(Some(268435456)));
        assert!(parse_limit("lots").is_err());
    }

    #[test]
    fn facts_from_fixture() {
        let fx = Fixture::new("facts");
        let pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice";
        fx.write(&format!("{pod}/memory.max"), "268435456\n");
        fx.write(&format!("{pod}/memory.current"), "1024\n");
        fx.write(&format!("{pod}/memory.events"), "oom 1\noom_kill 1\n");
        fx.write(&format!("{pod}/cgroup.procs"), "");
        fx.write(&format!("{pod}/cri-containerd-a.scope/memory.max"), "max\n");
        fx.write(
            &format!("{pod}/cri-containerd-a.scope/cgroup.procs"),
            "5\n6\n",
        );
        let f = read_facts(&fx.0, &format!("/{pod}"));
        assert!(f.exists);
        assert_eq!(f.memory_max_bytes(), Some(268435456));
        assert_eq!(f.memory_current, Some(1024));
        assert_eq!(f.memory_peak, None);
        assert_eq!(f.oom_kills(), Some(1));
        assert_eq!(f.children, vec!["cri-containerd-a.scope".to_string()]);
        assert!(!f.is_leaf());
        let scope = read_facts(&fx.0, &format!("/{pod}/cri-containerd-a.scope"));
        assert!(scope.is_leaf());
        assert_eq!(scope.procs, 2);
        assert_eq!(scope.memory_max_bytes(), None);
        let gone = read_facts(&fx.0, "/nope.slice");
        assert!(!gone.exists);
        assert!(!gone.is_leaf());
    }

    #[test]
    fn finds_dirs_by_id() {
        let fx = Fixture::new("find");
        fx.write(
            "system.slice/kubepods-burstable-podx.slice:cri-containerd:abc123/cgroup.procs",
            "",
        );
        fx.write("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pody.slice/cri-containerd-abc123.scope/cgroup.procs", "");
        fx.write("kubepods.slice/other/cgroup.procs", "");
        let found = find_dirs_mentioning(&fx.0, &["abc123".to_string()], 6);
        assert_eq!(
            found,
            vec![
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pody.slice/cri-containerd-abc123.scope".to_string(),
                "/system.slice/kubepods-burstable-podx.slice:cri-containerd:abc123".to_string(),
            ]
        );
        assert!(find_dirs_mentioning(&fx.0, &[String::new()], 6).is_empty());
    }

    #[test]
    fn enables_controllers_level_by_level() {
        let fx = Fixture::new("enable");
        fx.write("cgroup.controllers", "cpu memory pids\n");
        fx.write("cgroup.subtree_control", "memory\n");
        fx.write("kubepods.slice/cgroup.controllers", "cpu memory\n");
        fx.write("kubepods.slice/cgroup.subtree_control", "");
        let problems = enable_controllers_down_to(&fx.0, "/kubepods.slice/missing.slice");
        // In a plain directory each write replaces the file: the last controller written wins.
        let root = fs::read_to_string(fx.0.join("cgroup.subtree_control")).expect("read");
        assert_eq!(root, "+pids");
        let kp =
            fs::read_to_string(fx.0.join("kubepods.slice/cgroup.subtree_control")).expect("read");
        assert_eq!(kp, "+memory");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("missing.slice"));
    }
}
