//! The in-process tier: the shim's `Pod` built in the test, as the daemon builds it (an event
//! channel, an executor, the guard over a cgroup tree and a /proc), with fake-runsc as runsc. No
//! daemon, no rootfs mount and no fifos, so these tests need no root.
//!
//! The events the pod sends are taken off its channel into the same [`EventLog`] the mock
//! containerd fills, whenever the test looks, so an event sent before a check is always seen. Every runsc call goes through the shim's
//! [`TokioExecutor`]; the executor only adds the fixture roots to fake-runsc's environment, which
//! under the daemon the shim's own environment would carry.

use std::ffi::OsString;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use containerd_shim::event::Event;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{MessageDyn, MessageFull};
use runsc_guard::guard::Guard;
use runsc_guard::runsc::{Executor, Output, TokioExecutor};
use runsc_guard::shim::events::EventSender;
use runsc_guard::shim::pod::{CreateTask, Pod, PodEvent};
use runsc_guard::shim::process::ProcessRef;
use runsc_guard::shim::task_events;
use runsc_guard::Error;
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedReceiver;

use super::bundle::Bundle;
use super::containerd::{EventLog, Published};
use super::env::{await_nothing_left, TestDir};
use super::node::Node;
use super::runsc::{CGROUP_ROOT_ENV, PROC_ROOT_ENV};
use super::TIMEOUT;

/// The shim's executor, with fake-runsc's fixture roots in the environment of what it runs.
struct FixtureExecutor {
    vars: Vec<(&'static str, OsString)>,
}

#[async_trait]
impl Executor for FixtureExecutor {
    async fn run(&self, mut cmd: Command) -> std::io::Result<Output> {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        TokioExecutor.run(cmd).await
    }
}

/// One test's [`TestDir`] and the `Pod` under test.
pub struct PodEnv {
    dir: TestDir,
    pub pod: Pod,
    /// What the pod sent, read as the test asks, so an event sent before a check is in it.
    receiver: Mutex<UnboundedReceiver<PodEvent>>,
    events: EventLog,
}

impl Deref for PodEnv {
    type Target = TestDir;
    fn deref(&self) -> &TestDir {
        &self.dir
    }
}

impl PodEnv {
    /// A pod whose guard reads an empty cgroup tree, as the daemon tests' shims do by default:
    /// no pod cgroup is found, and fake-runsc fakes no sandbox process.
    pub fn new(name: &str) -> PodEnv {
        let dir = TestDir::new(name);
        let cgroup_root = dir.empty_cgroup_tree();
        let proc_root = dir.path("empty-proc");
        std::fs::create_dir_all(&proc_root).unwrap();
        PodEnv::build(dir, cgroup_root, proc_root, Vec::new())
    }

    /// A pod on the node [`Node::new`] or [`Node::with_pod`] makes in the returned env: the guard
    /// reads its tree and /proc, and fake-runsc leaves its sandbox processes and cgroups there.
    pub fn on_node(name: &str, make: impl FnOnce(&TestDir) -> Node) -> (PodEnv, Node) {
        let dir = TestDir::new(name);
        let node = make(&dir);
        let vars = node.vars();
        let env = PodEnv::build(dir, node.cgroup_root.clone(), node.proc_root.clone(), vars);
        (env, node)
    }

