#!/usr/bin/env bash
# The `linux` section of scripts/bench.sh: real Linux (the Debian kernel + busybox initramfs of
# make-linux-guest.sh) under vmux and under QEMU, side by side in one run, where Linux boots:
# directly on a host with vmx/svm, else inside the real-Linux tier's L1 (scripts/linux-tier.sh,
# QEMU TCG with SVM), so both VMMs run on the same L1 KVM.
#
#   boot      vmux start -> the guest's shell (its "booted" line), vs QEMU -M microvm and
#             -M q35 (-enable-kvm, same kernel, initramfs, command line, 512 MiB, 2 vCPUs);
#             median of BENCH_LINUX_RUNS (default 5) alternating runs; goal vmux <= 0.8 x q35
#   hotplug   setvcpus --live -> the new CPU online in Linux, attach-disk --live -> the disk
#             in Linux (vmux only), medians
#
# Usage: scripts/bench-linux.sh. With BENCH_RESULTS=FILE (set by bench.sh) the rows are
# appended there in bench.sh's format; otherwise a table is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=$(pwd)/target/linux-tier/bench
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --locked --release --quiet
fi
BENCH_LINUX_RUNS=${BENCH_LINUX_RUNS:-5} bash scripts/linux-tier.sh \
    --script scripts/linux-tier/bench-inner.sh --run-dir "$run_dir" >&2

python3 - "$run_dir/inner.log" "${BENCH_RESULTS:-}" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 4 and parts[0] == "RUN":
        key, tool, ms = parts[1], parts[2], int(parts[3])
        if ms < 0:
            sys.exit(f"bench-linux: a {key} run of {tool} failed; see {sys.argv[1]}")
        runs.setdefault((key, tool), []).append(ms)

def median(key, tool):
    values = runs.get((key, tool))
    if not values:
        sys.exit(f"bench-linux: no {key} runs of {tool}; see {sys.argv[1]}")
    return statistics.median(values)

rows = []
vmux_boot = median("boot", "vmux")
for key, label, goal in (("boot_microvm", "microvm", None), ("boot_q35", "q35", 0.8)):
    qemu = median(key, "qemu")
    ratio = vmux_boot / qemu
    verdict = "-" if goal is None else ("met" if ratio <= goal else "MISSED")
    cmp = "none:-" if goal is None else f"le:{goal}"
    rows.append(f"linux_{key} {vmux_boot:.0f} {qemu:.0f} {ratio:.3f} {cmp} {verdict} ms")
for key in ("vcpu_hotplug", "disk_hotplug"):
    rows.append(f"linux_{key} {median(key, 'vmux'):.0f} - - none:- - ms")

if sys.argv[2]:
    with open(sys.argv[2], "a") as out:
        for row in rows:
            print(row, file=out)
else:
    print(f"\n{'benchmark':34} {'vmux':>10} {'QEMU':>10} {'ratio':>8} {'goal':>8}  result")
    for row in rows:
        key, ours, theirs, ratio, goal, verdict, unit = row.split()
        goal = "-" if goal.startswith("none") else "<= " + goal.split(":")[1]
        print(f"{key + ' (' + unit + ')':34} {ours:>10} {theirs:>10} {ratio:>8} {goal:>8}  {verdict}")
    counts = {k: len(v) for k, v in runs.items()}
    print(f"\nruns per measurement: {counts}")
PY
