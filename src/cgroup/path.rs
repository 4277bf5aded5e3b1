//! `linux.cgroupsPath` in the forms containerd writes it, and normalised cgroup paths.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::systemd::SystemdPath;
use super::CgroupError;

/// Linux's PATH_MAX: a longer path cannot name a cgroup file.
const MAX_PATH_LEN: usize = 4096;
/// Linux's NAME_MAX: the longest directory name.
const MAX_NAME_LEN: usize = 255;

/// A cgroup's path relative to the cgroup root, normalised: `/` for the root, otherwise
/// `/a/b` with no empty, `.` or `..` component and no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CgroupPath(String);

impl CgroupPath {
    pub fn root() -> Self {
        CgroupPath("/".to_string())
    }

    /// Parses an absolute cgroup path. `..` is refused rather than resolved: no path containerd
    /// writes has one, so it can only be an attempt to leave the subtree it names.
    pub fn parse(raw: &str) -> Result<Self, CgroupError> {
        check_text(raw)?;
        if !raw.starts_with('/') {
            return Err(invalid(raw, "is not an absolute cgroup path"));
        }
        let mut normal = String::with_capacity(raw.len());
        for component in raw.split('/') {
            match component {
                "" | "." => continue,
                ".." => {
                    return Err(invalid(
                        raw,
                        "contains \"..\", which would leave the cgroup it names",
                    ))
                }
                name => {
                    check_name(raw, name)?;
                    normal.push('/');
                    normal.push_str(name);
                }
            }
        }
        if normal.is_empty() {
            normal.push('/');
        }
        Ok(CgroupPath(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The components below the root, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last component; None for the root.
    pub fn name(&self) -> Option<&str> {
        self.components().last()
    }

    /// The parent cgroup; None for the root.
    pub fn parent(&self) -> Option<CgroupPath> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').unwrap_or(0);
        Some(if cut == 0 {
            CgroupPath::root()
        } else {
            CgroupPath(self.0[..cut].to_string())
        })
    }

    /// A child cgroup. The name must be a single valid component.
    pub fn join(&self, name: &str) -> Result<CgroupPath, CgroupError> {
        let joined = if self.is_root() {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.0)
        };
        if name.contains('/') || name == "." || name == ".." || name.is_empty() {
            return Err(invalid(
                &joined,
                "has a component that is not a cgroup name",
            ));
        }
        CgroupPath::parse(&joined)
    }

    /// This cgroup and its ancestors up to, not including, the root: the cgroups whose limits
    /// bound a process that sits here.
    pub fn ancestors_to_root(&self) -> Vec<CgroupPath> {
        let mut out = Vec::new();
        let mut cur = Some(self.clone());
        while let Some(c) = cur {
            if c.is_root() {
                break;
            }
            cur = c.parent();
            out.push(c);
        }
        out
    }

    /// Whether this cgroup lies strictly inside `ancestor` (not equal to it).
    pub fn is_strictly_under(&self, ancestor: &CgroupPath) -> bool {
        if ancestor.is_root() {
            return !self.is_root();
        }
        self.0.len() > ancestor.0.len()
            && self.0.starts_with(&ancestor.0)
            && self.0.as_bytes()[ancestor.0.len()] == b'/'
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CgroupPath {
    type Error = CgroupError;
    fn try_from(s: String) -> Result<Self, CgroupError> {
        CgroupPath::parse(&s)
    }
}

impl From<CgroupPath> for String {
    fn from(p: CgroupPath) -> String {
        p.0
    }
}

/// `linux.cgroupsPath` classified the way runsc will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
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

impl CgroupsPath {
    /// Classifies and validates a `linux.cgroupsPath`. A value with exactly three `:`-separated
    /// parts and no leading `/` is systemd's form, as runsc and runc decide it.
    pub fn parse(raw: &str) -> Result<Self, CgroupError> {
        if raw.is_empty() {
            return Ok(CgroupsPath::Empty);
        }
        check_text(raw)?;
        if raw.starts_with('/') {
            let path = CgroupPath::parse(raw)?;
            if path.is_root() {
                // The root bounds nothing; no runtime puts a container there.
                return Err(invalid(raw, "names the root cgroup, which bounds nothing"));
            }
            return Ok(CgroupsPath::Absolute(path));
        }
        if raw.split(':').count() == 3 {
            return SystemdPath::parse(raw).map(CgroupsPath::Systemd);
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
        Ok(CgroupsPath::Relative(raw.to_string()))
    }

    pub fn is_systemd(&self) -> bool {
        matches!(self, CgroupsPath::Systemd(_))
    }

    /// The cgroup the container's processes would sit in, when the path names one on its own
    /// (not for a relative path, whose place depends on runsc's own cgroup).
    pub fn leaf(&self) -> Option<CgroupPath> {
        match self {
            CgroupsPath::Systemd(s) => Some(s.leaf()),
            CgroupsPath::Absolute(p) => Some(p.clone()),
            CgroupsPath::Empty | CgroupsPath::Relative(_) => None,
        }
    }

    /// The Kubernetes pod cgroup this path sits in, if it names one: the slice of a systemd
    /// path whose last dash component starts with `pod` (`kubepods-burstable-pod<uid>.slice`),
    /// or, in a cgroupfs path, the nearest ancestor of the leaf whose name starts with `pod`
    /// (`/kubepods/burstable/pod<uid>/<id>`), the same search gVisor's shim makes.
    pub fn pod_cgroup(&self) -> Option<CgroupPath> {
        match self {
            CgroupsPath::Systemd(s) => s.is_pod_slice().then(|| s.slice_cgroup()),
            CgroupsPath::Absolute(p) => p
                .parent()?
                .ancestors_to_root()
                .into_iter()
                .find(|c| c.name().is_some_and(|n| n.starts_with("pod"))),
            CgroupsPath::Empty | CgroupsPath::Relative(_) => None,
        }
    }
}

/// Checks common to every form: no NUL, not longer than a path can be.
fn check_text(raw: &str) -> Result<(), CgroupError> {
    if raw.contains('\0') {
        return Err(invalid(raw, "contains a NUL byte"));
    }
    if raw.len() > MAX_PATH_LEN {
        return Err(invalid(
            &format!("{}...", truncate(raw, 64)),
            &format!(
                "is {} bytes long; a path has at most {MAX_PATH_LEN}",
                raw.len()
            ),
        ));
    }
    Ok(())
}

fn check_name(raw: &str, name: &str) -> Result<(), CgroupError> {
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(
            raw,
            &format!(
                "component {:?}... is {} bytes long; a cgroup name has at most {MAX_NAME_LEN}",
                truncate(name, 32),
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(raw, "contains a control character"));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(super) fn invalid(path: &str, reason: &str) -> CgroupError {
    CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CgroupPath {
        CgroupPath::parse(s).unwrap()
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(p("/").as_str(), "/");
        assert_eq!(p("//a//b/./c/").as_str(), "/a/b/c");
        assert_eq!(p("/a/b").parent(), Some(p("/a")));
        assert_eq!(p("/a").parent(), Some(CgroupPath::root()));
        assert_eq!(CgroupPath::root().parent(), None);
        assert_eq!(p("/a/b").name(), Some("b"));
        assert_eq!(p("/a").join("b").unwrap(), p("/a/b"));
        assert_eq!(CgroupPath::root().join("b").unwrap(), p("/b"));
        assert!(p("/a").join("../x").is_err());
        assert_eq!(
            p("/a/b/c").ancestors_to_root(),
            vec![p("/a/b/c"), p("/a/b"), p("/a")]
        );
    }

    #[test]
    fn strictly_under() {
        assert!(p("/a/b").is_strictly_under(&p("/a")));
        assert!(!p("/a").is_strictly_under(&p("/a")));
        assert!(!p("/ab").is_strictly_under(&p("/a")));
        assert!(p("/a").is_strictly_under(&CgroupPath::root()));
        assert!(!CgroupPath::root().is_strictly_under(&CgroupPath::root()));
    }

    #[test]
    fn forms_containerd_writes() {
        let sd =
            CgroupsPath::parse("kubepods-burstable-pod12_34.slice:cri-containerd:abc").unwrap();
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

        let fs = CgroupsPath::parse("/kubepods/burstable/pod12-34/abc").unwrap();
        assert_eq!(fs.pod_cgroup(), Some(p("/kubepods/burstable/pod12-34")));
        assert_eq!(fs.leaf(), Some(p("/kubepods/burstable/pod12-34/abc")));

        let docker = CgroupsPath::parse("system.slice:docker:abc").unwrap();
        assert!(docker.is_systemd());
        assert_eq!(docker.pod_cgroup(), None);

        assert_eq!(CgroupsPath::parse("").unwrap(), CgroupsPath::Empty);
        assert_eq!(
            CgroupsPath::parse("/default/abc").unwrap().pod_cgroup(),
            None
        );
        // The pod cgroup is an ancestor of the leaf, never the leaf itself.
        assert_eq!(
            CgroupsPath::parse("/kubepods/pod1").unwrap().pod_cgroup(),
            None
        );
        assert_eq!(
            CgroupsPath::parse("kubepods/burstable/pod1/abc").unwrap(),
            CgroupsPath::Relative("kubepods/burstable/pod1/abc".into())
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
            let err = CgroupsPath::parse(raw).unwrap_err().to_string();
            assert!(err.starts_with("linux.cgroupsPath"), "{raw:?}: {err}");
        }
    }
}
