#!/bin/sh
# virtio-net throughput through a TAP: the guest kit's `net` program (tests/guests/net.rs) under
# vmux and under QEMU (userspace virtio-net, vhost=off: the same job vmux's worker thread does),
# both on one isolated vmux network inside a throwaway network namespace (root; nothing touches
# the host's namespace, no packet leaves it).
#
#   scripts/bench-net.sh [frames]      # default 10000 frames per guest->host run
#                                      # VMUX_BIN=path overrides the vmux binary
#                                      # FLOOD_S=seconds of host->guest flood (default 2)
#                                      # ROUNDS=rounds, medians reported (default 3)
#
# What is measured, per VMM, from the host side only (the TAP's own counters in
# /sys/class/net/<tap>/statistics, identical for both VMMs):
#   guest->host  the host sends "<frames> <bytes>" to UDP port 5001 of the guest, which answers
#                with that many datagrams as fast as its transmit queue allows; frames/s and
#                payload bytes/s are the TAP's rx counter over the time from first to last frame.
#   host->guest  the host floods UDP port 5002 of the guest for FLOOD_S seconds at 40000
#                frames/s, several times what a guest takes here; frames/s is what the TAP handed to the VMM (its tx
#                counter: a VMM reads the TAP only when the guest has posted buffers), and the
#                guest's own count (UDP port 5003) is checked against it.
# Beside the rates: the host CPU time the VMM's non-vCPU threads (vmux's net0 worker and vmd's
# other threads; QEMU's main loop and helpers) spent per frame moved, the device model's cost.
# Each is run with 18-byte and 1400-byte payloads, vmux and QEMU alternating test by test (the
# machine's load drifts), ROUNDS times; medians are printed. Ratios are vmux / QEMU (> 1: vmux
# faster). Build vmux with --release first: a debug build measures the Rust debug code.
#
# QEMU boots the same ELF with `-M q35 -kernel` (its PVH note) and
# `-netdev tap,vhost=off -device virtio-net-pci,disable-legacy=on` (`-name ...,debug-threads=on`
# names its vCPU thread `CPU 0/KVM`, so it can be told apart from the device threads).
set -eu

FRAMES=${1:-10000}
FLOOD_S=${FLOOD_S:-2}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VMUX_BIN:-}
if [ -z "$BIN" ]; then
    for candidate in "$ROOT/target/release/vmux" "$ROOT/target/debug/vmux"; do
        [ -x "$candidate" ] && BIN=$candidate && break
    done
fi
[ -n "$BIN" ] || { echo "build vmux first (cargo build)" >&2; exit 1; }
GUEST=$(ls -t "$ROOT"/target/*/build/vmux-*/out/guests/net.elf 2>/dev/null | head -1)
[ -n "$GUEST" ] || { echo "no net.elf under target/: build vmux first (cargo build)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root (network namespace, TAPs)" >&2; exit 0; }
[ -w /dev/kvm ] || { echo "skipped: needs /dev/kvm" >&2; exit 0; }
for tool in ip nft dnsmasq python3 qemu-system-x86_64; do
    command -v "$tool" >/dev/null || { echo "skipped: needs $tool" >&2; exit 0; }
done

NS="vmux-bnet-$$"
WORK=$(mktemp -d)
QEMU_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
in_ns() { ip netns exec "$NS" env VMUX_HOME="$WORK/home" "$@"; }
in_ns ip link set lo up

# The network both guests sit on: bridge vmux-bnet, 10.99.0.1/24, dnsmasq.
in_ns "$BIN" net-define-as bnet --mode isolated --subnet 10.99.0.0/24 >/dev/null
in_ns "$BIN" net-start bnet >/dev/null
BRIDGE=vmux-bnet

