//! Container ids runsc cannot confuse, and the ids the shim accepts at all ([`validate_id`]).
//!
//! runsc resolves the id of every command but `create` by prefix (`findContainerID`, the same
//! in runsc 20221219 and since): it globs `<root>/<id>*` state files; one match is taken, even
//! when it is another container's, and two are an error, even when one is exactly the id. So
//! with `web` and `web-sidecar` in one root, `runsc start web` fails ("id is ambiguous"), and
//! once `web`'s state is gone, `runsc kill web` or `runsc delete --force web` reach
//! `web-sidecar`. An id is safe while no other container in its root has it as a prefix, and
//! the shim keeps it so: Create refuses an id that is a prefix of another container's id in the
//! same runsc root, or has one as its prefix, and the `delete` action only deletes an id whose
//! state file the root holds exactly (the root's state files are what `runsc list` reads:
//! `Runsc::list_ids`). The check and `runsc create` run under a lock on the root directory, so two
//! shims creating `web` and `web-sidecar` at once cannot both pass it.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::runsc::Runsc;

/// An exclusive lock on a runsc root, held while it lives.
pub struct RootLock {
    _lock: Flock<File>,
}

/// Locks the runsc root `root` (creating it), waiting for other shims that hold it.
pub async fn lock_root(root: &Path) -> Result<RootLock> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io("creating the runsc root", &root, e))?;
        let dir = File::open(&root).map_err(|e| Error::io("opening the runsc root", &root, e))?;
        let lock = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::io(
                "locking the runsc root",
                &root,
                std::io::Error::from_raw_os_error(e as i32),
            )
        })?;
        Ok(RootLock { _lock: lock })
    })
    .await
    .map_err(|e| Error::task_failed("locking the runsc root", e))?
}

/// The other container whose id `id` is a prefix of, or that is a prefix of `id`.
pub fn prefix_clash<'a>(id: &str, others: &'a [String]) -> Option<&'a str> {
    others
        .iter()
        .map(String::as_str)
        .find(|other| *other != id && (other.starts_with(id) || id.starts_with(other)))
}

/// Refuses `id` when runsc could confuse it with a container already in the root.
pub async fn refuse_prefix_clash(runsc: &Runsc, id: &str) -> Result<()> {
    let others = runsc.list_ids().await?;
    if let Some(other) = prefix_clash(id, &others) {
        let (short, long) = if other.starts_with(id) {
            (id, other)
        } else {
            (other, id)
        };
        return Err(Error::invalid(
            "id",
            format!(
                "{id:?} clashes with container {other:?} in runsc root {}: {short:?} is a \
                 prefix of {long:?}, and runsc resolves container ids by prefix, so its \
                 commands for {short:?} would fail as ambiguous or reach {long:?}; give the \
                 containers ids where neither is a prefix of the other",
                runsc.flags().root.display()
            ),
        ));
    }
    Ok(())
}

/// Container ids become file names and runsc arguments: keep them to what containerd produces.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    validate_id_field("id", id)
}

/// [`validate_id`] for an id the request carries in `field` (an exec's `exec_id`).
pub(crate) fn validate_id_field(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{id:?} must be 1-256 of [A-Za-z0-9_.-], not starting with '-'"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["abc", "a-b_c.d", "0123456789abcdef"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a/b", "..", ".", "a b", &"x".repeat(300)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefixes_either_way_clash() {
        let others = ids(&["web-sidecar", "db"]);
        assert_eq!(prefix_clash("web", &others), Some("web-sidecar"));
        assert_eq!(prefix_clash("db-replica", &others), Some("db"));
        assert_eq!(prefix_clash("d", &others), Some("db"));
        assert_eq!(prefix_clash("cache", &others), None);
        assert_eq!(
            prefix_clash("db", &ids(&["db"])),
            None,
            "itself is no clash"
        );
        assert_eq!(prefix_clash("webx", &others), None);
    }

    #[tokio::test]
    async fn the_root_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("k8s.io");
        let held = lock_root(&root).await.unwrap();
        assert!(root.is_dir());
        let waiting = tokio::spawn({
            let root = root.clone();
            async move { lock_root(&root).await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second lock waits");
        drop(held);
        waiting.await.unwrap().unwrap();
    }
}
