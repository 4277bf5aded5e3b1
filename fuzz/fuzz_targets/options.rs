//! The runtime options containerd sends (`options::decode`) and runsc.toml
//! (`ShimConfig::from_toml`).
//!
//! The first byte picks what the rest is:
//! - 0: runsc.toml text, parsed alone;
//! - 1: runsc.toml text sent as the CRI options' ConfigBody, through `decode`;
//! - 2, 3, 4: the protobuf bytes of a `runtimeoptions.v1.Options`, a
//!   `cri.runtimeoptions.v1.Options` and a `containerd.runc.v1.Options`, through `decode`.
//!
//! Invariants: no panic; a configuration that parses passes the checks every source passes
//! (an absolute root, a binary name), and written back as TOML it parses to itself.
#![no_main]

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use libfuzzer_sys::fuzz_target;
use protobuf::Message;
use runsc_guard::options::{self, ShimConfig, RUNSC_OPTIONS_TYPE_URL};
use runsc_guard::proto::runtimeoptions::Options as CriOptions;
use runsc_guard::proto::runtimeoptions_v14::Options as CriOptionsV14;

fn check(config: &ShimConfig) {
    assert!(!config.binary_name.is_empty());
    assert!(config.root.starts_with('/'), "root {:?}", config.root);
    // Serialization leaves out the unknown keys (reported, never used).
    let text = toml::to_string(config).expect("a configuration encodes as TOML");
    let again = ShimConfig::from_toml(&text, "fuzz")
        .unwrap_or_else(|e| panic!("{text:?} written back does not parse: {e}"));
    let mut known = config.clone();
    known.unknown.clear();
    assert_eq!(again, known, "{text:?}");
}

fn decode(type_url: &str, value: &[u8]) {
    let any = Any {
        type_url: type_url.to_string(),
        value: value.to_vec(),
        ..Default::default()
    };
    if let Ok((config, _)) = options::decode(Some(&any)) {
        check(&config);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(config) = ShimConfig::from_toml(text, "fuzz") {
                    check(&config);
                }
            }
        }
        1 => {
            let any = options::encode_cri_options(RUNSC_OPTIONS_TYPE_URL, "", rest);
            if let Ok((config, _)) = options::decode(Some(&any)) {
                check(&config);
            }
        }
        2 => {
            // A ConfigPath without a ConfigBody is read from the file system: left out, so a
            // run reads no host file and stays repeatable.
            match CriOptions::parse_from_bytes(rest) {
                Ok(o) if o.config_body.is_empty() && !o.config_path.is_empty() => {}
                _ => decode("runtimeoptions.v1.Options", rest),
            }
        }
        3 => match CriOptionsV14::parse_from_bytes(rest) {
            Ok(o) if !o.config_path.is_empty() => {}
            _ => decode("cri.runtimeoptions.v1.Options", rest),
        },
        _ => decode("containerd.runc.v1.Options", rest),
    }
});
