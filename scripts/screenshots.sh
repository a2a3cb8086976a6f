#!/usr/bin/env bash
# Regenerates screenshots/*.png: the real vmux binary, run in tmux against real VMs (the
# built-in demo guest on /dev/kvm) under a throw-away VMUX_HOME, each screen captured with
# `tmux capture-pane -e` and drawn to PNG by a small Python + Pillow renderer below (DejaVu
# Sans Mono; block, braille and box characters drawn as shapes so charts stay crisp).
#
# Needs: tmux, python3 with Pillow, fonts-dejavu-core. On Debian, as root, the script installs
# what is missing: apt-get install -y tmux python3-pil fonts-dejavu-core
#
# Usage: scripts/screenshots.sh [--release]      (VMUX=/path/to/vmux to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
need=()
command -v tmux >/dev/null || need+=(tmux)
"$PYTHON" -c 'import PIL' 2>/dev/null || need+=(python3-pil)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "screenshots.sh: installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "screenshots.sh: missing ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "screenshots.sh: /dev/kvm is not usable here; the screenshots show real VMs" >&2
    exit 1
fi

if [ -z "${VMUX:-}" ]; then
    if [ "${1:-}" = "--release" ]; then
        cargo build --release --quiet
        VMUX=$PWD/target/release/vmux
    else
        cargo build --quiet
        VMUX=$PWD/target/debug/vmux
    fi
fi

HOME_DIR=$(mktemp -d)
SOCK="vmux-shots-$$"
OUT=screenshots
mkdir -p "$OUT"
WIDTH=120
HEIGHT=36
RENDER=$(mktemp --suffix=.py)

cleanup() {
    for vm in web1 db build demo; do
        VMUX_HOME=$HOME_DIR "$VMUX" destroy "$vm" >/dev/null 2>&1 || true
    done
    tmux -L "$SOCK" kill-server 2>/dev/null || true
    rm -rf "$HOME_DIR" "$RENDER"
}
trap cleanup EXIT

vmux() { VMUX_HOME=$HOME_DIR "$VMUX" "$@"; }
t() { tmux -L "$SOCK" "$@"; }

# A session that outlives every shot: killing the last session ends the tmux server, and a
# new-session racing that exit fails with "server exited unexpectedly".
t new-session -d -s keep "sleep 3600"

launch() { # launch [vmux options...]
    t kill-session -t shot 2>/dev/null || true
    t new-session -d -s shot -x "$WIDTH" -y "$HEIGHT" \
        "env VMUX_HOME=$HOME_DIR TERM=xterm-256color $VMUX $*; sleep 600"
}

wait_for() { # wait_for TEXT: until the screen shows TEXT (30 s at most)
    for _ in $(seq 300); do
        if t capture-pane -p -t shot | grep -qF -- "$1"; then
            return 0
        fi
        sleep 0.1
    done
    echo "screenshots.sh: timed out waiting for '$1'; screen:" >&2
    t capture-pane -p -t shot >&2
    exit 1
}

shoot() { # shoot NAME [light]: capture the screen as screenshots/NAME.png
    sleep 0.4
    t capture-pane -e -p -t shot | "$PYTHON" "$RENDER" "$OUT/$1.png" "$WIDTH" "$HEIGHT" "${2:-dark}"
    echo "  $OUT/$1.png"
}

cat >"$RENDER" <<'PY'
"""Draws `tmux capture-pane -e -p` output (text with SGR escapes) as a PNG."""
import re
import sys
import unicodedata

from PIL import Image, ImageDraw, ImageFont

out, cols, rows, scheme = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
FONTS = "/usr/share/fonts/truetype/dejavu/"
SIZE = 15
regular = ImageFont.truetype(FONTS + "DejaVuSansMono.ttf", SIZE)
bold = ImageFont.truetype(FONTS + "DejaVuSansMono-Bold.ttf", SIZE)
fallback = ImageFont.truetype(FONTS + "DejaVuSans.ttf", SIZE)
CW = round(regular.getlength("M"))
CH = round(SIZE * 1.25)
BASE = [(0x1e, 0x21, 0x27), (0xe0, 0x6c, 0x75), (0x98, 0xc3, 0x79), (0xe5, 0xc0, 0x7b),
        (0x61, 0xaf, 0xef), (0xc6, 0x78, 0xdd), (0x56, 0xb6, 0xc2), (0xab, 0xb2, 0xbf),
        (0x5c, 0x63, 0x70), (0xff, 0x7b, 0x86), (0xb5, 0xe8, 0x90), (0xff, 0xd8, 0x8c),
        (0x8a, 0xc6, 0xff), (0xe0, 0x9b, 0xf5), (0x7e, 0xd6, 0xe0), (0xff, 0xff, 0xff)]
