//! Checks the guest-kit programs that build.rs puts in `VMUX_GUEST_DIR`, without vmux:
//!
//! * their ELF shape (what vmux's loader and QEMU's PVH loader rely on);
//! * that they contain no instruction the emulating KVM on the development machines cannot run
//!   (`objdump -d`);
//! * that they really run and print what tests/guests/README.md promises, booted by QEMU
//!   through their PVH entry.
//!
//! Without binutils or QEMU the tests skip, or fail under CI (tests/common/prereq.rs).
//!
//! The engine's own tests boot the same programs on vmux.

mod common;

use common::prereq::{Missing, OBJDUMP, QEMU_IMG, QEMU_SYSTEM, met, settle};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const PROGRAMS: [&str; 14] = [
    "acpi",
    "blk",
    "blkstress",
    "demo",
    "echo",
    "evil_blk",
    "fault",
    "flood",
    "hello",
    "hotplug",
    "inject",
    "launch",
    "net",
    "smp",
];

fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"))
}

fn read_guest(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).unwrap_or_else(|e| panic!("{}: {e}", guest(name).display()))
}

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b[at..at + N]
        .try_into()
        .expect("a slice of N bytes converts to [u8; N]")
}
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(field(b, at))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(field(b, at))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(field(b, at))
}

/// (type, paddr, offset, filesz, memsz) of each program header.
fn program_headers(elf: &[u8]) -> Vec<(u32, u64, u64, u64, u64)> {
    let (phoff, phentsize, phnum) = (
        u64_at(elf, 32) as usize,
        u16_at(elf, 54) as usize,
        u16_at(elf, 56),
    );
    (0..usize::from(phnum))
        .map(|i| {
            let ph = &elf[phoff + i * phentsize..];
            (
                u32_at(ph, 0),
                u64_at(ph, 24),
                u64_at(ph, 8),
                u64_at(ph, 32),
                u64_at(ph, 40),
            )
        })
        .collect()
}

#[test]
fn every_guest_is_a_static_elf64_loaded_from_1_mib_and_entered_at_1_mib() {
    for name in PROGRAMS {
        let elf = read_guest(name);

        assert_eq!(&elf[..5], b"\x7fELF\x02", "{name}: ELF64 magic");
        assert_eq!(u16_at(&elf, 16), 2, "{name}: ET_EXEC");
        assert_eq!(u16_at(&elf, 18), 62, "{name}: EM_X86_64");
        assert_eq!(u64_at(&elf, 24), 0x10_0000, "{name}: entry at 1 MiB");
        let loads: Vec<_> = program_headers(&elf)
            .into_iter()
            .filter(|ph| ph.0 == 1)
            .collect();
        assert!(!loads.is_empty(), "{name}: no PT_LOAD");
        for (_, paddr, _, filesz, memsz) in loads {
            assert!(
                paddr >= 0x10_0000,
                "{name}: segment at {paddr:#x} is below 1 MiB"
            );
            assert!(
                paddr + memsz < 0x40_0000,
                "{name}: segment ends above 4 MiB"
            );
            assert!(
                filesz <= 0x1_0000,
                "{name}: {filesz} bytes of file data (stacks leaked into the file?)"
            );
        }
    }
}

#[test]
fn every_guest_has_a_pvh_note_naming_its_32_bit_entry() {
    for name in PROGRAMS {
        let elf = read_guest(name);
        let note = program_headers(&elf)
            .into_iter()
            .find(|ph| ph.0 == 4)
            .unwrap_or_else(|| panic!("{name}: no PT_NOTE"));
        let at = note.2 as usize;

        assert_eq!(
            (u32_at(&elf, at), u32_at(&elf, at + 8)),
            (4, 18),
            "{name}: namesz 4, type 18"
        );
        assert_eq!(&elf[at + 12..at + 16], b"Xen\0", "{name}: note name");
        let entry = u64_at(&elf, at + 16);
        assert!(
            (0x10_0000..0x20_0000).contains(&entry),
            "{name}: PVH entry {entry:#x}"
        );
    }
}

