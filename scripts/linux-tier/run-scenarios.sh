#!/bin/sh
# Runs the real-Linux tier's scenarios one at a time, each as its own test process under a
# time bound, so that a scenario that hangs fails alone (with what was running at the time)
# and the ones after it still run. Used in L1 and on hosts with vmx/svm (scripts/linux-tier.sh).
#
# Usage: run-scenarios.sh TEST_BINARY RUN_DIR BOUND_S CLEAN_UP [RUN_IGNORED]
#   RUN_DIR/todo     the scenarios to run, one name per line
#   RUN_DIR/started  each name is appended as it starts (what L1 was doing if it dies)
#   BOUND_S          seconds a scenario may take before it is stopped and counted failed
#   CLEAN_UP         1: kill whatever a stopped scenario left running (only in L1, which
#                    runs nothing else); 0 on a host, where that could hit the user's VMs
#   RUN_IGNORED      1: run ignored scenarios too (the user asked for them); default 0
# Prints libtest's output of every scenario; exits 0 when all passed.
#
# In L1 (CLEAN_UP=1) a scenario that failed because its guest triple-faulted, or because its
# guest's boot never reached its ready line, runs again in a fresh L1: QEMU's TCG emulation of
# SVM, under L1's KVM, now and then crashes or stalls an L2 guest (docs/linux-tier.md,
# "Nested paging"), which no VMM there can prevent, and an L1 where that happened is not
# trusted with the rest. So this script stops there, leaving that scenario without a result
# and naming it in RUN_DIR/left-for-fresh-l1; scripts/linux-tier.sh boots a fresh L1 that runs
# it first, then the rest. Failures of vmux's own commands and of what a booted guest checks
# are never retried. The first run's output is kept in RUN_DIR/retried-<name>.log and the
# reason in RUN_DIR/guest-retried; a second failure fails the scenario. On a host with
# vmx/svm every failure counts at once.
bin=$1
run_dir=$2
bound=$3
clean_up=$4
ignored=
[ "${5:-0}" = 1 ] && ignored=--include-ignored
status=0

# What a stopped scenario was doing: its processes, threads' wait channels, and its VMs'
# vmd.log and console.log.
report_hang() {
    echo
    echo "test $1 ... FAILED"
    echo
    echo "---- $1 stdout ----"
    echo "the scenario ran past its bound of $bound s and was stopped. Processes then:"
    ps -eLo pid,tid,stat,etimes,wchan:28,comm,args 2>/dev/null | grep -v ' \[.*\]$' | head -n 80
    for log in $(find /tmp \( -name vmd.log -o -name console.log \) -mmin -15 2>/dev/null | head -n 8); do
        echo "--- last lines of $log ---"
        tail -n 25 "$log" | tr -d '\r'
    done
    echo
    echo "failures:"
}

# Kills whatever a failed scenario left running (in L1 only).
clean_up_after() {
    [ "$clean_up" = 1 ] || return 0
    pkill -9 -f '/target/[a-z]+/vmux( |$)' 2>/dev/null
    pkill -9 -x qemu-system-x86 2>/dev/null
    sleep 1
}

# Runs scenario $1 once, its libtest output to $2; returns the test's status (a hang is
# reported in $2 as a failure).
run_once() {
    timeout -k 20 "$bound" "$bin" --exact "$1" --test-threads=1 $ignored > "$2" 2>&1
    rc=$?
    case $rc in
        124 | 137) report_hang "$1" >> "$2" ;;
    esac
    return $rc
}

# Each scenario log (RUN_DIR/scenarios) with its modification time and size, to tell which
# ones a run wrote: compared as listed, not against a clock, because RUN_DIR is the outer
# host's directory and L1's clock is not the host's.
list_logs() {
    find "$run_dir/scenarios" -name '*.log' -printf '%p %T@ %s\n' 2>/dev/null | sort
}

# The scenario logs written since listing $1 was taken.
written_since() {
    list_logs | comm -13 "$1" - | cut -d' ' -f1
}

# Those of them that say a guest triple-faulted.
triple_faulted() {
    written_since "$1" | xargs -r grep -l 'boot ended: Crashed("triple fault' 2>/dev/null
}

# Why a failed run (its output in $2, scenario logs listed before it in $1) is L2 not running
# rather than vmux: its guest triple-faulted, or its boot never printed the guest's ready line
# (the boot waits of tests/linux_boot.rs). Prints the reason, or nothing.
guest_failure() {
    crashed=$(triple_faulted "$1")
    if [ -n "$crashed" ]; then
        echo "its guest triple-faulted ($(for f in $crashed; do basename "$f"; done | paste -sd ' '))"
    elif grep -qE "^no 'vmux-(linux-guest: booted|image-guest: ready)" "$2"; then
        echo "its guest's boot never reached its ready line"
    fi
}

mark=$(mktemp)
while read -r name; do
    [ -n "$name" ] || continue
    echo "$name" >> "$run_dir/started"
    echo "vmux-tier: scenario $name (started $(date +%T))"
    out=$(mktemp)
    list_logs > "$mark"
    run_once "$name" "$out"
    rc=$?
    if [ "$rc" != 0 ]; then
        clean_up_after
        why=$(guest_failure "$mark" "$out")
        if [ "$clean_up" = 1 ] && [ -n "$why" ] \
            && ! grep -q "^$name:" "$run_dir/guest-retried" 2>/dev/null; then
            cp "$out" "$run_dir/retried-$name.log"
            for log in $(written_since "$mark"); do
                cp "$log" "$run_dir/retried-$name-$(basename "$log")"
            done
            echo "$name: $why" >> "$run_dir/guest-retried"
            echo "$name" > "$run_dir/left-for-fresh-l1"
            echo "vmux-tier: $name failed in L1 because $why; this L1 stops, and a fresh one runs it again (first run: $run_dir/retried-$name.log)"
            rm -f "$out" "$mark"
            exit 3
        fi
    fi
    cat "$out"
    rm -f "$out"
    [ "$rc" = 0 ] || status=1
done < "$run_dir/todo"
rm -f "$mark"
exit $status
