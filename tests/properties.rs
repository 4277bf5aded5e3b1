//! Property tests of the guard's parsers, through the library's public API: the cgroupsPath
//! parser, the systemd slice expansion, the limit-file reader and the runsc.toml decoder (the
//! planner's are in `properties_planner.rs`). Each checks an invariant on every generated case (never just
//! "no panic"), with a fixed case count so the whole file runs in seconds, and prints how many
//! cases passed on the terminal (past the test harness' capture), e.g.
//! `property cgroup_path_parse: 512 cases passed`.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use proptest::prelude::*;

use runsc_guard::cgroup::{
    expand_slice, Bytes, CgroupPath, CgroupTree, MemoryLimit, SpecCgroupsPath, SystemdPath,
};
use runsc_guard::options::{GuardMode, ShimConfig};

mod property_check;
use property_check::check;

/// Strings built from the pieces that matter to a path parser: separators, dots, colons,
/// dashes, control characters, non-ASCII, and ordinary names.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(":".to_string()),
        Just("-".to_string()),
        Just(".slice".to_string()),
        Just("pod".to_string()),
        Just("kubepods".to_string()),
        Just("\0".to_string()),
        Just("\n".to_string()),
        Just("\\".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        "[a-z0-9_]{1,6}",
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..12).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
}

fn no_traversal(p: &CgroupPath) -> Result<(), TestCaseError> {
    prop_assert!(p.as_str().starts_with('/'), "{p}");
    for c in p.as_str().split('/').skip(1) {
        prop_assert!(
            p.is_root() || (!c.is_empty() && c != "." && c != ".."),
            "{p} has component {c:?}"
        );
        prop_assert!(!c.chars().any(char::is_control), "{p:?}");
    }
    Ok(())
}

/// A path under `root`, with no `..`: what the guard opens stays in the tree it was given.
fn under(root: &Path, path: &Path) -> Result<(), TestCaseError> {
    prop_assert!(
        path.starts_with(root),
        "{} not under {}",
        path.display(),
        root.display()
    );
    prop_assert!(
        !path.components().any(|c| c == Component::ParentDir),
        "{}",
        path.display()
    );
    Ok(())
}

fn v2_tree(dir: &Path) -> CgroupTree {
    std::fs::write(dir.join("cgroup.controllers"), "cpu memory\n").unwrap();
    CgroupTree::detect(dir).unwrap()
}

#[test]
fn cgroup_path_parse() {
    let dir = tempfile::tempdir().unwrap();
    let tree = v2_tree(dir.path());
    check("cgroup_path_parse", 512, path_like(), |raw| {
        let parsed = CgroupPath::parse(&raw);
        let has_dotdot = raw.split('/').any(|c| c == "..");
        if let Ok(p) = parsed {
            prop_assert!(!has_dotdot, "{raw:?} has .. and parsed as {p}");
            no_traversal(&p)?;
            // Normal form: parsing it again gives it back.
            prop_assert_eq!(CgroupPath::parse(p.as_str()).ok(), Some(p.clone()));
            under(tree.root(), &tree.memory_dir(&p))?;
            for a in p.ancestors_to_root().iter().skip(1) {
                prop_assert!(p.is_strictly_under(a), "{p} under {a}");
            }
        }
        Ok(())
    });
}

#[test]
fn spec_cgroups_path_parse() {
    let dir = tempfile::tempdir().unwrap();
    let tree = v2_tree(dir.path());
    let systemd_like = (
        "(kubepods(-burstable|-besteffort)?-pod[a-z0-9_]{1,8}|system|-|)(\\.slice)?",
        "(cri-containerd|[a-z.:-]{0,4})",
        "([0-9a-f]{1,12}|[a-z/.:-]{0,6})",
    )
        .prop_map(|(s, p, n)| format!("{s}:{p}:{n}"));
    let raw = prop_oneof![2 => path_like(), 1 => systemd_like];
    check("spec_cgroups_path_parse", 512, raw, |raw| {
        let Ok(parsed) = SpecCgroupsPath::parse(&raw) else {
            return Ok(());
        };
        prop_assert!(!raw.contains('\0'), "{raw:?}");
        if let Some(leaf) = parsed.leaf() {
            no_traversal(&leaf)?;
            under(tree.root(), &tree.memory_dir(&leaf))?;
            if let Some(pod) = parsed.pod_cgroup() {
                prop_assert!(leaf.is_strictly_under(&pod), "{leaf} not under pod {pod}");
            }
        }
        match &parsed {
            SpecCgroupsPath::Systemd(s) => {
                // The spec form round-trips, and the unit sits in its slice.
                let again = SystemdPath::parse(&s.as_spec_string());
                prop_assert_eq!(again.as_ref().ok(), Some(s));
                prop_assert!(s.leaf().is_strictly_under(&s.slice_cgroup()), "{s:?}");
                let (leaf, unit) = (s.leaf(), s.unit_name());
                prop_assert_eq!(leaf.name(), Some(unit.as_str()));
            }
            SpecCgroupsPath::Relative(r) => {
                prop_assert!(!r.split('/').any(|c| c == ".."), "{r:?}");
            }
            _ => {}
        }
        Ok(())
    });
}

#[test]
fn slice_expansion() {
    let valid = prop::collection::vec("[a-z0-9_]{1,8}", 1..6).prop_map(|parts| parts.join("-"));
    check("slice_expansion_valid", 256, valid, |stem| {
        let slice = format!("{stem}.slice");
        let path = expand_slice(&slice).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let components: Vec<&str> = path.components().collect();
        prop_assert_eq!(components.len(), parts.len());
        for (i, c) in components.iter().enumerate() {
            prop_assert_eq!(c.to_string(), format!("{}.slice", parts[..=i].join("-")));
        }
        prop_assert_eq!(path.name(), Some(slice.as_str()));
        no_traversal(&path)?;
        Ok(())
    });
    check("slice_expansion_any", 512, path_like(), |raw| {
        if let Ok(path) = expand_slice(&raw) {
            no_traversal(&path)?;
            prop_assert!(raw.ends_with(".slice"), "{raw:?}");
            prop_assert!(path.is_root() == (raw == "-.slice"), "{raw:?} -> {path}");
            if !path.is_root() {
                prop_assert_eq!(path.name(), Some(raw.as_str()));
            }
        }
        Ok(())
    });
}

