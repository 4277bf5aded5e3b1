//! Task events on their way to containerd.
//!
//! The domain code only sends events into a channel, in the order things happened; one forwarder
//! task publishes them to containerd in that order. So a slow containerd never blocks an RPC, and
//! TaskExit can never overtake the TaskStart before it.

use containerd_shim::event::Event;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim_protos::ttrpc::context::with_duration;
use log::warn;
use tokio::sync::mpsc;

/// An event waiting to be published.
pub type PendingEvent = Box<dyn Event + Send + Sync>;

/// Where the domain code sends its events.
#[derive(Clone)]
pub struct EventSender(mpsc::UnboundedSender<PendingEvent>);

impl EventSender {
    /// A sender and the receiver that the forwarder (or a test) drains.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<PendingEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSender(tx), rx)
    }

    pub fn send(&self, event: impl Event + Send + Sync + 'static) {
        // The receiver lives as long as the shim; a closed channel means the shim is exiting.
        let _ = self.0.send(Box::new(event));
    }
}

/// Publishes events to containerd, one at a time, in order.
pub async fn forward(
    publisher: RemotePublisher,
    namespace: String,
    mut events: mpsc::UnboundedReceiver<PendingEvent>,
) {
    while let Some(event) = events.recv().await {
        let topic = event.topic();
        let ctx = with_duration(std::time::Duration::from_secs(5));
        if let Err(e) = publisher.publish(ctx, &topic, &namespace, event).await {
            warn!("publishing {topic} to containerd failed: {e}");
        }
    }
}
