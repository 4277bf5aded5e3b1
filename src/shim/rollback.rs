//! What a Create has set up so far, as one value that undoes it: a failed Create leaves nothing
//! behind, in the reverse order of the set-up.

use std::path::{Path, PathBuf};

use log::warn;

use crate::runsc::{self, Runsc};
use crate::shim::io::StdioCopies;
use crate::shim::mount;
use crate::shim::state::ShimState;

/// The steps of one Create that have been done, each undone by [`Rollback::undo`].
pub struct Rollback {
    id: String,
    bundle: PathBuf,
    state_saved: bool,
    mounted: bool,
    stdio: Option<StdioCopies>,
    runsc_created: bool,
}

impl Rollback {
    /// Nothing done yet.
    pub fn new(id: &str, bundle: &Path) -> Self {
        Rollback {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            state_saved: false,
            mounted: false,
            stdio: None,
            runsc_created: false,
        }
    }

    /// The shim's state file is in the bundle.
    pub fn state_saved(&mut self) {
        self.state_saved = true;
    }

    /// The rootfs is mounted.
    pub fn mounted(&mut self) {
        self.mounted = true;
    }

    /// The stdio copies run; they are handed back by [`Rollback::done`].
    pub fn stdio_open(&mut self, copies: StdioCopies) {
        self.stdio = Some(copies);
    }

    /// `runsc create` was run (whether it succeeded or not, runsc may have left a container).
    pub fn runsc_create_ran(&mut self) {
        self.runsc_created = true;
    }

    /// The Create succeeded: nothing is undone, and the stdio copies go to the container.
    pub fn done(self) -> StdioCopies {
        self.stdio.unwrap_or_default()
    }

    /// Undoes what was done: `runsc delete --force`, the stdio copies, the mounts, the state
    /// file. Each failure is logged; the Create's own error is what containerd hears.
    pub async fn undo(self, runsc: &Runsc) {
        let id = &self.id;
        if self.runsc_created {
            if let Err(e) = runsc.delete(id, true).await {
                if !runsc::is_gone(&e) {
                    warn!("{id}: cleaning up after a failed create: {e}");
                }
            }
        }
        drop(self.stdio);
        if self.mounted {
            if let Err(e) = mount::unmount_all(&self.bundle).await {
                warn!("{id}: cleaning up after a failed create: {e}");
            }
        }
        if self.state_saved {
            ShimState::remove(&self.bundle);
        }
    }
}
