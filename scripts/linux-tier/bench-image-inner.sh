#!/bin/sh
# The `image` benchmark, run where Linux guests boot (inside the tier's L1, or directly on a
# host with vmx/svm); scripts/bench-image.sh starts it and turns its lines into table rows.
# POSIX sh, as the tier runs scripts (bash only for /dev/tcp).
#
# From `vmux create --image ... --cloud-init ... && vmux start` to the guest's SSH banner
# (`SSH-2.0-...` read from port 22 of its DHCP address on a vmux nat network), against QEMU
# (-M q35 -enable-kvm) booting the same image (a fresh overlay on it) with the kernel and
# initrd extracted from it by hand beforehand, the same command line, memory, seed disk, and
# user networking with port 22 forwarded. The cloud image is scripts/make-image-guest.sh's;
# its init applies the seed, asks for a lease, then starts dropbear.
#
# Prints `RUN image_ssh vmux MS` / `RUN image_ssh_q35 qemu MS` per run (alternating), -1 for
# a failed run. Environment: VMUX (the binary), VMUX_IMAGE_GUEST (the image's directory),
# BENCH_IMAGE_RUNS (default 3).
set -u
runs=${BENCH_IMAGE_RUNS:-3}
image=$VMUX_IMAGE_GUEST/debian-cloud.qcow2
export VMUX_HOME=/tmp/bench-image-home
work=/tmp/bench-image
rm -rf "$VMUX_HOME" "$work"
mkdir -p "$work"
export PATH=$PATH:/usr/sbin:/sbin

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Waits until HOST:PORT answers with an SSH banner; prints the ms since START, or -1 after
# LIMIT ms.
banner_ms() { # start host port limit_ms
    local start=$1 host=$2 port=$3 limit=$4 got
    while :; do
        got=$(timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port && head -c 4 <&3" 2>/dev/null || true)
        [ "$got" = "SSH-" ] && { echo $(($(now_ms) - start)); return; }
        [ $(($(now_ms) - start)) -gt "$limit" ] && { echo -1; return; }
        sleep 0.1
    done
}

ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/key"
cp "$image" "$work/debian-cloud.qcow2"
"$VMUX" net-define-as benchimg --mode nat --subnet 10.231.9.0/24 --bridge vmuxbench1 >/dev/null || exit 1
"$VMUX" net-start benchimg >/dev/null || exit 1

# The same command line, and the kernel and initrd extracted by hand, for QEMU: from a first
# vmux VM (which also builds the seed both use).
"$VMUX" create probe --image "$work/debian-cloud.qcow2" --linked \
    --cloud-init "user=me,ssh-key=$work/key.pub" --memory 512M >/dev/null || exit 1
cmdline=$("$VMUX" info probe --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["boot_image"]["cmdline"])')
kernel=$("$VMUX" info probe --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["boot_image"]["kernel"])')
initrd=$("$VMUX" info probe --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["boot_image"]["initrds"][0])')
"$VMUX" start probe >/dev/null && "$VMUX" destroy probe >/dev/null
seed=$VMUX_HOME/state/vms/probe/cidata.img
qemu-img convert -O raw "$work/debian-cloud.qcow2" "$work/raw.img"
offset=$((20480 * 512))
debugfs -R "dump $kernel $work/vmlinuz" "$work/raw.img?offset=$offset" 2>/dev/null
debugfs -R "dump $initrd $work/initrd.img" "$work/raw.img?offset=$offset" 2>/dev/null
rm -f "$work/raw.img"
[ -s "$work/vmlinuz" ] && [ -s "$work/initrd.img" ] || { echo "cannot extract the kernel by hand"; exit 1; }
echo "INFO kernel $kernel ($(stat -c %s "$work/vmlinuz") bytes), initrd $(stat -c %s "$work/initrd.img") bytes, cmdline: $cmdline"

# Removes the run's VM and its volume, whatever state the run left them in.
vmux_cleanup() {
    "$VMUX" destroy bi >/dev/null 2>&1
    "$VMUX" undefine bi >/dev/null 2>&1
    "$VMUX" vol-delete default bi.qcow2 >/dev/null 2>&1
}

# Says on stderr (inner.log) why a vmux run gave no figure: its addresses and console.
vmux_failed() {
    echo "image_ssh vmux run failed: $1" >&2
    "$VMUX" domifaddr bi >&2 2>&1
    tail -n 30 "$VMUX_HOME/state/vms/bi/console.log" >&2 2>/dev/null
    vmux_cleanup
    echo -1
}

vmux_ms() {
    local start ip="" ms
    start=$(now_ms)
    "$VMUX" create bi --image "$work/debian-cloud.qcow2" --linked \
        --cloud-init "user=me,ssh-key=$work/key.pub" --network benchimg --memory 512M >/dev/null \
        && "$VMUX" start bi >/dev/null || { vmux_failed "create or start"; return; }
    while [ -z "$ip" ]; do
        ip=$("$VMUX" domifaddr bi 2>/dev/null | grep -o '10\.231\.9\.[0-9]*' | head -n 1)
        [ $(($(now_ms) - start)) -gt 300000 ] && { vmux_failed "no DHCP address in 300 s"; return; }
        [ -n "$ip" ] || sleep 0.1
    done
    ms=$(banner_ms "$start" "$ip" 22 300000)
    [ "$ms" = -1 ] && { vmux_failed "no SSH banner from $ip in 300 s"; return; }
    vmux_cleanup
    echo "$ms"
}

qemu_ms() {
    local start pid ms
    rm -f "$work/q.qcow2"
    start=$(now_ms)
    qemu-img create -q -f qcow2 -b "$work/debian-cloud.qcow2" -F qcow2 "$work/q.qcow2"
    qemu-system-x86_64 -M q35 -enable-kvm -cpu host -m 512 -smp 1 \
        -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -append "$cmdline" \
        -drive "file=$work/q.qcow2,format=qcow2,if=virtio" \
        -drive "file=$seed,format=raw,if=virtio,readonly=on" \
        -netdev user,id=n0,hostfwd=tcp:127.0.0.1:22222-:22 -device virtio-net-pci,netdev=n0 \
        -nodefaults -no-user-config -display none -serial "file:$work/qemu.log" &
    pid=$!
    ms=$(banner_ms "$start" 127.0.0.1 22222 300000)
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "$ms"
}

i=0
while [ $i -lt "$runs" ]; do
    echo "RUN image_ssh vmux $(vmux_ms)"
    echo "RUN image_ssh_q35 qemu $(qemu_ms)"
    i=$((i + 1))
done
"$VMUX" undefine probe >/dev/null
"$VMUX" net-destroy benchimg >/dev/null
