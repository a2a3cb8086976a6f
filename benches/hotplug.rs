//! Hotplug latency: from the request to the guest's own line saying it has the new device,
//! with the `hotplug` guest-kit program as the guest (it answers like an ACPI OS, through the
//! same registers).
//!
//! 1. engine side: `VmHandle::set_vcpus(2)` → `cpu 1 online` (printed by the new vCPU itself),
//!    and `VmHandle::attach_disk` → `disk <slot> ready: ...` (the guest found the device,
//!    brought it up and read sector 0);
//! 2. through vmd: the same with `LocalHost::set_vcpus` / `attach_disk` on a real vmd (client
//!    checks, control socket, vmd, engine) and the line seen on a console connection.
//!
//! The engine-side calls alone (plugging and notifying, before the guest acts) are reported
//! too. Each run removes the vCPU or disk again (waiting for the guest's eject) before the next, so
//! every sample is a fresh hot-add. Prints the median, minimum and maximum of `VMUX_BENCH_RUNS`
//! samples (default 20). Run: `cargo bench --bench hotplug`, or scripts/bench-hotplug.sh.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vmux::client::{ChangeScope, Host, LocalHost};
use vmux::config::{BootConfig, DiskConfig, VmConfig};
use vmux::engine::{BootSpec, DiskSpec, SerialSink, Vm, VmSpec};

/// Longest wait for one guest answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Guest output with a condition variable, so a waiter wakes at the byte that completes its
/// line (no polling delay in the measurement).
#[derive(Default)]
struct Output {
    text: Mutex<String>,
    grew: Condvar,
}

impl Output {
    fn push(&self, bytes: &[u8]) {
        self.text
            .lock()
            .expect("output")
            .push_str(&String::from_utf8_lossy(bytes));
        self.grew.notify_all();
    }

    /// Waits until `needle` occurs `times` times.
    fn wait_for(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + TIMEOUT;
        let mut text = self.text.lock().expect("output");
        while text.matches(needle).count() < times {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no {needle:?} x{times} in {text:?}"));
            text = self.grew.wait_timeout(text, left).expect("output").0;
        }
    }
}

impl SerialSink for Output {
    fn write(&self, bytes: &[u8]) {
        self.push(bytes);
    }
}

fn guest_elf() -> PathBuf {
    Path::new(env!("VMUX_GUEST_DIR")).join("hotplug.elf")
}

