//! The harness of the shim's integration tests: a mock containerd (the ttrpc events service the
//! shim publishes to), bundles, runsc.toml, the real `containerd-shim-runsc-v1` driven through
//! `start` and ttrpc like containerd drives it, against `fake-runsc` (tests/fake-runsc), and the
//! check that nothing is left behind.
//!
//! Every test gets its own temp directory and containerd namespace, so tests run in parallel
//! without sharing a socket, a runsc root or a mount. Every wait is bounded by [`TIMEOUT`]; the
//! sync points are published events and recorded runsc calls, never bare sleeps.
//!
//! The tests need root (they mount the rootfs and the shim listens under /run/containerd/s). As
//! any other user each test prints "skipped: needs root" and returns: see [`skip_unless_root`].

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, ForwardRequest, KillRequest, Mount, PidsRequest, PidsResponse,
    ShutdownRequest, StartRequest, StartResponse, StateRequest, StateResponse, WaitRequest,
    WaitResponse,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{MessageField, MessageFull};
use containerd_shim_protos::shim_async::{create_events, Client, Events, TaskClient};
use containerd_shim_protos::ttrpc;
use containerd_shim_protos::ttrpc::asynchronous::{Server, TtrpcContext};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// The bound on every wait: generous, the CI machine has 2 cores and runs tests in parallel.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The runtime type containerd knows the shim by.
pub const RUNTIME_ID: &str = "io.containerd.runsc.v1";
/// The TypeUrl runsc.toml options carry.
pub const RUNSC_OPTIONS_TYPE_URL: &str = "io.containerd.runsc.v1.options";
/// runsc's default root; the shim appends the namespace.
pub const DEFAULT_RUNSC_ROOT: &str = "/run/containerd/runsc";

pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const SANDBOX_LOG_DIRECTORY: &str = "io.kubernetes.cri.sandbox-log-directory";

/// fake-runsc's knobs (see tests/fake-runsc/src/main.rs).
pub const KNOB_EXIT_CODE: &str = "dev.runsc-guard.test/exit-code";
pub const KNOB_RUN_MS: &str = "dev.runsc-guard.test/run-ms";
pub const KNOB_FAIL: &str = "dev.runsc-guard.test/fail";
pub const KNOB_FAIL_MESSAGE: &str = "dev.runsc-guard.test/fail-message";
pub const KNOB_STDOUT: &str = "dev.runsc-guard.test/stdout";
pub const KNOB_SANDBOX_CGROUP: &str = "dev.runsc-guard.test/sandbox-cgroup";
pub const KNOB_TOTAL_MEMORY: &str = "dev.runsc-guard.test/total-memory";

/// fake-runsc writes pids from here up, above any pid_max.
pub const FAKE_PID_BASE: u32 = 0x4000_0000;

pub const TOPIC_CREATE: &str = "/tasks/create";
pub const TOPIC_START: &str = "/tasks/start";
pub const TOPIC_EXIT: &str = "/tasks/exit";
pub const TOPIC_DELETE: &str = "/tasks/delete";

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

pub fn shim_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-runsc-v1"))
}

/// fake-runsc, built by `cargo build --workspace` next to the shim.
pub fn fake_runsc() -> PathBuf {
    let shim = shim_binary();
    let fake = shim
        .parent()
        .expect("the shim binary is in a directory")
        .join("fake-runsc");
    assert!(
        fake.is_file(),
        "{} is missing: run `cargo build --workspace` first (the integration tests drive the \
         shim against this fake runsc)",
        fake.display()
    );
    fake
}

/// A containerd stand-in for one test: a temp directory, a namespace, the events service.
pub struct TestEnv {
    pub name: String,
    pub namespace: String,
    /// Canonical path of the temp directory everything of this test lives in.
    pub root: PathBuf,
    /// Where fake-runsc keeps its state for this namespace (`<runsc root>/<namespace>`).
    pub runsc_state: PathBuf,
    /// containerd's (fictitious) gRPC address, passed as `-address`.
    pub containerd_address: PathBuf,
    /// The mock containerd ttrpc socket (TTRPC_ADDRESS).
    pub events_socket: PathBuf,
    events: Arc<EventLog>,
    server: Server,
    shims: Mutex<Vec<ShimTrace>>,
    /// Directories outside `root` this test made the shim write to (the default runsc root).
    outside: Mutex<Vec<PathBuf>>,
    _dir: TempDir,
}

