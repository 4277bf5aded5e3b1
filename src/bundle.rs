//! The bundle's config.json: read with oci-spec for what the shim needs to know, and kept as JSON
//! for what it changes, so fields oci-spec does not model survive a rewrite untouched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fsread::{read_regular_file, Symlinks, SPEC_MAX};
use crate::guard::SpecEdit;

/// A bundle's config.json, read and edited as one value.
pub struct BundleSpec {
    dir: PathBuf,
    path: PathBuf,
    raw: Value,
    spec: Spec,
    annotations: HashMap<String, String>,
    /// Edited since it was read or last written: [`BundleSpec::save_if_changed`] writes it.
    changed: bool,
}

impl BundleSpec {
    pub fn load(bundle: &Path) -> Result<Self> {
        let path = bundle.join("config.json");
        // A symlink is followed: a bundle's files may be links legitimately.
        let bytes = read_regular_file(&path, SPEC_MAX, Symlinks::Follow)
            .map_err(|e| Error::io("reading", &path, e))?;
        Self::from_bytes(bundle, &bytes)
    }

    /// The bundle `bundle` whose config.json holds `bytes`, as [`BundleSpec::load`] reads it;
    /// nothing is read from or written to the bundle.
    pub fn from_bytes(bundle: &Path, bytes: &[u8]) -> Result<Self> {
        let path = bundle.join("config.json");
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(path.display().to_string(), format!("not valid JSON: {e}"))
        })?;
        // Read from the JSON value in place: a copy of the whole tree would cost more than the
        // parse itself.
        let spec = Spec::deserialize(&raw).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("not a valid OCI runtime spec: {e}"),
            )
        })?;
        let annotations = spec.annotations().clone().unwrap_or_default();
        Ok(BundleSpec {
            dir: bundle.to_path_buf(),
            path,
            raw,
            spec,
            annotations,
            changed: false,
        })
    }

    /// The bundle directory.
    pub fn bundle(&self) -> &Path {
        &self.dir
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn annotations(&self) -> &HashMap<String, String> {
        &self.annotations
    }

    /// Applies the guard's edits to the JSON runsc will read, and to the parsed view.
    pub fn apply(&mut self, edits: &[SpecEdit]) -> Result<()> {
        for edit in edits {
            edit.apply_to(&mut self.raw);
        }
        self.changed |= !edits.is_empty();
        self.reparse("applying the guard's edits")?;
        self.annotations = self.spec.annotations().clone().unwrap_or_default();
        Ok(())
    }

    /// Edits the JSON runsc will read; `edit` says whether it changed anything, or why the spec
    /// cannot be used (an error about its annotations). The parsed view follows; nothing is
    /// written before [`BundleSpec::save_if_changed`].
    pub fn edit_raw(
        &mut self,
        edit: impl FnOnce(&mut Value) -> std::result::Result<bool, String>,
    ) -> Result<bool> {
        let mut raw = self.raw.clone();
        let changed =
            edit(&mut raw).map_err(|reason| Error::invalid("config.json annotations", reason))?;
        if changed {
            self.raw = raw;
            self.changed = true;
            self.reparse("rewriting the pod's volumes")?;
            self.annotations = self.spec.annotations().clone().unwrap_or_default();
        }
        Ok(changed)
    }

    fn reparse(&mut self, what: &str) -> Result<()> {
        // Other: the raw document parsed as a Spec before the shim edited it, so failing now is
        // the shim's own edit gone wrong, not bad input from containerd.
        self.spec = Spec::deserialize(&self.raw)
            .map_err(|e| Error::Other(format!("{what} in config.json: {e}")))?;
        Ok(())
    }

    /// Writes config.json back when it was edited: once per Create, however many steps edited
    /// it.
    pub fn save_if_changed(&mut self) -> Result<()> {
        if self.changed {
            self.save()?;
            self.changed = false;
        }
        Ok(())
    }

    /// Writes config.json back (atomically: runsc must never read half a spec).
    pub fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        // Other: a JSON value always encodes; a failure is a broken invariant.
        let text = serde_json::to_vec(&self.raw)
            .map_err(|e| Error::Other(format!("encoding config.json: {e}")))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io("replacing", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsread::testing::{fifo, within_two_seconds};

    #[test]
    fn a_fifo_in_place_of_config_json_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path(), "config.json");
        let bundle = dir.path().to_path_buf();
        let err = within_two_seconds(move || BundleSpec::load(&bundle).map(|_| ()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("reading {}: a FIFO, not a regular file", path.display())
        );
    }

    #[test]
    fn edits_keep_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},
               "x-future-field":{"keep":true},"linux":{"cgroupsPath":"/kubepods/pod1/c"}}"#,
        )
        .unwrap();
        let mut s = BundleSpec::load(dir.path()).unwrap();
        s.apply(&[
            SpecEdit::SetCgroupParent {
                from: None,
                to: crate::cgroup::CgroupPath::parse("/kubepods/pod1").unwrap(),
            },
            SpecEdit::SetMemoryLimit {
                from: None,
                to: crate::cgroup::Bytes(268435456),
            },
        ])
        .unwrap();
        s.save().unwrap();
        let back: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(back["x-future-field"]["keep"], true);
        assert_eq!(back["linux"]["resources"]["memory"]["limit"], 268435456u64);
        assert_eq!(
            back["annotations"]["dev.gvisor.spec.cgroup-parent"],
            "/kubepods/pod1"
        );
        let again = BundleSpec::load(dir.path()).unwrap();
        assert_eq!(
            again
                .spec()
                .linux()
                .as_ref()
                .unwrap()
                .cgroups_path()
                .as_ref()
                .unwrap(),
            Path::new("/kubepods/pod1/c")
        );
    }

    #[test]
    fn malformed_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = BundleSpec::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(dir.path().join("config.json"), r#"{"process": 5}"#).unwrap();
        let err = BundleSpec::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains("OCI runtime spec"), "{err}");
    }
}
