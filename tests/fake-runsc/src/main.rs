//! fake-runsc: a stand-in for runsc in the shim's integration tests.
//!
//! It speaks runsc's command line (global flags, then a sub-command with its flags, then the
//! container id) and plays the container states a real runsc would report, without running
//! anything (but a process standing for the sandbox, when a test asks for one with
//! `KNOB_SANDBOX_PROCESS`: the shim reaps it as it reaps a real sandbox). Everything it knows lives in files under `--root`, so several invocations (and
//! several shims) share it the way they share a real runsc root:
//! - `<root>/calls.jsonl`: one JSON line per invocation, `{"argv":[..],"cwd":".."}`, argv without
//!   argv0, so a test can assert the exact command lines the shim ran;
//! - `<root>/<id>_sandbox:<sandbox id>.state`: the state of one container (runsc's own naming).
//!
//! Failures look like runsc's: a `{"level":"error","msg":..,"time":..}` line appended to the
//! `--log` file, the message on stderr, exit status 1.
//!
//! A test steers a container through annotations of its OCI spec, read from `config.json` at
//! `create`: see the `KNOB_*` constants of the crate's library, which the tests share.
//!
//! When `RUNSC_GUARD_PROC_ROOT` is set (the shim's guard reads the sandbox process from there),
//! `create` of a sandbox also leaves what the guard verifies: `<proc root>/<pid>/cgroup` and
//! `<proc root>/<pid>/cmdline`, see [`SandboxProcess`]; and, in the fixture tree named by
//! `RUNSC_GUARD_CGROUP_ROOT`, the sandbox's cgroup when runsc would create it. `delete` removes
//! what `create` left.

mod exec;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_runsc::{
    CALLS_FILE, CGROUP_ROOT_ENV, DEFAULT_VERSION, EVENT_CPU_NS, EVENT_MEMORY_USAGE, EVENT_PIDS,
    FAKE_PID_BASE, KNOB_EXIT_CODE, KNOB_FAIL, KNOB_FAIL_MESSAGE, KNOB_HANG, KNOB_HANG_MS,
    KNOB_RUN_MS, KNOB_SANDBOX_CGROUP, KNOB_SANDBOX_PROCESS, KNOB_STDOUT, KNOB_TOTAL_MEMORY,
    PROC_ROOT_ENV, SANDBOX_PROCESS_ENV, STATE_FILE_SANDBOX, STATE_FILE_SUFFIX, VERSION_CALLS_ENV,
    VERSION_ENV,
};
use serde_json::{json, Map, Value};

/// The annotation runsc 20221219 takes as the cgroup it records for the sandbox (and sizes the
/// guest from) instead of `linux.cgroupsPath`'s.
const GVISOR_CGROUP_PARENT: &str = "dev.gvisor.spec.cgroup-parent";

const CONTAINER_TYPE: [&str; 2] = [
    "io.kubernetes.cri.container-type",
    "io.kubernetes.cri-o.ContainerType",
];
const SANDBOX_ID: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

/// A `wait` never blocks longer than this, so a forgotten one cannot outlive a test run.
const WAIT_LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(10);

/// runsc's sub-commands (those of 20221219); a global flag without `=` followed by one of these
/// is a boolean flag, like Go's flag package would read it.
const SUBCOMMANDS: &[&str] = &[
    "checkpoint",
    "create",
    "delete",
    "do",
    "events",
    "exec",
    "features",
    "flags",
    "gofer",
    "help",
    "kill",
    "list",
    "pause",
    "port-forward",
    "ps",
    "restore",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "symbolize",
    "syscalls",
    "update",
    "wait",
];
const BOOL_GLOBAL_FLAGS: &[&str] = &[
    "alsologtostderr",
    "debug",
    "ignore-cgroups",
    "nvproxy",
    "rootless",
    "strace",
    "systemd-cgroup",
    "TESTONLY-unsafe-nonroot",
];

/// One parsed command line.
#[derive(Debug, Default, PartialEq)]
struct Invocation {
    /// Global flags, unknown ones included.
    globals: BTreeMap<String, String>,
    version: bool,
    command: Option<String>,
    flags: BTreeMap<String, String>,
    args: Vec<String>,
}

/// The flags each sub-command accepts, and which of them are booleans.
fn command_flags(command: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match command {
        "create" => (&["bundle", "pid-file", "console-socket", "user-log"], &[]),
        "start" | "state" | "pause" | "resume" => (&[], &[]),
        "update" => (&["resources"], &[]),
        "wait" => (&["pid", "rootpid"], &[]),
        "kill" => (&["all", "pid"], &["all"]),
        "delete" => (&["force"], &["force"]),
        "ps" => (&["format"], &[]),
        "list" => (&["quiet", "format", "sandbox"], &["quiet", "sandbox"]),
        "exec" => (
            &[
                "process",
                "detach",
                "pid-file",
                "internal-pid-file",
                "console-socket",
            ],
            &["detach"],
        ),
        "events" => (&["stats", "interval"], &["stats"]),
        _ => return None,
    })
}

fn flag_name(arg: &str) -> Option<&str> {
    if arg == "-" || arg == "--" {
        return None;
    }
    arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))
}

/// The flag at `argv[*i]`, or `None` where flags stop, as in Go's flag package: at the end, at
/// the first argument that is not a flag, or at `--`, which is skipped.
fn next_flag<'a>(argv: &'a [String], i: &mut usize) -> Option<&'a str> {
    let arg = argv.get(*i)?;
    if arg == "--" {
        *i += 1;
        return None;
    }
    flag_name(arg)
}