if scheme == "light":
    FG, BG = (0x38, 0x3a, 0x42), (0xfa, 0xfa, 0xfa)
else:
    FG, BG = (0xc8, 0xcc, 0xd4), (0x28, 0x2c, 0x34)


def indexed(n):
    if n < 16:
        return BASE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    level = 8 + (n - 232) * 10
    return (level, level, level)


def sgr(params, st):
    p = [int(x) if x else 0 for x in params.split(";")] if params else [0]
    i = 0
    while i < len(p):
        c = p[i]
        if c == 0:
            st.update(fg=None, bg=None, bold=False, rev=False, ul=False, dim=False)
        elif c == 1:
            st["bold"] = True
        elif c == 2:
            st["dim"] = True
        elif c == 4:
            st["ul"] = True
        elif c == 7:
            st["rev"] = True
        elif c == 22:
            st["bold"] = st["dim"] = False
        elif c == 24:
            st["ul"] = False
        elif c == 27:
            st["rev"] = False
        elif 30 <= c <= 37:
            st["fg"] = BASE[c - 30]
        elif 90 <= c <= 97:
            st["fg"] = BASE[c - 90 + 8]
        elif 40 <= c <= 47:
            st["bg"] = BASE[c - 40]
        elif 100 <= c <= 107:
            st["bg"] = BASE[c - 100 + 8]
        elif c == 39:
            st["fg"] = None
        elif c == 49:
            st["bg"] = None
        elif c in (38, 48) and i + 1 < len(p):
            key = "fg" if c == 38 else "bg"
            if p[i + 1] == 5 and i + 2 < len(p):
                st[key] = indexed(p[i + 2])
                i += 2
            elif p[i + 1] == 2 and i + 4 < len(p):
                st[key] = tuple(p[i + 2:i + 5])
                i += 4
        i += 1


grid = [[(" ", dict(fg=None, bg=None, bold=False, rev=False, ul=False, dim=False))
         for _ in range(cols)] for _ in range(rows)]
state = dict(fg=None, bg=None, bold=False, rev=False, ul=False, dim=False)
text = sys.stdin.read()
row = col = 0
for token in re.finditer(r"\x1b\[([0-9;]*)([A-Za-z])|\x1b[^\[]|\n|.", text, re.S):
    s = token.group(0)
    if token.group(2):
        if token.group(2) == "m":
            sgr(token.group(1), state)
        continue
    if s.startswith("\x1b"):
        continue
    if s == "\n":
        row, col = row + 1, 0
        continue
    if row >= rows or col >= cols:
        continue
    grid[row][col] = (s, dict(state))
    col += 2 if unicodedata.east_asian_width(s) in "WF" else 1

img = Image.new("RGB", (cols * CW, rows * CH), BG)
draw = ImageDraw.Draw(img)