fn runs() -> usize {
    std::env::var("VMUX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = (ms(samples[(samples.len() - 1) / 2]) + ms(samples[samples.len() / 2])) / 2.0;
    println!(
        "{name:<48} median {median:>7.2} ms   min {:>7.2} ms   max {:>7.2} ms   ({} runs)",
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

/// A 1 MiB raw image in `dir` whose sector 0 starts with `label`.
fn image(dir: &Path, label: &str) -> PathBuf {
    let path = dir.join("bench-disk.raw");
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..label.len()].copy_from_slice(label.as_bytes());
    std::fs::write(&path, bytes).expect("write image");
    path
}

fn engine_side(dir: &Path) {
    let spec = VmSpec {
        name: "bench".into(),
        vcpus: 1,
        max_vcpus: 2,
        memory_bytes: 64 << 20,
        boot: BootSpec::Image {
            elf: Arc::from(std::fs::read(guest_elf()).expect("hotplug guest")),
            cmdline: String::new(),
        },
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: false,
    };
    let output = Arc::new(Output::default());
    let mut vm = Vm::create(&spec, output.clone()).expect("create VM");
    let handle = vm.handle();
    vm.start().expect("start VM");
    let waiter = std::thread::spawn(move || vm.wait());
    output.wait_for("hotplug ready", 1);

    let (mut vcpu, mut vcpu_call) = (Vec::new(), Vec::new());
    for run in 1..=runs() {
        let start = Instant::now();
        handle.set_vcpus(2).expect("add a vCPU");
        vcpu_call.push(start.elapsed());
        output.wait_for("cpu 1 online", run);
        vcpu.push(start.elapsed());
        handle.set_vcpus(1).expect("remove it");
        output.wait_for("cpu 1 ejected", run);
    }
    report("engine: set_vcpus call (plug + notify)", vcpu_call);
    report("engine: set_vcpus -> \"cpu 1 online\"", vcpu);

    let path = image(dir, "bench-label");
    let disk = DiskSpec {
        path,
        read_only: false,
        serial: "bench".into(),
        backend: None,
    };
    let (mut disks, mut disk_call) = (Vec::new(), Vec::new());
    for run in 1..=runs() {
        let start = Instant::now();
        let slot = handle.attach_disk(&disk).expect("attach");
        disk_call.push(start.elapsed());
        output.wait_for("ready: bench-label", run);
        disks.push(start.elapsed());
        handle.detach_disk(slot).expect("detach");
        output.wait_for(&format!("disk {slot} ejected"), run);
    }
    report("engine: attach_disk call (open + plug + notify)", disk_call);
    report("engine: attach_disk -> \"disk N ready\"", disks);
    handle.destroy();
    let _ = waiter.join();
}

fn through_vmd(dir: &Path) {
    let home = dir.join("home");
    let host = LocalHost::with_home(&home).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
    let mut config = VmConfig::new(
        "bench",
        BootConfig::Kernel {
            kernel: guest_elf(),
            initrd: None,
            cmdline: String::new(),
        },
    );
    config.max_vcpus = 2;
    config.memory = 64 << 20;
    host.define(&config).expect("define");
    host.start("bench").expect("start");
    let output = Arc::new(Output::default());
    let mut console = host.console("bench", true).expect("console").output;
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = console.read(&mut buf) {
            sink.push(&buf[..n]);
        }
    });
    output.wait_for("hotplug ready", 1);

    let mut vcpu = Vec::new();
    for run in 1..=runs() {
        let start = Instant::now();
        host.set_vcpus("bench", 2, ChangeScope::LIVE)
            .expect("add a vCPU");
        output.wait_for("cpu 1 online", run);
        vcpu.push(start.elapsed());
        host.set_vcpus("bench", 1, ChangeScope::LIVE)
            .expect("remove it");
        output.wait_for("cpu 1 ejected", run);
    }
    report("vmd: setvcpus --live -> \"cpu 1 online\"", vcpu);

    image(dir, "bench-label");
    let disk = DiskConfig::from_str_path(&dir.join("bench-disk.raw"));
    let mut disks = Vec::new();
    for run in 1..=runs() {
        let start = Instant::now();
        let target = host
            .attach_disk("bench", &disk, ChangeScope::LIVE)
            .expect("attach");
        output.wait_for("ready: bench-label", run);
        disks.push(start.elapsed());
        let info = host.info("bench").expect("info");
        let slot = info
            .disks
            .iter()
            .find(|d| d.target == target)
            .expect("the attached disk is listed")
            .slot;
        host.detach_disk("bench", &target, ChangeScope::LIVE)
            .expect("detach");
        // Count per slot: the slot is the same each run (it is freed by the eject).
        output.wait_for(&format!("disk {slot} ejected"), run);
        while !host.info("bench").expect("info").disks.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    report("vmd: attach-disk --live -> \"disk N ready\"", disks);
    host.destroy("bench").expect("destroy");
}

/// A disk on an image file by path.
trait FromPath {
    fn from_str_path(path: &Path) -> DiskConfig;
}

impl FromPath for DiskConfig {
    fn from_str_path(path: &Path) -> DiskConfig {
        path.to_str()
            .expect("UTF-8 path")
            .parse()
            .expect("an absolute path is a disk")
    }
}

fn main() {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        println!("skipped: /dev/kvm cannot be opened");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    engine_side(dir.path());
    through_vmd(dir.path());
}
