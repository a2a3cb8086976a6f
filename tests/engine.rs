//! Engine integration tests: real VMs on /dev/kvm running tiny guests.
//!
//! Two kinds of guests: the guest kit's programs (`tests/guests/*.rs`, built by build.rs into
//! `VMUX_GUEST_DIR`), and a few bytes of hand-assembled x86-64 machine code wrapped in a static
//! ELF64 for the cases that need exact control over what the guest does (odd port widths,
//! unclaimed MMIO, specific faults). Every test bounds its wait so that a hang fails the test
//! instead of blocking CI.

mod common;

use common::prereq::{Need, met};

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use vmux::engine::{BootSpec, SerialSink, Vm, VmExit, VmHandle, VmSpec};

/// Longest any test VM may run before the test fails.
const TIMEOUT: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;
/// Guest-kit programs and these guests are linked at 1 MiB.
const LOAD_ADDR: u64 = 0x10_0000;

/// Collects everything the guest writes to COM1.
#[derive(Default)]
struct Capture(Mutex<Vec<u8>>);

impl SerialSink for Capture {
    fn write(&self, bytes: &[u8]) {
        self.0
            .lock()
            .expect("capture lock")
            .extend_from_slice(bytes);
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

/// A static ELF64 (ET_EXEC, x86-64) with `code` in one PT_LOAD segment at 1 MiB, entered at
/// its first byte.
fn elf(code: &[u8]) -> Vec<u8> {
    let mut elf = vec![0u8; 0x1000];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little endian
    elf[6] = 1; // EV_CURRENT
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[24..32].copy_from_slice(&LOAD_ADDR.to_le_bytes()); // e_entry
    elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = &mut elf[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&7u32.to_le_bytes()); // RWX
    ph[8..16].copy_from_slice(&0x1000u64.to_le_bytes()); // p_offset
    ph[16..24].copy_from_slice(&LOAD_ADDR.to_le_bytes()); // p_vaddr
    ph[24..32].copy_from_slice(&LOAD_ADDR.to_le_bytes()); // p_paddr
    ph[32..40].copy_from_slice(&(code.len() as u64).to_le_bytes()); // p_filesz
    ph[40..48].copy_from_slice(&(code.len() as u64).to_le_bytes()); // p_memsz
    ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(code);
    elf
}

/// `mov dx, 0x600; mov al, 0x34; out dx, al` (ACPI S5), then `hlt` forever.
const POWER_OFF: &[u8] = &[0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee, 0xf4, 0xeb, 0xfd];

/// Prints "A\n" on COM1 and powers off.
fn hello_code() -> Vec<u8> {
    let mut code = vec![
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'A', 0xee, // mov al, 'A'; out dx, al
        0xb0, b'\n', 0xee, // mov al, '\n'; out dx, al
    ];
    code.extend_from_slice(POWER_OFF);
    code
}

/// `mov al, 42; out 0xf4, al`, then `hlt` forever.
const DEBUG_EXIT_42: &[u8] = &[0xb0, 42, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd];

/// `out 0x80, al` in a loop: one exit per iteration, forever.
const SPIN_ON_PORT_80: &[u8] = &[0xe6, 0x80, 0xeb, 0xfc];

/// `mov al, 0xfe; out 0x64, al` (i8042 reset), then `hlt` forever.
const I8042_RESET: &[u8] = &[0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd];

/// `ud2`: with the boot IDT empty this triple-faults.
const UD2: &[u8] = &[0x0f, 0x0b];

/// `int3`.
const INT3: &[u8] = &[0xcc];

/// `cli; hlt`: sleeps in KVM forever (nothing can wake it).
const SLEEP_FOREVER: &[u8] = &[0xfa, 0xf4, 0xeb, 0xfd];

/// Polls COM1 and echoes every byte until it receives 'q', then powers off.
fn echo_code() -> Vec<u8> {
    let mut code = vec![
        0x66, 0xba, 0xfd, 0x03, // 0: mov dx, 0x3fd (LSR)
        0xec, // 4: in al, dx
        0xa8, 0x01, // 5: test al, 1 (data ready)
        0x74, 0xfb, // 7: jz 4
        0x66, 0xba, 0xf8, 0x03, // 9: mov dx, 0x3f8
        0xec, // 13: in al, dx
        0xee, // 14: out dx, al
        0x3c, b'q', // 15: cmp al, 'q'
        0x75, 0xed, // 17: jne 0
    ];
    code.extend_from_slice(POWER_OFF);
    code
}

/// Prints the zero page's "HdrS" magic (RSI + 0x202) and the RSDP signature (0xe0000) with
/// `rep outsb`, then powers off.
fn boot_tables_code() -> Vec<u8> {
    let mut code = vec![
        0x48, 0x81, 0xc6, 0x02, 0x02, 0x00, 0x00, // add rsi, 0x202
        0xb9, 0x04, 0x00, 0x00, 0x00, // mov ecx, 4
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xf3, 0x6e, // rep outsb
        0xbe, 0x00, 0x00, 0x0e, 0x00, // mov esi, 0xe0000
        0xb9, 0x08, 0x00, 0x00, 0x00, // mov ecx, 8
        0xf3, 0x6e, // rep outsb
    ];
    code.extend_from_slice(POWER_OFF);
    code
}

/// Prints the zero page's e820 entry count as a digit, then powers off.
fn e820_count_code() -> Vec<u8> {
    let mut code = vec![
        0x8a, 0x86, 0xe8, 0x01, 0x00, 0x00, // mov al, [rsi + 0x1e8]
        0x04, b'0', // add al, '0'
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee, // out dx, al
    ];
    code.extend_from_slice(POWER_OFF);
    code
}

/// Reads and writes every port from 0x100 to 0x6ff with 4-, 2- and 1-byte accesses (COM1,
/// the ACPI and GED registers and many unclaimed ports), then exits with debug code 7.
const PORT_ABUSE: &[u8] = &[
    0xba, 0x00, 0x01, 0x00, 0x00, // 0: mov edx, 0x100
    0xed, // 5: in eax, dx
    0xb8, 0xf0, 0xff, 0xff, 0xff, // 6: mov eax, 0xfffffff0
    0xef, // 11: out dx, eax
    0x66, 0xed, // 12: in ax, dx
    0x66, 0xef, // 14: out dx, ax
    0xec, // 16: in al, dx
    0xee, // 17: out dx, al
    0xff, 0xc2, // 18: inc edx
    0x81, 0xfa, 0x00, 0x07, 0x00, 0x00, // 20: cmp edx, 0x700
    0x72, 0xe9, // 26: jb 5
    0xb0, 0x07, 0xe6, 0xf4, // 28: mov al, 7; out 0xf4, al
    0xf4, 0xeb, 0xfd,
];

/// Writes to and reads from 0xc0000000 (PCI MMIO window, nothing mapped), prints the low and
/// high byte read, then powers off.
fn mmio_hole_code() -> Vec<u8> {
    let mut code = vec![
        0xb8, 0x00, 0x00, 0x00, 0xc0, // mov eax, 0xc0000000
        0xc7, 0x00, 0x78, 0x56, 0x34, 0x12, // mov dword [rax], 0x12345678
        0x8b, 0x00, // mov eax, [rax]
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xee, // out dx, al
        0xc1, 0xe8, 0x18, // shr eax, 24
        0xee, // out dx, al
    ];
    code.extend_from_slice(POWER_OFF);
    code
}

/// The guest-kit program `name`, as built by build.rs.
fn guest(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("guest {}: {e}", path.display()))
}

/// A VM booting the guest-kit program `name` with `cmdline`.
fn kit_spec(name: &str, cmdline: &str, vcpus: u32, max_vcpus: u32) -> VmSpec {
    VmSpec {
        name: name.to_owned(),
        vcpus,
        max_vcpus,
        memory_bytes: 128 * MIB,
        boot: BootSpec::Image {
            elf: Arc::from(guest(name)),
            cmdline: cmdline.to_owned(),
        },
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: false,
    }
}

fn spec(code: &[u8], vcpus: u32, memory_bytes: u64) -> VmSpec {
    VmSpec {
        name: "test".to_owned(),
        vcpus,
        max_vcpus: vcpus.max(2),
        memory_bytes,
        boot: BootSpec::Image {
            elf: Arc::from(elf(code)),
            cmdline: "console=ttyS0".to_owned(),
        },
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: false,
    }
}

/// A started VM whose `wait` runs on a helper thread, so tests can bound it.
struct Running {
    handle: VmHandle,
    capture: Arc<Capture>,
    exit: mpsc::Receiver<VmExit>,
    created: Instant,
}

impl Running {
    fn start(spec: &VmSpec) -> Running {
        let capture = Arc::new(Capture::default());
        let created = Instant::now();
        let mut vm = Vm::create(spec, capture.clone()).expect("create VM");
        let handle = vm.handle();
        vm.start().expect("start VM");
        let (tx, exit) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(vm.wait());
        });
        Running {
            handle,
            capture,
            exit,
            created,
        }
    }

    /// Waits for the boot to end; destroys the VM and fails the test after [`TIMEOUT`].
    fn wait(&self) -> VmExit {
        match self.exit.recv_timeout(TIMEOUT) {
            Ok(exit) => exit,
            Err(_) => {
                self.handle.destroy();
                panic!(
                    "the VM did not finish within {TIMEOUT:?}; output so far: {:?}",
                    self.capture.text()
                );
            }
        }
    }

    /// Waits until the guest's output contains `text`; fails the test after [`TIMEOUT`].
    fn wait_for_output(&self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.capture.text().contains(text) {
            if Instant::now() > deadline {
                self.handle.destroy();
                panic!("no {text:?} in the output: {:?}", self.capture.text());
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn exits(&self) -> u64 {
        self.handle.stats().vcpus.iter().map(|v| v.exits).sum()
    }
}

#[test]
fn kit_hello_prints_its_line_and_powers_off() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("hello", "", 1, 1));
    let exit = vm.wait();
    eprintln!(
        "kit hello: create -> PowerOff in {:?}",
        vm.created.elapsed()
    );
    assert_eq!(exit, VmExit::PowerOff);
    assert!(
        vm.capture.text().contains("hello from the vmux guest kit"),
        "{}",
        vm.capture.text()
    );
}

