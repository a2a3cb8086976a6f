//! Saving and restoring VMs on the engine directly: the `savestate` guest-kit program checks
//! its own memory, timers, CPUs and disk after each restore; broken, truncated, foreign and
//! stale save files are refused with a clear message.

mod common;

use common::prereq::{Need, met};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vmux::engine::snapshot::SaveFile;
use vmux::engine::{BootSpec, DiskSpec, SerialSink, Vm, VmExit, VmHandle, VmSpec};

/// Longest any single wait may take.
const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("guest {}: {e}", path.display()))
}

/// Collects everything the guest writes to COM1.
#[derive(Default)]
struct Capture(Mutex<Vec<u8>>);

impl SerialSink for Capture {
    fn write(&self, bytes: &[u8]) {
        self.0.lock().expect("capture").extend_from_slice(bytes);
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture")).into_owned()
    }
}

/// What a test VM is made of.
struct Machine {
    dir: tempfile::TempDir,
    vcpus: u32,
    cmdline: String,
    /// Disks hot-added so far (their images), in the slots they took.
    extra_disks: Vec<PathBuf>,
}

impl Machine {
    fn new(vcpus: u32, cmdline: &str) -> Machine {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("disk.raw"), vec![0u8; 128 * 512]).expect("disk");
        Machine {
            dir,
            vcpus,
            cmdline: cmdline.into(),
            extra_disks: Vec::new(),
        }
    }

    fn disk(path: PathBuf) -> DiskSpec {
        DiskSpec {
            path,
            read_only: false,
            serial: "state".into(),
            backend: None,
        }
    }

    /// A second disk whose sector 0 starts with `label`.
    fn add_disk(&mut self, label: &[u8]) -> DiskSpec {
        let path = self
            .dir
            .path()
            .join(format!("extra{}.raw", self.extra_disks.len()));
        let mut bytes = vec![0u8; 64 * 512];
        bytes[..label.len()].copy_from_slice(label);
        std::fs::write(&path, bytes).expect("disk");
        self.extra_disks.push(path.clone());
        Machine::disk(path)
    }

    fn spec(&self) -> VmSpec {
        VmSpec {
            name: "savestate".into(),
            vcpus: self.vcpus,
            max_vcpus: 4,
            memory_bytes: 64 * MIB,
            boot: BootSpec::Image {
                elf: Arc::from(guest("savestate")),
                cmdline: self.cmdline.clone(),
            },
            disks: std::iter::once(self.dir.path().join("disk.raw"))
                .chain(self.extra_disks.iter().cloned())
                .map(Machine::disk)
                .collect(),
            nics: Vec::new(),
            balloon: true,
        }
    }

    fn save_path(&self) -> PathBuf {
        self.dir.path().join("vm.save")
    }
}

/// A running engine VM.
struct Running {
    handle: VmHandle,
    capture: Arc<Capture>,
    exit: mpsc::Receiver<VmExit>,
}