fn parse(argv: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut i = 0;
    while let Some(flag) = next_flag(argv, &mut i) {
        if let Some((k, v)) = flag.split_once('=') {
            if k == "version" {
                inv.version = v != "false";
            } else {
                inv.globals.insert(k.to_string(), v.to_string());
            }
        } else if flag == "version" {
            inv.version = true;
        } else {
            let next = argv.get(i + 1).map(String::as_str);
            let boolean = BOOL_GLOBAL_FLAGS.contains(&flag)
                || next.is_none_or(|n| n.starts_with('-') || SUBCOMMANDS.contains(&n));
            if boolean {
                inv.globals.insert(flag.to_string(), "true".to_string());
            } else {
                inv.globals
                    .insert(flag.to_string(), next.unwrap_or_default().to_string());
                i += 1;
            }
        }
        i += 1;
    }
    let Some(command) = argv.get(i) else {
        return Ok(inv);
    };
    i += 1;
    let Some((known, booleans)) = command_flags(command) else {
        return Err(format!("unknown subcommand {command:?}"));
    };
    // Like Go's flag package: flags stop at the first argument that is not one.
    while let Some(flag) = next_flag(argv, &mut i) {
        let (name, value) = match flag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (flag, None),
        };
        if !known.contains(&name) {
            return Err(format!("{command}: flag provided but not defined: -{name}"));
        }
        let value = match value {
            Some(v) => v,
            None if booleans.contains(&name) => "true".to_string(),
            None => {
                i += 1;
                argv.get(i)
                    .cloned()
                    .ok_or_else(|| format!("{command}: flag needs an argument: -{name}"))?
            }
        };
        inv.flags.insert(name.to_string(), value);
        i += 1;
    }
    inv.command = Some(command.clone());
    inv.args = argv[i..].to_vec();
    Ok(inv)
}

fn parse_signal(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return if n < 65 {
            Ok(n)
        } else {
            Err(format!("invalid signal {s:?}"))
        };
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        _ => return Err(format!("invalid signal {s:?}")),
    };
    Ok(n)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// RFC 3339 in UTC with milliseconds, from milliseconds since the epoch.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// A stable fake pid per container id, above FAKE_PID_BASE.
fn fake_pid(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    FAKE_PID_BASE + (hash & 0x0fff_ffff)
}

/// Where this invocation keeps and reports things.
struct Ctx {
    root: Option<PathBuf>,
    log: Option<PathBuf>,
}

impl Ctx {
    fn root(&self) -> Result<&Path, String> {
        self.root.as_deref().ok_or_else(|| {
            "fake-runsc: --root is required (tests never use the default root)".into()
        })
    }

    /// The state file of container `id`: the one there is, else where it would be created as a
    /// sandbox of its own.
    fn state_path(&self, id: &str) -> Result<PathBuf, String> {
        self.state_path_in(id, id)
    }