# vmux: one VM with one NIC on the network.
in_ns "$BIN" create nb --kernel "$GUEST" --memory 64M --network bnet >/dev/null
in_ns "$BIN" start nb >/dev/null
in_ns "$BIN" console nb --until 'net: gateway \S+ (replied|did not reply)' --timeout 120 \
    >"$WORK/vmux.log" || { cat "$WORK/vmux.log"; echo "vmux guest did not come up" >&2; exit 1; }

# QEMU: a TAP of its own on the same bridge.
in_ns ip tuntap add dev qnb0 mode tap
in_ns ip link set dev qnb0 master "$BRIDGE" up
in_ns qemu-system-x86_64 -M q35 -accel kvm -m 64 -nodefaults -no-user-config -display none \
    -monitor none -serial "file:$WORK/qemu.log" -no-reboot -pidfile "$WORK/qemu.pid" \
    -name qnb,debug-threads=on \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -netdev tap,id=n0,ifname=qnb0,script=no,downscript=no,vhost=off \
    -device virtio-net-pci,netdev=n0,disable-legacy=on,mac=52:54:00:99:00:02 \
    -kernel "$GUEST" 2>"$WORK/qemu.err" &
QEMU_PID=$!
i=0
until grep -qE 'net: gateway \S+ (replied|did not reply)' "$WORK/qemu.log" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 1200 ] || { cat "$WORK/qemu.log" "$WORK/qemu.err"; echo "QEMU guest did not come up" >&2; exit 1; }
    sleep 0.1
done

lease() { sed -n 's/.*net: lease \([0-9.]*\) gateway.*/\1/p' "$1" | head -1; }
VMUX_IP=$(lease "$WORK/vmux.log")
QEMU_IP=$(lease "$WORK/qemu.log")

cat >"$WORK/measure.py" <<'EOF'
"""Measures both guests from their TAPs' counters, alternating VMMs test by test (this box is
shared, so the load drifts), and prints the medians of ROUNDS rounds."""
import os, socket, statistics, sys, time

frames, flood_s, rounds = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
OFFER = 40_000
guests = {"vmux": (sys.argv[4], sys.argv[5]), "QEMU": (sys.argv[6], sys.argv[7])}
pids = {"vmux": int(sys.argv[8]), "QEMU": int(sys.argv[9])}

