//! The shim daemon's own place on the host: runsc.toml's `shim_cgroup` and a low OOM score.
//!
//! The daemon applies both to itself once its log is open. `start` must never do it: containerd
//! 1.6 and 1.7 read everything `start` writes, stdout and stderr together, as the socket address,
//! so a warning there breaks every container. A failure is a warning in the shim log, never a
//! failure of the shim: without CAP_SYS_RESOURCE (a user namespace, a restricted host) the score
//! cannot be lowered, which containerd's own shims also only warn about.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cgroup::{CgroupLayout, CgroupPath, CgroupTree};

/// runsc.toml's `shim_cgroup`, handed from `start` to the daemon (only `start` sees the options).
pub const SHIM_CGROUP_ENV: &str = "RUNSC_GUARD_SHIM_CGROUP";

/// gVisor's shim runs at -999 so the node's OOM killer takes the workload, never the shim that
/// reports its exit.
pub const SHIM_OOM_SCORE_ADJ: &str = "-999";

/// Moves the process `pid` into `cgroup` (a path from the cgroup root) of the tree at `root`: the
/// unified hierarchy on v2, every v1 hierarchy that has the cgroup on v1 (as containerd's shims
/// do). The cgroup must exist: the shim never creates cgroups for itself.
pub fn join_cgroup(root: &Path, cgroup: &str, pid: u32) -> Result<(), String> {
    let path = CgroupPath::parse(cgroup)
        .map_err(|e| format!("shim_cgroup {cgroup:?} is not usable: {e}"))?;
    let tree = CgroupTree::detect(root).map_err(|e| format!("shim_cgroup {cgroup:?}: {e}"))?;
    let dirs: Vec<PathBuf> = match tree.layout() {
        CgroupLayout::Unified => vec![under(root, &path)],
        CgroupLayout::Legacy | CgroupLayout::Hybrid => v1_hierarchies(root)
            .into_iter()
            .map(|h| under(&h, &path))
            .filter(|d| d.is_dir())
            .collect(),
    };
    if dirs.is_empty() {
        return Err(format!(
            "shim_cgroup {cgroup:?} exists in no cgroup hierarchy under {}: create it or \
             remove shim_cgroup from runsc.toml",
            root.display()
        ));
    }
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        OpenOptions::new()
            .write(true)
            .open(&procs)
            .and_then(|mut f| f.write_all(pid.to_string().as_bytes()))
            .map_err(|e| {
                format!(
                    "moving the shim (pid {pid}) into shim_cgroup {cgroup:?} ({}): {e}",
                    procs.display()
                )
            })?;
    }
    Ok(())
}

/// Writes the OOM score adjustment of `pid` under the proc filesystem at `proc_root`.
pub fn set_oom_score_adj(proc_root: &Path, pid: u32, value: &str) -> Result<(), String> {
    let file = proc_root.join(pid.to_string()).join("oom_score_adj");
    OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| {
            format!(
                "setting the shim's oom_score_adj to {value} ({}): {e}; the shim runs with the \
                 score it inherited",
                file.display()
            )
        })
}

/// What the daemon applies to itself at start-up; every failure comes back as a warning text.
pub fn confine_self(cgroup_root: &Path, proc_root: &Path, shim_cgroup: &str) -> Vec<String> {
    let pid = std::process::id();
    let mut warnings = Vec::new();
    if !shim_cgroup.is_empty() {
        if let Err(e) = join_cgroup(cgroup_root, shim_cgroup, pid) {
            warnings.push(e);
        }
    }
    if let Err(e) = set_oom_score_adj(proc_root, pid, SHIM_OOM_SCORE_ADJ) {
        warnings.push(e);
    }
    warnings
}

fn under(hierarchy: &Path, cgroup: &CgroupPath) -> PathBuf {
    let mut dir = hierarchy.to_path_buf();
    dir.extend(cgroup.components());
    dir
}

/// The v1 hierarchies: the directories at the root (`memory`, `cpu,cpuacct`, `pids`, ...),
/// without the v2 one of the hybrid layout and without the aliases (`cpu` -> `cpu,cpuacct`).
fn v1_hierarchies(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "unified")
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn v2_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        fs::create_dir_all(dir.path().join("system.slice/shims")).unwrap();
        fs::write(dir.path().join("system.slice/shims/cgroup.procs"), "").unwrap();
        dir
    }

    #[test]
    fn joins_an_existing_v2_cgroup() {
        let tree = v2_tree();
        join_cgroup(tree.path(), "/system.slice/shims", 4242).unwrap();
        let procs = fs::read_to_string(tree.path().join("system.slice/shims/cgroup.procs"));
        assert_eq!(procs.unwrap(), "4242");
    }

    #[test]
    fn a_missing_or_bad_cgroup_is_an_error_that_names_it() {
        let tree = v2_tree();
        let err = join_cgroup(tree.path(), "/system.slice/nope", 1).unwrap_err();
        assert!(err.contains("/system.slice/nope"), "{err}");
        let err = join_cgroup(tree.path(), "/a/../b", 1).unwrap_err();
        assert!(err.contains("shim_cgroup"), "{err}");
        assert!(!tree.path().join("system.slice/nope").exists());
    }

    #[test]
    fn joins_every_v1_hierarchy_that_has_the_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        for h in ["memory", "pids", "cpu,cpuacct"] {
            fs::create_dir_all(dir.path().join(h).join("shims")).unwrap();
            fs::write(dir.path().join(h).join("shims/cgroup.procs"), "").unwrap();
        }
        fs::create_dir_all(dir.path().join("devices")).unwrap();
        join_cgroup(dir.path(), "/shims", 7).unwrap();
        for h in ["memory", "pids", "cpu,cpuacct"] {
            let procs = fs::read_to_string(dir.path().join(h).join("shims/cgroup.procs"));
            assert_eq!(procs.unwrap(), "7", "{h}");
        }
        assert!(!dir.path().join("devices/shims").exists());
        let err = join_cgroup(dir.path(), "/other", 7).unwrap_err();
        assert!(err.contains("no cgroup hierarchy"), "{err}");
    }

    #[test]
    fn failures_are_warnings() {
        let tree = v2_tree();
        let proc_root = tempfile::tempdir().unwrap();
        let warnings = confine_self(tree.path(), proc_root.path(), "/missing");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("/missing"), "{warnings:?}");
        assert!(warnings[1].contains("oom_score_adj"), "{warnings:?}");

        let pid = std::process::id();
        fs::create_dir_all(proc_root.path().join(pid.to_string())).unwrap();
        fs::write(proc_root.path().join(format!("{pid}/oom_score_adj")), "0").unwrap();
        assert!(confine_self(tree.path(), proc_root.path(), "").is_empty());
        let score = fs::read_to_string(proc_root.path().join(format!("{pid}/oom_score_adj")));
        assert_eq!(score.unwrap(), SHIM_OOM_SCORE_ADJ);
    }
}
