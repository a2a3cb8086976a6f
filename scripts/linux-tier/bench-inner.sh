#!/bin/sh
# The `linux` benchmarks, run where Linux guests boot (inside the tier's L1, or directly on a
# host with vmx/svm); scripts/bench-linux.sh starts it and turns its lines into table rows.
#
# Prints, for each row, `BENCH key vmux_ms qemu_ms` (qemu_ms `-` when there is no QEMU
# counterpart) and one `RUN key tool ms` line per measurement. Runs are alternated between
# the VMMs so a slow phase of the machine hits each alike.
#   boot_microvm / boot_q35   vmux start -> "vmux-linux-guest: booted" on the serial console,
#                             against qemu-system-x86_64 -M microvm / -M q35 -enable-kvm with
#                             the same kernel, initramfs, command line, memory and vCPUs
#   vcpu_hotplug              setvcpus 2 --live -> CPU 1 online in Linux (the guest onlines it
#                             as the README's udev rule does)
#   disk_hotplug              attach-disk --live -> /dev/vda (its first disk) a block device in Linux
# Environment: VMUX (the binary), VMUX_LINUX_GUEST (vmlinuz + initrd.img), BENCH_LINUX_RUNS
# (default 5).
set -u
runs=${BENCH_LINUX_RUNS:-5}
guest=$VMUX_LINUX_GUEST
cmdline="console=ttyS0 reboot=k panic=-1 quiet"
export VMUX_HOME=/tmp/bench-linux-home
work=/tmp/bench-linux
rm -rf "$VMUX_HOME" "$work"
mkdir -p "$work"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Starts a VMM (the rest of the arguments) with its serial console on stdout, and prints the
# milliseconds until the guest's booted line; the VMM is killed afterwards.
qemu_boot_ms() {
    out=$work/qemu.out
    : > "$out"
    start=$(now_ms)
    "$@" > "$out" 2>&1 &
    pid=$!
    while ! grep -q "vmux-linux-guest: booted" "$out"; do
        kill -0 "$pid" 2>/dev/null || { echo "qemu exited: $(tail -c 500 "$out")" >&2; echo -1; return; }
        sleep 0.02
        [ $(($(now_ms) - start)) -gt 300000 ] && { kill -9 "$pid"; echo -1; return; }
    done
    end=$(now_ms)
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo $((end - start))
}

vmux_boot_ms() {
    start=$(now_ms)
    "$VMUX" start lx >/dev/null || { echo -1; return; }
    "$VMUX" console lx --until "vmux-linux-guest: booted" --timeout 300 </dev/null >/dev/null || { echo -1; return; }
    end=$(now_ms)
    "$VMUX" destroy lx >/dev/null
    echo $((end - start))
}

"$VMUX" create lx --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --cmdline "$cmdline" \
    --memory 512M --vcpus 2 >/dev/null || exit 1
common="-enable-kvm -cpu host -m 512 -smp 2 -kernel $guest/vmlinuz -initrd $guest/initrd.img -nodefaults -no-user-config -display none -serial stdio"
i=0
while [ $i -lt "$runs" ]; do
    v=$(vmux_boot_ms); echo "RUN boot vmux $v"
    m=$(qemu_boot_ms qemu-system-x86_64 -M microvm $common -append "$cmdline"); echo "RUN boot_microvm qemu $m"
    q=$(qemu_boot_ms qemu-system-x86_64 -M q35 $common -append "$cmdline"); echo "RUN boot_q35 qemu $q"
    i=$((i + 1))
done

# Hot-add latency as Linux sees it: the guest polls for the new device in a loop and prints a
# line when it is usable; the time runs from just before the vmux command to that line on the
# console (watched by a console client attached beforehand).
after_ms() { # vm marker command...
    vm=$1 marker=$2
    shift 2
    "$VMUX" console "$vm" --no-history --until "$marker" --timeout 120 </dev/null >/dev/null &
    watcher=$!
    sleep 1
    start=$(now_ms)
    "$@" >/dev/null || { kill "$watcher" 2>/dev/null; echo -1; return; }
    wait "$watcher" || { echo -1; return; }
    echo $(($(now_ms) - start))
}
"$VMUX" vol-create-as default hot.raw 16M --format raw >/dev/null
"$VMUX" create hp --kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --cmdline "$cmdline" \
    --memory 512M --vcpus 1 --max-vcpus 2 >/dev/null
i=0
while [ $i -lt "$runs" ]; do
    "$VMUX" start hp >/dev/null
    "$VMUX" console hp --until "vmux-linux-guest: booted" --timeout 300 </dev/null >/dev/null
    # The guest waits for CPU 1 and onlines it, then for the disk (its first: vda); the quotes
    # keep the echo of the typed line from matching.
    printf '%s\n' 'while [ ! -e /sys/devices/system/cpu/cpu1/online ]; do :; done; echo 1 > /sys/devices/system/cpu/cpu1/online; echo "cpu1-""online"; while [ ! -b /dev/vda ]; do :; done; echo "vda-""ready"' \
        | "$VMUX" console hp --no-history --until "never-printed" --timeout 2 >/dev/null 2>&1
    echo "RUN vcpu_hotplug vmux $(after_ms hp cpu1-online "$VMUX" setvcpus hp 2 --live)"
    echo "RUN disk_hotplug vmux $(after_ms hp vda-ready "$VMUX" attach-disk hp default/hot.raw --live)"
    "$VMUX" destroy hp >/dev/null
    i=$((i + 1))
done
"$VMUX" undefine hp >/dev/null
"$VMUX" undefine lx >/dev/null
