#!/bin/bash
# `make demo`: the incident's pod on a real node, side by side.
#
# Builds the shim and a Debian bookworm node (containerd 1.6.20, runsc 20221219; first run some
# minutes, cached afterwards), then runs one pod three ways: a Burstable pod whose slice has
# MemoryMax=256M and whose container eats 1 GiB step by step, under
#   - runsc-stock: containerd's runc shim driving runsc, no systemd-cgroup (what the incident's
#     cluster ran),
#   - runsc: this project's shim with its memory guard,
#   - runc: the reference.
# and prints where each sandbox landed, what the guest believed its memory was, and how far the
# eater got before the node stopped it (or didn't).
#
# Environment: DEMO_SUITE (default bookworm); everything run.sh takes (see tests/e2e/run.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=${DEMO_SUITE:-bookworm}
scenarios=(incident-stock incident-guard incident-runc)

args=""
for s in "${scenarios[@]}"; do args+=" --scenario $s"; done
export E2E_DRIVER_ARGS="${E2E_DRIVER_ARGS:-}$args"

status=0
"$here/run.sh" "$suite" || status=$?

report="$here/out/$suite/driver/report.json"
if [[ ! -f $report ]]; then
    echo "demo: no report at $report (see the output above)" >&2
    exit 1
fi
echo
echo "== the incident's pod (256 MiB limit, eating 1 GiB) on $suite"
python3 "$here/demo-table.py" "$report"
exit "$status"