/// What is needed to check that a shim is gone.
#[derive(Debug, Clone)]
pub struct ShimTrace {
    pub id: String,
    pub pid: i32,
    pub socket: PathBuf,
    pub bundle: PathBuf,
}

impl TestEnv {
    pub async fn new(name: &str) -> TestEnv {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::Builder::new()
            .prefix(&format!("rg-{name}-"))
            .tempdir()
            .expect("creating the test's temp dir");
        let root = fs::canonicalize(dir.path()).expect("canonical temp dir");
        let namespace = format!(
            "rg-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let events_socket = root.join("containerd.sock.ttrpc");
        let events = Arc::new(EventLog::default());
        let mut server = Server::new()
            .bind(&format!("unix://{}", events_socket.display()))
            .expect("binding the mock events service")
            .register_service(create_events(events.clone()));
        server
            .start()
            .await
            .expect("starting the mock events service");
        TestEnv {
            name: name.to_string(),
            runsc_state: root.join("runsc-root").join(&namespace),
            containerd_address: root.join("containerd.sock"),
            events_socket,
            namespace,
            root,
            events,
            server,
            shims: Mutex::new(Vec::new()),
            outside: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }

    /// A path inside the test's temp directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The runsc root a runsc.toml from [`Self::write_runsc_toml`] names.
    pub fn runsc_root(&self) -> PathBuf {
        self.root.join("runsc-root")
    }

    /// For a test that runs the shim without options: runsc's state is then under the default
    /// root. Registered for removal.
    pub fn use_default_runsc_root(&mut self) {
        self.runsc_state = Path::new(DEFAULT_RUNSC_ROOT).join(&self.namespace);
        self.outside.lock().unwrap().push(self.runsc_state.clone());
    }

    /// A directory holding `runsc`, a link to fake-runsc, and the PATH that finds it first.
    pub fn path_with_fake_runsc(&self) -> OsString {
        let bin = self.path("bin");
        fs::create_dir_all(&bin).unwrap();
        let link = bin.join("runsc");
        if !link.exists() {
            symlink(fake_runsc(), &link).unwrap();
        }
        let mut path = OsString::from(&bin);
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        path
    }

    /// Writes a runsc.toml naming fake-runsc and the test's runsc root, then `extra` (TOML).
    pub fn write_runsc_toml(&self, extra: &str) -> PathBuf {
        let text = format!(
            "binary_name = {:?}\nroot = {:?}\n{extra}\n",
            fake_runsc().display().to_string(),
            self.runsc_root().display().to_string()
        );
        self.write_file("runsc.toml", &text)
    }

    pub fn write_file(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
        path
    }

    /// The runtime options CRI sends for a runsc.toml.
    pub fn options(&self, config_path: &Path) -> Any {
        runsc_guard::options::encode_cri_options(
            RUNSC_OPTIONS_TYPE_URL,
            &config_path.display().to_string(),
            b"",
        )
    }

    pub fn bundle(&self, id: &str) -> BundleBuilder<'_> {
        BundleBuilder {
            env: self,
            id: id.to_string(),
            annotations: BTreeMap::new(),
            cgroups_path: None,
            stdout: false,
            config_json: None,
        }
    }

    /// The shim's command line as containerd builds it (`-namespace -address -publish-binary
    /// -id`), run in the bundle with TTRPC_ADDRESS set.
    pub fn shim_command(&self, bundle: &Bundle) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(shim_binary());
        // The guard reads a cgroup tree: by default an empty v2 tree of the test's own, so no
        // test ever depends on (or reads) the host's /sys/fs/cgroup. Tests that need pods pass
        // their fixture tree in the environment, which overrides this.
        cmd.current_dir(&bundle.path)
            .env("TTRPC_ADDRESS", &self.events_socket)
            .env("RUNSC_GUARD_CGROUP_ROOT", self.empty_cgroup_tree())
            .arg("-namespace")
            .arg(&self.namespace)
            .arg("-address")
            .arg(&self.containerd_address)
            .arg("-publish-binary")
            .arg(self.path("containerd"))
            .arg("-id")
            .arg(&bundle.id);
        cmd
    }

