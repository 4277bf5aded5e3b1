//! A read-mostly view of a cgroup tree: which layout the kernel mounted, whether a cgroup
//! exists, and its memory limit. The root is a parameter so tests (and `runsc-guard plan`) can
//! point it at a fixture directory; the shim uses [`DEFAULT_CGROUP_ROOT`].

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Bytes, CgroupError, CgroupPath, MemoryLimit};
use crate::fsread::kind_of;

pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// v1's "no limit" is the largest page-rounded signed 64-bit value (9223372036854771712 with
/// 4 KiB pages, a little less with 64 KiB pages). Anything from 2^62 (4 EiB) up is no real
/// machine's memory, so it is read as unlimited whatever the page size.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// How the kernel's cgroup filesystems are mounted at the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// cgroup v2 only: `ROOT/cgroup.controllers` exists.
    Unified,
    /// cgroup v1: one hierarchy per controller, memory at `ROOT/memory/`.
    Legacy,
    /// v1 controllers plus a v2 hierarchy at `ROOT/unified` (systemd's hybrid mode). Memory
    /// limits live in the v1 memory hierarchy, and runsc treats the host as v1.
    Hybrid,
}

impl fmt::Display for CgroupLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupLayout::Unified => "cgroup v2",
            CgroupLayout::Legacy => "cgroup v1",
            CgroupLayout::Hybrid => "hybrid cgroups (v1 controllers, which runsc uses)",
        })
    }
}

impl CgroupLayout {
    /// Whether runsc sees cgroup v2 (its `IsOnlyV2`): only then does it use v2 files and the
    /// systemd driver.
    pub fn is_unified(self) -> bool {
        self == CgroupLayout::Unified
    }

    /// The file holding a cgroup's memory limit in this layout.
    pub fn memory_limit_file_name(self) -> &'static str {
        match self {
            CgroupLayout::Unified => "memory.max",
            CgroupLayout::Legacy | CgroupLayout::Hybrid => "memory.limit_in_bytes",
        }
    }
}

/// A cgroup tree mounted at `root`.
#[derive(Debug, Clone)]
pub struct CgroupTree {
    root: PathBuf,
    layout: CgroupLayout,
}

/// The memory bound on a cgroup: the smallest limit on the way up to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveLimit {
    /// The smallest limit of the cgroup and its ancestors.
    pub limit: MemoryLimit,
    /// The file the smallest limit was read from (the one nearest the cgroup on a tie); None
    /// when nothing is limited.
    pub source: Option<PathBuf>,
    /// The cgroup's own limit.
    pub own: MemoryLimit,
}

impl CgroupTree {
    /// Detects the layout at `root` as the kernel lays it out: v2 when `root/cgroup.controllers`
    /// exists, v1 when `root/memory/` does, hybrid when v1 has a v2 hierarchy at `root/unified`.
    pub fn detect(root: impl Into<PathBuf>) -> Result<Self, CgroupError> {
        let root = root.into();
        let layout = if root.join("cgroup.controllers").is_file() {
            CgroupLayout::Unified
        } else if root.join("memory").is_dir() {
            if root.join("unified").join("cgroup.controllers").is_file() {
                CgroupLayout::Hybrid
            } else {
                CgroupLayout::Legacy
            }
        } else {
            return Err(CgroupError::NoCgroupFs { root });
        };
        Ok(CgroupTree { root, layout })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn layout(&self) -> CgroupLayout {
        self.layout
    }

    /// The directory of the hierarchy that holds memory limits.
    fn memory_hierarchy(&self) -> PathBuf {
        match self.layout {
            CgroupLayout::Unified => self.root.clone(),
            CgroupLayout::Legacy | CgroupLayout::Hybrid => self.root.join("memory"),
        }
    }

    /// The cgroup's directory in the memory hierarchy.
    pub fn memory_dir(&self, cgroup: &CgroupPath) -> PathBuf {
        let mut dir = self.memory_hierarchy();
        dir.extend(cgroup.components());
        dir
    }

    /// The file holding the cgroup's own memory limit.
    pub fn memory_limit_file(&self, cgroup: &CgroupPath) -> PathBuf {
        self.memory_dir(cgroup)
            .join(self.layout.memory_limit_file_name())
    }

    /// Walks the cgroup's directories from the hierarchy down and refuses a symlink or a file on
    /// the way: a cgroup filesystem has neither there, so one means the tree is not what it
    /// claims to be (and a file is no "missing cgroup"). Returns whether the whole path exists.
    fn walk(&self, cgroup: &CgroupPath) -> Result<bool, CgroupError> {
        let mut dir = self.memory_hierarchy();
        for component in cgroup.components() {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(CgroupError::Symlink { path: dir });
                }
                Ok(m) if m.is_dir() => {}
                Ok(m) => {
                    return Err(CgroupError::Unexpected {
                        path: dir,
                        found: kind_of(&m.file_type()),
                        expected: "a cgroup directory",
                    })
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(source) => {
                    return Err(CgroupError::Io {
                        action: "inspect",
                        path: dir,
                        source,
                    })
                }
            }
        }
        Ok(true)
    }

