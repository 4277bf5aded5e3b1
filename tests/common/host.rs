//! Host checks: whether the test may run (root), what is mounted and what runs on the host, and
//! short-lived commands bounded by [`TIMEOUT`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use super::TIMEOUT;

/// True when the test must not run: not root. Says so on stderr, so the run shows what was
/// skipped.
pub fn skip_unless_root(test: &str) -> bool {
    use std::io::Write;
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    // Written to the stream itself: the test harness captures `eprintln!` of passing tests, and
    // a skip must not pass silently.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: needs root (mounts, /run/containerd/s): {test}"
    );
    true
}

/// Runs a short-lived command, bounded by TIMEOUT.
pub async fn run_bounded(cmd: tokio::process::Command, what: &str) -> Output {
    run_bounded_with_input(cmd, b"", what).await
}

/// Runs a short-lived command with `input` on its stdin, bounded by TIMEOUT.
pub async fn run_bounded_with_input(
    mut cmd: tokio::process::Command,
    input: &[u8],
    what: &str,
) -> Output {
    use tokio::io::AsyncWriteExt;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let feed = tokio::spawn(async move {
        // A command that does not read its stdin closes it early: not an error here.
        let _ = stdin.write_all(&input).await;
    });
    let out = match tokio::time::timeout(TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("running {what}: {e}")),
        Err(_) => panic!("{what} did not finish within {TIMEOUT:?}"),
    };
    let _ = feed.await;
    out
}

/// Mount points at or under `dir`, from /proc/self/mountinfo.
pub fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            out.push(
                digits
                    .iter()
                    .fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')),
            );
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Live (not zombie) processes, other than this one, whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && is_live(pid))
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// The parent of a process, from `/proc/<pid>/stat`; None when it is gone.
pub fn parent_pid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, maybe with spaces): the state, then the ppid.
    let i = stat.rfind(')')?;
    stat[i + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// The shim daemons of a namespace: the shim binary serving a socket. A child the daemon has
/// forked but not yet exec'd (a runsc call on its way) shows the daemon's command line for a
/// moment; it is not a daemon of its own, so processes whose parent is one are left out.
pub fn shim_daemons(namespace: &str) -> Vec<(i32, String)> {
    let all: Vec<_> = processes_mentioning(namespace)
        .into_iter()
        .filter(|(_, cmdline)| {
            cmdline.contains("containerd-shim-runsc-v1") && cmdline.contains(" -socket ")
        })
        .collect();
    let pids: Vec<i32> = all.iter().map(|(pid, _)| *pid).collect();
    all.into_iter()
        .filter(|(pid, _)| parent_pid(*pid).is_none_or(|ppid| !pids.contains(&ppid)))
        .collect()
}

/// A process that exists and is not a zombie.
pub fn is_live(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// `pid` is live and is a process of this test (its command line names the namespace), so a
/// recycled pid is never mistaken for the shim.
pub fn process_is_ours(pid: i32, namespace: &str) -> bool {
    is_live(pid)
        && fs::read(format!("/proc/{pid}/cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).contains(namespace))
            .unwrap_or(false)
}
