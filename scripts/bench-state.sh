#!/usr/bin/env bash
# VM state against QEMU, side by side in one run (issue 14, docs/benchmarks.md "Save and
# restore"):
#
#   save      `vmux save` vs QEMU's `migrate "exec:cat > FILE"`: wall time and file size, for
#             a 256 MiB and a 1 GiB guest that touched 25 % of its memory (the `savestate`
#             guest-kit program fills it with a pattern it can verify)
#   restore   `vmux restore` (returns once the guest runs) vs `qemu-system-x86_64 -incoming
#             "exec:cat FILE"` timed from spawn until QMP says `running`; goal: vmux <= 0.5 x
#             QEMU; file goal: <= touched memory + 1 MiB
#   balloon   after `vmux setmem` takes BENCH_BALLOON_MIB (default 1024) from a guest that
#             touched that much: time until vmd's RSS has dropped by 80 % of it, and until the
#             guest reports the balloon full
#
# Usage: scripts/bench-state.sh [SECTION...]   (sections: save (save and restore), balloon;
# default both). Environment: BENCH_NO_BUILD=1 skips `cargo build --release`; BENCH_SIZES
# (default "256 1024", MiB of guest memory), BENCH_BALLOON_MIB, BENCH_RUNS (default 5 rounds
# of save + restore per size; the table shows medians, stderr every round).
#
# vmux's save fsyncs the file before it renames it into place (crash safety); QEMU's
# `exec:cat` does not sync: save_*_s compares with QEMU as it is, save_*_fsynced_s with QEMU
# plus an fsync of its file afterwards.
#
# Needs /dev/kvm, qemu-system-x86_64, python3. Everything runs under a temporary VMUX_HOME
# and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SIZES=${BENCH_SIZES:-"256 1024"}
BALLOON_MIB=${BENCH_BALLOON_MIB:-1024}
RUNS=${BENCH_RUNS:-5}

die() { echo "bench-state.sh: $*" >&2; exit 1; }
note() { echo "bench-state.sh: $*" >&2; }

command -v qemu-system-x86_64 >/dev/null ||
    die "qemu-system-x86_64 is missing; install it with: apt-get install -y qemu-system-x86"
command -v python3 >/dev/null || die "python3 is missing; install it with: apt-get install -y python3"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || die "/dev/kvm is not usable by $(id -un)"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building release (cargo build --release)"
    cargo build --release --quiet
fi
VMUX=$ROOT/target/release/vmux
[ -x "$VMUX" ] || die "$VMUX is missing; run cargo build --release"
GUESTS=$(ls -td "$ROOT"/target/release/build/vmux-*/out/guests 2>/dev/null | head -n 1)
[ -n "$GUESTS" ] && [ -f "$GUESTS/savestate.elf" ] ||
    die "no savestate guest under target/release/build/vmux-*/out/guests; run cargo build --release"