#[test]
fn limit_files() {
    let dir = tempfile::tempdir().unwrap();
    let v2 = dir.path().join("v2");
    let v1 = dir.path().join("v1");
    std::fs::create_dir_all(v2.join("pod")).unwrap();
    std::fs::create_dir_all(v1.join("memory/pod")).unwrap();
    let v2 = v2_tree(&v2);
    let v1 = CgroupTree::detect(&v1).unwrap();
    let pod = CgroupPath::parse("/pod").unwrap();
    let content = prop_oneof![
        any::<u64>().prop_map(|n| format!("{n}\n")),
        Just("max\n".to_string()),
        Just("-1\n".to_string()),
        "[0-9a-z \\n-]{0,24}",
        any::<String>(),
    ];
    check("limit_files_read", 512, content, |text| {
        for tree in [&v2, &v1] {
            std::fs::write(tree.memory_limit_file(&pod), &text).unwrap();
            let unified = tree.layout().is_unified();
            match tree.memory_limit(&pod) {
                Ok(MemoryLimit::Limited(Bytes(b))) => {
                    prop_assert_eq!(text.trim().parse::<u64>().ok(), Some(b), "{:?}", text);
                    prop_assert!(unified || b < 1 << 62, "v1 huge value {b} read as a limit");
                }
                Ok(MemoryLimit::Unlimited) => {
                    let t = text.trim();
                    let ok = if unified {
                        t == "max"
                    } else {
                        t == "-1" || t.parse::<u64>().is_ok_and(|n| n >= 1 << 62)
                    };
                    prop_assert!(ok, "{text:?} read as unlimited");
                }
                Err(_) => {
                    // Refused content is never a plain number (or "max" on v2).
                    let t = text.trim();
                    prop_assert!(
                        t.parse::<u64>().is_err() && !(unified && t == "max"),
                        "{text:?} refused"
                    );
                }
            }
        }
        Ok(())
    });
    // What the guard writes, it reads back.
    check("limit_files_round_trip", 256, 1u64..(1 << 61), |n| {
        for tree in [&v2, &v1] {
            tree.write_memory_limit(&pod, Bytes(n))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                tree.memory_limit(&pod).ok(),
                Some(MemoryLimit::Limited(Bytes(n)))
            );
        }
        Ok(())
    });
}

/// runsc flag names as the shim accepts them, and values without control characters.
fn flags() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z][a-z0-9_.-]{0,12}", "[ -~]{0,16}", 0..5).prop_filter(
        "flags the shim owns",
        |m| {
            !m.keys()
                .any(|k| matches!(k.as_str(), "root" | "log" | "log-fd" | "log-format"))
        },
    )
}

#[test]
fn runsc_toml_decoder() {
    let config = (
        "[a-z/]{1,12}",
        "/[a-z/]{0,12}",
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        prop_oneof![
            Just(GuardMode::Enforce),
            Just(GuardMode::Warn),
            Just(GuardMode::Off)
        ],
        flags(),
    )
        .prop_map(
            |(binary_name, root, io_uid, io_gid, grouping, guard_mode, runsc_config)| ShimConfig {
                binary_name,
                root,
                io_uid,
                io_gid,
                grouping,
                guard_mode,
                runsc_config,
                ..ShimConfig::default()
            },
        );
    check("runsc_toml_round_trip", 256, config, |c| {
        let text = toml::to_string(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back =
            ShimConfig::from_toml(&text, "t").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, c);
        Ok(())
    });

    // Any document: never a panic, never the file's values in the error, and what is
    // accepted becomes runsc arguments that are each one flag.
    let line = prop_oneof![
        Just("[runsc_config]".to_string()),
        Just("guard_mode = \"SECRETx\"".to_string()),
        Just("io_uid = \"SECRETx\"".to_string()),
        Just("binary_name = [\"SECRETx\"]".to_string()),
        Just("root = \"/SECRETx\"".to_string()),
        Just("root = \"SECRETx\"".to_string()),
        Just("-----BEGIN SECRETx-----".to_string()),
        Just("x = SECRETx".to_string()),
        "[a-z_-]{1,8} = \"[ -~]{0,8}SECRETx\"",
        "[a-z_-]{1,8} = [0-9]{1,3}",
        "\"[a-z\\t=\\n -]{0,6}\" = \"[a-z]{0,4}\"",
        "[ -~]{0,20}",
    ];
    let doc = prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"));
    check("runsc_toml_any_document", 512, doc, |text| {
        match ShimConfig::from_toml(&text, "ConfigPath /etc/x") {
            Ok(c) => {
                prop_assert!(Path::new(&c.root).is_absolute());
                for (k, v) in &c.runsc_config {
                    let arg = format!("--{k}={v}");
                    prop_assert!(!arg.chars().any(char::is_control), "{arg:?}");
                    prop_assert!(!k.contains('=') && !k.starts_with('-'), "{k:?}");
                    prop_assert!(!matches!(
                        k.as_str(),
                        "root" | "log" | "log-fd" | "log-format"
                    ));
                }
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains("SECRETx"), "the error quotes the file: {e}");
                prop_assert!(e.contains("/etc/x"), "{e}");
            }
        }
        Ok(())
    });
}
