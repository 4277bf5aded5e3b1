//! Bundles as containerd lays them out, and the stdout fifo a test reads.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use containerd_shim_protos::api::{CreateTaskRequest, Mount};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::TIMEOUT;

/// A bundle as containerd lays it out: config.json, an empty `rootfs` directory, the `log` the
/// shim writes to (a plain file here, a fifo under containerd), plus a directory the test's
/// rootfs mount comes from.
pub struct Bundle {
    pub id: String,
    pub path: PathBuf,
    /// Source of the rootfs bind mount; holds a file named `marker` and the spec's command,
    /// an executable `bin/sleep`.
    pub rootfs_source: PathBuf,
    /// The stdout fifo, when the bundle has one.
    pub stdout: Option<PathBuf>,
}

pub struct BundleBuilder<'a> {
    /// The test's temp directory.
    root: &'a Path,
    id: String,
    annotations: BTreeMap<String, String>,
    cgroups_path: Option<String>,
    stdout: bool,
    config_json: Option<String>,
    rootfs_in_place: bool,
    memory_limit: Option<u64>,
}

impl<'a> BundleBuilder<'a> {
    /// A bundle for container `id` under `<root>/bundles`.
    pub fn new(root: &'a Path, id: &str) -> Self {
        BundleBuilder {
            root,
            id: id.to_string(),
            annotations: BTreeMap::new(),
            cgroups_path: None,
            stdout: false,
            config_json: None,
            rootfs_in_place: false,
            memory_limit: None,
        }
    }

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

    /// Puts the spec's command in `<bundle>/rootfs` itself, for a Create without rootfs mounts
    /// (the in-process tier); `marker` stays in the mount's source only.
    pub fn rootfs_in_place(mut self) -> Self {
        self.rootfs_in_place = true;
        self
    }

    /// Writes this text as config.json instead of a valid spec.
    /// `linux.resources.memory.limit`, as the kubelet sets a container's limit.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    pub fn config_json(mut self, text: &str) -> Self {
        self.config_json = Some(text.to_string());
        self
    }

    pub fn build(self) -> Bundle {
        let path = self.root.join(format!("bundles/{}", self.id));
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
            if let Some(limit) = self.memory_limit {
                spec["linux"]["resources"] = json!({"memory": {"limit": limit}});
            }
            serde_json::to_string_pretty(&spec).unwrap()
        });
        fs::write(path.join("config.json"), config).unwrap();
        fs::write(path.join("log"), "").unwrap();
        let rootfs_source = self.root.join(format!("rootfs-src/{}", self.id));
        fs::create_dir_all(&rootfs_source).unwrap();
        fs::write(rootfs_source.join("marker"), self.id.as_bytes()).unwrap();
        // The spec's command, which the shim looks up in the rootfs at Create.
        let rootfs = if self.rootfs_in_place {
            path.join("rootfs")
        } else {
            rootfs_source.clone()
        };
        let sleep = rootfs.join("bin/sleep");
        fs::create_dir_all(sleep.parent().unwrap()).unwrap();
        fs::write(&sleep, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&sleep, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let stdout = self.stdout.then(|| {
            let fifo = self.root.join(format!("fifos/{}-stdout", self.id));
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
        FifoReader::open(self.stdout.clone().expect("the bundle has a stdout fifo"))
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
    /// Opens a fifo for reading, read-write so the reader never sees EOF between writers.
    pub fn open(path: PathBuf) -> FifoReader {
        let rx = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&path)
            .expect("opening the fifo");
        FifoReader {
            path,
            rx,
            seen: Vec::new(),
        }
    }

    /// Reads (bounded) until `n` bytes have come, megabytes included; returns them all.
    pub async fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = vec![0u8; 64 * 1024];
        while self.seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.read(&mut buf)).await {
                Ok(Ok(k)) => self.seen.extend_from_slice(&buf[..k]),
                Ok(Err(e)) => panic!("reading {}: {e}", self.path.display()),
                Err(_) => panic!(
                    "{} gave {} of {n} bytes within {TIMEOUT:?}",
                    self.path.display(),
                    self.seen.len()
                ),
            }
        }
        self.seen.clone()
    }

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
