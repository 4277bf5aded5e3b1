//! Pod volumes and the pod's `/dev/shm` inside one sandbox, as gVisor's shim rewrites them.
//!
//! runsc mounts a volume once for the whole pod when the sandbox's spec carries the mount hints
//! `dev.gvisor.spec.mount.<name>.{source,type,share,options}`; every container that mounts it
//! then sees the same filesystem (an emptyDir written by one container is read by the other),
//! instead of each container's gofer serving the host directory on its own. The pod's
//! annotations name the volumes (`type`, `share`); the shim adds what only the host knows:
//! - the sandbox: `<name>.source`, the kubelet's directory of the volume
//!   (`<pods>/<pod uid>/volumes/<plugin>/<name>`, the pod uid read from the sandbox's log
//!   directory), so runsc can mount it;
//! - a container: its mounts of that directory take the hinted type, as runsc requires the
//!   container's mount to match the sandbox's;
//! - `/dev/shm`: the bind mount of the pod's shm directory becomes a pod-shared tmpfs (glibc's
//!   `shm_open` only uses a tmpfs `/dev/shm`), under a volume name no pod uses.
//!
//! The same rules as gVisor's shim of release-20221219 (its `/dev/shm` rewrite came in
//! 2022-11), which every runsc this shim supports reads.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::annotations::{Role, SANDBOX_LOG_DIRECTORY};
use crate::bundle::BundleSpec;
use crate::error::Result;

/// The kubelet's directory of pods.
pub const KUBELET_PODS_DIR: &str = "/var/lib/kubelet/pods";
/// The prefix of runsc's mount hints.
pub const MOUNT_HINT_PREFIX: &str = "dev.gvisor.spec.mount.";
/// The volume name the pod's `/dev/shm` gets: one no pod uses (gVisor's).
pub const DEVSHM_VOLUME: &str = "gvisorinternaldevshm";

const SHM_PATH: &str = "/dev/shm";

/// Rewrites the bundle's spec for the pod's volumes and `/dev/shm`, before runsc reads it;
/// Create writes config.json once, with the guard's edits (`BundleSpec::save_if_changed`). An
/// error names the volume and what is wrong.
pub fn apply(spec: &mut BundleSpec, role: Role) -> Result<()> {
    let pods = Path::new(KUBELET_PODS_DIR);
    spec.edit_raw(|raw| rewrite(raw, role, pods))?;
    Ok(())
}

/// Rewrites the spec's annotations and mounts (config.json as JSON) for the pod's volumes and
/// `/dev/shm`. Returns whether anything changed; an error names the volume and what is wrong.
pub fn rewrite(raw: &mut Value, role: Role, pods_dir: &Path) -> std::result::Result<bool, String> {
    let annotations: BTreeMap<String, String> = raw
        .get("annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let hinted: Vec<(String, String)> = annotations
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(MOUNT_HINT_PREFIX)?.strip_suffix(".type")?;
            (valid_volume_name(name) && name != DEVSHM_VOLUME)
                .then(|| (name.to_string(), v.clone()))
        })
        .collect();
    let mut changed = false;
    if role.is_sandbox() {
        // Without a pod uid (no CRI log directory) there is no kubelet volume to find.
        if let Some(uid) = pod_uid(&annotations) {
            for (name, _) in &hinted {
                let source = volume_path(pods_dir, &uid, name)?;
                set_annotation(
                    raw,
                    &format!("{MOUNT_HINT_PREFIX}{name}.source"),
                    &source.display().to_string(),
                );
                changed = true;
            }
        }
    } else {
        for (name, kind) in &hinted {
            for mount in mounts_mut(raw) {
                let source = mount.get("source").and_then(Value::as_str).unwrap_or("");
                if is_volume_path(pods_dir, name, Path::new(source)) {
                    changed |= change_type(mount, kind);
                }
            }
        }
    }
    changed |= pod_shared_shm(raw, role);
    Ok(changed)
}

/// `/dev/shm` as a tmpfs shared by the pod: the sandbox names it to runsc, every container's
/// bind mount of the pod's shm directory becomes that tmpfs. A second, tmpfs entry for
/// `/dev/shm` some specs carry would hide it, and goes.
fn pod_shared_shm(raw: &mut Value, role: Role) -> bool {
    let is_shm = |m: &Value, kind: &str| {
        m.get("destination").and_then(Value::as_str) == Some(SHM_PATH)
            && m.get("type").and_then(Value::as_str) == Some(kind)
    };
    let Some(mounts) = raw.get_mut("mounts").and_then(Value::as_array_mut) else {
        return false;
    };
    let Some(bind) = mounts.iter().position(|m| is_shm(m, "bind")) else {
        return false;
    };
    let duplicate = mounts.iter().position(|m| is_shm(m, "tmpfs"));
    let source = mounts[bind]
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    change_type(&mut mounts[bind], "tmpfs");
    if let Some(dup) = duplicate {
        mounts.remove(dup);
    }
    if role.is_sandbox() {
        let key = |field: &str| format!("{MOUNT_HINT_PREFIX}{DEVSHM_VOLUME}.{field}");
        set_annotation(raw, &key("source"), &source);
        set_annotation(raw, &key("type"), "tmpfs");
        set_annotation(raw, &key("share"), "pod");
        // Each container applies its own options to its mount; the pod's is the broadest.
        set_annotation(raw, &key("options"), "rw");
    }
    true
}