    /// An empty cgroup v2 tree (just `cgroup.controllers`) inside the test's temp directory.
    pub fn empty_cgroup_tree(&self) -> PathBuf {
        let dir = self.path("empty-cgroup-tree");
        fs::create_dir_all(&dir).expect("creating the empty cgroup tree");
        fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n")
            .expect("writing cgroup.controllers");
        dir
    }

    /// Runs `containerd-shim-runsc-v1 ... start` in the bundle and connects to the daemon.
    pub async fn start_shim(&self, bundle: &Bundle) -> Shim {
        self.start_shim_with(bundle, &[], &[]).await
    }

    /// Same, with more environment and more flags (such as containerd's `-debug`).
    pub async fn start_shim_with(
        &self,
        bundle: &Bundle,
        vars: &[(&str, OsString)],
        flags: &[&str],
    ) -> Shim {
        let mut cmd = self.shim_command(bundle);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.args(flags).arg("start");
        let out = run_bounded(cmd, "containerd-shim-runsc-v1 start").await;
        let address = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "start failed ({}): stdout {address:?}, stderr {:?}\nshim log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            bundle.shim_log()
        );
        let socket = address
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("start printed {address:?}, not a unix:// address"));
        assert!(
            socket.starts_with("/run/containerd/s/"),
            "start printed {address:?}, not an address under /run/containerd/s/"
        );
        let written = fs::read_to_string(bundle.path.join("address"))
            .expect("start writes `address` into the bundle");
        assert_eq!(written, address, "`address` in the bundle");
        let pid_text = fs::read_to_string(bundle.path.join("shim.pid"))
            .expect("start writes `shim.pid` into the bundle");
        let pid: i32 = pid_text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("shim.pid holds {pid_text:?}, not a pid"));
        let trace = ShimTrace {
            id: bundle.id.clone(),
            pid,
            socket: PathBuf::from(socket),
            bundle: bundle.path.clone(),
        };
        self.shims.lock().unwrap().push(trace.clone());
        assert!(
            process_is_ours(pid, &self.namespace),
            "the shim daemon (pid {pid} from shim.pid) is not running\nshim log:\n{}",
            bundle.shim_log()
        );
        let client = Client::connect(&address).await.unwrap_or_else(|e| {
            panic!(
                "connecting to the shim at {address}: {e:?}\nshim log:\n{}",
                bundle.shim_log()
            )
        });
        Shim {
            trace,
            address,
            client: TaskClient::new(client),
            log: bundle.path.join("log"),
        }
    }

    /// Runs `containerd-shim-runsc-v1 ... -bundle B delete` in the bundle (what containerd runs
    /// after a shim died) and returns its output.
    pub async fn run_delete_action(&self, bundle: &Bundle, vars: &[(&str, OsString)]) -> Output {
        let mut cmd = self.shim_command(bundle);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.arg("-bundle").arg(&bundle.path).arg("delete");
        run_bounded(cmd, "containerd-shim-runsc-v1 delete").await
    }

    /// Every runsc command line fake-runsc recorded for this namespace, in order.
    pub fn calls(&self) -> Vec<Vec<String>> {
        let path = self.runsc_state.join("calls.jsonl");
        let Ok(text) = fs::read_to_string(&path) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", path.display()));
                v["argv"]
                    .as_array()
                    .expect("argv is an array")
                    .iter()
                    .map(|a| a.as_str().expect("argv holds strings").to_string())
                    .collect()
            })
            .collect()
    }

    /// The global flags the shim puts before every sub-command for this bundle.
    /// Waits until runsc has been called with `sub` (e.g. the `wait` the shim runs after Start):
    /// the sync point for anything that counts calls afterwards.
    pub async fn await_call(&self, sub: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.calls().iter().any(|c| c.iter().any(|a| a == sub)) {
            assert!(Instant::now() < deadline, "runsc {sub} was never called");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn global_flags(&self, bundle: &Bundle) -> Vec<String> {
        vec![
            format!("--root={}", self.runsc_state.display()),
            format!("--log={}", bundle.path.join("log.json").display()),
            "--log-format=json".to_string(),
        ]
    }

    /// A full expected command line: global flags, then `rest`.
    pub fn argv(&self, bundle: &Bundle, rest: &[&str]) -> Vec<String> {
        let mut argv = self.global_flags(bundle);
        argv.extend(rest.iter().map(|s| s.to_string()));
        argv
    }

    /// `runsc <globals> <flags> create --bundle B --pid-file B/init.pid <id>`: the create the
    /// shim runs for a bundle without a log directory, `flags` being what the guard adds.
    pub fn create_argv(&self, bundle: &Bundle, flags: &[&str]) -> Vec<String> {
        let b = bundle.path.display().to_string();
        let pid_file = bundle.path.join("init.pid").display().to_string();
        let mut rest = flags.to_vec();
        rest.extend([
            "create",
            "--bundle",
            &b,
            "--pid-file",
            &pid_file,
            &bundle.id,
        ]);
        self.argv(bundle, &rest)
    }

    /// Command lines for failure messages, one a line, the temp directory shown as $TMP.
    pub fn show(&self, calls: &[Vec<String>]) -> String {
        let tmp = self.root.display().to_string();
        calls
            .iter()
            .map(|c| format!("  runsc {}", c.join(" ").replace(&tmp, "$TMP")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every event published so far.
    pub fn events(&self) -> Vec<Published> {
        self.events.events.lock().unwrap().clone()
    }

    pub fn topics(&self) -> Vec<String> {
        self.events().into_iter().map(|e| e.topic).collect()
    }

    /// Waits (bounded) for the first event on `topic` about container `id`, and decodes it.
    pub async fn event<M: MessageFull>(&self, topic: &str, id: &str) -> M {
        let mut changed = self.events.changed.subscribe();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let found = self.events().into_iter().find_map(|e| {
                if e.topic != topic {
                    return None;
                }
                let m: M = e.decode();
                (container_id_of(&e) == id).then_some(m)
            });
            if let Some(m) = found {
                return m;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, changed.changed()).await.is_err() {
                panic!(
                    "no {topic} event for {id} within {TIMEOUT:?}; published: {:?}",
                    self.topics()
                );
            }
        }
    }

    /// Waits (bounded) until nothing of this test is left, else fails naming what is left:
    /// every shim started is gone with its socket, nothing is mounted under the test's
    /// directory, runsc holds no container state, no process of this test runs.
    pub async fn assert_nothing_left(&self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!("left behind after {TIMEOUT:?}:\n  {}", left.join("\n  "));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What a failed Create must not leave, checked at once: mounts, runsc state.
    pub fn assert_no_mounts_or_runsc_state(&self) {
        let mut left = self.mounts_left();
        left.extend(self.runsc_state_left());
        assert!(left.is_empty(), "left behind:\n  {}", left.join("\n  "));
    }

    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for shim in self.shims.lock().unwrap().iter() {
            if process_is_ours(shim.pid, &self.namespace) {
                left.push(format!("shim {} (pid {}) still runs", shim.id, shim.pid));
            }
            if shim.socket.exists() {
                left.push(format!(
                    "shim {} socket {} exists",
                    shim.id,
                    shim.socket.display()
                ));
            }
        }
        left.extend(self.mounts_left());
        left.extend(self.runsc_state_left());
        for (pid, cmdline) in processes_mentioning(&self.namespace) {
            left.push(format!("process {pid} still runs: {cmdline}"));
        }
        left
    }

    fn mounts_left(&self) -> Vec<String> {
        mount_points_under(&self.root)
            .into_iter()
            .map(|m| format!("{} is mounted", m.display()))
            .collect()
    }

    fn runsc_state_left(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.runsc_state) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != "calls.jsonl")
            .map(|e| format!("runsc state {} exists", e.path().display()))
            .collect()
    }
}

impl Drop for TestEnv {
    /// Best effort, so a failed test does not leave its mess to the next: ends the processes of
    /// this test (found by its namespace in their command line), unmounts what is mounted under
    /// its directory, removes the sockets of its shims and what it wrote outside its directory.
    fn drop(&mut self) {
        for (pid, _) in processes_mentioning(&self.namespace) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let mut mounts = mount_points_under(&self.root);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        for shim in self.shims.lock().unwrap().iter() {
            let _ = fs::remove_file(&shim.socket);
        }
        for dir in self.outside.lock().unwrap().iter() {
            let _ = fs::remove_dir_all(dir);
            // The default root itself only if this test was the one to create it.
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
    }
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

/// A bundle as containerd lays it out: config.json, an empty `rootfs` directory, the `log` the
/// shim writes to (a plain file here, a fifo under containerd), plus a directory the test's
/// rootfs mount comes from.
pub struct Bundle {
    pub id: String,
    pub path: PathBuf,
    /// Source of the rootfs bind mount; holds a file named `marker`.
    pub rootfs_source: PathBuf,
    /// The stdout fifo, when the bundle has one.
    pub stdout: Option<PathBuf>,
}

pub struct BundleBuilder<'a> {
    env: &'a TestEnv,
    id: String,
    annotations: BTreeMap<String, String>,
    cgroups_path: Option<String>,
    stdout: bool,
    config_json: Option<String>,
}

impl BundleBuilder<'_> {
    pub fn annotation(mut self, key: &str, value: impl Into<String>) -> Self {
        self.annotations.insert(key.to_string(), value.into());
        self
    }

    /// Sets `linux.cgroupsPath` (absent by default, as ctr leaves it).
    pub fn cgroups_path(mut self, path: &str) -> Self {
        self.cgroups_path = Some(path.to_string());
        self
    }

    /// Gives the container a stdout fifo (open it with [`Bundle::open_stdout`]).
    pub fn with_stdout(mut self) -> Self {
        self.stdout = true;
        self
    }

    /// Writes this text as config.json instead of a valid spec.
    pub fn config_json(mut self, text: &str) -> Self {
        self.config_json = Some(text.to_string());
        self
    }

    pub fn build(self) -> Bundle {
        let path = self.env.path(&format!("bundles/{}", self.id));
        fs::create_dir_all(path.join("rootfs")).unwrap();
        let config = self.config_json.unwrap_or_else(|| {
            let mut spec = json!({
                "ociVersion": "1.0.2-dev",
                "process": {
                    "terminal": false,
                    "user": {"uid": 0, "gid": 0},
                    "args": ["/bin/sleep", "infinity"],
                    "env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                    "cwd": "/"
                },
                "root": {"path": "rootfs", "readonly": false},
                "hostname": self.id,
                "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                "linux": {
                    "namespaces": [
                        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
                    ]
                },
                "annotations": self.annotations,
            });
            if let Some(path) = &self.cgroups_path {
                spec["linux"]["cgroupsPath"] = json!(path);
            }
            serde_json::to_string_pretty(&spec).unwrap()
        });
        fs::write(path.join("config.json"), config).unwrap();
        fs::write(path.join("log"), "").unwrap();
        let rootfs_source = self.env.path(&format!("rootfs-src/{}", self.id));
        fs::create_dir_all(&rootfs_source).unwrap();
        fs::write(rootfs_source.join("marker"), self.id.as_bytes()).unwrap();
        let stdout = self.stdout.then(|| {
            let fifo = self.env.path(&format!("fifos/{}-stdout", self.id));
            fs::create_dir_all(fifo.parent().unwrap()).unwrap();
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .expect("mkfifo");
            fifo
        });
        Bundle {
            id: self.id,
            path,
            rootfs_source,
            stdout,
        }
    }
}

