//! What the `delete` action needs after the shim is gone, kept in the bundle.
//!
//! containerd runs `containerd-shim-runsc-v1 delete` in a fresh process when the shim died; that
//! process only has the bundle. Create records here which runsc and which flags the container was
//! created with, so cleanup talks to the same runsc state root. gVisor's shim had the same file and
//! a bug that made it ignore it (value receivers), so its cleanup always used the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsread::{read_regular_file, Symlinks, RECORD_MAX};
use crate::runsc::GlobalFlags;

const FILE: &str = "runsc-shim.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
    pub flags: BTreeMap<String, String>,
}

impl ShimState {
    pub fn new(binary: &Path, flags: &GlobalFlags) -> Self {
        ShimState {
            binary: binary.to_path_buf(),
            root: flags.root.clone(),
            log: flags.log.clone(),
            flags: flags.extra.clone(),
        }
    }

    pub fn global_flags(&self) -> GlobalFlags {
        GlobalFlags {
            root: self.root.clone(),
            log: self.log.clone(),
            extra: self.flags.clone(),
        }
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join(FILE);
        // Other: this struct always encodes (string keys, no custom serializer); a failure is a
        // broken invariant, nothing a caller could act on.
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Other(format!("encoding {FILE}: {e}")))?;
        std::fs::write(&path, text).map_err(|e| Error::io("writing", path, e))
    }

    /// The saved state, or None when the bundle has none (Create never got that far).
    pub fn load(bundle: &Path) -> Result<Option<Self>> {
        let path = bundle.join(FILE);
        match read_regular_file(&path, RECORD_MAX, Symlinks::Follow) {
            Ok(bytes) => {
                let state: ShimState = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
                // The flags become runsc arguments again: held to what Create accepted.
                for (key, value) in &state.flags {
                    crate::options::check_flag(key, value).map_err(|reason| {
                        Error::invalid(format!("{} flag {key:?}", path.display()), reason)
                    })?;
                }
                Ok(Some(state))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    pub fn remove(bundle: &Path) {
        let _ = std::fs::remove_file(bundle.join(FILE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsread::testing::{fifo, within_two_seconds};

    #[test]
    fn a_fifo_in_place_of_the_state_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path(), FILE);
        let bundle = dir.path().to_path_buf();
        let err = within_two_seconds(move || ShimState::load(&bundle).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("a FIFO, not a regular file"), "{err}");
    }

    #[test]
    fn round_trip_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ShimState::load(dir.path()).unwrap(), None);
        let flags = GlobalFlags::new(
            "/run/r/ns",
            dir.path(),
            [("systemd-cgroup".to_string(), "true".to_string())].into(),
        );
        let s = ShimState::new(Path::new("/usr/bin/runsc"), &flags);
        s.save(dir.path()).unwrap();
        let back = ShimState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.global_flags(), flags);
        ShimState::remove(dir.path());
        assert_eq!(ShimState::load(dir.path()).unwrap(), None);
    }

    #[test]
    fn flags_create_would_refuse_are_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        for (key, value) in [
            ("root", "/elsewhere"),
            ("a=b", "1"),
            ("debug", "x\n--root=/y"),
        ] {
            let flags = GlobalFlags::new(
                "/run/r/ns",
                dir.path(),
                [(key.to_string(), value.to_string())].into(),
            );
            ShimState::new(Path::new("/usr/bin/runsc"), &flags)
                .save(dir.path())
                .unwrap();
            let err = ShimState::load(dir.path()).unwrap_err().to_string();
            assert!(err.contains(FILE), "{err}");
        }
    }
}
