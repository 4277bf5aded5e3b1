#!/bin/bash
# The CRI conformance run (what `make conformance` calls):
#   tests/e2e/conformance.sh [SUITE...]     default: upstream (or $SUITES)
#
# Boots the VM suite's guest (run.sh) with E2E_CONFORMANCE=1: instead of the CRI driver, the guest
# runs critest (cri-tools 1.37, tools/go/cri-tools) once per runtime handler against its
# containerd, the same specs in the same order (one seed) for each. On the upstream suite the
# handlers are runc, runsc-gvisor (gVisor's own shim) and runsc (this project's shim, reported as
# guard); on Debian's suites the guard alone. Prints one block per handler and ends with the
# guard's "N passed, N failed" line.
#
# critest pulls its images from registry.k8s.io and gcr.io, which are not reachable: they are
# built here (conformance/build-registry.py) and served in the guest by a registry on loopback
# (tools/go/distribution) that containerd reaches as a mirror of those registries. Pods get a
# private bridge network (tools/go/cni). The guest's part (conformance/guest.sh, the images, the
# settings and the .debs of conformance/fetch-debs.sh) goes into run.sh's payload once run.sh has
# written it, since run.sh builds its payload afresh; the guest waits for it.
#
# Environment (and everything run.sh takes):
#   SUITES                  suites when none are given (default upstream)
#   CONFORMANCE_LIMIT       seconds of critest per handler at most (default 2400)
#   CONFORMANCE_FOCUS       --ginkgo.focus regexp for every handler (default: every spec)
#   CONFORMANCE_SKIP        --ginkgo.skip regexp for every handler (default: none)
#   CONFORMANCE_SEED        --ginkgo.seed, so every handler runs the specs in one order (default 1)
#   CONFORMANCE_HANDLERS    handlers for every suite (default: runc runsc-gvisor runsc on upstream,
#                           runsc on Debian's suites)
#   E2E_OUT                 payload and results (default tests/e2e/out/conformance)
#   E2E_RUNSC_DEBUG         default 0 here: production-like runsc (1 for debug logs)
#   E2E_VM_TIMEOUT          default: 20 minutes of set-up plus CONFORMANCE_LIMIT per handler
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

if [[ $# -gt 0 ]]; then
    suites=("$@")
else
    read -r -a suites <<<"${SUITES:-upstream}"
fi
for s in "${suites[@]}"; do e2e_check_suite "$s"; done

log() { printf 'conformance: %s\n' "$*" >&2; }
if [[ $(id -u) -ne 0 ]]; then
    [[ ${CI:-} == true ]] && { echo "conformance: FAILED: needs root"; exit 1; }
    echo "conformance: SKIPPED: needs root (the VM suite boots qemu and builds images as root)"
    exit 0
fi
for cmd in gcc python3 apt-get debugfs; do
    command -v "$cmd" >/dev/null || e2e_die "$cmd is missing (tests/e2e/install-deps.sh)"
done

out=${E2E_OUT:-$here/out/conformance}
limit=${CONFORMANCE_LIMIT:-2400}
[[ $limit =~ ^[1-9][0-9]*$ ]] || e2e_die "CONFORMANCE_LIMIT must be seconds, not '$limit'"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- the guest's part, built before run.sh starts ---
t0=$SECONDS
part=$out/conformance-part
rm -rf "$part" "$part.tmp"
mkdir -p "$part.tmp/bin" "$part.tmp/debs"
log "building critest's images"
"$here/images/build-images.sh" "$part.tmp/base" >&2
gcc -static -O2 -Wall -Wextra -o "$part.tmp/bin/webserver" "$here/conformance/webserver.c"
gcc -static -O2 -Wall -Wextra -o "$part.tmp/bin/nnp" "$here/conformance/nnp.c"
python3 "$here/conformance/build-registry.py" --busybox-oci "$part.tmp/base/busybox.tar" \
    --pause-oci "$part.tmp/base/pause.tar" --webserver "$part.tmp/bin/webserver" \
    --nnp "$part.tmp/bin/nnp" --out "$part.tmp/registry" >&2
rm -rf "$part.tmp/base" "$part.tmp/bin"
handlers_for() { # the handlers a suite runs critest with
    if [[ -n ${CONFORMANCE_HANDLERS:-} ]]; then
        printf '%s\n' "$CONFORMANCE_HANDLERS"
    elif [[ $1 == upstream ]]; then
        printf 'runc runsc-gvisor runsc\n'
    else
        printf 'runsc\n'
    fi
}
max_handlers=1
for s in "${suites[@]}"; do
    # Each image suite's own packages: the guest installs them against its own libraries.
    mkdir -p "$part.tmp/debs/$(e2e_image_suite "$s")"
    "$here/conformance/fetch-debs.sh" "$s" "$part.tmp/debs/$(e2e_image_suite "$s")"
    read -r -a hs <<<"$(handlers_for "$s")"
    [[ ${#hs[@]} -gt $max_handlers ]] && max_handlers=${#hs[@]}
done
{
    echo '# Written by tests/e2e/conformance.sh, read by conformance/guest.sh (E2E_SUITE is its).'
    printf 'CONFORMANCE_LIMIT=%q\nCONFORMANCE_SEED=%q\n' "$limit" "${CONFORMANCE_SEED:-1}"
    printf 'CONFORMANCE_FOCUS=%q\nCONFORMANCE_SKIP=%q\n' "${CONFORMANCE_FOCUS:-}" "${CONFORMANCE_SKIP:-}"
    # shellcheck disable=SC2016 # expanded by the guest
    echo 'case "$E2E_SUITE" in'
    for s in "${suites[@]}"; do
        printf '    %s) CONFORMANCE_HANDLERS=%q ;;\n' "$s" "$(handlers_for "$s")"
    done
    echo 'esac'
} >"$part.tmp/settings"
install -m 0644 "$here/conformance/guest.sh" "$part.tmp/guest.sh"
touch "$part.tmp/ready"
mv "$part.tmp" "$part"
log "guest part ready in $((SECONDS - t0))s ($(wc -l <"$part/registry/images.txt") image references)"

# --- run.sh, with the part added to its payload once run.sh has written that ---
vm_timeout=${E2E_VM_TIMEOUT:-$((1200 + max_handlers * limit))}
export E2E_CONFORMANCE=1 E2E_OUT=$out E2E_PACKAGE=0 E2E_RUNSC_DEBUG=${E2E_RUNSC_DEBUG:-0}
export E2E_VM_TIMEOUT=$vm_timeout E2E_BUDGET=${E2E_BUDGET:-$((vm_timeout * ${#suites[@]}))}
payload=$out/payload
rm -rf "$payload"
e2e_run_with_part "$out" "$payload" "$part" conformance "${suites[@]}" || true

python3 "$here/conformance/report.py" "$out" "${suites[@]}"
