//! The guest's process table, read from /proc: finding a pod's runsc and shim processes and the
//! flags they were started with.

use std::fs;
use std::path::Path;

use serde::Serialize;

/// Names (argv[0] base names) of the runtime processes that belong to one pod.
pub const RUNSC_PROCS: &[&str] = &["runsc", "runsc-sandbox", "runsc-gofer"];
pub const SHIM_PROCS: &[&str] = &["containerd-shim-runsc-v1", "containerd-shim-runc-v2"];

#[derive(Clone, Debug, Serialize)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<String>,
    pub rss_kib: Option<u64>,
    /// The cgroup v2 path from /proc/<pid>/cgroup, if it could be read.
    pub cgroup: Option<String>,
}

impl Proc {
    /// argv[0] without its directory: `runsc-sandbox`, `containerd-shim-runsc-v1`, ...
    pub fn name(&self) -> &str {
        self.argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or("")
    }

    /// True when any argument (argv[0] excluded) contains `needle`.
    pub fn args_mention(&self, needle: &str) -> bool {
        !needle.is_empty() && self.argv.iter().skip(1).any(|a| a.contains(needle))
    }
}

/// `/proc/<pid>/cmdline`: NUL-separated, usually NUL-terminated.
pub fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    let mut parts: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

/// A Go-style flag's value: `--name=v`, `-name=v`, `--name v` or `-name v`.
pub fn flag_value<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let short = format!("-{name}");
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        for prefix in [&long, &short] {
            if let Some(rest) = arg.strip_prefix(prefix.as_str()) {
                if let Some(v) = rest.strip_prefix('=') {
                    return Some(v);
                }
                if rest.is_empty() {
                    return it.next().map(String::as_str);
                }
            }
        }
    }
    None
}

/// A key from /proc/<pid>/status, e.g. `VmRSS` (value in kB) or `PPid`.
pub fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// The unified (cgroup v2) path from /proc/<pid>/cgroup: the `0::` line.
pub fn parse_proc_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end().to_string())
}

fn read_proc(dir: &Path, pid: u32) -> Option<Proc> {
    let cmdline = fs::read(dir.join("cmdline")).ok()?;
    let argv = parse_cmdline(&cmdline);
    if argv.is_empty() {
        return None; // kernel thread or already gone
    }
    let status = fs::read_to_string(dir.join("status")).unwrap_or_default();
    let cgroup = fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|t| parse_proc_cgroup(&t));
    Some(Proc {
        pid,
        ppid: status_field(&status, "PPid").unwrap_or(0) as u32,
        argv,
        rss_kib: status_field(&status, "VmRSS"),
        cgroup,
    })
}

/// Every user-space process of the guest at this moment.
pub fn snapshot() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<Proc> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            read_proc(&e.path(), pid)
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// The runtime processes (runsc, gofers, shims) whose arguments name any of `ids`.
pub fn runtime_procs_for<'a>(procs: &'a [Proc], ids: &[String]) -> Vec<&'a Proc> {
    procs
        .iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()) || SHIM_PROCS.contains(&p.name()))
        .filter(|p| ids.iter().any(|id| p.args_mention(id)))
        .collect()
}

/// What `kill_runsc_of` did: the pids it found, and whether `kill -KILL` said it worked.
pub struct Killed {
    pub pids: Vec<String>,
    pub problem: Option<String>,
}

/// SIGKILLs the runsc processes (runsc, sandbox, gofers) whose arguments name sandbox `id`,
/// and waits `settle` for the kernel and containerd to see them go. The sandbox process holds
/// every container of the pod, so the containers' own runsc calls end with it. The last resort
/// for a pod containerd cannot stop; the guest is a throw-away VM.
pub async fn kill_runsc_of(id: &str, settle: std::time::Duration) -> Killed {
    let all = snapshot();
    let pids: Vec<String> = runtime_procs_for(&all, &[id.to_string()])
        .into_iter()
        .filter(|p| RUNSC_PROCS.contains(&p.name()))
        .map(|p| p.pid.to_string())
        .collect();
    if pids.is_empty() {
        return Killed {
            pids,
            problem: None,
        };
    }
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::process::Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .status(),
    )
    .await;
    tokio::time::sleep(settle).await;
    let problem = match r {
        Ok(Ok(st)) if st.success() => None,
        other => Some(format!(
            "kill -KILL {} did not succeed: {other:?}",
            pids.join(" ")
        )),
    };
    Killed { pids, problem }
}

