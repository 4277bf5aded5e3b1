//! Container logs as containerd writes them (CRI format `<time> <stream> <P|F> <message>`) and
//! the eater's progress read from them.

use serde::Serialize;

#[derive(Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    /// `P`: the message continues in the next line; `F`: the line is complete.
    pub partial: bool,
    pub message: &'a str,
}

/// One line of a CRI log file. The tag field may carry more flags after `:` (`F:x`).
pub fn parse_cri_line(line: &str) -> Option<CriLine<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let message = it.next().unwrap_or("");
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let partial = match tag.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    Some(CriLine {
        time,
        stream,
        partial,
        message,
    })
}

/// The messages of a log file, partial lines joined; lines not in CRI format are kept as they
/// are (so a plain-text log works too).
pub fn messages(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        match parse_cri_line(line) {
            Some(l) if l.partial => pending.push_str(l.message),
            Some(l) => {
                pending.push_str(l.message);
                out.push(std::mem::take(&mut pending));
            }
            None => {
                if !pending.is_empty() {
                    out.push(std::mem::take(&mut pending));
                }
                out.push(line.to_string());
            }
        }
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

/// How far the eater got, from its own words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EaterProgress {
    pub started: bool,
    /// The last `eaten <N> MiB`.
    pub eaten_mib: Option<u64>,
    /// `done <N> MiB`: it reached its target and now sleeps.
    pub done_mib: Option<u64>,
    /// Anything else it said (e.g. `malloc failed at N MiB`, usage errors).
    pub other: Vec<String>,
}

impl EaterProgress {
    /// The most memory the eater reported holding.
    pub fn max_mib(&self) -> Option<u64> {
        match (self.eaten_mib, self.done_mib) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn done(&self) -> bool {
        self.done_mib.is_some()
    }
}

fn mib_after(msg: &str, word: &str) -> Option<u64> {
    let rest = msg.trim().strip_prefix(word)?.trim_start();
    let n = rest.strip_suffix("MiB")?.trim();
    n.parse().ok()
}

pub fn eater_progress<S: AsRef<str>>(messages: &[S]) -> EaterProgress {
    let mut p = EaterProgress::default();
    for m in messages {
        let m = m.as_ref().trim();
        if m == "start" {
            p.started = true;
        } else if let Some(n) = mib_after(m, "eaten") {
            p.eaten_mib = Some(n);
        } else if let Some(n) = mib_after(m, "done") {
            p.done_mib = Some(n);
        } else if !m.is_empty() && p.other.len() < 20 {
            p.other.push(m.to_string());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_line() {
        let l =
            parse_cri_line("2024-08-01T10:00:00.123456789Z stdout F eaten 16 MiB").expect("parses");
        assert_eq!(l.time, "2024-08-01T10:00:00.123456789Z");
        assert_eq!(l.stream, "stdout");
        assert!(!l.partial);
        assert_eq!(l.message, "eaten 16 MiB");
        let l = parse_cri_line("2024-08-01T10:00:00Z stderr P part").expect("parses");
        assert!(l.partial);
        assert_eq!(l.stream, "stderr");
        let l = parse_cri_line("2024-08-01T10:00:00Z stdout F").expect("empty message");
        assert_eq!(l.message, "");
        assert!(parse_cri_line("eaten 16 MiB").is_none());
        assert!(parse_cri_line("t stdin F x").is_none());
        assert!(parse_cri_line("t stdout X x").is_none());
    }

    #[test]
    fn partial_lines_are_joined() {
        let text = "t stdout P hel\nt stdout F lo\nt stderr F oops\nplain line\n";
        assert_eq!(messages(text), vec!["hello", "oops", "plain line"]);
        assert_eq!(messages("t stdout P dangling"), vec!["dangling"]);
    }

    #[test]
    fn eater_killed_midway() {
        let log = "2024-08-01T10:00:00Z stdout F start\n\
                   2024-08-01T10:00:01Z stdout F eaten 16 MiB\n\
                   2024-08-01T10:00:02Z stdout F eaten 32 MiB\n\
                   2024-08-01T10:00:03Z stdout F eaten 224 MiB\n";
        let p = eater_progress(&messages(log));
        assert!(p.started);
        assert_eq!(p.eaten_mib, Some(224));
        assert_eq!(p.max_mib(), Some(224));
        assert!(!p.done());
    }

    #[test]
    fn eater_done() {
        let p = eater_progress(&["start", "eaten 1008 MiB", "eaten 1024 MiB", "done 1024 MiB"]);
        assert_eq!(p.max_mib(), Some(1024));
        assert!(p.done());
        assert!(p.other.is_empty());
    }

    #[test]
    fn eater_other_output_and_nothing() {
        let p = eater_progress(&["usage: eater MAX_MIB STEP_MIB DELAY_MS"]);
        assert!(!p.started);
        assert_eq!(p.max_mib(), None);
        assert_eq!(p.other.len(), 1);
        assert_eq!(eater_progress::<&str>(&[]), EaterProgress::default());
        // "eaten" without a number is not progress.
        assert_eq!(eater_progress(&["eaten lots MiB"]).eaten_mib, None);
    }
}
