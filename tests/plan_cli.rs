//! `runsc-guard plan` and `show`, run as the operator runs them, on fixture bundles and cgroup
//! trees in temp dirs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
const UID: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";
const ID: &str = "5f3c9a0e7d21";

/// A node's cgroup tree and a bundle for one container.
struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
}

impl Node {
    /// cgroup v2 with `(cgroup, memory.max)` pairs.
    fn v2(limits: &[(&str, &str)]) -> Self {
        let node = Node::empty();
        std::fs::write(node.root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        for (cgroup, max) in limits {
            let dir = node.root.join(cgroup.trim_start_matches('/'));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("memory.max"), format!("{max}\n")).unwrap();
        }
        node
    }

    /// cgroup v1 with `(cgroup, memory.limit_in_bytes)` pairs.
    fn v1(limits: &[(&str, &str)]) -> Self {
        let node = Node::empty();
        for (cgroup, limit) in limits {
            let dir = node
                .root
                .join("memory")
                .join(cgroup.trim_start_matches('/'));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("memory.limit_in_bytes"), format!("{limit}\n")).unwrap();
        }
        node
    }

    fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cgroup");
        let bundle = dir.path().join("bundles").join(ID);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&bundle).unwrap();
        Node {
            _dir: dir,
            root,
            bundle,
        }
    }

    /// Writes the bundle's config.json as containerd's CRI plugin writes a pod sandbox's.
    fn sandbox(&self, cgroups_path: &str, annotations: &[(&str, &str)]) -> &Self {
        let mut ann = serde_json::Map::new();
        ann.insert("io.kubernetes.cri.container-type".into(), json!("sandbox"));
        ann.insert("io.kubernetes.cri.sandbox-id".into(), json!(ID));
        for (k, v) in annotations {
            ann.insert(k.to_string(), json!(v));
        }
        self.config(json!({
            "ociVersion": "1.0.2-dev",
            "process": {"args": ["/pause"], "cwd": "/", "user": {"uid": 65535, "gid": 65535}},
            "root": {"path": "rootfs", "readonly": true},
            "linux": {
                "cgroupsPath": cgroups_path,
                "resources": {"cpu": {"shares": 2}},
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            },
            "annotations": ann,
        }))
    }

    fn config(&self, spec: Value) -> &Self {
        std::fs::write(self.bundle.join("config.json"), spec.to_string()).unwrap();
        self
    }

    fn plan(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "plan".to_string(),
            "--bundle".to_string(),
            self.bundle.display().to_string(),
            "--cgroup-root".to_string(),
            self.root.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        runsc_guard(&args)
    }
}

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

fn runsc_guard(args: &[String]) -> Run {
    // No runsc on PATH: every test says which release it plans for, or means "unknown".
    runsc_guard_with_path(args, Path::new("/nonexistent"))
}

fn runsc_guard_with_path(args: &[String], path: &Path) -> Run {
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

fn burstable_slice() -> String {
    format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice")
}

fn burstable_path() -> String {
    format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}")
}

