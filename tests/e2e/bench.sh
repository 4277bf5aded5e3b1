#!/bin/bash
# The bench and the soak on the e2e VM (what `make bench` and `make soak` call):
#   tests/e2e/bench.sh [bench|soak|both] [SUITE...]     default: bench on bookworm (or $SUITES)
#
# Boots the same guest as the VM suite (run.sh) with runsc and shim debug logging off and runs the
# driver's --bench or --soak instead of the scenarios:
#   bench  BENCH_N pod starts (default 10) per handler, interleaved: runsc (this shim), runsc-stock
#          (containerd's runc shim with BinaryName = runsc), runsc-stock-systemd (the same with
#          SystemdCgroup = true and runsc --systemd-cgroup), runc; then the shim's breakdown from
#          its timing lines, runsc create + start of the shim's bundle by hand (the floor), and the
#          shim memory per pod (1 and 4 containers, grouped and grouping = false, against
#          containerd's runc shim). Writes tests/e2e/out/<suite>/driver/bench.{md,json,svg}.
#   soak   SOAK_N create/delete cycles (default 100) of a runsc pod beside a long-lived one; what
#          the node holds before and after. Writes tests/e2e/out/<suite>/driver/soak.{md,json}.
#   both   the bench, then the soak, on one boot of the guest.
# Each prints its tables at the end; copies go to tests/e2e/out/bench/.
#
# Environment: BENCH_N, SOAK_N, SUITES, BENCH_HANDLERS (comma-separated, replaces the default
# four), and everything run.sh reads (E2E_VM_TIMEOUT defaults to what N pods need).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=bench
if [[ ${1:-} == bench || ${1:-} == soak || ${1:-} == both ]]; then
    mode=$1
    shift
fi
if [[ $# -gt 0 ]]; then
    suites=("$@")
else
    read -r -a suites <<<"${SUITES:-bookworm}"
fi

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
args=""
vm_timeout=900
outputs=()
if [[ $mode == bench || $mode == both ]]; then
    n=${BENCH_N:-10}
    is_count "$n" || { echo "bench.sh: BENCH_N must be a whole number of at least 1, not '$n'" >&2; exit 2; }
    args+=" --bench $n"
    [[ -n ${BENCH_HANDLERS:-} ]] && args+=" --handlers $BENCH_HANDLERS"
    # Up to 80 s per pod under emulation (the stock path's StopPodSandbox waits 60 s for a
    # StartContainer that never returned), four handlers, the floor and six memory pods.
    vm_timeout=$((vm_timeout + n * 4 * 60 + n * 15 + 300))
    outputs+=(bench)
fi
if [[ $mode == soak || $mode == both ]]; then
    m=${SOAK_N:-100}
    is_count "$m" || { echo "bench.sh: SOAK_N must be a whole number of at least 1, not '$m'" >&2; exit 2; }
    args+=" --soak $m"
    # A cycle is two pod starts' worth: a whole pod and a container in the long-lived one.
    vm_timeout=$((vm_timeout + m * 60))
    outputs+=(soak)
fi
vm_timeout=${E2E_VM_TIMEOUT:-$vm_timeout}

rc=0
# The shim is measured in its release build (run.sh's default); the driver only waits and
# polls, so its quicker-to-build dev profile does (E2E_DRIVER_PROFILE to change it).
E2E_DRIVER_PROFILE=${E2E_DRIVER_PROFILE:-dev} E2E_RUNSC_DEBUG=0 E2E_BENCH=1 E2E_VM_TIMEOUT=$vm_timeout \
    E2E_BUDGET=${E2E_BUDGET:-$((vm_timeout * ${#suites[@]}))} \
    E2E_DRIVER_ARGS="${args# } ${E2E_DRIVER_ARGS:-}" "$here/run.sh" "${suites[@]}" || rc=$?

mkdir -p "$here/out/bench"
for s in "${suites[@]}"; do
    d=$here/out/$s/driver
    for what in "${outputs[@]}"; do
        for f in "$d/$what".{md,json,svg}; do
            [[ -f $f ]] && cp "$f" "$here/out/bench/$s-${f##*/}"
        done
        if [[ -f $d/$what.md ]]; then
            printf '\n===== %s %s =====\n' "$what" "$s"
            cat "$d/$what.md"
        else
            printf '\n===== %s %s: no %s.md (see tests/e2e/out/%s/guest-suite.log) =====\n' \
                "$what" "$s" "$what" "$s"
            rc=1
        fi
    done
done
printf '\n%s: results in %s/out/<suite>/driver and %s/out/bench\n' "$mode" "$here" "$here"
exit "$rc"
