#!/usr/bin/env python3
"""Writes the images critest pulls into an image registry's storage, ready to be served.

    build-registry.py --busybox-oci busybox.tar --pause-oci pause.tar \
        --webserver webserver --nnp nnp --out DIR

No registry on the internet is reachable, so critest's images are made here from the e2e suite's
own OCI archives (tests/e2e/images: Debian's static busybox and pause.c) and two small static
programs (webserver.c, nnp.c), and written in the layout of distribution's filesystem driver
(DIR/docker/registry/v2/...). The guest's registry serves that directory as it is, and containerd
reaches it through mirrors for registry.k8s.io, k8s.gcr.io and gcr.io, so each image lives in
the repository of its name without the registry host (registry.k8s.io/pause and k8s.gcr.io/pause
are one repository, the same image, as critest expects).

What each stand-in has is what critest's specs check (sigs.k8s.io/cri-tools images/ and
pkg/validate): busybox with the usual users and groups, its applets as hard links like the
official busybox images (critest masks /bin/ls, which must not mask the shell), pgrep and ipcs
(image-bin/: Debian's busybox-static lacks them), a file per test image so that different
names are different images, the users of the image-user builds, the predefined group, nginx's
pid file and "master process" command line, a word "httpd" in httpd's log, a setuid program for
the no_new_privs specs. Images whose digest critest names (test-image-digest@sha256:...) cannot
be made: those specs fail for every runtime alike.

Writes DIR/images.txt: "reference manifest-digest" per line. Python 3 standard library only.
"""

import argparse
import importlib.util
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# The suite's own OCI writer: its deterministic layer and digest helpers.
_spec = importlib.util.spec_from_file_location(
    "build_oci", os.path.join(HERE, "..", "images", "build-oci.py"))
oci = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oci)

STAGING = "k8s-staging-cri-tools/"
E2E = "e2e-test-images/"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
mail:x:8:
wheel:x:10:root
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
"""
# images/image-predefined-group: adduser -u 1000 -D default-user, addgroup -g 50000
# group-defined-in-image, addgroup default-user group-defined-in-image.
PREDEFINED_PASSWD = PASSWD + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"
PREDEFINED_GROUP = GROUP + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"

NGINX_TITLE = "nginx: master process nginx -g daemon off;"


def fail(msg):
    print(f"build-registry: error: {msg}", file=sys.stderr)
    sys.exit(1)


def layer_from_dir(rootfs):
    """build-oci.py's deterministic layer, with hard links as well (busybox's applets)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                info = tar.gettarinfo(path, os.path.relpath(path, rootfs))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = oci.EPOCH
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                elif info.isdir() or info.issym() or info.islnk():
                    tar.addfile(info)
                else:
                    fail(f"{path}: only files, directories and links go into a layer")
    return buf.getvalue()


def hardlink_applets(rootfs):
    """Turns bin/* symlinks to busybox into hard links, as the official busybox images have them."""
    bindir = os.path.join(rootfs, "bin")
    target = os.path.join(bindir, "busybox")
    for name in os.listdir(bindir):
        path = os.path.join(bindir, name)
        if os.path.islink(path) and os.readlink(path) == "busybox":
            os.unlink(path)
            os.link(target, path)


