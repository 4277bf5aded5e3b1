//! The sandbox as the host sees it: the `runsc-sandbox` process the shim's guard reads from a
//! fixture /proc, the cgroup runsc makes for it in a fixture tree, and (when a test asks for one)
//! a real process standing for it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fake_runsc::{KNOB_SANDBOX_CGROUP, KNOB_TOTAL_MEMORY, SANDBOX_PROCESS_ENV};
use serde_json::Value;

use crate::state::Container;
use crate::{POLL, WAIT_LIMIT};

/// The annotation runsc 20221219 takes as the cgroup it records for the sandbox (and sizes the
/// guest from) instead of `linux.cgroupsPath`'s.
pub(crate) const GVISOR_CGROUP_PARENT: &str = "dev.gvisor.spec.cgroup-parent";

/// The `runsc-sandbox` process runsc leaves for a sandbox, as the shim's guard reads it from
/// `<proc root>/<pid>`. A test double, not a model of runsc: by default it does what runsc
/// 20221219 does with the cgroupfs paths the guard hands it on a host without systemd
/// on cgroup v2; `--systemd-cgroup` is not modelled, a test sets the knobs instead.
#[derive(Debug, PartialEq)]
pub(crate) struct SandboxProcess {
    /// The text of `/proc/<pid>/cgroup`.
    cgroup: String,
    /// The command line, NUL-separated in `/proc/<pid>/cmdline`.
    argv: Vec<String>,
    /// The cgroup runsc creates in the fixture tree, with its `memory.max`, when the path's
    /// cgroup does not exist yet (its parent must: the fake makes one directory, no more).
    new_cgroup: Option<(PathBuf, String)>,
}

impl SandboxProcess {
    /// `cgroup_root` is the fixture tree to read existing cgroups' limits from, if any;
    /// `host_memory` is runsc's cap on the guest (the host's MemTotal).
    pub(crate) fn new(
        id: &str,
        bundle: &str,
        spec: &Value,
        globals: &BTreeMap<String, String>,
        cgroup_root: Option<&Path>,
        host_memory: u64,
    ) -> Result<Self, String> {
        let annotations = &spec["annotations"];
        let cgroups_path = match spec["linux"]["cgroupsPath"].as_str().unwrap_or_default() {
            // runsc gives a sandbox without a path /<id>.
            "" => format!("/{id}"),
            path => path.to_string(),
        };
        // The processes sit in linux.cgroupsPath's cgroup: it is the parent without the
        // annotation, and the sub cgroup runsc joins with it (cgroupfs on v2).
        let own = resolve_cgroup(&cgroups_path);
        let cgroup = match annotations[KNOB_SANDBOX_CGROUP].as_str() {
            Some(text) => format!("{}\n", text.trim_end()),
            None => format!("0::{own}\n"),
        };
        let total = match annotations[KNOB_TOTAL_MEMORY].as_str() {
            Some(knob) => knob.to_string(),
            None => {
                // --total-memory = min(host memory, the limit of the cgroup runsc records: the
                // annotation's when present, else the path's).
                let recorded = annotations[GVISOR_CGROUP_PARENT]
                    .as_str()
                    .map(resolve_cgroup)
                    .unwrap_or_else(|| own.clone());
                let spec_limit = spec["linux"]["resources"]["memory"]["limit"]
                    .as_i64()
                    .filter(|l| *l > 0)
                    .map(|l| l.unsigned_abs());
                let limit = recorded_cgroup_limit(&recorded, spec_limit, cgroup_root)?;
                limit
                    .map_or(host_memory, |l| l.min(host_memory))
                    .to_string()
            }
        };
        // runsc writes the spec's limit into the cgroup it records, when it creates it; the sub
        // cgroup below a named parent gets no resources.
        let new_cgroup = cgroup_root
            .filter(|_| own.starts_with('/'))
            .map(|root| root.join(own.trim_start_matches('/')))
            .filter(|dir| !dir.exists() && dir.parent().is_some_and(Path::is_dir))
            .map(|dir| {
                let spec_limit = spec["linux"]["resources"]["memory"]["limit"].as_i64();
                let limit = match spec_limit.filter(|l| *l > 0) {
                    Some(l) if annotations[GVISOR_CGROUP_PARENT].is_null() => {
                        (l.unsigned_abs() / 4096 * 4096).to_string()
                    }
                    _ => "max".to_string(),
                };
                (dir, limit)
            });
        let mut argv = vec!["runsc-sandbox".to_string()];
        argv.extend(globals.iter().map(|(k, v)| format!("--{k}={v}")));
        argv.extend(["boot", "--bundle", bundle, "--total-memory", &total, id].map(String::from));
        Ok(SandboxProcess {
            cgroup,
            argv,
            new_cgroup,
        })
    }

    /// Creates the new cgroup in the fixture tree, if any, and returns its directory.
    pub(crate) fn create_cgroup(&self) -> Result<Option<&Path>, String> {
        let Some((dir, limit)) = &self.new_cgroup else {
            return Ok(None);
        };
        fs::create_dir(dir)
            .and_then(|()| fs::write(dir.join("memory.max"), format!("{limit}\n")))
            .map_err(|e| format!("fake-runsc: creating the cgroup {}: {e}", dir.display()))?;
        Ok(Some(dir))
    }

