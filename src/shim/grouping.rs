//! One shim process per pod: which shim a container's `start` hands to containerd.
//!
//! The containers of a pod are grouped by the CRI sandbox id, as containerd's runc shim groups
//! them: the socket address is derived from the namespace and that id, so every container of
//! the pod gets the address of the shim that serves its sandbox. containerd 1.6 and 1.7 open one
//! connection per container to the address `start` printed; containerd 2.x does the same for a
//! shim that answers `start` with a plain address (the fix of its 2.0/2.1 releases, which had
//! sent a pod's containers to the sandbox's connection without asking). A shim serves any
//! number of containers either way; `grouping = false` in runsc.toml gives each container its
//! own process, as gVisor's shim does by default.

use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::annotations;
use crate::bundle::BundleSpec;
use crate::shim::ids::validate_id;

/// The id a container's shim is keyed by: its pod's sandbox id when grouping is on and the
/// annotations name one, its own id otherwise (a container outside any pod, `ctr run`, gets a
/// shim of its own). A bundle whose config.json cannot be read is keyed by its own id: Create
/// reports what is wrong with it, where the error can reach containerd's log.
pub fn group_of(bundle: &Path, own_id: &str, grouping: bool) -> String {
    if !grouping {
        return own_id.to_string();
    }
    let Ok(spec) = BundleSpec::load(bundle) else {
        return own_id.to_string();
    };
    group_from_annotations(spec.annotations(), own_id)
}

fn group_from_annotations(
    annotations: &std::collections::HashMap<String, String>,
    own_id: &str,
) -> String {
    let sandbox = annotations::sandbox_id(annotations, own_id);
    // The id only feeds the socket's hash, but an id runsc would refuse is no pod's.
    if validate_id(sandbox).is_ok() {
        sandbox.to_string()
    } else {
        own_id.to_string()
    }
}

/// The pid of the shim serving `address`, if one answers there: the process that listens on
/// the socket, as the kernel reports it for a connection (SO_PEERCRED).
pub fn serving_pid(address: &str) -> Option<u32> {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    let stream = UnixStream::connect(path).ok()?;
    let creds =
        nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    u32::try_from(creds.pid()).ok().filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_pod_is_grouped_by_its_sandbox_id() {
        let sandbox = annotations(&[
            (annotations::CONTAINER_TYPE, "sandbox"),
            (annotations::SANDBOX_ID, "sb1"),
        ]);
        assert_eq!(group_from_annotations(&sandbox, "sb1"), "sb1");
        let app = annotations(&[
            (annotations::CONTAINER_TYPE, "container"),
            (annotations::SANDBOX_ID, "sb1"),
        ]);
        assert_eq!(group_from_annotations(&app, "app1"), "sb1");
        let crio = annotations(&[
            (annotations::CRIO_CONTAINER_TYPE, "container"),
            (annotations::CRIO_SANDBOX_ID, "sb2"),
        ]);
        assert_eq!(group_from_annotations(&crio, "app2"), "sb2");
    }

    #[test]
    fn a_container_outside_a_pod_or_with_a_bad_sandbox_id_is_its_own_group() {
        assert_eq!(group_from_annotations(&HashMap::new(), "plain"), "plain");
        let bad = annotations(&[
            (annotations::CONTAINER_TYPE, "container"),
            (annotations::SANDBOX_ID, "../x"),
        ]);
        assert_eq!(group_from_annotations(&bad, "app"), "app");
        // A sandbox is keyed by its own id whatever its sandbox-id annotation says.
        let odd = annotations(&[
            (annotations::CONTAINER_TYPE, "sandbox"),
            (annotations::SANDBOX_ID, "other"),
        ]);
        assert_eq!(group_from_annotations(&odd, "sb"), "sb");
    }

    #[test]
    fn grouping_off_or_an_unreadable_bundle_keys_by_the_own_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"sb"}}"#,
        )
        .unwrap();
        assert_eq!(group_of(dir.path(), "app", true), "sb");
        assert_eq!(group_of(dir.path(), "app", false), "app");
        assert_eq!(group_of(&dir.path().join("missing"), "app", true), "app");
    }

    #[test]
    fn the_serving_pid_is_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let address = format!("unix://{}", path.display());
        assert_eq!(serving_pid(&address), Some(std::process::id()));
        assert_eq!(serving_pid("unix:///nonexistent/socket"), None);
    }
}
