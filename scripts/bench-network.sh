#!/bin/sh
# Network start/stop time: `vmux net-start default` (bridge + address + nft table + dnsmasq
# serving) and `vmux net-destroy default`, against the same steps as plain shell commands,
# in a throwaway network namespace (root; nothing touches the host's namespace).
#
#   scripts/bench-network.sh [runs]        # default 20 runs; VMUX_BIN=path overrides the binary
set -eu

RUNS=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VMUX_BIN:-}
if [ -z "$BIN" ]; then
    for candidate in "$ROOT/target/release/vmux" "$ROOT/target/debug/vmux"; do
        [ -x "$candidate" ] && BIN=$candidate && break
    done
fi
[ -n "$BIN" ] || { echo "build vmux first (cargo build)" >&2; exit 1; }
for tool in ip nft dnsmasq; do
    command -v "$tool" >/dev/null || { echo "skipped: needs $tool" >&2; exit 0; }
done

NS="vmux-bench-$$"
HOME_DIR=$(mktemp -d)
cleanup() {
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
in_ns() { ip netns exec "$NS" env VMUX_HOME="$HOME_DIR" "$@"; }

elapsed() { # command... -> prints milliseconds
    start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N)
    echo $(( (end - start) / 1000 ))
}
median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", (a[int((NR + 1) / 2)] + a[int((NR + 2) / 2)]) / 2 / 1000 }'; }

manual_start() {
    in_ns sh -c '
        ip link add name vmb0 type bridge stp_state 0 forward_delay 0
        ip address add 192.168.124.1/24 broadcast 192.168.124.255 dev vmb0
        ip link set dev vmb0 up
        printf "table ip vmb {\n chain postrouting {\n type nat hook postrouting priority srcnat; policy accept;\n ip saddr 192.168.124.0/24 ip daddr != 192.168.124.0/24 masquerade\n }\n}\n" | nft -f -
        dnsmasq --conf-file=/dev/null --pid-file="$VMUX_HOME/manual.pid" --interface=vmb0 \
            --bind-interfaces --except-interface=lo --listen-address=192.168.124.1 \
            --dhcp-range=192.168.124.2,192.168.124.254,255.255.255.0 \
            --dhcp-leasefile="$VMUX_HOME/manual.leases"'
}
manual_stop() {
    in_ns sh -c 'kill $(cat "$VMUX_HOME/manual.pid"); nft delete table ip vmb; ip link delete vmb0'
}

in_ns "$BIN" net-list --all >/dev/null   # defines "default" on first use
: >"$HOME_DIR/start" ; : >"$HOME_DIR/stop" ; : >"$HOME_DIR/mstart" ; : >"$HOME_DIR/mstop"
i=0
while [ "$i" -lt "$RUNS" ]; do
    elapsed in_ns "$BIN" net-start default >>"$HOME_DIR/start"
    elapsed in_ns "$BIN" net-destroy default >>"$HOME_DIR/stop"
    elapsed manual_start >>"$HOME_DIR/mstart"
    elapsed manual_stop >>"$HOME_DIR/mstop"
    sleep 0.1   # let the killed dnsmasq release its sockets
    i=$((i + 1))
done

echo "## network start/stop ($RUNS runs, median, $(basename "$BIN") build: $BIN)"
printf '%-44s %10s\n' "step" "ms"
printf '%-44s %10s\n' "vmux net-start default (bridge+nft+dnsmasq)" "$(median <"$HOME_DIR/start")"
printf '%-44s %10s\n' "  same steps as plain shell commands" "$(median <"$HOME_DIR/mstart")"
printf '%-44s %10s\n' "vmux net-destroy default" "$(median <"$HOME_DIR/stop")"
printf '%-44s %10s\n' "  same steps as plain shell commands" "$(median <"$HOME_DIR/mstop")"
