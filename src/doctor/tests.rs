//! The doctor against nodes written down as fixture trees: a cgroup tree, a /proc with the
//! sandbox processes, containerd's config, runsc.toml and the bundles, with a probe standing in
//! for `containerd --version`, `runsc --version` and the shim's `-v`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::cgroup::CgroupLayout;

const UID: &str = "3f1c9a2e_5b7d_4c1e_9a0f_2d6e8b4c7a1f";
const ID: &str = "4d2c8e6f1a3b";
const POD_LIMIT: u64 = 256 << 20;
/// A 4 GiB node, as MemTotal says it (a little less than 4 GiB).
const NODE_MEMORY_KIB: u64 = 4_007_456;
const CONTAINERD_1_6: &str =
    "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n";
const RUNSC_20231009: &str = "runsc version release-20231009.0\nspec: 1.1.0\n";

/// Programs by name: where `find` says they are, and what they print.
#[derive(Default)]
struct FakeProbe {
    programs: HashMap<String, (PathBuf, Result<String, String>)>,
}

impl FakeProbe {
    fn with(mut self, name: &str, output: Result<&str, &str>) -> Self {
        let path = if name.contains('/') {
            PathBuf::from(name)
        } else {
            PathBuf::from("/usr/bin").join(name)
        };
        self.programs.insert(
            name.to_string(),
            (path, output.map(str::to_string).map_err(str::to_string)),
        );
        self
    }
}

impl Probe for FakeProbe {
    fn find(&self, name: &str) -> Option<PathBuf> {
        self.programs.get(name).map(|(p, _)| p.clone())
    }

    fn find_on(&self, name: &str, _path_var: &str) -> Option<PathBuf> {
        self.find(name)
    }

    fn run(&self, program: &Path, _args: &[&str]) -> Result<String, String> {
        self.programs
            .values()
            .find(|(p, _)| p == program)
            .map(|(_, out)| out.clone())
            .unwrap_or_else(|| Err(format!("{} is not a fixture program", program.display())))
    }
}

/// A node in a temp dir.
struct Node {
    dir: tempfile::TempDir,
    sources: Sources,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources {
            containerd_config: dir.path().join("etc/containerd/config.toml"),
            runsc_config: None,
            cgroup_root: dir.path().join("sys/fs/cgroup"),
            proc_root: dir.path().join("proc"),
        };
        let node = Node { dir, sources };
        node.write(
            "proc/meminfo",
            &format!("MemTotal:       {NODE_MEMORY_KIB} kB\nMemFree: 1 kB\n"),
        );
        node
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let f = self.path(rel);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, content).unwrap();
    }

    fn systemd(self) -> Self {
        self.write("proc/1/comm", "systemd\n");
        self
    }

    /// cgroup v2 with `(cgroup, memory.max)`.
    fn v2(self, limits: &[(&str, &str)]) -> Self {
        self.write("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n");
        for (cgroup, max) in limits {
            self.write(
                &format!("sys/fs/cgroup{cgroup}/memory.max"),
                &format!("{max}\n"),
            );
        }
        self
    }

    /// The pod slice of the incident's pod, with its 256 MiB limit.
    fn pod_slice() -> String {
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID}.slice")
    }

    fn systemd_v2_node(self, sandbox_leaf: &str) -> Self {
        let pod = Self::pod_slice();
        self.systemd().v2(&[
            ("/kubepods.slice", "3800000000"),
            ("/kubepods.slice/kubepods-burstable.slice", "max"),
            (&pod, &POD_LIMIT.to_string()),
            ("/system.slice", "max"),
            (sandbox_leaf, "max"),
        ])
    }

    /// A `runsc-sandbox` process and its bundle with the CRI annotations.
    fn sandbox(self, pid: i32, cgroup_line: &str, total_memory: u64, cgroups_path: &str) -> Self {
        // The seed's sandboxes come from runc's shim; the others from the runsc shim.
        let shim = if total_memory == POD_LIMIT {
            "runsc"
        } else {
            "runc"
        };
        let bundle = self.path(&format!(
            "run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}"
        ));
        let spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "annotations": {
                "io.kubernetes.cri.container-type": "sandbox",
                "io.kubernetes.cri.sandbox-name": "incident",
                "io.kubernetes.cri.sandbox-namespace": "default",
                "io.kubernetes.cri.sandbox-uid": UID.replace('_', "-"),
            },
            "linux": { "cgroupsPath": cgroups_path },
        });
        fs::create_dir_all(&bundle).unwrap();
        fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
        let argv = [
            "runsc-sandbox".to_string(),
            format!("--root=/run/containerd/{shim}/k8s.io"),
            format!("--log={}/log.json", bundle.display()),
            "--log-format=json".to_string(),
            "boot".to_string(),
            format!("--bundle={}", bundle.display()),
            format!("--total-memory={total_memory}"),
            ID.to_string(),
        ];
        let mut cmdline = argv.join("\0");
        cmdline.push('\0');
        self.write(&format!("proc/{pid}/cmdline"), &cmdline);
        self.write(&format!("proc/{pid}/cgroup"), &format!("{cgroup_line}\n"));
        self
    }

    /// Another process, so the scan has something to skip.
    fn process(self, pid: i32, argv0: &str) -> Self {
        self.write(
            &format!("proc/{pid}/cmdline"),
            &format!("{argv0}\0--flag\0"),
        );
        self.write(
            &format!("proc/{pid}/cgroup"),
            "0::/system.slice/containerd.service\n",
        );
        self
    }

    fn containerd_config(self, text: &str) -> Self {
        self.write("etc/containerd/config.toml", text);
        self
    }

    /// [`fixed_config`] pointing at this node's runsc.toml.
    fn with_fixed_config(self) -> Self {
        let config = fixed_config(&self.path("etc/containerd/runsc.toml"));
        self.containerd_config(&config)
    }

    fn run(&self, probe: &FakeProbe) -> Report {
        let report = run(&self.sources, probe);
        assert_filled(&report);
        report
    }
}