    /// Whether the cgroup exists (in the memory hierarchy).
    pub fn exists(&self, cgroup: &CgroupPath) -> Result<bool, CgroupError> {
        self.walk(cgroup)
    }

    /// The cgroup's own memory limit. A cgroup whose directory exists but has no limit file has
    /// no memory controller enabled (its parent does not delegate it), so it limits nothing.
    pub fn memory_limit(&self, cgroup: &CgroupPath) -> Result<MemoryLimit, CgroupError> {
        if !self.walk(cgroup)? {
            return Err(CgroupError::Missing {
                cgroup: cgroup.to_string(),
                root: self.memory_hierarchy(),
            });
        }
        if cgroup.is_root() {
            // The root cgroup has no limit file in v2, and v1's root limit cannot be set.
            return Ok(MemoryLimit::Unlimited);
        }
        let file = self.memory_limit_file(cgroup);
        let content = match read_limit_file(&file) {
            Ok(c) => c,
            Err(CgroupError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(MemoryLimit::Unlimited)
            }
            Err(e) => return Err(e),
        };
        let parsed = match self.layout {
            CgroupLayout::Unified => parse_memory_max(&content),
            CgroupLayout::Legacy | CgroupLayout::Hybrid => parse_limit_in_bytes(&content),
        };
        parsed.ok_or_else(|| CgroupError::Garbage {
            file,
            content: content.chars().take(64).collect(),
        })
    }

    /// The bound on the cgroup: the smallest limit of it and its ancestors up to the root (the
    /// pod, its QoS class, kubepods with the node's allocatable memory).
    pub fn effective_memory_limit(
        &self,
        cgroup: &CgroupPath,
    ) -> Result<EffectiveLimit, CgroupError> {
        let own = self.memory_limit(cgroup)?;
        let mut best = EffectiveLimit {
            limit: own,
            source: own.is_limited().then(|| self.memory_limit_file(cgroup)),
            own,
        };
        for ancestor in cgroup.ancestors_to_root().into_iter().skip(1) {
            let limit = self.memory_limit(&ancestor)?;
            if let (MemoryLimit::Limited(b), current) = (limit, best.limit) {
                if current.bytes().is_none_or(|c| b < c) {
                    best.limit = limit;
                    best.source = Some(self.memory_limit_file(&ancestor));
                }
            }
        }
        Ok(best)
    }

    /// Sets the cgroup's own memory limit. The file must exist: this never creates a cgroup.
    pub fn write_memory_limit(&self, cgroup: &CgroupPath, limit: Bytes) -> Result<(), CgroupError> {
        use std::io::Write;
        if !self.walk(cgroup)? || cgroup.is_root() {
            return Err(CgroupError::Missing {
                cgroup: cgroup.to_string(),
                root: self.memory_hierarchy(),
            });
        }
        let file = self.memory_limit_file(cgroup);
        let io = |source| CgroupError::Io {
            action: "write",
            path: file.clone(),
            source,
        };
        // O_TRUNC as runc writes cgroup files: harmless on cgroupfs, right on a fixture.
        let mut f = open_cgroup_file(
            &file,
            fs::OpenOptions::new().write(true).truncate(true),
            "a limit file",
        )?;
        f.write_all(limit.get().to_string().as_bytes()).map_err(io)
    }
}

/// A limit file is a few bytes; more is garbage, and is not read whole.
const LIMIT_FILE_MAX: u64 = 4096;

/// Opens a cgroup file (a limit file, or one of the stats' files in `files.rs`) without following
/// a symlink (cgroupfs has none; a fixture tree's would lead anywhere) and without blocking on a
/// FIFO, and refuses anything but a regular file; `expected` names the file in that refusal.
pub(super) fn open_cgroup_file(
    path: &Path,
    options: &mut fs::OpenOptions,
    expected: &'static str,
) -> Result<fs::File, CgroupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |action, source| CgroupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                CgroupError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                io("open", e)
            }
        })?;
    let kind = file.metadata().map_err(|e| io("inspect", e))?.file_type();
    if !kind.is_file() {
        return Err(CgroupError::Unexpected {
            path: path.to_path_buf(),
            found: kind_of(&kind),
            expected,
        });
    }
    Ok(file)
}

