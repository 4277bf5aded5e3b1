//! The guard's cost per container, through the calls the shim makes: `cargo bench --bench
//! guard_plan`.
//!
//! A node in a temp dir (on /dev/shm where there is one, as bundles are on /run): a cgroup v2
//! tree as a systemd node with the kubelet's systemd driver lays it out (kubepods.slice, its
//! burstable and besteffort slices, 100 pod slices with memory limits, a few system slices), and
//! a bundle whose config.json is a CRI sandbox's spec. Three
//! measurements:
//! - `before_create/sandbox`: `Guard::before_create` for a pod's sandbox, as `Pod::create` calls
//!   it: load config.json, read the tree, decide, apply the edits and write config.json back
//!   (runsc's version is cached after the first call, as in the shim);
//! - `before_create/container`: the same for a container joining the sandbox;
//! - `decide/sandbox`: the pure decision alone, on a spec and a tree already read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use runsc_guard::bundle::BundleSpec;
use runsc_guard::cgroup::{Bytes, CgroupTree};
use runsc_guard::guard::{decide, Guard, GuardInput, HostFacts, Role};
use runsc_guard::options::ShimConfig;
use runsc_guard::runsc::version::RunscVersion;
use runsc_guard::runsc::{Executor, Output};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
const PODS: usize = 100;
/// The pod whose containers are created: one in the middle of the burstable slice.
const POD: &str = "u0050";
const SANDBOX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const CONTAINER: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// Answers `runsc --version` as Debian's runsc 20221219 does; nothing else is asked before
/// create.
struct FakeRunsc;

#[async_trait]
impl Executor for FakeRunsc {
    async fn run(&self, _cmd: tokio::process::Command) -> std::io::Result<Output> {
        Ok(Output {
            status: 0,
            stdout: b"runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n".to_vec(),
            stderr: Vec::new(),
        })
    }
}

fn write(path: &Path, content: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().expect("fixture paths have parents"))
        .expect("create fixture dir");
    std::fs::write(path, content).expect("write fixture file");
}

/// One cgroup v2 directory with the files a real one shows to the guard.
fn cgroup(root: &Path, rel: &str, memory_max: Option<u64>) {
    let dir = root.join(rel);
    let max = memory_max.map_or_else(|| "max\n".to_string(), |b| format!("{b}\n"));
    write(&dir.join("memory.max"), max);
    write(&dir.join("memory.high"), "max\n");
    write(&dir.join("memory.current"), "12345678\n");
    write(
        &dir.join("memory.events"),
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    );
    write(&dir.join("cgroup.controllers"), "cpu io memory pids\n");
    write(&dir.join("cgroup.subtree_control"), "cpu io memory pids\n");
    write(&dir.join("cgroup.procs"), "");
    write(&dir.join("cpu.max"), "max 100000\n");
    write(&dir.join("pids.max"), "max\n");
}