    pub(crate) fn write(&self, proc_root: &Path, pid: u32) -> Result<(), String> {
        let dir = proc_root.join(pid.to_string());
        let mut cmdline = self.argv.join("\0");
        cmdline.push('\0');
        fs::create_dir_all(&dir)
            .and_then(|()| fs::write(dir.join("cgroup"), &self.cgroup))
            .and_then(|()| fs::write(dir.join("cmdline"), cmdline))
            .map_err(|e| {
                format!(
                    "fake-runsc: writing the sandbox process {}: {e}",
                    dir.display()
                )
            })
    }

    pub(crate) fn remove(proc_root: &Path, pid: u64) -> Result<(), String> {
        remove_dir(&proc_root.join(pid.to_string()))
    }
}

/// Removes a fixture directory (a fake process, a fake cgroup) that may be gone already.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("fake-runsc: removing {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A cgroupfs path as runsc resolves it: an absolute one is under the cgroup root; a relative
/// one is joined to the parent of runsc's own cgroup, which the fake takes to be
/// `/system.slice/containerd.service` (the incident's escape).
pub(crate) fn resolve_cgroup(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/system.slice/{path}")
    }
}

/// runsc 20221219's `MemoryLimit()` of the cgroup it records, None for no limit. A cgroup that
/// exists in the fixture tree keeps its own `memory.max` (runsc 20221219 reads no parent); one
/// that does not is created by runsc with the spec's limit, which the kernel keeps in pages.
pub(crate) fn recorded_cgroup_limit(
    cgroup: &str,
    spec_limit: Option<u64>,
    cgroup_root: Option<&Path>,
) -> Result<Option<u64>, String> {
    let dir = cgroup_root.map(|root| root.join(cgroup.trim_start_matches('/')));
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return Ok(spec_limit.map(|l| l / 4096 * 4096));
    };
    let file = dir.join("memory.max");
    match fs::read_to_string(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("fake-runsc: reading {}: {e}", file.display())),
        Ok(text) if text.trim() == "max" => Ok(None),
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("fake-runsc: {} holds {text:?}", file.display())),
    }
}

/// `MemTotal` from /proc/meminfo, in bytes: what runsc caps the guest at.
pub(crate) fn host_memory() -> Result<u64, String> {
    let meminfo = fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("fake-runsc: reading /proc/meminfo: {e}"))?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "fake-runsc: no MemTotal in /proc/meminfo".to_string())
}

/// Starts the process standing for `runsc-sandbox`: fake-runsc itself, following the state file.
/// It is not waited for: when this `create` exits, it is an orphan of the shim, like a real one.
pub(crate) fn spawn_sandbox_process(state: &Path) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("fake-runsc: own path: {e}"))?;
    let child = std::process::Command::new(exe)
        .arg("sandbox-process")
        .arg(state)
        .env(SANDBOX_PROCESS_ENV, state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("fake-runsc: starting the sandbox process: {e}"))?;
    Ok(child.id())
}

/// The sandbox process: exits with its init's status once that stops, 137 once the container's
/// state is deleted (runsc delete kills the sandbox). Its state is written by `create` after it
/// starts, so it waits for the file to appear first.
pub(crate) fn sandbox_process(state: &Path) -> ExitCode {
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut seen = false;
    while Instant::now() < deadline {
        match fs::read_to_string(state) {
            Ok(text) => {
                seen = true;
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    let mut c = Container { value };
                    c.value["process_pid"] = Value::Null;
                    c.settle();
                    if c.status() == "stopped" {
                        let code = c.value["exit_status"].as_u64().unwrap_or(137);
                        return ExitCode::from(code.min(255) as u8);
                    }
                }
            }
            Err(_) if seen => return ExitCode::from(137),
            // The create that started it failed before writing the state.
            Err(_) if Instant::now() + WAIT_LIMIT > deadline + Duration::from_secs(5) => {
                return ExitCode::from(137)
            }
            Err(_) => {}
        }
        std::thread::sleep(POLL);
    }
    ExitCode::from(137)
}

