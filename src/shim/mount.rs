//! The container's root filesystem: containerd's mounts, mounted on `<bundle>/rootfs`.

use std::path::{Path, PathBuf};

use containerd_shim::mount::{mount_rootfs, umount_recursive};

use crate::error::{Error, Result};

/// One mount of CreateTaskRequest.rootfs, free of the protocol's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// The rootfs directory of a bundle.
pub fn rootfs_dir(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// Mounts `mounts` on `<bundle>/rootfs`, in order. On failure whatever was mounted is unmounted.
pub async fn mount_all(bundle: &Path, mounts: &[RootfsMount]) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    let target = rootfs_dir(bundle);
    let mounts = mounts.to_vec();
    let bundle = bundle.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&target)
            .map_err(|e| Error::io("creating the rootfs directory", &target, e))?;
        for m in &mounts {
            let kind = (!m.kind.is_empty()).then_some(m.kind.as_str());
            let source = (!m.source.is_empty()).then_some(m.source.as_str());
            if let Err(e) = mount_rootfs(kind, source, &m.options, &target) {
                let _ = unmount_blocking(&bundle);
                return Err(from_shim_lib(
                    format!(
                        "mounting rootfs {:?} ({}) on {}",
                        m.source,
                        m.kind,
                        target.display()
                    ),
                    e,
                ));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::task_failed("rootfs mount task", e))?
}

/// Unmounts everything under `<bundle>/rootfs`. Idempotent: nothing mounted is fine.
pub async fn unmount_all(bundle: &Path) -> Result<()> {
    let bundle = bundle.to_path_buf();
    tokio::task::spawn_blocking(move || unmount_blocking(&bundle))
        .await
        .map_err(|e| Error::task_failed("rootfs unmount task", e))?
}

/// The same, for callers outside the runtime (the `delete` action).
pub fn unmount_blocking(bundle: &Path) -> Result<()> {
    let target = rootfs_dir(bundle);
    let Some(target_str) = target.to_str() else {
        return Err(Error::invalid("bundle", format!("{target:?} is not UTF-8")));
    };
    // MNT_DETACH: a busy rootfs (a process still holding it) must not leave the pod stuck
    // terminating (google/gvisor#9834); the kernel finishes the unmount when it is released.
    umount_recursive(Some(target_str), libc::MNT_DETACH)
        .map_err(|e| from_shim_lib(format!("unmounting {}", target.display()), e))
}

/// The containerd-shim library's mount error as ours: a failed mount(2)/umount2(2) or file read
/// keeps its errno. The library's own refusals (an option too long, no free loop device) carry
/// no errno, only words.
fn from_shim_lib(action: String, e: containerd_shim::Error) -> Error {
    use containerd_shim::Error as Lib;
    match e {
        Lib::Nix(errno) => Error::os(action, errno),
        Lib::MountError { context, err } => Error::os(format!("{action}: {context}"), err),
        Lib::IoError { context, err } => Error::os(format!("{action}: {context}"), err),
        // The library's own refusals, told only in its words: no errno, no kind to act on.
        other => Error::Other(format!("{action}: {other}")),
    }
}
