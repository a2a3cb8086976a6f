#!/usr/bin/env bash
# Other hosts over SSH (issue 13), remote against local in the same run, over loopback SSH with
# a warm ControlMaster (a test sshd on a free port of 127.0.0.1 with its own host key; its
# logins run this build's `vmux agent --stdio` on the "remote" home):
#
#   remote_list_latency   `vmux --connect ssh://… list --json` vs `vmux list --json` on the same
#                         home with 10 running VMs: median of BENCH_REMOTE_RUNS (default 21)
#                         alternating runs, each a whole command (process start to exit).
#                         Goal: remote <= local + 15 ms. Also measured: `ssh HOST true`
#                         through the same ControlMaster (the SSH session alone: the remote
#                         login shell and its rc files), and the remote time minus it
#                         (remote_list_over_session: what vmux adds to an SSH session).
#   remote_echo_rtt       a console keystroke's echo round trip (key written -> the guest's
#                         echo read) through `vmux --connect … console` vs `vmux console`:
#                         median of 40 keystrokes each. Goal: remote <= local + 5 ms.
#   remote_tui_idle_cpu   the TUI showing 2 hosts x 10 running VMs (the local home and the
#                         remote one, autoconnected from vmux.toml) vs the TUI with the local
#                         10 only, each in a 120x40 pty for BENCH_TUI_S s (default 30) after a
#                         warm-up. Goal: <= 0.5 % of one CPU.
#
# Usage: scripts/bench-remote.sh   (scripts/bench.sh runs it as its `remote` section)
# Environment: BENCH_NO_BUILD=1 skips the release build; BENCH_RESULTS=FILE appends result rows
# for bench.sh's table instead of printing them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RUNS=${BENCH_REMOTE_RUNS:-21}
MEASURE_S=${BENCH_TUI_S:-30}
WARMUP_S=${BENCH_TUI_WARMUP_S:-8}
VM_COUNT=10

die() { echo "bench-remote.sh: $*" >&2; exit 1; }
note() { echo "bench-remote.sh: $*" >&2; }

for tool in sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client python3:python3; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] ||
        die "${tool%%:*} is missing; install it with: apt-get install -y ${tool#*:}"
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is missing or not usable by $(id -un)"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building release (cargo build --release)"
    cargo build --release --quiet
fi
VMUX=$ROOT/target/release/vmux
[ -x "$VMUX" ] || die "$VMUX is missing; run cargo build --release"

