#!/bin/bash
# The Kubernetes node run (what `make k8s` calls; not part of `make test` nor CI):
#   tests/e2e/k8s.sh
#
# Boots the upstream suite's guest (run.sh: containerd 2.4, runc and runsc built from tools/go)
# with E2E_K8S=1: instead of the CRI driver, the guest runs k8s/guest.sh, which installs this
# project's .deb and its containerd snippets, starts etcd, kube-apiserver, kube-controller-manager
# and a kubelet (1.37, systemd cgroup driver, cgroup v2) in the guest, all on its loopback, applies
# packaging/k8s's RuntimeClass with kubectl and runs the scenarios: the incident's Deployment
# under the gvisor RuntimeClass and under runc, pod start times, kubectl exec, a Job's exit code,
# and a clean node after kubectl delete. Kubernetes, etcd and the CNI plugins are Go module
# builds (tools/go/build.sh kubernetes etcd cni), put into the payload by run.sh like the other
# upstream components. Prints the guest's report (tests/e2e/out/k8s/upstream/k8s/report.md) and
# ends with its "N passed, N failed".
#
# Made here, added to run.sh's payload once run.sh has written it (run.sh builds its payload
# afresh; the guest waits for it): k8s-node/ with guest.sh, the manifests, the .deb (make deb)
# and a service-account key pair (openssl; the guest has none).
#
# Environment (and everything run.sh takes):
#   K8S_SCENARIO_TIMEOUT    seconds an incident or Job scenario may take (default 420)
#   K8S_START_N             pods per handler for the start times (default 3)
#   E2E_OUT                 payload and results (default tests/e2e/out/k8s)
#   E2E_RUNSC_DEBUG         default 0 here: production-like runsc and shim logging
#   E2E_VM_TIMEOUT          default 2700
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
repo=$(e2e_repo_root)
suite=upstream

log() { printf 'k8s: %s\n' "$*" >&2; }
if [[ $(id -u) -ne 0 ]]; then
    echo "k8s: SKIPPED: needs root (the VM suite boots qemu and builds images as root)"
    exit 0
fi
for cmd in openssl gcc python3 cargo go; do
    command -v "$cmd" >/dev/null || e2e_die "$cmd is missing (tests/e2e/install-deps.sh; go: Go 1.26)"
done

out=${E2E_OUT:-$here/out/k8s}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- the guest's part, made before run.sh starts ---
t0=$SECONDS
part=$out/k8s-part
rm -rf "$part" "$part.tmp"
mkdir -p "$part.tmp/debs" "$part.tmp/manifests"
log "building the .deb (make deb)"
(cd "$repo" && make deb >&2) || e2e_die "make deb failed"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
deb=$target/debian/runsc-guard_${version}-1_$(dpkg --print-architecture).deb
[[ -f $deb ]] || e2e_die "make deb did not write $deb"
install -m 0644 "$deb" "$part.tmp/debs/"
# The API server's service-account signing key: a throw-away pair for this run's cluster.
openssl genrsa -out "$part.tmp/sa.key" 2048 2>/dev/null || e2e_die "openssl genrsa failed"
openssl rsa -in "$part.tmp/sa.key" -pubout -out "$part.tmp/sa.pub" 2>/dev/null ||
    e2e_die "openssl rsa -pubout failed"
install -m 0644 "$here"/k8s/manifests/*.yaml "$part.tmp/manifests/"
install -m 0644 "$here/k8s/guest.sh" "$part.tmp/guest.sh"
{
    echo '# Written by tests/e2e/k8s.sh, read by k8s/guest.sh.'
    printf 'K8S_SCENARIO_TIMEOUT=%q\nK8S_START_N=%q\n' "${K8S_SCENARIO_TIMEOUT:-420}" "${K8S_START_N:-3}"
} >"$part.tmp/settings"
touch "$part.tmp/ready"
mv "$part.tmp" "$part"
log "guest part ready in $((SECONDS - t0))s"

# --- run.sh, with the part added to its payload once run.sh has written that ---
export E2E_K8S=1 E2E_OUT=$out E2E_PACKAGE=0 E2E_RUNSC_DEBUG=${E2E_RUNSC_DEBUG:-0}
export E2E_VM_TIMEOUT=${E2E_VM_TIMEOUT:-2700}
export E2E_BUDGET=${E2E_BUDGET:-$E2E_VM_TIMEOUT}
payload=$out/payload
rm -rf "$payload"
t_run=$SECONDS
e2e_run_with_part "$out" "$payload" "$part" k8s-node "$suite" || true

results=$out/$suite
report=$results/k8s/report.md
printf '\n===== make k8s (%s) =====\n' "$suite"
[[ -f $results/vm.txt ]] && sed 's/^/  vm: /' "$results/vm.txt"
printf '  run.sh: %ss in all (payload, VM wait and run)\n' "$((SECONDS - t_run))"
grep -h -E '(PASS|FAIL) (k8s-|upstream-|containerd|images)' "$results/guest-suite.log" 2>/dev/null |
    sed 's/^/  /' || true
if [[ -f $report ]]; then
    # The report's own last line is the run's.
    cat "$report"
    tail -n 1 "$report" | grep -qE '^[0-9]+ passed, 0 failed$'
else
    printf '  FAIL the guest wrote no report (%s): see %s/guest-suite.log and serial.log\n' "$report" "$results"
    printf '0 passed, 1 failed\n'
    exit 1
fi
