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
# How long one scenario may take (they bound their own waits well below this).
scenario_bound=${VMUX_TIER_SCENARIO_TIMEOUT:-600}
# How long L1 may go without touching its heartbeat file before it counts as wedged.
wedged_after=${VMUX_TIER_WEDGED_AFTER:-180}
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
# The cloud-image scenarios: the image's tools (make-test-images.sh) and the SSH client.
command -v ssh >/dev/null || need+=(openssh-client)
for tool in mke2fs:e2fsprogs sgdisk:gdisk sfdisk:fdisk mkfs.fat:dosfstools mcopy:mtools; do
    PATH=$PATH:/usr/sbin:/sbin command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
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
# The cloud image: the same kernel as grub's default, Debian's cloud kernel as the first entry.
VMUX_TIER_DIR=$tier VMUX_KERNEL_DEB=$deb bash scripts/make-image-guest.sh "$tier/image-guest" >/dev/null
image_guest=$tier/image-guest
# The full Debian image with the real cloud-init, when scripts/make-debian-cloud-image.sh has
# built it (root, minutes of downloads); its scenario is ignored by default.
debian_cloud=$tier/debian-cloud

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

# Ignored scenarios (the real cloud-init one) run only when asked for with --ignored or
# --include-ignored among the filters; each scenario then runs with --include-ignored.
run_ignored=0
for filter in ${filters[@]+"${filters[@]}"}; do
    case $filter in --ignored | --include-ignored) run_ignored=1 ;; esac
done
# The scenarios this run selects (the filters are libtest's), one per line.
if [ -z "$script" ]; then
    "$test_binary" --list --format terse ${filters[@]+"${filters[@]}"} 2>/dev/null \
        | sed -n 's/: test$//p' > "$run_dir/selected"
    [ -s "$run_dir/selected" ] || { say "no scenario matches the filters"; echo "0 passed, 0 failed"; exit 0; }
    cp "$run_dir/selected" "$run_dir/todo"
fi

# What runs in L1 (or here): the environment, kvm_amd in L1, then the scenarios one at a time
# (each boots Linux), each under a time bound, or the benchmark script.
cat > "$run_dir/tier-run.sh" <<RUN
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
export VMUX_LINUX_TIER_INNER=1 VMUX_LINUX_GUEST=$guest VMUX_IMAGE_GUEST=$image_guest VMUX_DEBIAN_CLOUD=$debian_cloud VMUX_TIER_RUN_DIR=$run_dir
export CI=${CI:-}
cd $repo
if [ "$mode" = nested ]; then
    # Nested paging: kvm_amd's default (npt=1). VMUX_TIER_NPT=0 selects shadow paging.
    modprobe -d $kdir kvm_amd npt=$npt || { echo "vmux-tier: cannot load kvm_amd"; exit 3; }
    modprobe -d $kdir tun
    # The heartbeat the host watches (a wedged L1 is stopped early, see boot_l1).
    (while :; do : > $run_dir/heartbeat; sleep 10; done) &
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
    clean_up=0
    [ "$mode" = nested ] && clean_up=1
    echo "{ sh $repo/scripts/linux-tier/run-scenarios.sh $test_binary $run_dir $scenario_bound $clean_up $run_ignored; echo \$? > $run_dir/inner-status; } 2>&1 | tee -a $run_dir/inner.log" >> "$run_dir/tier-run.sh"
fi

# Boots L1 once, bounded by $1 seconds, appending its console to l1-console.log. L1 touches
# run_dir/heartbeat every 10 s; one that stops for $wedged_after s (a wedged L1 kernel) is
# stopped then rather than at the bound.
boot_l1() {
    rm -f "$run_dir/heartbeat"
    timeout --foreground -k 10 "$1" qemu-system-x86_64 \
        -accel tcg,thread=multi -cpu "$l1_cpu" -smp "$l1_cpus" -m "$l1_mem" \
        -nographic -no-reboot -nic none -serial mon:stdio \
        -kernel "$l1/vmlinuz" -initrd "$l1/initrd.img" \
        -append "console=ttyS0 quiet loglevel=3 panic=-1 vmux_tier_run=$run_dir vmux_tier_keep=$repo,$tier,$(dirname "$test_binary")" \
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$run_dir,mount_tag=run,security_model=none" \
        </dev/null > >(tee -a "$run_dir/l1-console.log" | grep --line-buffered -v '^\s*$') 2>&1 &
    local qemu=$! booted now beat
    booted=$(date +%s)
    while kill -0 "$qemu" 2>/dev/null; do
        sleep 5
        now=$(date +%s)
        beat=$(stat -c %Y "$run_dir/heartbeat" 2>/dev/null || echo "$booted")
        if ((now - beat > wedged_after)); then
            say "L1 gave no sign of life for $((now - beat)) s: stopping it"
            echo "vmux-tier: no heartbeat from L1 for $((now - beat)) s; stopped" >> "$run_dir/l1-console.log"
            kill "$qemu" 2>/dev/null || true
            break
        fi
    done
    wait "$qemu" 2>/dev/null || true
}