#[test]
fn kit_launch_exits_through_the_debug_port_at_once() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let capture = Arc::new(Capture::default());
    let created = Instant::now();
    let mut vm = Vm::create(&kit_spec("launch", "", 1, 1), capture).expect("create");
    let create_took = created.elapsed();
    let started = Instant::now();
    vm.start().expect("start");
    let start_took = started.elapsed();
    let exit = vm.wait();
    eprintln!(
        "kit launch: create {create_took:?}, start {start_took:?}, create -> wait returned {:?}",
        created.elapsed()
    );
    assert_eq!(exit, VmExit::DebugExit(0));
}

#[test]
fn kit_flood_output_arrives_complete_and_in_order() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("flood", "lines=500", 1, 1));
    let exit = vm.wait();
    let elapsed = vm.created.elapsed();
    let text = vm.capture.text();
    eprintln!(
        "kit flood: {} bytes in {elapsed:?} ({:.0} KiB/s)",
        text.len(),
        text.len() as f64 / 1024.0 / elapsed.as_secs_f64()
    );
    assert_eq!(exit, VmExit::DebugExit(0));
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("flood ")).collect();
    assert_eq!(lines.len(), 500);
    assert!(lines[0].starts_with("flood 1 "), "{}", lines[0]);
    assert!(lines[499].starts_with("flood 500 "), "{}", lines[499]);
}