/// `objdump -d` of a guest (the test checks [`OBJDUMP`] first).
fn disassemble(name: &str) -> String {
    let out = Command::new("objdump")
        .arg("-d")
        .arg(guest(name))
        .output()
        .expect("run objdump");
    assert!(
        out.status.success(),
        "objdump -d {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Instructions the emulating KVM cannot run, and SSE (the guests are built without it; any
/// xmm register means core's precompiled SSE code was linked in, see kit/console.rs).
fn forbidden(line: &str) -> bool {
    let Some(text) = line.split('\t').nth(2) else {
        return false;
    };
    [
        "cmpxchg16b",
        "xsave",
        "xrstor",
        "int3",
        "%xmm",
        "%ymm",
        "%zmm",
    ]
    .iter()
    .any(|bad| text.contains(bad))
}

#[test]
fn no_guest_contains_instructions_the_emulating_kvm_cannot_run() {
    if !met(&[OBJDUMP]) {
        return;
    }
    for name in PROGRAMS {
        let listing = disassemble(name);
        let mut function = "";
        let mut found = Vec::new();
        let mut panic_paths = Vec::new();
        for line in listing.lines() {
            if line.ends_with(">:") {
                function = line;
            } else if forbidden(line) && !(name == "fault" && line.contains("cmpxchg16b")) {
                found.push(format!("{function}\n    {line}"));
            } else if line.contains("call") && line.contains("core") && line.contains("panic")
                || line.contains("index_fail")
            {
                // Not itself wrong, but the usual way core's SSE formatting gets linked in.
                if !function.contains("4core") && !panic_paths.contains(&function) {
                    panic_paths.push(function);
                }
            }
        }

        assert!(
            found.is_empty(),
            "{name} contains:\n{}\n(panicking paths in: {panic_paths:?}; see tests/guests/README.md)",
            found.join("\n")
        );
    }
}

#[test]
fn fault_contains_the_cmpxchg16b_it_is_meant_to_fail_on() {
    if !met(&[OBJDUMP]) {
        return;
    }
    let listing = disassemble("fault");

    assert!(listing.contains("cmpxchg16b"));
}

/// The output and exit status of one QEMU run.
struct Run {
    output: String,
    status: ExitStatus,
}

/// Boots `name` under QEMU (KVM when available, else TCG) with `args`; feeds `input` as
/// (wait for this output, then type this) steps. The test checks [`QEMU_SYSTEM`] first.
fn qemu(name: &str, machine: &str, args: &[&str], input: &[(&str, &str)]) -> Run {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-M", machine, "-accel", "kvm", "-accel", "tcg", "-m", "128"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .args([
            "-serial",
            "stdio",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
        ])
        .arg("-kernel")
        .arg(guest(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("run qemu-system-x86_64");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (chunks, received) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if chunks
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut output = String::new();
    let collect = |output: &mut String| {
        while let Ok(chunk) = received.recv_timeout(Duration::from_millis(10)) {
            output.push_str(&chunk);
        }
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    for (wait_for, text) in input {
        while !output.contains(wait_for) {
            assert!(
                Instant::now() < deadline,
                "{name}: no {wait_for:?} in {output:?}"
            );
            collect(&mut output);
        }
        stdin
            .write_all(text.as_bytes())
            .expect("QEMU reads its stdin");
        stdin.flush().expect("QEMU reads its stdin");
    }
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for QEMU") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name}: still running after 60 s; output: {output:?}");
        }
        collect(&mut output);
    };
    // The reader ends at EOF, once QEMU has exited; take what is left.
    while let Ok(chunk) = received.recv_timeout(Duration::from_secs(5)) {
        output.push_str(&chunk);
    }
    Run { output, status }
}

/// QEMU's isa-debug-exit status for a guest's `out 0xf4, v`.
fn debug_exit(v: i32) -> Option<i32> {
    Some((v << 1) | 1)
}

const MICROVM: &str = "microvm,acpi=off";
const MICROVM_ACPI: &str = "microvm,acpi=on";

