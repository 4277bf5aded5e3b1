//! Reading the running gVisor sandboxes: each `runsc-sandbox` process, its cgroup, its bundle's
//! annotations, and its pod's cgroup and memory limit.

use std::path::{Path, PathBuf};

use super::{MemoryLimitFact, PodIdentity, SandboxFacts};
use crate::cgroup::{CgroupPath, CgroupTree, SpecCgroupsPath, SystemdPath};
use crate::fsread::{
    read_regular_file, read_regular_to_string, Symlinks, PROC_ARGS_MAX, PROC_CGROUP_MAX, SPEC_MAX,
};
use crate::guard::Observation;

/// containerd CRI: the pod's name and namespace, on every container of the pod.
const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
const SANDBOX_PROCESS: &str = "runsc-sandbox";

/// Every `runsc-sandbox` process under the proc root, in pid order.
pub(super) fn sandboxes(
    proc_root: &Path,
    tree: &CgroupTree,
) -> (Vec<SandboxFacts>, Option<String>) {
    let entries = match std::fs::read_dir(proc_root) {
        Ok(e) => e,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("cannot list {}: {e}", proc_root.display())),
            )
        }
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut out = Vec::new();
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        // A process that exits while we look, or one we may not read, is not a sandbox we can
        // judge; a sandbox's cmdline is readable by everyone.
        let Ok(cmdline) = read_regular_file(&dir.join("cmdline"), PROC_ARGS_MAX, Symlinks::Follow)
        else {
            continue;
        };
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(argv0);
        if name.rsplit('/').next() != Some(SANDBOX_PROCESS) {
            continue;
        }
        out.push(sandbox(pid, &dir, &cmdline, tree));
    }
    (out, None)
}

fn sandbox(pid: i32, dir: &Path, cmdline: &[u8], tree: &CgroupTree) -> SandboxFacts {
    let mut problems = Vec::new();
    let cgroup_text =
        match read_regular_to_string(&dir.join("cgroup"), PROC_CGROUP_MAX, Symlinks::Follow) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", dir.join("cgroup").display()));
                String::new()
            }
        };
    let observation = Observation::parse(pid, tree.layout(), &cgroup_text, cmdline);
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let container_id = argv
        .last()
        .filter(|a| argv.len() > 1 && !a.starts_with('-'))
        .cloned();
    let bundle = flag(&argv, "bundle").map(PathBuf::from).or_else(|| {
        flag(&argv, "log")
            .filter(|l| l.ends_with("/log.json"))
            .and_then(|l| Path::new(&l).parent().map(Path::to_path_buf))
    });
    let mut pod = PodIdentity::default();
    let mut cgroups_path = None;
    if let Some(bundle) = &bundle {
        let file = bundle.join("config.json");
        match read_regular_to_string(&file, SPEC_MAX, Symlinks::Follow) {
            Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(spec) => {
                    let annotation = |key: &str| {
                        spec["annotations"][key]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    };
                    pod.namespace = annotation(SANDBOX_NAMESPACE);
                    pod.name = annotation(SANDBOX_NAME);
                    pod.uid = annotation(SANDBOX_UID);
                    cgroups_path = spec["linux"]["cgroupsPath"].as_str().map(str::to_string);
                }
                Err(e) => problems.push(format!("{} is not JSON: {e}", file.display())),
            },
            Err(e) => problems.push(format!(
                "cannot read {} (the pod's name comes from its annotations): {e}",
                file.display()
            )),
        }
    }
    let own = observation
        .cgroup
        .as_deref()
        .and_then(|c| CgroupPath::parse(c).ok());
    let pod_cgroup = cgroups_path
        .as_deref()
        .and_then(|p| SpecCgroupsPath::parse(p).ok())
        .and_then(|p| p.pod_cgroup())
        .or_else(|| own.as_ref().and_then(pod_cgroup_of));
    if pod.uid.is_none() {
        pod.uid = pod_cgroup.as_ref().and_then(pod_uid);
    }
    let pod_limit = pod_cgroup
        .as_ref()
        .and_then(|pc| match tree.effective_memory_limit(pc) {
            Ok(eff) => Some(MemoryLimitFact {
                bytes: eff.limit.bytes(),
                source: eff.source,
            }),
            Err(e) => {
                problems.push(format!("the pod's memory limit: {e}"));
                None
            }
        });
    SandboxFacts {
        pid,
        container_id,
        runsc_root: flag(&argv, "root"),
        bundle,
        pod,
        observation,
        cgroups_path,
        pod_cgroup,
        pod_limit,
        problems,
    }
}

/// The pod a sandbox belongs to, from where it sits: a pod cgroup among its ancestors, or, for a
/// sandbox that escaped, the systemd path runsc turned into a directory name
/// (`/system.slice/kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`).
fn pod_cgroup_of(own: &CgroupPath) -> Option<CgroupPath> {
    if let Some(escaped) = own
        .components()
        .find_map(|c| SystemdPath::parse(c).ok().filter(SystemdPath::is_pod_slice))
    {
        return Some(escaped.slice_cgroup());
    }
    own.ancestors_to_root()
        .into_iter()
        .find(|c| c.name().is_some_and(is_pod_cgroup_name))
}

fn is_pod_cgroup_name(name: &str) -> bool {
    let stem = name.strip_suffix(".slice").unwrap_or(name);
    stem.rsplit('-')
        .next()
        .is_some_and(|last| last.starts_with("pod"))
}

/// `kubepods-burstable-pod<uid>.slice` or `pod<uid>`: the uid with dashes (the slice writes them
/// as underscores).
fn pod_uid(pod_cgroup: &CgroupPath) -> Option<String> {
    let name = pod_cgroup.name()?;
    let stem = name.strip_suffix(".slice").unwrap_or(name);
    let uid = stem.rsplit('-').next()?.strip_prefix("pod")?;
    (!uid.is_empty()).then(|| uid.replace('_', "-"))
}

/// The value of `--name=value`, `--name value`, `-name=value` or `-name value` (Go's flag forms).
fn flag(argv: &[String], name: &str) -> Option<String> {
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            continue;
        }
        let body = arg.trim_start_matches('-');
        if body == name {
            return it.next().cloned();
        }
        if let Some(v) = body.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pod_of_an_escaped_sandbox() {
        let uid = "3f1c9a2e_5b7d_4c1e_9a0f_2d6e8b4c7a1f";
        let own = CgroupPath::parse(&format!(
            "/system.slice/kubepods-burstable-pod{uid}.slice:cri-containerd:abc"
        ))
        .unwrap();
        let pod = pod_cgroup_of(&own).unwrap();
        assert_eq!(
            pod.as_str(),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice")
        );
        assert_eq!(
            pod_uid(&pod).as_deref(),
            Some("3f1c9a2e-5b7d-4c1e-9a0f-2d6e8b4c7a1f")
        );
        let cgroupfs = CgroupPath::parse("/kubepods/burstable/pod1234/abc").unwrap();
        assert_eq!(
            pod_cgroup_of(&cgroupfs).unwrap().as_str(),
            "/kubepods/burstable/pod1234"
        );
        assert_eq!(
            pod_cgroup_of(&CgroupPath::parse("/user.slice/x").unwrap()),
            None
        );
    }

    #[test]
    fn reads_go_flags() {
        let argv: Vec<String> = ["runsc-sandbox", "--root=/r", "boot", "--bundle", "/b", "id"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag(&argv, "bundle").as_deref(), Some("/b"));
        assert_eq!(flag(&argv, "root").as_deref(), Some("/r"));
        assert_eq!(flag(&argv, "log"), None);
    }
}
