//! `-v` and `-info`: what the shim says about itself before containerd starts it.
//!
//! containerd-shim 0.11 handles neither (it would fall into server mode), so `main` answers them
//! first. containerd 2.x asks `-info` (with the runtime options on stdin) to learn the runtime's
//! features; runsc releases with a `features` sub-command answer that part, older ones
//! (Debian's 20221219) do not, and then the info simply carries no features.

use std::process::{Command, Stdio};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::options::{self, ShimConfig};
use crate::shim::RUNTIME_ID;

/// The `-v` text, in the shape containerd's shims print it.
pub fn version_text() -> String {
    format!(
        "containerd-shim-runsc-v1 (runsc-guard):\n  Version:  {}\n  Runtime:  {RUNTIME_ID}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The RuntimeInfo for `-info`, given the options containerd sent.
pub fn runtime_info(options: Option<&Any>) -> RuntimeInfo {
    let config = options::decode(options)
        .map(|(c, _)| c)
        .unwrap_or_else(|_| ShimConfig::default());
    RuntimeInfo {
        name: RUNTIME_ID.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }),
        options: options.cloned().into(),
        features: runsc_features(&config.binary_name).into(),
        ..Default::default()
    }
}

/// `runsc features` as containerd expects it, when this runsc has the sub-command.
fn runsc_features(binary: &str) -> Option<Any> {
    let mut cmd = Command::new(binary);
    cmd.arg("features").stdin(Stdio::null());
    let limit = crate::runsc::executor::limit_for("features").unwrap_or_default();
    let out = crate::runsc::executor::output_within(cmd, limit).ok()?;
    if !out.status.success() || serde_json::from_slice::<serde_json::Value>(&out.stdout).is_err() {
        return None;
    }
    Some(Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/features/Features".into(),
        value: out.stdout,
        ..Default::default()
    })
}

/// Encodes the info for stdout.
pub fn encode(info: &RuntimeInfo) -> Vec<u8> {
    info.write_to_bytes().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_names_the_runtime_without_runsc() {
        let opts = options::encode_cri_options(
            options::RUNSC_OPTIONS_TYPE_URL,
            "",
            b"binary_name = \"/nonexistent/runsc\"\n",
        );
        let info = runtime_info(Some(&opts));
        assert_eq!(info.name, RUNTIME_ID);
        assert!(info.features.is_none());
        assert_eq!(info.options.type_url, opts.type_url);
        assert!(version_text().contains(env!("CARGO_PKG_VERSION")));
    }
}