    /// The state file of container `id`: the one there is, else the one of `id` in `sandbox_id`.
    fn state_path_in(&self, id: &str, sandbox_id: &str) -> Result<PathBuf, String> {
        for i in [id, sandbox_id] {
            if i.is_empty() || i.contains('/') || i.starts_with('.') || i.contains(':') {
                return Err(format!("invalid container id {i:?}"));
            }
        }
        let root = self.root()?;
        let prefix = format!("{id}{STATE_FILE_SANDBOX}");
        if let Ok(entries) = fs::read_dir(root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(STATE_FILE_SUFFIX) {
                    return Ok(e.path());
                }
            }
        }
        Ok(root.join(fake_runsc::state_file_name(id, sandbox_id)))
    }

    fn log_line(&self, level: &str, msg: &str) {
        let Some(log) = &self.log else { return };
        let line = json!({"level": level, "msg": msg, "time": rfc3339(now_ms())});
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    fn record(&self, argv: &[String]) {
        let Some(root) = &self.root else { return };
        let _ = fs::create_dir_all(root);
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let line = json!({"argv": argv, "cwd": cwd});
        // One append-mode write per line keeps concurrent invocations' lines whole.
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join(CALLS_FILE))
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    fn load(&self, id: &str) -> Result<Option<Container>, String> {
        let path = self.state_path(id)?;
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("corrupt state {}: {e}", path.display()))?;
        let mut c = Container { value };
        c.settle();
        // A container joining a sandbox dies with it.
        if !c.is_sandbox() && c.status() != "stopped" {
            let sandbox_id = c.str("sandbox_id").to_string();
            let sandbox_gone = match self.load(&sandbox_id) {
                Ok(Some(sandbox)) => sandbox.status() == "stopped",
                Ok(None) => true,
                Err(_) => false,
            };
            if sandbox_gone {
                c.stop(128 + 9, now_ms());
                c.value["sandbox_died"] = json!(true);
            }
        }
        Ok(Some(c))
    }

    fn load_existing(&self, id: &str) -> Result<Container, String> {
        let full = self
            .resolve(id)?
            .ok_or_else(|| format!("container {id:?} does not exist"))?;
        self.load(&full)?
            .ok_or_else(|| format!("container {id:?} does not exist"))
    }

    /// Every container id in the root, sorted.
    fn ids(&self) -> Result<Vec<String>, String> {
        let root = self.root()?;
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("reading {}: {e}", root.display())),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (id, _) = name
                    .strip_suffix(STATE_FILE_SUFFIX)?
                    .split_once(STATE_FILE_SANDBOX)?;
                Some(id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The container an id names, as runsc's `findContainerID` resolves it (20221219 and
    /// since): every container whose id starts with it matches; one match is taken, even when it
    /// is not exactly the id, and several are an error, even when one is exactly the id.
    fn resolve(&self, partial: &str) -> Result<Option<String>, String> {
        self.state_path(partial)?;
        let matches: Vec<String> = self
            .ids()?
            .into_iter()
            .filter(|id| id.starts_with(partial))
            .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            [a, b, ..] => Err(format!(
                "id {partial:?} is ambiguous and could refer to multiple containers: {a:?}, {b:?}"
            )),
        }
    }

    fn save(&self, c: &Container) -> Result<(), String> {
        let sandbox_id = match c.str("sandbox_id") {
            "" => c.id(),
            s => s,
        };
        let path = self.state_path_in(c.id(), sandbox_id)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        fs::write(&tmp, c.value.to_string())
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

/// A container's state file.
struct Container {
    value: Value,
}

impl Container {
    fn str(&self, key: &str) -> &str {
        self.value[key].as_str().unwrap_or_default()
    }

    fn id(&self) -> &str {
        self.str("id")
    }

    fn status(&self) -> &str {
        self.str("status")
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.value["annotations"][key].as_str()
    }

    /// A running container whose run-ms has elapsed has stopped by itself; a sandbox whose
    /// process died has stopped, its exit status lost with it.
    fn settle(&mut self) {
        let process = self.value["process_pid"].as_i64().unwrap_or_default();
        if process > 0 && self.status() != "stopped" && !is_alive(process as i32) {
            self.stop(128 + 9, now_ms());
            self.value["sandbox_died"] = json!(true);
            return;
        }
        if self.status() != "running" {
            return;
        }
        let Some(run_ms) = self
            .annotation(KNOB_RUN_MS)
            .and_then(|v| v.parse::<u64>().ok())
        else {
            return;
        };
        let started = self.value["started_ms"].as_u64().unwrap_or_default();
        if now_ms() >= started + run_ms {
            let code = self
                .annotation(KNOB_EXIT_CODE)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            self.stop(code, started + run_ms);
        }
    }

    fn stop(&mut self, exit_status: u32, at_ms: u64) {
        self.value["status"] = json!("stopped");
        self.value["exit_status"] = json!(exit_status);
        self.value["stopped_ms"] = json!(at_ms);
    }

    /// Fails when the test asked this sub-command to fail.
    fn check_fail(&self, command: &str) -> Result<(), String> {
        fail_if_asked(&self.value["annotations"], command)
    }

    /// Stopped because its sandbox died, not by its own exit: runsc cannot tell a status then.
    fn died_with_sandbox(&self) -> bool {
        self.value["sandbox_died"].as_bool() == Some(true)
    }

    /// Whether a real process stands for this sandbox (KNOB_SANDBOX_PROCESS).
    fn has_process(&self) -> bool {
        self.value["process_pid"].as_i64().is_some_and(|p| p > 0)
    }

    fn is_sandbox(&self) -> bool {
        self.str("role") == "sandbox"
    }

    /// With a terminal (`--console-socket` at create), the text goes to a pty whose master is
    /// sent to that socket, as runsc sends it.
    fn emit_stdout(&self) -> Result<(), String> {
        if let Some(socket) = self.value["console_socket"].as_str() {
            return exec::send_terminal(Path::new(socket), self.annotation(KNOB_STDOUT));
        }
        self.emit_plain_stdout();
        Ok(())
    }

    fn emit_plain_stdout(&self) {
        if let Some(text) = self.annotation(KNOB_STDOUT) {
            let mut out = std::io::stdout();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

fn fail_if_asked(annotations: &Value, command: &str) -> Result<(), String> {
    let hang = annotations[KNOB_HANG]
        .as_str()
        .is_some_and(|list| list.split(',').any(|c| c.trim() == command));
    if hang {
        let ms = annotations[KNOB_HANG_MS]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60_000);
        std::thread::sleep(Duration::from_millis(ms));
    }
    let asked = annotations[KNOB_FAIL]
        .as_str()
        .is_some_and(|list| list.split(',').any(|c| c.trim() == command));
    if !asked {
        return Ok(());
    }
    Err(annotations[KNOB_FAIL_MESSAGE]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("fake-runsc: {command} failed as the test asked")))
}

fn first_annotation<'a>(annotations: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| annotations.get(*k)?.as_str())
}

fn one_id(inv: &Invocation, extra: usize) -> Result<&str, String> {
    let command = inv.command.as_deref().unwrap_or_default();
    match inv.args.len() {
        n if n == 1 + extra => Ok(&inv.args[0]),
        0 => Err(format!("{command}: a container id is required")),
        _ => Err(format!(
            "{command}: wrong number of arguments {:?}",
            inv.args
        )),
    }
}

/// The `runsc-sandbox` process runsc leaves for a sandbox, as the shim's guard reads it from
/// `<proc root>/<pid>`. A test double, not a model of runsc: by default it does what runsc
/// 20221219 does with the cgroupfs paths the guard hands it on a host without systemd
/// on cgroup v2; `--systemd-cgroup` is not modelled, a test sets the knobs instead.
#[derive(Debug, PartialEq)]
struct SandboxProcess {
    /// The text of `/proc/<pid>/cgroup`.
    cgroup: String,
    /// The command line, NUL-separated in `/proc/<pid>/cmdline`.
    argv: Vec<String>,
    /// The cgroup runsc creates in the fixture tree, with its `memory.max`, when the path's
    /// cgroup does not exist yet (its parent must: the fake makes one directory, no more).
    new_cgroup: Option<(PathBuf, String)>,
}

impl SandboxProcess {
    /// `cgroup_root` is the fixture tree to read existing cgroups' limits from, if any;
    /// `host_memory` is runsc's cap on the guest (the host's MemTotal).
    fn new(
        id: &str,
        bundle: &str,
        spec: &Value,
        globals: &BTreeMap<String, String>,
        cgroup_root: Option<&Path>,
        host_memory: u64,
    ) -> Result<Self, String> {
        let annotations = &spec["annotations"];
        let cgroups_path = match spec["linux"]["cgroupsPath"].as_str().unwrap_or_default() {
            // runsc gives a sandbox without a path /<id>.
            "" => format!("/{id}"),
            path => path.to_string(),
        };
        // The processes sit in linux.cgroupsPath's cgroup: it is the parent without the
        // annotation, and the sub cgroup runsc joins with it (cgroupfs on v2).
        let own = resolve_cgroup(&cgroups_path);
        let cgroup = match annotations[KNOB_SANDBOX_CGROUP].as_str() {
            Some(text) => format!("{}\n", text.trim_end()),
            None => format!("0::{own}\n"),
        };
        let total = match annotations[KNOB_TOTAL_MEMORY].as_str() {
            Some(knob) => knob.to_string(),
            None => {
                // --total-memory = min(host memory, the limit of the cgroup runsc records: the
                // annotation's when present, else the path's).
                let recorded = annotations[GVISOR_CGROUP_PARENT]
                    .as_str()
                    .map(resolve_cgroup)
                    .unwrap_or_else(|| own.clone());
                let spec_limit = spec["linux"]["resources"]["memory"]["limit"]
                    .as_i64()
                    .filter(|l| *l > 0)
                    .map(|l| l.unsigned_abs());
                let limit = recorded_cgroup_limit(&recorded, spec_limit, cgroup_root)?;
                limit
                    .map_or(host_memory, |l| l.min(host_memory))
                    .to_string()
            }
        };
        // runsc writes the spec's limit into the cgroup it records, when it creates it; the sub
        // cgroup below a named parent gets no resources.
        let new_cgroup = cgroup_root
            .filter(|_| own.starts_with('/'))
            .map(|root| root.join(own.trim_start_matches('/')))
            .filter(|dir| !dir.exists() && dir.parent().is_some_and(Path::is_dir))
            .map(|dir| {
                let spec_limit = spec["linux"]["resources"]["memory"]["limit"].as_i64();
                let limit = match spec_limit.filter(|l| *l > 0) {
                    Some(l) if annotations[GVISOR_CGROUP_PARENT].is_null() => {
                        (l.unsigned_abs() / 4096 * 4096).to_string()
                    }
                    _ => "max".to_string(),
                };
                (dir, limit)
            });
        let mut argv = vec!["runsc-sandbox".to_string()];
        argv.extend(globals.iter().map(|(k, v)| format!("--{k}={v}")));
        argv.extend(["boot", "--bundle", bundle, "--total-memory", &total, id].map(String::from));
        Ok(SandboxProcess {
            cgroup,
            argv,
            new_cgroup,
        })
    }

    /// Creates the new cgroup in the fixture tree, if any, and returns its directory.
    fn create_cgroup(&self) -> Result<Option<&Path>, String> {
        let Some((dir, limit)) = &self.new_cgroup else {
            return Ok(None);
        };
        fs::create_dir(dir)
            .and_then(|()| fs::write(dir.join("memory.max"), format!("{limit}\n")))
            .map_err(|e| format!("fake-runsc: creating the cgroup {}: {e}", dir.display()))?;
        Ok(Some(dir))
    }

    fn write(&self, proc_root: &Path, pid: u32) -> Result<(), String> {
        let dir = proc_root.join(pid.to_string());
        let mut cmdline = self.argv.join("\0");
        cmdline.push('\0');
        fs::create_dir_all(&dir)
            .and_then(|()| fs::write(dir.join("cgroup"), &self.cgroup))
            .and_then(|()| fs::write(dir.join("cmdline"), cmdline))
            .map_err(|e| {
                format!(
                    "fake-runsc: writing the sandbox process {}: {e}",
                    dir.display()
                )
            })
    }

    fn remove(proc_root: &Path, pid: u64) -> Result<(), String> {
        remove_dir(&proc_root.join(pid.to_string()))
    }
}

/// Removes a fixture directory (a fake process, a fake cgroup) that may be gone already.
fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("fake-runsc: removing {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A cgroupfs path as runsc resolves it: an absolute one is under the cgroup root; a relative
/// one is joined to the parent of runsc's own cgroup, which the fake takes to be
/// `/system.slice/containerd.service` (the incident's escape).
fn resolve_cgroup(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/system.slice/{path}")
    }
}

/// runsc 20221219's `MemoryLimit()` of the cgroup it records, None for no limit. A cgroup that
/// exists in the fixture tree keeps its own `memory.max` (runsc 20221219 reads no parent); one
/// that does not is created by runsc with the spec's limit, which the kernel keeps in pages.
fn recorded_cgroup_limit(
    cgroup: &str,
    spec_limit: Option<u64>,
    cgroup_root: Option<&Path>,
) -> Result<Option<u64>, String> {
    let dir = cgroup_root.map(|root| root.join(cgroup.trim_start_matches('/')));
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return Ok(spec_limit.map(|l| l / 4096 * 4096));
    };
    let file = dir.join("memory.max");
    match fs::read_to_string(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("fake-runsc: reading {}: {e}", file.display())),
        Ok(text) if text.trim() == "max" => Ok(None),
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("fake-runsc: {} holds {text:?}", file.display())),
    }
}

