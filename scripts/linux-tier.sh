#!/usr/bin/env bash
# The real-Linux test tier (DESIGN §7, §8 6a): runs the scenarios of tests/linux_boot.rs, each
# booting real Linux guests (the Debian kernel + busybox initramfs of make-linux-guest.sh)
# under vmux, and checking what Linux itself saw.
#
# Where the CPU has vmx/svm and /dev/kvm works, the scenarios run directly on this host.
# Elsewhere (the machines this project is built on: their KVM emulates guest instructions
# and a stock kernel does not boot on it) they run one level down: a Debian kernel (L1) boots
# under QEMU's TCG, which emulates AMD SVM with nested paging, loads kvm_amd, and runs the
# same test binary against its own real /dev/kvm. L1 sees this host's root filesystem
# read-only over 9p (so the binaries and tools are this host's own) and writes only to the run
# directory.
#
# Usage: scripts/linux-tier.sh [--test-binary PATH] [--run-dir DIR] [--build-only]
#                              [--nested|--direct] [FILTER...]
#   FILTER...      libtest filters for the scenarios (e.g. `hotplug`, or `NAME --exact`)
#   --test-binary  a tests/linux_boot.rs binary already built (the Rust harness passes its
#                  own); default: built here with `cargo test --release --no-run`
#   --run-dir      where logs and results go (default target/linux-tier/run)
#   --script PATH  run this shell script in L1 instead of the scenarios (benchmarks): its
#                  output goes to the run directory's inner.log and its status is ours; it
#                  gets VMUX (the release binary) and every BENCH_* variable of this shell
#   --nested       use L1 even on a host with vmx/svm; --direct refuses to use L1
#
# Everything downloaded or built is cached under target/linux-tier (VMUX_TIER_DIR), so a
# second run starts at once. Ends with `N passed, M failed` and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
tier=${VMUX_TIER_DIR:-$repo/target/linux-tier}
run_dir=""
test_binary=""
script=""
build_only=0
mode=auto
filters=()
while (($#)); do
    case $1 in
        --test-binary) test_binary=$2; shift 2 ;;
        --run-dir) run_dir=$2; shift 2 ;;
        --script) script=$(readlink -f "$2"); shift 2 ;;
        --build-only) build_only=1; shift ;;
        --nested) mode=nested; shift ;;
        --direct) mode=direct; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) filters+=("$1"); shift ;;
    esac
done
run_dir=${run_dir:-$tier/run}
# L1's memory and vCPUs, and the whole L1 run's time bound (seconds).
l1_mem=${VMUX_TIER_L1_MEMORY:-4096}
l1_cpus=${VMUX_TIER_L1_CPUS:-2}
l1_timeout=${VMUX_TIER_TIMEOUT:-2700}
# kvm_amd's nested paging inside L1 (see the comment where it is loaded).
npt=${VMUX_TIER_NPT:-1}
# L1's CPU: TCG's `max` model (it emulates SVM with nested paging), but reporting AMD family
# 0x17 (Zen) instead of the K8-era family 0xf that `max` inherits from qemu64. The guests see
# L1's CPUID through vmux; on family 0xf Linux probes for a K8 GART by reading the PCI
# configuration space of every device on every bus (two scans of 64 Ki config reads, each an
# exit to the VMM), which took 20 of a 35 s boot here and is not what any current host does.
l1_cpu=${VMUX_TIER_L1_CPU:-max,family=23,model=1,stepping=2}

say() { echo "linux-tier: $*"; }
die() { echo "linux-tier: error: $*" >&2; exit 2; }

