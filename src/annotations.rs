//! What the CRI annotations on an OCI spec say about a container's place in its pod.
//!
//! containerd's CRI plugin and CRI-O both mark the pod's sandbox (pause) container and the
//! containers that join it; runsc uses the same annotations to decide whether `create` starts a
//! new sandbox or adds a container to an existing one.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// containerd CRI: `sandbox` or `container`.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// containerd CRI: the id of the pod's sandbox container.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// CRI-O: `sandbox` or `container`.
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// CRI-O: the id of the pod's sandbox container.
pub const CRIO_SANDBOX_ID: &str = "io.kubernetes.cri-o.SandboxID";
/// The pod's log directory; gVisor's user log goes there as `gvisor.log`.
pub const SANDBOX_LOG_DIRECTORY: &str = "io.kubernetes.cri.sandbox-log-directory";
/// The sum of the memory limits the pod's containers declare (containerd 1.6+, kubelet 1.23+);
/// "0" means unset.
pub const SANDBOX_MEMORY: &str = "io.kubernetes.cri.sandbox-memory";
/// Read by runsc: the cgroup whose limits the sandbox takes when the processes sit in a child.
pub const GVISOR_CGROUP_PARENT: &str = "dev.gvisor.spec.cgroup-parent";

const TYPE_SANDBOX: &str = "sandbox";
const TYPE_CONTAINER: &str = "container";

/// A container's role in its pod: whether it creates the pod's sandbox or joins it. Only the
/// sandbox's creation sizes the guest; every container of the pod gets the same cgroup driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The container that creates the sandbox: the pod's pause container, or any container run
    /// without CRI annotations (`ctr run`), which gets a sandbox of its own.
    Sandbox,
    /// A container that joins the sandbox its annotations name ([`sandbox_id`]).
    Container,
}

impl Role {
    /// Reads the role from a spec's annotations. A `container` without a sandbox id cannot join
    /// anything, so it is an error rather than a hang (runsc waits for a sandbox that never
    /// comes).
    pub fn from_annotations(annotations: &HashMap<String, String>) -> Result<Self, String> {
        let kind = annotations
            .get(CONTAINER_TYPE)
            .or_else(|| annotations.get(CRIO_CONTAINER_TYPE));
        match kind.map(String::as_str) {
            None | Some(TYPE_SANDBOX) => Ok(Role::Sandbox),
            Some(TYPE_CONTAINER) => {
                named_sandbox(annotations).ok_or_else(|| {
                    format!(
                        "annotation {CONTAINER_TYPE}=container needs {SANDBOX_ID} naming the \
                         pod's sandbox"
                    )
                })?;
                Ok(Role::Container)
            }
            Some(other) => Err(format!(
                "annotation {CONTAINER_TYPE}={other:?} is neither \"sandbox\" nor \"container\""
            )),
        }
    }

    pub fn is_sandbox(self) -> bool {
        self == Role::Sandbox
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Sandbox => TYPE_SANDBOX,
            Role::Container => TYPE_CONTAINER,
        }
    }
}

/// What the CRI annotations say of one container, read once at its Create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAnnotations {
    pub role: Role,
    /// The pod's sandbox, by its container id ([`sandbox_id`]): the container's own for a
    /// sandbox.
    pub sandbox_id: String,
    /// The pod's log directory, checked ([`sandbox_log_directory`]). Read for a sandbox only:
    /// only the sandbox's runsc writes gVisor's user log there.
    pub log_directory: Option<PathBuf>,
}

impl PodAnnotations {
    /// Reads the annotations of the container `own_id`; an error names the annotation and what
    /// is wrong with it.
    pub fn parse(annotations: &HashMap<String, String>, own_id: &str) -> Result<Self, String> {
        let role = Role::from_annotations(annotations)?;
        let log_directory = if role.is_sandbox() {
            sandbox_log_directory(annotations)?
        } else {
            None
        };
        Ok(PodAnnotations {
            role,
            sandbox_id: sandbox_id(annotations, own_id).to_string(),
            log_directory,
        })
    }
}

