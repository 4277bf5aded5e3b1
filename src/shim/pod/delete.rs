//! Delete: what still runs is stopped, runsc's container deleted, stdio drained, the rootfs
//! unmounted, and the container forgotten only then.

use std::time::Duration;

use log::{info, warn};

use super::{report_exit, Pod, PodEvent};
use crate::error::Result;
use crate::runsc;
use crate::shim::mount;
use crate::shim::process::{Exit, Status};

impl Pod {
    /// Delete of a container: stops what still runs, `runsc delete`, drains stdio, unmounts the
    /// rootfs.
    pub(super) async fn delete_container(&self, id: &str) -> Result<(i32, Exit)> {
        // A Delete racing its Create (containerd gave up waiting for it) deletes what the Create
        // made instead of missing it and leaving it behind.
        let c = self.get_after_create(id).await?;
        if c.status() == Status::Paused {
            // runsc signals only running or stopped containers: thaw it so SIGKILL lands.
            if let Err(e) = c.runsc.resume(id).await {
                warn!("{id}: resuming before delete: {e}");
            }
            c.init.set_paused(false);
        }
        if c.status() != Status::Stopped {
            if let Err(e) = c.runsc.kill(id, libc::SIGKILL as u32, true).await {
                // runsc could not be run (missing, not executable, hung): the container may
                // still run, so it is neither reported exited nor forgotten.
                if runsc::did_not_answer(&e) {
                    return Err(e);
                }
                if !runsc::is_gone(&e) {
                    warn!("{id}: killing before delete: {e}");
                }
            }
            if matches!(c.status(), Status::Running | Status::Paused) {
                // The exit watcher records the exit; don't wait forever on a wedged sandbox.
                if tokio::time::timeout(Duration::from_secs(10), c.init.wait())
                    .await
                    .is_err()
                {
                    warn!("{id}: no exit seen 10s after SIGKILL; deleting anyway");
                }
            }
            report_exit(&self.events, &c.init, 128 + libc::SIGKILL as u32);
        }
        if let Err(e) = c.runsc.delete(id, false).await {
            if !runsc::is_gone(&e) {
                return Err(e);
            }
        }
        c.runsc.remove_orphan_lock(id, &c.sandbox_id).await;
        c.init.drain_stdio().await;
        mount::unmount_all(&c.bundle).await?;
        self.execs.remove_all(id);
        self.memory_limits.forget(id);
        self.containers.lock().await.remove(id);
        let exit = c.init.exit_or_now();
        self.events.send(PodEvent::Deleted {
            container_id: id.to_string(),
            pid: c.pid(),
            exit,
        });
        info!("{id}: deleted (exit status {})", exit.status);
        Ok((c.pid(), exit))
    }
}
