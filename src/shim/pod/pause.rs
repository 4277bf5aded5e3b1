//! Pause and Resume: `runsc pause`/`runsc resume` of one container, with TaskPaused and
//! TaskResumed. runsc freezes the container's processes inside the sandbox (the sentry keeps
//! running), so a paused container still holds its memory and its pod's bound still applies.

use log::info;

use super::{Pod, PodEvent};
use crate::error::Result;
use crate::shim::process::Status;

impl Pod {
    /// Pause: only a running container can be paused; pausing a paused one is a no-op, as
    /// runc's shim does.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let c = self.get(id).await?;
        let now = c.init.expect(
            &[Status::Running, Status::Paused],
            "only a running container can be paused",
        )?;
        if now == Status::Paused {
            return Ok(());
        }
        c.runsc.pause(id).await?;
        if c.init.set_paused(true) {
            info!("{id}: paused");
            self.events.send(PodEvent::Paused {
                container_id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Resume: only a paused container can be resumed; resuming a running one is a no-op.
    pub async fn resume(&self, id: &str) -> Result<()> {
        let c = self.get(id).await?;
        let now = c.init.expect(
            &[Status::Running, Status::Paused],
            "only a paused container can be resumed",
        )?;
        if now == Status::Running {
            return Ok(());
        }
        c.runsc.resume(id).await?;
        if c.init.set_paused(false) {
            info!("{id}: resumed");
            self.events.send(PodEvent::Resumed {
                container_id: id.to_string(),
            });
        }
        Ok(())
    }
}
