//! Where a process sits in the host's cgroup tree: its `/proc/<pid>/cgroup`.
//!
//! One parser for every reader: the guard's check after create (which cgroup holds the
//! sandbox's memory limit) and the shim's stats (which cgroup's figures a container reports).

use std::collections::BTreeMap;
use std::path::Path;

use super::CgroupLayout;
use crate::error::{Error, Result};

/// A process's cgroups: the v2 path (the `0::` line), and each v1 controller's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    pub unified: Option<String>,
    pub v1: BTreeMap<String, String>,
}

impl ProcCgroups {
    /// Parses `/proc/<pid>/cgroup`: `0::/path` (v2) and `N:ctrl,ctrl:/path` (v1, named
    /// hierarchies such as `name=systemd` included). The kernel writes each hierarchy once; should
    /// a line repeat, the first one counts. A line that is not `id:controllers:path` is skipped.
    pub fn parse(text: &str) -> Self {
        let mut out = ProcCgroups::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                // Only hierarchy 0 is the unified one; an empty controller list elsewhere is
                // not a v2 line.
                if id == "0" && out.unified.is_none() {
                    out.unified = Some(path.to_string());
                }
            } else {
                for c in controllers.split(',') {
                    out.v1
                        .entry(c.to_string())
                        .or_insert_with(|| path.to_string());
                }
            }
        }
        out
    }

    /// Reads `<proc root>/<pid>/cgroup`.
    pub fn of(proc_root: &Path, pid: i32) -> Result<Self> {
        let file = proc_root.join(pid.to_string()).join("cgroup");
        let text = crate::fsread::read_regular_to_string(
            &file,
            crate::fsread::PROC_CGROUP_MAX,
            crate::fsread::Symlinks::Follow,
        )
        .map_err(|e| Error::io("reading the sandbox's cgroup", &file, e))?;
        Ok(Self::parse(&text))
    }

    /// The cgroup that holds the process's memory limit under `layout`: the v2 path on a
    /// unified host, the `memory` controller's on a v1 or hybrid one.
    pub fn memory(&self, layout: CgroupLayout) -> Option<&str> {
        match layout {
            CgroupLayout::Unified => self.unified.as_deref(),
            CgroupLayout::Legacy | CgroupLayout::Hybrid => {
                self.v1.get("memory").map(String::as_str)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsread::testing::{fifo, within_two_seconds};

    #[test]
    fn a_fifo_in_place_of_proc_pid_cgroup_is_refused_at_once() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("42")).unwrap();
        let path = fifo(&root.path().join("42"), "cgroup");
        let proc_root = root.path().to_path_buf();
        let err = within_two_seconds(move || ProcCgroups::of(&proc_root, 42).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "reading the sandbox's cgroup {}: a FIFO, not a regular file",
                path.display()
            )
        );
    }

    #[test]
    fn lines_of_both_versions() {
        let c = ProcCgroups::parse(
            "12:pids:/k/p\n4:cpu,cpuacct:/k/c\n3:memory:/k/m\n1:name=systemd:/s\n0::/u\n",
        );
        assert_eq!(c.unified.as_deref(), Some("/u"));
        assert_eq!(c.v1["cpuacct"], "/k/c");
        assert_eq!(c.v1["cpu"], "/k/c");
        assert_eq!(c.v1["memory"], "/k/m");
        assert_eq!(c.v1["pids"], "/k/p");
        assert_eq!(c.v1["name=systemd"], "/s");
        assert_eq!(c.memory(CgroupLayout::Unified), Some("/u"));
        assert_eq!(c.memory(CgroupLayout::Hybrid), Some("/k/m"));
        assert_eq!(c.memory(CgroupLayout::Legacy), Some("/k/m"));
    }

    #[test]
    fn a_path_may_hold_colons_and_junk_lines_are_skipped() {
        let c = ProcCgroups::parse("garbage\n\n0::/a.slice/b:cri-containerd:c\n5::/not-v2\n");
        assert_eq!(c.unified.as_deref(), Some("/a.slice/b:cri-containerd:c"));
        assert!(c.v1.is_empty());
        let c = ProcCgroups::parse("5::/not-v2\n");
        assert_eq!(c.memory(CgroupLayout::Unified), None);
    }
}
