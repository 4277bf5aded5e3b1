//! What the CRI annotations on an OCI spec say about a container's place in its pod.
//!
//! containerd's CRI plugin and CRI-O both mark the pod's sandbox (pause) container and the
//! containers that join it; runsc uses the same annotations to decide whether `create` starts a
//! new sandbox or adds a container to an existing one.

use std::collections::HashMap;

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

/// A container's role in its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerRole {
    /// The container that creates the sandbox: the pod's pause container, or any container run
    /// without CRI annotations (`ctr run`), which gets a sandbox of its own.
    Sandbox,
    /// A container that joins the sandbox `sandbox_id`.
    Container { sandbox_id: String },
}

impl ContainerRole {
    /// Reads the role from a spec's annotations. A `container` without a sandbox id cannot join
    /// anything, so it is an error rather than a hang (google/gvisor#4544).
    pub fn from_annotations(annotations: &HashMap<String, String>) -> Result<Self, String> {
        let kind = annotations
            .get(CONTAINER_TYPE)
            .or_else(|| annotations.get(CRIO_CONTAINER_TYPE));
        match kind.map(String::as_str) {
            None | Some(TYPE_SANDBOX) => Ok(ContainerRole::Sandbox),
            Some(TYPE_CONTAINER) => {
                let sandbox_id = annotations
                    .get(SANDBOX_ID)
                    .or_else(|| annotations.get(CRIO_SANDBOX_ID))
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "annotation {CONTAINER_TYPE}=container needs {SANDBOX_ID} naming the \
                             pod's sandbox"
                        )
                    })?;
                Ok(ContainerRole::Container {
                    sandbox_id: sandbox_id.clone(),
                })
            }
            Some(other) => Err(format!(
                "annotation {CONTAINER_TYPE}={other:?} is neither \"sandbox\" nor \"container\""
            )),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        matches!(self, ContainerRole::Sandbox)
    }

    /// The sandbox this container belongs to: its own id for a sandbox.
    pub fn sandbox_id<'a>(&'a self, own_id: &'a str) -> &'a str {
        match self {
            ContainerRole::Sandbox => own_id,
            ContainerRole::Container { sandbox_id } => sandbox_id,
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

    type Case<'a> = (&'a [(&'a str, &'a str)], Result<ContainerRole, ()>);

    #[test]
    fn roles_from_annotations() {
        let cases: &[Case] = &[
            (&[], Ok(ContainerRole::Sandbox)),
            (&[(CONTAINER_TYPE, "sandbox")], Ok(ContainerRole::Sandbox)),
            (
                &[(CRIO_CONTAINER_TYPE, "sandbox")],
                Ok(ContainerRole::Sandbox),
            ),
            (
                &[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "pod1")],
                Ok(ContainerRole::Container {
                    sandbox_id: "pod1".into(),
                }),
            ),
            (
                &[
                    (CRIO_CONTAINER_TYPE, "container"),
                    (CRIO_SANDBOX_ID, "pod2"),
                ],
                Ok(ContainerRole::Container {
                    sandbox_id: "pod2".into(),
                }),
            ),
            (&[(CONTAINER_TYPE, "container")], Err(())),
            (&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "")], Err(())),
            (&[(CONTAINER_TYPE, "podsandbox")], Err(())),
        ];
        for (pairs, want) in cases {
            let got = ContainerRole::from_annotations(&ann(pairs)).map_err(|_| ());
            assert_eq!(&got, want, "annotations {pairs:?}");
        }
    }

    #[test]
    fn sandbox_id_of_each_role() {
        assert_eq!(ContainerRole::Sandbox.sandbox_id("me"), "me");
        let c = ContainerRole::Container {
            sandbox_id: "pod".into(),
        };
        assert_eq!(c.sandbox_id("me"), "pod");
        assert!(!c.is_sandbox());
    }

    #[test]
    fn errors_name_the_annotation() {
        let err =
            ContainerRole::from_annotations(&ann(&[(CONTAINER_TYPE, "container")])).unwrap_err();
        assert!(err.contains(SANDBOX_ID), "{err}");
    }
}