#[test]
fn hello_prints_its_line_under_qemu() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("hello", MICROVM, &[], &[]);

    assert_eq!(run.output, "hello from the vmux guest kit\r\n");
    assert_eq!(
        run.status.code(),
        debug_exit(0),
        "S5 is ignored by microvm, so debug exit 0"
    );
}

#[test]
fn launch_exits_at_once_under_qemu() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("launch", MICROVM, &[], &[]);

    assert_eq!(run.output, "");
    assert_eq!(run.status.code(), debug_exit(0));
}

#[test]
fn flood_prints_the_requested_number_of_80_byte_lines_under_qemu() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("flood", MICROVM, &["-append", "lines=12"], &[]);

    let lines: Vec<&str> = run.output.split_inclusive("\r\n").collect();
    assert_eq!(lines.len(), 12);
    let pattern = "0123456789abcdefghijklmnopqrstuvwxyz".repeat(3);
    for (i, line) in lines.iter().enumerate() {
        let prefix = format!("flood {} ", i + 1);
        assert_eq!(line.len(), 80, "{line:?}");
        assert_eq!(
            *line,
            format!("{prefix}{}\r\n", &pattern[..78 - prefix.len()])
        );
    }
    assert_eq!(run.status.code(), debug_exit(0));
}

#[test]
fn echo_answers_typed_lines_from_interrupts_under_qemu() {
    let input = [("> ", "abx\x7fc\r"), ("you typed: abc", "poweroff\r")];
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("echo", MICROVM, &[], &input);

    assert!(
        run.output.starts_with("echo ready\r\n> "),
        "{:?}",
        run.output
    );
    assert!(
        run.output.contains("\r\nyou typed: abc\r\n> "),
        "{:?}",
        run.output
    );
    assert!(
        run.output
            .contains("you typed: poweroff\r\npowering off\r\n"),
        "{:?}",
        run.output
    );
}

#[test]
fn smp_starts_every_cpu_under_qemu() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("smp", MICROVM_ACPI, &["-smp", "3"], &[]);

    assert_eq!(
        run.output,
        "cpu 1 online\r\ncpu 2 online\r\nsmp: 3 cpus online\r\n"
    );
}

#[test]
fn acpi_checks_qemus_tables_and_lists_cmdline_and_memory() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu(
        "acpi",
        MICROVM_ACPI,
        &["-smp", "2", "-append", "a=1 b"],
        &[],
    );

    // In this order (other lines may come between them).
    let mut rest = run.output.as_str();
    for line in [
        "table RSDP ok",
        "table XSDT ok",
        "table FACP ok",
        "table DSDT ok",
        "table APIC ok",
        "acpi: all checksums ok",
        "madt: cpu apic=0 enabled",
        "madt: cpu apic=1 enabled",
        "cmdline: a=1 b",
        "e820: 0x0 0x9fc00 1",
        "e820: 0x100000 0x7f00000 1",
    ] {
        let at = rest
            .find(&format!("{line}\r\n"))
            .unwrap_or_else(|| panic!("no {line:?} (in order) in {:?}", run.output));
        rest = &rest[at..];
    }
}

#[test]
fn fault_triple_faults_when_asked_under_qemu() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("fault", MICROVM, &["-append", "fault=triple"], &[]);

    assert_eq!(run.output, "fault: triple fault\r\n");
    assert_eq!(
        run.status.code(),
        Some(0),
        "-no-reboot turns the triple fault into a clean exit"
    );
}

#[test]
fn demo_answers_commands_under_qemu() {
    let input = [
        ("demo$ ", "cpus\r"),
        ("apic ids", "echo hi  there\r"),
        ("hi  there", "frob\r"),
        ("type help", "poweroff\r"),
    ];
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let run = qemu("demo", MICROVM_ACPI, &["-smp", "2"], &input);

    assert!(run.output.contains("vmux demo guest"), "{:?}", run.output);
    assert!(
        run.output.contains("cpus: 2 online, apic ids 0 1\r\n"),
        "{:?}",
        run.output
    );
    assert!(
        run.output.contains("echo hi  there\r\nhi  there\r\n"),
        "{:?}",
        run.output
    );
    assert!(
        run.output.contains("unknown command: frob; type help\r\n"),
        "{:?}",
        run.output
    );
    assert!(run.output.ends_with("powering off\r\n"), "{:?}", run.output);
}

