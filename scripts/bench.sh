#!/usr/bin/env bash
# vmux against QEMU, side by side in one run (DESIGN.md §8.7, docs/benchmarks.md):
#
#   launch   launch -> first guest instruction: the `launch` guest's first instruction is a
#            debug-exit write; `vmux run` vs `qemu-system-x86_64 -M microvm`, each timed from
#            spawn to process exit, median of BENCH_LAUNCH_RUNS (default 21) alternating runs
#   memory   idle VMM memory: private RSS minus resident guest RAM, 256 MiB 1-vCPU guest in HLT
#   idle     CPU use of that idle VM (every thread of the VMM process) over 10 s
#   serial   serial throughput of the `flood` guest to /dev/null, bytes/s
#   tui      the TUI with 10 running VMs vs htop, each in a 120x40 pty (scripts/bench-tui.sh)
#   linux    real Linux: start -> shell vs QEMU microvm and q35, vCPU and disk hot-add latency
#            as Linux sees it (scripts/bench-linux.sh; in the real-Linux tier's L1 where the
#            CPU has no vmx/svm). Not in the default set: it boots Linux dozens of times.
#   image    a VM from a cloud image: `vmux create --image --cloud-init && vmux start` -> the
#            guest's SSH banner, vs QEMU q35 with the kernel extracted by hand
#            (scripts/bench-image.sh; in the tier like `linux`; not in the default set)
#   remote   other hosts over loopback SSH with a warm ControlMaster: `list --json` latency and
#            console echo round trip vs local, TUI idle CPU with 2 hosts x 10 VMs
#            (scripts/bench-remote.sh; not in the default set: it starts 20 VMs and an sshd)
#   progress what progress reporting costs: `vmux vol-convert` of a dense 1 GiB raw volume to
#            qcow2 with `--progress` vs without, median of BENCH_PROGRESS_RUNS (default 5)
#            alternating runs (no VM; needs 2 GiB free under TMPDIR)
#
# Usage: scripts/bench.sh [SECTION...]       (default: all sections, in the order above)
# Environment: BENCH_NO_BUILD=1 skips `cargo build --release`; BENCH_LAUNCH_RUNS,
# BENCH_FLOOD_LINES (default 3000), BENCH_SERIAL_RUNS (default 3), BENCH_SETTLE_S (default 5),
# BENCH_IDLE_S (default 10), BENCH_TUI_S (default 30), BENCH_PROGRESS_RUNS (default 5) tune
# the runs.
#
# Needs /dev/kvm, qemu-system-x86_64 (installed with apt-get when missing and run as root),
# python3. Everything it starts runs under a temporary VMUX_HOME and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

LAUNCH_RUNS=${BENCH_LAUNCH_RUNS:-21}
FLOOD_LINES=${BENCH_FLOOD_LINES:-3000}
SERIAL_RUNS=${BENCH_SERIAL_RUNS:-3}
SETTLE_S=${BENCH_SETTLE_S:-5}
IDLE_S=${BENCH_IDLE_S:-10}
PROGRESS_RUNS=${BENCH_PROGRESS_RUNS:-5}
GUEST_MEMORY=256M

die() { echo "bench.sh: $*" >&2; exit 1; }
note() { echo "bench.sh: $*" >&2; }

# --- what the benchmarks need ---------------------------------------------------------------