impl Running {
    fn start(vm: Vm, capture: Arc<Capture>) -> Running {
        let mut vm = vm;
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
        }
    }

    fn boot(machine: &Machine) -> Running {
        let capture = Arc::new(Capture::default());
        let vm = Vm::create(&machine.spec(), capture.clone()).expect("create VM");
        let running = Running::start(vm, capture);
        running.wait_for("savestate ready", 1);
        running
    }

    fn restore(machine: &Machine, path: &Path) -> Running {
        let capture = Arc::new(Capture::default());
        let mut file = SaveFile::open(path).expect("open the save");
        let vm = Vm::restore(&machine.spec(), capture.clone(), &mut file).expect("restore");
        Running::start(vm, capture)
    }

    /// Waits until `text` has appeared `times` times in the output.
    fn wait_for(&self, text: &str, times: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.capture.text().matches(text).count() < times {
            if Instant::now() > deadline {
                self.handle.destroy();
                panic!(
                    "no {text:?} (x{times}) in the output: {:?}",
                    self.capture.text()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last status line's counters: (pit, lapic, ipis, blk).
    fn last_state(&self) -> (u64, u64, u64, u64) {
        let text = self.capture.text();
        // Only whole lines: the VM may have been saved in the middle of one.
        let line = text
            .split_inclusive('\n')
            .rfind(|l| l.starts_with("state: ") && l.ends_with('\n'))
            .unwrap_or_else(|| panic!("no state line in {text:?}"));
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        (field("pit"), field("lapic"), field("ipis"), field("blk"))
    }

    fn save(&self, path: &Path) {
        self.handle
            .save(path, &mut || Ok("{}".into()))
            .expect("save");
    }

    fn finish(self) -> String {
        self.handle.destroy();
        let exit = self.exit.recv_timeout(TIMEOUT).expect("the VM ends");
        assert_eq!(exit, VmExit::Destroyed, "{}", self.capture.text());
        self.capture.text()
    }
}

#[test]
fn a_saved_guest_continues_after_restore_with_its_memory_timers_and_disk() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let machine = Machine::new(1, "mem=2");
    let vm = Running::boot(&machine);
    vm.wait_for("state: ", 2);
    let before = vm.last_state();
    vm.save(&machine.save_path());
    let first = vm.finish();

    let vm = Running::restore(&machine, &machine.save_path());
    vm.wait_for("state: ", 2);
    vm.handle.serial_input(b"verify\r");
    vm.wait_for("verify: 2 MiB ok\r\n", 1);
    let after = vm.last_state();
    let second = vm.finish();

    assert!(!second.contains("savestate ready"), "rebooted: {second}");
    assert!(second.contains("verify: 2 MiB ok"), "{second}");
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} then {after:?}"
    );
    assert!(
        after.3 > before.3,
        "the disk kept working: {before:?} then {after:?}"
    );
    assert!(
        !second.contains("FAILED") && !first.contains("FAILED"),
        "{first}{second}"
    );
}

#[test]
fn a_save_while_stats_are_read_all_the_time_finishes() {
    // vmd's sampler reads the engine's counters every second while a save may run: the two
    // take the guest-memory and PCI locks, and must never wait for each other.
    if !met(&[Need::Kvm]) {
        return;
    }
    let machine = Machine::new(1, "mem=1");
    let vm = Running::boot(&machine);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (handle, stop) = (vm.handle.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = handle.stats();
                reads += 1;
            }
            reads
        })
    };
    let (done, saved) = mpsc::channel();
    {
        let (handle, path) = (vm.handle.clone(), machine.save_path());
        thread::spawn(move || {
            let _ = done.send(handle.save(&path, &mut || Ok("{}".into())).map(|_| ()));
        });
    }
    let result = saved.recv_timeout(TIMEOUT);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = result.expect("the save finishes while stats are read (no lock-order deadlock)");
    result.expect("save");
    assert!(reader.join().expect("stats reader") > 0);
    vm.finish();
}

#[test]
fn four_vcpus_keep_taking_interrupts_across_several_saves() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let machine = Machine::new(4, "mem=1");
    let mut vm = Running::boot(&machine);
    vm.wait_for("state: ", 2);
    for round in 0..3 {
        let before = vm.last_state();
        vm.save(&machine.save_path());
        let text = vm.finish();
        assert!(
            !text.contains("stalled") && !text.contains("FAILED"),
            "{text}"
        );
        vm = Running::restore(&machine, &machine.save_path());
        // Each status line sends the three APs an IPI; a busy host may take a few seconds to
        // run their threads.
        vm.wait_for("state: ", 2);
        let mut lines = 2;
        while vm.last_state().2 < before.2 + 3 && lines < 10 {
            lines += 1;
            vm.wait_for("state: ", lines);
        }
        let after = vm.last_state();
        assert!(
            after.2 >= before.2 + 3,
            "round {round}: the three APs took IPIs again: {before:?} then {after:?}"
        );
        assert!(
            after.0 > before.0 && after.3 > before.3,
            "round {round}: {before:?} then {after:?}"
        );
    }
    vm.handle.serial_input(b"verify\r");
    vm.wait_for("verify: 1 MiB ok", 1);
    let text = vm.finish();
    assert!(
        !text.contains("savestate ready") && !text.contains("FAILED"),
        "{text}"
    );
    assert!(!text.contains("stalled"), "{text}");
}