def shape(ch, x, y, fg):
    """Block elements and braille drawn as rectangles and dots."""
    o = ord(ch)
    if 0x2581 <= o <= 0x2588:
        h = CH * (o - 0x2580) // 8
        draw.rectangle([x, y + CH - h, x + CW - 1, y + CH - 1], fill=fg)
        return True
    if 0x2800 <= o <= 0x28FF:
        bits = o - 0x2800
        dots = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3)]
        r = max(1, CW // 6)
        for bit, (dx, dy) in enumerate(dots):
            if bits & (1 << bit):
                cx = x + CW * (1 + 2 * dx) // 4
                cy = y + CH * (1 + 2 * dy) // 8
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        return True
    return False


for r, line in enumerate(grid):
    for c, (ch, st) in enumerate(line):
        fg, bg = st["fg"] or FG, st["bg"] or BG
        if st["rev"]:
            fg, bg = bg, fg
        if st["dim"]:
            fg = tuple((a + b) // 2 for a, b in zip(fg, bg))
        x, y = c * CW, r * CH
        wide = unicodedata.east_asian_width(ch) in "WF"
        draw.rectangle([x, y, x + CW * (2 if wide else 1) - 1, y + CH - 1], fill=bg)
        if ch != " " and not shape(ch, x, y, fg):
            font = bold if st["bold"] else regular
            if font.getmask(ch).getbbox() is None and not ch.isspace():
                font = fallback
            draw.text((x, y + 1), ch, font=font, fill=fg)
        if st["ul"]:
            draw.line([x, y + CH - 2, x + CW - 1, y + CH - 2], fill=fg)
img.save(out)
PY

echo "screenshots.sh: starting VMs under $HOME_DIR"
# Volumes for the storage pane: each VM's disk, a base image and a linked clone of it, and a
# network defined but not started (starting one would change this host's networking).
vmux vol-create-as default web1.qcow2 8G >/dev/null
vmux vol-create-as default db.raw 4G >/dev/null
vmux vol-create-as default base.qcow2 10G >/dev/null
vmux vol-clone default base.qcow2 build.qcow2 --linked >/dev/null
vmux vol-create-as default scratch.raw 1G >/dev/null
# A subnet unlikely to be routed on the host already: definitions refuse overlaps.
vmux net-define-as lab --mode isolated --subnet 10.213.77.0/24 >/dev/null
vmux create web1 --demo --vcpus 2 --max-vcpus 8 --memory 512M --autostart \
    --disk default/web1.qcow2 --start >/dev/null
vmux create db --demo --vcpus 4 --max-vcpus 8 --memory 1G --disk default/db.raw --start >/dev/null
# build stays shut off, so its NIC on the inactive network `lab` is fine.
vmux create build --demo --vcpus 2 --memory 2G --disk default/build.qcow2 --network lab >/dev/null
# Pause db only once its prompt is out, so its console shows the whole banner.
vmux console db --until 'demo\$ ' --timeout 30 >/dev/null </dev/null
vmux suspend db >/dev/null

launch
wait_for "web1"
# Let a few seconds of stats gather for the sparklines and charts.
sleep 8
shoot list

t send-keys -t shot Down Down Tab
wait_for "overview"
sleep 3
shoot details
t send-keys -t shot Tab

t send-keys -t shot End Enter
wait_for "demo\$"
t send-keys -t shot -l "help"
t send-keys -t shot Enter
wait_for "online CPUs"
t send-keys -t shot -l "cpus"
t send-keys -t shot Enter
sleep 1
shoot console
t send-keys -t shot C-]
wait_for "VMs (3)"

t send-keys -t shot Home Down Space Space Enter
wait_for "db ·"
sleep 1
shoot split
t send-keys -t shot C-]
wait_for "VMs (3)"
# A key right after Esc would read as Alt+key: pause like a person would.
sleep 0.5
t send-keys -t shot Escape
sleep 0.5

t send-keys -t shot n
wait_for "1 Name"
t send-keys -t shot C-u
t send-keys -t shot -l "web2"
t send-keys -t shot Enter
wait_for "Space or ←/→ switches"
t send-keys -t shot Enter
wait_for "About hot-add"
t send-keys -t shot Enter
wait_for "Existing volumes"
# Ask for a new volume for the VM, so the review shows both commands.
t send-keys -t shot Tab Space
wait_for "Volume name"
t send-keys -t shot Enter
wait_for "Each ticked network"
t send-keys -t shot Space Enter
wait_for "The same from a shell"
shoot wizard
for _ in 1 2 3 4 5 6; do
    t send-keys -t shot Escape
    sleep 0.3
done

t send-keys -t shot '?'
wait_for "keys: VM list"
shoot help
t send-keys -t shot q

t send-keys -t shot 2
wait_for "volumes in default"
t send-keys -t shot Tab Down Down
sleep 0.5
shoot storage
t send-keys -t shot 3
wait_for "networks ("
t send-keys -t shot Down
sleep 0.5
shoot networks
t send-keys -t shot 1
t send-keys -t shot q

launch --theme light
wait_for "web1"
sleep 4
shoot list-light light
t send-keys -t shot q

launch --theme 16-colour
wait_for "web1"
sleep 4
shoot list-16-colour
t send-keys -t shot q

echo "screenshots.sh: done"
