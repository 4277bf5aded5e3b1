#!/bin/bash
# The bench and the soak on the e2e VM (what `make bench` and `make soak` call):
#   tests/e2e/bench.sh [bench|soak] [SUITE...]     default: bench on bookworm (or $SUITES)
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
# Both print their tables at the end; copies go to tests/e2e/out/bench/.
#
# Environment: BENCH_N, SOAK_N, SUITES, BENCH_HANDLERS (comma-separated, replaces the default
# four), and everything run.sh reads (E2E_VM_TIMEOUT defaults to what N pods need).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=bench
if [[ ${1:-} == bench || ${1:-} == soak ]]; then
    mode=$1
    shift
fi
if [[ $# -gt 0 ]]; then
    suites=("$@")
else
    read -r -a suites <<<"${SUITES:-bookworm}"
fi

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
case $mode in
    bench)
        n=${BENCH_N:-10}
        is_count "$n" || { echo "bench.sh: BENCH_N must be a whole number of at least 1, not '$n'" >&2; exit 2; }
        args="--bench $n"
        [[ -n ${BENCH_HANDLERS:-} ]] && args+=" --handlers $BENCH_HANDLERS"
        # About 40 s per pod under emulation, four handlers, the floor and eight memory pods.
        vm_timeout=$((900 + n * 4 * 40 + n * 15))
        ;;
    soak)
        n=${SOAK_N:-100}
        is_count "$n" || { echo "bench.sh: SOAK_N must be a whole number of at least 1, not '$n'" >&2; exit 2; }
        args="--soak $n"
        # A cycle is two pod starts' worth: a whole pod and a container in the long-lived one.
        vm_timeout=$((900 + n * 60))
        ;;
esac
vm_timeout=${E2E_VM_TIMEOUT:-$vm_timeout}

rc=0
# The shim is measured in its release build (run.sh's default); the driver only waits and
# polls, so its quicker-to-build dev profile does (E2E_DRIVER_PROFILE to change it).
E2E_DRIVER_PROFILE=${E2E_DRIVER_PROFILE:-dev} E2E_RUNSC_DEBUG=0 E2E_BENCH=1 E2E_VM_TIMEOUT=$vm_timeout \
    E2E_BUDGET=${E2E_BUDGET:-$((vm_timeout * ${#suites[@]}))} \
    E2E_DRIVER_ARGS="$args ${E2E_DRIVER_ARGS:-}" "$here/run.sh" "${suites[@]}" || rc=$?

mkdir -p "$here/out/bench"
for s in "${suites[@]}"; do
    d=$here/out/$s/driver
    for f in "$d/$mode".{md,json,svg}; do
        [[ -f $f ]] && cp "$f" "$here/out/bench/$s-${f##*/}"
    done
    if [[ -f $d/$mode.md ]]; then
        printf '\n===== %s %s =====\n' "$mode" "$s"
        cat "$d/$mode.md"
    else
        printf '\n===== %s %s: no %s.md (see tests/e2e/out/%s/guest-suite.log) =====\n' \
            "$mode" "$s" "$mode" "$s"
        rc=1
    fi
done
printf '\n%s: results in %s/out/<suite>/driver and %s/out/bench\n' "$mode" "$here" "$here"
exit "$rc"
