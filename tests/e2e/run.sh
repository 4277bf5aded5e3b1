#!/bin/bash
# The e2e VM suite, host side (what `make e2e` and .ci/run call):
#   tests/e2e/run.sh [SUITE...]          default: bookworm trixie sid upstream (or $SUITES);
#                                        also upstream-1.7 (containerd 1.7 with upstream runsc)
#
# For each suite: a Debian guest with that suite's containerd, runc and runsc boots under qemu,
# becomes a kubelet-less node and runs the CRI driver (tests/e2e/driver) against three runtime
# handlers: runsc (this project's shim), runsc-stock (runsc behind containerd's runc shim, as in
# the incident) and runc. Results land in tests/e2e/out/<suite>/; the last line printed is
# "N passed, N failed" over all suites (the guest's pre-checks plus the driver's scenarios; a
# suite whose VM died counts as a failure).
#
# Pre-flight: root, qemu, debootstrap, gcc, cargo and (if an image must be built) a reachable
# package archive. If one is missing the suite prints "e2e: SKIPPED: <why>" and exits 0, except
# under CI (CI=true), where a skip is a failure.
#
# Environment:
#   SUITES               suites to run when none are given on the command line
#   RUNSC_GUARD_CACHE    cache root (default $XDG_CACHE_HOME/runsc-guard or ~/.cache/runsc-guard);
#                        images live in $RUNSC_GUARD_CACHE/e2e/images and survive new checkouts
#   E2E_INSTALL_DEPS     1 (default when root): run install-deps.sh first; 0: don't
#   E2E_CARGO_PROFILE    cargo profile for the shim and the driver (default release; dev reuses
#                        the artifacts of `cargo test`)
#   E2E_OUT              where the payload and the results go (default tests/e2e/out)
#   E2E_BUDGET           seconds for all VM runs together (default 3600); each VM gets at most
#                        what is left, so a hanging guest cannot eat CI's whole time
#   E2E_VM_TIMEOUT       seconds per VM (default 1500); the guest stops its suite 120 s earlier
#   E2E_RUNSC_DEBUG      1 (default): runsc and shim debug logs in the results; 0: off
#   E2E_PACKAGE          1: build the .deb (make deb) and, on bookworm, install the node by the
#                        README with it (guest-install.sh); 0: the payload's binaries only.
#                        Default 1, or 0 when E2E_DRIVER_ARGS narrows the run with --scenario
#                        or E2E_BENCH=1
#   E2E_DRIVER_ARGS      extra arguments for the driver, e.g. "--scenario NAME --timeout-scale 2"
#   E2E_BENCH            1: the guest also configures the bench's handlers (bench.sh sets it)
#   E2E_RUNSC_PLATFORM   runsc --platform for every runsc handler (default: runsc's own)
#   E2E_DRIVER_PROFILE   cargo profile of the driver alone (default: E2E_CARGO_PROFILE's)
#   E2E_IMAGE_REBUILD    1: rebuild the guest images even if cached
#   E2E_MIRROR           Debian archive URL for debootstrap (default: from the host's apt sources)
#   E2E_ACCEL, E2E_VM_MEMORY, E2E_VM_CPUS: see run-vm.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
repo=$(e2e_repo_root)
out=${E2E_OUT:-$here/out}