WORK=$(mktemp -d -t vmux-bench-state.XXXXXX)
export VMUX_HOME=$WORK/home
cleanup() {
    if [ -d "$VMUX_HOME/config/vms" ]; then
        for def in "$VMUX_HOME"/config/vms/*.toml; do
            [ -e "$def" ] || continue
            "$VMUX" destroy "$(basename "$def" .toml)" >/dev/null 2>&1 || true
        done
    fi
    [ -f "$WORK/qemu.pids" ] && xargs -r kill -9 <"$WORK/qemu.pids" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sections=("$@")
((${#sections[@]})) || sections=(save balloon)

python3 - "$VMUX" "$GUESTS/savestate.elf" "$WORK" "$SIZES" "$BALLOON_MIB" "$RUNS" "${sections[@]}" <<'PY'
import json, os, socket, subprocess, sys, time

vmux, guest, work, sizes, balloon_mib, runs = sys.argv[1:7]
sections = sys.argv[7:]
runs = int(runs)
sizes = [int(s) for s in sizes.split()]
balloon_mib = int(balloon_mib)
MIB = 1 << 20
env = dict(os.environ)

def now():
    return time.clock_gettime(time.CLOCK_MONOTONIC)

def run(*args, check=True):
    out = subprocess.run([vmux, *args], env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"vmux {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout

def wait_console(name, pattern, timeout):
    run("console", name, "--until", pattern, "--timeout", str(timeout))

def vmd_rss(name):
    pid = json.loads(run("list", "--json"))
    pid = next(v["pid"] for v in pid["vms"] if v["name"] == name)
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0

class Qmp:
    def __init__(self, path, timeout=120):
        deadline = now() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if now() > deadline:
                    sys.exit(f"QEMU's QMP socket {path} never opened")
                time.sleep(0.002)
        self.file = self.sock.makefile("rw")
        self.file.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                sys.exit(f"QMP {name}: {reply['error']}")

def qemu(memory_mib, touched_mib, tag, incoming=None):
    sock = f"{work}/qmp-{tag}"
    log = f"{work}/serial-{tag}"
    argv = ["qemu-system-x86_64", "-M", "microvm,acpi=on", "-enable-kvm", "-m", f"{memory_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", f"file:{log}",
            "-kernel", guest, "-append", f"mem={touched_mib} disk=0",
            "-qmp", f"unix:{sock},server=on,wait=off"]
    if incoming:
        argv += ["-incoming", f"exec:cat {incoming}"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    with open(f"{work}/qemu.pids", "a") as pids:
        print(proc.pid, file=pids)
    return proc, sock, log

def wait_file(path, text, timeout):
    deadline = now() + timeout
    while now() < deadline:
        try:
            if text in open(path, errors="replace").read():
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{text!r} never appeared in {path}")

results = []

def record(key, vmux_value, qemu_value, unit, goal=None):
    ratio = vmux_value / qemu_value if qemu_value else float("nan")
    verdict = ""
    if goal is not None:
        verdict = "ok" if ratio <= goal else "MISSED"
    results.append((key, vmux_value, qemu_value, ratio, unit, goal, verdict))

def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

def qemu_save(qmp, qpath):
    """Migrates the QEMU behind `qmp` to `qpath`; returns (seconds, seconds with an fsync)."""
    qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
    t0 = now()
    qmp.cmd("migrate", uri=f"exec:cat > {qpath}")
    while qmp.cmd("query-migrate").get("status") not in ("completed", "failed"):
        time.sleep(0.001)
    done = now() - t0
    status = qmp.cmd("query-migrate").get("status")
    if status != "completed":
        sys.exit(f"QEMU's migration {status}")
    fd = os.open(qpath, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return done, now() - t0

if "save" in sections:
    for mib in sizes:
        touched = mib // 4
        name = f"s{mib}"
        print(f"bench-state.sh: {mib} MiB guest touching {touched} MiB (the fill takes a while on a slow KVM); "
              f"{runs} rounds of save + restore each", file=sys.stderr)
        run("create", name, "--kernel", guest, "--cmdline", f"mem={touched} disk=0",
            "--memory", f"{mib}M")
        run("start", name)
        wait_console(name, "savestate ready", 1200)
        saves, restores, own = [], [], []
        path = f"{work}/{name}.vmux"
        for _ in range(runs):
            t0 = now()
            info = json.loads(run("save", name, path, "--json"))
            saves.append(now() - t0)
            own.append(info["save_ms"] / 1000)
            vmux_bytes = os.path.getsize(path)
            t0 = now()
            run("restore", path)
            restores.append(now() - t0)
            os.remove(path)
        wait_console(name, "state: ", 60)
        run("destroy", name)

        proc, sock, log = qemu(mib, touched, f"save{mib}")
        wait_file(log, "savestate ready", 1200)
        qmp = Qmp(sock)
        qsaves, qsaves_sync, qrestores = [], [], []
        qpath = f"{work}/{name}.qemu"
        for round in range(runs):
            plain, synced = qemu_save(qmp, qpath)
            qsaves.append(plain)
            qsaves_sync.append(synced)
            qmp.cmd("quit")
            proc.wait()
            qemu_bytes = os.path.getsize(qpath)
            t0 = now()
            proc, sock, log = qemu(mib, touched, f"restore{mib}-{round}", incoming=qpath)
            qmp = Qmp(sock)
            while qmp.cmd("query-status").get("status") != "running":
                time.sleep(0.001)
            qrestores.append(now() - t0)
            os.remove(qpath)
        qmp.cmd("quit")
        proc.wait()

        record(f"save_{mib}M_s", median(saves), median(qsaves), "s, median; QEMU without fsync")
        record(f"save_{mib}M_fsynced_s", median(saves), median(qsaves_sync), "s, median; both durable")
        record(f"restore_{mib}M_s", median(restores), median(qrestores), "s, median", goal=0.5)
        record(f"file_{mib}M_MiB", vmux_bytes / MIB, qemu_bytes / MIB, "MiB")
        limit = touched + 1
        results.append((f"file_{mib}M_vs_touched", vmux_bytes / MIB, float(limit),
                        vmux_bytes / MIB / limit, "MiB (vmux vs touched + 1 MiB)", 1.0,
                        "ok" if vmux_bytes <= limit * MIB else "MISSED"))
        print(f"bench-state.sh: {mib} MiB: vmux save {', '.join(f'{s:.3f}' for s in saves)} s "
              f"(vmd's own: {', '.join(f'{s:.3f}' for s in own)}), restore "
              f"{', '.join(f'{s:.3f}' for s in restores)} s; QEMU save "
              f"{', '.join(f'{s:.3f}' for s in qsaves)} s (with fsync "
              f"{', '.join(f'{s:.3f}' for s in qsaves_sync)}), restore "
              f"{', '.join(f'{s:.3f}' for s in qrestores)} s", file=sys.stderr)

if "balloon" in sections:
    memory = balloon_mib * 2
    name = "bal"
    print(f"bench-state.sh: balloon: {memory} MiB guest touching a {balloon_mib} MiB pool",
          file=sys.stderr)
    run("create", name, "--kernel", guest, "--cmdline", f"mem=1 pool={balloon_mib} disk=0",
        "--memory", f"{memory}M")
    run("start", name)
    wait_console(name, "savestate ready", 1800)
    time.sleep(1)
    before = vmd_rss(name)
    t0 = now()
    run("setmem", name, f"{memory - balloon_mib}M", "--live")
    rss_s = None
    full_s = None
    deadline = now() + 600
    while (rss_s is None or full_s is None) and now() < deadline:
        if rss_s is None and before - vmd_rss(name) >= balloon_mib * MIB * 8 // 10:
            rss_s = now() - t0
        if full_s is None:
            stats = json.loads(run("dommemstat", name, "--json"))
            if stats.get("balloon", {}).get("actual_bytes") == balloon_mib * MIB:
                full_s = now() - t0
        time.sleep(0.005)
    after = vmd_rss(name)
    run("destroy", name)
    if rss_s is None or full_s is None:
        sys.exit("the balloon never filled or the host never got the memory back")
    results.append((f"balloon_{balloon_mib}M_rss_back_s", rss_s, float("nan"), float("nan"), "s", None, ""))
    results.append((f"balloon_{balloon_mib}M_full_s", full_s, float("nan"), float("nan"), "s", None, ""))
    results.append((f"balloon_{balloon_mib}M_rss_drop_MiB", (before - after) / MIB, float("nan"),
                    float("nan"), "MiB", None, ""))

print(f"{'measure':<32} {'vmux':>10} {'QEMU':>10} {'ratio':>7}  goal")
for key, v, q, ratio, unit, goal, verdict in results:
    goal_text = f"<= {goal} {verdict}" if goal is not None else ""
    q_text = "-" if q != q else f"{q:.3f}"
    r_text = "-" if ratio != ratio else f"{ratio:.2f}"
    print(f"{key:<32} {v:>10.3f} {q_text:>10} {r_text:>7}  {goal_text}  ({unit})")
PY
