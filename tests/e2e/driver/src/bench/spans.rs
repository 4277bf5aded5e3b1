//! The shim's own account of its time: the `timing create|start <id>: name=…ms … total=…ms`
//! lines it logs per RPC, and the `timing daemon <id>: …` line a new shim logs of its start-up
//! at its first Create (`<id>` is that Create's), read back from its log files and summed up per
//! RPC and role.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::stats::Stats;

/// One timing line.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub rpc: String,
    pub id: String,
    /// Span name -> ms, in the line's order.
    pub fields: Vec<(String, f64)>,
}

/// A timing line's parts, wherever the logger put the message in the line.
pub fn parse_line(line: &str) -> Option<Timing> {
    let at = line.find("timing ")?;
    let rest = &line[at + "timing ".len()..];
    let (head, tail) = rest.split_once(": ")?;
    let (rpc, id) = head.split_once(' ')?;
    if !matches!(rpc, "create" | "start" | "daemon") {
        return None;
    }
    let fields = tail
        .split_whitespace()
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            let v = v.trim_end_matches(['"', ',']).strip_suffix("ms")?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect::<Vec<_>>();
    (!fields.is_empty()).then(|| Timing {
        rpc: rpc.to_string(),
        id: id.to_string(),
        fields,
    })
}

/// Every timing line in the files of `dir`.
pub fn read_dir(dir: &Path) -> Vec<Timing> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|text| text.lines().filter_map(parse_line).collect::<Vec<_>>())
        .collect()
}

/// Per RPC and role ("create sandbox", "start container", ...): each span's stats over the pods.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Breakdown {
    pub what: String,
    pub n: usize,
    pub spans: Vec<(String, Stats)>,
}

/// The timings of the ids given, grouped by RPC and by whether the id is a sandbox's.
pub fn breakdown(
    timings: &[Timing],
    sandboxes: &[String],
    containers: &[String],
) -> Vec<Breakdown> {
    let mut groups: BTreeMap<String, Vec<&Timing>> = BTreeMap::new();
    for t in timings {
        let role = if sandboxes.contains(&t.id) {
            "sandbox"
        } else if containers.contains(&t.id) {
            "container"
        } else {
            continue;
        };
        groups
            .entry(format!("{} {role}", t.rpc))
            .or_default()
            .push(t);
    }
    groups
        .into_iter()
        .map(|(what, ts)| {
            let mut names: Vec<String> = Vec::new();
            for t in &ts {
                for (k, _) in &t.fields {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
            let spans = names
                .into_iter()
                .filter_map(|k| {
                    // A span a line does not name took no time in that RPC.
                    let v = ts.iter().map(|t| {
                        t.fields
                            .iter()
                            .find(|(n, _)| *n == k)
                            .map_or(0.0, |(_, v)| *v)
                    });
                    Stats::of(v).map(|s| (k, s))
                })
                .collect();
            Breakdown {
                n: ts.len(),
                what,
                spans,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "time=\"2026-12-01T14:00:00Z\" level=info msg=\"timing create 0123abcd: \
        runsc.create=812.1ms guard.plan=0.3ms other=2.0ms shim=3.6ms total=815.7ms result=ok\"";

    #[test]
    fn parses_a_logged_line() {
        let t = parse_line(LINE).expect("a timing line");
        assert_eq!(t.rpc, "create");
        assert_eq!(t.id, "0123abcd");
        assert_eq!(t.fields[0], ("runsc.create".to_string(), 812.1));
        assert_eq!(t.fields.last().expect("fields").0, "total");
        assert!(parse_line("level=info msg=\"started\"").is_none());
        assert!(parse_line("timing delete x: total=1ms").is_none());
        let daemon = parse_line(
            "level=info msg=\"timing daemon sb1: start=1.0ms exec=30.5ms ready=9.0ms total=40.5ms\"",
        )
        .expect("a start-up line");
        assert_eq!((daemon.rpc.as_str(), daemon.id.as_str()), ("daemon", "sb1"));
        assert_eq!(daemon.fields[1], ("exec".to_string(), 30.5));
    }

    #[test]
    fn groups_by_rpc_and_role() {
        let a = parse_line(LINE).expect("line");
        let mut b = a.clone();
        b.id = "c1".into();
        b.fields.retain(|(k, _)| k != "guard.plan");
        let out = breakdown(&[a, b], &["0123abcd".into()], &["c1".into()]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].what, "create container");
        let plan = out[0].spans.iter().find(|(k, _)| k == "guard.plan");
        assert!(plan.is_none(), "a span no line names is not listed");
        assert_eq!(out[1].what, "create sandbox");
        assert_eq!(out[1].n, 1);
    }
}