def rootfs_from_oci(archive, dest):
    """Unpacks the single layer of an OCI archive written by build-oci.py into dest."""
    with tarfile.open(archive) as outer:
        def read(name):
            return outer.extractfile(name).read()
        index = json.loads(read("index.json"))
        manifest = json.loads(read("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
        layers = manifest["layers"]
        if len(layers) != 1:
            fail(f"{archive}: expected one layer, found {len(layers)}")
        layer = read("blobs/sha256/" + layers[0]["digest"][7:])
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        inner.extractall(dest)


class Registry:
    """distribution's filesystem layout: blobs once, links per repository."""

    def __init__(self, root):
        self.root = root
        self.v2 = os.path.join(root, "docker", "registry", "v2")
        self.refs = []

    def _write(self, path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def blob(self, data):
        digest = oci.blob(data)
        path = os.path.join(self.v2, "blobs", "sha256", digest[7:9], digest[7:], "data")
        if not os.path.exists(path):
            self._write(path, data)
        return digest

    def _link(self, repo, *parts, digest):
        self._write(os.path.join(self.v2, "repositories", repo, *parts, "link"), digest.encode())

    def image(self, repo, tags, layers, config):
        """Stores an image (layers: list of layer tars, config: dict) under repo:tag for each tag."""
        descriptors = []
        for layer in layers:
            d = self.blob(layer)
            self._link(repo, "_layers", "sha256", d[7:], digest=d)
            descriptors.append({"mediaType": oci.MT_LAYER, "digest": d, "size": len(layer)})
        config_bytes = oci.json_bytes(config)
        cd = self.blob(config_bytes)
        self._link(repo, "_layers", "sha256", cd[7:], digest=cd)
        manifest = oci.json_bytes({
            "schemaVersion": 2,
            "mediaType": oci.MT_MANIFEST,
            "config": {"mediaType": oci.MT_CONFIG, "digest": cd, "size": len(config_bytes)},
            "layers": descriptors,
        })
        md = self.blob(manifest)
        self._link(repo, "_manifests", "revisions", "sha256", md[7:], digest=md)
        for tag in tags:
            self._link(repo, "_manifests", "tags", tag, "current", digest=md)
            self._link(repo, "_manifests", "tags", tag, "index", "sha256", md[7:], digest=md)
            self.refs.append((f"{repo}:{tag}", md))


def config_for(base_layers, name, entrypoint=None, cmd=None, user=None, env=()):
    cfg = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *env],
        "WorkingDir": "/",
        # Two names of different content must never share a config (the image ID).
        "Labels": {"io.runsc-guard.conformance.image": name},
    }
    if entrypoint is not None:
        cfg["Entrypoint"] = entrypoint
    if cmd is not None:
        cfg["Cmd"] = cmd
    if user is not None:
        cfg["User"] = user
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": oci.CREATED,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [oci.blob(layer) for layer in base_layers]},
        "history": [{"created": oci.CREATED, "created_by": "tests/e2e/conformance/build-registry.py"}
                    for _ in base_layers],
    }


