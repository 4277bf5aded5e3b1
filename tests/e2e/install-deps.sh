#!/bin/bash
# Installs what the e2e VM suite needs on a Debian host, from the archive the host's apt sources
# name: qemu (the VM), debootstrap and e2fsprogs (the guest image), gcc with a static libc (the
# pause and eater images), python3 (the OCI archive writer), protoc (the CRI driver's build).
# Called by .ci/run and by run.sh.
#
# Cheap when everything is there: apt-get update runs (once) only when something is missing or
# apt has no package lists yet (build-images.sh downloads busybox-static through apt).
# Never removes a package: apt is asked first, and a package it would remove to resolve a version
# conflict (the host's newer qemu-utils against the archive's qemu-system-x86) is replaced by the
# archive's matching version instead, and the log says so (apt-install.sh).
# Needs root. Exits non-zero if anything could not be installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=apt-install.sh
. "$here/apt-install.sh"

[[ $(id -u) -eq 0 ]] || e2e_die "install-deps.sh needs root (apt-get install)"
command -v apt-get >/dev/null || e2e_die "no apt-get: the e2e suite needs a Debian host"

# command -> the Debian package that provides it
declare -A provider=(
    [qemu-system-x86_64]=qemu-system-x86
    [debootstrap]=debootstrap
    [mkfs.ext4]=e2fsprogs
    [gcc]=gcc
    # libFuzzer, which the fuzz targets link (make fuzz-smoke, part of make test), is C++
    [g++]=g++
    [python3]=python3
    [dpkg-deb]=dpkg
    [flock]=util-linux
    [timeout]=coreutils
    # the CRI driver's build (k8s-cri generates its gRPC code with protoc)
    [protoc]=protobuf-compiler
)
missing=()
for cmd in "${!provider[@]}"; do
    command -v "$cmd" >/dev/null || missing+=("${provider[$cmd]}")
done
# gcc -static needs libc.a, which gcc alone does not bring.
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
# The upstream suite's runc is linked statically with seccomp (tools/go/build.sh).
[[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ]] || missing+=(libseccomp-dev)
# debootstrap verifies the guest suites' Release files with the host's Debian keyring.
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || missing+=(debian-archive-keyring)

updated=0
apt_update() {
    if [[ $updated -eq 0 ]]; then
        e2e_log "install-deps: apt-get update"
        apt-get update -q >&2
        updated=1
    fi
}

if [[ ${#missing[@]} -gt 0 ]]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    e2e_log "install-deps: installing ${missing[*]}"
    apt_update
    apt_install_keeping "${missing[@]}"
fi

# build-images.sh runs `apt-get download busybox-static`, which needs package lists.
if ! apt-cache show busybox-static >/dev/null 2>&1; then
    apt_update
    apt-cache show busybox-static >/dev/null 2>&1 ||
        e2e_die "install-deps: busybox-static is not in the host's apt sources"
fi

# The upstream suite builds its components with the go command (tools/go). Go is not Debian's
# (the archive's is too old for the pinned modules): the machine brings it. Say so plainly.
need_go=1.26
if ! command -v go >/dev/null; then
    e2e_die "install-deps: go is missing; the upstream suite needs Go $need_go or later on PATH"
fi
go_version=$(go env GOVERSION 2>/dev/null)
go_version=${go_version#go}
if [[ $(printf '%s\n%s\n' "$need_go" "$go_version" | sort -V | head -n1) != "$need_go" ]]; then
    e2e_die "install-deps: go $go_version is older than $need_go, which tools/go's modules need"
fi

e2e_log "install-deps: all e2e dependencies present"