need_packages=()
command -v qemu-system-x86_64 >/dev/null || need_packages+=(qemu-system-x86)
command -v python3 >/dev/null || need_packages+=(python3)
if ((${#need_packages[@]})); then
    [ "$(id -u)" -eq 0 ] ||
        die "missing ${need_packages[*]}; install with: sudo apt-get install -y ${need_packages[*]}"
    note "installing ${need_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi
[ -e /dev/kvm ] || die "/dev/kvm does not exist: load kvm-intel or kvm-amd (or enable nested virtualization)"
[ -r /dev/kvm ] && [ -w /dev/kvm ] ||
    die "/dev/kvm is not readable and writable by $(id -un): run as root or add yourself to group kvm"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building release (cargo build --release)"
    cargo build --release --quiet
fi
VMUX=$ROOT/target/release/vmux
[ -x "$VMUX" ] || die "$VMUX is missing; run cargo build --release"
# build.rs puts the guest kit in $OUT_DIR/guests; the newest build directory is this build's.
GUESTS=$(ls -td "$ROOT"/target/release/build/vmux-*/out/guests 2>/dev/null | head -n 1)
[ -n "$GUESTS" ] && [ -f "$GUESTS/launch.elf" ] ||
    die "no guest kit under target/release/build/vmux-*/out/guests; run cargo build --release"

# --- cleanup: every process and file this run makes goes away on exit ------------------------

WORK=$(mktemp -d -t vmux-bench.XXXXXX)
export VMUX_HOME=$WORK/home
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -d "$VMUX_HOME/config/vms" ]; then
        for def in "$VMUX_HOME"/config/vms/*.toml; do
            [ -e "$def" ] || continue
            "$VMUX" destroy "$(basename "$def" .toml)" >/dev/null 2>&1 || true
        done
    fi
    # Anything still holding a pid file (a vmd that ignored destroy).
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

QEMU_COMMON=(-M microvm -enable-kvm -m "$GUEST_MEMORY" -nodefaults -no-user-config
    -display none -device isa-debug-exit,iobase=0xf4,iosize=4)

# Results, one line each: key vmux qemu ratio goal-text verdict unit
RESULTS=$WORK/results
: >"$RESULTS"
record() { echo "$*" >>"$RESULTS"; }

# --- launch -> first guest instruction ------------------------------------------------------

# Runs commands alternately, RUNS times each, checking each exit status; writes one line per
# run to FILE: index pid spawn-time exit-time (CLOCK_MONOTONIC seconds). Each command is one
# argument "status:command line".
run_alternating() { # file runs "status:command"...
    python3 - "$@" <<'PY'
import shlex, subprocess, sys, time
out, runs = open(sys.argv[1], "w"), int(sys.argv[2])
commands = [(int(a.split(":", 1)[0]), shlex.split(a.split(":", 1)[1])) for a in sys.argv[3:]]
for _ in range(runs):
    for i, (status, argv) in enumerate(commands):
        start = time.clock_gettime(time.CLOCK_MONOTONIC)
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        _, err = child.communicate()
        end = time.clock_gettime(time.CLOCK_MONOTONIC)
        if child.returncode != status:
            sys.exit(f"{argv[0]} exited with {child.returncode}, expected {status}: "
                     f"{err.decode(errors='replace').strip()}")
        print(i, child.pid, f"{start:.6f}", f"{end:.6f}", file=out)
PY
}

# Median wall time (ms) from spawn to exit of each command in a run_alternating file.
median_wall_ms() { # file commands
    python3 - "$1" "$2" <<'PY'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]
print(" ".join(f"{statistics.median((float(r[3]) - float(r[2])) * 1000 for r in runs if r[0] == str(i)):.2f}"
               for i in range(int(sys.argv[2]))))
PY
}

# Median time (ms) from spawn to the guest's write to port 0xf4, seen by the kvm:kvm_pio
# tracepoint in the run's process, for each command of a run_alternating file; then, for each,
# the median time from that write to the process's exit (teardown).
median_first_instruction_ms() { # runs-file perf-script-file commands
    python3 - "$1" "$2" "$3" <<'PY'
import re, statistics, sys
first = {}
for line in open(sys.argv[2]):
    m = re.match(r"\s*(\d+)/\d+\s+([\d.]+):\s+kvm:kvm_pio:\s+pio_write at 0xf4\b", line)
    if m:
        first.setdefault(m.group(1), float(m.group(2)))
to_first, to_exit = [], []
for i in range(int(sys.argv[3])):
    runs = [r.split() for r in open(sys.argv[1]) if r.split()[0] == str(i)]
    seen = [r for r in runs if r[1] in first]
    if len(seen) < len(runs):
        sys.exit(f"the tracepoint missed {len(runs) - len(seen)} of {len(runs)} runs")
    to_first.append(statistics.median((first[r[1]] - float(r[2])) * 1000 for r in seen))
    to_exit.append(statistics.median((float(r[3]) - first[r[1]]) * 1000 for r in seen))
print(" ".join(f"{ms:.2f}" for ms in to_first + to_exit))
PY
}

# Whether perf can record the kvm:kvm_pio tracepoint (root, perf installed, tracefs mounted).
have_kvm_tracepoint() {
    command -v perf >/dev/null || return 1
    if [ ! -e /sys/kernel/tracing/events/kvm ] && [ "$(id -u)" -eq 0 ]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    fi
    [ -e /sys/kernel/tracing/events/kvm/kvm_pio ]
}

section_launch() {
    note "launch: $LAUNCH_RUNS runs each, alternating"
    # vmux: debug exit 0 is status 0; QEMU's isa-debug-exit makes it (0 << 1) | 1 = 1.
    local commands=("0:$VMUX run --kernel $GUESTS/launch.elf --memory $GUEST_MEMORY"
        "1:qemu-system-x86_64 ${QEMU_COMMON[*]} -kernel $GUESTS/launch.elf")
    local out vmux_ms qemu_ms
    run_alternating "$WORK/launch-runs" "$LAUNCH_RUNS" "${commands[@]}"
    out=$(median_wall_ms "$WORK/launch-runs" 2)
    read -r vmux_ms qemu_ms <<<"$out"
    record_ratio "launch_to_exit" "$vmux_ms" "$qemu_ms" le 0.2 ms

    if ! have_kvm_tracepoint; then
        note "launch: no kvm:kvm_pio tracepoint (needs root, perf and tracefs): first-instruction time skipped"
        return
    fi
    note "launch: again under perf, timing the guest's first instruction (its write to port 0xf4)"
    perf record -q -a -e kvm:kvm_pio --filter 'port == 0xf4' -k CLOCK_MONOTONIC \
        -o "$WORK/launch.perf" -- \
        bash -c "$(declare -f run_alternating); run_alternating \"\$@\"" _ \
        "$WORK/first-runs" "$LAUNCH_RUNS" "${commands[@]}" 2>"$WORK/perf.log" ||
        die "perf record failed: $(cat "$WORK/perf.log")"
    perf script -i "$WORK/launch.perf" -F pid,tid,time,event,trace >"$WORK/launch.trace" 2>/dev/null
    out=$(median_first_instruction_ms "$WORK/first-runs" "$WORK/launch.trace" 2)
    local vmux_teardown qemu_teardown
    read -r vmux_ms qemu_ms vmux_teardown qemu_teardown <<<"$out"
    note "launch: from the first instruction to process exit: vmux $vmux_teardown ms, QEMU $qemu_teardown ms"
    record_ratio "launch_to_first_instruction" "$vmux_ms" "$qemu_ms" le 0.2 ms
}

# --- idle memory and idle CPU ---------------------------------------------------------------

# Private memory of PID minus its resident guest RAM, in KiB: (Private_Clean + Private_Dirty
# from smaps_rollup) - Rss of the guest-RAM mappings, found in smaps as the anonymous
# mappings whose size is the guest's RAM (QEMU may round its RAM block up by up to 2 MiB plus
# a guard page). The same rule for both VMMs. Also prints the private total, the guest RAM and
# Private_Dirty minus guest RAM: Private_Clean counts the pages of the VMM's executable it
# touched only while no other process maps the same file, so it varies with whatever else runs.
vmm_overhead_kib() { # pid guest_ram_kib
    python3 - "$1" "$2" <<'PY'
import re, sys
pid, ram_kib = sys.argv[1], int(sys.argv[2])
rollup = open(f"/proc/{pid}/smaps_rollup").read()
private = sum(int(re.search(rf"^{f}:\s+(\d+) kB", rollup, re.M).group(1))
              for f in ("Private_Clean", "Private_Dirty"))
guest_rss, mapping = 0, None
for line in open(f"/proc/{pid}/smaps"):
    head = line.split()
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        # address perms offset dev inode [path]: anonymous when there is no path
        mapping = {"anon": len(head) < 6}
    elif head[0] == "Size:":
        mapping["size"] = int(head[1])
    elif head[0] == "Rss:" and mapping["anon"] and ram_kib <= mapping["size"] <= ram_kib + 4096:
        guest_rss += int(head[1])
dirty = int(re.search(r"^Private_Dirty:\s+(\d+) kB", rollup, re.M).group(1))
print(private - guest_rss, private, guest_rss, dirty - guest_rss)
PY
}

# CPU time (ns) of every thread of PID so far, from /proc/PID/task/*/schedstat.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'
}

section_memory_and_idle() {
    local ram_kib=$((256 * 1024))
    note "idle VM: 256 MiB, 1 vCPU, the echo guest halted; settling ${SETTLE_S}s"
    "$VMUX" create idle --kernel "$GUESTS/echo.elf" --memory "$GUEST_MEMORY" --vcpus 1 >/dev/null
    "$VMUX" start idle >/dev/null
    local vmd_pid
    vmd_pid=$(head -n 1 "$VMUX_HOME/state/vms/idle/vmd.pid")
    PIDS+=("$vmd_pid")
    qemu-system-x86_64 "${QEMU_COMMON[@]}" -serial "file:$WORK/qemu-idle.log" \
        -kernel "$GUESTS/echo.elf" </dev/null >/dev/null 2>&1 &
    local qemu_pid=$!
    PIDS+=("$qemu_pid")
    sleep "$SETTLE_S"
    grep -q "echo ready" "$VMUX_HOME/state/vms/idle/console.log" ||
        die "the vmux echo guest did not start (console.log has no 'echo ready')"
    grep -q "echo ready" "$WORK/qemu-idle.log" ||
        die "the QEMU echo guest did not start (no 'echo ready')"

    local out vmux_kib vmux_private vmux_guest vmux_dirty qemu_kib qemu_private qemu_guest qemu_dirty
    out=$(vmm_overhead_kib "$vmd_pid" "$ram_kib")
    read -r vmux_kib vmux_private vmux_guest vmux_dirty <<<"$out"
    out=$(vmm_overhead_kib "$qemu_pid" "$ram_kib")
    read -r qemu_kib qemu_private qemu_guest qemu_dirty <<<"$out"
    note "memory (KiB): vmux private $vmux_private - guest $vmux_guest; QEMU private $qemu_private - guest $qemu_guest"
    record_ratio "idle_vmm_memory" "$(awk "BEGIN { printf \"%.2f\", $vmux_kib / 1024 }")" \
        "$(awk "BEGIN { printf \"%.2f\", $qemu_kib / 1024 }")" le 0.3 MiB
    record_ratio "idle_vmm_dirty" "$(awk "BEGIN { printf \"%.2f\", $vmux_dirty / 1024 }")" \
        "$(awk "BEGIN { printf \"%.2f\", $qemu_dirty / 1024 }")" none - MiB

    note "idle CPU over ${IDLE_S}s"
    local v0 q0 v1 q1
    v0=$(cpu_ns "$vmd_pid"); q0=$(cpu_ns "$qemu_pid")
    sleep "$IDLE_S"
    v1=$(cpu_ns "$vmd_pid"); q1=$(cpu_ns "$qemu_pid")
    record_ratio "idle_vm_cpu" "$(awk "BEGIN { printf \"%.3f\", ($v1 - $v0) / ($IDLE_S * 1e7) }")" \
        "$(awk "BEGIN { printf \"%.3f\", ($q1 - $q0) / ($IDLE_S * 1e7) }")" none - "%"

    "$VMUX" destroy idle >/dev/null
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
}

# --- serial throughput ----------------------------------------------------------------------

section_serial() {
    note "serial: flood lines=$FLOOD_LINES (and lines=0 for the fixed cost), $SERIAL_RUNS runs each"
    local vmux_run="$VMUX run --memory $GUEST_MEMORY --kernel $GUESTS/flood.elf --cmdline"
    local qemu_run="qemu-system-x86_64 ${QEMU_COMMON[*]} -serial file:/dev/null -kernel $GUESTS/flood.elf -append"
    local out v_full q_full v_zero q_zero
    run_alternating "$WORK/serial-runs" "$SERIAL_RUNS" \
        "0:$vmux_run lines=$FLOOD_LINES" "1:$qemu_run lines=$FLOOD_LINES" \
        "0:$vmux_run lines=0" "1:$qemu_run lines=0"
    out=$(median_wall_ms "$WORK/serial-runs" 4)
    read -r v_full q_full v_zero q_zero <<<"$out"
    note "serial (ms): vmux $v_full - $v_zero, QEMU $q_full - $q_zero"
    # 80 bytes a line; the lines=0 run is everything but the printing (boot, exit).
    local bytes=$((FLOOD_LINES * 80))
    record_ratio "serial_throughput" \
        "$(awk "BEGIN { printf \"%.0f\", $bytes / (($v_full - $v_zero) / 1000) }")" \
        "$(awk "BEGIN { printf \"%.0f\", $bytes / (($q_full - $q_zero) / 1000) }")" ge 0.9 "B/s"
}

# --- progress reporting ---------------------------------------------------------------------

section_progress() {
    note "progress: vol-convert of 1 GiB, --progress vs without, $PROGRESS_RUNS runs each"
    "$VMUX" pool-list >/dev/null
    local pool=$VMUX_HOME/data/images
    # Dense and not zero, so every byte is read, checked and written.
    head -c $((1 << 30)) /dev/urandom >"$pool/bench-src.raw"
    sync
    python3 - "$VMUX" "$PROGRESS_RUNS" "$WORK/progress-ms" <<'PY'
import os, resource, statistics, subprocess, sys, time
vmux, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = {"with": [], "without": []}
cpu = {"with": [], "without": []}
def convert(extra):
    # The previous run's 1 GiB of dirty pages is written back first, so it does not land in
    # this run's time.
    os.sync()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    child = subprocess.run([vmux, "vol-convert", "default", "bench-src.raw", "bench-dst.qcow2", *extra],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.monotonic() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        sys.exit(f"vol-convert failed: {child.stderr.decode(errors='replace').strip()}")
    subprocess.run([vmux, "vol-delete", "default", "bench-dst.qcow2"], check=True,
                   stdout=subprocess.DEVNULL)
    used = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return elapsed, used
convert([])  # warm the page cache
for _ in range(runs):
    for key, extra in (("with", ["--progress"]), ("without", [])):
        elapsed, used = convert(extra)
        times[key].append(elapsed)
        cpu[key].append(used)
        print(f"bench.sh: progress: {key} --progress {elapsed:.0f} ms wall, {used:.0f} ms CPU",
              file=sys.stderr)
with open(out, "w") as f:
    print(f"{statistics.median(times['with']):.1f} {statistics.median(times['without']):.1f} "
          f"{statistics.median(cpu['with']):.1f} {statistics.median(cpu['without']):.1f}", file=f)
PY
    local with without with_cpu without_cpu
    read -r with without with_cpu without_cpu <"$WORK/progress-ms"
    # Wall and CPU time swing with the page cache and writeback on a shared machine; the
    # instructions vmux itself executes (all its threads, the progress printer's included) do
    # not: one run each under callgrind.
    local with_ir="" without_ir=""
    if command -v valgrind >/dev/null; then
        local extra
        for extra in --progress ""; do
            sync
            valgrind --tool=callgrind --callgrind-out-file=/dev/null "$VMUX" vol-convert default \
                bench-src.raw bench-dst.qcow2 $extra >/dev/null 2>"$WORK/callgrind.err"
            "$VMUX" vol-delete default bench-dst.qcow2 >/dev/null
            local ir
            ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/callgrind.err")
            if [ -n "$extra" ]; then with_ir=$ir; else without_ir=$ir; fi
        done
    else
        note "progress: no valgrind, so no instruction counts (apt-get install valgrind)"
    fi
    rm -f "$pool/bench-src.raw"
    note "progress (ms): with --progress $with, without $without; CPU $with_cpu vs $without_cpu"
    record_ratio "progress_overhead" "$with" "$without" le 1.02 "ms"
    record_ratio "progress_overhead_cpu" "$with_cpu" "$without_cpu" le 1.02 "ms"
    if [ -n "$with_ir" ] && [ -n "$without_ir" ]; then
        note "progress (instructions, callgrind): with --progress $with_ir, without $without_ir"
        record_ratio "progress_overhead_ir" "$((with_ir / 1000))" "$((without_ir / 1000))" le 1.02 \
            "k instructions"
    fi
}

# --- the table ------------------------------------------------------------------------------

# record_ratio KEY VMUX QEMU le|ge|none GOAL UNIT: the ratio vmux/QEMU against the goal.
record_ratio() {
    local key=$1 ours=$2 theirs=$3 cmp=$4 goal=$5 unit=$6
    local ratio verdict
    ratio=$(awk "BEGIN { if ($theirs == 0) print \"-\"; else printf \"%.3f\", $ours / $theirs }")
    case $cmp in
    le) verdict=$(awk "BEGIN { print ($ratio != \"-\" && $ratio <= $goal) ? \"met\" : \"MISSED\" }") ;;
    ge) verdict=$(awk "BEGIN { print ($ratio != \"-\" && $ratio >= $goal) ? \"met\" : \"MISSED\" }") ;;
    *) verdict="-" ;;
    esac
    record "$key $ours $theirs $ratio $cmp:$goal $verdict $unit"
}