/// `MemTotal` from /proc/meminfo, in bytes: what runsc caps the guest at.
fn host_memory() -> Result<u64, String> {
    let meminfo = fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("fake-runsc: reading /proc/meminfo: {e}"))?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| "fake-runsc: no MemTotal in /proc/meminfo".to_string())
}

fn create(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 0)?;
    let bundle = inv
        .flags
        .get("bundle")
        .ok_or("create: --bundle is required")?;
    let pid_file = inv
        .flags
        .get("pid-file")
        .ok_or("create: --pid-file is required")?;
    if ctx.load(id)?.is_some() {
        return Err(format!("container with id {id:?} already exists"));
    }
    let config = Path::new(bundle).join("config.json");
    let text = fs::read_to_string(&config)
        .map_err(|e| format!("reading spec {}: {e}", config.display()))?;
    let spec: Value = serde_json::from_str(&text)
        .map_err(|e| format!("reading spec {}: {e}", config.display()))?;
    let annotations = spec["annotations"].as_object().cloned().unwrap_or_default();
    let rootfs = Path::new(bundle).join(spec["root"]["path"].as_str().unwrap_or("rootfs"));
    if !rootfs.is_dir() {
        return Err(format!("rootfs {} is not a directory", rootfs.display()));
    }
    fail_if_asked(&Value::Object(annotations.clone()), "create")?;

    let joins_sandbox = first_annotation(&annotations, &CONTAINER_TYPE) == Some("container");
    let sandbox_id = first_annotation(&annotations, &SANDBOX_ID).unwrap_or(id);
    // runsc writes the sandbox's pid into every container's pid file.
    let real_process = !joins_sandbox
        && annotations
            .get(KNOB_SANDBOX_PROCESS)
            .and_then(Value::as_str)
            == Some("real");
    let pid = match ctx.load(sandbox_id)? {
        Some(sandbox) if joins_sandbox => sandbox.value["pid"].as_u64().unwrap_or_default() as u32,
        _ if real_process => spawn_sandbox_process(&ctx.state_path_in(id, sandbox_id)?)?,
        _ => fake_pid(id),
    };
    fs::write(pid_file, pid.to_string()).map_err(|e| format!("writing {pid_file}: {e}"))?;
    let mut cgroup_dir = None;
    if let (false, Some(proc_root)) = (joins_sandbox, std::env::var_os(PROC_ROOT_ENV)) {
        let cgroup_root = std::env::var_os(CGROUP_ROOT_ENV).map(PathBuf::from);
        let process = SandboxProcess::new(
            id,
            bundle,
            &spec,
            &inv.globals,
            cgroup_root.as_deref(),
            host_memory()?,
        )?;
        process.write(Path::new(&proc_root), pid)?;
        cgroup_dir = process.create_cgroup()?.map(|d| d.display().to_string());
    }
    let container = Container {
        value: json!({
            "id": id,
            "bundle": bundle,
            "pid": pid,
            "status": "created",
            "role": if joins_sandbox { "container" } else { "sandbox" },
            "sandbox_id": sandbox_id,
            "created_ms": now_ms(),
            "annotations": annotations,
            "globals": inv.globals,
            "cgroup_dir": cgroup_dir,
            "process_pid": if real_process { json!(pid) } else { Value::Null },
            "console_socket": inv.flags.get("console-socket"),
        }),
    };
    ctx.save(&container)?;
    if container.is_sandbox() {
        container.emit_stdout()?;
    }
    Ok(())
}