#[test]
fn kit_echo_receives_interrupt_driven_input() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("echo", "", 1, 1));
    vm.wait_for_output("> ");
    // A line longer than the UART's 64-byte FIFO: the rest waits in the engine's queue.
    let line = "the quick brown fox jumps over the lazy dog, then over the lazy cat, twice";
    assert_eq!(
        vm.handle.serial_input(format!("{line}\r").as_bytes()),
        line.len() + 1
    );
    vm.wait_for_output(&format!("you typed: {line}"));
    vm.handle.serial_input(b"poweroff\r");
    assert_eq!(vm.wait(), VmExit::PowerOff);
}

#[test]
fn kit_echo_reboot_ends_the_boot_with_reset() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("echo", "", 1, 1));
    vm.wait_for_output("> ");
    vm.handle.serial_input(b"reboot\r");
    assert_eq!(vm.wait(), VmExit::Reset);
}

#[test]
fn kit_smp_brings_four_vcpus_online() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("smp", "", 4, 8));
    let exit = vm.wait();
    let text = vm.capture.text();
    assert_eq!(exit, VmExit::PowerOff, "{text}");
    assert!(text.contains("smp: 4 cpus online"), "{text}");
    for apic in 1..4 {
        assert!(text.contains(&format!("cpu {apic} online")), "{text}");
    }
}

