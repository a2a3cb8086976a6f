#!/usr/bin/env bash
# Sets vmux up on a fresh Debian/Ubuntu machine: checks KVM, installs the C toolchain the
# guest kit links with, builds vmux in release mode, and offers to install the shell
# completions and manual pages (scripts/install-extras.sh; asked only on a terminal). Then
# run `target/release/vmux`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -e /dev/kvm ]; then
    say "/dev/kvm is missing: enable virtualization in the firmware and load kvm_intel or kvm_amd (modprobe kvm_intel)" >&2
    exit 1
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    say "no permission on /dev/kvm: add yourself to the kvm group (sudo usermod -aG kvm $USER) and log in again" >&2
    exit 1
fi
if ! command -v cc >/dev/null; then
    say "installing gcc (links the built-in guest programs)"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null
fi
if ! command -v cargo >/dev/null; then
    say "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again" >&2
    exit 1
fi
cargo build --release --locked
say "built target/release/vmux; run it with: target/release/vmux"
if [ -t 0 ]; then
    read -r -p "setup: install shell completions (bash, zsh, fish) and man pages? [Y/n] " answer
    case "${answer,,}" in
        n | no) say "skipped; later: scripts/install-extras.sh" ;;
        *) scripts/install-extras.sh target/release/vmux ;;
    esac
else
    say "not asking about completions and man pages (stdin is not a terminal); install them with scripts/install-extras.sh"
fi
