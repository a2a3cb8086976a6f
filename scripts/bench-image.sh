#!/usr/bin/env bash
# The `image` section of scripts/bench.sh: a VM made from a cloud image, from
# `vmux create --image ... --cloud-init ... && vmux start` to the guest's SSH banner, against
# QEMU -M q35 -enable-kvm booting the same image with its kernel and initrd extracted by hand
# (scripts/linux-tier/bench-image-inner.sh says exactly what is compared). Runs where Linux
# boots: directly on a host with vmx/svm, else in the real-Linux tier's L1
# (scripts/linux-tier.sh), so both VMMs run on the same L1 KVM. Median of BENCH_IMAGE_RUNS
# (default 3) alternating runs.
#
# Usage: scripts/bench-image.sh. With BENCH_RESULTS=FILE (set by bench.sh) the row is appended
# there in bench.sh's format; otherwise a table is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir=$(pwd)/target/linux-tier/bench-image
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --locked --release --quiet
fi
BENCH_IMAGE_RUNS=${BENCH_IMAGE_RUNS:-3} bash scripts/linux-tier.sh \
    --script scripts/linux-tier/bench-image-inner.sh --run-dir "$run_dir" >&2

python3 - "$run_dir/inner.log" "${BENCH_RESULTS:-}" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 4 and parts[0] == "RUN":
        key, tool, ms = parts[1], parts[2], int(parts[3])
        if ms < 0:
            sys.exit(f"bench-image: a {key} run of {tool} failed; see {sys.argv[1]}")
        runs.setdefault(key, []).append(ms)
for key in ("image_ssh", "image_ssh_q35"):
    if not runs.get(key):
        sys.exit(f"bench-image: no {key} runs; see {sys.argv[1]}")
vmux = statistics.median(runs["image_ssh"])
qemu = statistics.median(runs["image_ssh_q35"])
row = f"image_create_to_ssh_q35 {vmux:.0f} {qemu:.0f} {vmux / qemu:.3f} none:- - ms"
if sys.argv[2]:
    with open(sys.argv[2], "a") as out:
        print(row, file=out)
else:
    print(f"\n{'benchmark':40} {'vmux':>10} {'QEMU q35':>10} {'ratio':>8}")
    print(f"{'create --image + start -> SSH banner (ms)':40} {vmux:>10.0f} {qemu:>10.0f} {vmux / qemu:>8.3f}")
    print(f"\nruns: vmux {runs['image_ssh']}, qemu {runs['image_ssh_q35']}")
PY
