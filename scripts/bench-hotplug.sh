#!/bin/sh
# Hotplug latency: from the request to the guest's own "cpu 1 online" / "disk N ready: ..."
# line, for one vCPU and one disk, median of N runs (default 20), engine-side and through vmd.
# The guest is the `hotplug` guest-kit program (benches/hotplug.rs describes the runs).
# Goals: <= 5 ms for a vCPU and <= 20 ms for a disk, engine-side.
#
#   scripts/bench-hotplug.sh [runs]
#
# On a host whose KVM emulates guest instructions (no vmx/svm, like the development
# machines), most of each latency is the guest's own work at ~1.5 M instructions/s.
set -eu

RUNS=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -w /dev/kvm ] || { echo "skipped: /dev/kvm is not usable" >&2; exit 0; }
if grep -qwE 'vmx|svm' /proc/cpuinfo; then
    echo "host: hardware virtualization"
else
    echo "host: no vmx/svm (KVM emulates guest instructions; guest-side times are inflated)"
fi
cd "$ROOT"
VMUX_BENCH_RUNS=$RUNS cargo bench --quiet --bench hotplug
