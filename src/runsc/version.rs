//! Which runsc the shim runs, and what that release does with memory limits.
//!
//! runsc names its releases by date: upstream tags are `release-20240729.0`, Debian packages the
//! same snapshot as `0.0~20221219.0`, and `runsc --version` prints one of them after
//! `runsc version `. The date is all the guard needs: the behaviours it depends on arrived on
//! known dates (reading the parent cgroup's limit, release-20231106.0). A runsc built from
//! source may print something else (a commit, `VERSION_MISSING`); that version is kept as
//! unknown and treated as the oldest release, the conservative choice, because the guard then
//! sets every limit an old runsc needs.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use super::gates::{
    Gate, AUTO_SYSTEMD_CGROUP_SINCE, EXPANDS_FLAG_IDS_SINCE, FEATURES_SINCE, UPDATE_SINCE,
};
use super::{Executor, TokioExecutor};
use crate::error::{Error, Result, RunscFailure};

/// How an undated runsc's text says what it answered: `VERSION_MISSING` becomes
/// `VERSION_MISSING (answers runsc features: release-20260511.0 or later)`, which records keep
/// and read back.
const FLOOR_NOTE: (&str, &str) = (" (answers runsc features: release-", " or later)");

/// A runsc release, ordered by release date. Unknown versions sort before every release.
#[derive(Debug, Clone)]
pub struct RunscVersion {
    release: Option<Release>,
    /// For a runsc whose release is not known: the oldest release it can be, from what it
    /// answered (`runsc features`), never from a guess.
    floor: Option<Release>,
    /// The text it was read from, shown to people as it was written.
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Release {
    /// YYYYMMDD.
    date: u32,
    /// The `.N` after the date: a re-release of the same snapshot.
    patch: u32,
}

impl RunscVersion {
    /// Parses a version as runsc or its packages write it: `0.0~20221219.0`, `release-20240729.0`,
    /// `20240729.0` or `20240729`, optionally after `runsc version ` and with a Debian revision
    /// (`0.0~20221219.0-2+b3`). Anything else is an error that names the accepted forms.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix("runsc version ")
            .unwrap_or(trimmed)
            .trim();
        parse_release(bare)
            .map(|release| RunscVersion {
                release: Some(release),
                floor: None,
                text: bare.to_string(),
            })
            .ok_or_else(|| {
                Error::invalid(
                    "runsc version",
                    format!(
                        "{trimmed:?} is not a runsc release; write it as runsc prints it \
                         (0.0~20221219.0, release-20240729.0) or as a date (20240729)"
                    ),
                )
            })
    }

    /// Reads the output of `runsc --version` (`runsc version release-20240729.0\nspec: 1.1.0`).
    /// Never fails: output it cannot date becomes an unknown version, treated as the oldest.
    pub fn from_version_output(output: &str) -> Self {
        let line = output
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("runsc version"))
            .unwrap_or_else(|| output.lines().next().unwrap_or("").trim());
        let text = line.strip_prefix("runsc version").unwrap_or(line).trim();
        RunscVersion::parse(text).unwrap_or_else(|_| RunscVersion::unknown(text))
    }

    /// A runsc whose release is not known (not found, not runnable, an undated build).
    pub fn unknown(text: &str) -> Self {
        if let Some(v) = Self::with_floor_note(text) {
            return v;
        }
        RunscVersion {
            release: None,
            floor: None,
            text: if text.is_empty() {
                "unknown".to_string()
            } else {
                text.to_string()
            },
        }
    }

    /// An undated runsc that answered `runsc features`: at least release-20260511.0.
    pub fn answering_features(self) -> Self {
        self.answering_features_of(FEATURES_SINCE)
    }

    /// An undated runsc whose `runsc features` shows it is at least the release of `date`
    /// (YYYYMMDD; see [`super::gates::floor_from_features`]). A dated release is kept as it is.
    pub fn answering_features_of(self, date: u32) -> Self {
        if self.release.is_some() || self.floor.is_some() {
            return self;
        }
        let floor = Release {
            date: date.max(FEATURES_SINCE),
            patch: 0,
        };
        RunscVersion {
            text: format!(
                "{}{}{}.0{}",
                self.text, FLOOR_NOTE.0, floor.date, FLOOR_NOTE.1
            ),
            release: None,
            floor: Some(floor),
        }
    }

    /// Reads back the text [`answering_features`](Self::answering_features) wrote.
    fn with_floor_note(text: &str) -> Option<Self> {
        let (_, rest) = text.split_once(FLOOR_NOTE.0)?;
        let date = rest.strip_suffix(FLOOR_NOTE.1)?;
        let floor = parse_release(date)?;
        Some(RunscVersion {
            release: None,
            floor: Some(floor),
            text: text.to_string(),
        })
    }

    /// The release date as YYYYMMDD, if known.
    pub fn release_date(&self) -> Option<u32> {
        self.release.map(|r| r.date)
    }

    /// The date the gates compare against: the release's, or for an undated runsc the oldest
    /// release it can be (see [`answering_features`](Self::answering_features)).
    pub(super) fn gate_date(&self) -> Option<u32> {
        self.release.or(self.floor).map(|r| r.date)
    }

    /// Whether runsc named its release.
    pub fn is_known(&self) -> bool {
        self.release.is_some()
    }

    /// Whether the gates have a release to go by: the one runsc named, or the oldest it can be
    /// by what it answered.
    pub fn knows_its_release(&self) -> bool {
        self.gate_date().is_some()
    }

    fn key(&self) -> (Option<Release>, Option<Release>, &str) {
        // Two spellings of one release are the same release; unknown versions differ by text.
        match self.release {
            Some(r) => (Some(r), None, ""),
            None => (None, self.floor, self.text.as_str()),
        }
    }
}