/// The incident's node: the pod slice has MemoryMax=256M, nothing above it is limited.
fn incident_node() -> Node {
    Node::v2(&[
        ("/kubepods.slice", "max"),
        ("/kubepods.slice/kubepods-burstable.slice", "max"),
        (&burstable_slice(), "268435456"),
    ])
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_incidents_pod_is_adjusted_to_its_slice() {
    let node = incident_node();
    node.sandbox(
        &burstable_path(),
        &[("io.kubernetes.cri.sandbox-memory", "268435456")],
    );
    let run = node.plan(&["--runsc-version", "0.0~20221219.0", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["container_id"], ID);
    assert_eq!(v["role"], "sandbox");
    assert_eq!(v["driver"], "systemd");
    assert_eq!(v["pod_cgroup"], burstable_slice());
    assert_eq!(v["pod_memory_limit"], 268435456);
    assert!(
        v["limit_source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{}/memory.max", burstable_slice())),
        "{v}"
    );
    assert_eq!(v["total_memory"], 268435456);
    assert_eq!(strings(&v["runsc_flags"]), ["--systemd-cgroup=true"]);
    assert_eq!(
        strings(&v["spec_changes"]),
        ["linux.resources.memory.limit: unset -> 268435456 (256 MiB)"]
    );
    assert_eq!(v["verdict"], "adjusted");
    assert!(!strings(&v["reasons"]).is_empty());
    assert_eq!(v["relax"], Value::Null);
}

#[test]
fn human_output_is_a_short_summary() {
    let node = incident_node();
    node.sandbox(&burstable_path(), &[]);
    let run = node.plan(&["--runsc-version", "release-20240729.0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "verdict:      adjusted",
        "driver:       systemd",
        "guest memory: 256 MiB (268435456 bytes)",
        "runsc flags:  --systemd-cgroup=true",
        "reasons:",
    ] {
        assert!(
            run.stdout.contains(line),
            "{line:?} missing:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.lines().count() < 20, "{}", run.stdout);
}

#[test]
fn a_pod_whose_slice_cannot_be_found_is_refused_with_exit_3() {
    let node = Node::v2(&[("/kubepods.slice", "max")]);
    node.sandbox(&burstable_path(), &[]);
    let run = node.plan(&["--runsc-version", "20221219", "--json"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(v["verdict"], "refused");
    let reasons = strings(&v["reasons"]).join("\n");
    assert!(reasons.contains("does not exist"), "{reasons}");
    assert!(
        reasons.contains("io.kubernetes.cri.sandbox-memory"),
        "{reasons}"
    );

    // The human form says why, and still exits 3.
    let run = node.plan(&["--runsc-version", "20221219"]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.contains("refused because:"), "{}", run.stdout);

    // warn mode goes on.
    let run = node.plan(&["--runsc-version", "20221219", "--mode", "warn", "--json"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.json()["verdict"], "adjusted");
}

#[test]
fn runtimeclass_overhead_keeps_room_for_the_sandbox() {
    let node = Node::v2(&[
        ("/kubepods.slice", "max"),
        ("/kubepods.slice/kubepods-burstable.slice", "max"),
        (&burstable_slice(), &(320 * MIB).to_string()),
    ]);
    node.sandbox(
        &burstable_path(),
        &[("io.kubernetes.cri.sandbox-memory", "268435456")],
    );
    let v = node
        .plan(&["--runsc-version", "0.0~20221219.0", "--json"])
        .json();
    assert_eq!(v["pod_memory_limit"], 320 * MIB);
    assert_eq!(v["total_memory"], 256 * MIB);
    assert_eq!(
        v["relax"]["target"]["unit"],
        format!("cri-containerd-{ID}.scope")
    );
    assert_eq!(v["relax"]["to"], 320 * MIB);
}

#[test]
fn cgroupfs_pods_on_v1() {
    let pod = format!("/kubepods/burstable/pod{UID}");
    let node = Node::v1(&[
        ("/", "9223372036854771712"),
        ("/kubepods", "8589934592"),
        ("/kubepods/burstable", "9223372036854771712"),
        (&pod, "268435456"),
    ]);
    node.sandbox(&format!("{pod}/{ID}"), &[]);
    let v = node
        .plan(&["--runsc-version", "0.0~20221219.0", "--json"])
        .json();
    assert_eq!(v["driver"], "cgroupfs");
    assert_eq!(v["layout"], "legacy");
    assert_eq!(v["pod_cgroup"], pod);
    assert_eq!(v["total_memory"], 268435456);
    assert_eq!(strings(&v["runsc_flags"]), Vec::<String>::new());
    assert!(v["limit_source"]
        .as_str()
        .unwrap()
        .ends_with("memory.limit_in_bytes"));
}

#[test]
fn runsc_toml_and_mode_flags() {
    let node = incident_node();
    node.sandbox(&burstable_path(), &[]);
    let toml = node.bundle.parent().unwrap().join("runsc.toml");
    std::fs::write(
        &toml,
        "guard_mode = \"warn\"\n[runsc_config]\nsystemd-cgroup = \"false\"\n",
    )
    .unwrap();
    let toml = toml.display().to_string();

    // The file's warn mode keeps the operator's false, loudly.
    let v = node
        .plan(&["--runsc-version", "20221219", "--config", &toml, "--json"])
        .json();
    assert_eq!(v["mode"], "warn");
    assert_eq!(v["driver"], "cgroupfs");
    assert!(strings(&v["warnings"])
        .join("\n")
        .contains("KEPT runsc_config systemd-cgroup"));

    // --mode overrides the file: enforce overrides the operator's false.
    let v = node
        .plan(&[
            "--runsc-version",
            "20221219",
            "--config",
            &toml,
            "--mode",
            "enforce",
            "--json",
        ])
        .json();
    assert_eq!(v["driver"], "systemd");
    assert_eq!(strings(&v["runsc_flags"]), ["--systemd-cgroup=true"]);
}

#[test]
fn containers_that_join_the_sandbox() {
    let node = incident_node();
    node.sandbox(
        &format!("kubepods-burstable-pod{UID}.slice:cri-containerd:app"),
        &[
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.sandbox-id", ID),
        ],
    );
    let v = node.plan(&["--runsc-version", "20221219", "--json"]).json();
    assert_eq!(v["role"], "container");
    assert_eq!(strings(&v["runsc_flags"]), ["--systemd-cgroup=true"]);
    assert_eq!(v["total_memory"], Value::Null);
}

#[test]
fn an_unknown_runsc_is_planned_as_the_oldest_and_said_so() {
    let node = incident_node();
    node.sandbox(&burstable_path(), &[]);
    let run = node.plan(&["--json"]);
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    assert_eq!(run.json()["total_memory"], 268435456);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let node = incident_node();
    node.sandbox(&burstable_path(), &[]);
    let cases: [(&[&str], i32, &str); 4] = [
        (&["--mode", "strict"], 2, "--mode"),
        (&["--runsc-version", "latest"], 2, "--runsc-version"),
        (
            &["--config", "/nonexistent/runsc.toml"],
            1,
            "/nonexistent/runsc.toml",
        ),
        (&["--frobnicate"], 2, "unknown option --frobnicate"),
    ];
    for (args, code, says) in cases {
        let run = node.plan(args);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }

    std::fs::write(node.bundle.join("config.json"), "{\"linux\": [").unwrap();
    let run = node.plan(&["--runsc-version", "20221219"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("config.json is not an OCI runtime spec"),
        "{}",
        run.stderr
    );

    let run = Node::empty().plan(&["--runsc-version", "20221219"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("config.json"), "{}", run.stderr);

    let bare = Node::empty();
    bare.sandbox(&burstable_path(), &[]);
    let run = bare.plan(&["--runsc-version", "20221219"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no cgroup filesystem"),
        "{}",
        run.stderr
    );

    // Hostile paths are refusals naming the field, exit 3.
    for path in [
        "/kubepods/../system.slice/x",
        "kubepods/burstable/pod1/x",
        "kubepods--x.slice:a:b",
    ] {
        node.sandbox(path, &[]);
        let run = node.plan(&["--runsc-version", "20221219", "--json"]);
        assert_eq!(run.code, 3, "{path}: {}", run.stdout);
        assert!(
            strings(&run.json()["refusals"])
                .join(" ")
                .contains("cgroupsPath"),
            "{path}"
        );
    }
    node.config(json!({"ociVersion": "1.0.2"}));
    let run = node.plan(&["--runsc-version", "20221219", "--json"]);
    assert_eq!(run.code, 3);
    assert!(strings(&run.json()["refusals"])[0].contains("\"linux\""));
}

#[test]
fn show_prints_what_the_shim_recorded() {
    let node = incident_node();
    node.sandbox(&burstable_path(), &[]);
    let run = runsc_guard(&[
        "show".to_string(),
        "--bundle".to_string(),
        node.bundle.display().to_string(),
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("no guard record"), "{}", run.stderr);

    // A record as the shim writes it: the plan `plan --json` prints, plus what happened.
    let plan = node.plan(&["--runsc-version", "20221219", "--json"]).json();
    let record = json!({"plan": plan, "verification": null, "relaxed": false, "relax_error": null});
    std::fs::write(node.bundle.join("runsc-guard.json"), record.to_string()).unwrap();
    let run = runsc_guard(&[
        "show".to_string(),
        "--bundle".to_string(),
        node.bundle.display().to_string(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("verdict:      adjusted"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("verification: not run"),
        "{}",
        run.stdout
    );
}

#[test]
fn version_names_the_build_and_the_runsc() {
    let run = runsc_guard(&["version".to_string()]);
    assert_eq!(run.code, 0);
    assert!(run
        .stdout
        .starts_with(&format!("runsc-guard {}", env!("CARGO_PKG_VERSION"))));
    assert!(run.stdout.contains("runsc: not found"), "{}", run.stdout);

    let bin = tempfile::tempdir().unwrap();
    let runsc = bin.path().join("runsc");
    std::fs::write(
        &runsc,
        "#!/bin/sh\necho 'runsc version 0.0~20221219.0'\necho 'spec: 1.0.2-dev'\n",
    )
    .unwrap();
    std::fs::set_permissions(&runsc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = runsc_guard_with_path(&["version".to_string()], bin.path());
    assert!(
        run.stdout
            .contains(&format!("runsc: 0.0~20221219.0 ({})", runsc.display())),
        "{}{}",
        run.stdout,
        run.stderr
    );
}

/// In a fixture tree a limit file can be a symlink out of it, and a file can sit where the
/// sandbox's cgroup belongs: neither is a cgroup filesystem, and the plan refuses both.
#[test]
fn symlinked_limit_files_and_a_file_at_the_leaf_are_refused() {
    let node = incident_node();
    node.sandbox(&burstable_path(), &[]);
    let run = node.plan(&["--runsc-version", "20221219", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let leaf = run.json()["leaf_cgroup"]
        .as_str()
        .unwrap_or_else(|| panic!("a leaf: {}", run.stdout))
        .to_string();
    let leaf_path = node.root.join(leaf.trim_start_matches('/'));
    std::fs::write(&leaf_path, "a file, not a cgroup\n").unwrap();
    let run = node.plan(&["--runsc-version", "20221219", "--json"]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    let refusals = strings(&run.json()["refusals"]).join(" ");
    assert!(
        refusals.contains(&leaf) && refusals.contains("a file"),
        "{refusals}"
    );
    std::fs::remove_file(&leaf_path).unwrap();

    // The pod's limit file points outside the tree at a file that says "max".
    let outside = node.root.parent().unwrap().join("outside.max");
    std::fs::write(&outside, "max\n").unwrap();
    let limit = node
        .root
        .join(burstable_slice().trim_start_matches('/'))
        .join("memory.max");
    std::fs::remove_file(&limit).unwrap();
    std::os::unix::fs::symlink(&outside, &limit).unwrap();
    let run = node.plan(&["--runsc-version", "20221219", "--json"]);
    assert_eq!(run.code, 3, "{}", run.stdout);
    let v = run.json();
    assert_eq!(v["verdict"], "refused", "{v}");
    assert!(v.to_string().contains("symlink"), "{v}");
}
