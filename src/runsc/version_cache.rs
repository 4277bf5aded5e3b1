//! runsc's version, remembered across the node's shim processes.
//!
//! There is one shim per pod, and each would otherwise run `runsc --version` once: a whole Go
//! start-up (120-190 ms under emulation) on every pod's start. The answer depends on the binary
//! file alone, so the shims keep it in one small file in the runsc state root (runsc.toml's
//! `root`, the directory whose namespace subdirectories runsc keeps its state in), keyed by
//! what identifies that file: its canonical path, device, inode, size, mtime and ctime. An
//! upgraded, replaced or touched binary has another key and is asked again.
//!
//! The file is only believed when it is a regular file owned by the shim's effective user and
//! writable by no one else, and at most [`MAX_BYTES`] long; anything else is ignored and the
//! binary asked again, and the answer written over it (temp file, then rename, so a reader
//! never sees half a file). A cache that lies still cannot loosen the guard: the version only
//! steers the plan (which flags and limits runsc gets), and the check after `runsc create`
//! reads what runsc really did from the sandbox process itself (its cgroup and its
//! `--total-memory`) and holds it to the pod's bound, whatever version the plan assumed; in
//! enforce mode a sandbox planned from a wrong version fails that check and its Create.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::version::RunscVersion;

/// The cache's name in the state root. containerd namespaces begin with a letter or a digit,
/// so no namespace's runsc state directory can be called this.
pub const CACHE_FILE: &str = ".runsc-guard-versions.json";
/// A cache longer than this is not read (it holds a few short lines).
pub const MAX_BYTES: u64 = 64 * 1024;
/// How many binaries it remembers; the oldest entries go first.
const MAX_ENTRIES: usize = 16;

