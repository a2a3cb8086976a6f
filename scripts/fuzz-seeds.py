#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (see scripts/fuzz.sh).

Device targets get hand-built guest memory images with valid rings and requests; qcow2 targets
images made by qemu-img and qemu-io; bootimg the disks of scripts/make-test-images.sh turned
into the target's sparse form (a 4-byte size in sectors, then runs of a 4-byte sector offset, a
2-byte length and the bytes). Deterministic: running it again writes the same files.

Usage: scripts/fuzz-seeds.py [TEST_IMAGES_DIR]   (default target/test-images, built if missing)
"""

import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

NEXT, WRITE, INDIRECT = 1, 2, 4


def put(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


class Ram:
    """Guest RAM from address 0, grown as it is written."""

    def __init__(self):
        self.b = bytearray()

    def write(self, addr, data):
        if len(self.b) < addr + len(data):
            self.b.extend(bytes(addr + len(data) - len(self.b)))
        self.b[addr:addr + len(data)] = data


def queue_layout(base, size):
    """Descriptor table, available ring, used ring and end, as the harness lays them out."""
    avail = base + 16 * size
    used = (avail + 6 + 2 * size + 3) // 4 * 4
    end = (used + 6 + 8 * size + 15) // 16 * 16
    return base, avail, used, end


def fill_queue(ram, base, size, descs, heads, used_event=0):
    table, avail, _, end = queue_layout(base, size)
    for i, d in enumerate(descs):
        ram.write(table + 16 * i, d)
    ring = b"".join(struct.pack("<H", h) for h in heads)
    ram.write(avail, struct.pack("<HH", 0, len(heads)) + ring)
    ram.write(avail + 4 + 2 * size, struct.pack("<H", used_event))
    return end


def blk_header(kind, sector):
    return struct.pack("<IIQ", kind, 0, sector)


def virtio_blk():
    size_sel, size = 3, 8  # 1 << 3
    # A read of one sector, a write, a flush and a GET_ID (features FLUSH|DISCARD|WRITE_ZEROES).
    ram = Ram()
    fill_queue(ram, 0, size, [
        desc(0x400, 16, NEXT, 1), desc(0x800, 512, WRITE | NEXT, 2), desc(0xC00, 1, WRITE),
        desc(0x410, 16, NEXT, 4), desc(0xA00, 512, NEXT, 5), desc(0xC01, 1, WRITE),
        desc(0x420, 16, NEXT, 7), desc(0xC02, 1, WRITE),
    ], [0, 3, 6])
    ram.write(0x400, blk_header(0, 3))
    ram.write(0x410, blk_header(1, 5))
    ram.write(0x420, blk_header(4, 0))
    ram.write(0xA00, bytes(range(256)) * 2)
    put("virtio_blk", "read-write-flush", bytes([size_sel, 4 | 8 | 16]) + bytes(ram.b))
    # GET_ID, then a discard and a write-zeroes through an indirect table, EVENT_IDX on.
    ram = Ram()
    fill_queue(ram, 0, size, [
        desc(0x430, 16, NEXT, 1), desc(0x900, 20, WRITE | NEXT, 2), desc(0xC03, 1, WRITE),
        desc(0x1000, 48, INDIRECT), desc(0x1100, 48, INDIRECT),
    ], [0, 3, 4], used_event=1)
    ram.write(0x430, blk_header(8, 0))
    ram.write(0x1000, desc(0x440, 16, NEXT, 1) + desc(0x460, 16, NEXT, 2) + desc(0xC04, 1, WRITE))
    ram.write(0x1100, desc(0x450, 16, NEXT, 1) + desc(0x470, 16, NEXT, 2) + desc(0xC05, 1, WRITE))
    ram.write(0x440, blk_header(11, 0))
    ram.write(0x450, blk_header(13, 0))
    ram.write(0x460, struct.pack("<QII", 2, 4, 0))
    ram.write(0x470, struct.pack("<QII", 8, 2, 1))
    put("virtio_blk", "getid-discard-zeroes-indirect", bytes([size_sel, 1 | 4 | 8 | 16]) + bytes(ram.b))
    # A chain that loops, on a read-only disk.
    ram = Ram()
    fill_queue(ram, 0, size, [desc(0x400, 16, NEXT, 1), desc(0x800, 512, WRITE | NEXT, 0)], [0])
    put("virtio_blk", "loop-read-only", bytes([size_sel, 2]) + bytes(ram.b))


def ethernet_frame(payload_len):
    header = bytes(10) + struct.pack("<H", 1)  # virtio_net_hdr_v1, num_buffers 1
    eth = bytes.fromhex("ffffffffffff525400000001") + b"\x08\x06"
    return header + eth + bytes(range(payload_len))


def virtio_net():
    size_sel, size = 3, 8
    frame = ethernet_frame(46)
    ram = Ram()
    rx_end = fill_queue(ram, 0, size, [desc(0x1000, 2048, WRITE), desc(0x1800, 12, WRITE | NEXT, 2),
                                       desc(0x1900, 100, WRITE)], [0, 1])
    fill_queue(ram, rx_end, size, [desc(0x2000, 12, NEXT, 1), desc(0x2100, 60, 0),
                                   desc(0x2200, 72, 0)], [0, 2])
    ram.write(0x2000, frame[:12])
    ram.write(0x2100, frame[12:])
    ram.write(0x2200, frame)
    head = bytes([size_sel, size_sel, 0, 2])
    frames = struct.pack("<H", len(frame)) + frame + struct.pack("<H", 40) + frame[:40]
    put("virtio_net", "tx-rx", head + frames + bytes(ram.b))
    put("virtio_net", "event-idx-no-frames", bytes([size_sel, 2, 1, 0]) + bytes(ram.b))


def pci():
    ops = bytearray()

    def ecam(write, device, reg, width, value=0):
        ops.extend([(2 if write else 3) | width << 4, device << 3])
        ops.extend(struct.pack("<H", reg))
        if write:
            ops.extend(struct.pack("<Q", value))

    def bar(write, offset, width, value=0):
        ops.extend([(4 if write else 5) | width << 4])
        ops.extend(struct.pack("<H", offset))
        if write:
            ops.extend(struct.pack("<Q", value))

    def ram(addr, value):
        ops.extend([6]) 
        ops.extend(struct.pack("<HQ", addr, value))

    # Mechanism #1: select the disk's vendor/device register, read it.
    ops.extend([0x20, 0] + list(struct.pack("<Q", 0x8000_0800)))
    ops.extend([0x21, 4])
    ecam(False, 1, 0, 2)
    ecam(True, 1, 0x10, 2, 0xFFFF_FFFF)  # size BAR 0
    ecam(False, 1, 0x10, 2)
    ecam(True, 1, 0x10, 2, 0xC000_0000)
    ecam(True, 1, 4, 1, 0x6)  # memory space, bus master
    # The virtio status dance and queue 0 at 0x1000/0x1100/0x1200, size 8.
    bar(True, 0x14, 0, 1)
    bar(True, 0x14, 0, 3)
    bar(True, 0x08, 2, 1)
    bar(True, 0x0C, 2, 1)  # VERSION_1
    bar(True, 0x14, 0, 0xB)
    bar(True, 0x16, 1, 0)
    bar(True, 0x18, 1, 8)
    bar(True, 0x20, 3, 0x1000)
    bar(True, 0x28, 3, 0x1100)
    bar(True, 0x30, 3, 0x1200)
    bar(True, 0x1C, 1, 1)
    ecam(True, 1, 0x42, 1, 0x8000)  # MSI-X enable (capability message control)
    bar(True, 0x4000, 3, 0xFEE0_0000)
    bar(True, 0x14, 0, 0xF)  # DRIVER_OK
    ram(0x1000, 0x400)
    bar(True, 0x3000, 1, 0)  # notify
    bar(False, 0x2000, 0)  # ISR
    bar(False, 0x1000, 2)  # device config
    bar(True, 0x14, 0, 0)  # reset
    put("pci", "virtio-setup", bytes(ops))


def control():
    lines = []
    with open(os.path.join(ROOT, "docs", "control-protocol.md")) as f:
        for line in f:
            if line.startswith("{") and '"' in line:
                lines.append(line.strip())
    requests = [l for l in lines if '"cmd"' in l]
    replies = [l for l in lines if '"cmd"' not in l]
    put("control", "requests", ("\n".join(requests) + "\n").encode())
    put("control", "replies-and-events", ("\n".join(replies) + "\n").encode())


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def qcow2():
    with tempfile.TemporaryDirectory(prefix="vmux-fuzz-seeds-") as tmp:
        def img(name, *args):
            path = os.path.join(tmp, name)
            run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", *args, path, "1M")
            return path

        plain = img("plain.qcow2")
        written = img("written.qcow2")
        run("qemu-io", "-c", "write -P 0xab 0 8k", "-c", "write -z 64k 4k", "-c", "discard 0 4k", written)
        raw = os.path.join(tmp, "base.raw")
        with open(raw, "wb") as f:
            f.truncate(1 << 20)
        backed = img("backed.qcow2", "-b", raw, "-F", "raw")
        v2 = os.path.join(tmp, "v2.qcow2")
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", v2, "1M")
        snap = img("snap.qcow2")
        run("qemu-img", "snapshot", "-c", "first", snap)
        for name, path in [("plain", plain), ("written", written), ("backed", backed),
                           ("v2", v2), ("snapshot", snap)]:
            with open(path, "rb") as f:
                data = f.read()
            put("qcow2_open", name, data)
            put("qcow2_header", name, data[:4096])


def definitions():
    vm = b'''name = "web"
vcpus = 2
max_vcpus = 8
memory = "1G"
autostart = false

[boot]
source = "kernel"
kernel = "/srv/vmlinuz"
initrd = "/srv/initrd.img"
cmdline = "console=ttyS0"

[[disks]]
pool = "default"
volume = "web1.qcow2"
format = "qcow2"

[[disks]]
path = "/srv/data.raw"
format = "raw"
readonly = true
target = "vdc"
serial = "DATA-1"

[[disks]]
path = "/srv/vm/web2.qcow2"
format = "qcow2"
allow_backing = ["/srv/base/debian-12.raw"]

[[nics]]
network = "default"
mac = "52:54:00:12:34:56"
'''
    put("definitions", "vm", b"\x00" + vm)
    put("definitions", "vm-demo", b"\x00" + b'name = "db"\nvcpus = 1\nmax_vcpus = 4\nmemory = "64M"\n\n[boot]\nsource = "demo"\n')
    put("definitions", "pool", b"\x01" + b'name = "default"\npath = "/var/lib/vmux/images"\nautostart = true\n')
    put("definitions", "network-nat", b"\x02" + b'''name = "default"
mode = "nat"
bridge = "vmux-default"
subnet = "192.168.123.0/24"
gateway = "192.168.123.1"
dhcp_range = "192.168.123.2-192.168.123.254"
autostart = true
''')
    put("definitions", "network-bridge", b"\x02" + b'name = "lan"\nmode = "bridge"\nbridge = "br0"\n')


def cloudinit():
    put("cloudinit", "full", b"user=alice,ssh-key=~/.ssh/id_ed25519.pub,root-password=generate,"
        b"user-password=secret,hostname=web1")
    put("cloudinit", "files", b"user-data=./user-data.yaml,network-config=./network-config.yaml")
    put("cloudinit", "quotes", b'hostname=web1,user=bob\n"yes": \\u00e9 \x01 # not a comment')


def console():
    boot = (b"\x1b[0m\x1b[1;32m[  OK  ]\x1b[0m Started \x1b[0;1;39mJournal Service\x1b[0m.\r\n"
            b"\x1b]0;root@web1: ~\x07root@web1:~# ls --color\r\n"
            b"\x1b[01;34mbin\x1b[0m  \x1b[01;36mlib\x1b[0m  \xe6\x97\xa5\xe6\x9c\xac  caf\xc3\xa9\r\n")
    put("console", "boot-log", bytes([24, 80, 40, 0x50]) + boot * 3)
    full = (b"\x1b[?1049h\x1b[H\x1b[2J\x1b[?25l\x1b(0lqqk\r\nx  x\r\nmqqj\x1b(B"
            b"\x1b[5;10H\x1b[7mselected\x1b[27m\x1b[38;5;208m256\x1b[48;2;10;20;30mtrue\x1b[0m"
            b"\x1b[3;20r\x1b[10S\x1b[2K\x1b[?2004h\x1b[?1h\x1b[?1049l")
    put("console", "full-screen", bytes([40, 120, 10, 0xff]) + full)


def bootimg(images):
    if not os.path.isdir(images):
        run(os.path.join(ROOT, "scripts", "make-test-images.sh"), images)
    for name in ["debian", "ubuntu", "fedora", "mbr", "links", "truncated"]:
        path = os.path.join(images, name + ".raw")
        out = bytearray()
        size = os.path.getsize(path)
        out += struct.pack("<I", size // 512)
        with open(path, "rb") as f:
            sector, run_start, run = 0, 0, bytearray()
            while True:
                block = f.read(512)
                if not block:
                    break
                if any(block) and len(run) + len(block) <= 65024:
                    if not run:
                        run_start = sector
                    run += block
                else:
                    if run:
                        out += struct.pack("<IH", run_start, len(run)) + run
                        run = bytearray()
                    if any(block):
                        run_start, run = sector, bytearray(block)
                sector += 1
            if run:
                out += struct.pack("<IH", run_start, len(run)) + run
        put("bootimg", name, bytes(out))


def main():
    images = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "test-images")
    virtio_blk()
    virtio_net()
    pci()
    control()
    qcow2()
    definitions()
    cloudinit()
    console()
    bootimg(images)


if __name__ == "__main__":
    main()
