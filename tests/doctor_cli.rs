//! `runsc-guard doctor`, the real binary, against nodes written down in temp dirs: a cgroup
//! tree, a /proc with a runsc-sandbox process, containerd's config and the bundle. containerd
//! and runsc are small scripts on PATH; the shim on PATH is the real one this build made.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const UID: &str = "3f1c9a2e_5b7d_4c1e_9a0f_2d6e8b4c7a1f";
const ID: &str = "4d2c8e6f1a3b";
const POD_LIMIT: u64 = 256 << 20;
const NODE_MEMORY_KIB: u64 = 4_007_456;

/// The programs on PATH, written once before any test runs a child: a script being written
/// while another thread forks cannot be executed (ETXTBSY).
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        script(
            "containerd",
            "echo 'containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1'",
        );
        script(
            "runsc",
            "echo 'runsc version release-20231009.0'; echo 'spec: 1.1.0'",
        );
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_containerd-shim-runsc-v1"),
            dir.path().join("containerd-shim-runsc-v1"),
        )
        .unwrap();
        // stock/: the same node with gVisor's own shim on PATH.
        std::fs::create_dir(dir.path().join("stock")).unwrap();
        for name in ["containerd", "runsc"] {
            std::os::unix::fs::symlink(dir.path().join(name), dir.path().join("stock").join(name))
                .unwrap();
        }
        script(
            "stock/containerd-shim-runsc-v1",
            "echo 'containerd-shim-runsc-v1:'; echo '  Version:  release-20231009.0'",
        );
        dir
    })
    .path()
}

/// containerd and runsc, with gVisor's own shim on PATH instead of this one.
fn stock_bin_dir() -> PathBuf {
    bin_dir().join("stock")
}

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let node = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        node.write(
            "proc/meminfo",
            &format!("MemTotal:       {NODE_MEMORY_KIB} kB\n"),
        );
        node
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str) -> &Self {
        let f = self.path(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, content).unwrap();
        self
    }

    fn pod_slice() -> String {
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice")
    }

    /// A systemd, cgroup v2 node running the incident's pod, its sandbox in `leaf`.
    fn systemd_v2(leaf: &str, total_memory: u64, config: &str) -> Self {
        let node = Node::new();
        node.write("proc/1/comm", "systemd\n");
        node.write("cgroup/cgroup.controllers", "cpu memory pids\n");
        for (cgroup, max) in [
            ("/kubepods.slice", "3800000000".to_string()),
            (
                "/kubepods.slice/kubepods-burstable.slice",
                "max".to_string(),
            ),
            (&Self::pod_slice(), POD_LIMIT.to_string()),
            ("/system.slice", "max".to_string()),
            (leaf, "max".to_string()),
        ] {
            node.write(&format!("cgroup{cgroup}/memory.max"), &format!("{max}\n"));
        }
        node.write("runsc.toml", "[runsc_config]\nplatform = \"systrap\"\n");
        node.write(
            "config.toml",
            &config.replace(
                "@RUNSC_TOML@",
                &node.path("runsc.toml").display().to_string(),
            ),
        );
        let bundle = node.path(&format!("bundles/{ID}"));
        let spec = serde_json::json!({
            "ociVersion": "1.0.2-dev",
            "annotations": {
                "io.kubernetes.cri.container-type": "sandbox",
                "io.kubernetes.cri.sandbox-name": "incident",
                "io.kubernetes.cri.sandbox-namespace": "default",
            },
            "linux": {"cgroupsPath": format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}")},
        });
        node.write(&format!("bundles/{ID}/config.json"), &spec.to_string());
        let argv = [
            "runsc-sandbox".to_string(),
            "--root=/run/containerd/runsc/k8s.io".to_string(),
            "boot".to_string(),
            "--bundle".to_string(),
            bundle.display().to_string(),
            format!("--total-memory={total_memory}"),
            ID.to_string(),
        ];
        node.write("proc/4242/cmdline", &format!("{}\0", argv.join("\0")));
        node.write("proc/4242/cgroup", &format!("0::{leaf}\n"));
        node.write("proc/900/cmdline", "/usr/bin/containerd\0");
        node
    }

    fn doctor(&self, extra: &[&str], path: &Path) -> Run {
        let mut args: Vec<String> = vec![
            "doctor".into(),
            "--containerd-config".into(),
            self.path("config.toml").display().to_string(),
            "--cgroup-root".into(),
            self.path("cgroup").display().to_string(),
            "--proc".into(),
            self.path("proc").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        runsc_guard(&args, path)
    }
}

const INCIDENT_CONFIG: &str = include_str!("fixtures/containerd/incident-v2.toml");

const FIXED_CONFIG: &str = include_str!("fixtures/containerd/guarded-v2.toml");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

fn runsc_guard(args: &[String], path: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_runsc-guard"))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn incident_node() -> Node {
    let escaped = format!("/system.slice/kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}");
    Node::systemd_v2(&escaped, NODE_MEMORY_KIB * 1024, INCIDENT_CONFIG)
}

fn fixed_node() -> Node {
    let leaf = format!("{}/cri-containerd-{ID}.scope", Node::pod_slice());
    Node::systemd_v2(&leaf, POD_LIMIT, FIXED_CONFIG)
}

