#!/usr/bin/env bash
# Builds the real-Linux tier's "cloud image": a GPT disk in Debian's layout (made by
# make-test-images.sh) whose /boot holds two real Debian kernels, each with its own initramfs,
# and grub.cfg's default set to the SECOND one (`set default="1>1"`, an older kernel pinned
# from the Advanced submenu), over a small root filesystem whose init does what cloud-init
# does on a NoCloud seed, as far as the tier needs:
#
#   - finds the seed by its label (`findfs LABEL=CIDATA`), mounts it (vfat, read-only),
#   - sets the host name from meta-data's local-hostname,
#   - creates the user-data's user (or the default user `debian`) with the
#     ssh_authorized_keys of user-data in ~/.ssh/authorized_keys,
#   - asks for a DHCP lease on every NIC (busybox udhcpc) and starts dropbear (Debian's
#     dropbear-bin, with its libraries) on port 22,
#   - prints `vmux-image-guest: ready <hostname> <kernel release>` and runs a root shell on
#     ttyS0 (the tests' way in as root).
#
# Kernels: the tier's generic kernel (VMUX_KERNEL_DEB, else linux-image-amd64's) and the cloud
# flavour of Debian's kernel (linux-image-cloud-amd64's). The generic one is grub's default
# (the second); the cloud one is the first entry. Each initramfs loads its own kernel's virtio,
# ext4 and vfat modules, mounts root= (UUID) read-write and switches to it.
#
# Output: $1 (default target/linux-tier/image-guest) with debian-cloud.qcow2, kernels.env
# (GENERIC=<release> CLOUD=<release>). Needs Debian's mirrors (apt-get download), cpio, and
# make-test-images.sh's tools. Cached: rebuilt when this script or the kernels change.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=${1:-target/linux-tier/image-guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)
debs=${VMUX_TIER_DIR:-$repo/target/linux-tier}/debs
mkdir -p "$debs"
export PATH=$PATH:/usr/sbin:/sbin
say() { echo "make-image-guest: $*" >&2; }
die() { echo "make-image-guest: error: $*" >&2; exit 1; }

