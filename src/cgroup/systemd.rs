//! systemd's `slice:prefix:name` cgroup paths and slice names.
//!
//! With `--systemd-cgroup`, runsc (like runc) asks systemd for a transient scope unit
//! `<prefix>-<name>.scope` in the slice `slice`; systemd places slices by their dashes:
//! `kubepods-burstable-pod<uid>.slice` lives at
//! `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`.

use super::path::CgroupPath;
use super::{invalid, CgroupError};

/// The longest unit name: systemd's UNIT_NAME_MAX (256) counts the terminating NUL.
const MAX_UNIT_NAME: usize = 255;
const SLICE_SUFFIX: &str = ".slice";

/// A validated `slice:prefix:name` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    /// The slice unit, e.g. `kubepods-burstable-pod<uid>.slice`. An empty slice in the path
    /// means `system.slice`, as runsc and runc read it.
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl SystemdPath {
    pub fn parse(raw: &str) -> Result<Self, CgroupError> {
        let parts: Vec<&str> = raw.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(invalid(
                raw,
                "is not of the systemd form \"slice:prefix:name\" (three parts separated by ':')",
            ));
        };
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        validate_slice(raw, slice)?;
        // runsc's unit is `<prefix>-<name>.scope`: without a prefix it starts with a dash,
        // which systemctl would read as an option.
        if prefix.is_empty() {
            return Err(invalid(
                raw,
                "has an empty prefix part (slice:prefix:name); runsc names the unit \
                 <prefix>-<name>.scope, so both are needed",
            ));
        }
        if name.is_empty() {
            return Err(invalid(raw, "has an empty name part (slice:prefix:name)"));
        }
        for (what, part) in [("prefix", prefix), ("name", name)] {
            if let Some(bad) = part.chars().find(|c| !is_unit_char(*c)) {
                return Err(invalid(
                    raw,
                    &format!(
                        "its {what} {part:?} contains {bad:?}, which a systemd unit name cannot"
                    ),
                ));
            }
        }
        let path = SystemdPath {
            slice: slice.to_string(),
            prefix: prefix.to_string(),
            name: name.to_string(),
        };
        if path.unit_name().len() > MAX_UNIT_NAME {
            return Err(invalid(
                raw,
                &format!("makes a unit name longer than systemd's {MAX_UNIT_NAME} characters"),
            ));
        }
        // The slice's cgroup and the unit's inside it must be cgroup paths (a name of at most
        // 255 bytes, a path of at most 4096), or `slice_cgroup` and `leaf` would name another
        // cgroup than runsc's: a slice of many dashes expands to a path longer than its name.
        if expand_slice(slice)
            .and_then(|c| c.join(&path.unit_name()))
            .is_err()
        {
            return Err(invalid(
                raw,
                "makes a cgroup path longer than Linux allows (255 bytes a name, 4096 a path)",
            ));
        }
        Ok(path)
    }

    /// The unit runsc asks systemd for: always `<prefix>-<name>.scope`, also for a name that
    /// ends in `.slice` (gVisor's `runsc/cgroup/systemd.go`, `unitName`; runc would take such a
    /// name for the unit itself, runsc does not).
    pub fn unit_name(&self) -> String {
        format!("{}-{}.scope", self.prefix, self.name)
    }

    /// The slice's cgroup.
    pub fn slice_cgroup(&self) -> CgroupPath {
        // The slice was validated at parse time, so expansion cannot fail; the root is the
        // answer that cannot place anything wrongly if it ever did.
        expand_slice(&self.slice).unwrap_or_else(|_| CgroupPath::root())
    }

    /// The unit's cgroup: where the container's processes sit.
    pub fn leaf(&self) -> CgroupPath {
        let unit = self.unit_name();
        self.slice_cgroup()
            .join(&unit)
            .unwrap_or_else(|_| self.slice_cgroup())
    }

    /// Whether the slice is a kubelet pod slice (`kubepods-pod<uid>.slice`,
    /// `kubepods-<qos>-pod<uid>.slice`): its last dash component starts with `pod`.
    pub fn is_pod_slice(&self) -> bool {
        self.slice
            .strip_suffix(SLICE_SUFFIX)
            .and_then(|s| s.rsplit('-').next())
            .is_some_and(|last| last.starts_with("pod"))
    }

    /// The path in its `slice:prefix:name` form.
    pub fn as_spec_string(&self) -> String {
        format!("{}:{}:{}", self.slice, self.prefix, self.name)
    }
}

/// systemd's valid unit-name characters (besides `@` for templates, which slices never are).
fn is_unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\')
}

/// Checks a slice name the way runsc and runc do (ends in `.slice`, no `/`, no empty dash
/// component, `-.slice` is the root) and that it is a valid unit name.
fn validate_slice(raw: &str, slice: &str) -> Result<(), CgroupError> {
    let Some(stem) = slice.strip_suffix(SLICE_SUFFIX) else {
        return Err(invalid(
            raw,
            &format!("slice {slice:?} is not a systemd slice name (it must end in \".slice\")"),
        ));
    };
    if slice.contains('/') {
        return Err(invalid(raw, &format!("slice {slice:?} contains '/'")));
    }
    if let Some(bad) = slice.chars().find(|c| !is_unit_char(*c) || *c == ':') {
        return Err(invalid(
            raw,
            &format!("slice {slice:?} contains {bad:?}, which a systemd unit name cannot"),
        ));
    }
    if slice.len() > MAX_UNIT_NAME {
        return Err(invalid(
            raw,
            &format!("slice name is longer than systemd's {MAX_UNIT_NAME} characters"),
        ));
    }
    if stem != "-" && stem.split('-').any(str::is_empty) {
        return Err(invalid(
            raw,
            &format!(
                "slice {slice:?} has an empty dash-separated component (systemd reads dashes as \
                 nesting: a-b.slice is inside a.slice)"
            ),
        ));
    }
    Ok(())
}