def layer_of(files, work):
    """A layer holding files: {path: (content bytes or source file path, mode)}."""
    d = tempfile.mkdtemp(dir=work)
    for path, (content, mode) in files.items():
        full = os.path.join(d, path.lstrip("/"))
        if content is None:  # a directory
            os.makedirs(full, exist_ok=True)
            os.chmod(full, mode)
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if isinstance(content, bytes):
            with open(full, "wb") as f:
                f.write(content)
        else:
            shutil.copyfile(content, full)
        os.chmod(full, mode)
    return layer_from_dir(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busybox-oci", required=True, help="busybox.tar from tests/e2e/images")
    ap.add_argument("--pause-oci", required=True, help="pause.tar from tests/e2e/images")
    ap.add_argument("--webserver", required=True, help="static build of webserver.c")
    ap.add_argument("--nnp", required=True, help="static build of nnp.c")
    ap.add_argument("--out", required=True, help="registry root directory to create")
    args = ap.parse_args()

    work = tempfile.mkdtemp()
    tmp_out = args.out + ".tmp"
    shutil.rmtree(tmp_out, ignore_errors=True)
    try:
        reg = Registry(tmp_out)

        # The base: the suite's busybox with busybox's usual users and groups.
        bb = os.path.join(work, "busybox")
        rootfs_from_oci(args.busybox_oci, bb)
        hardlink_applets(bb)
        with open(os.path.join(bb, "etc", "passwd"), "w") as f:
            f.write(PASSWD)
        with open(os.path.join(bb, "etc", "group"), "w") as f:
            f.write(GROUP)
        os.makedirs(os.path.join(bb, "usr", "bin"), exist_ok=True)
        for tool in sorted(os.listdir(os.path.join(HERE, "image-bin"))):
            dest = os.path.join(bb, "usr", "bin", tool)
            shutil.copyfile(os.path.join(HERE, "image-bin", tool), dest)
            os.chmod(dest, 0o755)
        base = layer_from_dir(bb)

        def on_base(repo, tags, files=None, **cfg):
            layers = [base] + ([layer_of(files, work)] if files else [])
            reg.image(repo, tags, layers, config_for(layers, repo, **cfg))

        on_base(E2E + "busybox", ["1.29-2"], cmd=["sh"])

        def web(port, name, title=None, pidfile=None):
            env = [f"WEBSERVER_PORT={port}", f"WEBSERVER_NAME={name}"]
            if title:
                env.append(f"WEBSERVER_TITLE={title}")
            if pidfile:
                env.append(f"WEBSERVER_PIDFILE={pidfile}")
            return env

        nginx_files = {
            "/usr/sbin/nginx": (args.webserver, 0o755),
            "/var/run": (None, 0o755),
        }
        on_base(E2E + "nginx", ["1.14-2"], files=nginx_files, cmd=["nginx", "-g", "daemon off;"],
                env=web(80, "nginx", NGINX_TITLE, "/var/run/nginx.pid"))
        on_base(STAGING + "hostnet-nginx-amd64", ["latest"], files=nginx_files,
                cmd=["nginx", "-g", "daemon off;"],
                env=web(12003, "nginx", NGINX_TITLE, "/var/run/nginx.pid"))
        on_base(E2E + "httpd", ["2.4.39-4"],
                files={"/usr/local/bin/httpd-foreground": (args.webserver, 0o755)},
                cmd=["httpd-foreground"], env=web(80, "httpd"))
        on_base(E2E + "nonewprivs", ["1.3"],
                files={"/usr/local/bin/nnp": (args.nnp, 0o4755)},
                entrypoint=["/usr/local/bin/nnp"])

        # images/image-test: busybox plus an empty file named after the image (or tag).
        for name in ("test-image-1", "test-image-2", "test-image-3", "test-image-latest"):
            on_base(STAGING + name, ["latest"], files={"/" + name: (b"", 0o644)}, cmd=["sh"])
        on_base(STAGING + "test-image-tags", ["1", "2", "3"],
                files={"/same-image": (b"", 0o644)}, cmd=["sh"])
        for tag in ("test", "all"):
            on_base(STAGING + "test-image-tag", [tag], files={"/" + tag: (b"", 0o644)}, cmd=["sh"])

        # images/image-user and images/image-predefined-group.
        for name, user in (("test-image-user-uid", "1002"),
                           ("test-image-user-username", "www-data"),
                           ("test-image-user-uid-group", "1003:1004"),
                           ("test-image-user-username-group", "www-data:1004")):
            on_base(STAGING + name, ["latest"], cmd=["sh"], user=user)
        on_base(STAGING + "test-image-predefined-group", ["latest"], cmd=["sh"], user="1000",
                files={"/etc/passwd": (PREDEFINED_PASSWD.encode(), 0o644),
                       "/etc/group": (PREDEFINED_GROUP.encode(), 0o644),
                       "/home/default-user": (None, 0o755)})

        # registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9, one image: the suite's pause.
        pz = os.path.join(work, "pause")
        rootfs_from_oci(args.pause_oci, pz)
        pause = layer_from_dir(pz)
        reg.image("pause", ["3.9"], [pause],
                  config_for([pause], "pause", entrypoint=["/pause"]))

        with open(os.path.join(tmp_out, "images.txt"), "w") as f:
            for ref, digest in reg.refs:
                f.write(f"{ref} {digest}\n")
        shutil.rmtree(args.out, ignore_errors=True)
        os.replace(tmp_out, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp_out, ignore_errors=True)
    print(f"build-registry: {len(reg.refs)} image references -> {args.out}")


if __name__ == "__main__":
    main()