/// The seed's containerd config: runsc through runc's shim, no SystemdCgroup for it.
const SEED_CONFIG: &str = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
  BinaryName = "runsc"
"#;

/// This project's config: the runsc shim with its runsc.toml.
fn fixed_config(runsc_toml: &Path) -> String {
    format!(
        r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
  runtime_type = "io.containerd.runsc.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
  TypeUrl = "io.containerd.runsc.v1.options"
  ConfigPath = "{}"
"#,
        runsc_toml.display()
    )
}

fn seed_probe() -> FakeProbe {
    FakeProbe::default()
        .with("containerd", Ok(CONTAINERD_1_6))
        .with("runsc", Ok(RUNSC_20231009))
}

fn guard_probe() -> FakeProbe {
    seed_probe().with(
        "containerd-shim-runsc-v1",
        Ok(&crate::shim::info::version_text()),
    )
}

fn finding<'a>(report: &'a Report, check: &str) -> &'a Finding {
    report
        .findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no finding {check} in {:#?}", report.findings))
}

/// No message was left a template: every `{NAME}` was filled in.
fn assert_filled(report: &Report) {
    for f in &report.findings {
        for text in [Some(&f.summary), f.fix.as_ref()].into_iter().flatten() {
            let unfilled = text
                .match_indices('{')
                .any(|(i, _)| text[i + 1..].starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(!unfilled, "{}: {text}", f.check);
        }
    }
}

fn failed(report: &Report) -> Vec<&str> {
    report.failures().map(|f| f.check.as_str()).collect()
}

fn seed_node() -> Node {
    let escaped = format!("/system.slice/kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}");
    Node::new()
        .systemd_v2_node(&escaped)
        .containerd_config(SEED_CONFIG)
        .process(1, "/sbin/init")
        .process(812, "/usr/bin/containerd")
        .sandbox(
            4242,
            &format!("0::{escaped}"),
            NODE_MEMORY_KIB * 1024,
            &format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}"),
        )
}