def io_cpu_ns(name):
    """CPU time of the VMM's threads other than its vCPUs (vmux: vcpuN; QEMU: CPU N/KVM): the
    host cost of the device model, in ns."""
    total = 0
    for task in os.listdir(f"/proc/{pids[name]}/task"):
        try:
            comm = open(f"/proc/{pids[name]}/task/{task}/comm").read().strip()
            if comm.startswith("vcpu") or comm.endswith("/KVM"):
                continue
            total += int(open(f"/proc/{pids[name]}/task/{task}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total

def counter(tap, name):
    with open(f"/sys/class/net/{tap}/statistics/{name}") as f:
        return int(f.read())

def burst(tap, guest, size):
    """The guest sends `frames` datagrams of `size` bytes; (frames/s from first to last,
    frames)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("10.99.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    base = seen = first_count = counter(tap, "rx_packets")
    sink.sendto(f"{frames} {size}".encode(), (guest, 5001))
    deadline = time.monotonic() + 120
    first = last = None
    while time.monotonic() < deadline:
        now, count = time.monotonic(), counter(tap, "rx_packets")
        if count > base and first is None:
            first, first_count = now, count
        if count != seen:
            seen, last = count, now
        if count - base >= frames or (last is not None and now - last > 2):
            break
        time.sleep(0.002)
    sink.close()
    if first is None or last == first:
        return 0.0, seen - base
    return (seen - first_count) / (last - first), seen - base

def guest_count(s, guest):
    for _ in range(5):
        s.sendto(b"?", (guest, 5003))
        try:
            return int(s.recv(64))
        except (socket.timeout, ValueError):
            continue
    return 0

def flood(tap, guest, size):
    """Floods the guest for flood_s seconds; (frames/s the TAP handed to the VMM, frames)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.99.0.1", 0))
    s.settimeout(2)
    guest_before = guest_count(s, guest)
    payload, target = b"x" * size, (guest, 5002)
    base = counter(tap, "tx_packets")
    start = time.monotonic()
    end = start + flood_s
    # Paced at OFFER frames/s, several times what a guest takes here: enough to keep it busy
    # without the sender eating the CPU the VMM and the guest need.
    sent = 0
    while (now := time.monotonic()) < end:
        due = int((now - start) * OFFER) - sent
        for _ in range(min(due, 256)):
            try:
                s.sendto(payload, target)
            except OSError:
                pass
        sent += max(due, 0)
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    delivered = counter(tap, "tx_packets") - base
    time.sleep(0.5)  # what the TAP still queued drains into the guest
    counted = guest_count(s, guest) - guest_before
    drained = counter(tap, "tx_packets") - base
    s.close()
    # The guest counting frames the VMM never took from the TAP would be a bug; counting many
    # fewer than it took means the device lost some (a few are the report requests and the
    # host's ARP probes, which go through the TAP but are not sink datagrams).
    if not drained - 8 <= counted <= drained:
        print(f"warning: {tap}: the guest counted {counted} frames, the TAP handed over {drained}")
    return delivered / elapsed, drained

tests = [("guest->host", burst, 18), ("guest->host", burst, 1400),
         ("host->guest", flood, 18), ("host->guest", flood, 1400)]
for name, (tap, guest) in guests.items():
    burst(tap, guest, 18)  # warm-up: ARP entries, first-use costs
results = {(t, size): {n: [] for n in guests} for t, _, size in tests}
cpu = {(t, size): {n: [] for n in guests} for t, _, size in tests}
for r in range(rounds):
    for i, (t, run, size) in enumerate(tests):
        order = list(guests) if (r + i) % 2 == 0 else list(guests)[::-1]
        for name in order:
            before = io_cpu_ns(name)
            rate, moved = run(*guests[name], size)
            results[(t, size)][name].append(rate)
            cpu[(t, size)][name].append((io_cpu_ns(name) - before) / 1000 / max(moved, 1))
print(f"{'test':<18} {'vmux frames/s':>14} {'QEMU frames/s':>14} {'vmux MB/s':>10} {'QEMU MB/s':>10} {'ratio':>6}"
      f" {'vmux us/frame':>14} {'QEMU us/frame':>14}")
for (t, size), by in results.items():
    v, q = statistics.median(by["vmux"]), statistics.median(by["QEMU"])
    vc, qc = statistics.median(cpu[(t, size)]["vmux"]), statistics.median(cpu[(t, size)]["QEMU"])
    ratio = v / q if q else float("nan")
    print(f"{t + ' ' + str(size) + 'B':<18} {v:14.0f} {q:14.0f} {v * size / 1e6:10.2f} {q * size / 1e6:10.2f} {ratio:6.2f}"
          f" {vc:14.1f} {qc:14.1f}")
print(f"(medians of {rounds} rounds; MB/s counts UDP payload bytes; us/frame is host CPU time of"
      f" the VMM's non-vCPU threads per frame moved)")
EOF

echo "## virtio-net over TAP: the guest kit's net program, vmux vs QEMU (vhost=off)"
echo "vmux: $BIN; guest $VMUX_IP on vm-nb-0"
echo "qemu: $(qemu-system-x86_64 --version | head -1); guest $QEMU_IP on qnb0"
echo "guest->host: $FRAMES datagrams per run; host->guest: ${FLOOD_S}s flood per run; $ROUNDS rounds"
VMD_PID=$(in_ns "$BIN" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["vms"][0]["pid"])')
in_ns python3 "$WORK/measure.py" "$FRAMES" "$FLOOD_S" "$ROUNDS" vm-nb-0 "$VMUX_IP" qnb0 "$QEMU_IP" \
    "$VMD_PID" "$(cat "$WORK/qemu.pid")"
in_ns "$BIN" stats nb | grep '^NIC' || true
