//! `linux.cgroupsPath`, the spec's field, in the forms containerd writes it.

use super::path::{check_name, check_text, CgroupPath};
use super::systemd::SystemdPath;
use super::{invalid, CgroupError};

/// `linux.cgroupsPath` classified the way runsc will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecCgroupsPath {
    /// No path: runsc uses `/<container id>` at the cgroup root (ctr and nerdctl without a
    /// parent do this).
    Empty,
    /// `slice:prefix:name`, what containerd writes when the kubelet uses the systemd driver.
    Systemd(SystemdPath),
    /// An absolute cgroupfs path (`/kubepods/burstable/pod<uid>/<id>`), taken from the root.
    Absolute(CgroupPath),
    /// A relative path. runsc joins it to the parent of its own cgroup, which is how a sandbox
    /// ends up outside its pod (the incident: a systemd path read as a relative one).
    Relative(String),
}

impl SpecCgroupsPath {
    /// Classifies and validates a `linux.cgroupsPath`. A value with exactly three `:`-separated
    /// parts and no leading `/` is systemd's form, as runsc and runc decide it.
    pub fn parse(raw: &str) -> Result<Self, CgroupError> {
        if raw.is_empty() {
            return Ok(SpecCgroupsPath::Empty);
        }
        check_text(raw)?;
        if raw.starts_with('/') {
            let path = CgroupPath::parse(raw)?;
            if path.is_root() {
                // The root bounds nothing; no runtime puts a container there.
                return Err(invalid(raw, "names the root cgroup, which bounds nothing"));
            }
            return Ok(SpecCgroupsPath::Absolute(path));
        }
        if raw.split(':').count() == 3 {
            return SystemdPath::parse(raw).map(SpecCgroupsPath::Systemd);
        }
        for component in raw.split('/') {
            if component == ".." {
                return Err(invalid(
                    raw,
                    "contains \"..\", which would leave the cgroup it names",
                ));
            }
            if !component.is_empty() {
                check_name(raw, component)?;
            }
        }
        Ok(SpecCgroupsPath::Relative(raw.to_string()))
    }

    pub fn is_systemd(&self) -> bool {
        matches!(self, SpecCgroupsPath::Systemd(_))
    }

    /// The cgroup the container's processes would sit in, when the path names one on its own
    /// (not for a relative path, whose place depends on runsc's own cgroup).
    pub fn leaf(&self) -> Option<CgroupPath> {
        match self {
            SpecCgroupsPath::Systemd(s) => Some(s.leaf()),
            SpecCgroupsPath::Absolute(p) => Some(p.clone()),
            SpecCgroupsPath::Empty | SpecCgroupsPath::Relative(_) => None,
        }
    }

    /// The Kubernetes pod cgroup this path sits in, if it names one: the slice of a systemd
    /// path whose last dash component starts with `pod` (`kubepods-burstable-pod<uid>.slice`),
    /// or, in a cgroupfs path, the nearest ancestor of the leaf whose name starts with `pod`
    /// (`/kubepods/burstable/pod<uid>/<id>`), the same search gVisor's shim makes.
    pub fn pod_cgroup(&self) -> Option<CgroupPath> {
        match self {
            SpecCgroupsPath::Systemd(s) => s.is_pod_slice().then(|| s.slice_cgroup()),
            SpecCgroupsPath::Absolute(p) => p
                .parent()?
                .ancestors_to_root()
                .into_iter()
                .find(|c| c.name().is_some_and(|n| n.starts_with("pod"))),
            SpecCgroupsPath::Empty | SpecCgroupsPath::Relative(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CgroupPath {
        CgroupPath::parse(s).unwrap()
    }

    #[test]
    fn forms_containerd_writes() {
        let sd =
            SpecCgroupsPath::parse("kubepods-burstable-pod12_34.slice:cri-containerd:abc").unwrap();
        assert!(sd.is_systemd());
        assert_eq!(
            sd.pod_cgroup(),
            Some(p(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice"
            ))
        );
        assert_eq!(
            sd.leaf(),
            Some(p("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice/cri-containerd-abc.scope"))
        );

        let fs = SpecCgroupsPath::parse("/kubepods/burstable/pod12-34/abc").unwrap();
        assert_eq!(fs.pod_cgroup(), Some(p("/kubepods/burstable/pod12-34")));
        assert_eq!(fs.leaf(), Some(p("/kubepods/burstable/pod12-34/abc")));

        let docker = SpecCgroupsPath::parse("system.slice:docker:abc").unwrap();
        assert!(docker.is_systemd());
        assert_eq!(docker.pod_cgroup(), None);

        assert_eq!(SpecCgroupsPath::parse("").unwrap(), SpecCgroupsPath::Empty);
        assert_eq!(
            SpecCgroupsPath::parse("/default/abc").unwrap().pod_cgroup(),
            None
        );
        // The pod cgroup is an ancestor of the leaf, never the leaf itself.
        assert_eq!(
            SpecCgroupsPath::parse("/kubepods/pod1")
                .unwrap()
                .pod_cgroup(),
            None
        );
        assert_eq!(
            SpecCgroupsPath::parse("kubepods/burstable/pod1/abc").unwrap(),
            SpecCgroupsPath::Relative("kubepods/burstable/pod1/abc".into())
        );
    }

    #[test]
    fn hostile_paths_are_refused_with_the_field_named() {
        let long_name = format!("/{}", "a".repeat(300));
        let long_path = "/a".repeat(3000);
        for raw in [
            "/kubepods/../system.slice/x",
            "/kubepods/burstable/pod1/..",
            "../escape",
            "a/../../b",
            "/a\0b",
            long_name.as_str(),
            long_path.as_str(),
            "/a/b\nc",
            "/",
            "//./",
        ] {
            let err = SpecCgroupsPath::parse(raw).unwrap_err().to_string();
            assert!(err.starts_with("linux.cgroupsPath"), "{raw:?}: {err}");
        }
    }
}