/// What identifies a binary file: the same key means the same bytes were (almost certainly)
/// not replaced since they answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinaryId {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl BinaryId {
    /// The identity of the file `binary` names (a link is followed to the file).
    pub fn of(binary: &Path) -> io::Result<BinaryId> {
        let path = fs::canonicalize(binary)?;
        let m = fs::metadata(&path)?;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Ok(BinaryId {
            path,
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    binary: BinaryId,
    version: RunscVersion,
}

/// What reading the cache found, for the caller to log.
#[derive(Debug)]
pub enum Lookup {
    Hit(RunscVersion),
    /// A trusted, well-formed cache without this binary, or no cache at all.
    Miss,
    /// A cache that is not believed (not ours, writable by others, not a regular file, too
    /// long, malformed): why.
    Ignored(String),
}

/// The version cached in `state_root` for `binary`.
pub fn lookup(state_root: &Path, binary: &BinaryId) -> Lookup {
    match read(&state_root.join(CACHE_FILE)) {
        Ok(Some(cache)) => cache
            .entries
            .into_iter()
            .find(|e| e.binary == *binary)
            .map_or(Lookup::Miss, |e| Lookup::Hit(e.version)),
        Ok(None) => Lookup::Miss,
        Err(why) => Lookup::Ignored(why),
    }
}

/// Remembers `version` for `binary` in `state_root` (created if missing), keeping the other
/// binaries' entries of a trusted cache and dropping older ones of the same path.
pub fn store(state_root: &Path, binary: &BinaryId, version: &RunscVersion) -> io::Result<()> {
    let path = state_root.join(CACHE_FILE);
    let mut cache = read(&path).ok().flatten().unwrap_or_default();
    cache.entries.retain(|e| e.binary.path != binary.path);
    cache.entries.push(Entry {
        binary: binary.clone(),
        version: version.clone(),
    });
    let excess = cache.entries.len().saturating_sub(MAX_ENTRIES);
    cache.entries.drain(..excess);
    let text = serde_json::to_vec(&cache).map_err(io::Error::other)?;
    fs::create_dir_all(state_root)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temp = state_root.join(format!("{CACHE_FILE}.{}.{nanos}.tmp", std::process::id()));
    let written = write_new(&temp, &text).and_then(|()| fs::rename(&temp, &path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

fn write_new(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(text)
}

/// The cache at `path`: None when there is none, an error saying why it is not believed.
fn read(path: &Path) -> Result<Option<CacheFile>, String> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    trusted(&file)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("it is longer than {MAX_BYTES} bytes"));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("it is malformed: {e}"))
}

/// Checks the opened file itself (not the path again, which may have changed meanwhile).
fn trusted(file: &File) -> Result<(), String> {
    let m = file
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?;
    if !m.file_type().is_file() {
        return Err("it is not a regular file".to_string());
    }
    let euid = nix::unistd::geteuid().as_raw();
    if m.uid() != euid {
        return Err(format!("it is owned by uid {}, not {euid}", m.uid()));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "its mode {:o} lets others write it",
            m.mode() & 0o7777
        ));
    }
    if m.size() > MAX_BYTES {
        return Err(format!("it is longer than {MAX_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn binary(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn v(text: &str) -> RunscVersion {
        RunscVersion::parse(text).unwrap()
    }

    fn hit(lookup: Lookup) -> RunscVersion {
        match lookup {
            Lookup::Hit(v) => v,
            other => panic!("expected a hit, got {other:?}"),
        }
    }

    fn ignored(lookup: Lookup) -> String {
        match lookup {
            Lookup::Ignored(why) => why,
            other => panic!("expected the cache to be ignored, got {other:?}"),
        }
    }

    #[test]
    fn a_stored_version_is_found_again_for_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let runsc = binary(dir.path(), "runsc");
        let other = binary(dir.path(), "runsc-new");
        let id = BinaryId::of(&runsc).unwrap();
        assert!(matches!(lookup(&root, &id), Lookup::Miss), "no file yet");
        store(&root, &id, &v("0.0~20221219.0")).unwrap();
        store(
            &root,
            &BinaryId::of(&other).unwrap(),
            &v("release-20240729.0"),
        )
        .unwrap();
        assert_eq!(hit(lookup(&root, &id)).to_string(), "0.0~20221219.0");
        assert_eq!(
            hit(lookup(&root, &BinaryId::of(&other).unwrap())).release_date(),
            Some(20240729),
            "each binary keeps its own entry"
        );
        // Through a link: the same file, the same key.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&runsc, &link).unwrap();
        assert_eq!(BinaryId::of(&link).unwrap(), id);
        // Written atomically: no temp file is left.
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [CACHE_FILE]);
        let mode = fs::metadata(root.join(CACHE_FILE)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_changed_or_replaced_binary_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let runsc = binary(dir.path(), "runsc");
        let old = BinaryId::of(&runsc).unwrap();
        store(&root, &old, &v("0.0~20221219.0")).unwrap();
        // Touched: another mtime (and ctime).
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&runsc)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let touched = BinaryId::of(&runsc).unwrap();
        assert_ne!(touched.mtime_ns, old.mtime_ns);
        assert!(matches!(lookup(&root, &touched), Lookup::Miss));
        // Replaced by another file of the same size and times: another inode.
        let replacement = binary(dir.path(), "replacement");
        fs::rename(&replacement, &runsc).unwrap();
        let replaced = BinaryId::of(&runsc).unwrap();
        assert_ne!(replaced.ino, old.ino);
        assert!(matches!(lookup(&root, &replaced), Lookup::Miss));
        // The new answer replaces the old one for that path.
        store(&root, &replaced, &v("release-20240729.0")).unwrap();
        assert!(matches!(lookup(&root, &old), Lookup::Miss));
        assert_eq!(hit(lookup(&root, &replaced)).release_date(), Some(20240729));
    }

    #[test]
    fn a_malformed_or_oversized_cache_is_ignored_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let id = BinaryId::of(&binary(dir.path(), "runsc")).unwrap();
        let cache = root.join(CACHE_FILE);
        for bad in [
            &b"{\"entries\": [{\"binary\": 1"[..],
            b"",
            b"[]",
            b"\xff\xfe",
        ] {
            fs::write(&cache, bad).unwrap();
            let why = ignored(lookup(&root, &id));
            assert!(why.contains("malformed"), "{why}");
        }
        fs::write(&cache, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        let why = ignored(lookup(&root, &id));
        assert!(why.contains("longer than"), "{why}");
        store(&root, &id, &v("0.0~20221219.0")).unwrap();
        assert_eq!(hit(lookup(&root, &id)).release_date(), Some(20221219));
    }

    #[test]
    fn a_cache_others_could_have_written_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let id = BinaryId::of(&binary(dir.path(), "runsc")).unwrap();
        store(&root, &id, &v("release-20240729.0")).unwrap();
        let cache = root.join(CACHE_FILE);
        for mode in [0o666, 0o646, 0o664] {
            fs::set_permissions(&cache, fs::Permissions::from_mode(mode)).unwrap();
            let why = ignored(lookup(&root, &id));
            assert!(why.contains("lets others write"), "{mode:o}: {why}");
        }
        fs::set_permissions(&cache, fs::Permissions::from_mode(0o644)).unwrap();
        // Another owner (only root can give a file away).
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&cache, Some(65534), None).unwrap();
            let why = ignored(lookup(&root, &id));
            assert!(why.contains("owned by uid 65534"), "{why}");
            std::os::unix::fs::chown(&cache, Some(0), None).unwrap();
        }
        assert!(matches!(lookup(&root, &id), Lookup::Hit(_)));
        // A link is not followed, even to a good cache; a directory is no cache.
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::rename(&cache, elsewhere.join(CACHE_FILE)).unwrap();
        std::os::unix::fs::symlink(elsewhere.join(CACHE_FILE), &cache).unwrap();
        let why = ignored(lookup(&root, &id));
        assert!(why.contains("cannot open"), "{why}");
        // Storing replaces the link itself, not what it points to.
        store(&root, &id, &v("0.0~20221219.0")).unwrap();
        assert!(fs::symlink_metadata(&cache).unwrap().is_file());
        assert_eq!(
            hit(lookup(&elsewhere, &id)).release_date(),
            Some(20240729),
            "the link's target is untouched"
        );
        fs::remove_file(&cache).unwrap();
        fs::create_dir(&cache).unwrap();
        let why = ignored(lookup(&root, &id));
        assert!(why.contains("not a regular file"), "{why}");
    }

    #[test]
    fn it_remembers_a_bounded_number_of_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let ids: Vec<BinaryId> = (0..MAX_ENTRIES + 2)
            .map(|i| BinaryId::of(&binary(dir.path(), &format!("runsc{i}"))).unwrap())
            .collect();
        for id in &ids {
            store(&root, id, &v("0.0~20221219.0")).unwrap();
        }
        assert!(
            matches!(lookup(&root, &ids[0]), Lookup::Miss),
            "oldest gone"
        );
        assert!(matches!(lookup(&root, &ids[ids.len() - 1]), Lookup::Hit(_)));
    }
}
