//! The mock containerd's side of events: the ttrpc events service the shim daemon publishes to,
//! and the log of what was published, which the in-process tier fills from the event channel.

use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use containerd_shim_protos::api::{Empty, ForwardRequest};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageFull;
use containerd_shim_protos::shim_async::Events;
use containerd_shim_protos::ttrpc;
use containerd_shim_protos::ttrpc::asynchronous::TtrpcContext;
use tokio::sync::watch;

use super::{
    TIMEOUT, TOPIC_CREATE, TOPIC_DELETE, TOPIC_EXIT, TOPIC_PAUSED, TOPIC_RESUMED, TOPIC_START,
};

/// One event as the mock containerd received it.
#[derive(Debug, Clone)]
pub struct Published {
    pub topic: String,
    pub namespace: String,
    pub event: Any,
}

impl Published {
    /// Decodes the event, checking its type.
    pub fn decode<M: MessageFull>(&self) -> M {
        let name = M::descriptor().full_name().to_string();
        let type_name = self.event.type_url.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            type_name, name,
            "event on {} has type {:?}",
            self.topic, self.event.type_url
        );
        M::parse_from_bytes(&self.event.value)
            .unwrap_or_else(|e| panic!("decoding {name} on {}: {e}", self.topic))
    }
}

/// The container id any task event names (field 1 of every task event message).
fn container_id_of(e: &Published) -> String {
    use containerd_shim_protos::events::task::{
        TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
        TaskResumed, TaskStart,
    };
    match e.topic.as_str() {
        TOPIC_CREATE => e.decode::<TaskCreate>().container_id,
        TOPIC_START => e.decode::<TaskStart>().container_id,
        TOPIC_EXIT => e.decode::<TaskExit>().container_id,
        TOPIC_DELETE => e.decode::<TaskDelete>().container_id,
        "/tasks/oom" => e.decode::<TaskOOM>().container_id,
        "/tasks/exec-added" => e.decode::<TaskExecAdded>().container_id,
        "/tasks/exec-started" => e.decode::<TaskExecStarted>().container_id,
        TOPIC_PAUSED => e.decode::<TaskPaused>().container_id,
        TOPIC_RESUMED => e.decode::<TaskResumed>().container_id,
        _ => String::new(),
    }
}

/// What the mock containerd received: every event, in order, and a signal when one arrives.
#[derive(Default)]
pub struct EventLog {
    events: Mutex<Vec<Published>>,
    changed: watch::Sender<usize>,
}

impl EventLog {
    pub fn record(&self, event: Published) {
        let n = {
            let mut events = self.events.lock().unwrap();
            events.push(event);
            events.len()
        };
        self.changed.send_replace(n);
    }

    /// Every event published so far.
    pub fn events(&self) -> Vec<Published> {
        self.events.lock().unwrap().clone()
    }

    pub fn topics(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.topic).collect()
    }

    /// The first event so far on `topic` about container `id`, decoded.
    pub fn find<M: MessageFull>(&self, topic: &str, id: &str) -> Option<M> {
        self.events().into_iter().find_map(|e| {
            if e.topic != topic {
                return None;
            }
            let m: M = e.decode();
            (container_id_of(&e) == id).then_some(m)
        })
    }

    /// Waits (bounded) for the first event on `topic` about container `id`, and decodes it.
    pub async fn event<M: MessageFull>(&self, topic: &str, id: &str) -> M {
        let mut changed = self.changed.subscribe();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(m) = self.find(topic, id) {
                return m;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, changed.changed()).await.is_err() {
                panic!(
                    "no {topic} event for {id} within {TIMEOUT:?}; published: {:?}",
                    self.topics()
                );
            }
        }
    }
}

/// The mock containerd's events service: records every forwarded envelope.
#[async_trait]
impl Events for EventLog {
    async fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let envelope = req.envelope.into_option().unwrap_or_default();
        self.record(Published {
            topic: envelope.topic,
            namespace: envelope.namespace,
            event: envelope.event.into_option().unwrap_or_default(),
        });
        Ok(Empty::new())
    }
}
