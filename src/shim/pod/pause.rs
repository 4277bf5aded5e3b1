//! Pause and Resume: `runsc pause`/`runsc resume` of one container, with TaskPaused and
//! TaskResumed. runsc freezes the container's processes inside the sandbox (the sentry keeps
//! running), so a paused container still holds its memory and its pod's bound still applies.

use containerd_shim::protos::events::task::{TaskPaused, TaskResumed};
use log::info;

use super::Pod;
use crate::error::{Error, Result};
use crate::shim::container::Status;

impl Pod {
    /// Pause: only a running container can be paused; pausing a paused one is a no-op, as
    /// runc's shim does.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let c = self.get(id).await?;
        match c.status() {
            Status::Paused => return Ok(()),
            Status::Running => {}
            other => {
                return Err(Error::FailedPrecondition(format!(
                    "container {id} is {}, not running: only a running container can be paused",
                    status_word(other)
                )))
            }
        }
        c.runsc.pause(id).await?;
        if c.set_paused(true) {
            info!("{id}: paused");
            self.events.send(TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            });
        }
        Ok(())
    }

    /// Resume: only a paused container can be resumed; resuming a running one is a no-op.
    pub async fn resume(&self, id: &str) -> Result<()> {
        let c = self.get(id).await?;
        match c.status() {
            Status::Running => return Ok(()),
            Status::Paused => {}
            other => {
                return Err(Error::FailedPrecondition(format!(
                    "container {id} is {}, not paused: only a paused container can be resumed",
                    status_word(other)
                )))
            }
        }
        c.runsc.resume(id).await?;
        if c.set_paused(false) {
            info!("{id}: resumed");
            self.events.send(TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            });
        }
        Ok(())
    }
}

pub(super) fn status_word(status: Status) -> &'static str {
    match status {
        Status::Created => "created",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Stopped => "stopped",
    }
}
