//! Which release each runsc binary is, as one service the shim's parts share: the guard plans
//! Create for it, the pod asks it whether `runsc update` exists. A binary is asked once per
//! process (callers that ask while the probe runs wait for the same answer), and, given a
//! state root, once per node: the first shim to meet a binary keeps the answer in the state
//! root's cache (`version_cache`) for the others. Nothing else reads or writes that cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use log::{debug, info, warn};
use tokio::sync::OnceCell;

use super::version::{self, resolve_binary, RunscVersion};
use super::version_cache::{self, BinaryId, Lookup};
use super::Executor;
use crate::error::{Error, Result, RunscFailure};

/// A binary as it was found, and the file's identity when it could be read.
type VersionKey = (PathBuf, Option<BinaryId>);

/// The runsc versions this shim has learned, and how it asks for more.
pub struct RunscVersions {
    executor: Arc<dyn Executor>,
    /// One probe per binary: callers that ask while it runs wait for the same answer.
    versions: Mutex<HashMap<VersionKey, Arc<OnceCell<RunscVersion>>>>,
}

impl RunscVersions {
    /// Every probe runs through `executor`: inside the daemon the containerd-shim library reaps
    /// all children, so `std::process::Command::output` would race it.
    pub fn new(executor: Arc<dyn Executor>) -> Self {
        RunscVersions {
            executor,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// The version of a runsc binary, asked once per binary (and again if the file changes).
    pub async fn version(&self, binary_name: &str) -> Result<RunscVersion> {
        self.version_in(binary_name, None).await
    }

    /// The same, sharing the answer with the node's other shims through the cache file in
    /// `state_root` (runsc.toml's `root`, see `runsc::version_cache`): only the first shim to
    /// meet a binary runs `runsc --version`.
    pub async fn version_in(
        &self,
        binary_name: &str,
        state_root: Option<&Path>,
    ) -> Result<RunscVersion> {
        let binary = resolve_binary(binary_name).ok_or_else(|| {
            Error::runsc(
                "--version",
                RunscFailure::BinaryUnavailable,
                format!(
                    "runsc binary {binary_name:?} not found: install runsc or set binary_name in \
                     runsc.toml"
                ),
            )
        })?;
        let id = BinaryId::of(&binary).ok();
        let cell = self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((binary.clone(), id.clone()))
            .or_default()
            .clone();
        let shared = state_root.zip(id.as_ref());
        cell.get_or_try_init(|| async {
            let version = match shared {
                Some((root, id)) => self.shared_version(root, id, &binary).await?,
                None => version::detect(self.executor.as_ref(), &binary).await?,
            };
            if !version.knows_its_release() {
                warn!(
                    "{}: runsc version not recognised ({version}); the guard assumes the oldest \
                     behaviour",
                    binary.display(),
                );
            } else if !version.is_known() {
                info!(
                    "{}: runsc {version}: the guard goes by that release",
                    binary.display(),
                );
            }
            Ok::<_, Error>(version)
        })
        .await
        .cloned()
    }

    /// The version the node's shims keep in `state_root`'s cache for this binary file, or, on a
    /// miss or an untrusted cache, runsc's own answer, then kept there for the next shim.
    async fn shared_version(
        &self,
        state_root: &Path,
        id: &BinaryId,
        binary: &Path,
    ) -> Result<RunscVersion> {
        match version_cache::lookup(state_root, id) {
            Lookup::Hit(version) => return Ok(version),
            Lookup::Ignored(why) => {
                let file = state_root.join(version_cache::CACHE_FILE);
                debug!("{}: not using it ({why}); asking runsc", file.display());
            }
            Lookup::Miss => {}
        }
        let version = version::detect(self.executor.as_ref(), binary).await?;
        remember(state_root, id, binary, &version);
        Ok(version)
    }

    /// Asks a runsc's version now (the binary and state root `start` was configured with, or
    /// the default runsc), so that the pod's first Create finds it known: the probe is a whole
    /// Go start-up (120-190 ms under emulation), made while containerd is still connecting to
    /// the new shim. A failure here is only logged; Create asks again and reports.
    pub async fn warm_up(&self, binary_name: Option<&str>, state_root: Option<&Path>) {
        let binary = binary_name.unwrap_or(crate::options::DEFAULT_BINARY);
        if let Err(e) = self.version_in(binary, state_root).await {
            debug!("warm-up: runsc --version: {e}");
        }
    }
}

/// Shares a probed version with the node's other shims, unless the binary changed while it
/// answered (the answer would then be the new file's, under the old file's key). A failure only
/// costs the next shim a probe.
fn remember(state_root: &Path, id: &BinaryId, binary: &Path, version: &RunscVersion) {
    if BinaryId::of(binary).ok().as_ref() != Some(id) {
        debug!("{}: changed while asked; not cached", binary.display());
        return;
    }
    if let Err(e) = version_cache::store(state_root, id, version) {
        let file = state_root.join(version_cache::CACHE_FILE);
        debug!("{}: cannot keep runsc's version: {e}", file.display());
    }
}