# A package's .deb in the cache (downloaded once).
deb_of() {
    ls "$debs/$1"_*.deb >/dev/null 2>&1 || (cd "$debs" && apt-get download -qq "$1" 2>/dev/null) \
        || die "cannot download $1 from Debian's mirrors"
    ls "$debs/$1"_*.deb | head -n 1
}
# The versioned image package a linux-image meta package depends on.
kernel_pkg() {
    apt-cache depends "$1" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

generic_deb=${VMUX_KERNEL_DEB:-}
if [ -z "$generic_deb" ]; then
    pkg=$(kernel_pkg linux-image-amd64)
    [ -n "$pkg" ] || die "apt-cache does not know linux-image-amd64; run apt-get update"
    generic_deb=$(deb_of "$pkg")
fi
cloud_pkg=$(kernel_pkg linux-image-cloud-amd64)
[ -n "$cloud_pkg" ] || die "apt-cache does not know linux-image-cloud-amd64; run apt-get update"
cloud_deb=$(deb_of "$cloud_pkg")
busybox_deb=$(deb_of busybox-static)
dropbear_debs="$(deb_of dropbear-bin) $(deb_of libtomcrypt1) $(deb_of libtommath1)"

stamp="$(sha256sum "$0" scripts/make-test-images.sh | cut -c1-16 | tr '\n' ' ') $(basename "$generic_deb") $(basename "$cloud_deb")"
if [ -s "$out/debian-cloud.qcow2" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "up to date in $out"
    exit 0
fi
command -v cpio >/dev/null || die "cpio is missing (apt-get install cpio)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vmux-image-guest.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$busybox_deb" "$work/bb"
busybox=$work/bb/bin/busybox

# --- a kernel and its initramfs -------------------------------------------------------------
unpack() {
    case "$1" in
        *.xz) xz -dc "$1" ;;
        *.zst) zstd -qdc "$1" ;;
        *) cat "$1" ;;
    esac
}
# kernel_and_initrd DEB NAME: unpacks DEB, leaves $work/NAME/{vmlinuz,initrd.img,release}.
kernel_and_initrd() {
    local deb=$1 name=$2 k=$work/$2
    mkdir -p "$k/pkg"
    dpkg-deb -x "$deb" "$k/pkg"
    local release
    release=$(ls "$k/pkg/lib/modules" | head -n 1)
    echo "$release" > "$k/release"
    cp "$k/pkg/boot/vmlinuz-$release" "$k/vmlinuz"
    local root=$k/root moddir=$k/pkg/lib/modules/$release
    mkdir -p "$root"/{bin,sbin,proc,sys,dev,newroot,lib/modules}
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    declare -A seen=()
    local order=()
    module_file() { find "$moddir" -name "$(echo "$1" | sed 's/[-_]/[-_]/g').ko*" | head -n 1; }
    add_module() {
        local m=$1 file dep
        [ -n "${seen[$m]:-}" ] && return 0
        seen[$m]=1
        file=$(module_file "$m")
        [ -n "$file" ] || return 0 # built in
        for dep in $(unpack "$file" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
            add_module "$dep"
        done
        order+=("$m")
    }
    # ext4 asks the crypto API for crc32c when it mounts: the generic one must be loaded first.
    for m in virtio_pci virtio_blk virtio_net crc32c_generic ext4 vfat nls_cp437 nls_ascii nls_utf8 button evdev; do
        add_module "$m"
    done
    for m in "${order[@]}"; do
        unpack "$(module_file "$m")" > "$root/lib/modules/$m.ko"
        echo "$m" >> "$root/lib/modules/order"
    done
    cat > "$root/init" <<'INIT'
#!/bin/sh
# The initramfs: this kernel's modules, then root= mounted read-write, then its /sbin/init.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "vmux-image-guest: initramfs: $*" > /dev/ttyS0; sleep 2; poweroff -f; }
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || fail "cannot load module $m"
done
root=""
for word in $(cat /proc/cmdline); do
    case "$word" in root=*) root=${word#root=} ;; esac
done
[ -n "$root" ] || fail "no root= on the command line"
dev=""
for _ in $(seq 100); do
    dev=$(findfs "$root" 2>/dev/null) && break
    usleep 100000
done
[ -n "$dev" ] || fail "root $root not found"
mount -t ext4 -o rw "$dev" /newroot || fail "cannot mount $dev"
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) > "$k/initrd.img"
}
say "building the initramfs of each kernel"
kernel_and_initrd "$generic_deb" generic
kernel_and_initrd "$cloud_deb" cloud
generic=$(cat "$work/generic/release")
cloud=$(cat "$work/cloud/release")

# --- the root filesystem -------------------------------------------------------------------
say "building the root filesystem (busybox, dropbear)"
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,root,home,etc/dropbear,lib64,usr/share/udhcpc,var/log}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
for deb in $dropbear_debs; do dpkg-deb -x "$deb" "$work/dropbear"; done
cp "$work/dropbear/usr/sbin/dropbear" "$rootfs/usr/sbin/dropbear"
# Its libraries: the packages' own, and this host's (Debian 12, as the packages are) for the rest.
libdir=$rootfs/lib/x86_64-linux-gnu
mkdir -p "$libdir"
cp -a "$work/dropbear/usr/lib/x86_64-linux-gnu/." "$libdir/"
for lib in $(LD_LIBRARY_PATH=$libdir ldd "$rootfs/usr/sbin/dropbear" | awk '/=> \// {print $3} /^\s*\/lib64/ {print $1}'); do
    [ -e "$libdir/$(basename "$lib")" ] || cp -L "$lib" "$libdir/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' > "$rootfs/etc/shadow"
chmod 600 "$rootfs/etc/shadow"
printf 'root:x:0:\n' > "$rootfs/etc/group"
printf '/bin/sh\n' > "$rootfs/etc/shells"
echo debian > "$rootfs/etc/hostname"
cat > "$rootfs/usr/share/udhcpc/default.script" <<'DHCP'
#!/bin/sh
case "$1" in
    deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
    bound | renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
        echo "vmux-image-guest: lease $ip on $interface" > /dev/ttyS0
        ;;