impl Bundle {
    /// The CreateTaskRequest containerd sends: the rootfs as a bind mount of `rootfs_source`,
    /// the stdout fifo if any, and `options`.
    pub fn create_request(&self, options: Option<Any>) -> CreateTaskRequest {
        CreateTaskRequest {
            id: self.id.clone(),
            bundle: self.path.display().to_string(),
            rootfs: vec![Mount {
                type_: "bind".to_string(),
                source: self.rootfs_source.display().to_string(),
                options: vec!["rbind".to_string(), "rw".to_string()],
                ..Default::default()
            }],
            stdout: self
                .stdout
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            options: MessageField::from_option(options),
            ..Default::default()
        }
    }

    /// Opens the stdout fifo for reading, as containerd does before Create.
    pub fn open_stdout(&self) -> FifoReader {
        let path = self.stdout.clone().expect("the bundle has a stdout fifo");
        // Read-write, so the reader never sees EOF between writers.
        let rx = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&path)
            .expect("opening the stdout fifo");
        FifoReader {
            path,
            rx,
            seen: Vec::new(),
        }
    }

    pub fn rootfs_is_mounted(&self) -> bool {
        self.path.join("rootfs/marker").exists()
    }

    /// The shim's log (containerd's `log` fifo, a plain file here), for failure messages.
    pub fn shim_log(&self) -> String {
        fs::read_to_string(self.path.join("log")).unwrap_or_default()
    }

    pub fn init_pid(&self) -> u32 {
        let text = fs::read_to_string(self.path.join("init.pid")).expect("reading init.pid");
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("init.pid holds {text:?}"))
    }
}

