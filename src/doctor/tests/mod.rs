//! The doctor against nodes written down as fixture trees: a cgroup tree, a /proc with the
//! sandbox processes, containerd's config, runsc.toml and the bundles, with a probe standing in
//! for `containerd --version`, `runsc --version` and the shim's `-v`.

mod config;
mod nodes;
mod render;

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
    /// The Go toolchain each program (by path) says built it.
    go: HashMap<PathBuf, String>,
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

    /// `name` (already added) was built with Go `version`.
    fn built_with(mut self, name: &str, version: &str) -> Self {
        let path = self.programs[name].0.clone();
        self.go.insert(path, version.to_string());
        self
    }
}

impl Probe for FakeProbe {
    fn go_version(&self, program: &Path) -> Option<String> {
        self.go.get(program).cloned()
    }

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
        // The incident's sandboxes come from runc's shim; the others from the runsc shim.
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

/// The incident's containerd config: runsc through runc's shim, no SystemdCgroup for it.
const INCIDENT_CONFIG: &str = include_str!("../../../tests/fixtures/containerd/incident-v2.toml");

/// This project's config: the runsc shim with its runsc.toml.
fn fixed_config(runsc_toml: &Path) -> String {
    include_str!("../../../tests/fixtures/containerd/guarded-v2.toml")
        .replace("@RUNSC_TOML@", &runsc_toml.display().to_string())
}

fn incident_probe() -> FakeProbe {
    FakeProbe::default()
        .with("containerd", Ok(CONTAINERD_1_6))
        .with("runsc", Ok(RUNSC_20231009))
}

fn guard_probe() -> FakeProbe {
    incident_probe().with(
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

fn incident_node() -> Node {
    let escaped = format!("/system.slice/kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}");
    Node::new()
        .systemd_v2_node(&escaped)
        .containerd_config(INCIDENT_CONFIG)
        .process(1, "/sbin/init")
        .process(812, "/usr/bin/containerd")
        .sandbox(
            4242,
            &format!("0::{escaped}"),
            NODE_MEMORY_KIB * 1024,
            &format!("kubepods-burstable-pod{UID}.slice:cri-containerd:{ID}"),
        )
}