/// `0.0~20221219.0[-rev]`, `release-20240729.0`, `20240729.0`, `20240729`.
fn parse_release(s: &str) -> Option<Release> {
    let s = s.strip_prefix("release-").unwrap_or(s);
    let s = s.strip_prefix("0.0~").unwrap_or(s);
    // A Debian revision (`-2+b3`) says how it was packaged, not which runsc it is.
    let s = s.split_once('-').map_or(s, |(v, _)| v);
    let (date, patch) = match s.split_once('.') {
        Some((d, p)) => (d, Some(p)),
        None => (s, None),
    };
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date: u32 = date.parse().ok()?;
    let (year, month, day) = (date / 10000, date / 100 % 100, date % 100);
    // gVisor was released in 2018; a year outside this range is not a runsc date.
    if !(2018..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let patch = match patch {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
        None => 0,
    };
    Some(Release { date, patch })
}

impl fmt::Display for RunscVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for RunscVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RunscVersion::parse(s)
    }
}

impl PartialEq for RunscVersion {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for RunscVersion {}

impl Hash for RunscVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for RunscVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RunscVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl Serialize for RunscVersion {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for RunscVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(RunscVersion::parse(&text).unwrap_or_else(|_| RunscVersion::unknown(&text)))
    }
}

/// Finds the runsc binary the way the shim runs it: a name with a `/` is a path, anything else
/// is looked up on PATH. None when nothing executable is found.
pub fn resolve_binary(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path_var = std::env::var_os("PATH")?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `<binary> --version` through `executor` and reads its answer. Fails when the binary
/// cannot be run or exits with an error; output it cannot date is an unknown version, not an
/// error. The one probe: the shim's guard and the CLI both ask through it.
pub async fn detect(executor: &dyn Executor, binary: &Path) -> Result<RunscVersion> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = executor.run_for(cmd, super::executor::limit_for("--version"));
    let output = crate::timing::span("runsc.version", run)
        .await
        .map_err(|e| Error::io("cannot run", binary, e))?;
    if output.status != 0 {
        return Err(Error::runsc(
            "--version",
            RunscFailure::Failed,
            format!(
                "{} exited with status {}: {}",
                binary.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    let version = RunscVersion::from_version_output(&String::from_utf8_lossy(&output.stdout));
    if version.is_known() {
        return Ok(version);
    }
    // An undated build: what it answers says more than its text. `runsc features` prints the
    // OCI features document (with `ociVersionMax`) from release-20260511.0 on, listing runsc's
    // flags among its annotations; older releases fail with an unknown subcommand.
    let features = features(executor, binary).await;
    Ok(version.with_features_answer(features.as_deref()))
}

/// What `<binary> features` printed, when it exited 0.
async fn features(executor: &dyn Executor, binary: &Path) -> Option<Vec<u8>> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("features")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let run = executor.run_for(cmd, super::executor::limit_for("features"));
    let out = crate::timing::span("runsc.features", run).await.ok()?;
    (out.status == 0).then_some(out.stdout)
}

impl RunscVersion {
    /// An undated runsc with what `runsc features` printed (None: it failed): the OCI features
    /// document, with `ociVersionMax`, says it is release-20260511.0 or later, and the flags it
    /// lists may say more ([`super::gates::floor_from_features`]). Anything else changes nothing.
    pub fn with_features_answer(self, output: Option<&[u8]>) -> Self {
        let doc = output
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(o).ok())
            .filter(|doc| doc.get("ociVersionMax").is_some_and(|v| v.is_string()));
        match doc {
            Some(doc) => self.answering_features_of(super::gates::floor_from_features(&doc)),
            None => self,
        }
    }
}

/// [`detect`] outside any tokio runtime (the `runsc-guard` CLI), with plain tokio waiting.
pub fn detect_blocking(binary: &Path) -> Result<RunscVersion> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::os("cannot start a runtime to run runsc", e))?;
    runtime.block_on(detect(&TokioExecutor, binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_runsc_and_its_packages_write() {
        let cases = [
            ("0.0~20221219.0", 20221219, 0),
            ("release-20240729.0", 20240729, 0),
            ("release-20240729.3", 20240729, 3),
            ("20240729", 20240729, 0),
            ("20240729.1", 20240729, 1),
            ("0.0~20221219.0-2+b3", 20221219, 0),
            ("runsc version release-20231106.0", 20231106, 0),
            ("  release-20231106.0\n", 20231106, 0),
        ];
        for (text, date, patch) in cases {
            let v = RunscVersion::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(v.release, Some(Release { date, patch }), "{text:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_release() {
        for text in [
            "",
            "latest",
            "2024072",
            "202407290",
            "20241329",
            "20240700",
            "19991231",
            "release-20240729.x",
            "release-20240729.",
            "v1.2.3",
        ] {
            let err = RunscVersion::parse(text).unwrap_err().to_string();
            assert!(err.contains("runsc version"), "{text:?}: {err}");
            assert!(
                err.contains("20240729"),
                "the error shows a valid form: {err}"
            );
        }
    }

    #[test]
    fn reads_runsc_version_output() {
        let debian =
            RunscVersion::from_version_output("runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n");
        assert_eq!(debian.release_date(), Some(20221219));
        assert_eq!(debian.to_string(), "0.0~20221219.0");
        let upstream = RunscVersion::from_version_output("runsc version release-20240729.0\n");
        assert_eq!(upstream.release_date(), Some(20240729));
        let undated =
            RunscVersion::from_version_output("runsc version VERSION_MISSING\nspec: 1.1.0\n");
        assert!(!undated.is_known());
        assert_eq!(undated.to_string(), "VERSION_MISSING");
        assert!(!RunscVersion::from_version_output("").is_known());
    }

    #[test]
    fn an_undated_runsc_answering_features_is_gated_from_release_20260511() {
        let v = RunscVersion::from_version_output("runsc version VERSION_MISSING\n")
            .answering_features();
        assert!(!v.is_known(), "still not a known release");
        assert_eq!(v.release_date(), None);
        assert!(v.reads_parent_memory_limit() && v.has_update() && v.expands_flag_ids());
        assert!(
            !v.at_least(AUTO_SYSTEMD_CGROUP_SINCE),
            "release-20260615.0's behaviour is not implied by runsc features"
        );
        assert_eq!(
            v.to_string(),
            "VERSION_MISSING (answers runsc features: release-20260511.0 or later)"
        );
        // Records and the shared cache keep the text; it reads back with its floor.
        let back: RunscVersion = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        assert!(back.has_update());
        // A dated release is never lowered or noted.
        let dated = RunscVersion::parse("0.0~20221219.0")
            .unwrap()
            .answering_features();
        assert_eq!(dated.to_string(), "0.0~20221219.0");
        assert!(!dated.has_update());
        // A note that does not name a release is plain text.
        assert!(
            !RunscVersion::unknown("x (answers runsc features: release-soon or later)")
                .has_update()
        );
    }

    #[test]
    fn ordered_by_release_date_with_unknown_first() {
        let mut versions = [
            RunscVersion::parse("release-20240729.0").unwrap(),
            RunscVersion::unknown("dev"),
            RunscVersion::parse("0.0~20221219.0").unwrap(),
            RunscVersion::parse("20240729.1").unwrap(),
        ];
        versions.sort();
        let dates: Vec<_> = versions.iter().map(|v| v.release_date()).collect();
        assert_eq!(
            dates,
            [None, Some(20221219), Some(20240729), Some(20240729)]
        );
        assert_eq!(
            RunscVersion::parse("0.0~20221219.0").unwrap(),
            RunscVersion::parse("release-20221219.0").unwrap(),
            "two spellings of one release are equal"
        );
    }

    #[test]
    fn serializes_as_its_text() {
        let v = RunscVersion::parse("0.0~20221219.0").unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"0.0~20221219.0\"");
        let back: RunscVersion = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }

    /// [`detect_blocking`] of a script just written. Another test thread forking while the
    /// script was open for writing makes exec fail with ETXTBSY for a moment; that is the test's
    /// race, not detect's.
    fn detect_retrying(script: &Path) -> RunscVersion {
        (0..20)
            .find_map(|_| match detect_blocking(script) {
                Err(e) if e.to_string().contains("busy") => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    None
                }
                other => Some(other),
            })
            .unwrap()
            .unwrap()
    }

    #[test]
    fn detect_runs_the_binary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("runsc");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'runsc version 0.0~20221219.0'\necho 'spec: 1.0.2-dev'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let v = detect_retrying(&script);
        assert_eq!(v.release_date(), Some(20221219));
        assert_eq!(resolve_binary(script.to_str().unwrap()), Some(script));

        // An undated build is asked `runsc features` too.
        let undated = dir.path().join("runsc-undated");
        std::fs::write(
            &undated,
            "#!/bin/sh\ncase \"$1\" in\n--version) echo 'runsc version VERSION_MISSING' ;;\n\
             features) echo '{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"1.2.1\"}' ;;\n\
             *) exit 1 ;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&undated, std::fs::Permissions::from_mode(0o755)).unwrap();
        let v = detect_retrying(&undated);
        assert!(v.has_update() && !v.is_known(), "{v}");

        let missing = dir.path().join("nope");
        let err = detect_blocking(&missing).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        assert_eq!(resolve_binary(missing.to_str().unwrap()), None);
    }
}