/// The `runsc-sandbox` process of sandbox `id`.
pub fn find_sandbox<'a>(procs: &'a [Proc], id: &str) -> Option<&'a Proc> {
    procs
        .iter()
        .find(|p| p.name() == "runsc-sandbox" && p.args_mention(id))
}

/// The shim process(es) serving sandbox `id`: by `-id <id>` in their arguments, else the shim
/// that is the parent of one of `children`.
pub fn find_shims<'a>(
    procs: &'a [Proc],
    shim_name: &str,
    id: &str,
    children: &[u32],
) -> Vec<&'a Proc> {
    let by_id: Vec<&Proc> = procs
        .iter()
        .filter(|p| p.name() == shim_name && p.args_mention(id))
        .collect();
    if !by_id.is_empty() {
        return by_id;
    }
    let parents: Vec<u32> = procs
        .iter()
        .filter(|p| children.contains(&p.pid))
        .map(|p| p.ppid)
        .collect();
    procs
        .iter()
        .filter(|p| p.name() == shim_name && parents.contains(&p.pid))
        .collect()
}

/// The inodes of the sockets a process holds (from /proc/<pid>/fd links `socket:[N]`).
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let target = fs::read_link(e.path()).ok()?;
            parse_socket_link(target.to_str()?)
        })
        .collect()
}