/// The cgroup of a slice: `a-b-c.slice` is `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` the
/// root.
pub fn expand_slice(slice: &str) -> Result<CgroupPath, CgroupError> {
    validate_slice(slice, slice)?;
    let stem = slice.strip_suffix(SLICE_SUFFIX).unwrap_or(slice);
    if stem == "-" {
        return Ok(CgroupPath::root());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in stem.split('-') {
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(SLICE_SUFFIX);
        prefix.push_str(component);
        prefix.push('-');
    }
    CgroupPath::parse(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer (`cgroup_paths`): a unit name of 256 characters, or a slice whose
    /// cgroup is longer than a path can be, passed and then named the slice, or the root, as
    /// the leaf.
    #[test]
    fn a_path_whose_cgroup_cannot_exist_is_refused() {
        let name = "n".repeat(256 - "cri-containerd-.scope".len());
        let raw = format!("kubepods-pod1.slice:cri-containerd:{name}");
        assert!(
            SystemdPath::parse(&raw).is_err(),
            "a 256-character unit name"
        );
        let ok = format!("kubepods-pod1.slice:cri-containerd:{}", &name[1..]);
        let sd = SystemdPath::parse(&ok).unwrap();
        assert!(sd.leaf().is_strictly_under(&sd.slice_cgroup()));

        let deep = format!("{}.slice", vec!["abcd"; 40].join("-"));
        assert!(
            expand_slice(&deep).is_err(),
            "longer than PATH_MAX once expanded"
        );
        assert!(SystemdPath::parse(&format!("{deep}:cri-containerd:abc")).is_err());
    }

    #[test]
    fn slices_expand_by_their_dashes() {
        let cases = [
            ("-.slice", "/"),
            ("system.slice", "/system.slice"),
            ("kubepods.slice", "/kubepods.slice"),
            (
                "kubepods-pod1_2.slice",
                "/kubepods.slice/kubepods-pod1_2.slice",
            ),
            (
                "kubepods-burstable-pod1_2.slice",
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice",
            ),
            (
                "kubepods-besteffort-pod1_2.slice",
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice",
            ),
        ];
        for (slice, want) in cases {
            assert_eq!(expand_slice(slice).unwrap().as_str(), want, "{slice}");
        }
    }

    #[test]
    fn invalid_slices_are_refused() {
        for slice in [
            "kubepods",
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "a b.slice",
            "a\u{e9}.slice",
        ] {
            let err = expand_slice(slice).unwrap_err().to_string();
            assert!(err.contains("linux.cgroupsPath"), "{slice}: {err}");
        }
    }

    #[test]
    fn unit_and_leaf() {
        let p = SystemdPath::parse("kubepods-pod9.slice:cri-containerd:abc").unwrap();
        assert_eq!(p.unit_name(), "cri-containerd-abc.scope");
        assert_eq!(
            p.leaf().as_str(),
            "/kubepods.slice/kubepods-pod9.slice/cri-containerd-abc.scope"
        );
        assert!(p.is_pod_slice());
        assert!(!SystemdPath::parse("system.slice:docker:abc")
            .unwrap()
            .is_pod_slice());
        assert!(!SystemdPath::parse("kubepods.slice:x:abc")
            .unwrap()
            .is_pod_slice());
        let empty_slice = SystemdPath::parse(":runsc:abc").unwrap();
        assert_eq!(empty_slice.slice, "system.slice");
    }

    #[test]
    fn the_unit_is_runscs_even_for_a_name_that_ends_in_slice() {
        // runsc names the unit `<prefix>-<name>.scope` whatever the name says; taking the name
        // for the unit would let a spec name kubepods.slice as the sandbox's own unit.
        let p = SystemdPath::parse("kubepods-burstable-pod9.slice:cri-containerd:kubepods.slice")
            .unwrap();
        assert_eq!(p.unit_name(), "cri-containerd-kubepods.slice.scope");
        assert_eq!(
            p.leaf().as_str(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9.slice/\
             cri-containerd-kubepods.slice.scope"
        );
    }

    #[test]
    fn bad_prefix_or_name_is_refused() {
        for raw in [
            "kubepods-pod9.slice:cri-containerd:",
            "kubepods-pod9.slice::abc",
            "kubepods-pod9.slice::-h",
            "kubepods-pod9.slice:cri/containerd:abc",
            "kubepods-pod9.slice:cri-containerd:a/../b",
            "kubepods-pod9.slice:cri containerd:abc",
            "kubepods-pod9:cri-containerd:abc",
        ] {
            let err = SystemdPath::parse(raw).unwrap_err().to_string();
            assert!(err.contains("linux.cgroupsPath"), "{raw}: {err}");
        }
    }
}