#[test]
fn a_hot_added_vcpu_and_disk_come_back_with_the_restore() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let mut machine = Machine::new(1, "mem=1");
    let vm = Running::boot(&machine);
    vm.handle.set_vcpus(2).expect("hot-add a vCPU");
    vm.wait_for("cpu 1 online", 1);
    let extra = machine.add_disk(b"HOTADDED-DISK-01");
    let slot = vm.handle.attach_disk(&extra).expect("hot-add a disk");
    vm.wait_for(&format!("disk {slot}: HOTADDED-DISK-01"), 1);
    vm.wait_for("state: ", 2);
    let before = vm.last_state();
    vm.save(&machine.save_path());
    vm.finish();

    let vm = Running::restore(&machine, &machine.save_path());
    assert_eq!(vm.handle.vcpu_count(), 2);
    assert_eq!(vm.handle.disk_slots(), [1, slot]);
    vm.wait_for("state: ", 2);
    vm.handle.serial_input(format!("read {slot}\r").as_bytes());
    vm.wait_for(&format!("disk {slot}: HOTADDED-DISK-01"), 1);
    let after = vm.last_state();
    let text = vm.finish();

    assert!(
        after.2 > before.2,
        "the hot-added CPU takes IPIs: {before:?} then {after:?}"
    );
    assert!(!text.contains("FAILED"), "{text}");
}

#[test]
fn input_waiting_in_the_uart_reaches_the_guest_after_the_restore() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let machine = Machine::new(1, "mem=1 disk=0");
    let vm = Running::boot(&machine);
    vm.handle.serial_input(b"hold 150\r");
    vm.wait_for("holding input for 150 ticks", 1);
    vm.handle.serial_input(b"ping\r");
    vm.save(&machine.save_path());
    vm.finish();

    let file = SaveFile::open(&machine.save_path()).expect("open");
    let serial = &file.state.serial;
    let pending: Vec<u8> = serial
        .fifo
        .0
        .iter()
        .chain(&serial.pending.0)
        .copied()
        .collect();
    assert_eq!(
        pending, b"ping\r",
        "the input was still waiting when the VM was saved"
    );
    drop(file);
    let vm = Running::restore(&machine, &machine.save_path());
    vm.wait_for("input: ping", 1);
    let text = vm.finish();
    assert_eq!(text.matches("input: ping").count(), 1, "{text}");
}

fn refused(machine: &Machine, path: &Path) -> String {
    let capture = Arc::new(Capture::default());
    match SaveFile::open(path) {
        Err(e) => e.to_string(),
        Ok(mut file) => match Vm::restore(&machine.spec(), capture, &mut file) {
            Err(e) => format!("{e}: {}", error_chain(&e)),
            Ok(_) => panic!("{} was restored", path.display()),
        },
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        text.push_str(": ");
        source = cause.source();
    }
    text
}

#[test]
fn damaged_truncated_and_foreign_saves_are_refused_with_the_reason() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let machine = Machine::new(1, "mem=1 disk=0");
    let vm = Running::boot(&machine);
    vm.wait_for("state: ", 1);
    vm.save(&machine.save_path());
    vm.finish();
    let saved = std::fs::read(machine.save_path()).expect("read");
    let copy = |name: &str, bytes: &[u8]| {
        let path = machine.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };

    let mut flipped = saved.clone();
    let at = flipped.len() - 3000;
    flipped[at] ^= 1;
    let damaged = refused(&machine, &copy("flipped.save", &flipped));
    let truncated = refused(&machine, &copy("short.save", &saved[..saved.len() / 2]));
    let bigger = Machine {
        cmdline: String::new(),
        ..Machine::new(1, "")
    };
    let foreign = {
        let capture = Arc::new(Capture::default());
        let mut file = SaveFile::open(&machine.save_path()).expect("open");
        let mut spec = bigger.spec();
        spec.memory_bytes = 128 * MIB;
        spec.disks.clear();
        Vm::restore(&spec, capture, &mut file)
            .err()
            .map(|e| e.to_string())
            .expect("refused")
    };

    assert!(damaged.contains("is damaged"), "{damaged}");
    assert!(truncated.contains("truncated"), "{truncated}");
    assert!(
        foreign.contains("64 MiB of memory but this VM has 128 MiB"),
        "{foreign}"
    );
}