/// A systemd node's tree: system slices, kubepods.slice with its QoS slices and `PODS` pod
/// slices (a third best-effort, the rest burstable), each with a limit and a container scope.
fn node_tree(root: &Path) {
    write(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    write(&root.join("cgroup.subtree_control"), "cpu io memory pids\n");
    for unit in [
        "init.scope",
        "system.slice",
        "system.slice/containerd.service",
        "system.slice/kubelet.service",
        "system.slice/systemd-journald.service",
        "user.slice",
    ] {
        cgroup(root, unit, None);
    }
    cgroup(root, "kubepods.slice", Some(15 << 30));
    let burstable = "kubepods.slice/kubepods-burstable.slice";
    let besteffort = "kubepods.slice/kubepods-besteffort.slice";
    cgroup(root, burstable, None);
    cgroup(root, besteffort, None);
    for i in 0..PODS {
        let uid = format!("u{i:04}");
        let (qos, name) = if i % 3 == 2 {
            (besteffort, format!("kubepods-besteffort-pod{uid}.slice"))
        } else {
            (burstable, format!("kubepods-burstable-pod{uid}.slice"))
        };
        let pod = format!("{qos}/{name}");
        cgroup(root, &pod, Some((256 + 8 * i as u64) * MIB));
        cgroup(
            root,
            &format!("{pod}/cri-containerd-{i:064x}.scope"),
            Some((256 + 8 * i as u64) * MIB),
        );
    }
}

/// config.json of a CRI sandbox (the pause container) or of a container in it, as containerd
/// 1.6 writes them: the fields the guard reads among the many it leaves alone.
fn spec(role: Role) -> Value {
    let slice = format!("kubepods-burstable-pod{POD}.slice");
    let (id, annotations) = match role {
        Role::Sandbox => (
            SANDBOX,
            json!({
                "io.kubernetes.cri.container-type": "sandbox",
                "io.kubernetes.cri.sandbox-id": SANDBOX,
                "io.kubernetes.cri.sandbox-name": "bench",
                "io.kubernetes.cri.sandbox-namespace": "default",
                "io.kubernetes.cri.sandbox-uid": POD,
                "io.kubernetes.cri.sandbox-log-directory": format!("/var/log/pods/default_bench_{POD}"),
                "io.kubernetes.cri.sandbox-memory": (256 * MIB).to_string(),
                "io.kubernetes.cri.sandbox-cpu-period": "100000",
                "io.kubernetes.cri.sandbox-cpu-quota": "50000",
                "io.kubernetes.cri.sandbox-cpu-shares": "512",
            }),
        ),
        Role::Container => (
            CONTAINER,
            json!({
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": "app",
                "io.kubernetes.cri.image-name": "docker.io/library/busybox:latest",
                "io.kubernetes.cri.sandbox-id": SANDBOX,
                "io.kubernetes.cri.sandbox-name": "bench",
                "io.kubernetes.cri.sandbox-namespace": "default",
                "io.kubernetes.cri.sandbox-uid": POD,
            }),
        ),
    };
    let mounts: Vec<Value> = [
        ("/proc", "proc", "proc"),
        ("/dev", "tmpfs", "tmpfs"),
        ("/dev/pts", "devpts", "devpts"),
        ("/dev/mqueue", "mqueue", "mqueue"),
        ("/sys", "sysfs", "sysfs"),
        (
            "/dev/shm",
            "bind",
            "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/x/shm",
        ),
        (
            "/etc/resolv.conf",
            "bind",
            "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/x/resolv.conf",
        ),
        (
            "/etc/hostname",
            "bind",
            "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/x/hostname",
        ),
    ]
    .iter()
    .map(|(dest, kind, source)| {
        json!({"destination": dest, "type": kind, "source": source,
               "options": ["nosuid", "noexec", "nodev"]})
    })
    .collect();
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": 65535, "gid": 65535, "additionalGids": [65535]},
            "args": ["/pause"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                             "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
                             "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                             "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"],
                "effective": ["CAP_CHOWN", "CAP_KILL"],
                "permitted": ["CAP_CHOWN", "CAP_KILL"]
            },
            "noNewPrivileges": true,
            "oomScoreAdj": -998
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": mounts,
        "annotations": annotations,
        "linux": {
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "cpu": {"shares": 512, "quota": 50000, "period": 100000}
            },
            "cgroupsPath": format!("{slice}:cri-containerd:{id}"),
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"]
        }
    })
}

struct Node {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    guard: Guard,
    config: ShimConfig,
}