fn start(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let mut c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("start")?;
    if c.status() != "created" {
        return Err(format!("cannot start container in state {:?}", c.status()));
    }
    c.value["status"] = json!("running");
    c.value["started_ms"] = json!(now_ms());
    ctx.save(&c)?;
    if !c.is_sandbox() {
        c.emit_stdout()?;
    }
    Ok(())
}

fn state(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("state")?;
    let state = json!({
        "ociVersion": "1.0.2-dev",
        "id": c.id(),
        "status": c.status(),
        "pid": c.value["pid"],
        "bundle": c.value["bundle"],
        "annotations": c.value["annotations"],
        "created": rfc3339(c.value["created_ms"].as_u64().unwrap_or_default()),
        "owner": "",
    });
    println!("{state:#}");
    Ok(())
}

/// `runsc wait`, as `Sandbox.Wait` behaves (runsc 20221219 and since): the exit status comes from
/// the sandbox over its control socket, so it is known while the sandbox lives. A sandbox's init
/// that stopped before the call took the sandbox with it (played with a sandbox process only),
/// and a sandbox that died during the call is gone too: runsc, not the sandbox's parent, fails
/// ("exit status is unavailable"). A container
/// joining a sandbox that died fails the same way; one that stopped by itself in a live sandbox
/// tells its status.
fn wait(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 0)?;
    let first = ctx.load_existing(id)?;
    first.check_fail("wait")?;
    let unavailable = || {
        format!(
            "waiting on container {id:?}: sandbox no longer running and its exit status is \
             unavailable"
        )
    };
    // Only a sandbox with a process (KNOB_SANDBOX_PROCESS) plays this: without one, the shim has
    // no sandbox exit to reap, and the status stays known as before.
    if first.is_sandbox() && first.status() == "stopped" && first.has_process() {
        return Err(unavailable());
    }
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let c = ctx.load_existing(id)?;
        if c.status() == "stopped" {
            if c.died_with_sandbox() {
                return Err(unavailable());
            }
            let status = c.value["exit_status"].as_u64().unwrap_or_default();
            println!("{}", json!({"id": id, "exitStatus": status}));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("fake-runsc: gave up waiting for {id:?}"));
        }
        std::thread::sleep(POLL);
    }
}

fn kill(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 1)?;
    let signal = parse_signal(&inv.args[1])?;
    let mut c = ctx.load_existing(id)?;
    c.check_fail("kill")?;
    if c.status() == "stopped" {
        return Err("sandbox is not running".to_string());
    }
    if c.status() == "paused" {
        return Err(format!(
            "cannot signal container {:?} in state paused",
            c.id()
        ));
    }
    if let Some(pid) = inv.flags.get("pid") {
        return exec::kill_pid(pid, signal);
    }
    // runsc signals only running or stopped containers (container.SignalContainer, in 20221219
    // and after).
    if c.status() == "created" {
        return Err(format!(
            "cannot signal container {:?} in state created",
            c.id()
        ));
    }
    if signal != 0 {
        c.stop(128 + signal, now_ms());
        ctx.save(&c)?;
    }
    Ok(())
}

fn delete(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let id = one_id(inv, 0)?;
    let force = inv.flags.get("force").is_some_and(|v| v != "false");
    let resolved = ctx.resolve(id)?;
    let Some(c) = resolved
        .as_deref()
        .map(|full| ctx.load(full))
        .transpose()?
        .flatten()
    else {
        return if force {
            Ok(())
        } else {
            Err(format!("container {id:?} does not exist"))
        };
    };
    c.check_fail("delete")?;
    if !force && !matches!(c.status(), "created" | "stopped") {
        return Err("cannot delete container that is not stopped without --force flag".into());
    }
    if let (true, Some(proc_root)) = (c.is_sandbox(), std::env::var_os(PROC_ROOT_ENV)) {
        SandboxProcess::remove(
            Path::new(&proc_root),
            c.value["pid"].as_u64().unwrap_or_default(),
        )?;
    }
    // runsc removes the cgroup it created.
    if let Some(dir) = c.value["cgroup_dir"].as_str() {
        remove_dir(Path::new(dir))?;
    }
    let path = ctx.state_path(c.id())?;
    fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))
}

