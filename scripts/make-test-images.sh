#!/usr/bin/env bash
# Builds the disk images the boot-image tests read (tests/boot_images.rs, the bootimg bench),
# without root: filesystems are populated from directories (`mke2fs -d`), partition tables
# written with sgdisk/sfdisk, partitions placed with dd, the ESP made with mkfs.fat + mtools,
# qcow2 copies made with qemu-img. Nothing is mounted.
#
# Usage: scripts/make-test-images.sh [OPTIONS] [OUTDIR]      (OUTDIR: target/test-images)
#   --kernel FILE    use this kernel in the Debian-like images instead of a dummy bzImage
#   --initrd FILE    use this initrd instead of a dummy one
#   --rootfs DIR     copy DIR into the root filesystem of the Debian-like images
#   --version VER    kernel version the file names carry (default 6.1.0-28-amd64)
#   --size SIZE      size of the Debian-like disk (default 64M; grow it for a real rootfs)
#   --old-kernel F   the older kernel of the Debian-like images (default: a dummy bzImage)
#   --old-initrd F   its initrd (default: a dummy one)
#   --old-version V  its version (default 6.1.0-27-amd64)
#   --default D      grub.cfg's default entry in the Debian-like images (default 0; e.g. 1>1
#                    for the older kernel in the Advanced submenu)
#   --only NAME      build only this good layout (debian, ubuntu, fedora, mbr, links) and no
#                    broken ones
#   --bench          also build bench.qcow2: a 2 GiB Debian-like disk with an 8 MiB kernel
#                    and a 48 MiB initrd (random bytes), for the extraction benchmark
#
# Images (each good layout as NAME.raw and NAME.qcow2):
#   debian     GPT: BIOS boot (14), ESP (15), ext4 root (1) holding /boot/vmlinuz-VER,
#              /boot/initrd.img-VER, an older kernel, /boot/grub/grub.cfg (search --fs-uuid,
#              default entry 0, an advanced submenu), /vmlinuz and /initrd.img links, and a
#              /boot large enough to be an htree directory
#   ubuntu     GPT: ext4 root (1), ESP (15), separate ext4 /boot (16) with /grub/grub.cfg
#   fedora     GPT: ESP (1), separate ext4 /boot (2) with /loader/entries/*.conf (BLS), ext4
#              root (3)
#   mbr        MBR: ext3 root (1) with /boot and grub.cfg (set root='hd0,msdos1'), an
#              extended partition (2) with a logical swap partition (5)
#   links      GPT: ext4 root with only the /vmlinuz and /initrd.img links (no boot loader)
# Broken ones (raw only):
#   nokernel   GPT ext4 root with /etc but no kernel, no grub.cfg, no links
#   xfsboot    GPT: ESP, a /boot partition with an XFS superblock, ext4 root without kernel
#   truncated  debian.raw cut to 10 KiB (the GPT entry array is cut off)
#   missing    grub.cfg whose default entry loads a kernel that does not exist
#   loop       /vmlinuz is a symlink loop
#   gzkernel   grub.cfg's kernel is a gzip-compressed vmlinux
#
# Cached: a stamp file records the script's checksum and the arguments; a second run with the
# same ones does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=target/test-images
KERNEL=
INITRD=
ROOTFS=
VER=6.1.0-28-amd64
SIZE=64M
BENCH=0
OLD_KERNEL=
OLD_INITRD=
OLDVER=6.1.0-27-amd64
DEFAULT=0
ONLY=
while (($#)); do
    case $1 in
    --kernel) KERNEL=$(realpath "$2"); shift 2 ;;
    --initrd) INITRD=$(realpath "$2"); shift 2 ;;
    --rootfs) ROOTFS=$(realpath "$2"); shift 2 ;;
    --version) VER=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --bench) BENCH=1; shift ;;
    --old-kernel) OLD_KERNEL=$(realpath "$2"); shift 2 ;;
    --old-initrd) OLD_INITRD=$(realpath "$2"); shift 2 ;;
    --old-version) OLDVER=$2; shift 2 ;;
    --default) DEFAULT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "make-test-images.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) OUT=$1; shift ;;
    esac
done