#[test]
fn the_seeds_production_node_fails_and_names_the_pod() {
    let node = seed_node();
    let report = node.run(&seed_probe());
    assert_eq!(report.status, Severity::Fail);
    assert_eq!(report.exit_code, 2);
    assert_eq!(
        failed(&report),
        [
            "handler.runsc.systemd-cgroup",
            &format!("sandbox.{ID}.placement"),
            &format!("sandbox.{ID}.memory"),
        ]
    );
    // The misconfiguration itself, caught although the handler goes through runc's shim.
    let h = finding(&report, "handler.runsc.systemd-cgroup");
    assert!(
        h.summary.contains("does not get --systemd-cgroup"),
        "{}",
        h.summary
    );
    assert!(
        h.fix.as_deref().unwrap().contains("SystemdCgroup = true"),
        "{h:?}"
    );
    // The escape, with the pod's name from its bundle.
    let p = finding(&report, &format!("sandbox.{ID}.placement"));
    assert!(p.summary.contains("pod default/incident"), "{}", p.summary);
    assert!(
        p.summary.contains("OUTSIDE its pod's cgroup"),
        "{}",
        p.summary
    );
    assert!(p.summary.contains("/system.slice/"), "{}", p.summary);
    assert!(
        p.summary.contains("created through runc's shim"),
        "{}",
        p.summary
    );
    assert!(
        p.fix
            .as_deref()
            .unwrap()
            .contains("kubectl delete pod -n default incident"),
        "{p:?}"
    );
    // The guest sized at the whole node.
    let m = finding(&report, &format!("sandbox.{ID}.memory"));
    assert!(
        m.summary.contains("above its pod's limit 256 MiB"),
        "{}",
        m.summary
    );
    assert!(
        m.summary.contains("bytes, the whole node's memory)"),
        "{}",
        m.summary
    );
    // runsc 20231009's problems, not handled by anything on this node.
    assert_eq!(
        finding(&report, "runsc.runsc.leaf-sizing").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&report, "runsc.runsc.silent-systemd-path").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&report, "runsc.runsc.no-update").severity,
        Severity::Ok
    );
    assert_eq!(finding(&report, "containerd.shim").severity, Severity::Ok);
    assert_eq!(
        report.node.sandboxes.len(),
        1,
        "only the runsc-sandbox process counts"
    );
    let s = &report.node.sandboxes[0];
    assert_eq!(s.pod.label().as_deref(), Some("default/incident"));
    assert_eq!(s.pod_cgroup.as_ref().unwrap().as_str(), Node::pod_slice());
    // Every failure says what to do.
    assert!(report.failures().all(|f| f.fix.is_some()));
}

#[test]
fn the_fixed_node_is_all_well() {
    let leaf = format!("{}/cri-containerd-{ID}.scope", Node::pod_slice());
    let node = Node::new().systemd_v2_node(&leaf);
    node.write(
        "etc/containerd/runsc.toml",
        "[runsc_config]\nplatform = \"systrap\"\n",
    );
    let node = node.with_fixed_config().sandbox(
        4242,
        &format!("0::{leaf}"),
        POD_LIMIT,
        &format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}"),
    );
    let report = node.run(&guard_probe());
    let not_ok: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    assert_eq!(report.exit_code, 0);
    let h = finding(&report, "handler.runsc.systemd-cgroup");
    assert!(
        h.summary.contains("runsc-guard adds --systemd-cgroup"),
        "{}",
        h.summary
    );
    let leaf_sizing = finding(&report, "runsc.runsc.leaf-sizing");
    assert!(
        leaf_sizing.summary.contains("runsc-guard sets"),
        "{}",
        leaf_sizing.summary
    );
    let m = finding(&report, &format!("sandbox.{ID}.memory"));
    assert!(
        m.summary.contains("within its pod's limit 256 MiB"),
        "{}",
        m.summary
    );
}

#[test]
fn the_stock_shim_without_systemd_cgroup_fails_on_a_systemd_node() {
    let leaf = format!("{}/cri-containerd-{ID}.scope", Node::pod_slice());
    let node = Node::new().systemd_v2_node(&leaf);
    node.write("etc/containerd/runsc.toml", "");
    let node = node.with_fixed_config();
    let probe = seed_probe().with(
        "containerd-shim-runsc-v1",
        Ok("containerd-shim-runsc-v1:\n  Version:  release-20231009.0\n"),
    );
    let report = node.run(&probe);
    assert_eq!(failed(&report), ["handler.runsc.systemd-cgroup"]);
    assert_eq!(finding(&report, "containerd.shim").severity, Severity::Warn);
    assert!(finding(&report, "handler.runsc.systemd-cgroup")
        .fix
        .as_deref()
        .unwrap()
        .contains("systemd-cgroup = \"true\""));
}

