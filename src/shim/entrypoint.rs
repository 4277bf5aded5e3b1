//! A container's command must exist in its rootfs.
//!
//! runc refuses at create a container whose `process.args[0]` it cannot find (it looks it up
//! like `execve` with the PATH of `process.env`); runsc 20221219 creates and starts it and fails
//! only inside the sandbox, where the error reaches nobody. So Create checks, in the rootfs the
//! shim just mounted, the way a lookup inside the container would go: a name with a `/` as a
//! path (relative to `process.cwd`), a bare name in each directory of PATH (gVisor's default
//! PATH when the environment has none), symlinks followed inside the rootfs. What the shim cannot
//! see is not refused: a path under one of the spec's mounts (a volume may bring the binary).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// gVisor's PATH for a process whose environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Linux's limit on symlinks in one lookup.
const MAX_SYMLINKS: usize = 40;

/// Checks that `process.args[0]` of the spec in `bundle` names an executable of its rootfs.
pub fn check(spec: &Spec, bundle: &Path) -> Result<()> {
    let Some(process) = spec.process() else {
        return Ok(());
    };
    let Some(name) = process.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    let Some(root) = spec.root() else {
        return Ok(());
    };
    let rootfs = bundle.join(root.path());
    if name.is_empty() || !rootfs.is_dir() {
        // runsc has its own words for these.
        return Ok(());
    }
    let env = process.env().clone().unwrap_or_default();
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let cwd = PathBuf::from(process.cwd());
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![cwd.join(name)]
    } else {
        path_var
            .split(':')
            .map(|dir| if dir.is_empty() { "." } else { dir })
            .map(|dir| cwd.join(dir).join(name))
            .collect()
    };
    let mounts: Vec<PathBuf> = spec
        .mounts()
        .as_ref()
        .map(|m| m.iter().map(|m| m.destination().clone()).collect())
        .unwrap_or_default();
    for candidate in &candidates {
        let inside = normalize(candidate);
        if mounts
            .iter()
            .any(|m| inside.starts_with(normalize(m)) && normalize(m) != Path::new("/"))
        {
            return Ok(());
        }
        if let Some(host) = resolve_in_root(&rootfs, &inside) {
            if let Ok(meta) = fs::metadata(&host) {
                if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                    return Ok(());
                }
            }
        }
    }
    let searched = if name.contains('/') {
        format!("{}", candidates[0].display())
    } else {
        format!("PATH {path_var}")
    };
    Err(Error::invalid(
        "process.args[0]",
        format!(
            "{name:?} is not an executable in the container's rootfs {} (looked up at \
             {searched}); runc refuses such a container at create too: fix the command or \
             the image",
            rootfs.display()
        ),
    ))
}

/// `path` as an absolute path with `.` and `..` resolved lexically, never above `/`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The host path of `path` (absolute, inside the container) in the rootfs at `root`, following
/// symlinks as the container would see them: an absolute target starts again at the rootfs, `..`
/// never leaves it. None when a component is missing or there are too many links.
fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut inside = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            inside.pop();
            continue;
        }
        let next = inside.join(&part);
        let host = root.join(next.strip_prefix("/").ok()?);
        let meta = fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_SYMLINKS {
                return None;
            }
            let target = fs::read_link(&host).ok()?;
            if target.is_absolute() {
                inside = PathBuf::from("/");
            }
            let parts: Vec<_> = target
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some("..".into()),
                    _ => None,
                })
                .collect();
            pending.extend(parts.into_iter().rev());
        } else {
            inside = next;
        }
    }
    Some(root.join(inside.strip_prefix("/").ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::symlink;

    fn executable(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn spec(args: &[&str], env: Option<&[&str]>, mounts: &[&str]) -> Spec {
        let mut process = json!({"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0}});
        if let Some(env) = env {
            process["env"] = json!(env);
        }
        let mounts: Vec<_> = mounts
            .iter()
            .map(|d| json!({"destination": d, "type": "bind", "source": "/x"}))
            .collect();
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "process": process,
            "root": {"path": "rootfs"},
            "mounts": mounts,
        }))
        .unwrap()
    }

    fn bundle() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        executable(&rootfs.join("bin/busybox"));
        symlink("/bin/busybox", rootfs.join("bin/sh")).unwrap();
        symlink("busybox", rootfs.join("bin/true")).unwrap();
        fs::create_dir_all(rootfs.join("usr")).unwrap();
        symlink("../bin", rootfs.join("usr/bin")).unwrap();
        executable(&rootfs.join("pause"));
        fs::write(rootfs.join("etc-file"), "").unwrap();
        symlink("/../../../../etc/passwd", rootfs.join("escape")).unwrap();
        dir
    }

    #[test]
    fn commands_found_like_a_lookup_in_the_container() {
        let b = bundle();
        let path = Some(&["PATH=/usr/local/bin:/usr/bin"][..]);
        for args in [
            &["/pause"][..],
            &["sh", "-c", "exit 7"],
            &["true"],
            &["/bin/sh"],
            &["./bin/true"],
            &["/usr/bin/../bin/sh"],
        ] {
            check(&spec(args, path, &[]), b.path()).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        // No PATH in the environment: gVisor's default one.
        check(&spec(&["busybox"], None, &[]), b.path()).unwrap();
    }

    #[test]
    fn a_missing_or_unusable_command_is_refused_with_what_was_looked_up() {
        let b = bundle();
        let path = Some(&["PATH=/usr/bin:/bin"][..]);
        let err = check(&spec(&["nginx"], path, &[]), b.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("process.args[0]") && err.contains("\"nginx\""),
            "{err}"
        );
        assert!(err.contains("PATH /usr/bin:/bin"), "{err}");
        for args in [&["/etc-file"][..], &["/bin"], &["/escape"], &["/nope/sh"]] {
            assert!(check(&spec(args, path, &[]), b.path()).is_err(), "{args:?}");
        }
    }

    #[test]
    fn a_command_under_a_mount_is_not_judged() {
        let b = bundle();
        let path = Some(&["PATH=/opt/tools/bin"][..]);
        check(&spec(&["tool"], path, &["/opt/tools"]), b.path()).unwrap();
        check(&spec(&["/data/run.sh"], path, &["/data"]), b.path()).unwrap();
        assert!(check(&spec(&["tool"], path, &["/proc"]), b.path()).is_err());
    }
}