fn read_limit_file(path: &Path) -> Result<String, CgroupError> {
    use std::io::Read;
    let file = open_cgroup_file(path, fs::OpenOptions::new().read(true), "a limit file")?;
    let mut bytes = Vec::new();
    file.take(LIMIT_FILE_MAX)
        .read_to_end(&mut bytes)
        .map_err(|source| CgroupError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// v2 `memory.max`: `max` or a number of bytes.
pub fn parse_memory_max(content: &str) -> Option<MemoryLimit> {
    match content.trim() {
        "max" => Some(MemoryLimit::Unlimited),
        n => n.parse().ok().map(|b| MemoryLimit::Limited(Bytes(b))),
    }
}

/// v1 `memory.limit_in_bytes`: a number, where the huge page-rounded maximum means none. `-1`
/// is what one writes for "no limit"; accept it read back too.
pub fn parse_limit_in_bytes(content: &str) -> Option<MemoryLimit> {
    match content.trim() {
        "-1" => Some(MemoryLimit::Unlimited),
        n => n.parse::<u64>().ok().map(|b| {
            if b >= V1_UNLIMITED_FROM {
                MemoryLimit::Unlimited
            } else {
                MemoryLimit::Limited(Bytes(b))
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CgroupPath {
        CgroupPath::parse(s).unwrap()
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let f = root.join(rel);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, content).unwrap();
    }

    #[test]
    fn detects_each_layout() {
        let v2 = tempfile::tempdir().unwrap();
        write(v2.path(), "cgroup.controllers", "cpu memory\n");
        assert_eq!(
            CgroupTree::detect(v2.path()).unwrap().layout(),
            CgroupLayout::Unified
        );

        let v1 = tempfile::tempdir().unwrap();
        fs::create_dir_all(v1.path().join("memory")).unwrap();
        assert_eq!(
            CgroupTree::detect(v1.path()).unwrap().layout(),
            CgroupLayout::Legacy
        );

        let hybrid = tempfile::tempdir().unwrap();
        fs::create_dir_all(hybrid.path().join("memory")).unwrap();
        write(hybrid.path(), "unified/cgroup.controllers", "");
        assert_eq!(
            CgroupTree::detect(hybrid.path()).unwrap().layout(),
            CgroupLayout::Hybrid
        );

        let none = tempfile::tempdir().unwrap();
        let err = CgroupTree::detect(none.path()).unwrap_err().to_string();
        assert!(err.contains("no cgroup filesystem"), "{err}");
    }

    #[test]
    fn reads_v2_limits() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        write(d.path(), "a/memory.max", "max\n");
        write(d.path(), "a/b/memory.max", "268435456\n");
        write(d.path(), "a/b/c/memory.max", "1073741824\n");
        fs::create_dir_all(d.path().join("a/nolimitfile")).unwrap();
        write(d.path(), "bad/memory.max", "lots\n");
        let t = CgroupTree::detect(d.path()).unwrap();
        assert_eq!(t.memory_limit(&p("/a")).unwrap(), MemoryLimit::Unlimited);
        assert_eq!(
            t.memory_limit(&p("/a/b")).unwrap(),
            MemoryLimit::Limited(Bytes(268435456))
        );
        assert_eq!(
            t.memory_limit(&p("/a/nolimitfile")).unwrap(),
            MemoryLimit::Unlimited
        );
        let eff = t.effective_memory_limit(&p("/a/b/c")).unwrap();
        assert_eq!(eff.limit, MemoryLimit::Limited(Bytes(268435456)));
        assert_eq!(eff.own, MemoryLimit::Limited(Bytes(1073741824)));
        assert_eq!(eff.source, Some(d.path().join("a/b/memory.max")));

        let err = t.memory_limit(&p("/bad")).unwrap_err().to_string();
        assert!(
            err.contains("bad/memory.max") && err.contains("lots"),
            "{err}"
        );
        let err = t.memory_limit(&p("/nope")).unwrap_err().to_string();
        assert!(err.contains("/nope"), "{err}");
        assert!(!t.exists(&p("/nope")).unwrap());
    }

    #[test]
    fn reads_v1_limits_with_the_huge_unlimited_value() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            d.path(),
            "memory/kubepods/memory.limit_in_bytes",
            "8589934592\n",
        );
        write(
            d.path(),
            "memory/kubepods/burstable/memory.limit_in_bytes",
            "9223372036854710272\n",
        );
        write(
            d.path(),
            "memory/kubepods/burstable/pod1/memory.limit_in_bytes",
            "-1\n",
        );
        let t = CgroupTree::detect(d.path()).unwrap();
        assert_eq!(t.layout(), CgroupLayout::Legacy);
        assert_eq!(
            t.memory_limit(&p("/kubepods/burstable")).unwrap(),
            MemoryLimit::Unlimited
        );
        let eff = t
            .effective_memory_limit(&p("/kubepods/burstable/pod1"))
            .unwrap();
        assert_eq!(eff.limit, MemoryLimit::Limited(Bytes(8 << 30)));
        assert_eq!(eff.own, MemoryLimit::Unlimited);
        assert_eq!(
            eff.source,
            Some(d.path().join("memory/kubepods/memory.limit_in_bytes"))
        );
    }

    #[test]
    fn refuses_symlinks_inside_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        write(outside.path(), "memory.max", "max\n");
        fs::create_dir_all(d.path().join("kubepods.slice")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("kubepods.slice/evil.slice"))
            .unwrap();
        let t = CgroupTree::detect(d.path()).unwrap();
        let err = t
            .memory_limit(&p("/kubepods.slice/evil.slice"))
            .unwrap_err();
        assert!(matches!(err, CgroupError::Symlink { .. }), "{err}");
        assert!(t.exists(&p("/kubepods.slice/evil.slice/x")).is_err());
    }

    #[test]
    fn writes_an_existing_limit_file_only() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        write(d.path(), "pod/leaf/memory.max", "268435456\n");
        let t = CgroupTree::detect(d.path()).unwrap();
        t.write_memory_limit(&p("/pod/leaf"), Bytes(335544320))
            .unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("pod/leaf/memory.max")).unwrap(),
            "335544320"
        );
        assert!(t.write_memory_limit(&p("/pod/other"), Bytes(1)).is_err());
        assert!(!d.path().join("pod/other").exists());
    }

    #[test]
    fn limit_files_are_not_read_or_written_through_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        write(outside.path(), "memory.max", "max\n");
        fs::create_dir_all(d.path().join("pod/leaf")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("memory.max"),
            d.path().join("pod/leaf/memory.max"),
        )
        .unwrap();
        let t = CgroupTree::detect(d.path()).unwrap();
        let err = t.memory_limit(&p("/pod/leaf")).unwrap_err();
        assert!(matches!(err, CgroupError::Symlink { .. }), "{err}");
        let err = t.write_memory_limit(&p("/pod/leaf"), Bytes(1)).unwrap_err();
        assert!(matches!(err, CgroupError::Symlink { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("memory.max")).unwrap(),
            "max\n",
            "the file outside the tree is untouched"
        );
    }

    #[test]
    fn a_limit_file_that_is_not_a_file_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        fs::create_dir_all(d.path().join("fifo")).unwrap();
        nix::unistd::mkfifo(
            &d.path().join("fifo/memory.max"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        fs::create_dir_all(d.path().join("dir/memory.max")).unwrap();
        let t = CgroupTree::detect(d.path()).unwrap();
        let err = t.memory_limit(&p("/fifo")).unwrap_err().to_string();
        assert!(
            err.contains("a FIFO") && err.contains("limit file"),
            "{err}"
        );
        let err = t.write_memory_limit(&p("/fifo"), Bytes(1)).unwrap_err();
        assert!(
            matches!(err, CgroupError::Unexpected { .. } | CgroupError::Io { .. }),
            "{err}"
        );
        let err = t.memory_limit(&p("/dir")).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }

    #[test]
    fn a_file_where_the_cgroup_belongs_is_an_error_not_a_missing_cgroup() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        write(d.path(), "pod/leaf", "not a directory\n");
        let t = CgroupTree::detect(d.path()).unwrap();
        let err = t.exists(&p("/pod/leaf")).unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::Unexpected {
                    found: "a file",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("pod/leaf"), "{err}");
        assert!(t.memory_limit(&p("/pod/leaf/x")).is_err());
        assert!(t.write_memory_limit(&p("/pod/leaf"), Bytes(1)).is_err());
        assert_eq!(
            fs::read_to_string(d.path().join("pod/leaf")).unwrap(),
            "not a directory\n"
        );
    }

    #[test]
    fn a_huge_limit_file_is_garbage_not_read_whole() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cgroup.controllers", "memory\n");
        write(d.path(), "big/memory.max", &"1".repeat(1 << 20));
        let t = CgroupTree::detect(d.path()).unwrap();
        let err = t.memory_limit(&p("/big")).unwrap_err();
        assert!(matches!(err, CgroupError::Garbage { .. }), "{err}");
    }
}
