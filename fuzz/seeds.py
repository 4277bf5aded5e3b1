#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus, fuzz/corpus/<target>/, from the project's own fixtures
and the values its tests use: packaging/runsc.toml, containerd's cgroupsPath forms, CRI
annotations, config.json as containerd writes it, /proc/<pid>/cgroup, cgroup files and
`runsc events --stats` output. Each seed's first byte picks the parser (see each target's doc).
Run again after changing it; the files are committed."""
import hashlib
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MIB = 1 << 20


def seeds(target, items):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for data in items:
        if isinstance(data, str):
            data = data.encode()
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    if isinstance(value, bool) or isinstance(value, int):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


# --- options -------------------------------------------------------------------------------
with open(os.path.join(ROOT, "packaging/runsc.toml")) as f:
    packaged = f.read()
tomls = [
    packaged,
    "",
    'binary_name = "/usr/bin/runsc"\nroot = "/run/runsc"\nio_uid = 1000\nio_gid = 1001\n'
    'shim_cgroup = "/system.slice/shims"\nlog_level = "debug"\n'
    'log_path = "/var/log/runsc/%ID%/shim.log"\ngrouping = false\n'
    'enable_hibernate_server = false\nguard_mode = "warn"\n[runsc_config]\ndebug = "true"\n'
    'platform = "ptrace"\nsystemd-cgroup = true\nnum-network-channels = 2\n',
    'guard_mode = "off"\n[runsc_config]\ndebug-log = "/var/log/%ID%/"\n',
    "some_future_key = 1\n",
    'root = "relative"\n',
    "[runsc_config]\nnet = [1]\n",
    'log_path = "/var/log/runsc/"\nbinary_name = "runsc"\n',
]
options = []
for t in tomls:
    options.append(b"\x00" + t.encode())
    options.append(b"\x01" + t.encode())
    # runtimeoptions.v1.Options: TypeUrl, ConfigPath, ConfigBody.
    options.append(
        b"\x02"
        + field(1, "io.containerd.runsc.v1.options")
        + field(2, "/etc/containerd/runsc.toml")
        + field(3, t)
    )
options.append(b"\x02" + field(3, tomls[2]))
options.append(b"\x03" + field(1, "io.containerd.runsc.v1.options"))
# containerd.runc.v1.Options: shim_cgroup 3, io_uid 4, io_gid 5, binary_name 6, root 7,
# systemd_cgroup 9.
options.append(
    b"\x04" + field(3, "/shims") + field(4, 1000) + field(5, 1000) + field(6, "/usr/bin/runsc")
    + field(7, "/run/runsc") + field(9, True)
)
options.append(b"\x04" + field(7, "relative"))
seeds("options", options)

# --- cgroup_paths --------------------------------------------------------------------------
uid = "1a2b_3c4d"
cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
paths = [
    f"kubepods-burstable-pod{uid}.slice:cri-containerd:{cid}",
    f"kubepods-besteffort-pod{uid}.slice:cri-containerd:{cid}",
    f"kubepods-pod{uid}.slice:cri-containerd:{cid}",
    "kubepods-burstable-pod12_34.slice:cri-containerd:abc",
    "system.slice:docker:abc",
    "/kubepods/burstable/pod12-34/abc",
    "/kubepods/pod1a2b-3c4d/" + cid,
    "/default/abc",
    "/",
    "kubepods/burstable/pod12-34/abc",
    "/kubepods/../etc",
    "a-b-c.slice",
    "-.slice",
    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice/cri-containerd-abc.scope",
]
annotations = [
    f"{cid}\nio.kubernetes.cri.container-type=sandbox\nio.kubernetes.cri.sandbox-id={cid}\n"
    "io.kubernetes.cri.sandbox-name=web\nio.kubernetes.cri.sandbox-namespace=default\n"
    f"io.kubernetes.cri.sandbox-uid={uid}\n"
    f"io.kubernetes.cri.sandbox-log-directory=/var/log/pods/default_web_{uid}\n"
    f"io.kubernetes.cri.sandbox-memory={256 * MIB}\n",
    f"app1\nio.kubernetes.cri.container-type=container\nio.kubernetes.cri.sandbox-id={cid}\n"
    "io.kubernetes.cri.container-name=app\n",
    f"app1\nio.kubernetes.cri-o.ContainerType=container\nio.kubernetes.cri-o.SandboxID={cid}\n",
    "ctr-run\n",
    "x\nio.kubernetes.cri.container-type=container\n",
    "x\nio.kubernetes.cri.container-type=sandbox\n"
    "io.kubernetes.cri.sandbox-log-directory=/var/log/../etc\n",
    f"x\nio.kubernetes.cri.container-type=sandbox\ndev.gvisor.spec.cgroup-parent=/kubepods/pod{uid}\n",
]
seeds("cgroup_paths", [b"\x00" + p.encode() for p in paths]
      + [b"\x01" + a.encode() for a in annotations])


# --- guard_plan: config.json as containerd writes it (benches/guard_plan.rs's spec) ----------
def spec(role, cgroups_path, extra_annotations=None, memory=None):
    cid_ = cid if role == "sandbox" else "f" * 64
    ann = {
        "io.kubernetes.cri.container-type": role,
        "io.kubernetes.cri.sandbox-id": cid,
        "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": uid,
    }
    if role == "sandbox":
        ann["io.kubernetes.cri.sandbox-memory"] = str(256 * MIB)
        ann["io.kubernetes.cri.sandbox-cpu-period"] = "100000"
        ann["io.kubernetes.cri.sandbox-cpu-quota"] = "50000"
    else:
        ann["io.kubernetes.cri.container-name"] = "app"
    ann.update(extra_annotations or {})
    resources = {"devices": [{"allow": False, "access": "rwm"}],
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000}}
    if memory is not None:
        resources["memory"] = {"limit": memory}
    linux = {
        "resources": resources,
        "namespaces": [{"type": t} for t in ["pid", "ipc", "uts", "mount", "network"]],
        "maskedPaths": ["/proc/kcore", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys"],
    }
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path.replace("ID", cid_)
    return json.dumps({
        "ociVersion": "1.0.2-dev",
        "process": {"user": {"uid": 65535, "gid": 65535}, "args": ["/pause"],
                    "env": ["PATH=/usr/bin:/bin"], "cwd": "/", "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "web",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "annotations": ann,
        "linux": linux,
    }, indent=1)


sd = f"kubepods-burstable-pod{uid}.slice:cri-containerd:ID"
plans = [
    spec("sandbox", sd),
    spec("container", sd, memory=128 * MIB),
    spec("sandbox", "kubepods-besteffort-pod5e6f.slice:cri-containerd:ID"),
    spec("sandbox", "kubepods-pod7a8b.slice:cri-containerd:ID", memory=512 * MIB),
    spec("sandbox", "/kubepods/burstable/pod1a2b-3c4d/ID"),
    spec("sandbox", "/kubepods/pod7a8b/ID", memory=-1),
    spec("sandbox", None),
    spec("sandbox", "kubepods/burstable/pod1a2b-3c4d/ID"),
    spec("sandbox", sd, {"dev.gvisor.spec.cgroup-parent": "/kubepods.slice",
                         "dev.gvisor.flag.total-memory": "1"}),
    spec("sandbox", sd, {"io.kubernetes.cri.sandbox-memory": "0"}),
    spec("container", "/kubepods/burstable/pod1a2b-3c4d/ID"),
    '{"ociVersion":"1.0.2"}',
]
seeds("guard_plan", plans)

# --- stats ---------------------------------------------------------------------------------
runsc_event = ('{"type":"stats","id":"app","data":{"cpu":{"usage":{"kernel":2000000,'
               '"user":5000000,"total":7000000,"percpu":[7000000]}},"memory":{"cache":4096,'
               '"usage":{"limit":268435456,"usage":52428800,"failcnt":0},"swap":{"limit":0,'
               '"failcnt":0},"kernel":{"limit":0,"failcnt":0},"kernelTCP":{"limit":0,'
               '"failcnt":0}},"pids":{"current":3}}}\n')
stats = [
    b"\x00" + s.encode() for s in [
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/"
        f"cri-containerd-{cid}.scope\n",
        "12:pids:/k/p\n4:cpu,cpuacct:/k/c\n3:memory:/k/m\n1:name=systemd:/s\n0::/u\n",
        "garbage\n\n0::/a.slice/b:cri-containerd:c\n5::/not-v2\n",
        "0::/../../etc\n3:memory:/k/../../x\n",
    ]
] + [
    b"\x01" + s.encode() for s in ["12345678\n", "max\n", "1000 2000 3000 4000\n", "-1\n"]
] + [
    b"\x02" + s.encode() for s in [
        "anon 1048576\nfile 2097152\nkernel_stack 16384\npgfault 100\n",
        "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 0\nnr_throttled 0\n",
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    ]
] + [
    b"\x03" + s.encode() for s in ["max\n", "268435456\n", "9223372036854771712\n", "-1\n"]
] + [
    b"\x04" + s.encode() for s in [
        "MemTotal:       16318480 kB\nMemFree:         1234567 kB\n",
        "MemTotal: 18446744073709551615 kB\n",
    ]
] + [
    b"\x05" + runsc_event.encode(),
    b"\x05" + b'{"type":"stats","id":"app","data":{}}\n',
    b"\x05" + b"\n\nnot json\n",
]
seeds("stats", stats)
