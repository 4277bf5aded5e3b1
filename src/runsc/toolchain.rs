//! Which Go toolchain built a runsc binary. gVisor reaches into the Go runtime's internals (the
//! goroutine id, the scheduler hooks its sentry relies on), so a runsc release is made for the Go
//! releases current at its date; a distribution that rebuilds an old release with a much newer
//! Go ships a sentry its release never ran. Debian's runsc 0.0~20240729.0-7+b1 (Go 1.26) is one:
//! its sentry panicked in a few sandbox boots of every run of this project's VM suite ("running
//! on goroutine N (task goroutine for kernel.Task ... is 0)"), where the same release built with
//! Go 1.24 (0.0~20240729.0-4+b7) never did.
//!
//! Every Go binary since Go 1.18 carries its build information in a `.go.buildinfo` section: a
//! 14-byte magic, the pointer size, a flags byte and, when flag bit 2 is set, the toolchain's
//! version inline at offset 32 as a varint-length-prefixed string.

use std::io::Read;
use std::path::Path;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const FLAG_INLINE_STRINGS: u8 = 0x2;
const VERSION_OFFSET: usize = 32;
/// runsc is 40-60 MB; anything much larger is not a runsc worth reading.
const MAX_BINARY_BYTES: u64 = 256 << 20;
/// How much of a binary is read at a time.
const CHUNK_BYTES: usize = 1 << 20;
/// Kept from one chunk to the next: the magic, the rest of the header and the longest version
/// accepted with its length.
const CARRY_BYTES: usize = VERSION_OFFSET + 1 + MAX_VERSION_BYTES;
const MAX_VERSION_BYTES: usize = 64;

/// A Go toolchain release, `go1.26.2` -> 1.26.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoRelease {
    pub major: u32,
    pub minor: u32,
}

impl GoRelease {
    /// `go1.26.2`, `go1.24rc1`, `go1.22.0 X:boringcrypto` -> the major and minor release.
    pub fn parse(version: &str) -> Option<GoRelease> {
        let rest = version.trim().strip_prefix("go")?;
        let mut parts = rest.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(GoRelease { major, minor })
    }
}

/// The Go version string (`go1.26.2`) in a Go binary's bytes, or None when there is no build
/// information of the Go 1.18+ form.
pub fn go_version(binary: &[u8]) -> Option<String> {
    let at = binary.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let header = binary.get(at..at + VERSION_OFFSET)?;
    if header[MAGIC.len() + 1] & FLAG_INLINE_STRINGS == 0 {
        return None;
    }
    let mut data = &binary[at + VERSION_OFFSET..];
    let len = read_uvarint(&mut data)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_VERSION_BYTES)?;
    let version = std::str::from_utf8(data.get(..len)?).ok()?;
    version.starts_with("go").then(|| version.to_string())
}

/// The Go version of the binary at `path`; None when it cannot be read (or is too large) or
/// carries no build information. Read a chunk at a time: runsc is 40-60 MB, and the doctor's
/// DaemonSet container runs under a 64 MiB memory limit.
pub fn go_version_of(path: &Path) -> Option<String> {
    // A symlink is followed (/usr/bin/runsc may be one); a FIFO in its place is refused at once.
    let file = crate::fsread::open_regular_file(path, crate::fsread::Symlinks::Follow).ok()?;
    let mut reader = file.take(MAX_BINARY_BYTES);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + CARRY_BYTES);
    loop {
        let start = buf.len();
        buf.resize(start + CHUNK_BYTES, 0);
        let n = reader.read(&mut buf[start..]).ok()?;
        buf.truncate(start + n);
        if let Some(version) = go_version(&buf) {
            return Some(version);
        }
        if n == 0 {
            return None;
        }
        // A magic near the end may have its header and version in the next chunk.
        buf.drain(..buf.len().saturating_sub(CARRY_BYTES));
    }
}

fn read_uvarint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(value);
        }
    }
    None
}

/// The bytes of a Go 1.18+ binary's build information around `version`, for tests.
#[cfg(test)]
pub(crate) fn test_buildinfo(version: &str) -> Vec<u8> {
    let mut b = b"ELF and other sections first".to_vec();
    b.extend_from_slice(MAGIC);
    b.push(8);
    b.push(FLAG_INLINE_STRINGS);
    b.resize(b.len() + VERSION_OFFSET - MAGIC.len() - 2, 0);
    b.push(version.len() as u8);
    b.extend_from_slice(version.as_bytes());
    b.push(3);
    b.extend_from_slice(b"mod");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buildinfo(version: &str) -> Vec<u8> {
        test_buildinfo(version)
    }

    #[test]
    fn reads_the_inline_version() {
        assert_eq!(
            go_version(&buildinfo("go1.26.2")).as_deref(),
            Some("go1.26.2")
        );
        assert_eq!(
            go_version(&buildinfo("go1.24.4")).as_deref(),
            Some("go1.24.4")
        );
    }

    #[test]
    fn no_or_old_build_information_is_none() {
        assert_eq!(go_version(b"#!/bin/sh\necho runsc\n"), None);
        let mut old = buildinfo("go1.17");
        let flags = old.iter().position(|b| *b == 0xff).unwrap() + MAGIC.len() + 1;
        old[flags] = 0;
        assert_eq!(go_version(&old), None);
        let mut cut = buildinfo("go1.26.2");
        cut.truncate(cut.len() - 8);
        assert_eq!(go_version(&cut), None);
    }

    #[test]
    fn parses_releases() {
        assert_eq!(
            GoRelease::parse("go1.26.2"),
            Some(GoRelease {
                major: 1,
                minor: 26
            })
        );
        assert_eq!(GoRelease::parse("go1.24rc1").map(|g| g.minor), Some(24));
        assert_eq!(
            GoRelease::parse("go1.22.0 X:boringcrypto").map(|g| g.minor),
            Some(22)
        );
        assert_eq!(GoRelease::parse("devel +abc"), None);
        assert!(GoRelease::parse("go1.26.0") > GoRelease::parse("go1.24.4"));
    }

    #[test]
    fn reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runsc");
        std::fs::write(&path, buildinfo("go1.26.2")).unwrap();
        assert_eq!(go_version_of(&path).as_deref(), Some("go1.26.2"));
        assert_eq!(go_version_of(dir.path()), None);
        // Build information across the boundary of two chunks, and after several.
        for pad in [CHUNK_BYTES - 20, 3 * CHUNK_BYTES + 7] {
            let mut bytes = vec![0u8; pad];
            bytes.extend(buildinfo("go1.24.4"));
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                go_version_of(&path).as_deref(),
                Some("go1.24.4"),
                "pad {pad}"
            );
        }
        std::fs::write(&path, vec![0u8; 2 * CHUNK_BYTES]).unwrap();
        assert_eq!(go_version_of(&path), None);
        assert_eq!(go_version_of(&dir.path().join("missing")), None);
    }
}
