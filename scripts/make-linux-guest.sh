#!/usr/bin/env bash
# Builds a real-Linux test guest from Debian packages: the distribution kernel (bzImage) and a
# busybox initramfs whose /init mounts /proc and /sys, prints what the tests look for, and
# runs a shell on ttyS0. Output: $1 (default target/linux-guest/) with vmlinuz + initrd.img.
#
# Needs network access to Debian's mirrors (apt-get download) and cpio + gzip.
set -euo pipefail
out=${1:-target/linux-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
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
cat > "$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "vmux-linux-guest: booted, $(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l) cpus"
exec /bin/sh </dev/ttyS0 >/dev/ttyS0 2>&1
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.img"
echo "built $out/vmlinuz and $out/initrd.img"
