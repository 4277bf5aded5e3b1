#!/bin/bash
# Builds the e2e suite's container images as OCI archives, without any registry:
#   build-images.sh OUT_DIR
# writes OUT_DIR/{busybox,pause,eater}.tar, imported in the guest with `ctr -n k8s.io images import`
# as localhost/e2e/busybox:1, localhost/e2e/pause:1 and localhost/e2e/eater:1.
#
# Needs gcc with a static libc (libc6-dev), python3, and either apt-get (to download Debian's
# busybox-static) or E2E_BUSYBOX pointing at a static busybox binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

[[ $# -eq 1 ]] || e2e_die "usage: $0 OUT_DIR"
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Static binaries: the images contain nothing else, no libc, no loader.
cflags=(-static -O2 -Wall -Wextra)
gcc "${cflags[@]}" -o "$stage/pause" "$here/pause.c"
gcc "${cflags[@]}" -o "$stage/eater" "$here/eater.c"

# Debian's busybox-static, downloaded once into the cache (outside the checkout, reused by CI).
busybox=${E2E_BUSYBOX:-}
if [[ -z $busybox ]]; then
    debs=$(e2e_cache_dir)/debs/host
    mkdir -p "$debs"
    deb=$(find "$debs" -maxdepth 1 -name 'busybox-static_*.deb' | sort | tail -n1)
    if [[ -z $deb ]]; then
        # apt-get download writes into the current directory as the unprivileged _apt user, which
        # cannot enter the private stage directory: download as root instead of warning about it.
        (cd "$stage" && apt-get download -q -o APT::Sandbox::User=root busybox-static >&2) ||
            e2e_die "cannot download busybox-static (apt-get update first, or set E2E_BUSYBOX)"
        deb=$(find "$stage" -maxdepth 1 -name 'busybox-static_*.deb' | head -n1)
        mv "$deb" "$debs/"
        deb=$debs/${deb##*/}
    fi
    dpkg-deb -x "$deb" "$stage/busybox-deb"
    busybox=$(find "$stage/busybox-deb" -type f -name busybox -path '*bin/busybox' | head -n1)
    [[ -n $busybox ]] || e2e_die "no bin/busybox in $deb"
fi
file_type=$(file -b "$busybox" 2>/dev/null || true)
[[ -z $file_type || $file_type == *static* ]] || e2e_die "$busybox is not static: $file_type"

# busybox: every applet as a symlink in /bin, so `sh`, `sleep`, `cat`, ... all resolve on PATH.
bb=$stage/busybox-root
mkdir -p "$bb/bin" "$bb/etc" "$bb/tmp" "$bb/proc" "$bb/sys" "$bb/dev" "$bb/root"
chmod 1777 "$bb/tmp"
install -m 0755 "$busybox" "$bb/bin/busybox"
"$bb/bin/busybox" --list | while read -r applet; do
    [[ $applet == busybox ]] || ln -s busybox "$bb/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$bb/etc/group"

pz=$stage/pause-root
mkdir -p "$pz"
install -m 0755 "$stage/pause" "$pz/pause"

ez=$stage/eater-root
mkdir -p "$ez"
install -m 0755 "$stage/eater" "$ez/eater"

python3 "$here/build-oci.py" --name localhost/e2e/busybox:1 --rootfs "$bb" \
    --output "$out/busybox.tar" --cmd '["/bin/sh"]' >&2
python3 "$here/build-oci.py" --name localhost/e2e/pause:1 --rootfs "$pz" \
    --output "$out/pause.tar" --entrypoint '["/pause"]' >&2
# The eater's default eats 64 MiB; the driver always passes its own arguments.
python3 "$here/build-oci.py" --name localhost/e2e/eater:1 --rootfs "$ez" \
    --output "$out/eater.tar" --entrypoint '["/eater"]' --cmd '["64", "8", "100"]' >&2
