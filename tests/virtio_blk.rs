//! virtio-blk on real VMs: the guest kit's `blk` and `evil-blk` programs (tests/guests/)
//! boot on /dev/kvm with raw image files as disks, through the engine API (`Vm::create` with
//! `VmSpec::disks`). Every wait is bounded so a hang fails the test instead of blocking CI.

mod common;

use common::prereq::{Need, QEMU_SYSTEM, met};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use vmux::engine::{BootSpec, DiskSpec, EngineError, SerialSink, Vm, VmExit, VmSpec};

/// Longest any test VM may run before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;
const SECTOR: usize = 512;

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
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).replace('\r', "")
    }
}

fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("guest {}: {e}", path.display()))
}

/// A raw image of `sectors` sectors, each filled with its sector number's low byte.
fn image(dir: &Path, name: &str, sectors: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..sectors * SECTOR).map(|i| (i / SECTOR) as u8).collect();
    std::fs::write(&path, bytes).expect("write image");
    path
}

fn disk(path: &Path, read_only: bool, serial: &str) -> DiskSpec {
    DiskSpec {
        path: path.to_owned(),
        read_only,
        serial: serial.to_owned(),
        backend: None,
    }
}

fn spec(program: &str, disks: Vec<DiskSpec>) -> VmSpec {
    VmSpec {
        name: program.to_owned(),
        vcpus: 1,
        max_vcpus: 1,
        memory_bytes: 64 * MIB,
        boot: BootSpec::Image {
            elf: Arc::from(guest(program)),
            cmdline: String::new(),
        },
        disks,
        nics: Vec::new(),
        balloon: false,
    }
}

/// What a finished VM left behind.
struct Finished {
    exit: VmExit,
    output: String,
    disk_stats: Vec<vmux::engine::DiskStats>,
}

/// Boots `spec` and waits (bounded) for the boot to end.
fn run(spec: &VmSpec) -> Finished {
    let capture = Arc::new(Capture::default());
    let mut vm = Vm::create(spec, capture.clone()).expect("create VM");
    let handle = vm.handle();
    vm.start().expect("start VM");
    let (tx, rx) = mpsc::channel();
    let stats_handle = handle.clone();
    thread::spawn(move || {
        let _ = tx.send(vm.wait());
    });
    let exit = match rx.recv_timeout(TIMEOUT) {
        Ok(exit) => exit,
        Err(_) => {
            handle.destroy();
            panic!(
                "the VM did not finish within {TIMEOUT:?}: {}",
                capture.text()
            );
        }
    };
    Finished {
        exit,
        output: capture.text(),
        disk_stats: stats_handle.stats().disks,
    }
}

#[test]
fn blk_writes_flushes_and_reads_back_every_disk() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let first = image(dir.path(), "first.img", 64);
    let second = image(dir.path(), "second.img", 128);

    let done = run(&spec(
        "blk",
        vec![
            disk(&first, false, "vmux-disk-0001"),
            disk(&second, false, "second"),
        ],
    ));

    assert_eq!(done.exit, VmExit::PowerOff, "{}", done.output);
    assert!(
        done.output
            .contains("blk: 00:01.0 capacity=64 serial=vmux-disk-0001 pattern ok"),
        "{}",
        done.output
    );
    assert!(
        done.output
            .contains("blk: 00:02.0 capacity=128 serial=second pattern ok"),
        "{}",
        done.output
    );
    assert!(
        done.output.contains("blk: ECAM at 0xe0000000"),
        "{}",
        done.output
    );
}

#[test]
fn blk_pattern_reaches_the_image_file_and_nothing_else_changes() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = image(dir.path(), "disk.img", 16);
    let before = std::fs::read(&path).expect("read image");

    let done = run(&spec("blk", vec![disk(&path, false, "s")]));

    assert_eq!(done.exit, VmExit::PowerOff, "{}", done.output);
    let after = std::fs::read(&path).expect("read image");
    assert_eq!(after.len(), before.len());
    assert_eq!(&after[..SECTOR], &before[..SECTOR], "sector 0 untouched");
    assert_eq!(
        &after[2 * SECTOR..],
        &before[2 * SECTOR..],
        "sectors 2.. untouched"
    );
    let expected: Vec<u8> = (0..SECTOR)
        .map(|i| (i as u8).wrapping_mul(7) ^ 1u8.wrapping_mul(0x35) ^ 0x5a)
        .collect();
    assert_eq!(
        &after[SECTOR..2 * SECTOR],
        &expected[..],
        "the guest's pattern in sector 1"
    );
}