die() { echo "make-test-images.sh: $*" >&2; exit 1; }
missing=()
for tool in mke2fs:e2fsprogs sgdisk:gdisk sfdisk:fdisk mkfs.fat:dosfstools mcopy:mtools qemu-img:qemu-utils; do
    command -v "${tool%%:*}" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "${tool%%:*}" >/dev/null ||
        missing+=("${tool##*:}")
done
((${#missing[@]} == 0)) || die "missing tools; install them with: apt-get install -y ${missing[*]}"
export PATH=$PATH:/usr/sbin:/sbin

mkdir -p "$OUT"
OUT=$(realpath "$OUT")
STAMP="$OUT/.stamp"
want="$(sha256sum "$0" | cut -d' ' -f1) $KERNEL $INITRD $ROOTFS $VER $SIZE $BENCH $OLD_KERNEL $OLD_INITRD $OLDVER $DEFAULT $ONLY"
for f in "$KERNEL" "$INITRD" "$OLD_KERNEL" "$OLD_INITRD"; do [ -z "$f" ] || want+=" $(stat -c %s.%Y "$f")"; done
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "make-test-images.sh: $OUT is up to date"
    exit 0
fi
rm -f "$STAMP"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmux-test-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Fixed identities, so tests can name them.
ROOT_UUID=1b4e28ba-2fa1-4d2b-a3e6-0c4f7e2b9a11
BOOT_UUID=2c5f39cb-3eb2-4e3c-b4f7-1d5a8f3cab22
FEDROOT_UUID=3d6a4adc-4fc3-4f4d-85a8-2e6b9a4dbc33
MBR_UUID=4e7b5bed-50d4-4a5e-96b9-3f7cab5ecd44
XFS_UUID=5f8c6cfe-61e5-4b6f-a7ca-4a8dbc6fde55
MACHINE_ID=0123456789abcdef0123456789abcdef
FEDVER=6.11.4-301.fc41.x86_64
FEDOLD=6.10.12-200.fc40.x86_64
UBUVER=6.8.0-45-generic

# A dummy bzImage: only the setup header magic "HdrS" at 0x202 matters to the inspection.
dummy_kernel() { # FILE TAG
    head -c 8192 /dev/zero >"$1"
    printf 'HdrS' | dd of="$1" bs=1 seek=514 conv=notrunc status=none
    printf 'vmux test kernel %s\n' "$2" | dd of="$1" bs=1 seek=1024 conv=notrunc status=none
}
dummy_initrd() { printf 'vmux test initrd %s\n' "$2" >"$1"; }

# An ext filesystem image of SIZE from DIR: ext_image FILE SIZE TYPE LABEL UUID DIR [BLOCK]
ext_image() {
    local block=()
    [ -z "${7:-}" ] || block=(-b "$7")
    rm -f "$1"
    mke2fs -q -F -t "$3" -L "$4" -U "$5" "${block[@]}" -E root_owner=0:0 -d "$6" "$1" "$2" >/dev/null
}

# A FAT ESP image holding a GRUB stub config: esp_image FILE DISTRO UUID
esp_image() {
    rm -f "$1"
    mkfs.fat -C -n ESP "$1" 8192 >/dev/null
    printf 'search.fs_uuid %s root\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n' "$3" >"$WORK/stub.cfg"
    MTOOLS_SKIP_CHECK=1 mmd -i "$1" ::/EFI ::/EFI/"$2"
    MTOOLS_SKIP_CHECK=1 mcopy -i "$1" "$WORK/stub.cfg" ::/EFI/"$2"/grub.cfg
}

# Places FILE at sector START of DISK.
place() { dd if="$2" of="$1" bs=512 seek="$3" conv=notrunc,sparse status=none; }

# A Debian grub.cfg: debian_grub FILE UUID KERNEL_PATH_PREFIX VERSION [OLD_VERSION]
debian_grub() {
    local cfg=$1 uuid=$2 prefix=$3 ver=$4 old=${5:-}
    cat >"$cfg" <<EOF
# Generated in the shape of Debian's grub-mkconfig output
if [ -s \$prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "\${next_entry}" ] ; then
   set default="\${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="$DEFAULT"
fi
if [ x"\${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
function load_video {
  if [ x\$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
  fi
}
terminal_output console
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os \$menuentry_id_option 'gnulinux-simple-$uuid' {
	load_video
	insmod gzio
	if [ x\$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_gpt
	insmod ext2
	set root='hd0,gpt1'
	if [ x\$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt1 --hint-efi=hd0,gpt1 --hint-baremetal=ahci0,gpt1  $uuid
	else
	  search --no-floppy --fs-uuid --set=root $uuid
	fi
	echo	'Loading Linux $ver ...'
	linux	$prefix/vmlinuz-$ver root=UUID=$uuid ro  console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0
	echo	'Loading initial ramdisk ...'
	initrd	$prefix/initrd.img-$ver
}
submenu 'Advanced options for Debian GNU/Linux' \$menuentry_id_option 'gnulinux-advanced-$uuid' {
	menuentry 'Debian GNU/Linux, with Linux $ver (recovery mode)' --class debian \$menuentry_id_option 'gnulinux-$ver-recovery-$uuid' {
		search --no-floppy --fs-uuid --set=root $uuid
		linux	$prefix/vmlinuz-$ver root=UUID=$uuid ro single
		initrd	$prefix/initrd.img-$ver
	}
EOF
    if [ -n "$old" ]; then
        cat >>"$cfg" <<EOF
	menuentry 'Debian GNU/Linux, with Linux $old' --class debian \$menuentry_id_option 'gnulinux-$old-advanced-$uuid' {
		search --no-floppy --fs-uuid --set=root $uuid
		linux	$prefix/vmlinuz-$old root=UUID=$uuid ro
		initrd	$prefix/initrd.img-$old
	}
EOF
    fi
    echo "}" >>"$cfg"
}

# --- debian: GPT, /boot on the root filesystem ---------------------------------------------
debian_tree() { # DIR VERSION
    local d=$1 ver=$2
    mkdir -p "$d/boot/grub" "$d/etc"
    if [ -n "$ROOTFS" ]; then cp -a "$ROOTFS/." "$d/"; fi
    mkdir -p "$d/boot/grub" "$d/etc"
    if [ -n "$KERNEL" ]; then cp "$KERNEL" "$d/boot/vmlinuz-$ver"; else dummy_kernel "$d/boot/vmlinuz-$ver" "$ver"; fi
    if [ -n "$INITRD" ]; then cp "$INITRD" "$d/boot/initrd.img-$ver"; else dummy_initrd "$d/boot/initrd.img-$ver" "$ver"; fi
    if [ -n "$OLD_KERNEL" ]; then cp "$OLD_KERNEL" "$d/boot/vmlinuz-$OLDVER"; else dummy_kernel "$d/boot/vmlinuz-$OLDVER" "$OLDVER"; fi
    if [ -n "$OLD_INITRD" ]; then cp "$OLD_INITRD" "$d/boot/initrd.img-$OLDVER"; else dummy_initrd "$d/boot/initrd.img-$OLDVER" "$OLDVER"; fi
    # Enough names that /boot spans several blocks and e2fsck -D indexes it (htree).
    for i in $(seq 1 400); do : >"$d/boot/config-padding-entry-with-a-long-name-$i"; done
    debian_grub "$d/boot/grub/grub.cfg" "$ROOT_UUID" /boot "$ver" "$OLDVER"
    printf '# GRUB Environment Block\n' >"$d/boot/grub/grubenv"
    head -c $((1024 - 25)) /dev/zero | tr '\0' '#' >>"$d/boot/grub/grubenv"
    ln -sf "boot/vmlinuz-$ver" "$d/vmlinuz"
    ln -sf "boot/initrd.img-$ver" "$d/initrd.img"
    [ -e "$d/etc/hostname" ] || echo debian >"$d/etc/hostname"
}

# gpt_debian DISK TREE SIZE: BIOS boot (14), ESP (15), root (1).
gpt_debian() {
    local disk=$1 tree=$2 size=$3
    rm -f "$disk"
    truncate -s "$size" "$disk"
    local sectors=$(($(stat -c %s "$disk") / 512))
    local last=$((sectors - 34))
    sgdisk -U 11111111-2222-3333-4444-555555555555 \
        -n 14:2048:4095 -t 14:EF02 -n 15:4096:20479 -t 15:EF00 \
        -n 1:20480:"$last" -t 1:8300 "$disk" >/dev/null
    esp_image "$WORK/esp.img" debian "$ROOT_UUID"
    place "$disk" "$WORK/esp.img" 4096
    ext_image "$WORK/root.img" "$(((last - 20480 + 1) / 2))k" ext4 root "$ROOT_UUID" "$tree" 4096
    e2fsck -fyD "$WORK/root.img" >/dev/null 2>&1 || [ $? -le 1 ]
    place "$disk" "$WORK/root.img" 20480
}

build_debian() {
    rm -rf "$WORK/debian"
    debian_tree "$WORK/debian" "$VER"
    gpt_debian "$OUT/debian.raw" "$WORK/debian" "$SIZE"
}

# --- ubuntu: GPT, separate /boot (16) with /grub/grub.cfg, root (1) ------------------------
build_ubuntu() {
    local r=$WORK/ubuntu-root b=$WORK/ubuntu-boot disk=$OUT/ubuntu.raw
    rm -rf "$r" "$b"
    mkdir -p "$r/boot" "$r/etc" "$b/grub"
    echo ubuntu >"$r/etc/hostname"
    dummy_kernel "$b/vmlinuz-$UBUVER" "$UBUVER"
    dummy_initrd "$b/initrd.img-$UBUVER" "$UBUVER"
    ln -s "vmlinuz-$UBUVER" "$b/vmlinuz"
    ln -s "initrd.img-$UBUVER" "$b/initrd.img"
    cat >"$b/grub/grub.cfg" <<EOF
set default="0"
if [ "\${recordfail}" = 1 ] ; then set timeout=30; else set timeout=0; fi
set linux_gfx_mode=
if [ "\$linux_gfx_mode" != "text" ]; then set vt_handoff=vt.handoff=7; else set vt_handoff=; fi
menuentry 'Ubuntu' --class ubuntu --class gnu-linux --class gnu --class os \$menuentry_id_option 'gnulinux-simple-$ROOT_UUID' {
	recordfail
	load_video
	gfxmode \$linux_gfx_mode
	insmod gzio
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root $BOOT_UUID
	linux	/vmlinuz-$UBUVER root=LABEL=cloudimg-rootfs ro  console=tty1 console=ttyS0 \$vt_handoff
	initrd	/initrd.img-$UBUVER
}
EOF
    rm -f "$disk"
    truncate -s 64M "$disk"
    sgdisk -U 22222222-3333-4444-5555-666666666666 \
        -n 15:2048:18431 -t 15:EF00 -n 16:18432:51199 -t 16:EA00 -n 1:51200:131038 -t 1:8300 "$disk" >/dev/null
    esp_image "$WORK/esp.img" ubuntu "$BOOT_UUID"
    place "$disk" "$WORK/esp.img" 2048
    ext_image "$WORK/uboot.img" "$(((51199 - 18432 + 1) / 2))k" ext4 BOOT "$BOOT_UUID" "$b" 4096
    place "$disk" "$WORK/uboot.img" 18432
    ext_image "$WORK/uroot.img" "$(((131038 - 51200 + 1) / 2))k" ext4 cloudimg-rootfs "$ROOT_UUID" "$r" 4096
    place "$disk" "$WORK/uroot.img" 51200
}

# --- fedora: GPT, ESP (1), separate /boot (2) with BLS entries, root (3) -------------------
build_fedora() {
    local b=$WORK/fedora-boot r=$WORK/fedora-root disk=$OUT/fedora.raw
    rm -rf "$b" "$r"
    mkdir -p "$b/loader/entries" "$b/grub2" "$r/etc" "$r/boot"
    echo fedora >"$r/etc/hostname"
    for v in "$FEDVER" "$FEDOLD"; do
        dummy_kernel "$b/vmlinuz-$v" "$v"
        dummy_initrd "$b/initramfs-$v.img" "$v"
        cat >"$b/loader/entries/$MACHINE_ID-$v.conf" <<EOF
title Fedora Linux ($v) 41 (Cloud Edition)
version $v
linux /vmlinuz-$v
initrd /initramfs-$v.img
options root=UUID=$FEDROOT_UUID ro rootflags=subvol=root no_timer_check console=tty1 console=ttyS0,115200n8
grub_users \$grub_users
grub_arg --unrestricted
grub_class fedora
EOF
    done
    dummy_kernel "$b/vmlinuz-0-rescue-$MACHINE_ID" rescue
    dummy_initrd "$b/initramfs-0-rescue-$MACHINE_ID.img" rescue
    cat >"$b/loader/entries/$MACHINE_ID-0-rescue.conf" <<EOF
title Fedora Linux (0-rescue-$MACHINE_ID) 41 (Cloud Edition)
version 0-rescue-$MACHINE_ID
linux /vmlinuz-0-rescue-$MACHINE_ID
initrd /initramfs-0-rescue-$MACHINE_ID.img
options root=UUID=$FEDROOT_UUID ro
EOF
    cat >"$b/grub2/grub.cfg" <<'EOF'
set pager=1
if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
fi
set default="${saved_entry}"
insmod blscfg
blscfg
EOF
    printf '# GRUB Environment Block\nboot_success=1\n' >"$b/grub2/grubenv"
    rm -f "$disk"
    truncate -s 64M "$disk"
    sgdisk -U 33333333-4444-5555-6666-777777777777 \
        -n 1:2048:18431 -t 1:EF00 -n 2:18432:51199 -t 2:8300 -n 3:51200:131038 -t 3:8300 "$disk" >/dev/null
    esp_image "$WORK/esp.img" fedora "$BOOT_UUID"
    place "$disk" "$WORK/esp.img" 2048
    ext_image "$WORK/fboot.img" "$(((51199 - 18432 + 1) / 2))k" ext4 boot "$BOOT_UUID" "$b"
    place "$disk" "$WORK/fboot.img" 18432
    ext_image "$WORK/froot.img" "$(((131038 - 51200 + 1) / 2))k" ext4 root "$FEDROOT_UUID" "$r" 4096
    place "$disk" "$WORK/froot.img" 51200
}

# --- mbr: ext3 root (1), extended (2) with a logical swap (5) -------------------------------
build_mbr() {
    local r=$WORK/mbr-root disk=$OUT/mbr.raw
    rm -rf "$r"
    mkdir -p "$r/boot/grub" "$r/etc"
    echo mbr >"$r/etc/hostname"
    dummy_kernel "$r/boot/vmlinuz-$VER" mbr
    dummy_initrd "$r/boot/initrd.img-$VER" mbr
    cat >"$r/boot/grub/grub.cfg" <<EOF
set default=0
menuentry 'Debian GNU/Linux (MBR)' {
	insmod part_msdos
	set root='hd0,msdos1'
	linux	/boot/vmlinuz-$VER root=UUID=$MBR_UUID ro quiet
	initrd	/boot/initrd.img-$VER
}
EOF
    rm -f "$disk"
    truncate -s 64M "$disk"
    printf 'label: dos\nlabel-id: 0x1234abcd\nstart=2048, size=98304, type=83, bootable\nstart=100352, type=5\nstart=102400, type=82\n' |
        sfdisk -q "$disk" >/dev/null
    ext_image "$WORK/mroot.img" 49152k ext3 root "$MBR_UUID" "$r"
    place "$disk" "$WORK/mroot.img" 2048
    # A swap signature in the logical partition.
    printf 'SWAPSPACE2' | dd of="$disk" bs=1 seek=$((102400 * 512 + 4086)) conv=notrunc status=none
}

# --- links: GPT ext4 root with only /vmlinuz and /initrd.img --------------------------------
build_links() {
    local r=$WORK/links-root
    rm -rf "$r"
    mkdir -p "$r/boot" "$r/etc"
    dummy_kernel "$r/boot/vmlinuz-$VER" links
    dummy_initrd "$r/boot/initrd.img-$VER" links
    ln -s "boot/vmlinuz-$VER" "$r/vmlinuz"
    ln -s "/boot/initrd.img-$VER" "$r/initrd.img"
    gpt_debian "$OUT/links.raw" "$r" 64M
}

# --- broken images -------------------------------------------------------------------------
build_broken() {
    local r
    r=$WORK/nokernel-root
    rm -rf "$r"
    mkdir -p "$r/boot" "$r/etc"
    gpt_debian "$OUT/nokernel.raw" "$r" 64M

    # xfsboot: ESP (1), "XFS" /boot (2), ext4 root without a kernel (3).
    r=$WORK/xfs-root
    rm -rf "$r"
    mkdir -p "$r/boot" "$r/etc"
    local disk=$OUT/xfsboot.raw
    rm -f "$disk"
    truncate -s 64M "$disk"
    sgdisk -U 44444444-5555-6666-7777-888888888888 \
        -n 1:2048:18431 -t 1:EF00 -n 2:18432:51199 -t 2:8300 -n 3:51200:131038 -t 3:8300 "$disk" >/dev/null
    esp_image "$WORK/esp.img" redhat "$XFS_UUID"
    place "$disk" "$WORK/esp.img" 2048
    # An XFS superblock's magic and UUID are what blkid (and vmux) recognise.
    printf 'XFSB' | dd of="$disk" bs=1 seek=$((18432 * 512)) conv=notrunc status=none
    local hex
    hex=$(printf '%s' "$XFS_UUID" | tr -d '-' | sed 's/../\\x&/g')
    printf '%b' "$hex" | dd of="$disk" bs=1 seek=$((18432 * 512 + 32)) conv=notrunc status=none
    ext_image "$WORK/xroot.img" "$(((131038 - 51200 + 1) / 2))k" ext4 root "$FEDROOT_UUID" "$r" 4096
    place "$disk" "$WORK/xroot.img" 51200

    head -c 10240 "$OUT/debian.raw" >"$OUT/truncated.raw"

    r=$WORK/missing-root
    rm -rf "$r"
    mkdir -p "$r/boot/grub" "$r/etc"
    dummy_kernel "$r/boot/vmlinuz-$OLDVER" "$OLDVER"
    debian_grub "$r/boot/grub/grub.cfg" "$ROOT_UUID" /boot 9.9.9-missing
    gpt_debian "$OUT/missing.raw" "$r" 64M

    r=$WORK/loop-root
    rm -rf "$r"
    mkdir -p "$r/boot" "$r/etc"
    ln -s vmlinuz.old "$r/vmlinuz"
    ln -s vmlinuz "$r/vmlinuz.old"
    gpt_debian "$OUT/loop.raw" "$r" 64M

    r=$WORK/gz-root
    rm -rf "$r"
    mkdir -p "$r/boot/grub" "$r/etc"
    head -c 4096 /dev/zero | gzip -9 >"$r/boot/vmlinuz-$VER"
    dummy_initrd "$r/boot/initrd.img-$VER" gz
    debian_grub "$r/boot/grub/grub.cfg" "$ROOT_UUID" /boot "$VER"
    gpt_debian "$OUT/gzkernel.raw" "$r" 64M
}

# --- bench: 2 GiB, realistic file sizes -----------------------------------------------------
build_bench() {
    local r=$WORK/bench-root
    rm -rf "$r"
    mkdir -p "$r/boot/grub" "$r/etc"
    dummy_kernel "$r/boot/vmlinuz-$VER" bench
    head -c $((8 << 20)) /dev/urandom | dd of="$r/boot/vmlinuz-$VER" bs=4096 seek=2 conv=notrunc status=none
    head -c $((48 << 20)) /dev/urandom >"$r/boot/initrd.img-$VER"
    debian_grub "$r/boot/grub/grub.cfg" "$ROOT_UUID" /boot "$VER"
    gpt_debian "$WORK/bench.raw" "$r" 2G
    qemu-img convert -f raw -O qcow2 "$WORK/bench.raw" "$OUT/bench.qcow2"
}

layouts="debian ubuntu fedora mbr links"
if [ -n "$ONLY" ]; then
    case " $layouts " in *" $ONLY "*) ;; *) die "--only $ONLY: not one of $layouts" ;; esac
    layouts=$ONLY
fi
for name in $layouts; do
    "build_$name"
    qemu-img convert -f raw -O qcow2 "$OUT/$name.raw" "$OUT/$name.qcow2"
done
[ -n "$ONLY" ] || build_broken
[ "$BENCH" = 0 ] || build_bench
echo "$want" >"$STAMP"
echo "make-test-images.sh: images in $OUT"
