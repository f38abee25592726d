#!/usr/bin/env bash
# The fuzzing campaign: every cargo-fuzz (libFuzzer) target in fuzz/, each
# for RUNS executions (default 1,000,000) or SECONDS of wall time, with the
# issue's limits: inputs up to 64 KiB, 1 s per input, no allocation over
# 1 GiB (-malloc_limit_mb), 2 GiB of RSS at most. Each target's corpus is
# fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET, minimised with
# `cargo fuzz cmin` afterwards, committed); a finding lands in
# fuzz/artifacts/TARGET and makes the script exit 1.
#
#   scripts/fuzz.sh                 all targets, 1M runs each
#   scripts/fuzz.sh --seconds 600   all targets, 10 minutes each
#   scripts/fuzz.sh acnet formula   only these
#
# Needs a nightly toolchain (libFuzzer's instrumentation): `rustup toolchain
# list` must show one; none can be downloaded on a machine without
# internet, so CI replays the committed corpora and crashers instead
# (fuzzing/tests/replay.rs; copy a crasher from fuzz/artifacts/TARGET into
# fuzz/regressions/TARGET once it is fixed). cargo-fuzz itself: `cargo
# install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs=1000000
seconds=""
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
limits=(-max_len=65536 -timeout=1 -malloc_limit_mb=1024 -rss_limit_mb=2048 -print_final_stats=1)
if [ -n "$seconds" ]; then
    limits+=("-max_total_time=$seconds")
else
    limits+=("-runs=$runs")
fi
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ -d "seeds/$t" ]; then
        cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    fi
    echo "== $t"
    start=$(date +%s)
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- "${limits[@]}" 2> "/tmp/acbench-fuzz-$t.log"; then
        echo "FINDING in $t: see fuzz/artifacts/$t and /tmp/acbench-fuzz-$t.log" >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "/tmp/acbench-fuzz-$t.log" || true
    cargo +nightly fuzz cmin -O "$t" "corpus/$t" > /dev/null 2>&1 || true
    echo "   $(ls "corpus/$t" | wc -l) corpus files, $(( $(date +%s) - start )) s"
done
exit $status