#[test]
fn disk_counters_count_the_guests_requests() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = image(dir.path(), "disk.img", 16);

    let done = run(&spec("blk", vec![disk(&path, false, "s")]));

    assert_eq!(done.exit, VmExit::PowerOff, "{}", done.output);
    let stats = done.disk_stats;
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].write_ops, stats[0].write_bytes), (1, 512));
    assert_eq!((stats[0].read_ops, stats[0].read_bytes), (1, 512));
    assert_eq!(stats[0].flushes, 1);
    assert_eq!(stats[0].errors, 0);
    assert!(stats[0].average_latency_ns > 0);
}

#[test]
fn read_only_disk_is_read_but_never_written() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = image(dir.path(), "ro.img", 16);
    let before = std::fs::read(&path).expect("read image");

    let done = run(&spec("blk", vec![disk(&path, true, "ro")]));

    assert_eq!(done.exit, VmExit::PowerOff, "{}", done.output);
    assert!(
        done.output
            .contains("blk: 00:01.0 capacity=16 serial=ro read-only ok"),
        "{}",
        done.output
    );
    assert_eq!(std::fs::read(&path).expect("read image"), before);
}

#[test]
fn evil_blk_gets_errors_or_resets_and_the_disks_keep_working() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let writable = image(dir.path(), "rw.img", 32);
    let read_only = image(dir.path(), "ro.img", 32);
    let before = std::fs::read(&read_only).expect("read image");

    let done = run(&spec(
        "evil_blk",
        vec![disk(&writable, false, "rw"), disk(&read_only, true, "ro")],
    ));

    assert_eq!(done.exit, VmExit::PowerOff, "{}", done.output);
    for line in [
        "evil-blk: descriptor loop: needs reset",
        "evil-blk: next index past the queue: needs reset",
        "evil-blk: buffer outside guest RAM: io error",
        "evil-blk: zero-length status buffer: needs reset",
        "evil-blk: status in a device-readable buffer: needs reset",
        "evil-blk: read into a device-readable buffer: io error",
        "evil-blk: read past the last sector: io error",
        "evil-blk: unknown request type: unsupported",
        "evil-blk: available index far ahead: needs reset",
        "evil-blk: rings outside guest RAM: refused",
        "evil-blk: write to a read-only disk: io error",
        "evil-blk: 2 disks answer a good read",
        "evil-blk: survived 11 bad requests",
    ] {
        assert!(
            done.output.contains(line),
            "no {line:?} in:\n{}",
            done.output
        );
    }
    assert_eq!(std::fs::read(&read_only).expect("read image"), before);
    assert_eq!(done.disk_stats[0].errors, 9, "{:?}", done.disk_stats);
    assert_eq!(done.disk_stats[1].errors, 1, "{:?}", done.disk_stats);
}

#[test]
fn missing_disk_image_is_refused_naming_the_file() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let err = Vm::create(
        &spec(
            "blk",
            vec![disk(Path::new("/nonexistent/disk.img"), false, "x")],
        ),
        Arc::new(Capture::default()),
    )
    .err()
    .expect("creation fails");

    assert!(matches!(err, EngineError::Pci(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/disk.img"), "{err}");
}

/// The same `blk` program against QEMU's virtio-blk-pci (q35, modern only): the guest driver
/// is checked against a reference device, so a bug shared by vmux's device and the guest
/// cannot hide. Needs QEMU (tests/common/prereq.rs).
#[test]
fn blk_also_drives_qemus_virtio_blk_pci() {
    if !met(&[QEMU_SYSTEM]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = image(dir.path(), "qemu.img", 64);
    let kernel = Path::new(env!("VMUX_GUEST_DIR")).join("blk.elf");
    let mut command = std::process::Command::new("qemu-system-x86_64");
    command
        .args(["-M", "q35", "-accel", "kvm", "-accel", "tcg", "-m", "128"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-monitor", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel"])
        .arg(&kernel)
        .arg("-drive")
        .arg(format!("file={},if=none,id=d0,format=raw", path.display()))
        .args([
            "-device",
            "virtio-blk-pci,drive=d0,disable-legacy=on,serial=qemu-disk",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run qemu-system-x86_64");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(TIMEOUT) {
        Ok(output) => output.expect("QEMU ran"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("QEMU did not finish within {TIMEOUT:?}");
        }
    };
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "");

    assert!(
        text.contains("blk: 00:01.0 capacity=64 serial=qemu-disk pattern ok"),
        "{text}"
    );
    // q35 has no ACPI S5 at 0x600: power_off falls back to debug exit 0, status 1.
    assert_eq!(output.status.code(), Some(1), "{text}");
}
