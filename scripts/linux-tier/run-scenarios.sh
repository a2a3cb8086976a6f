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

while read -r name; do
    [ -n "$name" ] || continue
    echo "$name" >> "$run_dir/started"
    echo "vmux-tier: scenario $name (started $(date +%T))"
    timeout -k 20 "$bound" "$bin" --exact "$name" --test-threads=1 $ignored
    rc=$?
    case $rc in
        0) ;;
        124 | 137) report_hang "$name"; status=1 ;;
        *) status=1 ;;
    esac
    if [ "$clean_up" = 1 ] && [ "$rc" != 0 ]; then
        pkill -9 -f '/target/[a-z]+/vmux( |$)' 2>/dev/null
        pkill -9 -x qemu-system-x86 2>/dev/null
        sleep 1
    fi
done < "$run_dir/todo"
exit $status