/// `runsc events --stats <id>`: one stats event; like runsc, only for a container that is not
/// stopped. Without `--stats` runsc would stream events; the fake has none to stream.
fn events(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("events")?;
    if inv.flags.get("stats").is_none_or(|v| v == "false") {
        return Err("fake-runsc: events without --stats is not played".into());
    }
    if c.status() == "stopped" {
        return Err(format!(
            "cannot get events for container {:?} in state stopped",
            c.id()
        ));
    }
    let event = json!({
        "type": "stats",
        "id": c.id(),
        "data": {
            "cpu": {"usage": {"kernel": EVENT_CPU_NS / 7 * 2, "user": EVENT_CPU_NS / 7 * 5,
                              "total": EVENT_CPU_NS, "percpu": [EVENT_CPU_NS]}},
            "memory": {"usage": {"limit": 0, "usage": EVENT_MEMORY_USAGE, "failcnt": 0},
                       "swap": {"limit": 0, "failcnt": 0}},
            "pids": {"current": EVENT_PIDS},
        },
    });
    println!("{event}");
    Ok(())
}

/// `runsc list [--quiet]`: every container in the root, in id order.
fn list(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    if !inv.args.is_empty() {
        return Err(format!("list: unexpected arguments {:?}", inv.args));
    }
    let ids = ctx.ids()?;
    if inv.flags.get("quiet").is_some_and(|v| v != "false") {
        for id in ids {
            println!("{id}");
        }
        return Ok(());
    }
    println!("ID   PID   STATUS   BUNDLE   CREATED   OWNER");
    for id in ids {
        if let Some(c) = ctx.load(&id)? {
            println!(
                "{id}   {}   {}   {}   -   ",
                c.value["pid"],
                c.status(),
                c.str("bundle")
            );
        }
    }
    Ok(())
}

fn ps(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("ps")?;
    match inv.flags.get("format").map(String::as_str) {
        Some("json") => println!("[1]"),
        None | Some("table") => {
            println!("UID  PID  PPID  C  STIME  TIME  CMD\n0    1    0     0  00:00  0s    fake")
        }
        Some(other) => return Err(format!("ps: unsupported format {other:?}")),
    }
    Ok(())
}

/// `runsc pause` / `runsc resume`: a running container becomes paused and back (runsc's
/// `Container.Pause` and `Resume` require exactly that state).
fn pause_resume(ctx: &Ctx, inv: &Invocation, pause: bool) -> Result<(), String> {
    let mut c = ctx.load_existing(one_id(inv, 0)?)?;
    let command = if pause { "pause" } else { "resume" };
    c.check_fail(command)?;
    let (from, to) = if pause {
        ("running", "paused")
    } else {
        ("paused", "running")
    };
    if c.status() != from {
        return Err(format!(
            "cannot {command} container {:?} in state {}",
            c.id(),
            c.status()
        ));
    }
    c.value["status"] = json!(to);
    ctx.save(&c)?;
    Ok(())
}

/// `runsc update --resources=- <id>` (release-20260202.0 and later): the LinuxResources JSON on
/// stdin, kept in the state as `resources` so a test can read what runsc was given.
fn update(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let mut c = ctx.load_existing(one_id(inv, 0)?)?;
    c.check_fail("update")?;
    if inv.flags.get("resources").map(String::as_str) != Some("-") {
        return Err("update: only --resources=- is played".to_string());
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| format!("update: reading stdin: {e}"))?;
    let resources: Value =
        serde_json::from_str(&text).map_err(|e| format!("update: resources are not JSON: {e}"))?;
    if c.status() != "running" && c.status() != "paused" {
        return Err(format!(
            "cannot update container {:?} in state {}",
            c.id(),
            c.status()
        ));
    }
    c.value["resources"] = resources;
    ctx.save(&c)?;
    Ok(())
}

fn run(ctx: &Ctx, inv: &Invocation) -> Result<(), String> {
    let Some(command) = inv.command.as_deref() else {
        return Err("fake-runsc: no subcommand".to_string());
    };
    ctx.root()?;
    match command {
        "create" => create(ctx, inv),
        "start" => start(ctx, inv),
        "state" => state(ctx, inv),
        "wait" => wait(ctx, inv),
        "kill" => kill(ctx, inv),
        "delete" => delete(ctx, inv),
        "ps" => ps(ctx, inv),
        "list" => list(ctx, inv),
        "exec" => match exec::exec(ctx, inv)? {
            exec::Outcome::Detached => Ok(()),
            exec::Outcome::Exited(code) => std::process::exit(code),
        },
        "events" => events(ctx, inv),
        "pause" => pause_resume(ctx, inv, true),
        "resume" => pause_resume(ctx, inv, false),
        "update" => update(ctx, inv),
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

/// Starts the process standing for `runsc-sandbox`: fake-runsc itself, following the state file.
/// It is not waited for: when this `create` exits, it is an orphan of the shim, like a real one.
fn spawn_sandbox_process(state: &Path) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| format!("fake-runsc: own path: {e}"))?;
    let child = std::process::Command::new(exe)
        .arg("sandbox-process")
        .arg(state)
        .env(SANDBOX_PROCESS_ENV, state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("fake-runsc: starting the sandbox process: {e}"))?;
    Ok(child.id())
}

/// The sandbox process: exits with its init's status once that stops, 137 once the container's
/// state is deleted (runsc delete kills the sandbox). Its state is written by `create` after it
/// starts, so it waits for the file to appear first.
fn sandbox_process(state: &Path) -> ExitCode {
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut seen = false;
    while Instant::now() < deadline {
        match fs::read_to_string(state) {
            Ok(text) => {
                seen = true;
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    let mut c = Container { value };
                    c.value["process_pid"] = Value::Null;
                    c.settle();
                    if c.status() == "stopped" {
                        let code = c.value["exit_status"].as_u64().unwrap_or(137);
                        return ExitCode::from(code.min(255) as u8);
                    }
                }
            }
            Err(_) if seen => return ExitCode::from(137),
            // The create that started it failed before writing the state.
            Err(_) if Instant::now() + WAIT_LIMIT > deadline + Duration::from_secs(5) => {
                return ExitCode::from(137)
            }
            Err(_) => {}
        }
        std::thread::sleep(POLL);
    }
    ExitCode::from(137)
}