# --- prerequisites -----------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v depmod >/dev/null || [ -x /sbin/depmod ] || need+=(kmod)
command -v qemu-img >/dev/null || need+=(qemu-utils)
if ((${#need[@]})); then
    [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; run: sudo apt-get install -y ${need[*]}"
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH=$PATH:/sbin:/usr/sbin

# --- the Debian kernel (L1 and the guests run the same one) ---------------------------------
mkdir -p "$tier/debs"
kernel_deb() {
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || die "apt-cache does not know linux-image-amd64; run apt-get update"
    if ! ls "$tier/debs/$pkg"_*.deb >/dev/null 2>&1; then
        (cd "$tier/debs" && apt-get download -qq "$pkg" 2>/dev/null) \
            || die "cannot download $pkg from Debian's mirrors"
    fi
    ls "$tier/debs/$pkg"_*.deb | head -n 1
}
deb=$(kernel_deb)
kdir=$tier/kernel
if [ ! -e "$kdir/.from-$(basename "$deb")" ]; then
    rm -rf "$kdir"
    mkdir -p "$kdir"
    dpkg-deb -x "$deb" "$kdir"
    touch "$kdir/.from-$(basename "$deb")"
fi
kver=$(ls "$kdir/lib/modules" | head -n 1)
[ -f "$kdir/lib/modules/$kver/modules.dep" ] || depmod -b "$kdir" "$kver"
moddir=$kdir/lib/modules/$kver

# --- the guest: kernel + busybox initramfs -------------------------------------------------
VMUX_KERNEL_DEB=$deb bash scripts/make-linux-guest.sh "$tier/guest" >/dev/null
guest=$tier/guest

# --- the L1 initramfs ----------------------------------------------------------------------
# Modules in dependency order (a module's own dependencies before it), from the `depends=`
# field of each module's .modinfo, so no loader is needed in the initramfs.
module_file() { find "$moddir" -name "$(echo "$1" | sed 's/[-_]/[-_]/g').ko*" | head -n 1; }
declare -A seen=()
ordered=()
add_module() {
    local name=$1 file deps dep
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    file=$(module_file "$name")
    [ -n "$file" ] || return 0 # built into the kernel
    deps=$(tr '\0' '\n' < "$file" | sed -n 's/^depends=//p' | tr ',' ' ')
    for dep in $deps; do add_module "$dep"; done
    ordered+=("$name")
}
l1=$tier/l1
l1_modules="virtio_pci 9pnet_virtio 9p"
stamp="$(basename "$deb") $(sha256sum scripts/linux-tier/l1-init | cut -c1-16) $l1_modules"
if [ "$(cat "$l1/.stamp" 2>/dev/null)" != "$stamp" ]; then
    say "building the L1 initramfs"
    command -v busybox >/dev/null || [ -e "$tier/debs/busybox-static.deb" ] || true
    rm -rf "$l1"
    mkdir -p "$l1/root"/{bin,sbin,proc,sys,dev,lib/modules}
    (cd "$tier/debs" && { ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download -qq busybox-static 2>/dev/null; }) \
        || die "cannot download busybox-static"
    dpkg-deb -x "$(ls "$tier"/debs/busybox-static_*.deb | head -n 1)" "$l1/bb"
    cp "$l1/bb/bin/busybox" "$l1/root/bin/busybox"
    for applet in $("$l1/root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$l1/root/bin/$applet"
    done
    for module in $l1_modules; do add_module "$module"; done
    : > "$l1/root/modules.order"
    for module in "${ordered[@]}"; do
        cp "$(module_file "$module")" "$l1/root/lib/modules/$module.ko"
        echo "$module" >> "$l1/root/modules.order"
    done
    cp scripts/linux-tier/l1-init "$l1/root/init"
    chmod +x "$l1/root/init"
    printf '#!/bin/sh\nexec chroot /host /sbin/modprobe -d %s "$@"\n' "$kdir" > "$l1/root/sbin/tier-modprobe"
    chmod +x "$l1/root/sbin/tier-modprobe"
    (cd "$l1/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$l1/initrd.img"
    cp "$kdir/boot/vmlinuz-$kver" "$l1/vmlinuz"
    echo "$stamp" > "$l1/.stamp"
fi

# --- the scenarios' test binary (or the script to run) -------------------------------------
if [ -n "$script" ]; then
    [ -x target/release/vmux ] || cargo build --locked --release --quiet
    test_binary=$script
elif [ -z "$test_binary" ]; then
    say "building the scenarios (cargo test --release --no-run --test linux_boot)"
    test_binary=$(cargo test --locked --release --no-run --test linux_boot --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | grep '/linux_boot-' | tail -n 1)
    [ -x "$test_binary" ] || die "cargo did not build the linux_boot test binary"
fi
test_binary=$(readlink -f "$test_binary")
((build_only)) && { say "built: L1 in $l1, guest in $guest, scenarios in $test_binary"; exit 0; }

# --- where to run ------------------------------------------------------------------------
hw_virt=0
if grep -qw -e vmx -e svm /proc/cpuinfo && [ -c /dev/kvm ]; then hw_virt=1; fi
case $mode in
    auto) if ((hw_virt)); then mode=direct; else mode=nested; fi ;;
    direct) ((hw_virt)) || die "--direct: this CPU reports no vmx/svm flag (or /dev/kvm is missing)" ;;
esac
rm -rf "$run_dir"
mkdir -p "$run_dir/scenarios"
run_dir=$(readlink -f "$run_dir")
case "$run_dir$test_binary$repo" in *" "*) die "paths with spaces cannot be passed to L1: $run_dir" ;; esac

# The command that runs the scenarios (in L1, or here): one at a time, since each boots Linux.
quoted=""
for f in ${filters[@]+"${filters[@]}"}; do quoted+=" $(printf '%q' "$f")"; done
cat > "$run_dir/tier-run.sh" <<RUN
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
export VMUX_LINUX_TIER_INNER=1 VMUX_LINUX_GUEST=$guest VMUX_TIER_RUN_DIR=$run_dir
export CI=${CI:-}
cd $repo
if [ "$mode" = nested ]; then
    # Nested paging: kvm_amd's default (npt=1). VMUX_TIER_NPT=0 selects shadow paging.
    modprobe -d $kdir kvm_amd npt=$npt || { echo "vmux-tier: cannot load kvm_amd"; exit 3; }
    modprobe -d $kdir tun
    echo "vmux-tier: kvm_amd npt=\$(cat /sys/module/kvm_amd/parameters/npt), THP \$(cat /sys/kernel/mm/transparent_hugepage/enabled)"
fi
RUN
if [ -n "$script" ]; then
    {
        echo "export VMUX=$repo/target/release/vmux"
        { env | grep -E '^BENCH_[A-Z_]*=' || true; } | sed 's/^/export /; s/=/="/; s/$/"/'
        echo "{ sh $script; echo \$? > $run_dir/inner-status; } 2>&1 | tee $run_dir/inner.log"
    } >> "$run_dir/tier-run.sh"
else
    echo "{ $test_binary --test-threads=1$quoted; echo \$? > $run_dir/inner-status; } 2>&1 | tee $run_dir/inner.log" >> "$run_dir/tier-run.sh"
fi

start=$(date +%s)
if [ "$mode" = direct ]; then
    say "this CPU has hardware virtualization: running the scenarios directly"
    sh "$run_dir/tier-run.sh" || true
else
    say "no hardware virtualization here: booting L1 (Debian $kver under QEMU TCG with SVM)"
    timeout --foreground -k 10 "$l1_timeout" qemu-system-x86_64 \
        -accel tcg,thread=multi -cpu "$l1_cpu" -smp "$l1_cpus" -m "$l1_mem" \
        -nographic -no-reboot -nic none -serial mon:stdio \
        -kernel "$l1/vmlinuz" -initrd "$l1/initrd.img" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 vmux_tier_run=$run_dir" \
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$run_dir,mount_tag=run,security_model=none" \
        </dev/null 2>&1 | tee "$run_dir/l1-console.log" | grep --line-buffered -v '^\s*$' || true
fi
elapsed=$(($(date +%s) - start))

# --- results -------------------------------------------------------------------------------
if [ -n "$script" ]; then
    status=$(cat "$run_dir/inner-status" 2>/dev/null || echo none)
    say "$(basename "$script") ($mode, ${elapsed} s) exited with status $status; output in $run_dir/inner.log"
    [ "$status" = 0 ]
    exit
fi
count() { grep -cE "^test [^ ]+ \\.\\.\\. $1\$" "$run_dir/inner.log" 2>/dev/null || true; }
passed=$(count ok)
failed=$(count FAILED)
: "${passed:=0}" "${failed:=0}"
status=$(cat "$run_dir/inner-status" 2>/dev/null || echo none)
echo
say "scenarios ($mode, ${elapsed} s):"
grep -E '^test [^ ]+ \.\.\. (ok|FAILED|ignored)' "$run_dir/inner.log" 2>/dev/null | sed 's/^/  /' || true
if [ "$status" = none ]; then
    say "the scenario run did not finish (L1 crashed or ran past ${l1_timeout} s); see $run_dir/l1-console.log"
    failed=$((failed + 1))
elif [ "$status" != 0 ] && [ "$failed" -eq 0 ]; then
    say "the scenario run exited with status $status; see $run_dir/inner.log"
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