#[test]
fn kit_acpi_finds_valid_tables_memory_map_and_cmdline() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("acpi", "console=ttyS0 test=acpi", 2, 4));
    let exit = vm.wait();
    let text = vm.capture.text();
    assert_eq!(exit, VmExit::PowerOff, "{text}");
    assert!(text.contains("acpi: all checksums ok"), "{text}");
    assert!(text.contains("madt: cpu apic=1 enabled"), "{text}");
    assert!(text.contains("madt: cpu apic=3 online-capable"), "{text}");
    assert!(text.contains("cmdline: console=ttyS0 test=acpi"), "{text}");
    assert!(text.contains("e820:"), "{text}");
}

#[test]
fn kit_fault_is_reported_with_rip_and_instruction_bytes() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("fault", "", 1, 1));
    let VmExit::Crashed(reason) = vm.wait() else {
        panic!("the fault guest must crash: {}", vm.capture.text());
    };
    eprintln!("kit fault: {reason}");
    assert!(reason.contains("RIP 0x"), "{reason}");
    assert!(reason.contains("instruction bytes"), "{reason}");
}

#[test]
fn kit_triple_fault_is_reported_as_such() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&kit_spec("fault", "fault=triple", 1, 1));
    let VmExit::Crashed(reason) = vm.wait() else {
        panic!("the fault guest must crash: {}", vm.capture.text());
    };
    assert!(reason.starts_with("triple fault at RIP 0x"), "{reason}");
}

#[test]
fn power_button_makes_the_demo_guest_power_off() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let spec = VmSpec {
        name: "demo".to_owned(),
        vcpus: 1,
        max_vcpus: 2,
        memory_bytes: 128 * MIB,
        boot: BootSpec::Image {
            elf: Arc::from(vmux::assets::demo_guest()),
            cmdline: String::new(),
        },
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: false,
    };
    let vm = Running::start(&spec);
    vm.wait_for_output("demo$ ");
    let pressed = Instant::now();
    vm.handle.power_button();
    assert_eq!(vm.wait(), VmExit::PowerOff, "{}", vm.capture.text());
    eprintln!("power button -> PowerOff in {:?}", pressed.elapsed());
    assert!(vm.capture.text().contains("power button pressed"));
}

#[test]
fn hello_prints_and_powers_off() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(&hello_code(), 1, 64 * MIB));
    let exit = vm.wait();
    eprintln!("hello: create -> PowerOff in {:?}", vm.created.elapsed());
    assert_eq!(exit, VmExit::PowerOff);
    assert_eq!(vm.capture.text(), "A\n");
}

#[test]
fn guest_finds_the_zero_page_in_rsi_and_the_rsdp_at_0xe0000() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(&boot_tables_code(), 1, 64 * MIB));
    assert_eq!(vm.wait(), VmExit::PowerOff);
    assert_eq!(vm.capture.text(), "HdrSRSD PTR ");
}

