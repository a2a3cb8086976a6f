#!/usr/bin/env bash
# Runs the whole test suite: installs the Debian packages the tests use when they are missing,
# runs every test binary (`--no-fail-fast`: one failing binary does not hide the later ones),
# then the real-Linux step, and ends with one summary: passed, failed, ignored, the crash
# tests' kill counts, and every skipped test with its reason. Exits non-zero if anything failed.
#
# A test whose prerequisite is missing (tests/common/prereq.rs) skips outside CI and fails
# with CI=true; either way it says what is missing. Skips are collected through the file
# VMUX_SKIP_LOG names, the crash tests' counts through VMUX_CRASH_LOG.
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
# Shell completions (tests/completions.rs) and the password hash check (openssl).
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
command -v openssl >/dev/null || need+=(openssl)
# Other hosts over SSH (tests/remote_cli.rs, tests/tui_hosts_ssh.rs): a loopback test sshd.
command -v ssh >/dev/null || need+=(openssh-client)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
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

work=$(mktemp -d "${TMPDIR:-/tmp}/vmux-test-sh.XXXXXX")
trap 'rm -rf "$work"' EXIT
export VMUX_SKIP_LOG="$work/skipped"
export VMUX_CRASH_LOG="$work/crashes"
: >"$VMUX_SKIP_LOG"
: >"$VMUX_CRASH_LOG"

steps=()
# run_step NAME COMMAND...: runs one cargo test command with its output shown, keeps the
# output in $work/NAME.log for the summary and records the command's exit status.
run_step() {
    local name=$1 status=0
    shift
    echo "== test.sh step: $name: $*"
    "$@" 2>&1 | tee "$work/$name.log" || status=$?
    steps+=("$name=$status")
}

# Step 1: every test binary but tests/linux_boot.rs (the last step runs it), or what the
# arguments select (without the real-Linux scenarios).
if (($#)); then
    run_step suite cargo test --locked --no-fail-fast "$@" -- --skip real_linux_
else
    targets=(--lib --bins)
    for file in tests/*.rs; do
        name=$(basename "$file" .rs)
        [ "$name" = linux_boot ] || targets+=(--test "$name")
    done
    run_step suite cargo test --locked --no-fail-fast "${targets[@]}"
    run_step doc cargo test --locked --doc
fi

# Step 2 (the last step): the real-Linux scenarios (docs/linux-tier.md), directly where the
# CPU has vmx/svm, else in the nested tier (an L1 Linux under QEMU TCG), with their progress
# shown; they take minutes. Covered by the summary below.
run_step real-linux cargo test --locked --no-fail-fast --test linux_boot -- --nocapture

# The summary, from libtest's lines in the step logs:
#   "     Running tests/x.rs (target/...)" / "     Running unittests src/lib.rs (...)"
#   "test NAME ... ok|FAILED|ignored[, REASON]"
#   "test result: ok. P passed; F failed; I ignored; M measured; X filtered out; ..."
summary() {
    local logs=()
    for step in "${steps[@]}"; do
        logs+=("$work/${step%%=*}.log")
    done
    # Skips of the real-Linux step that were printed but not logged (a test not yet on the
    # shared prerequisite rule) are listed from its output.
    if ! grep -q '^linux_boot::' "$VMUX_SKIP_LOG"; then
        grep -a '^skipped: ' "$work/real-linux.log" | sed 's/^skipped: /linux_boot\t/' >>"$VMUX_SKIP_LOG" || true
    fi
    echo
    echo "== test.sh summary"
    # Only the last "test result" of each binary counts: a test that runs libtest again
    # inside (the real-Linux tier) prints its inner results into the same output.
    awk '
        function flush() {
            if (have) { passed += p; failed += f; ignored += i; have = 0 }
        }
        FNR == 1 || /^ *(Running|Doc-tests) / { flush() }
        /^test result: / {
            have = 1; p = f = i = 0
            for (n = 1; n < NF; n++) {
                if ($(n + 1) ~ /^passed;/) p = $n
                if ($(n + 1) ~ /^failed;/) f = $n
                if ($(n + 1) ~ /^ignored;/) i = $n
            }
        }
        END { flush(); printf "passed: %d, failed: %d, ignored: %d\n", passed, failed, ignored }
    ' "${logs[@]}"
    echo "skipped (counted as passed by cargo): $(sort -u "$VMUX_SKIP_LOG" | grep -c . || true)"
    for step in "${steps[@]}"; do
        if [ "${step#*=}" = 0 ]; then
            echo "step ${step%%=*}: ok"
        else
            echo "step ${step%%=*}: FAILED (exit ${step#*=})"
        fi
    done
    if [ -s "$VMUX_CRASH_LOG" ]; then
        echo "crash tests:"
        sed 's/^/  /' "$VMUX_CRASH_LOG"
    fi
    local binary_lines='
        /^ *Running / { bin = $2; if (bin == "unittests") bin = $3 }
        /^ *Doc-tests / { bin = "doc-tests " $2 }'
    local failed
    # Failed tests from libtest's closing list: the names after the last "failures:" line
    # before "test result" (a "test NAME ... FAILED" line can be split by --nocapture output).
    failed=$(awk "$binary_lines"'
        /^failures:$/ { collecting = 1; n = 0; next }
        collecting && /^    [^ ]/ { names[++n] = substr($0, 5); next }
        /^test result: / {
            for (k = 1; collecting && k <= n; k++) {
                line = "  " bin ": " names[k]
                if (!(line in seen)) { seen[line] = 1; print line }
            }
            collecting = 0
        }
    ' "${logs[@]}")
    if [ -n "$failed" ]; then
        echo "failed tests:"
        echo "$failed"
    fi
    local ignored
    ignored=$(awk "$binary_lines"'
        /^test .* \.\.\. ignored/ {
            sub(/^test /, ""); name = $0; sub(/ \.\.\. ignored.*/, "", name)
            reason = $0; sub(/^.* \.\.\. ignored,? ?/, "", reason)
            line = "  " bin ": " name (reason == "" ? "" : " (" reason ")")
            if (!(line in seen)) { seen[line] = 1; print line }
        }
    ' "${logs[@]}")
    if [ -n "$ignored" ]; then
        echo "ignored tests:"
        echo "$ignored"
    fi
    if [ -s "$VMUX_SKIP_LOG" ]; then
        echo "skipped tests (a prerequisite is missing here):"
        sort -u "$VMUX_SKIP_LOG" | while IFS=$'\t' read -r test reason; do
            echo "  $test: $reason"
        done
    fi
}
summary

status=0
for step in "${steps[@]}"; do
    [ "${step#*=}" = 0 ] || status=1
done
if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED"
else
    echo "test.sh: all passed"
fi
exit "$status"
