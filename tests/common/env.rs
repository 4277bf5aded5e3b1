//! One test's environment: [`TestDir`] (its temp directory, containerd namespace and runsc root,
//! what fake-runsc recorded there, and what the test left), and [`TestEnv`], which adds the mock
//! containerd a shim daemon talks to.

use std::ffi::OsString;
use std::fs;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageFull;
use containerd_shim_protos::shim_async::create_events;
use containerd_shim_protos::ttrpc::asynchronous::Server;
use tempfile::TempDir;

use super::bundle::{Bundle, BundleBuilder};
use super::client::ShimTrace;
use super::containerd::{EventLog, Published};
use super::host::{mount_points_under, process_is_ours, processes_mentioning};
use super::runsc::{fake_runsc, read_calls, CALLS_FILE};
use super::{DEFAULT_RUNSC_ROOT, RUNSC_OPTIONS_TYPE_URL, TIMEOUT};

/// A test's own temp directory, containerd namespace and runsc root, so tests run in parallel
/// without sharing a socket, a runsc root or a mount.
pub struct TestDir {
    pub name: String,
    pub namespace: String,
    /// Canonical path of the temp directory everything of this test lives in.
    pub root: PathBuf,
    /// Where fake-runsc keeps its state for this namespace (`<runsc root>/<namespace>`).
    pub runsc_state: PathBuf,
    /// Bundles get their rootfs content in `<bundle>/rootfs` itself (no rootfs mount).
    pub rootfs_in_place: bool,
    /// Directories outside `root` this test made the shim write to (the default runsc root).
    outside: Mutex<Vec<PathBuf>>,
    _dir: TempDir,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
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
        TestDir {
            name: name.to_string(),
            runsc_state: root.join("runsc-root").join(&namespace),
            namespace,
            root,
            rootfs_in_place: false,
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

    /// A runsc.toml whose binary_name is `bin/runsc` in the test's directory, a link to
    /// fake-runsc the test can remove and put back (a runsc upgraded under running containers).
    /// Returns the runsc.toml and the link.
    pub fn write_runsc_toml_with_own_binary(&self) -> (PathBuf, PathBuf) {
        let runsc = self.path("bin/runsc");
        fs::create_dir_all(runsc.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(fake_runsc(), &runsc).unwrap();
        let config = self.write_file(
            "runsc.toml",
            &format!(
                "binary_name = {:?}\nroot = {:?}\n",
                runsc.display().to_string(),
                self.runsc_root().display().to_string()
            ),
        );
        (config, runsc)
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
        let builder = BundleBuilder::new(&self.root, id);
        if self.rootfs_in_place {
            builder.rootfs_in_place()
        } else {
            builder
        }
    }

    /// An empty cgroup v2 tree (just `cgroup.controllers`) inside the test's temp directory.
    pub fn empty_cgroup_tree(&self) -> PathBuf {
        let dir = self.path("empty-cgroup-tree");
        fs::create_dir_all(&dir).expect("creating the empty cgroup tree");
        fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n")
            .expect("writing cgroup.controllers");
        dir
    }

    /// Every runsc command line fake-runsc recorded for this namespace, in order.
    pub fn calls(&self) -> Vec<Vec<String>> {
        read_calls(&self.runsc_state)
    }

    /// Waits until runsc has been called with `sub` (e.g. the `wait` the shim runs after Start):
    /// the sync point for anything that counts calls afterwards.
    pub async fn await_call(&self, sub: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.calls().iter().any(|c| c.iter().any(|a| a == sub)) {
            assert!(Instant::now() < deadline, "runsc {sub} was never called");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The global flags the shim puts before every sub-command for this bundle.
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

    /// What a failed Create must not leave, checked at once: mounts, runsc state.
    pub fn assert_no_mounts_or_runsc_state(&self) {
        let mut left = self.mounts_left();
        left.extend(self.runsc_state_left());
        assert!(left.is_empty(), "left behind:\n  {}", left.join("\n  "));
    }

    /// Mounts under the test's directory, runsc container state, processes of this test.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = self.mounts_left();
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

    pub fn runsc_state_left(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.runsc_state) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != CALLS_FILE)
            .map(|e| format!("runsc state {} exists", e.path().display()))
            .collect()
    }
}

/// Waits (bounded) until `leftovers` is empty, else fails naming what is left.
pub async fn await_nothing_left(leftovers: impl Fn() -> Vec<String>) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = leftovers();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("left behind after {TIMEOUT:?}:\n  {}", left.join("\n  "));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for TestDir {
    /// Best effort, so a failed test does not leave its mess to the next: ends the processes of
    /// this test (found by its namespace in their command line), unmounts what is mounted under
    /// its directory, removes what it wrote outside its directory.
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
        for dir in self.outside.lock().unwrap().iter() {
            let _ = fs::remove_dir_all(dir);
            // The default root itself only if this test was the one to create it (the shims'
            // version cache in it, a file any later shim writes again, goes with it).
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_file(parent.join(".runsc-guard-versions.json"));
                let _ = fs::remove_dir(parent);
            }
        }
    }
}

