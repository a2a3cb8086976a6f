#!/usr/bin/env bash
# Builds a real Debian cloud image from Debian's packages, for the real-Linux tier's slowest
# scenario: mmdebstrap makes a root filesystem with systemd, the real `cloud-init` package,
# openssh-server, ifupdown + isc-dhcp-client (cloud-init's ENI renderer) and Debian's cloud
# kernel with its initramfs (initramfs-tools), e2fsprogs and locales with en_US.UTF-8
# generated (cloud-init's resizefs and locale modules fail without them; Debian's own cloud
# images have both), and make-test-images.sh lays it out as Debian's
# images are (GPT, ext4 root holding /boot and grub.cfg). Nothing in it knows about vmux:
# cloud-init finds the NoCloud seed by its CIDATA label, as on any KVM host.
#
# Output: $1 (default target/linux-tier/debian-cloud) with debian-cloud-full.qcow2 and
# kernel.env (RELEASE=<kernel release>). Needs root (mmdebstrap, chroot), Debian's mirrors,
# and make-test-images.sh's tools. Cached: rebuilt only when this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/linux-tier/debian-cloud}
mkdir -p "$out"
out=$(cd "$out" && pwd)
say() { echo "make-debian-cloud-image: $*" >&2; }
stamp=$(sha256sum "$0" scripts/make-test-images.sh | cut -c1-16 | tr '\n' ' ')
if [ -s "$out/debian-cloud-full.qcow2" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "up to date in $out"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "needs root (mmdebstrap)"; exit 2; }
command -v mmdebstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
}
work=$(mktemp -d "${TMPDIR:-/tmp}/vmux-debian-cloud.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
packages=systemd-sysv,udev,cloud-init,openssh-server,ifupdown,isc-dhcp-client,sudo,netbase,linux-image-cloud-amd64,initramfs-tools,zstd,e2fsprogs,locales
say "mmdebstrap bookworm ($packages)"
# The root filesystem's UUID is make-test-images.sh's ROOT_UUID. /etc/network/interfaces is
# Debian's own: lo, and `source` of interfaces.d/, where cloud-init's ENI renderer writes the
# NICs' configuration (without that line the guest's NIC stays down).
mmdebstrap --variant=apt --include="$packages" \
    --customize-hook='echo "UUID=1b4e28ba-2fa1-4d2b-a3e6-0c4f7e2b9a11 / ext4 rw,errors=remount-ro 0 1" > "$1/etc/fstab"' \
    --customize-hook='echo debian > "$1/etc/hostname"' \
    --customize-hook='echo "en_US.UTF-8 UTF-8" >> "$1/etc/locale.gen" && chroot "$1" locale-gen >/dev/null' \
    --customize-hook='printf "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n" > "$1/etc/network/interfaces"' \
    --customize-hook='chroot "$1" systemctl enable ssh cloud-init-local cloud-init cloud-config cloud-final >/dev/null 2>&1 || true' \
    bookworm "$root" >&2
release=$(ls "$root/lib/modules" | head -n 1)
# make-test-images.sh puts the kernel and initrd in /boot itself (from these copies).
cp "$root/boot/vmlinuz-$release" "$work/vmlinuz"
cp "$root/boot/initrd.img-$release" "$work/initrd.img"
rm -f "$root/boot/vmlinuz-"* "$root/boot/initrd.img-"* "$root/vmlinuz"* "$root/initrd.img"*
size_mb=$(($(du -sm "$root" | cut -f1) * 3 / 2 + 256))
say "laying out a ${size_mb}M disk (kernel $release)"
bash scripts/make-test-images.sh --only debian --size "${size_mb}M" \
    --kernel "$work/vmlinuz" --initrd "$work/initrd.img" --version "$release" \
    --rootfs "$root" "$work/images" >&2
mv "$work/images/debian.qcow2" "$out/debian-cloud-full.qcow2"
echo "RELEASE=$release" > "$out/kernel.env"
echo "$stamp" > "$out/.stamp"
say "built $out/debian-cloud-full.qcow2"
