//! The behaviours of runsc the shim depends on, the release that brought each, and whether a
//! given runsc has it. The answer comes from the release runsc names, or for an undated build from
//! what it answered (see [`RunscVersion::answering_features`]), never from a guess.

use serde::Serialize;

use super::version::RunscVersion;

/// gVisor commit `42b69d015` (first in release-20231106.0): on cgroup v2, when the sandbox's own cgroup says
/// `max`, runsc reads the parent's `memory.max` (one level only). Before it, runsc read its own
/// cgroup only (google/gvisor#9580).
pub const PARENT_MEMORY_LIMIT_SINCE: u32 = 20231106;
/// gVisor commit `2e1cd0eb6` (first in release-20260202.0): `runsc update`, with
/// `--resources` taking the OCI resources as JSON, runc's way.
pub const UPDATE_SINCE: u32 = 20260202;
/// gVisor commit `d68b68cd0` (first in release-20260309.0): runsc itself expands `%ID%` (the
/// sandbox's id) and `%CID%` (the container's) in its log and profile flags and creates their
/// directories; the shim passes such flags through untouched.
pub const EXPANDS_FLAG_IDS_SINCE: u32 = 20260309;
/// gVisor commit `c109a0b82` (first in release-20260511.0): `runsc features`. A runsc whose
/// `--version` names no release (a plain `go build` of the module prints `VERSION_MISSING`) but
/// answers `runsc features` is that release or later.
pub const FEATURES_SINCE: u32 = 20260511;
/// gVisor commit `e619c454a` (first in release-20260615.0): runsc turns `--systemd-cgroup` on by
/// itself for a systemd-style cgroupsPath.
pub const AUTO_SYSTEMD_CGROUP_SINCE: u32 = 20260615;

/// Flags of runsc, each with the first release whose runsc has it (read from gVisor's release
/// tags), newest first. An undated runsc that lists one of them among its `runsc features`
/// annotations (`dev.gvisor.flag.<name>`) is that release or later. A flag removed in some later
/// release only makes the answer older, never newer.
const FLAG_MARKERS: &[(&str, u32)] = &[
    ("shared-root", 20260810),
    ("rdmaproxy", 20260803),
    ("mount-cgroup-v2", 20260706),
    ("systrap-disable-fast-path", 20260622),
    ("allow-live-tcp-migration", 20260615),
    ("override-procs", 20260601),
];

/// The oldest release a runsc can be, from its `runsc features` document: the release of the
/// newest marker flag it lists, or the release that brought `runsc features` itself.
pub fn floor_from_features(doc: &serde_json::Value) -> u32 {
    let annotations = doc.get("annotations").and_then(|a| a.as_object());
    FLAG_MARKERS
        .iter()
        .find(|(flag, _)| {
            annotations.is_some_and(|a| a.contains_key(&format!("dev.gvisor.flag.{flag}")))
        })
        .map_or(FEATURES_SINCE, |(_, date)| *date)
}

impl RunscVersion {
    /// Whether runsc expands `%ID%`/`%CID%` in its flags itself (release-20260309.0 and later).
    /// An unknown version is assumed not to: the shim expands `%ID%` as gVisor's shim did.
    pub fn expands_flag_ids(&self) -> bool {
        self.at_least(EXPANDS_FLAG_IDS_SINCE)
    }

    /// Whether runsc, finding `max` in its own cgroup v2 `memory.max`, reads the parent's
    /// (release-20231106.0 and later). An unknown version is assumed not to.
    pub fn reads_parent_memory_limit(&self) -> bool {
        self.at_least(PARENT_MEMORY_LIMIT_SINCE)
    }

    /// Whether runsc sizes the guest from its own (leaf) cgroup only, so the leaf must carry the
    /// limit for `--total-memory` to follow the pod.
    pub fn needs_leaf_limit(&self) -> bool {
        !self.reads_parent_memory_limit()
    }

    /// Whether runsc has `runsc update --resources` (release-20260202.0 and later), which
    /// changes the resources the sandbox's guest applies. An unknown version is assumed not to.
    pub fn has_update(&self) -> bool {
        self.at_least(UPDATE_SINCE)
    }

    /// Compares against a release date (YYYYMMDD); an unknown version is older than any.
    pub fn at_least(&self, date: u32) -> bool {
        self.gate_date().is_some_and(|d| d >= date)
    }
}

/// One behaviour of runsc the shim depends on, the release that brought it, and whether this runsc
/// has it: what `runsc-guard version` shows, so an operator (and the VM suite) can check each
/// gate against the runsc a node really runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    /// A stable name: `parent-memory-limit`, `update`, `expands-flag-ids`, `features`,
    /// `auto-systemd-cgroup`.
    pub name: &'static str,
    /// The first release with the behaviour (YYYYMMDD).
    pub since: u32,
    /// Whether this runsc has it; an unknown release has none beyond what it answered.
    pub holds: bool,
    /// What the shim does about it with this runsc.
    pub shim: &'static str,
}

