#!/usr/bin/env bash
# TUI idle cost (issue 3), side by side with htop in the same run: with 10 running VMs (the
# demo guest, 64 MiB each) and the VM list on screen, `vmux` (the TUI) and `htop` each run in
# their own 120x40 pseudo-terminal for BENCH_TUI_S seconds (default 30) after a warm-up of
# BENCH_TUI_WARMUP_S (default 5). Measured for each: CPU % of one host CPU (utime + stime of
# the process from /proc/PID/stat) and bytes/s it wrote to its terminal (read from the pty
# master). Goals: vmux <= 0.5 % CPU and <= 2048 B/s.
#
# Usage: scripts/bench-tui.sh           (scripts/bench.sh runs it as its `tui` section)
# Environment: BENCH_NO_BUILD=1 skips the release build; BENCH_RESULTS=FILE appends result rows
# for bench.sh's table instead of printing them; BENCH_TUI_VMS (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MEASURE_S=${BENCH_TUI_S:-30}
WARMUP_S=${BENCH_TUI_WARMUP_S:-5}
VM_COUNT=${BENCH_TUI_VMS:-10}
CPU_GOAL=0.5
OUTPUT_GOAL=2048

die() { echo "bench-tui.sh: $*" >&2; exit 1; }
note() { echo "bench-tui.sh: $*" >&2; }

if ! command -v htop >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "htop is missing; install it with: sudo apt-get install -y htop"
    note "installing htop"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq htop >/dev/null
fi
command -v python3 >/dev/null || die "python3 is missing; install it with: apt-get install -y python3"
[ -r /dev/kvm ] && [ -w /dev/kvm ] ||
    die "/dev/kvm is missing or not usable by $(id -un): the VMs on the list need it"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building release (cargo build --release)"
    cargo build --release --quiet
fi
VMUX=$ROOT/target/release/vmux
[ -x "$VMUX" ] || die "$VMUX is missing; run cargo build --release"

WORK=$(mktemp -d -t vmux-bench-tui.XXXXXX)
export VMUX_HOME=$WORK/home
cleanup() {
    local def pidfile pid
    for def in "$VMUX_HOME"/config/vms/*.toml; do
        [ -e "$def" ] || continue
        "$VMUX" destroy "$(basename "$def" .toml)" >/dev/null 2>&1 || true
    done
    for pidfile in "$VMUX_HOME"/state/vms/*/vmd.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note "starting $VM_COUNT demo VMs (64 MiB each)"
for i in $(seq 1 "$VM_COUNT"); do
    "$VMUX" create "tui$i" --demo --memory 64M --start >/dev/null
done
running=$("$VMUX" list | grep -c ' running' || true)
[ "$running" -eq "$VM_COUNT" ] || die "only $running of $VM_COUNT VMs are running"

note "vmux and htop in 120x40 ptys: ${WARMUP_S}s warm-up, then ${MEASURE_S}s measured"
mkdir -p "$WORK/htop-home"
out=$(python3 - "$VMUX" "$WORK/htop-home" "$WARMUP_S" "$MEASURE_S" <<'PY'
import fcntl, os, pty, select, signal, struct, subprocess, sys, termios, time

vmux, htop_home, warmup, measure = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
ROWS, COLS = 40, 120
TICK = os.sysconf("SC_CLK_TCK")

def spawn(argv, env):
    """argv on a new 120x40 pty as its controlling terminal; returns (process, master fd)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    def become_session_leader():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env={**os.environ, "TERM": "xterm-256color", **env},
                            preexec_fn=become_session_leader)
    os.close(slave)
    return proc, master

def cpu_ticks(pid):
    # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

# A terminal answers cursor-position and device-attribute queries; a TUI may wait for them.
ANSWERS = {b"\x1b[6n": b"\x1b[1;1R", b"\x1b[c": b"\x1b[?62;22c"}

tools = {
    "vmux": spawn([vmux], {}),
    "htop": spawn(["htop"], {"HOME": htop_home, "XDG_CONFIG_HOME": htop_home}),
}
counted = {name: 0 for name in tools}
screen = {name: b"" for name in tools}
start = time.monotonic()
window = (start + warmup, start + warmup + measure)
ticks = {}
while time.monotonic() < window[1]:
    now = time.monotonic()
    if now >= window[0] and not ticks:
        ticks = {name: cpu_ticks(p.pid) for name, (p, _) in tools.items()}
        counted = {name: 0 for name in tools}
    fds = {master: name for name, (_, master) in tools.items()}
    ready, _, _ = select.select(list(fds), [], [], 0.2)
    for fd in ready:
        name = fds[fd]
        try:
            data = os.read(fd, 65536)
        except OSError:
            sys.exit(f"{name} closed its terminal: it exited early")
        counted[name] += len(data)
        if len(screen[name]) < 1 << 20:
            screen[name] += data
        for query, answer in ANSWERS.items():
            if query in data:
                os.write(fd, answer)
elapsed = time.monotonic() - window[0]
results = []
for name, (proc, master) in tools.items():
    if proc.poll() is not None:
        sys.exit(f"{name} exited with {proc.returncode} during the measurement")
    cpu = (cpu_ticks(proc.pid) - ticks[name]) / TICK / elapsed * 100
    results += [f"{cpu:.3f}", f"{counted[name] / elapsed:.0f}"]
if b"tui1" not in screen["vmux"]:
    print("bench-tui.sh: warning: the VM list (tui1) never showed on the vmux screen",
          file=sys.stderr)
for name, (proc, master) in tools.items():
    os.write(master, b"q")
deadline = time.monotonic() + 3
for name, (proc, master) in tools.items():
    try:
        proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
print(" ".join(results))
PY
)
read -r vmux_cpu vmux_bps htop_cpu htop_bps <<<"$out"

row() { # key ours theirs goal unit
    local ratio verdict
    ratio=$(awk "BEGIN { if ($3 == 0) print \"-\"; else printf \"%.3f\", $2 / $3 }")
    verdict=$(awk "BEGIN { print ($2 <= $4) ? \"met\" : \"MISSED\" }")
    echo "$1 $2 $3 $ratio abs:$4 $verdict $5"
}
rows="$(row tui_idle_cpu "$vmux_cpu" "$htop_cpu" "$CPU_GOAL" "%")
$(row tui_output_rate "$vmux_bps" "$htop_bps" "$OUTPUT_GOAL" "B/s")"
if [ -n "${BENCH_RESULTS:-}" ]; then
    echo "$rows" >>"$BENCH_RESULTS"
else
    printf '%-18s %10s %10s %8s %10s  %s\n' benchmark vmux htop ratio goal result
    while read -r key ours theirs ratio goal verdict unit; do
        printf '%-18s %10s %10s %8s %10s  %s\n' "$key ($unit)" "$ours" "$theirs" "$ratio" \
            "<= ${goal#abs:}" "$verdict"
    done <<<"$rows"
fi