#[test]
fn the_incident_node_exits_2_and_names_the_pod() {
    let path = bin_dir();
    let node = incident_node();
    let run = node.doctor(&[], path);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("runsc-guard doctor: FAILURES"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("default/incident"), "{}", run.stdout);
    assert!(
        run.stdout.contains("OUTSIDE its pod's cgroup"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("what to do: "), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    let run = node.doctor(&["--json"], path);
    assert_eq!(run.code, 2);
    let json = run.json();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["exit_code"], 2);
    assert_eq!(
        json["node"]["containerd"]["release"],
        serde_json::json!([1, 6])
    );
    assert_eq!(json["node"]["runsc"][0]["version"], "release-20231009.0");
    let sandbox = &json["node"]["sandboxes"][0];
    assert_eq!(sandbox["pod"]["namespace"], "default");
    assert_eq!(sandbox["pod"]["name"], "incident");
    assert_eq!(
        sandbox["observation"]["total_memory"],
        NODE_MEMORY_KIB * 1024
    );
    assert_eq!(sandbox["pod_limit"]["bytes"], POD_LIMIT);
    let failed: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "fail")
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "handler.runsc.systemd-cgroup".to_string(),
            format!("sandbox.{ID}.placement"),
            format!("sandbox.{ID}.memory"),
        ]
    );
}

#[test]
fn the_fixed_node_exits_0() {
    let run = fixed_node().doctor(&[], bin_dir());
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("runsc-guard doctor: all well"),
        "{}",
        run.stdout
    );
    // The real shim on PATH answers -v as runsc-guard's.
    assert!(
        run.stdout.contains("is runsc-guard's shim"),
        "{}",
        run.stdout
    );
    let json = fixed_node().doctor(&["--json"], bin_dir()).json();
    assert_eq!(json["node"]["shim"]["is_runsc_guard"], true);
    assert_eq!(json["status"], "ok");
}

#[test]
fn gvisors_own_shim_without_systemd_cgroup_exits_2() {
    let run = fixed_node().doctor(&["--json"], &stock_bin_dir());
    assert_eq!(run.code, 2, "{}", run.stdout);
    let json = run.json();
    let severity = |check: &str| {
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .map(|f| f["severity"].clone())
            .unwrap_or_else(|| panic!("no {check}"))
    };
    assert_eq!(json["node"]["shim"]["is_runsc_guard"], false);
    assert_eq!(severity("containerd.shim"), "warn");
    assert_eq!(severity("handler.runsc.systemd-cgroup"), "fail");
    assert_eq!(severity("runsc.runsc.leaf-sizing"), "warn");

    // And with no shim on PATH at all, containerd cannot start the handler's pods.
    let run = fixed_node().doctor(&["--json"], Path::new("/nonexistent"));
    let json = run.json();
    let shim = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "containerd.shim")
        .unwrap()
        .clone();
    assert_eq!(shim["severity"], "fail", "{shim}");
}

#[test]
fn warnings_only_exit_1() {
    // A v2 node without kubelet or containerd config: nothing is wrong, but nothing is set up.
    let node = Node::new();
    node.write("cgroup/cgroup.controllers", "memory\n");
    node.write("proc/1/comm", "systemd\n");
    let run = node.doctor(&[], bin_dir());
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("does not exist"), "{}", run.stdout);
}

#[test]
fn runsc_config_overrides_the_config_path() {
    let node = fixed_node();
    node.write("other.toml", "guard_mode = \"sometimes\"\n");
    let run = node.doctor(
        &[
            "--json",
            "--runsc-config",
            &node.path("other.toml").display().to_string(),
        ],
        bin_dir(),
    );
    assert_eq!(run.code, 2, "{}", run.stdout);
    let json = run.json();
    let toml = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "handler.runsc.runsc-toml")
        .unwrap()
        .clone();
    assert_eq!(toml["severity"], "fail");
    assert!(
        toml["summary"].as_str().unwrap().contains("guard_mode"),
        "{toml}"
    );
}

#[test]
fn usage_and_help() {
    let run = runsc_guard(&["doctor".into(), "--frobnicate".into()], bin_dir());
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown option --frobnicate"),
        "{}",
        run.stderr
    );
    for command in ["doctor", "plan", "show", "version"] {
        let run = runsc_guard(&[command.into(), "--help".into()], bin_dir());
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
        assert!(
            run.stdout
                .starts_with(&format!("usage: runsc-guard {command}")),
            "{command}: {}",
            run.stdout
        );
    }
    let run = runsc_guard(&["help".into()], bin_dir());
    assert!(run.stdout.contains("doctor [--json]"), "{}", run.stdout);
}

#[test]
fn the_shim_is_looked_up_on_containerds_path() {
    // The doctor's PATH has runsc-guard's shim, containerd's has gVisor's: containerd's counts.
    let node = fixed_node();
    node.write(
        "proc/900/environ",
        &format!("LANG=C\0PATH={}\0", stock_bin_dir().display()),
    );
    let json = node.doctor(&["--json"], bin_dir()).json();
    let shim = &json["node"]["shim"];
    assert_eq!(shim["is_runsc_guard"], false, "{shim}");
    assert!(
        shim["searched"]
            .as_str()
            .unwrap()
            .starts_with("containerd's PATH (pid 900)"),
        "{shim}"
    );
    assert_eq!(json["status"], "fail");
}
