//! `exec` and `kill --pid`: processes run in a running container, played on the host.
//!
//! As runsc does with `--detach`, the invoked process starts a child `exec` without it, which
//! runs the process (from `--process`, the OCI process JSON: args resolved through the process'
//! PATH, env, cwd if it exists on the host), writes the process' pid to `--internal-pid-file`
//! (here a host pid, so `kill --pid` can signal it) and then its own pid to `--pid-file`, waits
//! for the process and exits with its status (128 + the signal for a signal). The detached parent
//! returns once the pid file names the child, and fails if the child fails first. With
//! `--console-socket` the parent opens a pty, sends the master over the socket (SCM_RIGHTS, as
//! runsc does) and gives the replica to the child as its stdio; the process gets it as its
//! controlling terminal.

use std::fs;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::args::{one_id, Invocation};
use crate::state::Ctx;
use crate::POLL;

/// Set in the environment of the detached parent's child: it does not record its call again.
pub const EXEC_CHILD_ENV: &str = "FAKE_RUNSC_EXEC_CHILD";
/// How long the detached parent waits for its child's pid file, as runsc does.
const READY_LIMIT: Duration = Duration::from_secs(10);

pub enum Outcome {
    /// The detached parent: done once the child runs.
    Detached,
    /// The child: its exit status is the process'.
    Exited(i32),
}

pub fn exec(ctx: &Ctx, inv: &Invocation) -> Result<Outcome, String> {
    let id = one_id(inv, 0)?;
    let c = ctx.load_existing(id)?;
    c.check_fail("exec")?;
    if c.status() != "running" {
        return Err(format!(
            "cannot exec in container {id:?} in state {:?}",
            c.status()
        ));
    }
    let process_path = inv
        .flags
        .get("process")
        .ok_or("exec: the fake takes the process from --process only")?;
    let text = fs::read_to_string(process_path)
        .map_err(|e| format!("error opening process file: {process_path}, {e}"))?;
    let process: Value = serde_json::from_str(&text)
        .map_err(|e| format!("error parsing process file: {process_path}, {e}"))?;
    let args: Vec<String> = process["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if args.is_empty() {
        return Err("invalid process spec: args must not be empty".into());
    }
    let env: Vec<(String, String)> = process["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let Some(binary) = resolve(&args[0], &path_var) else {
        return Err(format!(
            "executing processes for container: failed to load {}: no such file or directory",
            args[0]
        ));
    };
    let pid_file = inv
        .flags
        .get("pid-file")
        .ok_or("exec: the fake needs --pid-file")?;
    if inv.flags.get("detach").is_some_and(|v| v != "false") {
        detach(inv, Path::new(pid_file))?;
        return Ok(Outcome::Detached);
    }
    let mut cmd = Command::new(binary);
    cmd.arg0(&args[0]).args(&args[1..]).env_clear().envs(env);
    let cwd = process["cwd"].as_str().unwrap_or("/");
    cmd.current_dir(if Path::new(cwd).is_dir() { cwd } else { "/" });
    if process["terminal"].as_bool() == Some(true) {
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("executing processes for container: {e}"))?;
    if let Some(internal) = inv.flags.get("internal-pid-file") {
        fs::write(internal, child.id().to_string())
            .map_err(|e| format!("writing internal pid file {internal:?}: {e}"))?;
    }
    fs::write(pid_file, std::process::id().to_string())
        .map_err(|e| format!("writing pid file: {e}"))?;
    let status = child
        .wait()
        .map_err(|e| format!("waiting on pid {}: {e}", child.id()))?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Outcome::Exited(code.clamp(0, 255)))
}

/// The detached parent: starts the child (this argv without `--detach`) and waits for its pid.
fn detach(inv: &Invocation, pid_file: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("fake-runsc: own path: {e}"))?;
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.contains("detach"))
        .collect();
    let mut cmd = Command::new(exe);
    cmd.args(&argv).env(EXEC_CHILD_ENV, "1");
    if let Some(socket) = inv.flags.get("console-socket") {
        let pair = nix::pty::openpty(None, None).map_err(|e| format!("opening a pty: {e}"))?;
        send_master(Path::new(socket), &pair.master)?;
        let replica = fs::File::from(pair.slave);
        let dup = |f: &fs::File| {
            f.try_clone()
                .map(Stdio::from)
                .map_err(|e| format!("duplicating the pty: {e}"))
        };
        cmd.stdin(dup(&replica)?)
            .stdout(dup(&replica)?)
            .stderr(Stdio::from(replica));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("failure to start child exec process, err: {e}"))?;
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            == Some(child.id())
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the exec child failed before it wrote the pid file ({status})"
            ));
        }
        if Instant::now() >= deadline {
            return Err("timed out waiting for the exec child's pid file".into());
        }
        std::thread::sleep(POLL);
    }
}

/// A container's terminal: a pty whose master goes to `socket`, `text` written to the replica.
pub fn send_terminal(socket: &Path, text: Option<&str>) -> Result<(), String> {
    let pair = nix::pty::openpty(None, None).map_err(|e| format!("opening a pty: {e}"))?;
    send_master(socket, &pair.master)?;
    if let Some(text) = text {
        nix::unistd::write(&pair.slave, text.as_bytes())
            .map_err(|e| format!("writing to the pty: {e}"))?;
    }
    Ok(())
}

fn send_master(socket: &Path, master: &std::os::fd::OwnedFd) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| format!("connecting to the console socket {}: {e}", socket.display()))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("sending the pty master: {e}"))?;
    Ok(())
}

/// args[0] as runsc finds it: a path as it is, a name through PATH.
fn resolve(name: &str, path_var: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    path_var
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| is_exec(p))
}

/// `kill --pid <pid> <id> <signal>`: the pid is what `--internal-pid-file` held, a host pid here.
pub fn kill_pid(pid: &str, signal: u32) -> Result<(), String> {
    let pid: i32 = pid
        .parse()
        .map_err(|_| format!("kill: invalid --pid {pid:?}"))?;
    let signal = if signal == 0 {
        None
    } else {
        Some(
            nix::sys::signal::Signal::try_from(signal as i32)
                .map_err(|e| format!("kill: signal {signal}: {e}"))?,
        )
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(|e| match e {
        nix::errno::Errno::ESRCH => format!("failed to signal process {pid}: no such process"),
        other => format!("failed to signal process {pid}: {other}"),
    })
}
