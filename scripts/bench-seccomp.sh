#!/usr/bin/env bash
# What vmd's seccomp filters cost on VM exits (docs/security.md, docs/benchmarks.md): the same
# guest-kit workloads under vmd with the filters on (the default) and off (VMUX_SECCOMP=off),
# alternating, in one run, and the ratio of the medians.
#
#   serial   the `flood` guest prints BENCH_FLOOD_LINES lines of 80 bytes (one VM exit per
#            byte): serial bytes per second, start to shut off
#   blk      the `blkstress` guest writes and flushes BENCH_BLK_WRITES sectors on a raw disk
#            (each write and each flush a virtio-blk request on the disk's worker thread):
#            flushed writes per second, start to shut off
#
# Usage: scripts/bench-seccomp.sh
# Environment: BENCH_NO_BUILD=1 skips `cargo build --release`; BENCH_PROFILE=debug uses the
# debug build; BENCH_RUNS (default 7), BENCH_FLOOD_LINES (default 1000), BENCH_BLK_WRITES
# (default 200) tune the runs. Needs /dev/kvm and python3; runs under a temporary VMUX_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RUNS=${BENCH_RUNS:-7}
FLOOD_LINES=${BENCH_FLOOD_LINES:-1000}
BLK_WRITES=${BENCH_BLK_WRITES:-200}
PROFILE=${BENCH_PROFILE:-release}

die() { echo "bench-seccomp.sh: $*" >&2; exit 1; }
note() { echo "bench-seccomp.sh: $*" >&2; }

[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable by $(id -un)"
command -v python3 >/dev/null || die "python3 is missing (apt-get install python3)"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building $PROFILE"
    if [ "$PROFILE" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
fi
VMUX=$ROOT/target/$PROFILE/vmux
[ -x "$VMUX" ] || die "$VMUX is missing; build it first"
GUESTS=$(dirname "$(ls -t "$ROOT"/target/"$PROFILE"/build/vmux-*/out/guests/flood.elf | head -n 1)")
[ -f "$GUESTS/blkstress.elf" ] || die "no guest kit under target/$PROFILE/build; build first"

WORK=$(mktemp -d /tmp/vmux-bench-seccomp.XXXXXX)
export VMUX_HOME=$WORK/home
cleanup() {
    for pid_file in "$VMUX_HOME"/state/vms/*/vmd.pid; do
        [ -f "$pid_file" ] && kill -9 "$(cat "$pid_file")" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

truncate -s 64M "$WORK/disk.raw"
"$VMUX" create flood --kernel "$GUESTS/flood.elf" --cmdline "lines=$FLOOD_LINES" --memory 64M >/dev/null
"$VMUX" create blk --kernel "$GUESTS/blkstress.elf" --cmdline "writes=$BLK_WRITES" \
    --memory 64M --disk "$WORK/disk.raw" >/dev/null

# Seconds from `vmux start` to the VM shut off (python3 for a sub-millisecond clock).
run_once() { # VM SECCOMP
    local vm=$1 seccomp=$2
    python3 - "$VMUX" "$vm" "$seccomp" <<'PY'
import json, os, subprocess, sys, time
vmux, vm, seccomp = sys.argv[1:4]
env = dict(os.environ, VMUX_SECCOMP=seccomp)
start = time.monotonic()
subprocess.run([vmux, "start", vm], env=env, check=True, stdout=subprocess.DEVNULL)
while True:
    # `info` can fail while vmd is exiting (it closes the connection): ask again.
    out = subprocess.run([vmux, "info", vm, "--json"], capture_output=True)
    if out.returncode == 0:
        info = json.loads(out.stdout)
        if info["state"] not in ("running", "paused"):
            break
    time.sleep(0.01)
elapsed = time.monotonic() - start
if info["state"] != "shut_off":
    sys.exit(f"{vm} ended {info['state']}: {info.get('reason')}")
print(f"{elapsed:.4f}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A times
for section in serial blk; do
    vm=$([ $section = serial ] && echo flood || echo blk)
    for mode in on off; do times[$section-$mode]=""; done
    note "$section: $RUNS runs each, filters on and off alternating"
    for ((i = 0; i < RUNS; i++)); do
        for mode in on off; do
            times[$section-$mode]+="$(run_once $vm $mode) "
        done
    done
done

printf '%-8s %-28s %-28s %s\n' section "filters on" "filters off" "on/off"
for section in serial blk; do
    on=$(tr ' ' '\n' <<<"${times[$section-on]}" | grep . | median)
    off=$(tr ' ' '\n' <<<"${times[$section-off]}" | grep . | median)
    if [ $section = serial ]; then
        work=$((FLOOD_LINES * 80)) unit="bytes/s"
    else
        work=$BLK_WRITES unit="writes/s"
    fi
    python3 - "$section" "$work" "$unit" "$on" "$off" <<'PY'
import sys
section, work, unit, on, off = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
rate_on, rate_off = work / on, work / off
print(f"{section:<8} {rate_on:>12.0f} {unit:<14} {rate_off:>12.0f} {unit:<14} {rate_on / rate_off:.3f}")
PY
done
echo "(medians of $RUNS runs, start to shut off; ratio > 1 means faster with filters)"
