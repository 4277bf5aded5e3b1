//! What `start` reads on its stdin and how it answers, by containerd generation.
//!
//! containerd 1.6 to 2.2 write the runtime options alone (a protobuf `Any` naming runsc.toml) and
//! read the socket address back as plain text. containerd 2.3 and later write a
//! `BootstrapParams` message instead, with the runtime options among its extensions, an optional
//! socket directory and its log level, and read a `BootstrapResult` back (JSON is accepted, as is
//! the plain address of older shims). A shim that took the new message for options would find no
//! runsc.toml at `start`: grouping, the shim's log, its cgroup would all fall back to defaults
//! without a word. Both forms are protobuf with a string in field 1, so the message is told apart
//! by what that string is: the new one carries the task's own id and namespace there.

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;

use crate::options::{self, ShimConfig};
use crate::proto::bootstrap::BootstrapParams;

/// Where the shim's socket lives when containerd does not say.
const DEFAULT_SOCKET_DIR: &str = "/run/containerd/s";
/// The longest socket path a `sockaddr_un` holds (108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What containerd handed `start`.
#[derive(Debug, Default)]
pub struct StartInput {
    /// The runtime options, if any came (and decoded).
    pub options: Option<Any>,
    /// containerd 2.3+'s bootstrap protocol: answer with a `BootstrapResult`.
    pub bootstrap: bool,
    /// The directory containerd asked the socket to be made in (bootstrap protocol only).
    pub socket_dir: Option<String>,
    /// containerd runs at debug or trace level (bootstrap protocol only; older containerd says
    /// so with `-debug`).
    pub debug: bool,
}

impl StartInput {
    /// Reads stdin's bytes for the task `id` in `namespace`. Never fails: what cannot be read is
    /// no options, and Create reports a bad runsc.toml with the field named.
    pub fn parse(data: &[u8], id: &str, namespace: &str) -> StartInput {
        if data.is_empty() {
            return StartInput::default();
        }
        if let Ok(params) = BootstrapParams::parse_from_bytes(data) {
            if !id.is_empty() && params.instance_id == id && params.namespace == namespace {
                return StartInput {
                    options: runtime_options(&params),
                    bootstrap: true,
                    socket_dir: params.socket_dir.filter(|d| !d.is_empty()),
                    // -4 debug, -8 trace; anything more verbose than info.
                    debug: params.log_level < 0,
                };
            }
        }
        StartInput {
            options: Any::parse_from_bytes(data).ok(),
            ..StartInput::default()
        }
    }

    /// The shim's configuration from the options (defaults when there are none or they do not
    /// decode).
    pub fn config(&self) -> ShimConfig {
        options::decode(self.options.as_ref())
            .map(|(c, _)| c)
            .unwrap_or_default()
    }

    /// The socket address for the shim keyed `group`: containerd's usual name for it, in the
    /// directory containerd asked for. A directory that is not absolute or would make the path
    /// too long for a unix socket is refused.
    pub fn socket_address(
        &self,
        containerd_address: &str,
        namespace: &str,
        group: &str,
    ) -> Result<String, String> {
        let usual = containerd_shim::socket_address(containerd_address, namespace, group);
        let Some(dir) = &self.socket_dir else {
            return Ok(usual);
        };
        let name = usual.rsplit('/').next().unwrap_or_default();
        let dir = dir.trim_end_matches('/');
        if !dir.starts_with('/') || dir.split('/').any(|c| c == "..") {
            return Err(format!(
                "containerd asked for the shim socket in {dir:?}, which is not an absolute path"
            ));
        }
        let path = format!("{dir}/{name}");
        if path.len() > MAX_SOCKET_PATH {
            return Err(format!(
                "containerd asked for the shim socket in {dir:?}: {path} is longer than a unix \
                 socket path can be ({MAX_SOCKET_PATH} bytes); use a shorter socket directory \
                 (the default is {DEFAULT_SOCKET_DIR})"
            ));
        }
        Ok(format!("unix://{path}"))
    }

    /// What `start` prints: the plain address for containerd before 2.3 (which reads stdout and
    /// stderr together as the address), a `BootstrapResult` as JSON for the bootstrap protocol.
    pub fn answer(&self, address: &str) -> String {
        if !self.bootstrap {
            return address.to_string();
        }
        serde_json::json!({ "version": 2, "address": address, "protocol": "ttrpc" }).to_string()
    }
}