if [[ $# -gt 0 ]]; then
    suites=("$@")
else
    read -r -a suites <<<"${SUITES:-${E2E_SUITES_DEFAULT[*]}}"
fi
[[ ${#suites[@]} -gt 0 ]] || e2e_die "no suites to run"
for s in "${suites[@]}"; do e2e_check_suite "$s"; done

skip() {
    if [[ ${CI:-} == true ]]; then
        printf 'e2e: FAILED: the VM suite cannot run under CI: %s\n' "$*"
        exit 1
    fi
    printf 'e2e: SKIPPED: %s\n' "$*"
    exit 0
}

# --- pre-flight ---
[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap builds the guest image; run as root)"
if [[ ${E2E_INSTALL_DEPS:-1} == 1 ]]; then
    "$here/install-deps.sh" || skip "tests/e2e/install-deps.sh could not install the dependencies"
fi
command -v cargo >/dev/null || skip "cargo is missing (the Rust toolchain builds the shim and the driver)"
for cmd in qemu-system-x86_64 debootstrap mkfs.ext4 gcc python3 flock; do
    command -v "$cmd" >/dev/null || skip "$cmd is missing (tests/e2e/install-deps.sh installs it)"
done

# The archive is needed only for what is not cached yet: a guest image or busybox-static.
need_archive=""
for s in "${suites[@]}"; do
    "$here/image/build-image.sh" --cached "$s" >/dev/null 2>&1 || need_archive+=" image:$s"
done
if [[ -z ${E2E_BUSYBOX:-} ]] &&
    ! compgen -G "$(e2e_cache_dir)/debs/host/busybox-static_*.deb" >/dev/null; then
    need_archive+=" busybox-static"
fi
if [[ -n $need_archive ]]; then
    mirror=$(e2e_debian_mirror) || skip "no Debian archive in the host's apt sources (set E2E_MIRROR)"
    # debootstrap's first request is the suite's Release file; ask for it the same way.
    if ! timeout 60 python3 - "$mirror/dists/$(e2e_image_suite "${suites[0]}")/Release" <<'EOF' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=30).read(1)
EOF
        skip "the package archive $mirror is not reachable (needed for:$need_archive)"
    fi
fi

# --- payload: what the guests get read-only ---
t_start=$SECONDS
mkdir -p "$out"
payload=$out/payload
rm -rf "$payload"
mkdir -p "$payload/bin" "$payload/images"

target_dir() { # target_dir MANIFEST: cargo's target directory for that manifest
    cargo metadata --format-version 1 --no-deps --manifest-path "$1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# The cargo profile of both binaries. release by default; CI may pick dev to reuse what
# `cargo test` compiled instead of a second, optimised build of every dependency.
profile=${E2E_CARGO_PROFILE:-release}
case "$profile" in
    dev) profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac

# The shim and the operator CLI (its doctor audits the guest while pods run) share one build.
e2e_log "building the shim and runsc-guard (cargo build --profile $profile)"
t=$SECONDS
(cd "$repo" && cargo build --profile "$profile" --bin containerd-shim-runsc-v1 --bin runsc-guard) ||
    e2e_die "cargo build of containerd-shim-runsc-v1 and runsc-guard failed"
for bin in containerd-shim-runsc-v1 runsc-guard; do
    install -m 0755 "$(target_dir "$repo/Cargo.toml")/$profile_dir/$bin" "$payload/bin/"
done
e2e_log "shim and runsc-guard built in $((SECONDS - t))s"

driver_manifest=$here/driver/Cargo.toml
if [[ -f $driver_manifest ]]; then
    e2e_log "building the CRI driver"
    t=$SECONDS
    driver_profile=${E2E_DRIVER_PROFILE:-$profile}
    driver_dir=$driver_profile
    [[ $driver_profile == dev ]] && driver_dir=debug
    cargo build --profile "$driver_profile" --manifest-path "$driver_manifest" ||
        e2e_die "cargo build of the e2e driver failed"
    install -m 0755 "$(target_dir "$driver_manifest")/$driver_dir/e2e-driver" "$payload/bin/"
    e2e_log "driver built in $((SECONDS - t))s"
else
    e2e_log "no CRI driver yet ($driver_manifest): the guests run their pre-checks only"
fi

# The Debian package, built as an operator builds it (`make deb`, which installs cargo-deb when
# it is missing): the bookworm guest installs it by the README's "Install on a node" and runs
# its scenarios through it (guest-install.sh). A run narrowed to some scenarios, or a bench run
# (E2E_BENCH=1), leaves it out unless E2E_PACKAGE=1 asks for it.
if [[ " ${E2E_DRIVER_ARGS:-} " == *" --scenario "* || ${E2E_BENCH:-0} == 1 ]]; then
    package=${E2E_PACKAGE:-0}
else
    package=${E2E_PACKAGE:-1}
fi
if [[ $package == 1 ]] && [[ " ${suites[*]} " == *" bookworm "* ]]; then
    t=$SECONDS
    command -v cargo-deb >/dev/null ||
        e2e_log "cargo-deb is missing: make deb installs it (cargo install cargo-deb --locked)"
    e2e_log "building the .deb (make deb)"
    (cd "$repo" && make deb >&2) || e2e_die "make deb failed"
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
    deb=$(target_dir "$repo/Cargo.toml")/debian/runsc-guard_${version}-1_$(dpkg --print-architecture).deb
    [[ -f $deb ]] || e2e_die "make deb did not write $deb"
    mkdir -p "$payload/debs"
    install -m 0644 "$deb" "$payload/debs/"
    install -m 0644 "$repo/README.md" "$payload/README.md"
    install -m 0644 "$here/guest-install.sh" "$payload/guest-install.sh"
    mkdir -p "$payload/k8s"
    install -m 0644 "$repo/packaging/k8s/installer.sh" "$repo/packaging/runsc.toml" "$payload/k8s/"
    e2e_log "${deb##*/} built in $((SECONDS - t))s"
fi

# The upstream components a suite runs over its image's packages: Go module builds pinned in
# tools/go, cached between runs by their pins (tools/go/build.sh). Each lands in
# payload/upstream/<component>/ with its VERSIONS, which the guest copies into the report.
upstream=()
for s in "${suites[@]}"; do
    mapfile -t -O "${#upstream[@]}" upstream < <(e2e_upstream_components "$s")
done
if [[ ${#upstream[@]} -gt 0 ]]; then
    mapfile -t upstream < <(printf '%s\n' "${upstream[@]}" | sort -u)
    command -v go >/dev/null || e2e_die "go is missing: the upstream suite builds its components with Go 1.26"
    t=$SECONDS
    e2e_log "building the upstream components: ${upstream[*]} (tools/go/build.sh)"
    built=$("$repo/tools/go/build.sh" "${upstream[@]}") || e2e_die "tools/go/build.sh ${upstream[*]} failed"
    while read -r component dir; do
        mkdir -p "$payload/upstream/$component"
        cp -a "$dir/." "$payload/upstream/$component/"
    done <<<"$built"
    e2e_log "upstream components ready in $((SECONDS - t))s"
fi

e2e_log "building the OCI images"
"$here/images/build-images.sh" "$payload/images"
install -m 0644 "$here/guest-suite.sh" "$payload/guest-suite.sh"
e2e_log "payload ready in $((SECONDS - t_start))s"

# --- one VM per suite, one after the other: under TCG a VM uses both cores ---
budget=${E2E_BUDGET:-3600}
vm_timeout=${E2E_VM_TIMEOUT:-1500}
budget_start=$SECONDS
declare -A vm_ok image_s vm_s
for s in "${suites[@]}"; do
    results=$out/$s
    rm -rf "$results"
    mkdir -p "$results"

    t=$SECONDS
    if ! image=$("$here/image/build-image.sh" "$s"); then
        e2e_log "suite $s: the guest image could not be built"
        vm_ok[$s]=0
        continue
    fi
    image_s[$s]=$((SECONDS - t))

    left=$((budget - (SECONDS - budget_start)))
    if [[ $left -lt 300 ]]; then
        e2e_log "suite $s: not run, the e2e budget (E2E_BUDGET=${budget}s) is spent"
        vm_ok[$s]=0
        continue
    fi
    this_timeout=$((vm_timeout < left ? vm_timeout : left))
    {
        printf 'E2E_SUITE=%s\n' "$s"
        printf 'E2E_IMAGE_SUITE=%s\n' "$(e2e_image_suite "$s")"
        printf 'E2E_UPSTREAM=%q\n' "$(e2e_upstream_components "$s" | tr '\n' ' ')"
        printf 'E2E_GUEST_TIMEOUT=%s\n' "$((this_timeout - 120))"
        printf 'E2E_RUNSC_DEBUG=%s\n' "${E2E_RUNSC_DEBUG:-1}"
        printf 'E2E_DRIVER_ARGS=%q\n' "${E2E_DRIVER_ARGS:-}"
        printf 'E2E_BENCH=%s\n' "${E2E_BENCH:-0}"
        printf 'E2E_CONFORMANCE=%s\n' "${E2E_CONFORMANCE:-0}"
        printf 'E2E_K8S=%s\n' "${E2E_K8S:-0}"
        printf 'E2E_RUNSC_PLATFORM=%q\n' "${E2E_RUNSC_PLATFORM:-}"
    } >"$payload/env"

    t=$SECONDS
    if E2E_IMAGE_DIR=$image E2E_VM_TIMEOUT=$this_timeout "$here/run-vm.sh" "$s" "$payload" "$results"; then
        vm_ok[$s]=1
    else
        vm_ok[$s]=0
    fi
    vm_s[$s]=$((SECONDS - t))
done

# --- report ---
count() { # count FILE KEY: an integer field of a small JSON file, or empty
    python3 - "$1" "$2" <<'EOF' 2>/dev/null
import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
if isinstance(v, int):
    print(v)
EOF
}

total_passed=0
total_failed=0
failed_suites=()
for s in "${suites[@]}"; do
    results=$out/$s
    printf '\n===== e2e suite %s =====\n' "$s"
    [[ -f $results/versions.txt ]] && sed 's/^/  /' "$results/versions.txt"
    printf '  image %ss, vm %ss (boot to poweroff)\n' "${image_s[$s]:--}" "${vm_s[$s]:--}"
    p=0
    f=0
    if [[ ${vm_ok[$s]} != 1 ]]; then
        printf '  FAIL the guest did not finish (no guest-done): see %s/serial.log\n' "$results"
        f=$((f + 1))
    fi
    if [[ -f $results/guest-checks.json ]]; then
        gp=$(count "$results/guest-checks.json" passed)
        gf=$(count "$results/guest-checks.json" failed)
        p=$((p + ${gp:-0}))
        f=$((f + ${gf:-1}))
        printf '  guest pre-checks: %s passed, %s failed\n' "${gp:-?}" "${gf:-?}"
        grep -h 'FAIL ' "$results/guest-suite.log" 2>/dev/null | sed 's/^/    /' || true
    fi
    if [[ -f $results/driver/summary.json ]]; then
        dp=$(count "$results/driver/summary.json" passed)
        df=$(count "$results/driver/summary.json" failed)
        p=$((p + ${dp:-0}))
        f=$((f + ${df:-1}))
        if [[ -f $results/driver/report.md ]]; then
            cat "$results/driver/report.md"
        else
            printf '  driver: %s passed, %s failed\n' "${dp:-?}" "${df:-?}"
        fi
    elif [[ -f $driver_manifest ]]; then
        printf '  FAIL the driver wrote no summary.json (see %s/guest-suite.log)\n' "$results"
        f=$((f + 1))
    fi
    printf '  suite %s: %d passed, %d failed\n' "$s" "$p" "$f"
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    [[ $f -gt 0 ]] && failed_suites+=("$s")
done

# The logs a failure needs, after the reports so the reports stay readable.
for s in "${failed_suites[@]}"; do
    logs=$out/$s/logs
    printf '\n===== %s: guest logs (all of them in %s) =====\n' "$s" "$logs"
    if [[ -f $logs/containerd.log ]]; then
        printf -- '--- containerd (last 60 lines) ---\n'
        tail -n 60 "$logs/containerd.log"
    fi
    for f in "$logs"/_var_log_runsc-shim/*; do
        [[ -f $f ]] || continue
        printf -- '--- shim log %s (last 40 lines) ---\n' "${f##*/}"
        tail -n 40 "$f"
    done
    if [[ ! -f $out/$s/guest-done && -f $out/$s/serial.log ]]; then
        printf -- '--- serial console (last 40 lines) ---\n'
        tail -n 40 "$out/$s/serial.log"
    fi
done

# What failed, last, where a log cut to its head and tail still shows it: each failed check of
# each failed scenario with its detail, from the driver's report.
for s in "${failed_suites[@]}"; do
    [[ -f $out/$s/driver/report.json ]] || continue
    python3 - "$s" "$out/$s/driver/report.json" <<'PY' || true
import json, sys
suite, path = sys.argv[1], sys.argv[2]
for sc in json.load(open(path)).get("scenarios", []):
    if sc.get("passed"):
        continue
    print(f"FAILED {suite} {sc.get('name')} [{sc.get('handler')}]: {(sc.get('error') or '')[:300]}")
    for c in sc.get("checks", []):
        if not c.get("ok"):
            print(f"  {c.get('name')}: {c.get('detail', '')[:800]}")
PY
done

printf '\ne2e: results in %s (total %ss)\n' "$out" "$((SECONDS - t_start))"
printf '%d passed, %d failed\n' "$total_passed" "$total_failed"
[[ $total_failed -eq 0 ]]
