#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (docs/security.md, "Fuzzing") on
# the stable toolchain: libFuzzer (the libfuzzer-sys crate) driving code that rustc
# instruments with LLVM's SanitizerCoverage through stable flags (-C passes=sancov-module and
# -C llvm-args; no nightly, no RUSTC_BOOTSTRAP).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  budget per target (default 60); targets run one after the other
#   TARGET   some of: the folders of fuzz/corpus (default: all)
#
# Each target starts from its seed corpus fuzz/corpus/TARGET (committed; rebuilt by
# scripts/fuzz-seeds.py), the inputs of bugs found earlier in fuzz/regressions/TARGET
# (committed; tests/fuzz_corpus.rs replays them) and what earlier runs found in fuzz/work/TARGET
# (not committed).
# Prints executions, executions per second and coverage per target: edges (libFuzzer's
# "cov") reached by the seed corpus alone, then at the end, and features ("ft"). A crash, a
# panic, a timeout (10 s per input) or running out of memory (4 GiB) saves the input under
# fuzz/artifacts/TARGET/ (a stack overflow kills the process without one: rerun the target's
# corpus through tests/fuzz_corpus.rs under gdb to find it) and makes the script exit 1 after
# the other targets. Found bugs, once fixed, keep their input in fuzz/regressions/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
if (($#)); then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz/corpus)
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
# The SanitizerCoverage flags cargo-fuzz uses, all accepted by stable rustc; --target keeps
# them off build scripts and proc macros. Debug assertions and overflow checks turn silent
# wrong arithmetic into findings.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "fuzz.sh: building fuzz/ (libFuzzer, SanitizerCoverage, $(rustc --version))"
(cd fuzz && CARGO_INCREMENTAL=0 cargo build --locked --release --target "$triple" --quiet)
bin=fuzz/target/$triple/release/vmux-fuzz

failed=()
report=()
for target in "${targets[@]}"; do
    if [ ! -d "fuzz/corpus/$target" ]; then
        echo "fuzz.sh: no target '$target'; targets: $(ls fuzz/corpus | tr '\n' ' ')" >&2
        exit 2
    fi
    work=fuzz/work/$target
    artifacts=fuzz/artifacts/$target
    log=fuzz/work/$target.log
    mkdir -p "$work" "$artifacts"
    seeds=("fuzz/corpus/$target")
    if [ -d "fuzz/regressions/$target" ]; then
        seeds+=("fuzz/regressions/$target")
    fi
    extra=()
    case $target in
        # Guest RAM images: two 256-entry queues and their buffers need room.
        virtio_blk | virtio_net) extra+=(-max_len=16384) ;;
    esac
    echo "fuzz.sh: $target for ${seconds}s (log: $log)"
    status=ok
    VMUX_FUZZ_TARGET=$target "$bin" "$work" "${seeds[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "${extra[@]}" \
        >"$log" 2>&1 || status=FAILED
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    seed_cov=$(grep -o 'INITED cov: [0-9]*' "$log" | head -1 | grep -o '[0-9]*' || true)
    cov=$(grep -o ' cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    ft=$(grep -o ' ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    corp=$(grep -o ' corp: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    if [ "$status" != ok ]; then
        failed+=("$target")
        grep -E 'panicked at|ERROR: libFuzzer|Test unit written' "$log" | head -5 >&2 || true
    fi
    report+=("$(printf '%-14s %6ss %12s %9s %7s %7s %7s %6s  %s' "$target" "$seconds" \
        "${execs:-?}" "${rate:-?}" "${seed_cov:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status")")
done

printf '\n%-14s %7s %12s %9s %7s %7s %7s %6s  %s\n' target budget executions exec/s seeds \
    edges features corpus result
printf '%s\n' "${report[@]}"
if ((${#failed[@]})); then
    echo "fuzz.sh: findings in ${failed[*]}; inputs under fuzz/artifacts/" >&2
    exit 1
fi
