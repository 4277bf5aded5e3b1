//! The pod's calls in process, against fixture trees: no shim binary, no runsc.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::protos::cgroups_v2::metrics::Metrics;
use containerd_shim::protos::protobuf::Message;
use tokio::process::Command;

use super::*;
use crate::annotations::Role;
use crate::runsc::{GlobalFlags, Output, Runsc};
use crate::shim::container::{AttachedStdio, ContainerParts};

/// A runsc that cannot be run: stats has the host's figures alone.
struct NoRunsc;

#[async_trait]
impl Executor for NoRunsc {
    async fn run(&self, _cmd: Command) -> std::io::Result<Output> {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Stats reads the sandbox's cgroup under the guard's roots, not the host's.
#[tokio::test]
async fn stats_read_the_sandbox_cgroup_under_the_guards_roots() {
    let dir = tempfile::tempdir().unwrap();
    let (cgroup, proc) = (dir.path().join("cgroup"), dir.path().join("proc"));
    let leaf = "kubepods.slice/pod.slice/cri-containerd-s1.scope";
    write(&cgroup, "cgroup.controllers", "cpu memory pids\n");
    write(&cgroup, &format!("{leaf}/memory.current"), "104857600\n");
    write(&cgroup, &format!("{leaf}/pids.current"), "12\n");
    write(&proc, "4242/cgroup", &format!("0::/{leaf}\n"));
    let bundle = dir.path().join("s1");
    std::fs::create_dir(&bundle).unwrap();

    let executor: Arc<dyn Executor> = Arc::new(NoRunsc);
    let guard = Guard::new(cgroup, proc, executor.clone());
    let (events, _received) = EventSender::channel();
    let pod = Pod::new("default".to_string(), events, executor.clone(), guard);
    let runsc = Runsc::new(
        PathBuf::from("runsc"),
        GlobalFlags::new(dir.path().join("root"), &bundle, Default::default()),
        executor,
    );
    let sandbox = Container::new(ContainerParts {
        init: ProcessRef::init("s1").unwrap(),
        bundle,
        role: Role::Sandbox,
        sandbox_id: "s1".to_string(),
        runsc,
        pid: 4242,
        stdio: AttachedStdio::default(),
        oom: None,
        created_at: std::time::Instant::now(),
        io_owner: (0, 0),
    });
    pod.containers
        .lock()
        .await
        .insert("s1".to_string(), Arc::new(sandbox));

    let any = pod.stats("s1").await.unwrap();
    assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    let metrics = Metrics::parse_from_bytes(&any.value).unwrap();
    assert_eq!(metrics.memory.usage, 104857600);
    assert_eq!(metrics.pids.current, 12);
    assert!(pod.stats("other").await.is_err(), "no such container");
}