#[test]
fn memory_above_three_gib_continues_at_four_gib_in_the_e820_map() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let small = Running::start(&spec(&e820_count_code(), 1, 64 * MIB));
    assert_eq!(small.wait(), VmExit::PowerOff);
    let large = Running::start(&spec(&e820_count_code(), 1, 3 * 1024 * MIB + 64 * MIB));
    assert_eq!(large.wait(), VmExit::PowerOff);
    eprintln!(
        "3 GiB + 64 MiB VM: create -> PowerOff in {:?}",
        large.created.elapsed()
    );
    // Low RAM, EBDA/BIOS, RAM from 1 MiB, ECAM; plus RAM from 4 GiB for the large VM.
    assert_eq!(small.capture.text(), "4");
    assert_eq!(large.capture.text(), "5");
}

#[test]
fn guest_hammering_ports_with_odd_widths_does_not_break_the_vmm() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(PORT_ABUSE, 1, 64 * MIB));
    assert_eq!(vm.wait(), VmExit::DebugExit(7));
    // Six accesses per port; a few ports (the PIC's ELCR) are handled inside KVM.
    assert!(vm.exits() > 0x600 * 5, "the loop ran: {} exits", vm.exits());
}

#[test]
fn unclaimed_mmio_reads_all_ones_and_ignores_writes() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(&mmio_hole_code(), 1, 64 * MIB));
    assert_eq!(vm.wait(), VmExit::PowerOff);
    assert_eq!(
        *vm.capture.0.lock().expect("capture lock"),
        vec![0xff, 0xff]
    );
}

#[test]
fn debug_exit_reports_the_written_code() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(DEBUG_EXIT_42, 1, 64 * MIB));
    let exit = vm.wait();
    eprintln!("debug exit: create -> exit in {:?}", vm.created.elapsed());
    assert_eq!(exit, VmExit::DebugExit(42));
}

#[test]
fn pause_stops_the_guest_and_resume_continues_it() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    thread::sleep(Duration::from_millis(50));
    let pause_started = Instant::now();
    vm.handle.pause().expect("pause");
    eprintln!("pause took {:?}", pause_started.elapsed());
    assert!(vm.handle.is_paused());
    let at_pause = vm.exits();
    thread::sleep(Duration::from_millis(100));
    let while_paused = vm.exits();
    vm.handle.resume().expect("resume");
    thread::sleep(Duration::from_millis(100));
    let after_resume = vm.exits();
    eprintln!(
        "spin guest: {} exits in 100 ms after resume",
        after_resume - while_paused
    );
    vm.handle.destroy();
    assert_eq!(vm.wait(), VmExit::Destroyed);
    assert!(at_pause > 0, "the guest ran before the pause");
    assert_eq!(while_paused, at_pause, "no exits while paused");
    assert!(
        after_resume > while_paused,
        "the guest runs again after resume"
    );
}

#[test]
fn destroy_ends_a_guest_sleeping_in_kvm() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(SLEEP_FOREVER, 1, 64 * MIB));
    thread::sleep(Duration::from_millis(20));
    let destroyed = Instant::now();
    vm.handle.destroy();
    assert_eq!(vm.wait(), VmExit::Destroyed);
    eprintln!("destroy of a halted guest took {:?}", destroyed.elapsed());
}

#[test]
fn i8042_reset_ends_the_boot_with_reset() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(I8042_RESET, 1, 64 * MIB));
    assert_eq!(vm.wait(), VmExit::Reset);
}

#[test]
fn guest_fault_is_a_crash_naming_rip() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(UD2, 1, 64 * MIB));
    let VmExit::Crashed(reason) = vm.wait() else {
        panic!("a triple fault must be a crash");
    };
    eprintln!("ud2 crash: {reason}");
    assert!(reason.contains("RIP 0x100000"), "{reason}");
    assert!(reason.contains("0f 0b"), "{reason}");
}

#[test]
fn instruction_the_host_cannot_run_is_a_crash_naming_rip() {
    if !met(&[Need::Kvm]) {
        return;
    }
    // int3 with no IDT: a triple fault on hardware virtualization, an emulation failure on a
    // host whose KVM emulates guest code; a crash naming RIP either way.
    let vm = Running::start(&spec(INT3, 1, 64 * MIB));
    let VmExit::Crashed(reason) = vm.wait() else {
        panic!("int3 without an IDT must be a crash");
    };
    eprintln!("int3 crash: {reason}");
    assert!(reason.contains("RIP 0x100000"), "{reason}");
}