# The selected scenarios without a result in inner.log yet (ignored ones have theirs).
has_result() { grep -qE "^test $1 \\.\\.\\. (ok|FAILED\$|ignored)" "$run_dir/inner.log" 2>/dev/null; }
unfinished() {
    local name
    while read -r name; do has_result "$name" || echo "$name"; done < "$run_dir/selected"
}

# Puts scenario $1 first in the todo list (it runs again first in the next L1).
run_first() {
    { grep -vx "$1" "$run_dir/todo" || true; } > "$run_dir/todo.rest"
    { echo "$1"; cat "$run_dir/todo.rest"; } > "$run_dir/todo"
}

start=$(date +%s)
if [ "$mode" = direct ]; then
    say "this CPU has hardware virtualization: running the scenarios directly"
    sh "$run_dir/tier-run.sh" || true
elif [ -n "$script" ]; then
    say "no hardware virtualization here: booting L1 (Debian $kver under QEMU TCG with SVM)"
    boot_l1 "$l1_timeout"
else
    # L1 runs what is left to do; if L1 itself dies or wedges during a scenario, that one is
    # failed with L1's last words and L1 boots again for the rest, all within $l1_timeout.
    attempt=0
    while [ -s "$run_dir/todo" ]; do
        attempt=$((attempt + 1))
        left=$((start + l1_timeout - $(date +%s)))
        budget=$(($(wc -l < "$run_dir/todo") * scenario_bound + 180))
        ((budget < left)) || budget=$left
        ((budget > 120)) || break
        say "no hardware virtualization here: booting L1 (Debian $kver under QEMU TCG with SVM), run $attempt, $(wc -l < "$run_dir/todo") scenarios"
        : > "$run_dir/started"
        boot_l1 "$budget"
        unfinished > "$run_dir/todo"
        hung=$(tail -n 1 "$run_dir/started")
        if [ -n "$hung" ] && ! has_result "$hung" && [ "$(cat "$run_dir/left-for-fresh-l1" 2>/dev/null)" = "$hung" ]; then
            # run-scenarios.sh stopped L1 because this scenario's guest crashed or stalled
            # there (it says why in guest-retried): it runs again first in a fresh L1.
            rm -f "$run_dir/left-for-fresh-l1"
            say "$(grep "^$hung:" "$run_dir/guest-retried" | tail -n 1); it runs again in a fresh L1"
            run_first "$hung"
        elif [ -n "$hung" ] && ! has_result "$hung"; then
            # L1's kernel died or wedged under this scenario: an L1 (QEMU TCG's emulated SVM)
            # failure, not one vmux's user-space processes can cause. The scenario runs once
            # more in a fresh L1; a second L1 death fails it.
            last_words=$(grep -a -v '^\s*$' "$run_dir/l1-console.log" | tail -n 40)
            if ! grep -qx "$hung" "$run_dir/retried" 2>/dev/null; then
                echo "$hung" >> "$run_dir/retried"
                say "L1 died during $hung; it runs again in a fresh L1. L1's last lines:"
                echo "$last_words" | tail -n 15 | sed 's/^/    /'
                run_first "$hung"
                continue
            fi
            {
                echo
                echo "test $hung ... FAILED"
                echo
                echo "---- $hung stdout ----"
                echo "L1 died (crashed, wedged, or ran past its $budget s) during this scenario, twice; its console's last lines:"
                echo "$last_words"
                echo
                echo "failures:"
            } >> "$run_dir/inner.log"
            unfinished > "$run_dir/todo"
        elif [ -z "$hung" ]; then
            say "L1 ran no scenario; see $run_dir/l1-console.log"
            break
        fi
    done
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
echo
say "scenarios ($mode, ${elapsed} s):"
grep -E '^test [^ ]+ \.\.\. (ok|FAILED)$' "$run_dir/inner.log" 2>/dev/null | sed 's/^/  /' || true
if [ -s "$run_dir/guest-retried" ]; then
    say "these failed because their guest crashed or stalled in L1 (TCG's emulated SVM) and ran again in a fresh L1 (retried-NAME*.log keep the first run):"
    sed 's/^/  /' "$run_dir/guest-retried"
fi
if [ -s "$run_dir/retried" ]; then
    say "L1 died during these scenarios and they ran again in a fresh L1 (l1-console.log has its last words):"
    sed 's/^/  /' "$run_dir/retried"
fi
not_run=$(unfinished | wc -l)
if ((not_run)); then
    say "$not_run scenarios did not run (L1 did not come up, or the run's $l1_timeout s were spent):"
    unfinished | sed 's/^/  /'
    failed=$((failed + not_run))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