esac
DHCP
chmod +x "$rootfs/usr/share/udhcpc/default.script"
mkdir -p "$rootfs/etc/udhcpc"
ln -s /usr/share/udhcpc/default.script "$rootfs/etc/udhcpc/default.script"
cat > "$rootfs/sbin/init" <<'INIT'
#!/bin/sh
# The image's init: the NoCloud part of cloud-init this guest needs, DHCP, dropbear.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
say() { echo "vmux-image-guest: $*" > /dev/ttyS0; }
say "booted $(uname -r)"
# The ACPI power button (vmux shutdown) powers off.
for dev in /sys/class/input/event*; do
    if grep -q "Power Button" "$dev/device/name" 2>/dev/null; then
        (dd if="/dev/input/${dev##*/}" bs=24 count=1 >/dev/null 2>&1 && sync && poweroff -f) &
    fi
done
# cloud-init, NoCloud: the seed is the filesystem labelled CIDATA.
host=$(cat /etc/hostname)
user=debian
keys=""
seed=$(findfs LABEL=CIDATA 2>/dev/null || true)
if [ -n "$seed" ]; then
    mkdir -p /run/cidata
    if mount -t vfat -o ro "$seed" /run/cidata; then
        say "seed $seed: $(tr '\n' ' ' < /run/cidata/meta-data)"
        found=$(sed -n 's/^local-hostname: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' /run/cidata/meta-data)
        [ -n "$found" ] && host=$found
        found=$(sed -n 's/^  - name: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' /run/cidata/user-data | head -n 1)
        [ -n "$found" ] && user=$found
        keys=$(sed -n 's/^ *- *"\{0,1\}\(\(ssh-\|ecdsa-\|sk-\)[^"]*\)"\{0,1\} *$/\1/p' /run/cidata/user-data)
        umount /run/cidata
    else
        say "cannot mount the seed $seed"
    fi
else
    say "no CIDATA seed"
fi
hostname "$host"
echo "$host" > /etc/hostname
if ! grep -q "^$user:" /etc/passwd; then
    echo "$user:x:1000:1000::/home/$user:/bin/sh" >> /etc/passwd
    echo "$user:*:19000:0:99999:7:::" >> /etc/shadow
    echo "$user:x:1000:" >> /etc/group
fi
mkdir -p "/home/$user/.ssh"
printf '%s\n' "$keys" > "/home/$user/.ssh/authorized_keys"
chmod 700 "/home/$user/.ssh"
chmod 600 "/home/$user/.ssh/authorized_keys"
chown -R 1000:1000 "/home/$user"
say "user $user with $(grep -c . "/home/$user/.ssh/authorized_keys") key(s)"
ip link set lo up
dhcp=""
for nic in /sys/class/net/eth*; do
    [ -e "$nic" ] || continue
    udhcpc -i "${nic##*/}" -b -q -t 20 -T 2 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
    dhcp="$dhcp $!"
done
# The leases (or udhcpc going to the background after 40 s without one); not the power
# button's watcher, which never ends.
for pid in $dhcp; do wait "$pid"; done
dropbear -R -E -p 22 2>/run/dropbear.log
say "ready $host $(uname -r)"
exec /bin/sh </dev/ttyS0 >/dev/ttyS0 2>&1
INIT
chmod +x "$rootfs/sbin/init"

# --- the disk: Debian's layout, the cloud kernel first, the generic one the default ---------
say "building the disk image"
bash scripts/make-test-images.sh --only debian --size 160M \
    --kernel "$work/cloud/vmlinuz" --initrd "$work/cloud/initrd.img" --version "$cloud" \
    --old-kernel "$work/generic/vmlinuz" --old-initrd "$work/generic/initrd.img" --old-version "$generic" \
    --default "1>1" --rootfs "$rootfs" "$work/images" >&2
mv "$work/images/debian.qcow2" "$out/debian-cloud.qcow2"
printf 'GENERIC=%s\nCLOUD=%s\n' "$generic" "$cloud" > "$out/kernels.env"
echo "$stamp" > "$out/.stamp"
say "built $out/debian-cloud.qcow2 (default kernel $generic, first entry $cloud)"