/// Whether a process exists and is not a zombie.
pub(crate) fn is_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Tree;
    use serde_json::json;

    const POD: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice";
    const GIB: u64 = 1 << 30;

    fn sandbox(spec: Value, tree: Option<&Tree>) -> SandboxProcess {
        let globals = BTreeMap::from([("root".to_string(), "/r".to_string())]);
        let root = tree.map(|t| t.0.as_path());
        SandboxProcess::new("s1", "/b", &spec, &globals, root, 16 * GIB).unwrap()
    }

    fn total_memory(p: &SandboxProcess) -> &str {
        let i = p.argv.iter().position(|a| a == "--total-memory").unwrap();
        &p.argv[i + 1]
    }

    #[test]
    fn a_sandbox_under_the_pod_parent_is_sized_by_the_pod() {
        let tree = Tree::new(
            "parent",
            &[(&format!("{}/memory.max", &POD[1..]), "268435456\n")],
        );
        let leaf = format!("{POD}/cri-containerd-s1.scope");
        let spec = json!({
            "linux": {"cgroupsPath": leaf},
            "annotations": {GVISOR_CGROUP_PARENT: POD},
        });
        let p = sandbox(spec, Some(&tree));
        assert_eq!(p.cgroup, format!("0::{leaf}\n"));
        assert_eq!(
            p.argv,
            [
                "runsc-sandbox",
                "--root=/r",
                "boot",
                "--bundle",
                "/b",
                "--total-memory",
                "268435456",
                "s1"
            ]
        );
    }

    #[test]
    fn a_new_leaf_takes_the_spec_limit_and_an_unlimited_cgroup_the_host_memory() {
        let leaf = format!("{POD}/cri-containerd-s1.scope");
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": 268435457_u64}}}});
        assert_eq!(total_memory(&sandbox(spec, None)), "268435456");
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": 64 * GIB}}}});
        assert_eq!(total_memory(&sandbox(spec, None)), (16 * GIB).to_string());

        // An existing cgroup keeps its own limit ("max"), whatever the spec says.
        let tree = Tree::new("max", &[(&format!("{}/memory.max", &POD[1..]), "max\n")]);
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": GIB}}},
                          "annotations": {GVISOR_CGROUP_PARENT: POD}});
        assert_eq!(
            total_memory(&sandbox(spec, Some(&tree))),
            (16 * GIB).to_string()
        );
    }

    #[test]
    fn a_relative_path_escapes_and_an_empty_one_is_the_id() {
        let spec =
            json!({"linux": {"cgroupsPath": "kubepods-burstable-podu1.slice:cri-containerd:s1"}});
        let p = sandbox(spec, None);
        assert_eq!(
            p.cgroup,
            "0::/system.slice/kubepods-burstable-podu1.slice:cri-containerd:s1\n"
        );
        assert_eq!(total_memory(&p), (16 * GIB).to_string());
        assert_eq!(sandbox(json!({}), None).cgroup, "0::/s1\n");
    }

    #[test]
    fn knobs_override_the_cgroup_and_the_total_memory() {
        let spec = json!({
            "linux": {"cgroupsPath": format!("{POD}/cri-containerd-s1.scope")},
            "annotations": {KNOB_SANDBOX_CGROUP: "0::/system.slice/escaped",
                            KNOB_TOTAL_MEMORY: "12345"},
        });
        let p = sandbox(spec, None);
        assert_eq!(p.cgroup, "0::/system.slice/escaped\n");
        assert_eq!(total_memory(&p), "12345");
    }

    #[test]
    fn runsc_creates_a_missing_leaf_with_the_spec_limit_unless_a_parent_is_named() {
        let tree = Tree::new("leaf", &[(&format!("{}/memory.max", &POD[1..]), "max\n")]);
        let leaf = format!("{POD}/cri-containerd-s1.scope");
        let dir = tree.0.join(&leaf[1..]);
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": 268435457_u64}}}});
        let p = sandbox(spec.clone(), Some(&tree));
        assert_eq!(p.new_cgroup, Some((dir.clone(), "268435456".to_string())));
        assert_eq!(p.create_cgroup().unwrap(), Some(dir.as_path()));
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            "268435456\n"
        );
        // Now it exists: runsc would not create it again.
        assert_eq!(sandbox(spec, Some(&tree)).new_cgroup, None);
        remove_dir(&dir).unwrap();

        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": GIB}}},
                          "annotations": {GVISOR_CGROUP_PARENT: POD}});
        let p = sandbox(spec, Some(&tree));
        assert_eq!(p.new_cgroup, Some((dir, "max".to_string())));

        // Not in the tree's reach: nothing is made.
        let spec = json!({"linux": {"cgroupsPath": "/elsewhere/deep/leaf"}});
        assert_eq!(sandbox(spec, Some(&tree)).new_cgroup, None);
        let spec = json!({"linux": {"cgroupsPath": "relative:path:s1"}});
        assert_eq!(sandbox(spec, Some(&tree)).new_cgroup, None);
    }

    #[test]
    fn the_process_is_written_and_removed() {
        let proc_root = Tree::new("proc", &[]);
        let p = sandbox(json!({}), None);
        p.write(&proc_root.0, 7).unwrap();
        let dir = proc_root.0.join("7");
        assert_eq!(fs::read_to_string(dir.join("cgroup")).unwrap(), "0::/s1\n");
        let cmdline = fs::read(dir.join("cmdline")).unwrap();
        assert!(cmdline.starts_with(b"runsc-sandbox\0--root=/r\0boot\0"));
        assert!(cmdline.ends_with(b"\0s1\0"));
        SandboxProcess::remove(&proc_root.0, 7).unwrap();
        assert!(!dir.exists());
        SandboxProcess::remove(&proc_root.0, 7).unwrap();
    }
}
