#!/usr/bin/env bash
# Builds a real-Linux test guest from Debian packages: the distribution kernel (bzImage) and a
# busybox initramfs whose /init mounts /proc and /sys, loads the virtio (PCI, block, network,
# balloon) and ACPI power-button modules in dependency order (failing loudly when one does not
# load), powers off when the ACPI power button is pressed, prints
# `vmux-linux-guest: booted, N cpus` and runs a shell on ttyS0.
# Output: $1 (default target/linux-guest/) with vmlinuz + initrd.img.
#
# VMUX_KERNEL_DEB=PATH uses an already downloaded linux-image .deb; otherwise this needs
# Debian's package mirrors (apt-get download), and cpio + gzip.
set -euo pipefail
out=${1:-target/linux-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Bump when the initramfs changes, so cached guests are rebuilt.
version=5
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ "$(cat "$out/.version" 2>/dev/null)" = "$version" ]; then
    echo "linux guest already built in $out"
    exit 0
fi
command -v cpio >/dev/null || { apt-get update -qq && apt-get install -y -qq cpio >/dev/null; }

cd "$work"
apt-get download -qq busybox-static 2>/dev/null
if [ -n "${VMUX_KERNEL_DEB:-}" ]; then
    cp "$VMUX_KERNEL_DEB" .
else
    kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    apt-get download -qq "$kpkg" 2>/dev/null
fi
dpkg-deb -x busybox-static_*.deb bb
dpkg-deb -x linux-image-*.deb kernel
cp kernel/boot/vmlinuz-* "$out/vmlinuz"

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc,lib/modules,usr/share/udhcpc}
cp bb/bin/busybox "$root/bin/busybox"
for applet in $(bb/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done

# The modules the guest needs, each after the modules it depends on (the `depends=` field of
# its .modinfo). Built-in ones are not found and need no loading. Compressed modules are
# unpacked: busybox insmod takes plain .ko.
module_file() { find kernel/lib/modules -name "$(echo "$1" | sed 's/[-_]/[-_]/g').ko*" | head -n 1; }
declare -A seen=()
order=()
add_module() {
    local name=$1 file dep
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    file=$(module_file "$name")
    [ -n "$file" ] || return 0
    for dep in $(unpack "$file" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "$dep"
    done
    order+=("$name")
}
unpack() {
    case "$1" in
        *.xz) xz -dc "$1" ;;
        *.zst) zstd -qdc "$1" ;;
        *) cat "$1" ;;
    esac
}
for module in virtio_pci virtio_blk virtio_net virtio_balloon button evdev; do
    add_module "$module"
done
for module in "${order[@]}"; do
    unpack "$(module_file "$module")" > "$root/lib/modules/$module.ko"
    echo "$module" >> "$root/lib/modules/order"
done

# udhcpc calls this with the lease in its environment.
cat > "$root/usr/share/udhcpc/default.script" <<'DHCP'
#!/bin/sh
case "$1" in
    deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
    bound | renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        echo "vmux-linux-guest: lease $ip on $interface"
        ;;
esac
DHCP
chmod +x "$root/usr/share/udhcpc/default.script"
# Debian's busybox looks for it in /etc/udhcpc.
mkdir -p "$root/etc/udhcpc"
ln -s /usr/share/udhcpc/default.script "$root/etc/udhcpc/default.script"

cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for module in $(cat /lib/modules/order); do
    if ! error=$(insmod "/lib/modules/$module.ko" 2>&1); then
        echo "vmux-linux-guest: FAILED to load module $module: $error" > /dev/ttyS0
        echo "vmux-linux-guest: FAILED to load module $module: $error" > /dev/kmsg
        poweroff -f
    fi
done
# The ACPI power button (vmux shutdown) is an input device; any event from it powers off.
for dev in /sys/class/input/event*; do
    if grep -q "Power Button" "$dev/device/name" 2>/dev/null; then
        node=/dev/input/${dev##*/}
        for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "$node" ] && break; usleep 100000; done
        (dd if="$node" bs=24 count=1 >/dev/null 2>&1 \
            && echo "vmux-linux-guest: power button pressed, powering off" > /dev/ttyS0 \
            && sync && poweroff -f) &
    fi
done
echo "vmux-linux-guest: booted, $(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l) cpus"
exec /bin/sh </dev/ttyS0 >/dev/ttyS0 2>&1
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.img"
echo "$version" > "$out/.version"
echo "built $out/vmlinuz and $out/initrd.img"