impl RunscVersion {
    /// Every gate, in the order of their releases.
    pub fn gates(&self) -> Vec<Gate> {
        let gate = |name, since, yes, no| {
            let holds = self.at_least(since);
            Gate {
                name,
                since,
                holds,
                shim: if holds { yes } else { no },
            }
        };
        vec![
            gate(
                "parent-memory-limit",
                PARENT_MEMORY_LIMIT_SINCE,
                "runsc sizes the guest from the pod's cgroup; the sandbox's leaf is left at max",
                "the guard writes the pod's limit into the sandbox's leaf so runsc sizes the \
                 guest from it",
            ),
            gate(
                "update",
                UPDATE_SINCE,
                "Update also runs `runsc update --resources` for the guest",
                "Update changes the host cgroup only",
            ),
            gate(
                "expands-flag-ids",
                EXPANDS_FLAG_IDS_SINCE,
                "%ID% and %CID% in runsc's flags are left to runsc",
                "the shim replaces %ID% with the container id",
            ),
            gate(
                "features",
                FEATURES_SINCE,
                "`runsc features` answers (-info shows it)",
                "no `runsc features`",
            ),
            gate(
                "auto-systemd-cgroup",
                AUTO_SYSTEMD_CGROUP_SINCE,
                "runsc turns systemd-cgroup on by itself; the guard sets it all the same",
                "the guard sets --systemd-cgroup=true for a systemd cgroupsPath",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_marker_flag_in_runsc_features_sets_the_floor() {
        let doc = |flags: &[&str]| {
            let annotations: serde_json::Map<String, serde_json::Value> = flags
                .iter()
                .map(|f| (format!("dev.gvisor.flag.{f}"), "false".into()))
                .collect();
            serde_json::json!({ "ociVersionMax": "1.2.1", "annotations": annotations })
        };
        assert_eq!(floor_from_features(&doc(&[])), FEATURES_SINCE);
        assert_eq!(floor_from_features(&serde_json::json!({})), FEATURES_SINCE);
        assert_eq!(
            floor_from_features(&doc(&["debug", "override-procs"])),
            20260601
        );
        assert_eq!(
            floor_from_features(&doc(&["override-procs", "allow-live-tcp-migration"])),
            AUTO_SYSTEMD_CGROUP_SINCE
        );
        assert_eq!(
            floor_from_features(&doc(&["shared-root", "override-procs"])),
            20260810
        );
        // Newest first, and never older than runsc features itself.
        let mut dates: Vec<u32> = FLAG_MARKERS.iter().map(|(_, d)| *d).collect();
        dates.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(
            dates,
            FLAG_MARKERS.iter().map(|(_, d)| *d).collect::<Vec<_>>()
        );
        assert!(dates.iter().all(|d| *d >= FEATURES_SINCE));
        let v = RunscVersion::unknown("VERSION_MISSING").answering_features_of(20260810);
        assert!(v.at_least(AUTO_SYSTEMD_CGROUP_SINCE), "{v}");
        assert_eq!(
            v.to_string(),
            "VERSION_MISSING (answers runsc features: release-20260810.0 or later)"
        );
    }

    #[test]
    fn runsc_update_from_release_20260202() {
        for (v, has) in [
            ("0.0~20221219.0", false),
            ("release-20260126.0", false),
            ("release-20260202.0", true),
            ("20260301.0", true),
        ] {
            assert_eq!(RunscVersion::parse(v).unwrap().has_update(), has, "{v}");
        }
        assert!(!RunscVersion::unknown("abc123").has_update());
    }

    #[test]
    fn gates_by_generation() {
        let holds = |v: &RunscVersion| -> Vec<(&str, bool)> {
            v.gates().iter().map(|g| (g.name, g.holds)).collect()
        };
        let names = [
            "parent-memory-limit",
            "update",
            "expands-flag-ids",
            "features",
            "auto-systemd-cgroup",
        ];
        let cases: [(RunscVersion, [bool; 5]); 5] = [
            (RunscVersion::parse("0.0~20221219.0").unwrap(), [false; 5]),
            (
                RunscVersion::parse("0.0~20240729.0").unwrap(),
                [true, false, false, false, false],
            ),
            (
                RunscVersion::unknown("VERSION_MISSING").answering_features(),
                [true, true, true, true, false],
            ),
            (
                RunscVersion::parse("release-20260615.0").unwrap(),
                [true; 5],
            ),
            (RunscVersion::unknown("VERSION_MISSING"), [false; 5]),
        ];
        for (v, want) in cases {
            let want: Vec<(&str, bool)> = names.iter().copied().zip(want).collect();
            assert_eq!(holds(&v), want, "{v}");
        }
    }

    #[test]
    fn flag_ids_expanded_by_runsc_from_release_20260309() {
        for (v, own) in [
            ("0.0~20240729.0", false),
            ("release-20260302.0", false),
            ("release-20260309.0", true),
        ] {
            assert_eq!(
                RunscVersion::parse(v).unwrap().expands_flag_ids(),
                own,
                "{v}"
            );
        }
        assert!(!RunscVersion::unknown("VERSION_MISSING").expands_flag_ids());
    }

    #[test]
    fn memory_behaviour_by_release() {
        let old = RunscVersion::parse("0.0~20221219.0").unwrap();
        let fixed = RunscVersion::parse("release-20231106.0").unwrap();
        let new = RunscVersion::parse("release-20240729.0").unwrap();
        let unknown = RunscVersion::unknown("abc123");
        assert!(old.needs_leaf_limit() && !old.reads_parent_memory_limit());
        assert!(fixed.reads_parent_memory_limit());
        assert!(new.reads_parent_memory_limit() && !new.needs_leaf_limit());
        assert!(unknown.needs_leaf_limit(), "unknown is treated as old");
    }
}