pub fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Paths of bound unix sockets from /proc/net/unix whose inode is in `inodes`.
pub fn unix_socket_paths(net_unix: &str, inodes: &[u64]) -> Vec<String> {
    let mut out: Vec<String> = net_unix
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode [Path]
            let inode: u64 = f.get(6)?.parse().ok()?;
            let path = f.get(7)?;
            (inodes.contains(&inode) && path.starts_with('/')).then(|| path.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    const ID: &str = "3f9a0c1d2e4b5a6978877665544332211aabbccddeeff00112233445566778899";

    #[test]
    fn cmdline_split() {
        let raw = b"runsc-sandbox\0--root=/run/runsc\0boot\0--total-memory=268435456\0abc\0";
        assert_eq!(
            parse_cmdline(raw),
            argv(&[
                "runsc-sandbox",
                "--root=/run/runsc",
                "boot",
                "--total-memory=268435456",
                "abc"
            ])
        );
        assert_eq!(parse_cmdline(b"a\0b"), argv(&["a", "b"]));
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn total_memory_in_every_go_flag_form() {
        let a = argv(&["runsc-sandbox", "--total-memory=268435456", ID]);
        assert_eq!(flag_value(&a, "total-memory"), Some("268435456"));
        let a = argv(&["runsc-sandbox", "--total-memory", "4103303168", ID]);
        assert_eq!(flag_value(&a, "total-memory"), Some("4103303168"));
        let a = argv(&["runsc-sandbox", "-total-memory=1"]);
        assert_eq!(flag_value(&a, "total-memory"), Some("1"));
        let a = argv(&["runsc-sandbox", "-total-memory", "2"]);
        assert_eq!(flag_value(&a, "total-memory"), Some("2"));
        // --total-host-memory must not be mistaken for --total-memory.
        let a = argv(&["runsc-sandbox", "--total-host-memory=9", "--total-memory=3"]);
        assert_eq!(flag_value(&a, "total-memory"), Some("3"));
        assert_eq!(flag_value(&a, "total-host-memory"), Some("9"));
        let a = argv(&["runsc-sandbox", "boot", ID]);
        assert_eq!(flag_value(&a, "total-memory"), None);
        let a = argv(&["runsc-sandbox", "--total-memory"]);
        assert_eq!(flag_value(&a, "total-memory"), None);
        // argv[0] is never a flag.
        let a = argv(&["--total-memory=5"]);
        assert_eq!(flag_value(&a, "total-memory"), None);
    }

    #[test]
    fn proc_cgroup_v2_and_hybrid() {
        let v2 = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/cri-containerd-abc.scope\n";
        assert_eq!(
            parse_proc_cgroup(v2).as_deref(),
            Some("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/cri-containerd-abc.scope")
        );
        let hybrid =
            "12:memory:/foo\n1:name=systemd:/system.slice/x.service\n0::/system.slice/x.service\n";
        assert_eq!(
            parse_proc_cgroup(hybrid).as_deref(),
            Some("/system.slice/x.service")
        );
        assert_eq!(parse_proc_cgroup("12:memory:/foo\n"), None);
        let escaped = "0::/system.slice/kubepods-burstable-podx.slice:cri-containerd:abc\n";
        assert_eq!(
            parse_proc_cgroup(escaped).as_deref(),
            Some("/system.slice/kubepods-burstable-podx.slice:cri-containerd:abc")
        );
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tcontainerd-shim\nPPid:\t1\nVmRSS:\t   14336 kB\n";
        assert_eq!(status_field(s, "VmRSS"), Some(14336));
        assert_eq!(status_field(s, "PPid"), Some(1));
        assert_eq!(status_field(s, "VmSwap"), None);
    }

    fn p(pid: u32, ppid: u32, a: &[&str]) -> Proc {
        Proc {
            pid,
            ppid,
            argv: argv(a),
            rss_kib: Some(1000),
            cgroup: None,
        }
    }

    #[test]
    fn finds_sandbox_and_shim() {
        let procs = vec![
            p(
                10,
                1,
                &[
                    "/usr/bin/containerd-shim-runc-v2",
                    "-namespace",
                    "k8s.io",
                    "-id",
                    ID,
                    "-address",
                    "/run/containerd/containerd.sock",
                ],
            ),
            p(11, 10, &["runsc-sandbox", "--total-memory=1", "boot", ID]),
            p(12, 10, &["runsc-gofer", "gofer", ID]),
            p(13, 1, &["runsc-sandbox", "boot", "other"]),
            p(
                14,
                1,
                &["/usr/bin/containerd-shim-runsc-v1", "-id", "other"],
            ),
        ];
        assert_eq!(find_sandbox(&procs, ID).map(|p| p.pid), Some(11));
        assert_eq!(
            find_shims(&procs, "containerd-shim-runc-v2", ID, &[])
                .iter()
                .map(|p| p.pid)
                .collect::<Vec<_>>(),
            vec![10]
        );
        let ids = vec![ID.to_string()];
        assert_eq!(
            runtime_procs_for(&procs, &ids)
                .iter()
                .map(|p| p.pid)
                .collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
    }

    #[test]
    fn shim_found_by_parent_when_args_do_not_name_the_sandbox() {
        let procs = vec![
            p(20, 1, &["containerd-shim-runsc-v1", "-namespace", "k8s.io"]),
            p(21, 20, &["runsc-sandbox", "boot", ID]),
        ];
        let shims = find_shims(&procs, "containerd-shim-runsc-v1", ID, &[21]);
        assert_eq!(shims.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![20]);
    }

    #[test]
    fn sockets() {
        assert_eq!(parse_socket_link("socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link("pipe:[1]"), None);
        let net = "Num       RefCount Protocol Flags    Type St Inode Path\n\
                   0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/containerd/s/abcd\n\
                   0000000000000000: 00000003 00000000 00000000 0001 03 12346\n\
                   0000000000000000: 00000002 00000000 00010000 0001 01 999 /run/other.sock\n\
                   0000000000000000: 00000002 00000000 00010000 0001 01 12347 @abstract\n";
        assert_eq!(
            unix_socket_paths(net, &[12345, 12346, 12347]),
            vec!["/run/containerd/s/abcd".to_string()]
        );
    }
}