/// Sets a mount's type; a type other than bind drops the bind options (the OCI spec says bind
/// mounts may be told by their options alone).
fn change_type(mount: &mut Value, kind: &str) -> bool {
    let mut changed = mount.get("type").and_then(Value::as_str) != Some(kind);
    mount["type"] = json!(kind);
    if kind != "bind" {
        if let Some(options) = mount.get_mut("options").and_then(Value::as_array_mut) {
            let before = options.len();
            options.retain(|o| !matches!(o.as_str(), Some("bind") | Some("rbind")));
            changed |= options.len() != before;
        }
    }
    changed
}

fn mounts_mut(raw: &mut Value) -> impl Iterator<Item = &mut Value> {
    raw.get_mut("mounts")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn set_annotation(raw: &mut Value, key: &str, value: &str) {
    if !raw.get("annotations").is_some_and(Value::is_object) {
        raw["annotations"] = json!({});
    }
    raw["annotations"][key] = json!(value);
}

/// A volume name as the kubelet writes it into a path (a DNS label), or a pod uid: one plain
/// path component, without the dots that separate a hint's fields.
fn valid_volume_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// The pod uid from the sandbox's log directory: `/var/log/pods/<namespace>_<name>_<uid>`, or
/// the older `/var/log/pods/<uid>`.
fn pod_uid(annotations: &BTreeMap<String, String>) -> Option<String> {
    let dir = annotations.get(SANDBOX_LOG_DIRECTORY)?;
    let base = Path::new(dir).file_name()?.to_str()?;
    let fields: Vec<&str> = base.split('_').collect();
    let uid = match fields.as_slice() {
        [uid] => *uid,
        [_, _, uid] => *uid,
        _ => return None,
    };
    valid_volume_name(uid).then(|| uid.to_string())
}

/// The kubelet's directory of a volume: `<pods>/<uid>/volumes/<plugin>/<name>`, exactly one.
fn volume_path(pods_dir: &Path, uid: &str, name: &str) -> std::result::Result<PathBuf, String> {
    let volumes = pods_dir.join(uid).join("volumes");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&volumes)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path().join(name)))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "annotation {MOUNT_HINT_PREFIX}{name}.type names volume {name:?}, but no \
             {}/*/{name} exists: check the pod's volumes and its dev.gvisor annotations",
            volumes.display()
        )),
        many => Err(format!(
            "annotation {MOUNT_HINT_PREFIX}{name}.type names volume {name:?}, found in more \
             than one plugin directory ({}): rename the volume",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether `path` is `<pods>/<any uid>/volumes/<any plugin>/<name>`. Volume names are unique
/// in a pod, and a container only mounts its own pod's volumes.
fn is_volume_path(pods_dir: &Path, name: &str, path: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(pods_dir) else {
        return false;
    };
    let parts: Vec<_> = rest.components().collect();
    matches!(
        parts.as_slice(),
        [Component::Normal(_), Component::Normal(v), Component::Normal(_), Component::Normal(n)]
            if *v == "volumes" && *n == name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "3f1c9a2e-5b7d-4c1e-9a0f-2d6e8b4c7a1f";

    fn pods() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        std::fs::create_dir_all(pods.join(UID).join("volumes/kubernetes.io~empty-dir/cache"))
            .unwrap();
        (dir, pods)
    }

    fn sandbox_spec() -> Value {
        json!({
            "annotations": {
                "io.kubernetes.cri.container-type": "sandbox",
                SANDBOX_LOG_DIRECTORY: format!("/var/log/pods/default_web_{UID}"),
                "dev.gvisor.spec.mount.cache.type": "bind",
                "dev.gvisor.spec.mount.cache.share": "shared",
            },
            "mounts": [
                {"destination": "/dev/shm", "type": "bind",
                 "source": "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/sb/shm",
                 "options": ["rbind", "ro", "nosuid"]},
            ]
        })
    }

    #[test]
    fn the_sandbox_names_the_volume_source_and_a_pod_shared_shm() {
        let (_d, pods) = pods();
        let mut spec = sandbox_spec();
        assert!(rewrite(&mut spec, Role::Sandbox, &pods).unwrap());
        let a = &spec["annotations"];
        assert_eq!(
            a["dev.gvisor.spec.mount.cache.source"],
            pods.join(UID)
                .join("volumes/kubernetes.io~empty-dir/cache")
                .display()
                .to_string()
        );
        assert_eq!(a["dev.gvisor.spec.mount.cache.share"], "shared", "kept");
        assert_eq!(
            a["dev.gvisor.spec.mount.gvisorinternaldevshm.source"],
            "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/sb/shm"
        );
        assert_eq!(
            a["dev.gvisor.spec.mount.gvisorinternaldevshm.type"],
            "tmpfs"
        );
        assert_eq!(a["dev.gvisor.spec.mount.gvisorinternaldevshm.share"], "pod");
        assert_eq!(
            a["dev.gvisor.spec.mount.gvisorinternaldevshm.options"],
            "rw"
        );
        assert_eq!(spec["mounts"][0]["type"], "tmpfs");
        assert_eq!(spec["mounts"][0]["options"], json!(["ro", "nosuid"]));
    }

    #[test]
    fn a_container_mounts_the_volume_with_the_hinted_type_and_shm_as_tmpfs() {
        let (_d, pods) = pods();
        let volume = pods.join(UID).join("volumes/kubernetes.io~empty-dir/cache");
        let mut spec = json!({
            "annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.sandbox-id": "sb",
                "dev.gvisor.spec.mount.cache.type": "tmpfs",
            },
            "mounts": [
                {"destination": "/cache", "type": "bind", "source": volume.display().to_string(),
                 "options": ["rbind", "rw"]},
                {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/x/etc-hosts",
                 "options": ["rbind", "rw"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": []},
                {"destination": "/dev/shm", "type": "bind", "source": "/run/x/shm",
                 "options": ["rbind", "rw"]},
            ]
        });
        assert!(rewrite(&mut spec, Role::Container, &pods).unwrap());
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 3, "the duplicate tmpfs /dev/shm is gone");
        assert_eq!(mounts[0]["type"], "tmpfs");
        assert_eq!(mounts[0]["options"], json!(["rw"]));
        assert_eq!(mounts[1]["type"], "bind", "other mounts are untouched");
        assert_eq!(mounts[2]["destination"], "/dev/shm");
        assert_eq!(mounts[2]["type"], "tmpfs");
        assert_eq!(mounts[2]["source"], "/run/x/shm");
        let a = spec["annotations"].as_object().unwrap();
        assert!(
            !a.keys().any(|k| k.contains(DEVSHM_VOLUME)),
            "only the sandbox names the pod's shm to runsc"
        );
    }

    #[test]
    fn a_bind_hint_keeps_the_bind_options() {
        let (_d, pods) = pods();
        let volume = pods.join(UID).join("volumes/kubernetes.io~empty-dir/cache");
        let mut spec = json!({
            "annotations": {"dev.gvisor.spec.mount.cache.type": "bind"},
            "mounts": [{"destination": "/cache", "type": "bind",
                        "source": volume.display().to_string(), "options": ["rbind"]}]
        });
        assert!(!rewrite(&mut spec, Role::Container, &pods).unwrap());
        assert_eq!(spec["mounts"][0]["options"], json!(["rbind"]));
    }

    #[test]
    fn nothing_to_do_without_hints_or_pod() {
        let (_d, pods) = pods();
        let mut plain = json!({"mounts": [{"destination": "/data", "type": "bind",
                                            "source": "/srv", "options": ["rbind"]}]});
        let before = plain.clone();
        assert!(!rewrite(&mut plain, Role::Sandbox, &pods).unwrap());
        assert_eq!(plain, before);
        // A sandbox without a log directory (ctr run with annotations): no pod uid, no source.
        let mut spec = json!({"annotations": {"dev.gvisor.spec.mount.cache.type": "bind"}});
        assert!(!rewrite(&mut spec, Role::Sandbox, &pods).unwrap());
    }

    #[test]
    fn a_missing_or_ambiguous_volume_is_an_error_naming_it() {
        let (_d, pods) = pods();
        let mut spec = sandbox_spec();
        spec["annotations"]["dev.gvisor.spec.mount.logs.type"] = json!("bind");
        let err = rewrite(&mut spec, Role::Sandbox, &pods).unwrap_err();
        assert!(err.contains("\"logs\"") && err.contains("no "), "{err}");
        std::fs::create_dir_all(pods.join(UID).join("volumes/kubernetes.io~configmap/cache"))
            .unwrap();
        let mut spec = sandbox_spec();
        let err = rewrite(&mut spec, Role::Sandbox, &pods).unwrap_err();
        assert!(err.contains("more than one"), "{err}");
    }

    #[test]
    fn hostile_names_are_not_paths() {
        let (_d, pods) = pods();
        let mut spec = sandbox_spec();
        spec["annotations"]["dev.gvisor.spec.mount.../../etc.type"] = json!("bind");
        spec["annotations"][SANDBOX_LOG_DIRECTORY] = json!("/var/log/pods/a_b_..");
        // The uid is refused, so no volume is looked up; the shm rewrite still happens.
        assert!(rewrite(&mut spec, Role::Sandbox, &pods).unwrap());
        assert!(spec["annotations"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.ends_with(".source") || k.contains(DEVSHM_VOLUME)));
        assert!(!is_volume_path(&pods, "cache", Path::new("/etc/cache")));
        assert!(is_volume_path(
            &pods,
            "cache",
            &pods.join("u/volumes/p/cache")
        ));
        assert!(!is_volume_path(
            &pods,
            "cache",
            &pods.join("u/volumes/p/q/cache")
        ));
    }
}
