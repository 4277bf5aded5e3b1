//! `linux.cgroupsPath` (`SpecCgroupsPath`), cgroup paths (`CgroupPath`), systemd slices and the
//! CRI annotations (`PodAnnotations::parse`, `Role::from_annotations`).
//!
//! The first byte picks what the rest is: even, a path (the same text through each path
//! parser); odd, annotations as `key=value` lines, the first line being the container's own id.
//!
//! Invariants: no panic; every cgroup path that comes out is normalised (absolute, no empty,
//! `.` or `..` component) and parses to itself; a pod cgroup holds the leaf it was found from;
//! a systemd path written back parses to itself; a relative path has no `..`; a log directory
//! is absolute and has no `..`.
#![no_main]

use std::collections::HashMap;
use std::path::Component;

use libfuzzer_sys::fuzz_target;
use runsc_guard::annotations::{PodAnnotations, Role};
use runsc_guard::cgroup::{expand_slice, CgroupPath, SpecCgroupsPath, SystemdPath};

fn normalised(p: &CgroupPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?}");
    assert!(p.is_root() || !s.ends_with('/'), "{s:?}");
    for c in s.split('/').skip(1) {
        assert!(p.is_root() || !matches!(c, "" | "." | ".."), "{s:?}");
    }
    assert_eq!(CgroupPath::parse(s).as_ref().ok(), Some(p), "{s:?}");
    // The parents end at the root, each one strictly above.
    let ancestors = p.ancestors_to_root();
    assert_eq!(ancestors.len(), p.components().count());
    if let Some(parent) = p.parent() {
        assert!(p.is_strictly_under(&parent), "{s:?} under {parent}");
        assert!(!parent.is_strictly_under(p));
    }
}

fn path(raw: &str) {
    if let Ok(p) = CgroupPath::parse(raw) {
        normalised(&p);
        if let Ok(child) = p.join("fuzz") {
            normalised(&child);
            assert!(child.is_strictly_under(&p));
        }
    }
    if let Ok(p) = expand_slice(raw) {
        normalised(&p);
    }
    if let Ok(sd) = SystemdPath::parse(raw) {
        normalised(&sd.leaf());
        normalised(&sd.slice_cgroup());
        assert!(sd.leaf().is_strictly_under(&sd.slice_cgroup()));
        let again = SystemdPath::parse(&sd.as_spec_string()).expect("written back, parses");
        assert_eq!(again, sd);
    }
    match SpecCgroupsPath::parse(raw) {
        Ok(SpecCgroupsPath::Relative(r)) => {
            assert!(!r.split('/').any(|c| c == ".."), "{r:?}");
        }
        Ok(spec) => {
            let leaf = spec.leaf();
            if let Some(leaf) = &leaf {
                normalised(leaf);
                assert!(!leaf.is_root());
            }
            if let Some(pod) = spec.pod_cgroup() {
                normalised(&pod);
                let leaf = leaf.expect("a path that names a pod names its leaf");
                assert!(leaf.is_strictly_under(&pod), "{leaf} under {pod}");
            }
        }
        Err(_) => {}
    }
}

fn annotations(text: &str) {
    let mut lines = text.lines();
    let own_id = lines.next().unwrap_or_default();
    let map: HashMap<String, String> = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let role = Role::from_annotations(&map);
    match PodAnnotations::parse(&map, own_id) {
        Ok(pod) => {
            assert_eq!(role.as_ref().ok(), Some(&pod.role));
            if pod.role.is_sandbox() {
                assert_eq!(pod.sandbox_id, own_id);
            } else {
                assert!(!pod.sandbox_id.is_empty());
            }
            if let Some(dir) = &pod.log_directory {
                assert!(dir.is_absolute(), "{dir:?}");
                assert!(
                    !dir.components().any(|c| c == Component::ParentDir),
                    "{dir:?}"
                );
            }
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        path(&text);
    } else {
        annotations(&text);
    }
});