#[test]
fn cgroup_v1_with_the_cgroupfs_driver() {
    let pod = format!("/kubepods/burstable/pod{}", UID.replace('_', "-"));
    let leaf = format!("{pod}/{ID}");
    let node = Node::new();
    for (cgroup, limit) in [
        ("", "9223372036854771712"),
        ("/kubepods", "3800000000"),
        ("/kubepods/burstable", "9223372036854771712"),
        (pod.as_str(), "268435456"),
        (leaf.as_str(), "268435456"),
    ] {
        node.write(
            &format!("sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes"),
            &format!("{limit}\n"),
        );
    }
    node.write("proc/1/comm", "init\n");
    node.write("etc/containerd/runsc.toml", "");
    let config = fixed_config(&node.path("etc/containerd/runsc.toml"))
        .replace("SystemdCgroup = true", "SystemdCgroup = false");
    let node = node.containerd_config(&config).sandbox(
        77,
        &format!("12:pids:/x\n5:memory:{leaf}\n0::/"),
        POD_LIMIT,
        &leaf,
    );
    let report = node.run(&guard_probe());
    assert_eq!(report.node.cgroups.layout, Some(CgroupLayout::Legacy));
    assert_eq!(report.node.cgroups.kubelet_driver, KubeletDriver::Cgroupfs);
    assert_eq!(report.node.cgroups.systemd, Some(false));
    assert!(failed(&report).is_empty(), "{:#?}", report.findings);
    assert_eq!(report.exit_code, 0, "{:#?}", report.findings);
    assert_eq!(
        finding(&report, &format!("sandbox.{ID}.placement")).severity,
        Severity::Ok
    );

    // The same node with runc's shim told to use systemd: every pod fails to start.
    let wrong = SEED_CONFIG.replace(
        "BinaryName = \"runsc\"",
        "BinaryName = \"runsc\"\n  SystemdCgroup = true",
    );
    fs::write(&node.sources.containerd_config, wrong).unwrap();
    let report = node.run(&guard_probe());
    let h = finding(&report, "handler.runsc.systemd-cgroup");
    assert_eq!(h.severity, Severity::Fail);
    assert!(h.summary.contains("invalid systemd path"), "{}", h.summary);
    // And containerd's default runc disagrees with the kubelet's driver.
    assert_eq!(
        finding(&report, "cgroups.driver-mismatch").severity,
        Severity::Fail
    );
}

#[test]
fn no_runsc_installed() {
    let node = Node::new().systemd_v2_node("/system.slice/x");
    node.write(
        "etc/containerd/runsc.toml",
        "binary_name = \"/opt/gvisor/runsc\"\n",
    );
    let node = node.with_fixed_config();
    let probe = FakeProbe::default()
        .with("containerd", Ok(CONTAINERD_1_6))
        .with(
            "containerd-shim-runsc-v1",
            Ok(&crate::shim::info::version_text()),
        );
    let report = node.run(&probe);
    let f = finding(&report, "runsc./opt/gvisor/runsc.binary");
    assert_eq!(f.severity, Severity::Fail);
    assert!(f.summary.contains("/opt/gvisor/runsc"), "{}", f.summary);
    assert!(f.fix.as_deref().unwrap().contains("install runsc"), "{f:?}");
    assert_eq!(finding(&report, "sandboxes").severity, Severity::Ok);
    assert_eq!(report.exit_code, 2);
}

#[test]
fn nothing_installed_at_all() {
    let report = Node::new().run(&FakeProbe::default());
    assert_eq!(
        finding(&report, "containerd.version").severity,
        Severity::Warn
    );
    assert_eq!(
        finding(&report, "containerd.config").severity,
        Severity::Warn
    );
    assert_eq!(finding(&report, "cgroups.layout").severity, Severity::Fail);
    assert!(finding(&report, "cgroups.layout")
        .fix
        .as_deref()
        .unwrap()
        .contains("--cgroup-root"));
    assert_eq!(report.exit_code, 2);
}