impl Node {
    fn new() -> Node {
        // containerd keeps bundles under /run, a tmpfs: so does the bench, where the host has
        // one, or config.json's write and rename time the disk (and whatever else uses it).
        let dir = tempfile::Builder::new()
            .prefix("guard-plan-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        node_tree(&dir.path().join("cgroup"));
        let runsc = dir.path().join("bin/runsc");
        write(&runsc, "#!/bin/sh\nexit 1\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runsc, std::fs::Permissions::from_mode(0o755))
            .expect("chmod runsc");
        let guard = Guard::new(
            dir.path().join("cgroup"),
            dir.path().join("proc"),
            Arc::new(FakeRunsc),
        )
        .with_host_facts(HostFacts {
            systemd_running: true,
            host_memory: Some(Bytes(16 << 30)),
        });
        // The runsc root is the temp dir's: the guard shares runsc's version with other shims
        // through a file there, and a bench must not write into the host's /run.
        let config = ShimConfig {
            binary_name: runsc.display().to_string(),
            root: dir.path().join("runsc-root").display().to_string(),
            ..ShimConfig::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        Node {
            dir,
            rt,
            guard,
            config,
        }
    }

    /// A bundle holding `role`'s config.json as containerd wrote it.
    fn bundle(&self, role: Role) -> (PathBuf, String) {
        let (id, name) = match role {
            Role::Sandbox => (SANDBOX, "sandbox"),
            Role::Container => (CONTAINER, "container"),
        };
        let bundle = self.dir.path().join(name);
        write(&bundle.join("config.json"), spec(role).to_string());
        (bundle, id.to_string())
    }

    /// One Create's guard step, as `Pod::create` makes it: config.json loaded, the guard, then
    /// its edits written into config.json.
    fn before_create(&self, role: Role, bundle: &Path, pristine: &[u8], id: &str) {
        // containerd writes a fresh config.json for every Create; so does the bench.
        std::fs::write(bundle.join("config.json"), pristine).expect("reset config.json");
        let mut spec = BundleSpec::load(bundle).expect("load config.json");
        let guarded = self
            .rt
            .block_on(self.guard.before_create(id, role, &spec, &self.config))
            .expect("the guard admits the bench's pod");
        if !guarded.spec_edits().is_empty() {
            spec.apply(guarded.spec_edits())
                .expect("apply the plan's edits");
        }
        spec.save_if_changed().expect("write config.json");
        std::hint::black_box(guarded.runsc_config());
    }
}

fn guard_plan(c: &mut Criterion) {
    let node = Node::new();
    let mut group = c.benchmark_group("before_create");
    for role in [Role::Sandbox, Role::Container] {
        let (bundle, id) = node.bundle(role);
        let pristine = std::fs::read(bundle.join("config.json")).expect("read config.json");
        // The first call asks runsc its version; the shim caches it per binary, so does this.
        node.before_create(role, &bundle, &pristine, &id);
        let name = if role == Role::Sandbox {
            "sandbox"
        } else {
            "container"
        };
        group.bench_function(name, |b| {
            b.iter(|| node.before_create(role, &bundle, &pristine, &id))
        });
    }
    group.finish();

    let (bundle, id) = node.bundle(Role::Sandbox);
    let spec = BundleSpec::load(&bundle).expect("load config.json");
    let tree = CgroupTree::detect(node.dir.path().join("cgroup")).expect("fixture tree");
    let version =
        RunscVersion::from_version_output("runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n");
    let runsc_config = BTreeMap::new();
    c.bench_function("decide/sandbox", |b| {
        b.iter(|| {
            let plan = decide(&GuardInput {
                container_id: &id,
                role: Role::Sandbox,
                spec: spec.spec(),
                runsc_config: &runsc_config,
                mode: node.config.guard_mode,
                runsc_version: &version,
                host: HostFacts {
                    systemd_running: true,
                    host_memory: Some(Bytes(16 << 30)),
                },
                tree: &tree,
            });
            assert!(plan.refusal().is_none(), "{}", plan.summary());
            std::hint::black_box(plan)
        })
    });
}

criterion_group! {
    name = benches;
    // Short enough for `cargo bench --bench guard_plan` to finish within a minute.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4))
        .sample_size(50);
    targets = guard_plan
}
criterion_main!(benches);
