//! Reading a file whose path someone else controls (the bundle's config.json, runsc.toml,
//! containerd's config, the pid files runsc writes, the guard record, the state file, `/proc`
//! files): opened with `O_NONBLOCK`, so that a FIFO in its place answers at once instead of
//! waiting for a writer, then checked on the open descriptor to be a regular file, and read to at
//! most a cap chosen per kind of file (`/dev/zero` never ends; a config.json of gigabytes is no
//! spec). `O_NONBLOCK` changes nothing for a regular file.
//!
//! The errors say what is wrong without the path: each caller names the file (`Error::Io`
//! prints the path before the reason), so the path is not said twice.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Whether the last component of the path may be a symlink. Bundle paths and files under
/// `/etc` may be symlinks legitimately; a cgroup tree has none, and a fixture tree's would lead
/// anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    Follow,
    Refuse,
}

/// An OCI bundle's config.json: a spec with many mounts, a long environment and the pod's
/// annotations is some hundred KiB.
pub const SPEC_MAX: u64 = 8 << 20;
/// A TOML configuration file: runsc.toml, containerd's config.toml and its imports.
pub const CONFIG_MAX: u64 = 1 << 20;
/// A JSON record the shim wrote itself (the guard record, the state file).
pub const RECORD_MAX: u64 = 1 << 20;
/// A pid file: one decimal number.
pub const PID_FILE_MAX: u64 = 64;
/// A one-line file: the shim's `address`, `/proc/<pid>/comm`, `/proc/<pid>/stat`.
pub const LINE_MAX: u64 = 4096;
/// `/proc/<pid>/cgroup`: one line per hierarchy, a dozen on a v1 host.
pub const PROC_CGROUP_MAX: u64 = 64 << 10;
/// `/proc/meminfo`: some fifty lines.
pub const MEMINFO_MAX: u64 = 64 << 10;
/// `/proc/<pid>/cmdline` or `environ`: bounded by the kernel's argument limit, a few MiB.
pub const PROC_ARGS_MAX: u64 = 8 << 20;

/// Opens `path` for reading without blocking on a FIFO, and refuses anything but a regular file.
pub fn open_regular_file(path: &Path, symlinks: Symlinks) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if symlinks == Symlinks::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if symlinks == Symlinks::Refuse => io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symlink, not a regular file (symlinks are not followed here)",
            ),
            // Opening a socket fails so; say what it is rather than "no such device".
            Some(libc::ENXIO) if is_socket(path) => not_regular("a socket"),
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind_of(&kind)));
    }
    Ok(file)
}

/// The whole of the regular file at `path`, at most `max_bytes` of it: a longer file is an error.
pub fn read_regular_file(path: &Path, max_bytes: u64, symlinks: Symlinks) -> io::Result<Vec<u8>> {
    let file = open_regular_file(path, symlinks)?;
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max_bytes} bytes, more than such a file holds"),
        )
    };
    // /proc files say 0 here: the bounded read below is what holds.
    if file.metadata()?.len() > max_bytes {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big());
    }
    Ok(bytes)
}

/// [`read_regular_file`] as UTF-8 text.
pub fn read_regular_to_string(
    path: &Path,
    max_bytes: u64,
    symlinks: Symlinks,
) -> io::Result<String> {
    String::from_utf8(read_regular_file(path, max_bytes, symlinks)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file"),
    )
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// What a file that is not a regular file is, in words.
pub fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        "a file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symlink"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// Runs `f` on a thread and fails the test if it does not answer within two seconds: a
    /// regression that blocks on a FIFO fails instead of hanging the suite.
    pub(crate) fn within_two_seconds<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(2))
            .expect("the read blocked instead of refusing at once")
    }

    /// A FIFO at `dir/name`, where a regular file is expected.
    pub(crate) fn fifo(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{fifo, within_two_seconds};
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path(), "f");
        for symlinks in [Symlinks::Follow, Symlinks::Refuse] {
            let p = path.clone();
            let err = within_two_seconds(move || read_regular_file(&p, 64, symlinks)).unwrap_err();
            assert_eq!(err.to_string(), "a FIFO, not a regular file");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn a_device_a_directory_and_a_socket_are_refused() {
        let err = read_regular_file(Path::new("/dev/zero"), 64, Symlinks::Follow).unwrap_err();
        assert_eq!(err.to_string(), "a device, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let err = read_regular_file(dir.path(), 64, Symlinks::Follow).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let sock = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let err =
            within_two_seconds(move || read_regular_file(&sock, 64, Symlinks::Follow)).unwrap_err();
        assert_eq!(err.to_string(), "a socket, not a regular file");
    }

    #[test]
    fn a_symlink_is_followed_or_refused_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "42").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let link = dir.path().join("link");
        assert_eq!(
            read_regular_file(&link, 64, Symlinks::Follow).unwrap(),
            b"42"
        );
        let err = read_regular_file(&link, 64, Symlinks::Refuse).unwrap_err();
        assert!(err.to_string().contains("a symlink"), "{err}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(
            read_regular_file(&path, 5, Symlinks::Follow).unwrap(),
            b"12345"
        );
        let err = read_regular_file(&path, 4, Symlinks::Follow).unwrap_err();
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_regular_to_string(&path, 5, Symlinks::Follow).unwrap_err();
        assert_eq!(err.to_string(), "not UTF-8 text");
    }
}
