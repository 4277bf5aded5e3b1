#!/bin/bash
# Builds the fuzz targets and runs each for a bounded time: `make fuzz` (FUZZ_SECONDS, default
# 300) and `make fuzz-smoke` (FUZZ_SMOKE_SECONDS, default 30) call it.
#
#   fuzz/run.sh SECONDS [TARGET...]     every target (fuzz/fuzz_targets/) when none is named
#
# cargo-fuzz drives libFuzzer (coverage-guided); it is installed from crates.io when missing.
# The build is on the stable toolchain without a sanitizer (`-s none`): the parsers are safe
# Rust, so what is looked for is a panic (an assert, an overflow with debug assertions on, an
# out-of-range index), which needs no sanitizer, and stable keeps the fuzzing on the toolchain
# the project builds with. FUZZ_TOOLCHAIN=nightly FUZZ_SANITIZER=address gives AddressSanitizer
# where a nightly toolchain is installed.
#
# Each target starts from its seeds in fuzz/corpus/<target>/ (never written) and keeps what it
# finds in fuzz/target/corpus/<target>/, so a later run goes on from there. A crash is saved in
# fuzz/artifacts/<target>/ with the libFuzzer command that replays it. Logs: fuzz/target/logs/.
# Ends with "N passed, N failed" (a target fails when it finds a crash).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

CARGO=${CARGO:-cargo}
toolchain=()
[[ -n ${FUZZ_TOOLCHAIN:-} ]] && toolchain=("+$FUZZ_TOOLCHAIN")
sanitizer=${FUZZ_SANITIZER:-none}

if ! "$CARGO" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io" >&2
    "$CARGO" install cargo-fuzz --locked
fi

# -a: debug assertions and overflow checks on, so an arithmetic overflow is a crash.
build_flags=(-s "$sanitizer" -a)
started=$(date +%s)
nice -n 19 "$CARGO" "${toolchain[@]}" fuzz build "${build_flags[@]}"
echo "fuzz: built in $(($(date +%s) - started)) s"

mkdir -p target/logs
passed=0
failed=0
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t" "corpus/$t"
    log=target/logs/$t.log
    rc=0
    nice -n 19 "$CARGO" "${toolchain[@]}" fuzz run "${build_flags[@]}" "$t" \
        "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    # The last status line: "#N DONE cov: C ft: F corp: K/..." (or the line before a crash).
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
        verdict=ok
    else
        failed=$((failed + 1))
        verdict="CRASH (exit $rc; see $here/$log and $here/artifacts/$t/)"
    fi
    printf 'fuzz: %-13s %s: %s runs, %s exec/s, cov %s, ft %s, corpus %s\n' \
        "$t" "$verdict" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
