#!/usr/bin/env bash
# Builds a real-Linux test guest from Debian packages: the distribution kernel (bzImage) and a
# busybox initramfs whose /init mounts /proc and /sys, loads the virtio-pci and virtio-blk
# modules (for disks, hot-added ones included), prints what the tests look for, and runs a
# shell on ttyS0. Output: $1 (default target/linux-guest/) with vmlinuz + initrd.img.
#
# Needs network access to Debian's mirrors (apt-get download) and cpio + gzip.
set -euo pipefail
out=${1:-target/linux-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -e "$out/.with-virtio-modules" ]; then
    echo "linux guest already built in $out"
    exit 0
fi
command -v cpio >/dev/null || { apt-get update -qq && apt-get install -y -qq cpio >/dev/null; }

cd "$work"
apt-get download -qq busybox-static
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
apt-get download -qq "$kpkg"
dpkg-deb -x busybox-static_*.deb bb
dpkg-deb -x linux-image-*.deb kernel
cp kernel/boot/vmlinuz-* "$out/vmlinuz"

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp bb/bin/busybox "$root/bin/busybox"
for tool in sh mount cat ls echo poweroff reboot sleep dd head hexdump grep wc; do
    ln -sf busybox "$root/bin/$tool"
done
# virtio-pci and virtio-blk, in load order, when the kernel has them as modules (built-in
# ones are simply not found). Compressed modules are unpacked: busybox insmod takes plain .ko.
mkdir -p "$root/lib/modules"
for module in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
    found=$(find kernel/lib/modules -name "$module.ko*" | head -n 1)
    case "$found" in
        "") ;;
        *.xz) xz -dc "$found" > "$root/lib/modules/$module.ko" ;;
        *.zst) zstd -qdc "$found" > "$root/lib/modules/$module.ko" ;;
        *) cp "$found" "$root/lib/modules/$module.ko" ;;
    esac
done
ln -sf busybox "$root/bin/insmod"
cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for module in virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
    [ -e /lib/modules/$module.ko ] && insmod /lib/modules/$module.ko 2>/dev/null
done
echo "vmux-linux-guest: booted, $(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l) cpus"
exec /bin/sh </dev/ttyS0 >/dev/ttyS0 2>&1
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.img"
touch "$out/.with-virtio-modules"
echo "built $out/vmlinuz and $out/initrd.img"
