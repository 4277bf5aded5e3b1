//! Cgroups as the guard sees them: the `linux.cgroupsPath` containerd hands out, systemd slices,
//! and a read-only view of the host's cgroup tree (v2, v1 or hybrid) with its memory limits.
//!
//! Every path that comes from a spec is hostile until it has been normalised and checked:
//! [`SpecCgroupsPath::parse`] refuses `..`, NUL, over-long names and invalid slice names before any
//! file is touched, and [`CgroupTree`] refuses to follow a symlink inside the tree.

pub mod files;
mod oom;
mod path;
mod proc;
mod spec_path;
mod systemd;
mod tree;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use oom::OomCounter;
pub use path::CgroupPath;
pub use proc::ProcCgroups;
pub use spec_path::SpecCgroupsPath;
pub use systemd::{expand_slice, SystemdPath};
pub use tree::{
    parse_limit_in_bytes, parse_memory_max, CgroupLayout, CgroupTree, EffectiveLimit,
    DEFAULT_CGROUP_ROOT,
};

/// What can go wrong reading a cgroup path or tree. Each variant names the path or file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A path from the spec (or given by an operator) that the guard will not use.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A component of a cgroup path is a symlink: cgroupfs has none, so following it could lead
    /// anywhere.
    #[error("{} is a symlink; a cgroup filesystem has none, refusing to follow it", path.display())]
    Symlink { path: PathBuf },

    /// Something at a cgroup's path (or its limit file's) of a kind cgroupfs does not have there:
    /// a file where a cgroup directory belongs, a FIFO or directory for a limit file.
    #[error(
        "{} is {found}, not {expected}; the cgroup tree is not what a cgroup filesystem holds",
        path.display()
    )]
    Unexpected {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },

    /// A cgroup file holds something that is not a limit.
    #[error("{} holds {content:?}, which is not a memory limit", file.display())]
    Garbage { file: PathBuf, content: String },

    /// The cgroup does not exist in the tree.
    #[error("cgroup {cgroup} does not exist under {}", root.display())]
    Missing { cgroup: String, root: PathBuf },

    /// The directory is not a cgroup filesystem the guard knows.
    #[error(
        "{}: no cgroup filesystem found (neither cgroup.controllers for v2 nor memory/ for v1); \
         point --cgroup-root at the cgroup mount",
        root.display()
    )]
    NoCgroupFs { root: PathBuf },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<CgroupError> for crate::Error {
    fn from(e: CgroupError) -> Self {
        match e {
            CgroupError::InvalidPath { path, reason } => {
                crate::Error::invalid("linux.cgroupsPath", format!("{path:?}: {reason}"))
            }
            CgroupError::Io {
                action: _,
                path,
                source,
            } => crate::Error::io("cgroup file", path, source),
            other => crate::Error::Cgroup(other),
        }
    }
}

/// The error for a path the guard will not use; shared by every path parser here.
pub(crate) fn invalid(path: &str, reason: &str) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// An amount of memory in bytes. Serialized as a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

/// The page size the kernel rounds memory limits to on the hosts the guard runs on (x86_64,
/// arm64 with 4 KiB pages). Limits written to `memory.max` read back rounded down to it.
pub const PAGE_SIZE: u64 = 4096;

impl Bytes {
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Rounded down to a whole page, as the kernel stores a limit.
    pub const fn page_floor(self) -> Bytes {
        Bytes(self.0 / PAGE_SIZE * PAGE_SIZE)
    }
}

impl fmt::Display for Bytes {
    /// `256 MiB`, `4 GiB`, or the exact number when it is not a whole unit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// A cgroup's memory limit: a number of bytes, or none (`max` in v2, the huge "unlimited" value
/// in v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoryLimit {
    Unlimited,
    Limited(Bytes),
}

impl MemoryLimit {
    pub fn bytes(self) -> Option<Bytes> {
        match self {
            MemoryLimit::Unlimited => None,
            MemoryLimit::Limited(b) => Some(b),
        }
    }

    pub fn is_limited(self) -> bool {
        matches!(self, MemoryLimit::Limited(_))
    }

    /// The tighter of two limits.
    pub fn min(self, other: MemoryLimit) -> MemoryLimit {
        match (self, other) {
            (MemoryLimit::Limited(a), MemoryLimit::Limited(b)) => MemoryLimit::Limited(a.min(b)),
            (MemoryLimit::Limited(a), MemoryLimit::Unlimited)
            | (MemoryLimit::Unlimited, MemoryLimit::Limited(a)) => MemoryLimit::Limited(a),
            (MemoryLimit::Unlimited, MemoryLimit::Unlimited) => MemoryLimit::Unlimited,
        }
    }
}

impl From<Option<Bytes>> for MemoryLimit {
    fn from(b: Option<Bytes>) -> Self {
        b.map_or(MemoryLimit::Unlimited, MemoryLimit::Limited)
    }
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryLimit::Unlimited => f.write_str("unlimited"),
            MemoryLimit::Limited(b) => b.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(Bytes(256 << 20).to_string(), "256 MiB");
        assert_eq!(Bytes(4 << 30).to_string(), "4 GiB");
        assert_eq!(Bytes(1536 << 20).to_string(), "1536 MiB");
        assert_eq!(Bytes(1000).to_string(), "1000 bytes");
        assert_eq!(Bytes(0).to_string(), "0 bytes");
        assert_eq!(Bytes(268435457).page_floor(), Bytes(268435456));
    }

    #[test]
    fn the_tighter_limit_wins() {
        let a = MemoryLimit::Limited(Bytes(1));
        let b = MemoryLimit::Limited(Bytes(2));
        assert_eq!(a.min(b), a);
        assert_eq!(b.min(MemoryLimit::Unlimited), b);
        assert_eq!(
            MemoryLimit::Unlimited.min(MemoryLimit::Unlimited),
            MemoryLimit::Unlimited
        );
    }
}
