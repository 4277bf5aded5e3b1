//! Normalised cgroup paths, relative to the cgroup root.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{invalid, CgroupError};

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

/// Checks common to every form: no NUL, not longer than a path can be.
pub(super) fn check_text(raw: &str) -> Result<(), CgroupError> {
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

pub(super) fn check_name(raw: &str, name: &str) -> Result<(), CgroupError> {
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
}