/// A containerd stand-in for one test: a [`TestDir`] and the events service, for tests that run
/// the shim daemon.
pub struct TestEnv {
    dir: TestDir,
    /// containerd's (fictitious) gRPC address, passed as `-address`.
    pub containerd_address: PathBuf,
    /// The mock containerd ttrpc socket (TTRPC_ADDRESS).
    pub events_socket: PathBuf,
    events: Arc<EventLog>,
    server: Server,
    pub(super) shims: Mutex<Vec<ShimTrace>>,
}

impl Deref for TestEnv {
    type Target = TestDir;
    fn deref(&self) -> &TestDir {
        &self.dir
    }
}

impl DerefMut for TestEnv {
    fn deref_mut(&mut self) -> &mut TestDir {
        &mut self.dir
    }
}

impl TestEnv {
    pub async fn new(name: &str) -> TestEnv {
        let dir = TestDir::new(name);
        let events_socket = dir.path("containerd.sock.ttrpc");
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
            containerd_address: dir.path("containerd.sock"),
            dir,
            events_socket,
            events,
            server,
            shims: Mutex::new(Vec::new()),
        }
    }

    /// containerd restarting, as `systemctl restart containerd` does it: the events service
    /// goes away with every connection to it (a shim's among them), then a new one serves the
    /// same socket. Events keep going to the same log, so a test sees what reached either.
    pub async fn restart_containerd(&mut self) {
        self.stop_containerd().await;
        self.start_containerd().await;
    }

    /// containerd gone: its events service stops, its socket is removed.
    pub async fn stop_containerd(&mut self) {
        self.server
            .shutdown()
            .await
            .expect("stopping the mock events service");
        let _ = fs::remove_file(&self.events_socket);
    }

    /// containerd back: a new events service on the same socket.
    pub async fn start_containerd(&mut self) {
        let mut server = Server::new()
            .bind(&format!("unix://{}", self.events_socket.display()))
            .expect("binding the restarted mock events service")
            .register_service(create_events(self.events.clone()));
        server
            .start()
            .await
            .expect("starting the restarted mock events service");
        self.server = server;
    }

    /// Every event published so far.
    pub fn events(&self) -> Vec<Published> {
        self.events.events()
    }

    pub fn topics(&self) -> Vec<String> {
        self.events.topics()
    }

    /// Waits (bounded) for the first event on `topic` about container `id`, and decodes it.
    pub async fn event<M: MessageFull>(&self, topic: &str, id: &str) -> M {
        self.events.event(topic, id).await
    }

    /// Waits (bounded) until nothing of this test is left, else fails naming what is left:
    /// every shim started is gone with its socket, nothing is mounted under the test's
    /// directory, runsc holds no container state, no process of this test runs.
    pub async fn assert_nothing_left(&self) {
        await_nothing_left(|| self.leftovers()).await
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
        left.extend(self.dir.leftovers());
        left
    }
}

impl Drop for TestEnv {
    /// Removes the sockets of its shims; the [`TestDir`] then ends what runs and unmounts.
    fn drop(&mut self) {
        for shim in self.shims.lock().unwrap().iter() {
            let _ = fs::remove_file(&shim.socket);
        }
    }
}