print_table() {
    printf '\n%-34s %12s %12s %8s %10s  %s\n' "benchmark" "vmux" "QEMU/htop" "ratio" "goal" "result"
    while read -r key ours theirs ratio goal verdict unit; do
        local label goal_text
        case $key in
        launch_to_exit) label="launch -> exit (launch guest)" ;;
        launch_to_first_instruction) label="launch -> first instruction" ;;
        idle_vmm_memory) label="idle VMM memory (private)" ;;
        idle_vmm_dirty) label="  of it private dirty" ;;
        idle_vm_cpu) label="idle VM CPU (VMM + vCPU)" ;;
        serial_throughput) label="serial throughput" ;;
        tui_idle_cpu) label="TUI idle CPU vs htop" ;;
        tui_output_rate) label="TUI terminal output vs htop" ;;
        linux_boot_microvm) label="Linux start -> shell vs microvm" ;;
        linux_boot_q35) label="Linux start -> shell vs q35" ;;
        linux_vcpu_hotplug) label="Linux vCPU hot-add -> online" ;;
        linux_disk_hotplug) label="Linux disk hot-add -> block dev" ;;
        image_create_to_ssh_q35) label="image create+start -> SSH vs q35" ;;
        progress_overhead) label="vol-convert 1G --progress vs not" ;;
        progress_overhead_cpu) label="  its CPU time (user + system)" ;;
        progress_overhead_ir) label="  its instructions (callgrind)" ;;
        remote_list_latency) label="list --json over SSH vs local" ;;
        remote_list_over_session) label="  of it beyond ssh host true" ;;
        remote_echo_rtt) label="console echo over SSH vs local" ;;
        remote_tui_idle_cpu) label="TUI idle, 2 hosts vs 1 (10 VMs each)" ;;
        *) label=$key ;;
        esac
        case $goal in
        le:*) goal_text="<= ${goal#le:}" ;;
        ge:*) goal_text=">= ${goal#ge:}" ;;
        abs:*) goal_text="<= ${goal#abs:}" ;;
        add:*) goal_text="<= +${goal#add:}" ;;
        *) goal_text="-" ;;
        esac
        printf '%-34s %12s %12s %8s %10s  %s\n' "$label ($unit)" "$ours" "$theirs" "$ratio" \
            "$goal_text" "$verdict"
    done <"$RESULTS"
    echo
    echo "ratio = vmux / QEMU (htop for the TUI rows, vmux without --progress for the progress row);"
    echo "machine: $(nproc) CPUs, $(uname -r)"
}

sections=("$@")
((${#sections[@]})) || sections=(launch memory serial tui progress)
for section in "${sections[@]}"; do
    case $section in
    launch) section_launch ;;
    memory | idle) section_memory_and_idle ;;
    serial) section_serial ;;
    tui)
        # Its own script (own VMUX_HOME, ten VMs, htop); it appends its rows to ours.
        BENCH_NO_BUILD=1 BENCH_RESULTS=$RESULTS "$ROOT/scripts/bench-tui.sh"
        ;;
    linux) BENCH_NO_BUILD=1 BENCH_RESULTS=$RESULTS "$ROOT/scripts/bench-linux.sh" ;;
    image) BENCH_NO_BUILD=1 BENCH_RESULTS=$RESULTS "$ROOT/scripts/bench-image.sh" ;;
    progress) section_progress ;;
    remote) BENCH_NO_BUILD=1 BENCH_RESULTS=$RESULTS "$ROOT/scripts/bench-remote.sh" ;;
    *) die "unknown section '$section'; use launch, memory, serial, tui, linux, image, progress or remote" ;;
    esac
done
print_table
