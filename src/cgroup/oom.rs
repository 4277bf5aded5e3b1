//! Whether the host's OOM killer hit a pod: the `oom_kill` counter of the pod cgroup.
//!
//! The pod's limit is on the pod cgroup, so the kill is charged there; the sandbox's own leaf
//! counts `oom_kill` too but systemd removes a scope as soon as its last process dies, taking
//! its `memory.events` along (containerd/containerd#12819). The pod cgroup outlives the sandbox,
//! and v2 counts `oom_kill` over the subtree. So the shim reads the pod cgroup's counter at
//! create and again when the container's exit is known: an increase means the sandbox (every
//! container of the pod shares it) was OOM-killed, which is reported as TaskOOM before TaskExit
//! and exit status 137, so Kubernetes shows `OOMKilled` (google/gvisor#2433, #9723).

use std::path::{Path, PathBuf};

use super::{CgroupLayout, CgroupPath, CgroupTree};

/// The pod cgroup's `oom_kill` counter, as it was when the container was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomCounter {
    file: PathBuf,
    baseline: u64,
}

impl OomCounter {
    /// Starts counting for the pod cgroup `pod` (None when its counter cannot be read).
    pub fn start(tree: &CgroupTree, pod: &CgroupPath) -> Option<Self> {
        let file = match tree.layout() {
            CgroupLayout::Unified => tree.memory_dir(pod).join("memory.events"),
            CgroupLayout::Legacy | CgroupLayout::Hybrid => {
                tree.memory_dir(pod).join("memory.oom_control")
            }
        };
        let baseline = read_oom_kills(&file)?;
        Some(OomCounter { file, baseline })
    }

    /// Whether the OOM killer has killed in the pod since the container was created.
    pub fn fired(&self) -> bool {
        read_oom_kills(&self.file).is_some_and(|n| n > self.baseline)
    }
}

/// The `oom_kill N` line of a `memory.events` (v2) or `memory.oom_control` (v1) file.
fn read_oom_kills(file: &Path) -> Option<u64> {
    parse_oom_kills(&super::files::read_file(file)?)
}

fn parse_oom_kills(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("oom_kill"))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats() {
        assert_eq!(
            parse_oom_kills("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"),
            Some(5)
        );
        assert_eq!(parse_oom_kills("oom 1\n"), None);
        assert_eq!(parse_oom_kills("oom_kill many\n"), None);
    }

    #[test]
    fn an_increase_since_the_start_fires() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "memory\n").unwrap();
        let pod = root.path().join("kubepods.slice/pod.slice");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(pod.join("memory.events"), "oom 0\noom_kill 1\n").unwrap();
        let tree = CgroupTree::detect(root.path()).unwrap();
        let path = CgroupPath::parse("/kubepods.slice/pod.slice").unwrap();
        let counter = OomCounter::start(&tree, &path).unwrap();
        assert!(!counter.fired());
        std::fs::write(pod.join("memory.events"), "oom 1\noom_kill 2\n").unwrap();
        assert!(counter.fired());
        let missing = CgroupPath::parse("/kubepods.slice/gone.slice").unwrap();
        assert_eq!(OomCounter::start(&tree, &missing), None);
    }
}
