//! The closed sets of answers a report carries: how a scenario ended, what CRI said of its
//! container, and the scenario's verdict. Each is an enum in the driver and the same string in
//! report.json and summary.json as before they were typed (tests/e2e/demo-table.py compares
//! `container_final.state` with `CONTAINER_EXITED`; run.sh reads summary.json).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How one scenario's run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// Also what a report says before it is judged.
    #[default]
    Failed,
    /// The scenario's own time limit was hit.
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's state as CRI's ContainerStatus reports it, written under CRI's own names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CriContainerState {
    Created,
    Running,
    Exited,
    Unknown,
    /// A number this CRI version does not name, written `state N`.
    Other(i32),
}

impl CriContainerState {
    pub fn is_exited(self) -> bool {
        self == CriContainerState::Exited
    }
}

impl From<i32> for CriContainerState {
    fn from(state: i32) -> Self {
        use k8s_cri::v1::ContainerState as S;
        match S::try_from(state) {
            Ok(S::ContainerCreated) => CriContainerState::Created,
            Ok(S::ContainerRunning) => CriContainerState::Running,
            Ok(S::ContainerExited) => CriContainerState::Exited,
            Ok(S::ContainerUnknown) => CriContainerState::Unknown,
            Err(_) => CriContainerState::Other(state),
        }
    }
}

impl fmt::Display for CriContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use k8s_cri::v1::ContainerState as S;
        let name = match self {
            CriContainerState::Created => S::ContainerCreated,
            CriContainerState::Running => S::ContainerRunning,
            CriContainerState::Exited => S::ContainerExited,
            CriContainerState::Unknown => S::ContainerUnknown,
            CriContainerState::Other(n) => return write!(f, "state {n}"),
        };
        f.write_str(name.as_str_name())
    }
}

impl FromStr for CriContainerState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(n) = s.strip_prefix("state ") {
            return n.parse().map(CriContainerState::Other).map_err(|_| {
                format!("container state {s:?}: `state` must be followed by a number")
            });
        }
        k8s_cri::v1::ContainerState::from_str_name(s)
            .map(|st| CriContainerState::from(st as i32))
            .ok_or_else(|| format!("container state {s:?}: not a CRI state name"))
    }
}

/// A scenario's reading of its evidence (not every scenario has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The sandbox sat outside the pod slice, or the memory went beyond the pod's limit.
    Escaped,
    /// Inside the pod slice and never beyond the limit.
    Bounded,
    /// The container was OOM-killed (runc).
    OomKilled,
    /// The container ended otherwise: `<state> exit <code>`.
    Ended {
        state: CriContainerState,
        exit_code: i32,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Escaped => f.write_str("escaped"),
            Verdict::Bounded => f.write_str("bounded"),
            Verdict::OomKilled => f.write_str("oom-killed"),
            Verdict::Ended { state, exit_code } => write!(f, "{state} exit {exit_code}"),
        }
    }
}

impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "escaped" => return Ok(Verdict::Escaped),
            "bounded" => return Ok(Verdict::Bounded),
            "oom-killed" => return Ok(Verdict::OomKilled),
            _ => {}
        }
        let (state, code) = s.rsplit_once(" exit ").ok_or_else(|| {
            format!("verdict {s:?}: not escaped, bounded, oom-killed or `<state> exit <code>`")
        })?;
        Ok(Verdict::Ended {
            state: state.parse()?,
            exit_code: code
                .parse()
                .map_err(|_| format!("verdict {s:?}: the exit code {code:?} is not a number"))?,
        })
    }
}

/// Serialises as its Display string, deserialises through FromStr.
macro_rules! as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

as_string!(CriContainerState);
as_string!(Verdict);

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).expect("serialises")
    }

    fn back<T: for<'de> Deserialize<'de>>(s: &str) -> T {
        serde_json::from_str(s).expect("deserialises")
    }

    #[test]
    fn outcome_is_the_lowercase_word() {
        for (o, s) in [
            (Outcome::Passed, "passed"),
            (Outcome::Failed, "failed"),
            (Outcome::Timeout, "timeout"),
        ] {
            assert_eq!(json(&o), format!("\"{s}\""));
            assert_eq!(o.to_string(), s);
            assert_eq!(back::<Outcome>(&json(&o)), o);
        }
        assert_eq!(Outcome::default(), Outcome::Failed);
        assert!(serde_json::from_str::<Outcome>("\"Passed\"").is_err());
    }

    #[test]
    fn container_state_uses_cri_names() {
        for (st, n, s) in [
            (CriContainerState::Created, 0, "CONTAINER_CREATED"),
            (CriContainerState::Running, 1, "CONTAINER_RUNNING"),
            (CriContainerState::Exited, 2, "CONTAINER_EXITED"),
            (CriContainerState::Unknown, 3, "CONTAINER_UNKNOWN"),
            (CriContainerState::Other(9), 9, "state 9"),
        ] {
            assert_eq!(CriContainerState::from(n), st);
            assert_eq!(st.to_string(), s);
            assert_eq!(json(&st), format!("\"{s}\""));
            assert_eq!(back::<CriContainerState>(&json(&st)), st);
        }
        assert!(CriContainerState::Exited.is_exited());
        assert!(!CriContainerState::Other(2).is_exited());
        assert!("EXITED".parse::<CriContainerState>().is_err());
        assert!("state x".parse::<CriContainerState>().is_err());
    }

    #[test]
    fn verdict_strings() {
        let ended = Verdict::Ended {
            state: CriContainerState::Exited,
            exit_code: 1,
        };
        let odd = Verdict::Ended {
            state: CriContainerState::Other(7),
            exit_code: -1,
        };
        for (v, s) in [
            (Verdict::Escaped, "escaped"),
            (Verdict::Bounded, "bounded"),
            (Verdict::OomKilled, "oom-killed"),
            (ended, "CONTAINER_EXITED exit 1"),
            (odd, "state 7 exit -1"),
        ] {
            assert_eq!(v.to_string(), s);
            assert_eq!(json(&v), format!("\"{s}\""));
            assert_eq!(back::<Verdict>(&json(&v)), v);
        }
        assert_eq!(json(&Some(Verdict::Bounded)), "\"bounded\"");
        assert_eq!(json(&None::<Verdict>), "null");
        for bad in [
            "\"leaked\"",
            "\"CONTAINER_EXITED exit x\"",
            "\"NOPE exit 1\"",
            "3",
        ] {
            assert!(serde_json::from_str::<Verdict>(bad).is_err(), "{bad}");
        }
    }
}