/// Boots `blkstress` on q35 with `image` as a virtio-blk disk.
fn blkstress_under_qemu(image: &std::path::Path, cmdline: &str) -> Run {
    let drive = format!("file={},if=none,id=d0,format=qcow2", image.display());
    let args = [
        "-append",
        cmdline,
        "-drive",
        &drive,
        "-device",
        "virtio-blk-pci,drive=d0,disable-legacy=on",
    ];
    qemu("blkstress", "q35", &args, &[])
}

#[test]
fn blkstress_flushes_numbered_sectors_and_counts_boots_under_qemu() {
    if !met(&[QEMU_SYSTEM, QEMU_IMG]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("d.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("1M")
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img create failed");
    let first = blkstress_under_qemu(&image, "writes=5 sectors=3");
    let second = blkstress_under_qemu(&image, "writes=1");

    // `lines` drops the CR LF line ends.
    let lines: Vec<&str> = first.output.lines().collect();
    assert!(
        lines[0].ends_with(" capacity=2048 sectors=3 gen 1"),
        "{:?}",
        first.output
    );
    assert_eq!(
        lines[1..6],
        [
            "flushed 1 gen 1",
            "flushed 2 gen 1",
            "flushed 3 gen 1",
            "flushed 1 gen 1",
            "flushed 2 gen 1"
        ]
    );
    assert!(lines[6].ends_with(" done"), "{:?}", first.output);
    assert!(
        second.output.contains("gen 2\r\nflushed 1 gen 2\r\n"),
        "the second boot takes the next generation: {:?}",
        second.output
    );
}

/// Boots `name` under QEMU like [`qemu`] and returns its output once it contains `until`,
/// then stops QEMU: for programs that never end. `None` when QEMU refuses `args` (e.g. a
/// network backend it was built without): a missing prerequisite, skipped or failed by the
/// rule in tests/common/prereq.rs. The test checks [`QEMU_SYSTEM`] first.
fn qemu_until(name: &str, machine: &str, args: &[&str], until: &str) -> Option<String> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-M", machine, "-accel", "kvm", "-accel", "tcg", "-m", "128"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-monitor", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel"])
        .arg(guest(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qemu-system-x86_64");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (chunks, received) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if chunks
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut output = String::new();
    while !output.contains(until) {
        if let Ok(chunk) = received.recv_timeout(Duration::from_millis(50)) {
            output.push_str(&chunk);
            continue;
        }
        if let Some(status) = child.try_wait().expect("waiting for QEMU") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            if output.is_empty() && !status.success() {
                let refused = Missing::new(
                    format!("QEMU refused {args:?}: {}", stderr.trim()),
                    "apt-get install qemu-system-x86 (Debian's build has user networking)",
                );
                settle(vec![refused]);
                return None;
            }
            panic!("{name}: QEMU exited ({status}) before {until:?}: {output:?} {stderr}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: no {until:?} within 60 s: {output:?}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Some(output)
}

#[test]
fn net_gets_a_lease_and_pings_its_gateway_under_qemu() {
    let args = [
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0,disable-legacy=on,mac=52:54:00:12:34:56",
    ];
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let Some(output) = qemu_until("net", "q35", &args, "replied\r\n") else {
        return;
    };

    assert!(
        output.contains("net: 00:01.0 mac 52:54:00:12:34:56 link up\r\n"),
        "{output:?}"
    );
    assert!(
        output.contains("net: lease 10.0.2.15 gateway 10.0.2.2\r\n"),
        "{output:?}"
    );
    assert!(
        output.contains("net: gateway 10.0.2.2 replied\r\n"),
        "{output:?}"
    );
}