#[test]
fn serial_input_reaches_a_polling_guest() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(&echo_code(), 1, 64 * MIB));
    // More than the UART's 64-byte FIFO, so the queue must refill it.
    let mut input: Vec<u8> = (0..300).map(|i| b'a' + (i % 16) as u8).collect();
    input.push(b'q');
    assert_eq!(vm.handle.serial_input(&input), input.len());
    assert_eq!(vm.wait(), VmExit::PowerOff);
    assert_eq!(vm.capture.text().as_bytes(), &input[..]);
}

#[test]
fn extra_vcpus_are_parked_and_destroy_ends_them() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 4, 128 * MIB));
    thread::sleep(Duration::from_millis(50));
    let stats = vm.handle.stats();
    vm.handle.destroy();
    assert_eq!(vm.wait(), VmExit::Destroyed);
    assert_eq!(vm.handle.vcpu_count(), 4);
    assert_eq!(stats.vcpus.len(), 4);
    assert!(stats.vcpus.iter().all(|v| v.tid != 0), "{stats:?}");
    assert!(stats.vcpus[0].exits > 0, "the boot vCPU runs");
    assert!(
        stats.vcpus[1..].iter().all(|v| v.exits == 0),
        "application processors wait for INIT/SIPI: {stats:?}"
    );
}

#[test]
fn stats_report_memory_size_and_touched_pages() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    let stats = vm.handle.stats();
    vm.handle.destroy();
    vm.wait();
    assert_eq!(stats.memory_bytes, 64 * MIB);
    assert!(stats.memory_touched_bytes > 0);
    assert!(stats.memory_touched_bytes < 64 * MIB);
    assert_eq!(
        vm.handle.stats().memory_touched_bytes,
        0,
        "guest memory is released once the VM is gone"
    );
}

#[test]
fn power_button_on_a_guest_without_acpi_changes_nothing() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    vm.handle.power_button();
    thread::sleep(Duration::from_millis(20));
    vm.handle.destroy();
    assert_eq!(vm.wait(), VmExit::Destroyed);
}

#[test]
fn reset_request_ends_the_boot_with_reset() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    vm.handle.reset();
    assert_eq!(vm.wait(), VmExit::Reset);
}

#[test]
fn control_after_the_boot_ended_is_refused() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Running::start(&spec(DEBUG_EXIT_42, 1, 64 * MIB));
    vm.wait();
    assert!(vm.handle.pause().is_err());
    assert!(vm.handle.resume().is_err());
}

#[test]
fn missing_kernel_is_refused_naming_the_file() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let spec = VmSpec {
        boot: BootSpec::Kernel {
            kernel: "/nonexistent/bzImage".into(),
            initrd: None,
            cmdline: String::new(),
        },
        ..spec(POWER_OFF, 1, 64 * MIB)
    };
    let err = Vm::create(&spec, Arc::new(Capture::default()))
        .err()
        .expect("creation fails");
    let chain = error_chain(&err);
    assert!(chain.contains("/nonexistent/bzImage"), "{chain}");
}

#[test]
fn zero_vcpus_are_refused() {
    let err = Vm::create(&spec(POWER_OFF, 0, 64 * MIB), Arc::new(Capture::default()))
        .err()
        .expect("creation fails");
    assert!(err.to_string().contains("vcpus"), "{err}");
}

#[test]
fn dropping_a_running_vm_stops_it() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let capture = Arc::new(Capture::default());
    let mut vm = Vm::create(&spec(SPIN_ON_PORT_80, 2, 64 * MIB), capture).expect("create");
    let handle = vm.handle();
    vm.start().expect("start");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        drop(vm);
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(TIMEOUT).is_ok(), "drop returned");
    assert!(handle.pause().is_err(), "the VM is gone");
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
