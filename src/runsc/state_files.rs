//! runsc's state files of one pod, and the order in which the shim lets runsc touch them.
//!
//! runsc keeps each container as `<root>/<container>_sandbox:<sandbox>.state` beside a
//! `.lock` file it flocks around every read and write of the state. `runsc delete` removes both
//! (`StateFile.Destroy`), but any runsc command that loads a container opens its lock file
//! with O_CREAT (`StateFile.lock`, the same from 20221219 to the 2026 releases). So a command
//! that found the state file a moment before a concurrent delete removed it creates the lock
//! file again, fails to read the state, and leaves the lock file behind for good. Within a pod
//! this is not rare: deleting a container that joined a sandbox loads every container of the
//! sandbox (`adjustSandboxOOMScoreAdj` through `LoadSandbox`), so the deletes CRI sends for a
//! pod's containers and its sandbox, or a Stats or State arriving during one, race this way.
//!
//! The shim therefore runs a pod's `runsc delete` alone: [`StateFiles`] is a read-write lock
//! that every other bounded runsc command of the pod holds shared and `delete` holds
//! exclusively. `runsc wait` is exempt: it loads its container once, when it starts, and then
//! blocks until the exit; holding the lock across it would stop every delete. What a process
//! outside the shim recreates (an operator's `runsc list` during a delete) is swept after the
//! delete by [`StateFiles::remove_orphan_lock`]. Once runsc deleted a container, no command of
//! it runs at all (`Runsc` keeps that mark): a command queued behind the delete would write
//! runsc's log into the bundle, which containerd removes as soon as the Delete is answered, and
//! the 2026 releases create the log's directory, bringing the bundle back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How a runsc command may run beside the pod's other runsc commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Loads or saves containers' state: with any other such command, never with a delete.
    Shared,
    /// Removes a container's state: alone.
    Exclusive,
    /// Blocks for as long as the container lives (`wait`): takes no part.
    Unordered,
}

impl Access {
    /// The access of a runsc sub-command.
    pub fn of(sub_command: &str) -> Access {
        match sub_command {
            "delete" => Access::Exclusive,
            "wait" => Access::Unordered,
            _ => Access::Shared,
        }
    }
}

/// The pod's order over runsc's state files; clones share it.
#[derive(Debug, Clone, Default)]
pub struct StateFiles {
    order: Arc<RwLock<()>>,
}

/// What a running runsc command holds of [`StateFiles`].
pub enum Held<'a> {
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
    Nothing,
}

impl StateFiles {
    /// Waits until a command of `access` may run.
    pub async fn enter(&self, access: Access) -> Held<'_> {
        match access {
            Access::Shared => Held::Shared(self.order.read().await),
            Access::Exclusive => Held::Exclusive(self.order.write().await),
            Access::Unordered => Held::Nothing,
        }
    }

    /// After `runsc delete` of `container` (of `sandbox`) in `root`: removes the container's lock
    /// file when its state file is gone, and says whether it did. Both ids must be ids runsc
    /// accepts and name no directory ([`is_plain_id`]), so the path is one built here, inside
    /// `root`. A lock file whose state file
    /// is gone locks nothing: every runsc command first finds a container by its state file.
    pub async fn remove_orphan_lock(
        &self,
        root: &Path,
        container: &str,
        sandbox: &str,
    ) -> std::io::Result<bool> {
        if !is_plain_id(container) || !is_plain_id(sandbox) {
            return Ok(false);
        }
        let _alone = self.order.write().await;
        let (state, lock) = paths(root, container, sandbox);
        match std::fs::symlink_metadata(&state) {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::symlink_metadata(&lock) {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        match std::fs::remove_file(&lock) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// An id runsc accepts (`validateID`: `^[\w+.-]+$`, ASCII word characters), other than `.` and
/// `..`: a file name, never a path.
fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'))
}

/// The container ids of runsc's state files in `root` (see `Runsc::list_ids`), sorted.
pub fn list_state_files(root: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some((id, sandbox)) = name
            .strip_suffix(".state")
            .and_then(|n| n.split_once("_sandbox:"))
        {
            if !id.is_empty() && !sandbox.is_empty() {
                ids.push(id.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// runsc's state and lock file of a container (runsc's `buildPath`).
fn paths(root: &Path, container: &str, sandbox: &str) -> (PathBuf, PathBuf) {
    let stem = format!("{container}_sandbox:{sandbox}");
    (
        root.join(format!("{stem}.state")),
        root.join(format!("{stem}.lock")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delete_runs_alone_and_wait_takes_no_part() {
        assert_eq!(Access::of("delete"), Access::Exclusive);
        assert_eq!(Access::of("wait"), Access::Unordered);
        for shared in [
            "create", "start", "exec", "state", "kill", "events", "ps", "update",
        ] {
            assert_eq!(Access::of(shared), Access::Shared, "{shared}");
        }
    }

    #[tokio::test]
    async fn a_delete_waits_for_the_commands_before_it_and_holds_off_those_after() {
        let files = StateFiles::default();
        let stats = files.enter(Access::Shared).await;
        let other = files.clone();
        let delete = tokio::spawn(async move {
            let _held = other.enter(Access::Exclusive).await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!delete.is_finished(), "delete ran beside a command");
        // A wait goes on regardless.
        let _wait = files.enter(Access::Unordered).await;
        drop(stats);
        delete.await.unwrap();
        let _after = files.enter(Access::Shared).await;
    }

    #[tokio::test]
    async fn only_a_lock_file_without_its_state_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = StateFiles::default();
        let (state, lock) = paths(root, "web", "pod");
        std::fs::write(&lock, b"").unwrap();
        std::fs::write(&state, b"{}").unwrap();
        assert!(!files.remove_orphan_lock(root, "web", "pod").await.unwrap());
        assert!(lock.exists());
        std::fs::remove_file(&state).unwrap();
        assert!(files.remove_orphan_lock(root, "web", "pod").await.unwrap());
        assert!(!lock.exists());
        assert!(!files.remove_orphan_lock(root, "web", "pod").await.unwrap());
    }

    #[tokio::test]
    async fn ids_the_shim_would_refuse_name_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("x.lock");
        std::fs::write(&outside, b"").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let files = StateFiles::default();
        for (c, s) in [
            ("../x", "pod"),
            ("web", "../../x"),
            ("", "pod"),
            ("web", ""),
            ("..", "pod"),
            ("web", "a/b"),
        ] {
            assert!(!files.remove_orphan_lock(&root, c, s).await.unwrap());
        }
        assert!(outside.exists());
    }

    #[tokio::test]
    async fn a_directory_or_link_in_the_lock_files_place_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = StateFiles::default();
        let (_, lock) = paths(root, "web", "pod");
        std::fs::create_dir(&lock).unwrap();
        assert!(!files.remove_orphan_lock(root, "web", "pod").await.unwrap());
        assert!(lock.is_dir());
        let (_, link) = paths(root, "db", "pod");
        std::os::unix::fs::symlink(root.join("elsewhere"), &link).unwrap();
        assert!(!files.remove_orphan_lock(root, "db", "pod").await.unwrap());
        assert!(link.symlink_metadata().is_ok());
    }
}