/// Whether a process exists and is not a zombie.
fn is_alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

fn main() -> ExitCode {
    if let Some(state) = std::env::var_os(SANDBOX_PROCESS_ENV) {
        return sandbox_process(Path::new(&state));
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let inv = parse(&argv);
    let globals = inv.as_ref().map(|i| &i.globals);
    let ctx = Ctx {
        root: globals.ok().and_then(|g| g.get("root")).map(PathBuf::from),
        log: globals.ok().and_then(|g| g.get("log")).map(PathBuf::from),
    };
    if std::env::var_os(exec::EXEC_CHILD_ENV).is_none() {
        ctx.record(&argv);
    }
    let result = inv.and_then(|inv| {
        if inv.version {
            if let Some(calls) = std::env::var_os(VERSION_CALLS_ENV) {
                let ppid = std::os::unix::process::parent_id();
                if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(calls) {
                    let _ = f.write_all(format!("{ppid}\n").as_bytes());
                }
            }
            let version =
                std::env::var(VERSION_ENV).unwrap_or_else(|_| DEFAULT_VERSION.to_string());
            println!("{version}");
            return Ok(());
        }
        ctx.log_line("info", &format!("fake-runsc {}", argv.join(" ")));
        run(&ctx, &inv)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            ctx.log_line("error", &msg);
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn globals_in_both_forms_then_subcommand() {
        let inv = parse(&args(
            "--root=/r --log /b/log.json -log-format=json --debug --platform ptrace \
             create --bundle /b --pid-file=/b/init.pid c1",
        ))
        .unwrap();
        assert_eq!(inv.globals["root"], "/r");
        assert_eq!(inv.globals["log"], "/b/log.json");
        assert_eq!(inv.globals["log-format"], "json");
        assert_eq!(inv.globals["debug"], "true");
        assert_eq!(inv.globals["platform"], "ptrace");
        assert_eq!(inv.command.as_deref(), Some("create"));
        assert_eq!(inv.flags["bundle"], "/b");
        assert_eq!(inv.flags["pid-file"], "/b/init.pid");
        assert_eq!(inv.args, ["c1"]);
    }

    #[test]
    fn an_unknown_flag_before_a_subcommand_is_a_boolean() {
        let inv = parse(&args("--root=/r --some-new-flag state c1")).unwrap();
        assert_eq!(inv.globals["some-new-flag"], "true");
        assert_eq!(inv.command.as_deref(), Some("state"));
    }

    #[test]
    fn boolean_subcommand_flags_take_no_value() {
        let inv = parse(&args("--root=/r kill --all c1 9")).unwrap();
        assert_eq!(inv.flags["all"], "true");
        assert_eq!(inv.args, ["c1", "9"]);
        let inv = parse(&args("--root=/r delete --force c1")).unwrap();
        assert_eq!(inv.flags["force"], "true");
        assert_eq!(inv.args, ["c1"]);
    }

    #[test]
    fn flags_stop_at_the_first_argument() {
        let inv = parse(&args("--root=/r kill c1 9 --all")).unwrap();
        assert!(!inv.flags.contains_key("all"));
        assert_eq!(inv.args, ["c1", "9", "--all"]);
    }

    #[test]
    fn unknown_subcommand_flags_and_subcommands_are_errors() {
        let err = parse(&args("--root=/r create --pidfile /x c1")).unwrap_err();
        assert!(err.contains("-pidfile"), "{err}");
        let err = parse(&args("--root=/r frobnicate c1")).unwrap_err();
        assert!(err.contains("frobnicate"), "{err}");
    }

    #[test]
    fn version_in_either_form() {
        assert!(parse(&args("--version")).unwrap().version);
        assert!(parse(&args("-version")).unwrap().version);
        assert!(parse(&args("--root=/r --version")).unwrap().version);
    }

    #[test]
    fn signals_by_number_or_name() {
        assert_eq!(parse_signal("15"), Ok(15));
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert!(parse_signal("99").is_err());
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn fake_pids_are_above_any_pid_max() {
        for id in ["a", "c1", "a-much-longer-container-id-0123456789abcdef"] {
            let pid = fake_pid(id);
            assert!((FAKE_PID_BASE..0x5000_0000).contains(&pid), "{pid:#x}");
            assert!(i32::try_from(pid).is_ok());
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }

    /// A fixture cgroup tree in a fresh temp directory, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str, files: &[(&str, &str)]) -> Tree {
            let dir = std::env::temp_dir().join(format!(
                "fake-runsc-{name}-{}-{}",
                std::process::id(),
                now_ms()
            ));
            for (path, text) in files {
                let file = dir.join(path);
                fs::create_dir_all(file.parent().unwrap()).unwrap();
                fs::write(file, text).unwrap();
            }
            Tree(dir)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const POD: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice";
    const GIB: u64 = 1 << 30;

    fn sandbox(spec: Value, tree: Option<&Tree>) -> SandboxProcess {
        let globals = BTreeMap::from([("root".to_string(), "/r".to_string())]);
        let root = tree.map(|t| t.0.as_path());
        SandboxProcess::new("s1", "/b", &spec, &globals, root, 16 * GIB).unwrap()
    }

    fn total_memory(p: &SandboxProcess) -> &str {
        let i = p.argv.iter().position(|a| a == "--total-memory").unwrap();
        &p.argv[i + 1]
    }

    #[test]
    fn a_sandbox_under_the_pod_parent_is_sized_by_the_pod() {
        let tree = Tree::new(
            "parent",
            &[(&format!("{}/memory.max", &POD[1..]), "268435456\n")],
        );
        let leaf = format!("{POD}/cri-containerd-s1.scope");
        let spec = json!({
            "linux": {"cgroupsPath": leaf},
            "annotations": {GVISOR_CGROUP_PARENT: POD},
        });
        let p = sandbox(spec, Some(&tree));
        assert_eq!(p.cgroup, format!("0::{leaf}\n"));
        assert_eq!(
            p.argv,
            [
                "runsc-sandbox",
                "--root=/r",
                "boot",
                "--bundle",
                "/b",
                "--total-memory",
                "268435456",
                "s1"
            ]
        );
    }

    #[test]
    fn a_new_leaf_takes_the_spec_limit_and_an_unlimited_cgroup_the_host_memory() {
        let leaf = format!("{POD}/cri-containerd-s1.scope");
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": 268435457_u64}}}});
        assert_eq!(total_memory(&sandbox(spec, None)), "268435456");
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": 64 * GIB}}}});
        assert_eq!(total_memory(&sandbox(spec, None)), (16 * GIB).to_string());

        // An existing cgroup keeps its own limit ("max"), whatever the spec says.
        let tree = Tree::new("max", &[(&format!("{}/memory.max", &POD[1..]), "max\n")]);
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": GIB}}},
                          "annotations": {GVISOR_CGROUP_PARENT: POD}});
        assert_eq!(
            total_memory(&sandbox(spec, Some(&tree))),
            (16 * GIB).to_string()
        );
    }

    #[test]
    fn a_relative_path_escapes_and_an_empty_one_is_the_id() {
        let spec =
            json!({"linux": {"cgroupsPath": "kubepods-burstable-podu1.slice:cri-containerd:s1"}});
        let p = sandbox(spec, None);
        assert_eq!(
            p.cgroup,
            "0::/system.slice/kubepods-burstable-podu1.slice:cri-containerd:s1\n"
        );
        assert_eq!(total_memory(&p), (16 * GIB).to_string());
        assert_eq!(sandbox(json!({}), None).cgroup, "0::/s1\n");
    }

    #[test]
    fn knobs_override_the_cgroup_and_the_total_memory() {
        let spec = json!({
            "linux": {"cgroupsPath": format!("{POD}/cri-containerd-s1.scope")},
            "annotations": {KNOB_SANDBOX_CGROUP: "0::/system.slice/escaped",
                            KNOB_TOTAL_MEMORY: "12345"},
        });
        let p = sandbox(spec, None);
        assert_eq!(p.cgroup, "0::/system.slice/escaped\n");
        assert_eq!(total_memory(&p), "12345");
    }

    #[test]
    fn runsc_creates_a_missing_leaf_with_the_spec_limit_unless_a_parent_is_named() {
        let tree = Tree::new("leaf", &[(&format!("{}/memory.max", &POD[1..]), "max\n")]);
        let leaf = format!("{POD}/cri-containerd-s1.scope");
        let dir = tree.0.join(&leaf[1..]);
        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": 268435457_u64}}}});
        let p = sandbox(spec.clone(), Some(&tree));
        assert_eq!(p.new_cgroup, Some((dir.clone(), "268435456".to_string())));
        assert_eq!(p.create_cgroup().unwrap(), Some(dir.as_path()));
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            "268435456\n"
        );
        // Now it exists: runsc would not create it again.
        assert_eq!(sandbox(spec, Some(&tree)).new_cgroup, None);
        remove_dir(&dir).unwrap();

        let spec = json!({"linux": {"cgroupsPath": leaf,
                                    "resources": {"memory": {"limit": GIB}}},
                          "annotations": {GVISOR_CGROUP_PARENT: POD}});
        let p = sandbox(spec, Some(&tree));
        assert_eq!(p.new_cgroup, Some((dir, "max".to_string())));

        // Not in the tree's reach: nothing is made.
        let spec = json!({"linux": {"cgroupsPath": "/elsewhere/deep/leaf"}});
        assert_eq!(sandbox(spec, Some(&tree)).new_cgroup, None);
        let spec = json!({"linux": {"cgroupsPath": "relative:path:s1"}});
        assert_eq!(sandbox(spec, Some(&tree)).new_cgroup, None);
    }

    #[test]
    fn the_process_is_written_and_removed() {
        let proc_root = Tree::new("proc", &[]);
        let p = sandbox(json!({}), None);
        p.write(&proc_root.0, 7).unwrap();
        let dir = proc_root.0.join("7");
        assert_eq!(fs::read_to_string(dir.join("cgroup")).unwrap(), "0::/s1\n");
        let cmdline = fs::read(dir.join("cmdline")).unwrap();
        assert!(cmdline.starts_with(b"runsc-sandbox\0--root=/r\0boot\0"));
        assert!(cmdline.ends_with(b"\0s1\0"));
        SandboxProcess::remove(&proc_root.0, 7).unwrap();
        assert!(!dir.exists());
        SandboxProcess::remove(&proc_root.0, 7).unwrap();
    }

    #[test]
    fn ids_resolve_by_prefix_as_runsc_resolves_them() {
        let root = Tree::new(
            "ids",
            &[
                ("web_sandbox:web.state", "{}"),
                ("web-sidecar_sandbox:web-sidecar.state", "{}"),
                ("db_sandbox:db.state", "{}"),
                ("calls.jsonl", ""),
            ],
        );
        let ctx = Ctx {
            root: Some(root.0.clone()),
            log: None,
        };
        assert_eq!(ctx.ids().unwrap(), ["db", "web", "web-sidecar"]);
        let err = ctx.resolve("web").unwrap_err();
        assert!(err.contains("ambiguous"), "{err}");
        assert_eq!(ctx.resolve("d").unwrap().as_deref(), Some("db"));
        assert_eq!(ctx.resolve("cache").unwrap(), None);
        fs::remove_file(root.0.join("web_sandbox:web.state")).unwrap();
        // The danger: the id of a container that is gone names another one.
        assert_eq!(ctx.resolve("web").unwrap().as_deref(), Some("web-sidecar"));
    }

    #[test]
    fn fail_knob_lists_subcommands() {
        let a = json!({KNOB_FAIL: "start, kill", KNOB_FAIL_MESSAGE: "boom"});
        assert_eq!(fail_if_asked(&a, "kill"), Err("boom".to_string()));
        assert_eq!(fail_if_asked(&a, "create"), Ok(()));
        let a = json!({KNOB_FAIL: "create"});
        assert!(fail_if_asked(&a, "create").unwrap_err().contains("create"));
    }
}
