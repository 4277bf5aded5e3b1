//! The guard's whole path through a Create, through the very calls the shim makes: a fixture
//! cgroup tree, a fake /proc and an executor that answers `runsc --version` and `systemctl`:
//! `Guard::before_create` (plan, runsc flags, the spec edits the shim writes into the bundle)
//! → (runsc create) → `Guard::after_create` (observe, verify, relax, record) →
//! `runsc-guard show`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use runsc_guard::bundle::BundleSpec;
use runsc_guard::cgroup::Bytes;
use runsc_guard::guard::{Guard, GuardRecord, HostFacts, Role, Verdict};
use runsc_guard::options::ShimConfig;
use runsc_guard::runsc::{Executor, Output};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
const ID: &str = "sandbox1";
const SLICE: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice";

/// Answers `runsc --version` as Debian's runsc 20221219 does and every `systemctl` with
/// success, and records each command it is given.
#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<Vec<String>>>,
}

impl FakeHost {
    fn calls_to(&self, program: &str) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c[0].ends_with(program))
            .map(|c| c[1..].to_vec())
            .collect()
    }
}

#[async_trait]
impl Executor for FakeHost {
    async fn run(&self, cmd: tokio::process::Command) -> std::io::Result<Output> {
        let std = cmd.as_std();
        let mut call = vec![std.get_program().to_string_lossy().into_owned()];
        call.extend(std.get_args().map(|a| a.to_string_lossy().into_owned()));
        // A real command takes a while: let concurrent callers overlap with this one.
        tokio::task::yield_now().await;
        let stdout = if call[1..] == ["--version"] {
            b"runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n".to_vec()
        } else if call.get(1).is_some_and(|verb| verb == "show") {
            // What systemd reports once set-property has run.
            b"335544320\n".to_vec()
        } else {
            Vec::new()
        };
        self.calls.lock().unwrap().push(call);
        Ok(Output {
            status: 0,
            stdout,
            stderr: Vec::new(),
        })
    }
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// What runsc leaves behind for the sandbox: its process in `cgroup` with `--total-memory`.
fn fake_sandbox_process(proc_root: &Path, pid: i32, cgroup: &str, total: u64) {
    let dir = proc_root.join(pid.to_string());
    write(&dir.join("cgroup"), format!("0::{cgroup}\n"));
    let argv = [
        "runsc-sandbox",
        "--root=/run/containerd/runsc/k8s.io",
        "--systemd-cgroup=true",
        "boot",
        "--bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/sandbox1",
        "--total-memory",
        &total.to_string(),
        ID,
    ];
    write(&dir.join("cmdline"), argv.join("\0") + "\0");
}

/// A node in a temp dir: its cgroup tree, its /proc, a runsc binary (never run: the executor
/// answers for it) and the sandbox's bundle with `spec` as config.json.
struct Node {
    dir: tempfile::TempDir,
    host: Arc<FakeHost>,
}

impl Node {
    fn new(spec: Value) -> Node {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cgroup/cgroup.controllers"), "memory\n");
        let runsc = dir.path().join("bin/runsc");
        write(&runsc, "#!/bin/sh\nexit 1\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runsc, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(&dir.path().join(ID).join("config.json"), spec.to_string());
        Node {
            dir,
            host: Arc::new(FakeHost::default()),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn bundle(&self) -> PathBuf {
        self.path(ID)
    }

    /// The shim's guard for this node, on a systemd host with `host_memory`.
    fn guard(&self, host_memory: Option<Bytes>) -> Guard {
        Guard::new(self.path("cgroup"), self.path("proc"), self.host.clone()).with_host_facts(
            HostFacts {
                systemd_running: true,
                host_memory,
            },
        )
    }

    /// runsc.toml as the operator left it: defaults, with this node's runsc.
    fn config(&self) -> ShimConfig {
        ShimConfig {
            binary_name: self.path("bin/runsc").display().to_string(),
            ..ShimConfig::default()
        }
    }
}

#[tokio::test]
async fn create_with_a_runtimeclass_overhead() {
    let node = Node::new(json!({
        "ociVersion": "1.0.2-dev",
        "linux": {"cgroupsPath": "kubepods-burstable-podu1.slice:cri-containerd:sandbox1",
                  "resources": {"cpu": {"shares": 2}}},
        "annotations": {"io.kubernetes.cri.container-type": "sandbox",
                        "io.kubernetes.cri.sandbox-memory": (256 * MIB).to_string()},
    }));
    write(&node.path("cgroup/cgroup.controllers"), "cpu memory pids\n");
    write(&node.path("cgroup/kubepods.slice/memory.max"), "max\n");
    write(
        &node.path("cgroup/kubepods.slice/kubepods-burstable.slice/memory.max"),
        "max\n",
    );
    write(
        &node.path("cgroup").join(&SLICE[1..]).join("memory.max"),
        format!("{}\n", 320 * MIB),
    );
    let guard = node.guard(Some(Bytes(16 << 30)));
    let mut spec = BundleSpec::load(&node.bundle()).unwrap();

    // Before runsc create: decide, refuse or apply.
    let guarded = guard
        .before_create(ID, Role::Sandbox, &spec, &node.config())
        .await
        .unwrap();
    // The shim writes the plan's edits into config.json.
    spec.apply(guarded.spec_edits()).unwrap();
    spec.save_if_changed().unwrap();
    let flags = guarded.runsc_config();
    assert_eq!(flags["systemd-cgroup"], "true");
    let written: Value =
        serde_json::from_slice(&std::fs::read(node.bundle().join("config.json")).unwrap()).unwrap();
    assert_eq!(
        written["linux"]["resources"]["memory"]["limit"],
        json!(256 * MIB)
    );
    assert_eq!(node.host.calls_to("runsc"), [["--version"]]);

    // runsc create ran; the pid file holds the sandbox's pid.
    let leaf = format!("{SLICE}/cri-containerd-sandbox1.scope");
    fake_sandbox_process(&node.path("proc"), 4242, &leaf, 256 * MIB);
    let oom = guard.after_create(&guarded, 4242).await.unwrap();
    assert!(oom.is_none(), "the fixture pod has no memory.events");

    assert_eq!(
        node.host.calls_to("systemctl"),
        [
            vec![
                "set-property",
                "--runtime",
                "--",
                "cri-containerd-sandbox1.scope",
                "MemoryMax=335544320"
            ],
            vec![
                "show",
                "--property=MemoryMax",
                "--value",
                "--",
                "cri-containerd-sandbox1.scope"
            ]
        ]
    );
    let record = GuardRecord::read(&node.bundle()).unwrap();
    assert_eq!(record.plan.verdict, Verdict::Adjusted);
    assert_eq!(record.plan.leaf_cgroup.unwrap().as_str(), leaf);
    let verification = record.verification.unwrap();
    assert!(verification.passed, "{:?}", verification.violations());
    assert!(record.relaxed);

    let show = Command::new(env!("CARGO_BIN_EXE_runsc-guard"))
        .args(["show", "--bundle"])
        .arg(node.bundle())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{stdout}");
    for line in [
        "guest memory: 256 MiB (268435456 bytes)",
        "verification: passed (pid 4242)",
        "ok   guest memory",
        "leaf relaxed after boot",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
}

#[tokio::test]
async fn a_sandbox_that_escaped_fails_verification_with_the_fix() {
    let node = Node::new(json!({
        "ociVersion": "1.0.2-dev",
        "linux": {"cgroupsPath": "kubepods-burstable-podu1.slice:cri-containerd:sandbox1"},
    }));
    write(
        &node.path("cgroup").join(&SLICE[1..]).join("memory.max"),
        "268435456\n",
    );
    let guard = node.guard(None);
    let spec = BundleSpec::load(&node.bundle()).unwrap();
    let guarded = guard
        .before_create(ID, Role::Sandbox, &spec, &node.config())
        .await
        .unwrap();
    // What the stock configuration produced on the incident's node.
    fake_sandbox_process(
        &node.path("proc"),
        77,
        "/system.slice/containerd.service/kubepods-burstable-podu1.slice:cri-containerd:sandbox1",
        540 << 30,
    );
    let err = guard.after_create(&guarded, 77).await.unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("runsc-guard refused container sandbox1"),
        "{err}"
    );
    assert!(
        err.contains(&format!("a leaf under the pod cgroup {SLICE}")),
        "{err}"
    );
    assert!(err.contains("found 579820584960"), "{err}");
    assert!(err.contains("systemd-cgroup"), "{err}");
    let record = GuardRecord::read(&node.bundle()).unwrap();
    assert!(!record.verification.unwrap().passed);
    assert!(node.host.calls_to("systemctl").is_empty());
}

/// The shim warms the version up while containerd connects, and a Create arriving meanwhile
/// waits for that probe instead of starting a second Go start-up.
#[tokio::test]
async fn concurrent_callers_share_one_version_probe() {
    let node = Node::new(json!({"ociVersion": "1.0.2-dev"}));
    let guard = node.guard(None);
    let binary = node.config().binary_name;
    let (a, b, c) = tokio::join!(
        guard.runsc_versions().version(&binary),
        guard.runsc_versions().version(&binary),
        guard.runsc_versions().version(&binary)
    );
    let versions = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert!(versions.iter().all(|v| v == &versions[0]), "{versions:?}");
    assert_eq!(node.host.calls_to("runsc"), [["--version"]]);
    guard.runsc_versions().version(&binary).await.unwrap();
    assert_eq!(
        node.host.calls_to("runsc").len(),
        1,
        "cached after the first"
    );
}
