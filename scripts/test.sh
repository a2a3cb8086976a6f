#!/usr/bin/env bash
# Runs the whole test suite: installs the Debian packages the tests use when they are missing,
# then `cargo test`. Tests that need root, /dev/kvm or hardware virtualization say so and skip.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v iasl >/dev/null || need+=(acpica-tools)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v cc >/dev/null || need+=(gcc)
command -v objdump >/dev/null || need+=(binutils)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v tmux >/dev/null || need+=(tmux)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
command -v busybox >/dev/null || need+=(busybox)
command -v capsh >/dev/null || need+=(libcap2-bin)
# Boot-image and cloud-init seed tests: test disk images built without root, FAT checks.
command -v mke2fs >/dev/null || [ -x /sbin/mke2fs ] || need+=(e2fsprogs)
command -v sgdisk >/dev/null || [ -x /sbin/sgdisk ] || need+=(gdisk)
command -v sfdisk >/dev/null || [ -x /sbin/sfdisk ] || need+=(fdisk)
command -v mkfs.fat >/dev/null || [ -x /sbin/mkfs.fat ] || need+=(dosfstools)
command -v mdir >/dev/null || need+=(mtools)
if ((${#need[@]})); then
    if [ "$(id -u)" -eq 0 ]; then
        echo "test.sh: installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "test.sh: missing ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi

# Everything except the real-Linux scenarios, then those (docs/linux-tier.md): directly where
# the CPU has vmx/svm, else in the nested tier (an L1 Linux under QEMU TCG), with its progress
# shown; they take minutes.
cargo test --locked "$@" -- --skip real_linux_
cargo test --locked --test linux_boot -- --nocapture
