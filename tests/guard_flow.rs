//! The guard's whole path through a Create, as the shim walks it, with a fixture cgroup tree, a
//! fake /proc and a fake systemctl: plan → apply → (runsc create) → observe → verify → relax →
//! record → `runsc-guard show`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output};

use oci_spec::runtime::Spec;
use runsc_guard::cgroup::CgroupTree;
use runsc_guard::guard::{
    decide, observe, verify, CommandRunner, GuardInput, GuardRecord, HostFacts, Role, Verdict,
};
use runsc_guard::options::GuardMode;
use runsc_guard::runsc::version::RunscVersion;
use serde_json::json;

const MIB: u64 = 1 << 20;
const ID: &str = "sandbox1";
const SLICE: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice";

/// systemctl that records its calls and succeeds.
#[derive(Default)]
struct FakeSystemctl {
    calls: RefCell<Vec<Vec<String>>>,
}

impl CommandRunner for FakeSystemctl {
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output> {
        assert_eq!(program, "systemctl");
        self.calls.borrow_mut().push(args.to_vec());
        Ok(Output {
            status: ExitStatus::from_raw(0),
            stdout: Vec::new(),
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

#[test]
fn create_with_a_runtimeclass_overhead() {
    let node = tempfile::tempdir().unwrap();
    let root = node.path().join("cgroup");
    write(&root.join("cgroup.controllers"), "cpu memory pids\n");
    write(&root.join("kubepods.slice/memory.max"), "max\n");
    write(
        &root.join("kubepods.slice/kubepods-burstable.slice/memory.max"),
        "max\n",
    );
    write(
        &root.join(&SLICE[1..]).join("memory.max"),
        format!("{}\n", 320 * MIB),
    );
    let bundle = node.path().join(ID);
    let mut spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2-dev",
        "linux": {"cgroupsPath": "kubepods-burstable-podu1.slice:cri-containerd:sandbox1",
                  "resources": {"cpu": {"shares": 2}}},
        "annotations": {"io.kubernetes.cri.container-type": "sandbox",
                        "io.kubernetes.cri.sandbox-memory": (256 * MIB).to_string()},
    }))
    .unwrap();
    let runsc_config = BTreeMap::new();
    let version =
        RunscVersion::from_version_output("runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n");
    let tree = CgroupTree::detect(&root).unwrap();

    // Before runsc create: decide, refuse or apply.
    let decision = decide(&GuardInput {
        container_id: ID,
        role: Role::Sandbox,
        spec: &spec,
        runsc_config: &runsc_config,
        mode: GuardMode::Enforce,
        runsc_version: &version,
        host: HostFacts {
            systemd_running: true,
            host_memory: Some(runsc_guard::cgroup::Bytes(16 << 30)),
        },
        tree: &tree,
    });
    assert_eq!(decision.verdict, Verdict::Adjusted);
    assert!(decision.refusal().is_none());
    let mut raw = serde_json::to_value(&spec).unwrap();
    for edit in &decision.edits {
        edit.apply_to(&mut raw);
    }
    spec = serde_json::from_value(raw).unwrap();
    let flags = decision.runsc_config(&runsc_config);
    assert_eq!(flags["systemd-cgroup"], "true");
    let limit = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
    assert_eq!(
        limit.memory().as_ref().unwrap().limit(),
        Some((256 * MIB) as i64)
    );

    // runsc create ran; the pid file holds the sandbox's pid.
    let proc_root = node.path().join("proc");
    let leaf = decision.leaf_cgroup.clone().unwrap();
    fake_sandbox_process(&proc_root, 4242, leaf.as_str(), 256 * MIB);

    let observation = observe(&proc_root, 4242, tree.layout()).unwrap();
    let verification = verify(&decision, &observation);
    assert!(verification.passed, "{:?}", verification.violations());

    let systemctl = FakeSystemctl::default();
    let relax = decision.relax.clone().unwrap();
    relax.apply(&tree, &systemctl).unwrap();
    assert_eq!(
        systemctl.calls.borrow()[0],
        [
            "set-property",
            "--runtime",
            "cri-containerd-sandbox1.scope",
            "MemoryMax=335544320"
        ]
    );

    let mut record = GuardRecord::new(decision);
    record.verification = Some(verification);
    record.relaxed = true;
    std::fs::create_dir_all(&bundle).unwrap();
    record.write(&bundle).unwrap();
    assert_eq!(GuardRecord::read(&bundle).unwrap(), record);

    let show = Command::new(env!("CARGO_BIN_EXE_runsc-guard"))
        .args(["show", "--bundle"])
        .arg(&bundle)
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

#[test]
fn a_sandbox_that_escaped_fails_verification_with_the_fix() {
    let node = tempfile::tempdir().unwrap();
    let root = node.path().join("cgroup");
    write(&root.join("cgroup.controllers"), "memory\n");
    write(&root.join(&SLICE[1..]).join("memory.max"), "268435456\n");
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2-dev",
        "linux": {"cgroupsPath": "kubepods-burstable-podu1.slice:cri-containerd:sandbox1"},
    }))
    .unwrap();
    let tree = CgroupTree::detect(&root).unwrap();
    let version = RunscVersion::parse("0.0~20221219.0").unwrap();
    let decision = decide(&GuardInput {
        container_id: ID,
        role: Role::Sandbox,
        spec: &spec,
        runsc_config: &BTreeMap::new(),
        mode: GuardMode::Enforce,
        runsc_version: &version,
        host: HostFacts {
            systemd_running: true,
            host_memory: None,
        },
        tree: &tree,
    });
    // What the stock configuration produced on the incident's node.
    let proc_root = node.path().join("proc");
    fake_sandbox_process(
        &proc_root,
        77,
        "/system.slice/containerd.service/kubepods-burstable-podu1.slice:cri-containerd:sandbox1",
        540 << 30,
    );
    let verification = verify(&decision, &observe(&proc_root, 77, tree.layout()).unwrap());
    assert!(!verification.passed);
    let err = verification.failure(ID).unwrap().to_string();
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
}
