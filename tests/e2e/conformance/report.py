#!/usr/bin/env python3
"""Prints the conformance run's results from critest's JUnit reports.

    report.py OUT_DIR SUITE...

For each suite (OUT_DIR/SUITE/conformance/junit-HANDLER.xml, written by conformance/guest.sh):
one block per runtime handler in the order they ran, with the passed, failed and skipped specs,
how long critest took, and every failing spec with the first line of its message; then the specs
whose outcome differs between the handlers. The handler `runsc` (this project's shim) is
reported as `guard`. The last line is the guard's "N passed, N failed" over all suites; the exit
status is 0 when every handler of every suite left a report.

Also writes OUT_DIR/conformance-summary.json. Python 3 standard library only.
"""

import json
import os
import re
import sys
import xml.etree.ElementTree as ET

NAMES = {"runsc": "guard"}
FAILED = {"failed", "panicked", "timedout", "interrupted", "aborted"}


def label(handler):
    return NAMES.get(handler, handler)


GOMEGA_VALUE = re.compile(r"^<[^>]*>: ?")


def first_line(text):
    """The message's first line; when Gomega put the cause on a later line ("Unexpected error:",
    "Expected" followed by "<*type | 0x...>: value"), that value goes after it."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    first = lines[0]
    for i, line in enumerate(lines[1:], start=1):
        if GOMEGA_VALUE.match(line):
            value = GOMEGA_VALUE.sub("", line) or (lines[i + 1] if i + 1 < len(lines) else "")
            if value and value not in first:
                first = f"{first} {value}"
            break
    return first[:300]


def parse_junit(path):
    """[(spec, outcome, first message line, seconds)] in the order critest ran them."""
    specs = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = tc.get("name", "")
        status = tc.get("status", "")
        fail = tc.find("failure")
        err = tc.find("error")
        skip = tc.find("skipped")
        if status in FAILED or fail is not None or err is not None:
            node = fail if fail is not None else err
            msg = node.get("message") or node.text if node is not None else status
            outcome = "failed"
        elif status in ("skipped", "pending") or skip is not None:
            msg = skip.get("message", "") if skip is not None else status
            outcome = "skipped"
        else:
            msg, outcome = "", "passed"
        is_spec = name.startswith("[It]")
        if not is_spec and outcome != "failed":
            continue  # suite set-up and tear-down nodes count only when they fail
        if is_spec:
            name = name[len("[It]"):].strip()
        specs.append((name, outcome, first_line(msg) if outcome == "failed" else msg,
                      float(tc.get("time") or 0)))
    return specs


def read_kv(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition(" ")
                out.setdefault(k, v)
    except OSError:
        pass
    return out


def read_built(path):
    """binary -> module@version from guest-suite.sh's "built COMPONENT BINARY MODULE@VERSION" lines."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[0] == "built":
                    out.setdefault(parts[2], parts[3])
    except OSError:
        pass
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out_dir, suites = sys.argv[1], sys.argv[2:]
    summary = {}
    complete = True
    guard_passed = guard_failed = 0
    for suite in suites:
        res = os.path.join(out_dir, suite)
        conf = os.path.join(res, "conformance")
        versions = read_kv(os.path.join(res, "versions.txt"))
        cversions = read_kv(os.path.join(conf, "versions.txt"))
        built = read_built(os.path.join(res, "versions.txt"))
        runs = []
        try:
            with open(os.path.join(conf, "runs.txt")) as f:
                runs = [line.split() for line in f if line.strip()]
        except OSError:
            pass
        took = {r[0]: (int(r[1]), r[2]) for r in runs if len(r) == 3}
        handlers = cversions.get("handlers", "").split() or [r[0] for r in runs]

        print(f"\n===== conformance: {suite} =====")
        runc = versions.get("runc", "?").replace("runc version ", "")
        runsc = versions.get("runsc", "?").replace("runsc version ", "")
        if built.get("runsc"):
            runsc += f" ({built['runsc']})"
        print(f"  containerd {versions.get('containerd', '?')}, runc {runc}, runsc {runsc}, "
              f"critest {cversions.get('critest', '?')}, kernel {versions.get('kernel', '?')}")
        print(f"  critest --ginkgo.seed {cversions.get('seed', '?')}"
              + (f" --ginkgo.focus '{cversions['focus']}'" if cversions.get("focus") else "")
              + (f" --ginkgo.skip '{cversions['skip']}'" if cversions.get("skip") else "")
              + f", at most {cversions.get('limit_s', '?')} s per handler")
        try:
            with open(os.path.join(res, "guest-checks.json")) as f:
                checks = json.load(f)
            for c in checks.get("checks", []):
                if not c.get("ok"):
                    print(f"  guest pre-check FAILED: {c.get('name')}: {c.get('detail', '')[:300]}")
        except (OSError, ValueError):
            print(f"  no guest-checks.json: the guest did not finish (see {res}/serial.log)")
            complete = False

        results = {}
        for h in handlers:
            path = os.path.join(conf, f"junit-{h}.xml")
            secs, rc = took.get(h, (None, "?"))
            print(f"\n--- {label(h)} (handler {h}) ---")
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                print(f"  no JUnit report (critest status {rc}); see {conf}/critest-{h}.log")
                complete = False
                continue
            try:
                specs = parse_junit(path)
            except ET.ParseError as e:
                print(f"  unreadable JUnit report {path}: {e}")
                complete = False
                continue
            results[h] = {name: (outcome, msg) for name, outcome, msg, _ in specs}
            n = {k: sum(1 for s in specs if s[1] == k) for k in ("passed", "failed", "skipped")}
            dur = f"{secs} s" if secs is not None else "?"
            print(f"  {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped "
                  f"in {dur} (critest status {rc})")
            for name, outcome, msg, _ in specs:
                if outcome == "failed":
                    print(f"  FAIL {name}")
                    print(f"       {msg}")
            summary.setdefault(suite, {})[label(h)] = {
                "handler": h, **n, "seconds": secs, "critest_status": rc,
                "failed_specs": {name: msg for name, outcome, msg, _ in specs if outcome == "failed"},
                "skipped_specs": [name for name, outcome, _, _ in specs if outcome == "skipped"],
            }
            if h == "runsc":
                guard_passed += n["passed"]
                guard_failed += n["failed"]

        if len(results) > 1:
            ran = [h for h in handlers if h in results]
            names = []
            for h in ran:
                names += [s for s in results[h] if s not in names]
            diff = [s for s in names if len({results[h].get(s, ("-",))[0] for h in ran}) > 1]
            print(f"\n--- specs whose outcome differs ({len(diff)}): "
                  + ", ".join(label(h) for h in ran) + " ---")
            for s in diff:
                cells = " ".join(f"{results[h].get(s, ('-',))[0]:<8}" for h in ran)
                print(f"  {cells} {s}")

    with open(os.path.join(out_dir, "conformance-summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    print(f"\nconformance: reports in {out_dir}/<suite>/conformance; guard (this project's shim) "
          f"over {' '.join(suites)}:")
    print(f"{guard_passed} passed, {guard_failed} failed")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
