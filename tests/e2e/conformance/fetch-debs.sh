#!/bin/bash
# The Debian packages a conformance guest installs at boot, from its suite's archive:
#   conformance/fetch-debs.sh SUITE OUT_DIR
# nftables (the CNI portmap plugin's backend runs `nft`), apparmor (what a Debian node has;
# critest's AppArmor specs load profiles with `sudo apparmor_parser`) and sudo, plus whatever of
# their dependencies the suite's guest image lacks. apt resolves them against the image's own dpkg
# status (read out of its disk with debugfs), in a private apt directory that leaves the host's
# apt state alone. Cached per image and package list in
# $RUNSC_GUARD_CACHE/e2e/debs/conformance/<image>-<hash of the list>/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

[[ $# -eq 2 ]] || e2e_die "usage: $0 SUITE OUT_DIR"
suite=$1
out=$2
e2e_check_suite "$suite"
packages=(nftables apparmor sudo)

# The image the suite boots (built now if it is not cached: run.sh would build it next anyway).
image=$("$here/../image/build-image.sh" "$suite")
cache=$(e2e_cache_dir)/debs/conformance/${image##*/}-$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-8)
if ! compgen -G "$cache/*.deb" >/dev/null; then
    command -v debugfs >/dev/null || e2e_die "debugfs is missing (e2fsprogs)"
    mirror=$(e2e_debian_mirror) || e2e_die "no Debian archive in the host's apt sources (set E2E_MIRROR)"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [[ -r $keyring ]] || e2e_die "missing $keyring: apt-get install debian-archive-keyring"
    apt=$(mktemp -d)
    trap 'rm -rf "$apt"' EXIT
    mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/sources.list.d" "$apt/preferences.d"
    debugfs -R 'cat /var/lib/dpkg/status' "$image/disk.raw" >"$apt/status" 2>/dev/null
    grep -q '^Package: ' "$apt/status" || e2e_die "no dpkg status in $image/disk.raw"
    printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$(e2e_image_suite "$suite")" \
        >"$apt/sources.list"
    : >"$apt/preferences"
    opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
        -o "Dir::Etc::Preferences=$apt/preferences" -o "Dir::Etc::PreferencesParts=$apt/preferences.d"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status"
        -o "Dir::Cache::archives=$apt/archives" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o APT::Install-Recommends=0)
    e2e_log "conformance: downloading ${packages[*]} for the $suite guest (${image##*/})"
    apt-get "${opts[@]}" update >&2 || e2e_die "apt-get update of $mirror failed"
    apt-get "${opts[@]}" -y install --download-only "${packages[@]}" >&2 ||
        e2e_die "apt-get could not download ${packages[*]} for $suite"
    mkdir -p "$cache.tmp"
    cp "$apt"/archives/*.deb "$cache.tmp/"
    rm -rf "$cache"
    mv "$cache.tmp" "$cache"
fi
mkdir -p "$out"
cp "$cache"/*.deb "$out/"
