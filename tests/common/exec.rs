//! Exec processes and terminals as containerd drives them: the Exec RPC family, the fifos
//! containerd makes for an exec (or for an attach), and the events about one exec.

use std::path::PathBuf;
use std::time::Instant;

use containerd_shim_protos::api::{
    DeleteRequest, DeleteResponse, Empty, KillRequest, StartRequest, StartResponse, StateRequest,
    StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::shim::{CloseIORequest, ExecProcessRequest, ResizePtyRequest};
use containerd_shim_protos::ttrpc;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use super::bundle::FifoReader;
use super::client::{ctx, Shim};
use super::env::TestEnv;
use super::{TIMEOUT, TOPIC_EXIT};

pub const TOPIC_EXEC_ADDED: &str = "/tasks/exec-added";
pub const TOPIC_EXEC_STARTED: &str = "/tasks/exec-started";

/// The fifos containerd makes for one process: stdin, stdout, stderr (each may be absent).
#[derive(Debug, Clone, Default)]
pub struct Fifos {
    pub stdin: Option<PathBuf>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

impl Fifos {
    /// Makes the fifos named `<name>-stdin` ... under the test's directory.
    pub fn make(env: &TestEnv, name: &str, stdin: bool, stdout: bool, stderr: bool) -> Fifos {
        let dir = env.path("exec-fifos");
        std::fs::create_dir_all(&dir).unwrap();
        let one = |want: bool, which: &str| {
            want.then(|| {
                let p = dir.join(format!("{name}-{which}"));
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .expect("mkfifo");
                p
            })
        };
        Fifos {
            stdin: one(stdin, "stdin"),
            stdout: one(stdout, "stdout"),
            stderr: one(stderr, "stderr"),
        }
    }

    fn path(p: &Option<PathBuf>) -> String {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Opens the stdout fifo for reading, as containerd does (again, for an attach).
    pub fn open_stdout(&self) -> FifoReader {
        FifoReader::open(self.stdout.clone().expect("a stdout fifo"))
    }

    pub fn open_stderr(&self) -> FifoReader {
        FifoReader::open(self.stderr.clone().expect("a stderr fifo"))
    }

    /// Opens the stdin fifo for writing, as containerd does.
    pub fn open_stdin(&self) -> pipe::Sender {
        pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(self.stdin.as_ref().expect("a stdin fifo"))
            .expect("opening the stdin fifo")
    }
}

/// Writes all of `data` to a fifo (bounded).
pub async fn write_all(tx: &mut pipe::Sender, data: &[u8]) {
    tokio::time::timeout(TIMEOUT, tx.write_all(data))
        .await
        .expect("writing stdin timed out")
        .expect("writing stdin");
}

/// The OCI process an exec runs, as containerd sends it.
pub fn process_spec(args: &[&str], terminal: bool) -> Any {
    let spec = json!({
        "terminal": terminal,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"],
        "cwd": "/",
    });
    Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".to_string(),
        value: serde_json::to_vec(&spec).unwrap(),
        ..Default::default()
    }
}

impl Shim {
    pub async fn exec(
        &self,
        exec_id: &str,
        spec: Any,
        fifos: &Fifos,
        terminal: bool,
    ) -> ttrpc::Result<Empty> {
        let req = ExecProcessRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            terminal,
            stdin: Fifos::path(&fifos.stdin),
            stdout: Fifos::path(&fifos.stdout),
            stderr: Fifos::path(&fifos.stderr),
            spec: MessageField::some(spec),
            ..Default::default()
        };
        self.client.exec(ctx(), &req).await
    }

    pub async fn start_exec(&self, exec_id: &str) -> ttrpc::Result<StartResponse> {
        let req = StartRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.client.start(ctx(), &req).await
    }

    pub async fn state_exec(&self, exec_id: &str) -> ttrpc::Result<StateResponse> {
        let req = StateRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.client.state(ctx(), &req).await
    }

    pub async fn kill_exec(&self, exec_id: &str, signal: u32) -> ttrpc::Result<Empty> {
        let req = KillRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            signal,
            ..Default::default()
        };
        self.client.kill(ctx(), &req).await
    }

    pub async fn wait_exec(&self, exec_id: &str) -> ttrpc::Result<WaitResponse> {
        let req = WaitRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.client.wait(ctx(), &req).await
    }

    pub async fn delete_exec(&self, exec_id: &str) -> ttrpc::Result<DeleteResponse> {
        let req = DeleteRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.client.delete(ctx(), &req).await
    }

    /// CloseIO of stdin (`exec_id` empty: the init's).
    pub async fn close_stdin(&self, exec_id: &str) -> ttrpc::Result<Empty> {
        let req = CloseIORequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            stdin: true,
            ..Default::default()
        };
        self.client.close_io(ctx(), &req).await
    }

    pub async fn resize_pty(&self, exec_id: &str, width: u32, height: u32) -> ttrpc::Result<Empty> {
        let req = ResizePtyRequest {
            id: self.id().to_string(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        self.client.resize_pty(ctx(), &req).await
    }
}

impl TestEnv {
    /// Waits (bounded) for the TaskExit of one exec.
    pub async fn exec_exit(&self, container_id: &str, exec_id: &str) -> TaskExit {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let found = self
                .events()
                .into_iter()
                .filter(|e| e.topic == TOPIC_EXIT)
                .map(|e| e.decode::<TaskExit>())
                .find(|e| e.container_id == container_id && e.id == exec_id);
            if let Some(exit) = found {
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "no TaskExit for exec {exec_id} of {container_id} within {TIMEOUT:?}; published: {:?}",
                self.topics()
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