/// The extension that holds the runtime options: the first of a type the options decoder reads.
fn runtime_options(params: &BootstrapParams) -> Option<Any> {
    params
        .extensions
        .iter()
        .filter_map(|e| e.value.as_ref())
        .find(|any| {
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            options::OPTION_TYPES.contains(&name)
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::bootstrap::Extension;
    use crate::proto::runtimeoptions::Options as CriOptions;

    fn options_any(path: &str) -> Any {
        let o = CriOptions {
            type_url: options::RUNSC_OPTIONS_TYPE_URL.into(),
            config_path: path.into(),
            ..Default::default()
        };
        Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    fn params(id: &str, extensions: Vec<Any>) -> BootstrapParams {
        BootstrapParams {
            instance_id: id.into(),
            namespace: "k8s.io".into(),
            log_level: -4,
            containerd_version: "v2.4.2".into(),
            extensions: extensions
                .into_iter()
                .map(|a| Extension {
                    value: Some(a).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn containerd_before_2_3_writes_the_options_alone() {
        let any = options_any("/etc/containerd/runsc-nogroup.toml");
        let input = StartInput::parse(&any.write_to_bytes().unwrap(), "c1", "k8s.io");
        assert!(!input.bootstrap);
        assert_eq!(input.options, Some(any));
        assert_eq!(
            input.answer("unix:///run/containerd/s/ab"),
            "unix:///run/containerd/s/ab"
        );
        assert!(!StartInput::parse(&[], "c1", "k8s.io").bootstrap);
    }

    #[test]
    fn containerd_2_3_and_later_write_bootstrap_params() {
        let opts = options_any("/etc/containerd/runsc-nogroup.toml");
        let other = Any {
            type_url: "containerd.io/cri.v1.PodSandboxConfig".into(),
            value: vec![1, 2, 3],
            ..Default::default()
        };
        let mut p = params("c1", vec![other, opts.clone()]);
        p.socket_dir = Some("/run/containerd/s2".into());
        let input = StartInput::parse(&p.write_to_bytes().unwrap(), "c1", "k8s.io");
        assert!(input.bootstrap && input.debug);
        assert_eq!(
            input.options,
            Some(opts),
            "the options extension, not the other"
        );
        let address = input
            .socket_address("/run/containerd/containerd.sock", "k8s.io", "c1")
            .unwrap();
        let usual =
            containerd_shim::socket_address("/run/containerd/containerd.sock", "k8s.io", "c1");
        assert_eq!(
            address.rsplit('/').next(),
            usual.rsplit('/').next(),
            "the same name"
        );
        assert!(
            address.starts_with("unix:///run/containerd/s2/"),
            "{address}"
        );
        let answer: serde_json::Value = serde_json::from_str(&input.answer(&address)).unwrap();
        assert_eq!(answer["version"], 2);
        assert_eq!(answer["protocol"], "ttrpc");
        assert_eq!(answer["address"], address.as_str());
    }

    #[test]
    fn bootstrap_params_of_another_task_are_not_taken_for_them() {
        let p = params("other", vec![options_any("/x.toml")]);
        let input = StartInput::parse(&p.write_to_bytes().unwrap(), "c1", "k8s.io");
        assert!(!input.bootstrap);
    }

    #[test]
    fn a_socket_directory_must_be_absolute_and_short() {
        let input = |dir: &str| StartInput {
            socket_dir: Some(dir.into()),
            bootstrap: true,
            ..StartInput::default()
        };
        let sock = "/run/containerd/containerd.sock";
        assert!(input("relative/s")
            .socket_address(sock, "k8s.io", "c1")
            .is_err());
        assert!(input("/run/../etc")
            .socket_address(sock, "k8s.io", "c1")
            .is_err());
        let long = format!("/{}", "d".repeat(60));
        let err = input(&long)
            .socket_address(sock, "k8s.io", "c1")
            .unwrap_err();
        assert!(err.contains("longer than a unix socket path"), "{err}");
        assert!(input("/run/s/")
            .socket_address(sock, "k8s.io", "c1")
            .is_ok());
    }

    #[test]
    fn the_config_comes_from_the_options_or_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let toml = dir.path().join("runsc.toml");
        std::fs::write(&toml, "grouping = false\n").unwrap();
        let p = params("c1", vec![options_any(toml.to_str().unwrap())]);
        let input = StartInput::parse(&p.write_to_bytes().unwrap(), "c1", "k8s.io");
        assert!(!input.config().grouping);
        assert!(StartInput::default().config().grouping);
    }
}