#[test]
fn unreadable_files_are_reported_not_fatal() {
    // A directory where a file should be cannot be read, even by root.
    let escaped = format!("/system.slice/kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}");
    let node = Node::new().systemd_v2_node(&escaped);
    fs::create_dir_all(node.path("etc/containerd/runsc.toml")).unwrap();
    let node = node.with_fixed_config().sandbox(
        4242,
        &format!("0::{escaped}"),
        NODE_MEMORY_KIB * 1024,
        "unused",
    );
    let bundle_spec = node.path(&format!(
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json"
    ));
    fs::remove_file(&bundle_spec).unwrap();
    fs::create_dir(&bundle_spec).unwrap();
    fs::remove_file(node.path("proc/1/comm")).unwrap();
    fs::create_dir(node.path("proc/1/comm")).unwrap();
    let report = node.run(&guard_probe());

    let toml = finding(&report, "handler.runsc.runsc-toml");
    assert_eq!(toml.severity, Severity::Fail);
    assert!(toml.summary.contains("runsc.toml"), "{}", toml.summary);
    assert_eq!(finding(&report, "cgroups.systemd").severity, Severity::Warn);
    let read = finding(&report, &format!("sandbox.{ID}.read"));
    assert_eq!(read.severity, Severity::Warn);
    assert!(read.summary.contains("config.json"), "{}", read.summary);
    // Without the bundle the pod is still found from where the sandbox escaped from.
    let p = finding(&report, &format!("sandbox.{ID}.placement"));
    assert_eq!(p.severity, Severity::Fail);
    assert!(
        p.summary
            .contains(&format!("pod {}", UID.replace('_', "-"))),
        "{}",
        p.summary
    );

    // An unreadable containerd config is a failure that names the file.
    fs::remove_file(&node.sources.containerd_config).unwrap();
    fs::create_dir(&node.sources.containerd_config).unwrap();
    let report = node.run(&guard_probe());
    let c = finding(&report, "containerd.config");
    assert_eq!(c.severity, Severity::Fail);
    assert!(c.summary.contains("config.toml"), "{}", c.summary);
}

#[test]
fn a_containerd_config_that_does_not_parse() {
    let node = Node::new()
        .systemd_v2_node("/system.slice/x")
        .containerd_config("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"\n");
    let report = node.run(&guard_probe());
    let c = finding(&report, "containerd.config");
    assert_eq!(c.severity, Severity::Fail);
    assert!(c.summary.contains("is not valid TOML"), "{}", c.summary);
    assert!(
        c.fix.as_deref().unwrap().contains("containerd config dump"),
        "{c:?}"
    );
    assert_eq!(report.exit_code, 2);
    assert!(report.node.handlers.is_empty());
}

#[test]
fn config_version_3_on_containerd_1x() {
    let node = Node::new().systemd_v2_node("/system.slice/x").containerd_config(
        "version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runsc]\n  runtime_type = \"io.containerd.runsc.v1\"\n",
    );
    let report = node.run(&guard_probe());
    assert_eq!(
        finding(&report, "containerd.config-version").severity,
        Severity::Fail
    );
    let probe = guard_probe().with(
        "containerd",
        Ok("containerd github.com/containerd/containerd/v2 v2.1.4 abc\n"),
    );
    let report = node.run(&probe);
    assert_eq!(
        finding(&report, "containerd.config-version").severity,
        Severity::Ok
    );
    assert_eq!(report.node.handlers[0].handler.name, "runsc");
}

#[test]
fn both_renderers() {
    let report = seed_node().run(&seed_probe());
    let table = render_table(&report);
    assert!(table.starts_with("runsc-guard doctor: FAILURES"), "{table}");
    assert!(table.contains("what to do: "), "{table}");
    assert!(table.contains("default/incident"), "{table}");
    assert!(table.contains("sandboxes:"), "{table}");
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "fail");
    assert_eq!(json["exit_code"], 2);
    assert_eq!(json["node"]["sandboxes"][0]["pod"]["name"], "incident");
    assert_eq!(json["node"]["cgroups"]["layout"], "unified");
    assert!(json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "fail" && f["fix"].is_string()));
}

#[test]
fn a_config_without_a_runsc_handler() {
    let node = Node::new()
        .systemd_v2_node("/system.slice/x")
        .containerd_config(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n",
        );
    let report = node.run(&guard_probe());
    let h = finding(&report, "containerd.handlers");
    assert_eq!(h.severity, Severity::Warn);
    assert!(
        h.fix
            .as_deref()
            .unwrap()
            .contains("/usr/share/runsc-guard/containerd/"),
        "{h:?}"
    );
    // The kubelet's pods are in kubepods.slice but runc's SystemdCgroup is unset.
    assert_eq!(
        finding(&report, "cgroups.driver-mismatch").severity,
        Severity::Fail
    );
}
