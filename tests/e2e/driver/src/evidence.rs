//! Small readers for what the host side of the guest shows: /proc/meminfo, mountinfo, containerd's
//! verbose status JSON, ids inside error messages, shim socket addresses.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::report::SandboxInfo;

/// /proc/meminfo as `key -> kB`.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((
                k.trim().to_string(),
                v.split_whitespace().next()?.parse().ok()?,
            ))
        })
        .collect()
}

pub fn meminfo() -> BTreeMap<String, u64> {
    std::fs::read_to_string("/proc/meminfo")
        .map(|t| parse_meminfo(&t))
        .unwrap_or_default()
}

/// Mount points (field 5 of mountinfo) that contain any of `needles`.
pub fn mounts_mentioning(mountinfo: &str, needles: &[String]) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|mp| {
            needles
                .iter()
                .any(|n| !n.is_empty() && mp.contains(n.as_str()))
        })
        .map(str::to_string)
        .collect()
}

/// Every 64-hex-digit token in `text` (containerd's sandbox and container ids).
pub fn hex_ids(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|t| t.len() == 64)
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Where containerd's shim protocol puts a shim's socket: `/run/containerd/s/<sha256 of
/// "<containerd address>/<namespace>/<id>">`.
pub fn shim_socket_path(containerd_address: &str, namespace: &str, id: &str) -> String {
    let key = format!(
        "{}/{namespace}/{id}",
        containerd_address.trim_end_matches('/')
    );
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("/run/containerd/s/{hex}")
}

fn json_info(info: &std::collections::HashMap<String, String>) -> Option<serde_json::Value> {
    serde_json::from_str(info.get("info")?).ok()
}

/// The pid and cgroupsPath from a verbose ContainerStatus/PodSandboxStatus `info` map.
pub fn info_pid_and_cgroups_path(
    info: &std::collections::HashMap<String, String>,
) -> (Option<u64>, Option<String>) {
    let Some(v) = json_info(info) else {
        return (None, None);
    };
    (
        v.pointer("/pid").and_then(|p| p.as_u64()),
        v.pointer("/runtimeSpec/linux/cgroupsPath")
            .and_then(|p| p.as_str())
            .map(str::to_string),
    )
}

/// What PodSandboxStatus (verbose) says about the sandbox.
pub fn sandbox_info(state: &str, info: &std::collections::HashMap<String, String>) -> SandboxInfo {
    let (pid, cgroups_path) = info_pid_and_cgroups_path(info);
    let v = json_info(info);
    let get = |ptr: &str| {
        v.as_ref()
            .and_then(|v| v.pointer(ptr))
            .and_then(|p| p.as_str())
            .map(str::to_string)
    };
    SandboxInfo {
        state: state.to_string(),
        pid,
        cgroups_path,
        sandbox_memory_annotation: get("/runtimeSpec/annotations/io.kubernetes.cri.sandbox-memory"),
        runtime_type: get("/runtimeType"),
        error: if v.is_none() {
            Some("no parsable \"info\" in the verbose PodSandboxStatus".into())
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn meminfo_values() {
        let m = parse_meminfo(
            "MemTotal:        4007124 kB\nMemAvailable:    3600000 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(m.get("MemTotal"), Some(&4007124));
        assert_eq!(m.get("MemAvailable"), Some(&3600000));
        assert_eq!(m.get("HugePages_Total"), Some(&0));
    }

    #[test]
    fn mounts() {
        let mi = format!(
            "36 25 0:32 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/rootfs rw,relatime - overlay overlay rw\n\
             37 25 0:33 / /run/containerd/io.containerd.grpc.v1.cri/sandboxes/{ID}/shm rw - tmpfs shm rw\n\
             22 1 0:21 / /sys rw - sysfs sysfs rw\n"
        );
        assert_eq!(mounts_mentioning(&mi, &[ID.to_string()]).len(), 2);
        assert!(mounts_mentioning(&mi, &["nothing".to_string()]).is_empty());
        assert!(mounts_mentioning(&mi, &[String::new()]).is_empty());
    }

    #[test]
    fn ids_in_an_error() {
        let msg = format!(
            "rpc error: failed to create containerd task: failed to create shim task: \
             runsc-guard refused container {ID}: cgroup parent missing; sha256:{}",
            "f".repeat(64)
        );
        assert_eq!(hex_ids(&msg), vec![ID.to_string(), "f".repeat(64)]);
        assert!(hex_ids("short abc123").is_empty());
        assert!(hex_ids(&"a".repeat(65)).is_empty());
    }

    #[test]
    fn socket_path_is_sha256_of_address_namespace_id() {
        let p = shim_socket_path("/run/containerd/containerd.sock", "k8s.io", "x");
        let expected = format!(
            "/run/containerd/s/{}",
            Sha256::digest(b"/run/containerd/containerd.sock/k8s.io/x")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        assert_eq!(p, expected);
        assert_eq!(p.len(), "/run/containerd/s/".len() + 64);
    }

    #[test]
    fn verbose_info() {
        let info = HashMap::from([(
            "info".to_string(),
            r#"{"pid": 4242, "runtimeType": "io.containerd.runsc.v1",
                "runtimeSpec": {"annotations": {"io.kubernetes.cri.sandbox-memory": "268435456"},
                                "linux": {"cgroupsPath": "kubepods-burstable-podx.slice:cri-containerd:abc"}}}"#
                .to_string(),
        )]);
        let s = sandbox_info("SANDBOX_READY", &info);
        assert_eq!(s.pid, Some(4242));
        assert_eq!(
            s.cgroups_path.as_deref(),
            Some("kubepods-burstable-podx.slice:cri-containerd:abc")
        );
        assert_eq!(s.sandbox_memory_annotation.as_deref(), Some("268435456"));
        assert_eq!(s.runtime_type.as_deref(), Some("io.containerd.runsc.v1"));
        assert!(s.error.is_none());
        let s = sandbox_info("SANDBOX_READY", &HashMap::new());
        assert!(s.pid.is_none());
        assert!(s.error.is_some());
    }
}