/// The sandbox id the annotations name, when they name one.
fn named_sandbox(annotations: &HashMap<String, String>) -> Option<&str> {
    annotations
        .get(SANDBOX_ID)
        .or_else(|| annotations.get(CRIO_SANDBOX_ID))
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// The sandbox a container belongs to: its own id for a sandbox, the one its annotations name
/// for a container that joins one.
pub fn sandbox_id<'a>(annotations: &'a HashMap<String, String>, own_id: &'a str) -> &'a str {
    match Role::from_annotations(annotations) {
        Ok(Role::Container) => named_sandbox(annotations).unwrap_or(own_id),
        _ => own_id,
    }
}

/// The pod's log directory (`io.kubernetes.cri.sandbox-log-directory`) where runsc writes
/// `gvisor.log` (`--user-log`), checked first: runsc runs as root and creates the file wherever
/// the annotation says. It must be absolute, without NUL, control characters or `..`, and be a
/// directory or a path one can be created at (its nearest existing ancestor is a directory).
/// None when the annotation is absent or empty.
pub fn sandbox_log_directory(
    annotations: &HashMap<String, String>,
) -> Result<Option<PathBuf>, String> {
    let Some(dir) = annotations
        .get(SANDBOX_LOG_DIRECTORY)
        .filter(|d| !d.is_empty())
    else {
        return Ok(None);
    };
    let path = Path::new(dir);
    if dir.chars().any(char::is_control) {
        return Err(format!(
            "{} {:?} holds a control character (NUL, newline...)",
            SANDBOX_LOG_DIRECTORY,
            dir.escape_debug().to_string()
        ));
    }
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{SANDBOX_LOG_DIRECTORY} {dir:?} must be an absolute path without \"..\""
        ));
    }
    let mut existing = path;
    loop {
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => return Ok(Some(path.to_path_buf())),
            Ok(_) => {
                return Err(format!(
                    "{SANDBOX_LOG_DIRECTORY} {dir:?}: {} exists and is not a directory",
                    existing.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(format!(
                    "{SANDBOX_LOG_DIRECTORY} {dir:?}: cannot inspect {}: {e}",
                    existing.display()
                ))
            }
        }
        match existing.parent() {
            Some(parent) => existing = parent,
            None => return Ok(Some(path.to_path_buf())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Annotations, and the role with the sandbox id they name.
    type Case<'a> = (&'a [(&'a str, &'a str)], Result<(Role, &'a str), ()>);

    #[test]
    fn roles_from_annotations() {
        let cases: &[Case] = &[
            (&[], Ok((Role::Sandbox, "me"))),
            (&[(CONTAINER_TYPE, "sandbox")], Ok((Role::Sandbox, "me"))),
            (
                &[(CRIO_CONTAINER_TYPE, "sandbox")],
                Ok((Role::Sandbox, "me")),
            ),
            (
                &[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "pod1")],
                Ok((Role::Container, "pod1")),
            ),
            (
                &[
                    (CRIO_CONTAINER_TYPE, "container"),
                    (CRIO_SANDBOX_ID, "pod2"),
                ],
                Ok((Role::Container, "pod2")),
            ),
            (&[(CONTAINER_TYPE, "container")], Err(())),
            (&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "")], Err(())),
            (&[(CONTAINER_TYPE, "podsandbox")], Err(())),
        ];
        for (pairs, want) in cases {
            let a = ann(pairs);
            let got = Role::from_annotations(&a)
                .map(|r| (r, sandbox_id(&a, "me")))
                .map_err(|_| ());
            assert_eq!(&got, want, "annotations {pairs:?}");
        }
    }

    #[test]
    fn sandbox_id_of_each_role() {
        assert_eq!(sandbox_id(&ann(&[]), "me"), "me");
        let c = ann(&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "pod")]);
        assert_eq!(sandbox_id(&c, "me"), "pod");
        assert!(!Role::from_annotations(&c).unwrap().is_sandbox());
    }

    #[test]
    fn a_container_is_read_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().display().to_string();
        let sandbox = ann(&[(CONTAINER_TYPE, "sandbox"), (SANDBOX_LOG_DIRECTORY, &logs)]);
        assert_eq!(
            PodAnnotations::parse(&sandbox, "pod").unwrap(),
            PodAnnotations {
                role: Role::Sandbox,
                sandbox_id: "pod".to_string(),
                log_directory: Some(dir.path().to_path_buf()),
            }
        );
        // A container joining the pod writes no user log: its log directory is not read.
        let joining = ann(&[
            (CONTAINER_TYPE, "container"),
            (SANDBOX_ID, "pod"),
            (SANDBOX_LOG_DIRECTORY, "relative"),
        ]);
        assert_eq!(
            PodAnnotations::parse(&joining, "app").unwrap(),
            PodAnnotations {
                role: Role::Container,
                sandbox_id: "pod".to_string(),
                log_directory: None,
            }
        );
        let bad = ann(&[(SANDBOX_LOG_DIRECTORY, "relative")]);
        let err = PodAnnotations::parse(&bad, "pod").unwrap_err();
        assert!(err.contains(SANDBOX_LOG_DIRECTORY), "{err}");
    }

    #[test]
    fn errors_name_the_annotation() {
        let err = Role::from_annotations(&ann(&[(CONTAINER_TYPE, "container")])).unwrap_err();
        assert!(err.contains(SANDBOX_ID), "{err}");
    }

    #[test]
    fn the_log_directory_is_checked_before_it_reaches_runsc() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let with = |d: &str| HashMap::from([(SANDBOX_LOG_DIRECTORY.to_string(), d.to_string())]);
        let ok = |d: &str| sandbox_log_directory(&with(d)).unwrap();
        assert_eq!(sandbox_log_directory(&HashMap::new()).unwrap(), None);
        assert_eq!(ok(""), None);
        let existing = dir.path().display().to_string();
        assert_eq!(ok(&existing), Some(dir.path().to_path_buf()));
        let creatable = dir.path().join("pods/ns_name_uid");
        assert_eq!(ok(creatable.to_str().unwrap()), Some(creatable.clone()));
        for bad in [
            "relative/logs".to_string(),
            "/var/log/pods/../../etc".to_string(),
            "/var/log/pods/x\0y".to_string(),
            "/var/log/pods/x\ny".to_string(),
            file.display().to_string(),
            file.join("below").display().to_string(),
        ] {
            let err = sandbox_log_directory(&with(&bad)).unwrap_err();
            assert!(err.contains(SANDBOX_LOG_DIRECTORY), "{bad:?}: {err}");
            assert!(!err.contains('\0') && !err.contains('\n'), "{err:?}");
        }
    }
}