    fn build(
        mut dir: TestDir,
        cgroup_root: PathBuf,
        proc_root: PathBuf,
        vars: Vec<(&'static str, OsString)>,
    ) -> PodEnv {
        assert!(
            vars.iter()
                .all(|(k, _)| *k == CGROUP_ROOT_ENV || *k == PROC_ROOT_ENV),
            "only the fixture roots: {vars:?}"
        );
        // No rootfs is mounted here: bundles hold in `rootfs` what the mount would show.
        dir.rootfs_in_place = true;
        let executor: Arc<dyn Executor> = Arc::new(FixtureExecutor { vars });
        let (sender, receiver) = EventSender::channel();
        let guard = Guard::new(cgroup_root, proc_root, executor.clone());
        let pod = Pod::new(dir.namespace.clone(), sender, executor, guard);
        PodEnv {
            dir,
            pod,
            receiver: Mutex::new(receiver),
            events: EventLog::default(),
        }
    }

    /// The Create request containerd would send for `bundle`, without rootfs mounts or stdio.
    pub fn create_task(&self, bundle: &Bundle, options: Option<Any>) -> CreateTask {
        CreateTask {
            id: bundle.id.clone(),
            bundle: bundle.path.clone(),
            options,
            ..Default::default()
        }
    }

    /// Create with the options of the runsc.toml at `config`.
    pub async fn create(&self, bundle: &Bundle, config: &Path) -> Result<i32, Error> {
        let req = self.create_task(bundle, Some(self.options(config)));
        self.pod.create(req).await
    }

    /// Create, which must succeed (`what` names it in the failure).
    pub async fn create_ok(&self, what: &str, bundle: &Bundle, config: &Path) -> i32 {
        self.create(bundle, config)
            .await
            .unwrap_or_else(|e| panic!("{what} failed: {e}"))
    }

    /// Unwraps a result of the pod, naming the call in the failure.
    pub fn ok<T>(&self, what: &str, r: Result<T, Error>) -> T {
        r.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
    }

    /// Start, Kill (SIGKILL), Wait for 137, Delete: a created container taken down.
    pub async fn run_to_the_end(&self, id: &str) {
        self.ok("Start", self.pod.start(&init(id)).await);
        self.kill_wait_delete(id).await;
    }

    /// Kill (SIGKILL), Wait for the exit status 137 (128 + SIGKILL), Delete.
    pub async fn kill_wait_delete(&self, id: &str) {
        self.ok(
            &format!("Kill ({id})"),
            self.pod.kill(&init(id), 9, false).await,
        );
        let exit = self.ok(&format!("Wait ({id})"), self.pod.wait(&init(id)).await);
        assert_eq!(exit.status, 137, "{id}");
        self.ok(&format!("Delete ({id})"), self.pod.delete(&init(id)).await);
    }

    /// Every event the pod sent so far.
    pub fn events(&self) -> Vec<Published> {
        self.take_sent();
        self.events.events()
    }

    pub fn topics(&self) -> Vec<String> {
        self.take_sent();
        self.events.topics()
    }

    /// Waits (bounded) for the first event on `topic` about container `id`, and decodes it.
    pub async fn event<M: MessageFull>(&self, topic: &str, id: &str) -> M {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.take_sent();
            if let Some(m) = self.events.find(topic, id) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no {topic} event for {id} within {TIMEOUT:?}; sent: {:?}",
                self.events.topics()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Moves what the pod sent into the log, as the shim's forwarder takes it off the channel.
    fn take_sent(&self) {
        let mut receiver = self.receiver.lock().unwrap();
        while let Ok(event) = receiver.try_recv() {
            // Through the shim's own translation, as its forwarder does.
            let event = task_events::message(event);
            self.events.record(published(&*event, &self.namespace));
        }
    }

    /// Waits (bounded) until the pod serves no container, runsc holds no container state and no
    /// process of this test runs (such as a `runsc wait`).
    pub async fn assert_nothing_left(&self) {
        assert!(
            self.pod.is_empty().await,
            "the pod still serves a container"
        );
        await_nothing_left(|| self.dir.leftovers()).await
    }
}

/// The init process of container `id`, as the pod's calls name it.
pub fn init(id: &str) -> ProcessRef {
    ProcessRef::init(id).unwrap_or_else(|e| panic!("container id {id:?}: {e}"))
}

/// The exec `exec_id` of container `id`.
pub fn exec_of(id: &str, exec_id: &str) -> ProcessRef {
    ProcessRef::new(id, exec_id).unwrap_or_else(|e| panic!("exec {exec_id:?} of {id:?}: {e}"))
}

/// An event as containerd would receive it from the shim's forwarder.
fn published(event: &(dyn Event + Send + Sync), namespace: &str) -> Published {
    let message: &dyn MessageDyn = event;
    Published {
        topic: event.topic(),
        namespace: namespace.to_string(),
        event: Any {
            type_url: message.descriptor_dyn().full_name().to_string(),
            value: message
                .write_to_bytes_dyn()
                .expect("an event the pod sent encodes"),
            ..Default::default()
        },
    }
}
