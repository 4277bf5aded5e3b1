//! The shim daemon as containerd drives it: `start`, the ttrpc task client, the `delete` action
//! containerd runs after a shim died.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::shim_async::{Client, TaskClient};
use containerd_shim_protos::ttrpc;

use super::bundle::Bundle;
use super::env::TestEnv;
use super::host::{process_is_ours, run_bounded, run_bounded_with_input};
use super::runsc::CGROUP_ROOT_ENV;
use super::TIMEOUT;

/// What is needed to check that a shim is gone.
#[derive(Debug, Clone)]
pub struct ShimTrace {
    pub id: String,
    pub pid: i32,
    pub socket: PathBuf,
    pub bundle: PathBuf,
}

/// Names another build of the shim for the daemon tests (`make shim-memory` points it at the
/// release binary, whose memory is what a node pays).
pub const SHIM_BINARY_ENV: &str = "RUNSC_GUARD_TEST_SHIM";

/// The shim binary the daemon tests run: the test profile's build, or [`SHIM_BINARY_ENV`].
pub fn shim_binary() -> PathBuf {
    std::env::var_os(SHIM_BINARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_containerd-shim-runsc-v1")))
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

impl TestEnv {
    /// The shim's command line as containerd builds it (`-namespace -address -publish-binary
    /// -id`), run in the bundle with TTRPC_ADDRESS set.
    pub fn shim_command(&self, bundle: &Bundle) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(shim_binary());
        // The guard reads a cgroup tree: by default an empty v2 tree of the test's own, so no
        // test ever depends on (or reads) the host's /sys/fs/cgroup. Tests that need pods pass
        // their fixture tree in the environment, which overrides this.
        cmd.current_dir(&bundle.path)
            .env("TTRPC_ADDRESS", &self.events_socket)
            .env(CGROUP_ROOT_ENV, self.empty_cgroup_tree())
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

    /// A sandbox `id` with a default runsc.toml, created and started by its own shim: where the
    /// lifecycle tests begin. Returns its bundle, its shim and the pid Create answered.
    pub async fn started_sandbox(&self, id: &str) -> (Bundle, Shim, u32) {
        let config = self.write_runsc_toml("");
        let bundle = self
            .bundle(id)
            .annotation(super::CONTAINER_TYPE, "sandbox")
            .build();
        let shim = self.start_shim(&bundle).await;
        let created = shim.create_ok("Create", self, &bundle, &config).await;
        shim.ok("Start", shim.start().await);
        (bundle, shim, created.pid)
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
        self.connect_started(bundle, out).await
    }

    /// `start` with the runtime options for the runsc.toml at `config` on its stdin, as
    /// containerd runs it (the options choose the grouping).
    pub async fn start_shim_with_options(&self, bundle: &Bundle, config: &Path) -> Shim {
        self.start_shim_with_options_and(bundle, config, &[]).await
    }

    /// Same, with more environment.
    pub async fn start_shim_with_options_and(
        &self,
        bundle: &Bundle,
        config: &Path,
        vars: &[(&str, OsString)],
    ) -> Shim {
        use containerd_shim_protos::protobuf::Message;
        let mut cmd = self.shim_command(bundle);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.arg("start");
        let options = self.options(config).write_to_bytes().unwrap();
        let out = run_bounded_with_input(cmd, &options, "containerd-shim-runsc-v1 start").await;
        self.connect_started(bundle, out).await
    }

    /// Checks what `start` printed and wrote into the bundle, and connects to the daemon.
    async fn connect_started(&self, bundle: &Bundle, out: Output) -> Shim {
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

    /// A new connection to the running shim of `bundle`, as a restarted containerd makes it: from
    /// the `address` and `shim.pid` files `start` left in the bundle.
    pub async fn reconnect(&self, bundle: &Bundle) -> Shim {
        let address =
            fs::read_to_string(bundle.path.join("address")).expect("the bundle's address file");
        let pid: i32 = fs::read_to_string(bundle.path.join("shim.pid"))
            .expect("the bundle's shim.pid file")
            .trim()
            .parse()
            .expect("shim.pid holds a pid");
        let client = Client::connect(&address).await.unwrap_or_else(|e| {
            panic!(
                "reconnecting to the shim at {address}: {e:?}\nshim log:\n{}",
                bundle.shim_log()
            )
        });
        Shim {
            trace: ShimTrace {
                id: bundle.id.clone(),
                pid,
                socket: PathBuf::from(address.trim_start_matches("unix://")),
                bundle: bundle.path.clone(),
            },
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
}
