//! The decision kept in the bundle (`<bundle>/runsc-guard.json`), so `runsc-guard show` can
//! tell an operator later what the guard decided for a container and what it found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::relax::RelaxTarget;
use super::verify::Verification;
use crate::cgroup::Bytes;
use crate::error::{Error, Result};
use crate::fsread::{read_regular_to_string, Symlinks, RECORD_MAX};

pub const RECORD_FILE: &str = "runsc-guard.json";

/// The plan, and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRecord {
    pub plan: Plan,
    /// The check after `runsc create`; None when it did not run (guard off, refused before
    /// create, or create failed).
    pub verification: Option<Verification>,
    /// Whether the leaf's limit was relaxed after boot.
    pub relaxed: bool,
    /// Why the relaxation failed, if it did.
    pub relax_error: Option<String>,
    /// The last Update's change to the sandbox's cgroup (a sandbox's record only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<ResourceUpdate>,
}

impl GuardRecord {
    pub fn new(plan: Plan) -> Self {
        GuardRecord {
            plan,
            verification: None,
            relaxed: false,
            relax_error: None,
            update: None,
        }
    }

    pub fn path(bundle: &Path) -> PathBuf {
        bundle.join(RECORD_FILE)
    }

    /// Writes the record into the bundle, atomically: a reader sees the old record or the new
    /// one, never half of it.
    pub fn write(&self, bundle: &Path) -> Result<()> {
        let path = Self::path(bundle);
        let tmp = bundle.join(format!(".{RECORD_FILE}.tmp"));
        // Other: the record always encodes (string keys, no custom serializer); a failure is a
        // broken invariant, nothing a caller could act on.
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Other(format!("cannot encode the guard record: {e}")))?;
        std::fs::write(&tmp, json).map_err(|e| Error::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))
    }

    /// Reads the record a shim left in the bundle.
    pub fn read(bundle: &Path) -> Result<Self> {
        let path = Self::path(bundle);
        let text = read_regular_to_string(&path, RECORD_MAX, Symlinks::Follow).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(format!(
                    "{}: no guard record (the container was not created by runsc-guard's shim, \
                     or not yet)",
                    path.display()
                ))
            } else {
                Error::io("cannot read", &path, e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("is not a guard record: {e}"),
            )
        })
    }
}

/// What an Update changed on the host, kept in the sandbox's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUpdate {
    /// The container whose Update it was (the sandbox's, or one joining it).
    pub container_id: String,
    /// The scope or cgroup that was changed.
    pub target: RelaxTarget,
    /// Its memory limit before.
    pub memory_from: Option<Bytes>,
    /// Its memory limit now.
    pub memory_to: Bytes,
    /// The pod's bound it was checked against.
    pub pod_bound: Option<Bytes>,
    /// What became of the guest's own resources (`runsc update`), once the shim knows.
    pub guest: Option<String>,
}
