#!/usr/bin/env python3
"""Writes a single-layer OCI image archive that `ctr images import` accepts, from a directory.

    build-oci.py --name localhost/e2e/busybox:1 --rootfs DIR --output busybox.tar \
        [--entrypoint '["/bin/sh"]'] [--cmd '["-c", "true"]']

No registry is reachable from the e2e machines, so the suite's images are made here: an OCI image
layout (oci-layout, index.json, blobs/sha256/...) packed in a tar. The layer is a plain
(uncompressed) tar, so its digest is also the config's rootfs.diff_id. Everything is
deterministic (sorted entries, owner root, fixed mtime): the same inputs give the same digests.

The name: containerd's importer takes an image's name from the index entry's
`io.containerd.image.name` annotation before it looks at `org.opencontainers.image.ref.name`,
which by the OCI convention (and Docker's exports) holds only the tag. Setting both, as Docker
does, gives exactly --name in `ctr -n k8s.io images ls` without any --base-name.

Python 3 standard library only.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

# A fixed timestamp (2024-01-01T00:00:00Z) for every file and the image's "created".
EPOCH = 1704067200
CREATED = "2024-01-01T00:00:00Z"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def fail(msg):
    print(f"build-oci: error: {msg}", file=sys.stderr)
    sys.exit(1)


def layer_from_dir(rootfs):
    """A tar of rootfs with paths relative to it, owner 0:0, fixed mtime, sorted entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            names = sorted(dirnames + filenames)
            for name in names:
                path = os.path.join(dirpath, name)
                arcname = os.path.relpath(path, rootfs)
                info = tar.gettarinfo(path, arcname)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = EPOCH
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                elif info.isdir() or info.issym():
                    tar.addfile(info)
                else:
                    fail(f"{path}: only files, directories and symlinks go into a layer")
    return buf.getvalue()


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def parse_argv_json(flag, text):
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"{flag} must be a JSON list of strings, e.g. '[\"/bin/sh\"]': {e}")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(f"{flag} must be a JSON list of strings, not {text!r}")
    return value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="full image name, e.g. localhost/e2e/pause:1")
    ap.add_argument("--rootfs", required=True, help="directory that becomes the only layer")
    ap.add_argument("--output", required=True, help="the OCI archive (tar) to write")
    ap.add_argument("--entrypoint", help="JSON list")
    ap.add_argument("--cmd", help="JSON list")
    args = ap.parse_args()

    if ":" not in args.name.rsplit("/", 1)[-1]:
        fail(f"--name {args.name!r} needs an explicit tag (name:tag)")
    tag = args.name.rsplit(":", 1)[1]
    if not os.path.isdir(args.rootfs):
        fail(f"--rootfs {args.rootfs!r} is not a directory")

    layer = layer_from_dir(args.rootfs)
    config_obj = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [blob(layer)]},
        "history": [{"created": CREATED, "created_by": "tests/e2e/images/build-oci.py"}],
    }
    entrypoint = parse_argv_json("--entrypoint", args.entrypoint)
    cmd = parse_argv_json("--cmd", args.cmd)
    if entrypoint is not None:
        config_obj["config"]["Entrypoint"] = entrypoint
    if cmd is not None:
        config_obj["config"]["Cmd"] = cmd
    config = json_bytes(config_obj)

    manifest = json_bytes({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": blob(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": blob(layer), "size": len(layer)}],
    })
    index = json_bytes({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": blob(manifest),
            "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": args.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    })

    entries = [
        ("oci-layout", json_bytes({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ] + [(f"blobs/sha256/{blob(d)[7:]}", d) for d in (layer, config, manifest)]

    tmp = args.output + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(dirname)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = EPOCH
            tar.addfile(info)
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = EPOCH
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.output)
    print(f"build-oci: {args.name} -> {args.output} (manifest {blob(manifest)})")


if __name__ == "__main__":
    main()
