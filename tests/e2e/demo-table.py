#!/usr/bin/env python3
"""Prints `make demo`'s table from the e2e driver's report.json."""

import json
import sys

MIB = 1024 * 1024


def mib(value):
    try:
        return f"{int(value) / MIB:.0f} MiB"
    except (TypeError, ValueError):
        return "-"


def landed(ev):
    sandbox = ev.get("runsc_sandbox") or {}
    cgroup = sandbox.get("cgroup")
    if not cgroup:
        cgroup = (ev.get("container_cgroup") or "")
    if not cgroup:
        return "-"
    where = "in the pod" if sandbox.get("under_pod_slice", ev.get("container_cgroup_under_pod")) else "OUTSIDE the pod"
    head = cgroup.split("/")[1] if cgroup.startswith("/") and "/" in cgroup[1:] else cgroup
    return f"{where} ({head}/...)"


def eaten(ev):
    eater = ev.get("eater") or {}
    got = eater.get("done_mib") or eater.get("eaten_mib")
    held = ev.get("sandbox_cgroup_memory_max_bytes")
    if got:
        return f"{got} MiB" + (" (all of it)" if eater.get("done_mib") else "")
    if held:
        return f"~{mib(held)} held by the sandbox"
    return "-"


def oom(ev):
    final = ev.get("container_final") or {}
    if final.get("reason") == "OOMKilled":
        return f"yes (exit {final.get('exit_code')}, OOMKilled)"
    if final.get("state") == "CONTAINER_EXITED":
        return f"exited {final.get('exit_code')} ({final.get('reason') or 'no reason'})"
    return "no, still running"


def main(path):
    with open(path) as f:
        report = json.load(f)
    rows = [("scenario", "handler", "where the sandbox landed", "guest memory", "pod limit", "eater got to", "OOM-killed")]
    for s in report.get("scenarios", []):
        ev = s.get("evidence") or {}
        pod = ev.get("pod") or {}
        total = (ev.get("runsc_sandbox") or {}).get("total_memory")
        rows.append((
            s.get("name", "?"),
            s.get("handler", "?"),
            landed(ev),
            mib(total) if total else "- (runc: no guest)",
            mib(pod.get("slice_memory_max_configured")),
            eaten(ev),
            oom(ev),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main(sys.argv[1])