pub struct FifoReader {
    path: PathBuf,
    rx: pipe::Receiver,
    seen: Vec<u8>,
}

impl FifoReader {
    /// Reads (bounded) until the output so far contains `text`; returns all of it.
    pub async fn read_until(&mut self, text: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            let so_far = String::from_utf8_lossy(&self.seen).to_string();
            if so_far.contains(text) {
                return so_far;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.read(&mut buf)).await {
                Ok(Ok(n)) => self.seen.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("reading {}: {e}", self.path.display()),
                Err(_) => panic!(
                    "{} did not receive {text:?} within {TIMEOUT:?}; got {so_far:?}",
                    self.path.display()
                ),
            }
        }
    }
}

/// A connected shim daemon.
pub struct Shim {
    pub trace: ShimTrace,
    pub address: String,
    pub client: TaskClient,
    log: PathBuf,
}

pub fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_duration(TIMEOUT)
}

impl Shim {
    pub fn id(&self) -> &str {
        &self.trace.id
    }

    pub fn pid(&self) -> i32 {
        self.trace.pid
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unwraps an RPC result, failing with the error and the shim's log.
    pub fn ok<T>(&self, what: &str, r: ttrpc::Result<T>) -> T {
        r.unwrap_or_else(|e| panic!("{what} failed: {e:?}\nshim log:\n{}", self.log()))
    }

    pub async fn create(&self, req: CreateTaskRequest) -> ttrpc::Result<CreateTaskResponse> {
        self.client.create(ctx(), &req).await
    }

    /// Create with the runtime options CRI sends for the runsc.toml at `config`, which must
    /// succeed (`what` names the call in the failure).
    pub async fn create_ok(
        &self,
        what: &str,
        env: &TestEnv,
        bundle: &Bundle,
        config: &Path,
    ) -> CreateTaskResponse {
        self.ok(
            what,
            self.create(bundle.create_request(Some(env.options(config))))
                .await,
        )
    }

    /// Kill (SIGKILL), Wait for the exit status 137 (128 + SIGKILL), Delete: how one container of
    /// a pod is taken down; `what` names the container in every failure.
    pub async fn kill_wait_delete(&self, what: &str) {
        self.ok(&format!("Kill ({what})"), self.kill(9, false).await);
        let waited = self.ok(&format!("Wait ({what})"), self.wait().await);
        assert_eq!(waited.exit_status, 137, "{what}");
        self.ok(&format!("Delete ({what})"), self.delete().await);
    }

    pub async fn start(&self) -> ttrpc::Result<StartResponse> {
        let req = StartRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        self.client.start(ctx(), &req).await
    }

    pub async fn state(&self) -> ttrpc::Result<StateResponse> {
        let req = StateRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        self.client.state(ctx(), &req).await
    }

    pub async fn pids(&self) -> ttrpc::Result<PidsResponse> {
        let req = PidsRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        self.client.pids(ctx(), &req).await
    }

    pub async fn kill(&self, signal: u32, all: bool) -> ttrpc::Result<Empty> {
        let req = KillRequest {
            id: self.id().to_string(),
            signal,
            all,
            ..Default::default()
        };
        self.client.kill(ctx(), &req).await
    }

    pub async fn wait(&self) -> ttrpc::Result<WaitResponse> {
        let req = WaitRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        self.client.wait(ctx(), &req).await
    }

    pub async fn delete(&self) -> ttrpc::Result<DeleteResponse> {
        let req = DeleteRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        self.client.delete(ctx(), &req).await
    }

    pub async fn connect(&self) -> ttrpc::Result<ConnectResponse> {
        let req = ConnectRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        self.client.connect(ctx(), &req).await
    }

    /// Sends Shutdown. The daemon may exit before its reply arrives (gVisor's shim always does),
    /// so a closed connection counts as done, as containerd counts it; whether the daemon really
    /// went is for [`TestEnv::assert_nothing_left`].
    pub async fn shutdown(self) {
        let req = ShutdownRequest {
            id: self.id().to_string(),
            ..Default::default()
        };
        match self.client.shutdown(ctx(), &req).await {
            Ok(_)
            | Err(ttrpc::Error::RemoteClosed)
            | Err(ttrpc::Error::LocalClosed)
            | Err(ttrpc::Error::Socket(_)) => {}
            Err(e) => panic!("Shutdown failed: {e:?}\nshim log:\n{}", self.log()),
        }
    }
}

/// Start, Kill (SIGKILL), Wait, Delete, Shutdown of a created container, then nothing left.
pub async fn run_to_the_end(env: &TestEnv, shim: Shim) {
    shim.ok("Start", shim.start().await);
    shim.ok("Kill (SIGKILL)", shim.kill(9, false).await);
    let waited = shim.ok("Wait", shim.wait().await);
    assert_eq!(waited.exit_status, 137);
    shim.ok("Delete", shim.delete().await);
    shim.shutdown().await;
    env.assert_nothing_left().await;
}

/// Kills the shim daemon with SIGKILL, without a word to it as under the OOM killer, and waits
/// (bounded) until it is gone. Returns its trace: the socket it could not remove.
pub async fn kill_shim_daemon(env: &TestEnv, shim: Shim) -> ShimTrace {
    let trace = shim.trace.clone();
    drop(shim);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(trace.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the shim daemon");
    let deadline = Instant::now() + TIMEOUT;
    while process_is_ours(trace.pid, &env.namespace) {
        assert!(Instant::now() < deadline, "the shim survived SIGKILL");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    trace
}

/// The message of a ttrpc error (the status message for an RPC error).
pub fn error_message(e: &ttrpc::Error) -> String {
    match e {
        ttrpc::Error::RpcStatus(s) => s.message().to_string(),
        other => format!("{other:?}"),
    }
}

pub fn error_code(e: &ttrpc::Error) -> Option<ttrpc::Code> {
    match e {
        ttrpc::Error::RpcStatus(s) => Some(s.code()),
        _ => None,
    }
}

/// One event as the mock containerd received it.
#[derive(Debug, Clone)]
pub struct Published {
    pub topic: String,
    pub namespace: String,
    pub event: Any,
}

impl Published {
    /// Decodes the event, checking its type.
    pub fn decode<M: MessageFull>(&self) -> M {
        let name = M::descriptor().full_name().to_string();
        let type_name = self.event.type_url.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            type_name, name,
            "event on {} has type {:?}",
            self.topic, self.event.type_url
        );
        M::parse_from_bytes(&self.event.value)
            .unwrap_or_else(|e| panic!("decoding {name} on {}: {e}", self.topic))
    }
}

/// The container id any task event names (field 1 of every task event message).
fn container_id_of(e: &Published) -> String {
    use containerd_shim_protos::events::task::{
        TaskCreate, TaskDelete, TaskExit, TaskOOM, TaskStart,
    };
    match e.topic.as_str() {
        TOPIC_CREATE => e.decode::<TaskCreate>().container_id,
        TOPIC_START => e.decode::<TaskStart>().container_id,
        TOPIC_EXIT => e.decode::<TaskExit>().container_id,
        TOPIC_DELETE => e.decode::<TaskDelete>().container_id,
        "/tasks/oom" => e.decode::<TaskOOM>().container_id,
        _ => String::new(),
    }
}

/// The mock containerd's events service: records every forwarded envelope.
#[derive(Default)]
struct EventLog {
    events: Mutex<Vec<Published>>,
    changed: watch::Sender<usize>,
}

#[async_trait]
impl Events for EventLog {
    async fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let envelope = req.envelope.into_option().unwrap_or_default();
        let n = {
            let mut events = self.events.lock().unwrap();
            events.push(Published {
                topic: envelope.topic,
                namespace: envelope.namespace,
                event: envelope.event.into_option().unwrap_or_default(),
            });
            events.len()
        };
        self.changed.send_replace(n);
        Ok(Empty::new())
    }
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

/// Splits recorded command lines into the `wait`s the shim runs in the background (whose place
/// among the others is a race) and all the others: `(others, waits)`.
pub fn split_waits(calls: &[Vec<String>]) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    calls
        .iter()
        .cloned()
        .partition(|argv| subcommand(argv) != Some("wait"))
}

/// The sub-command of a recorded runsc command line (the first argument not a flag).
pub fn subcommand(argv: &[String]) -> Option<&str> {
    argv.iter()
        .map(String::as_str)
        .find(|a| !a.starts_with('-'))
}
