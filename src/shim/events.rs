//! Task events on their way to containerd.
//!
//! The domain code only sends its [`PodEvent`]s into a channel, in the order things happened; one
//! forwarder task turns each into containerd's message (`shim::task_events`) and publishes them
//! to containerd in that order. So a slow containerd never blocks an RPC, and
//! TaskExit can never overtake the TaskStart before it.
//!
//! The forwarder keeps its own connection to containerd's ttrpc socket and holds each event
//! until containerd took it: when containerd restarts, the connection breaks, and the event is
//! sent again over a new one once containerd serves again, before any later event. (The
//! containerd-shim library's own publisher queue gives up on an event after about 20 s of
//! retries and sends later ones meanwhile; a TaskExit lost that way leaves the container running
//! in CRI's eyes for good.)

use std::time::Duration;

use containerd_shim::event::Event;
use containerd_shim::protos::api::ForwardRequest;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::{convert_to_any, timestamp};
use containerd_shim_protos::ttrpc::context::with_duration;
use log::{info, warn};
use tokio::sync::mpsc;

use crate::shim::pod::PodEvent;
use crate::shim::task_events;

/// An event waiting to be published.
pub type PendingEvent = Box<dyn Event + Send + Sync>;

/// How long one event is held for a containerd that does not answer (restarting, or gone).
const DELIVERY_LIMIT: Duration = Duration::from_secs(300);
/// One publish call's limit.
const CALL_LIMIT: Duration = Duration::from_secs(5);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where the domain code sends its events.
#[derive(Clone)]
pub struct EventSender(mpsc::UnboundedSender<PodEvent>);

impl EventSender {
    /// A sender and the receiver that the forwarder (or a test) drains.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<PodEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSender(tx), rx)
    }

    pub fn send(&self, event: PodEvent) {
        // The receiver lives as long as the shim; a closed channel means the shim is exiting.
        let _ = self.0.send(event);
    }
}

/// Publishes events to containerd at `publisher`'s address, one at a time, in order, each
/// until containerd took it (or [`DELIVERY_LIMIT`] passed).
pub async fn forward(
    publisher: RemotePublisher,
    namespace: String,
    mut events: mpsc::UnboundedReceiver<PodEvent>,
) {
    let address = publisher.address.clone();
    drop(publisher);
    let mut client: Option<EventsClient> = None;
    while let Some(event) = events.recv().await {
        let event = task_events::message(event);
        let topic = event.topic();
        let request = match envelope(&topic, &namespace, event) {
            Ok(r) => r,
            Err(e) => {
                warn!("encoding the {topic} event failed, not published: {e}");
                continue;
            }
        };
        deliver(&address, &mut client, &topic, &request).await;
    }
}

fn envelope(
    topic: &str,
    namespace: &str,
    event: PendingEvent,
) -> containerd_shim::Result<ForwardRequest> {
    let mut envelope = Envelope::new();
    envelope.set_topic(topic.to_string());
    envelope.set_namespace(namespace.to_string());
    envelope.set_timestamp(timestamp()?);
    envelope.set_event(convert_to_any(event)?);
    let mut request = ForwardRequest::new();
    request.set_envelope(envelope);
    Ok(request)
}

/// Sends one event, reconnecting as often as needed. containerd's own answer (an error status)
/// ends the tries: it got the event.
async fn deliver(
    address: &str,
    client: &mut Option<EventsClient>,
    topic: &str,
    request: &ForwardRequest,
) {
    let deadline = tokio::time::Instant::now() + DELIVERY_LIMIT;
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        if client.is_none() {
            *client = connect(address).await;
        }
        if let Some(c) = client.as_ref() {
            match c.forward(with_duration(CALL_LIMIT), request).await {
                Ok(_) => {
                    if failures > 0 {
                        info!("published {topic} to containerd after {failures} failed tries");
                    }
                    return;
                }
                Err(ttrpc::Error::RpcStatus(s)) => {
                    warn!("containerd refused the {topic} event: {}", s.message());
                    return;
                }
                Err(e) => {
                    if failures == 0 {
                        warn!(
                            "publishing {topic} to containerd at {address} failed ({e:?}); \
                             holding it and later events until containerd answers"
                        );
                    }
                    *client = None;
                }
            }
        }
        failures += 1;
        if tokio::time::Instant::now() + backoff > deadline {
            warn!(
                "containerd at {address} has not answered for {} s: the {topic} event is \
                 dropped",
                DELIVERY_LIMIT.as_secs()
            );
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(address: &str) -> Option<EventsClient> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("unix://{address}")
    };
    Client::connect(&url).await.ok().map(EventsClient::new)
}
