//! Engine integration tests: real VMs on /dev/kvm running tiny guests.
//!
//! The guests here are a few bytes of hand-assembled x86-64 machine code wrapped in a static
//! ELF64, entered in 64-bit mode at 1 MiB like any guest-kit program. Every test bounds its
//! wait so that a hang fails the test instead of blocking CI.

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

    fn exits(&self) -> u64 {
        self.handle.stats().vcpus.iter().map(|v| v.exits).sum()
    }
}

#[test]
fn hello_prints_and_powers_off() {
    let vm = Running::start(&spec(&hello_code(), 1, 64 * MIB));
    let exit = vm.wait();
    eprintln!("hello: create -> PowerOff in {:?}", vm.created.elapsed());
    assert_eq!(exit, VmExit::PowerOff);
    assert_eq!(vm.capture.text(), "A\n");
}

#[test]
fn debug_exit_reports_the_written_code() {
    let vm = Running::start(&spec(DEBUG_EXIT_42, 1, 64 * MIB));
    let exit = vm.wait();
    eprintln!("debug exit: create -> exit in {:?}", vm.created.elapsed());
    assert_eq!(exit, VmExit::DebugExit(42));
}

#[test]
fn pause_stops_the_guest_and_resume_continues_it() {
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
    let vm = Running::start(&spec(SLEEP_FOREVER, 1, 64 * MIB));
    thread::sleep(Duration::from_millis(20));
    let destroyed = Instant::now();
    vm.handle.destroy();
    assert_eq!(vm.wait(), VmExit::Destroyed);
    eprintln!("destroy of a halted guest took {:?}", destroyed.elapsed());
}

#[test]
fn i8042_reset_ends_the_boot_with_reset() {
    let vm = Running::start(&spec(I8042_RESET, 1, 64 * MIB));
    assert_eq!(vm.wait(), VmExit::Reset);
}

#[test]
fn guest_fault_is_a_crash_naming_rip() {
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
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    let stats = vm.handle.stats();
    vm.handle.destroy();
    vm.wait();
    assert_eq!(stats.memory_bytes, 64 * MIB);
    assert!(stats.memory_touched_bytes > 0);
    assert!(stats.memory_touched_bytes < 64 * MIB);
}

#[test]
fn power_button_on_a_guest_without_acpi_changes_nothing() {
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    vm.handle.power_button();
    thread::sleep(Duration::from_millis(20));
    vm.handle.destroy();
    assert_eq!(vm.wait(), VmExit::Destroyed);
}

#[test]
fn reset_request_ends_the_boot_with_reset() {
    let vm = Running::start(&spec(SPIN_ON_PORT_80, 1, 64 * MIB));
    vm.handle.reset();
    assert_eq!(vm.wait(), VmExit::Reset);
}

#[test]
fn control_after_the_boot_ended_is_refused() {
    let vm = Running::start(&spec(DEBUG_EXIT_42, 1, 64 * MIB));
    vm.wait();
    assert!(vm.handle.pause().is_err());
    assert!(vm.handle.resume().is_err());
}

#[test]
fn missing_kernel_is_refused_naming_the_file() {
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