WORK=$(mktemp -d -t vmux-bench-remote.XXXXXX)
LOCAL_HOME=$WORK/local
REMOTE_HOME=$WORK/remote
SSHD_PID=
cleanup() {
    local home def pidfile pid
    for home in "$LOCAL_HOME" "$REMOTE_HOME"; do
        for def in "$home"/config/vms/*.toml; do
            [ -e "$def" ] || continue
            VMUX_HOME=$home "$VMUX" destroy "$(basename "$def" .toml)" >/dev/null 2>&1 || true
        done
        for pidfile in "$home"/state/vms/*/vmd.pid; do
            [ -e "$pidfile" ] || continue
            pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        done
    done
    ssh -F "$WORK/ssh_config" -O exit vmux-bench-remote >/dev/null 2>&1 || true
    [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- a loopback sshd whose logins serve the remote home ------------------------------------

mkdir -p "$LOCAL_HOME" "$REMOTE_HOME" "$WORK/bin"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/client_key"
echo "command=\"VMUX_HOME=$REMOTE_HOME exec $VMUX agent --stdio\",no-pty $(cat "$WORK/client_key.pub")" \
    >"$WORK/authorized_keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
USER_NAME=$(id -un)
cat >"$WORK/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
PrintMotd no
AllowUsers $USER_NAME
CONF
[ "$(id -u)" -ne 0 ] || mkdir -p /run/sshd
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
"$SSHD" -D -e -f "$WORK/sshd_config" 2>"$WORK/sshd.log" &
SSHD_PID=$!
echo "vmux-bench-remote $(cat "$WORK/host_key.pub")" >"$WORK/known_hosts"
cat >"$WORK/ssh_config" <<CONF
Host vmux-bench-remote
  HostName 127.0.0.1
  Port $PORT
  User $USER_NAME
  IdentityFile $WORK/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $WORK/known_hosts
  StrictHostKeyChecking yes
  HostKeyAlias vmux-bench-remote
  ControlMaster auto
  ControlPath $WORK/cm-%C
  ControlPersist 600
  LogLevel ERROR
CONF
printf '#!/bin/sh\nexec %s -F %s "$@"\n' "$(command -v ssh)" "$WORK/ssh_config" >"$WORK/bin/ssh"
chmod +x "$WORK/bin/ssh"
export PATH=$WORK/bin:$PATH
URI=ssh://vmux-bench-remote
for _ in $(seq 50); do
    ssh vmux-bench-remote true </dev/null >/dev/null 2>&1 && break
    sleep 0.1
done
ssh -O check vmux-bench-remote >/dev/null 2>&1 || die "the ControlMaster did not start: $(cat "$WORK/sshd.log")"

note "starting $VM_COUNT demo VMs on each host (64 MiB each)"
for i in $(seq 1 "$VM_COUNT"); do
    VMUX_HOME=$LOCAL_HOME "$VMUX" create "vm$i" --demo --memory 64M --start >/dev/null
    VMUX_HOME=$REMOTE_HOME "$VMUX" create "far$i" --demo --memory 64M --start >/dev/null
done

# --- list latency and console echo ---------------------------------------------------------

out=$(python3 - "$VMUX" "$URI" "$LOCAL_HOME" "$REMOTE_HOME" "$RUNS" <<'PY'
import os, select, statistics, subprocess, sys, time

vmux, uri, local_home, remote_home, runs = sys.argv[1:6]
runs = int(runs)
env_remote = {**os.environ, "VMUX_HOME": local_home}
env_local = {**os.environ, "VMUX_HOME": remote_home}

def timed(argv, env):
    start = time.monotonic()
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if done.returncode != 0:
        sys.exit(f"{argv} failed: {done.stderr.decode()}")
    return (time.monotonic() - start) * 1000, done.stdout

local, remote, session = [], [], []
for i in range(runs):
    session.append(timed(["ssh", "vmux-bench-remote", "true"], env_local)[0])
    order = [("local", [vmux, "list", "--json"], env_local), ("remote", [vmux, "--connect", uri, "list", "--json"], env_remote)]
    if i % 2:
        order.reverse()
    outs = {}
    for name, argv, env in order:
        ms, out = timed(argv, env)
        (local if name == "local" else remote).append(ms)
        outs[name] = out
    if outs["local"] != outs["remote"]:
        sys.exit("list --json over ssh differs from the local one")

def echo_rtt(argv, env, keys=40):
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    fd = proc.stdout.fileno()
    def drain(wait):
        got = b""
        while True:
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return got
            chunk = os.read(fd, 65536)
            if not chunk:
                sys.exit(f"{argv}: the console ended")
            got += chunk
            wait = 0.05
    proc.stdin.write(b"\n"); proc.stdin.flush()
    drain(2.0)
    samples = []
    for i in range(keys):
        key = b"abcdefghij"[i % 10:i % 10 + 1]
        start = time.monotonic()
        proc.stdin.write(key); proc.stdin.flush()
        seen = b""
        while key not in seen:
            ready, _, _ = select.select([fd], [], [], 5.0)
            if not ready:
                sys.exit(f"{argv}: no echo of {key!r} in 5 s")
            seen += os.read(fd, 65536)
        samples.append((time.monotonic() - start) * 1000)
        time.sleep(0.02)
    proc.stdin.write(b"\n"); proc.stdin.flush()
    drain(0.5)
    proc.stdin.close()
    proc.kill()
    proc.wait()
    return statistics.median(samples)

echo_local = echo_rtt([vmux, "console", "far1", "--no-history"], env_local)
echo_remote = echo_rtt([vmux, "--connect", uri, "console", "far1", "--no-history"], env_remote)
print(f"{statistics.median(remote):.1f} {statistics.median(local):.1f} {echo_remote:.2f} {echo_local:.2f} {statistics.median(session):.1f}")
PY
)
read -r list_remote list_local echo_remote echo_local ssh_session <<<"$out"
# What vmux adds to the SSH session itself (which on a host whose login shell runs a heavy rc
# file costs far more than vmux does).
list_share=$(awk "BEGIN { printf \"%.1f\", $list_remote - $ssh_session }")

# --- TUI idle with two hosts ---------------------------------------------------------------

settings_dir=$LOCAL_HOME/config
mkdir -p "$settings_dir"
tui_cpu() { # settings file contents, a word the screen must show -> CPU % over MEASURE_S
    printf '%s' "$1" >"$settings_dir/vmux.toml"
    VMUX_HOME=$LOCAL_HOME python3 - "$VMUX" "$WARMUP_S" "$MEASURE_S" "$2" <<'PY'
import fcntl, os, pty, select, struct, subprocess, sys, termios, time
vmux, warmup, measure, expect = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
TICK = os.sysconf("SC_CLK_TCK")
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
def leader():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
proc = subprocess.Popen([vmux], stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                        env={**os.environ, "TERM": "xterm-256color"}, preexec_fn=leader)
os.close(slave)
def ticks():
    fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
start = time.monotonic()
first = None
screen = b""
while time.monotonic() < start + warmup + measure:
    if first is None and time.monotonic() >= start + warmup:
        first = (ticks(), time.monotonic())
    ready, _, _ = select.select([master], [], [], 0.2)
    if ready:
        data = os.read(master, 65536)
        screen = (screen + data)[-(1 << 20):]
        if b"\x1b[6n" in data:
            os.write(master, b"\x1b[1;1R")
if proc.poll() is not None:
    sys.exit(f"the TUI exited with {proc.returncode}")
if expect.encode() not in screen:
    sys.exit(f"the TUI never showed {expect!r}: it did not list what it should")
cpu = (ticks() - first[0]) / TICK / (time.monotonic() - first[1]) * 100
os.write(master, b"q")
try:
    proc.wait(3)
except subprocess.TimeoutExpired:
    proc.kill()
print(f"{cpu:.3f}")
PY
}
note "the TUI with the local host only, then with the remote host too: ${WARMUP_S}s warm-up, ${MEASURE_S}s measured each"
tui_local=$(tui_cpu "" vm10)
tui_two=$(tui_cpu "[[hosts]]
name = \"remote\"
uri = \"$URI\"
autoconnect = true
" far10)

row() { # key ours theirs goal-kind goal unit
    local ratio verdict goal
    ratio=$(awk "BEGIN { if ($3 == 0) print \"-\"; else printf \"%.3f\", $2 / $3 }")
    case $4 in
    add) verdict=$(awk "BEGIN { print ($2 <= $3 + $5) ? \"met\" : \"MISSED\" }"); goal="add:$5" ;;
    abs) verdict=$(awk "BEGIN { print ($2 <= $5) ? \"met\" : \"MISSED\" }"); goal="abs:$5" ;;
    esac
    echo "$1 $2 $3 $ratio $goal $verdict $6"
}
rows="$(row remote_list_latency "$list_remote" "$list_local" add 15 ms)
$(row remote_list_over_session "$list_share" "$list_local" add 15 ms)
$(row remote_echo_rtt "$echo_remote" "$echo_local" add 5 ms)
$(row remote_tui_idle_cpu "$tui_two" "$tui_local" abs 0.5 %)"
if [ -n "${BENCH_RESULTS:-}" ]; then
    echo "$rows" >>"$BENCH_RESULTS"
else
    printf '%-22s %10s %10s %8s %10s  %s\n' benchmark remote local ratio goal result
    while read -r key ours theirs ratio goal verdict unit; do
        case $goal in add:*) g="<= +${goal#add:}" ;; *) g="<= ${goal#abs:}" ;; esac
        printf '%-22s %10s %10s %8s %10s  %s\n' "$key ($unit)" "$ours" "$theirs" "$ratio" "$g" "$verdict"
    done <<<"$rows"
fi
