//! vCPU (and disk) hot-add and removal, end to end: the `hotplug` guest-kit program answers
//! the engine's hotplug events the way an ACPI OS does, first on the engine directly, then on
//! a real vmd driven through `LocalHost` in a private `VMUX_HOME`.

mod common;

use common::prereq::{Need, met};

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vmux::engine::{
    BootSpec, DiskSpec, EngineError, HotplugError, SerialSink, Vm, VmExit, VmHandle, VmSpec,
};

/// Longest any single wait may take.
const TIMEOUT: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

fn guest(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"));
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

/// An engine VM running the `hotplug` program.
struct Engine {
    handle: VmHandle,
    capture: Arc<Capture>,
    exit: mpsc::Receiver<VmExit>,
}

impl Engine {
    fn start(vcpus: u32, max_vcpus: u32) -> Engine {
        let spec = VmSpec {
            name: "hotplug".into(),
            vcpus,
            max_vcpus,
            memory_bytes: 64 * MIB,
            boot: BootSpec::Image {
                elf: Arc::from(guest("hotplug")),
                cmdline: String::new(),
            },
            disks: Vec::new(),
            nics: Vec::new(),
            balloon: false,
        };
        let capture = Arc::new(Capture::default());
        let mut vm = Vm::create(&spec, capture.clone()).expect("create VM");
        let handle = vm.handle();
        vm.start().expect("start VM");
        let (tx, exit) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(vm.wait());
        });
        let engine = Engine {
            handle,
            capture,
            exit,
        };
        engine.wait_for("hotplug ready", 1);
        engine
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
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until the engine counts `count` online vCPUs.
    fn wait_for_count(&self, count: u32) {
        let deadline = Instant::now() + TIMEOUT;
        while self.handle.vcpu_count() != count {
            if Instant::now() > deadline {
                self.handle.destroy();
                panic!(
                    "{} vCPUs online, not {count}; output: {:?}",
                    self.handle.vcpu_count(),
                    self.capture.text()
                );
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn finish(self) {
        self.handle.destroy();
        let exit = self.exit.recv_timeout(TIMEOUT).expect("the VM ends");
        assert_eq!(exit, VmExit::Destroyed, "{}", self.capture.text());
    }
}

/// Whether the thread `tid` of this process still exists.
fn thread_alive(tid: u32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

#[test]
fn engine_hot_adds_vcpus_the_guest_brings_online() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Engine::start(1, 8);

    vm.handle.set_vcpus(2).expect("add one");
    vm.wait_for("cpu 1 online", 1);
    vm.wait_for_count(2);
    vm.handle.set_vcpus(5).expect("add three");
    vm.wait_for("cpus: 5 online", 1);
    vm.wait_for_count(5);

    let text = vm.capture.text();
    for id in 1..5 {
        assert_eq!(
            text.matches(&format!("cpu {id} online")).count(),
            1,
            "{text}"
        );
    }
    let stats = vm.handle.stats();
    assert_eq!(
        stats.vcpus.iter().map(|v| v.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(stats.vcpus.iter().all(|v| thread_alive(v.tid)), "{stats:?}");
    vm.finish();
}

#[test]
fn engine_removes_vcpus_once_the_guest_ejects_them() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Engine::start(4, 4);
    let before = vm.handle.stats();

    vm.handle.set_vcpus(2).expect("remove two");
    vm.wait_for("cpu 3 ejected", 1);
    vm.wait_for("cpu 2 ejected", 1);
    vm.wait_for_count(2);

    let after = vm.handle.stats();
    assert_eq!(
        after.vcpus.iter().map(|v| v.index).collect::<Vec<_>>(),
        [0, 1]
    );
    let gone: Vec<u32> = before.vcpus[2..].iter().map(|v| v.tid).collect();
    let deadline = Instant::now() + TIMEOUT;
    while gone.iter().any(|&tid| thread_alive(tid)) {
        assert!(
            Instant::now() < deadline,
            "vCPU threads {gone:?} did not end"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert!(thread_alive(after.vcpus[1].tid));
    vm.finish();
}

#[test]
fn engine_plugs_an_ejected_vcpu_again() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Engine::start(2, 2);

    vm.handle.set_vcpus(1).expect("remove");
    vm.wait_for("cpu 1 ejected", 1);
    vm.wait_for_count(1);
    vm.handle.set_vcpus(2).expect("add again");
    vm.wait_for("cpu 1 online", 2);
    vm.wait_for_count(2);

    vm.finish();
}

#[test]
fn engine_refuses_counts_outside_one_to_max() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Engine::start(1, 4);

    for count in [0, 5] {
        let err = vm.handle.set_vcpus(count).expect_err("out of range");
        assert!(
            matches!(err, EngineError::Hotplug(HotplugError::VcpuCount { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("1 to 4"), "{err}");
    }
    assert_eq!(vm.handle.vcpu_count(), 1);
    vm.finish();
}

/// A 1 MiB raw image whose sector 0 starts with `label`.
fn raw_image(dir: &tempfile::TempDir, name: &str, label: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..label.len()].copy_from_slice(label.as_bytes());
    std::fs::write(&path, bytes).expect("write image");
    path
}

fn disk(path: &std::path::Path) -> DiskSpec {
    DiskSpec {
        path: path.to_path_buf(),
        read_only: false,
        serial: "hotplug".into(),
        backend: None,
    }
}

/// Whether this process has `path` open.
fn has_open(path: &std::path::Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .any(|target| target == path)
}

#[test]
fn engine_hot_adds_disks_the_guest_reads_and_ejects_them_closing_the_image() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let first = raw_image(&dir, "one.raw", "first-disk-label");
    let second = raw_image(&dir, "two.raw", "second-disk-labl");
    let vm = Engine::start(1, 2);

    let slot_one = vm.handle.attach_disk(&disk(&first)).expect("attach one");
    vm.wait_for(&format!("disk {slot_one} ready: first-disk-label"), 1);
    let slot_two = vm.handle.attach_disk(&disk(&second)).expect("attach two");
    vm.wait_for(&format!("disk {slot_two} ready: second-disk-labl"), 1);
    assert_ne!(slot_one, slot_two);
    assert_eq!(vm.handle.disk_slots(), [slot_one, slot_two]);
    assert_eq!(vm.handle.stats().disks.len(), 2);
    assert!(vm.handle.stats().disks.iter().all(|d| d.read_ops == 1));

    vm.handle.detach_disk(slot_one).expect("detach");
    vm.wait_for(&format!("disk {slot_one} ejected"), 1);
    let deadline = Instant::now() + TIMEOUT;
    while vm.handle.disk_slots() != [slot_two] || has_open(&first) {
        assert!(Instant::now() < deadline, "the first image stayed open");
        thread::sleep(Duration::from_millis(2));
    }
    assert!(has_open(&second));

    // The freed slot is plugged again.
    let again = vm.handle.attach_disk(&disk(&first)).expect("attach again");
    assert_eq!(again, slot_one);
    vm.wait_for(&format!("disk {slot_one} ready: first-disk-label"), 2);
    vm.finish();
    assert!(!has_open(&first) && !has_open(&second));
}

#[test]
fn engine_force_detach_takes_a_disk_away_without_the_guest_and_closes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = raw_image(&dir, "one.raw", "forced-away-labl");
    let vm = Engine::start(1, 2);
    let slot = vm.handle.attach_disk(&disk(&image)).expect("attach");
    vm.wait_for(&format!("disk {slot} ready: forced-away-labl"), 1);

    vm.handle.force_detach_disk(slot).expect("forced");

    // Gone at once, with no word from the guest.
    assert!(vm.handle.disk_slots().is_empty());
    assert!(
        !has_open(&image),
        "the image is closed when the call returns"
    );
    assert!(
        !vm.capture.text().contains("ejected"),
        "{}",
        vm.capture.text()
    );
    let err = vm.handle.force_detach_disk(slot).expect_err("empty slot");
    assert!(
        matches!(err, EngineError::Hotplug(HotplugError::NoDisk { .. })),
        "{err}"
    );
    vm.finish();
}

#[test]
fn engine_refuses_to_detach_an_empty_slot_or_attach_a_missing_image() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Engine::start(1, 2);

    let err = vm.handle.detach_disk(7).expect_err("empty slot");
    assert!(
        matches!(err, EngineError::Hotplug(HotplugError::NoDisk { slot: 7 })),
        "{err}"
    );
    let err = vm
        .handle
        .attach_disk(&disk(std::path::Path::new("/nonexistent/disk.raw")))
        .expect_err("missing image");
    assert!(err.to_string().contains("/nonexistent/disk.raw"), "{err}");
    assert!(vm.handle.disk_slots().is_empty());
    vm.finish();
}

#[test]
fn engine_refuses_hotplug_after_the_boot_ended() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let vm = Engine::start(1, 4);
    let handle = vm.handle.clone();
    vm.finish();

    let err = handle.set_vcpus(2).expect_err("not running");

    assert!(
        matches!(err, EngineError::Hotplug(HotplugError::NotRunning)),
        "{err}"
    );
}

// ---- on a real vmd, through LocalHost -------------------------------------------------------

mod vmd {
    use super::TIMEOUT;
    use super::common::prereq::{Need, met};
    use std::collections::BTreeSet;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use vmux::client::{ChangeScope, ClientError, Host, LocalHost};
    use vmux::config::{BootConfig, DiskConfig, VmConfig};
    use vmux::storage::StorageManager;

    /// Polls `cond` every 10 ms; fails the test after [`TIMEOUT`].
    pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A private vmux home running VMs of the `hotplug` guest.
    pub struct Home {
        /// Kept for its lifetime: the directory goes when the test ends.
        _dir: tempfile::TempDir,
        pub host: LocalHost,
    }

    impl Home {
        pub fn new() -> Home {
            let dir = tempfile::tempdir().expect("tempdir");
            let host = LocalHost::with_home(dir.path())
                .with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
            Home { _dir: dir, host }
        }

        /// The default pool's directory (created and active).
        pub fn pool(&self) -> std::path::PathBuf {
            let paths = self.host.paths().clone();
            StorageManager::new(paths.clone())
                .ensure_default()
                .expect("default pool");
            vmux::config::default_pool_path(&paths)
        }

        /// A 4 MiB volume `name` in the default pool (qcow2 when the name says so, converted
        /// by qemu-img) whose sector 0 starts with `label`.
        pub fn volume(&self, name: &str, label: &str) -> std::path::PathBuf {
            let pool = self.pool();
            let raw = pool.join(format!(".{name}.src"));
            let mut bytes = vec![0u8; 4 << 20];
            bytes[..label.len()].copy_from_slice(label.as_bytes());
            std::fs::write(&raw, bytes).expect("write image");
            let path = pool.join(name);
            if name.ends_with(".qcow2") {
                let status = std::process::Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "qcow2"])
                    .arg(&raw)
                    .arg(&path)
                    .status()
                    .expect("run qemu-img (install qemu-utils)");
                assert!(status.success(), "qemu-img convert failed");
                std::fs::remove_file(&raw).expect("remove source");
            } else {
                std::fs::rename(&raw, &path).expect("rename");
            }
            path
        }

        /// Whether vmd of `name` has `path` open.
        pub fn vmd_has_open(&self, name: &str, path: &std::path::Path) -> bool {
            let pid = self.pid(name);
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .any(|target| target == path)
        }

        /// Defines VM `name` booting the `hotplug` program and starts it; returns the console.
        pub fn run(&self, name: &str, vcpus: u32, max_vcpus: u32) -> Tap {
            let mut config = VmConfig::new(
                name,
                BootConfig::Kernel {
                    kernel: Path::new(env!("VMUX_GUEST_DIR")).join("hotplug.elf"),
                    initrd: None,
                    cmdline: String::new(),
                },
            );
            config.vcpus = vcpus;
            config.max_vcpus = max_vcpus;
            config.memory = 64 << 20;
            self.host.define(&config).expect("define");
            self.host.start(name).expect("start");
            let tap = Tap::new(self.host.console(name, true).expect("console"));
            tap.wait_for("hotplug ready", 1);
            tap
        }

        pub fn pid(&self, name: &str) -> u32 {
            self.host
                .status(name)
                .expect("status")
                .pid
                .expect("running VMs have a vmd pid")
        }

        /// Names of vmd's `vcpuN` threads.
        pub fn vcpu_threads(&self, name: &str) -> BTreeSet<String> {
            let pid = self.pid(name);
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return BTreeSet::new();
            };
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|comm| comm.trim().to_string())
                .filter(|comm| comm.starts_with("vcpu"))
                .collect()
        }

        pub fn online(&self, name: &str) -> u32 {
            self.host.info(name).expect("info").vcpus
        }

        pub fn wait_online(&self, name: &str, count: u32) {
            wait_until(&format!("{name} has {count} vCPUs online"), || {
                self.online(name) == count
            });
        }

        /// A connection that sent `subscribe`; its event lines arrive on the receiver.
        pub fn subscribe(&self, name: &str) -> mpsc::Receiver<String> {
            let mut stream = UnixStream::connect(self.host.paths().socket(name)).expect("connect");
            stream
                .write_all(b"{\"id\":1,\"cmd\":\"subscribe\"}\n")
                .expect("subscribe");
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        }
    }

    impl Drop for Home {
        /// A failed test must not leave guests running.
        fn drop(&mut self) {
            for entry in self.host.list().into_iter().flatten() {
                if let Some(pid) = entry.pid.and_then(|p| i32::try_from(p).ok()) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }

    /// Collects a console's output on a thread of its own.
    pub struct Tap {
        seen: Arc<Mutex<Vec<u8>>>,
    }

    impl Tap {
        pub fn new(console: vmux::client::Console) -> Tap {
            let mut output = console.output;
            let seen = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&seen);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = output.read(&mut buf) {
                    sink.lock().expect("tap").extend_from_slice(&buf[..n]);
                }
            });
            Tap { seen }
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.seen.lock().expect("tap")).into_owned()
        }

        pub fn wait_for(&self, needle: &str, times: usize) {
            wait_until(&format!("the console shows {needle:?} x{times}"), || {
                self.text().matches(needle).count() >= times
            });
        }
    }

    fn names(ids: &[u32]) -> BTreeSet<String> {
        ids.iter().map(|i| format!("vcpu{i}")).collect()
    }

    #[test]
    fn setvcpus_live_adds_vcpus_the_guest_onlines_and_pushes_events() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        let console = home.run("web", 1, 8);
        let events = home.subscribe("web");

        home.host
            .set_vcpus("web", 2, ChangeScope::LIVE)
            .expect("add one");
        console.wait_for("cpu 1 online", 1);
        home.wait_online("web", 2);
        home.host
            .set_vcpus("web", 5, ChangeScope::LIVE)
            .expect("add three");
        console.wait_for("cpus: 5 online", 1);
        home.wait_online("web", 5);

        assert_eq!(home.vcpu_threads("web"), names(&[0, 1, 2, 3, 4]));
        let mut counts = Vec::new();
        wait_until("the vcpus events arrived", || {
            while let Ok(line) = events.try_recv() {
                if let Some(rest) = line.strip_prefix("{\"event\":\"vcpus\",\"vcpus\":") {
                    counts.push(rest.trim_end_matches('}').to_string());
                }
            }
            counts.last().map(String::as_str) == Some("5")
        });
        assert_eq!(counts, ["2", "3", "4", "5"]);
        assert_eq!(home.host.status("web").expect("status").config.vcpus, 1);
    }

    #[test]
    fn setvcpus_live_removes_vcpus_once_the_guest_ejects_them() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        let console = home.run("web", 4, 4);
        assert_eq!(home.vcpu_threads("web"), names(&[0, 1, 2, 3]));

        home.host
            .set_vcpus("web", 2, ChangeScope::LIVE)
            .expect("remove two");

        console.wait_for("cpu 3 ejected", 1);
        console.wait_for("cpu 2 ejected", 1);
        home.wait_online("web", 2);
        wait_until("the ejected vCPU threads ended", || {
            home.vcpu_threads("web") == names(&[0, 1])
        });
        assert_eq!(home.host.status("web").expect("status").vcpus, Some(2));
    }

    #[test]
    fn setvcpus_live_and_config_updates_the_definition_after_the_change() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        let console = home.run("web", 1, 4);

        home.host
            .set_vcpus("web", 3, ChangeScope::BOTH)
            .expect("both");

        console.wait_for("cpus: 3 online", 1);
        home.wait_online("web", 3);
        assert_eq!(home.host.status("web").expect("status").config.vcpus, 3);
    }

    #[test]
    fn setvcpus_errors_change_nothing() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        let _console = home.run("web", 1, 4);
        let definition = home.host.status("web").expect("status").config;

        for count in [0, 5] {
            let err = home
                .host
                .set_vcpus("web", count, ChangeScope::BOTH)
                .expect_err("out of range");
            assert!(matches!(err, ClientError::Invalid(_)), "{err}");
        }
        // A raw request past the client's checks is refused by vmd too.
        let mut stream = UnixStream::connect(home.host.paths().socket("web")).expect("connect");
        stream
            .write_all(b"{\"id\":9,\"cmd\":\"set_vcpus\",\"count\":7}\n")
            .expect("send");
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).expect("reply");
        assert!(reply.contains("\"kind\":\"invalid_argument\""), "{reply}");
        assert!(reply.contains("1 to 4"), "{reply}");

        assert_eq!(home.online("web"), 1);
        assert_eq!(home.vcpu_threads("web"), names(&[0]));
        assert_eq!(home.host.status("web").expect("status").config, definition);
    }

    #[test]
    fn the_demo_guest_shows_hot_added_and_removed_vcpus_in_cpus() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        let mut config = VmConfig::new("demo", BootConfig::Demo);
        config.max_vcpus = 4;
        config.memory = 64 << 20;
        home.host.define(&config).expect("define");
        home.host.start("demo").expect("start");
        let console = home.host.console("demo", true).expect("console");
        let mut input = console.input;
        let tap = Tap::new(vmux::client::Console {
            output: console.output,
            input: Box::new(std::io::sink()),
        });
        tap.wait_for("demo$ ", 1);

        home.host
            .set_vcpus("demo", 3, ChangeScope::LIVE)
            .expect("add");
        tap.wait_for("cpu hotplug: 3 cpus online (+2 -0)", 1);
        input.write_all(b"cpus\r").expect("type");
        tap.wait_for("cpus: 3 online, apic ids 0 1 2", 1);
        home.host
            .set_vcpus("demo", 2, ChangeScope::LIVE)
            .expect("remove");
        tap.wait_for("cpu hotplug: 2 cpus online (+0 -1)", 1);
        input.write_all(b"cpus\r").expect("type");
        tap.wait_for("cpus: 2 online, apic ids 0 1\r\n", 1);
        home.wait_online("demo", 2);
    }

    fn disk(source: &str) -> DiskConfig {
        source.parse().expect("disk")
    }

    #[test]
    fn attach_disk_live_plugs_disks_the_guest_reads_and_detach_closes_the_image() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        let one = home.volume("one.qcow2", "qcow2-disk-label");
        let two = home.volume("two.raw", "raw-disk-label!!");
        let console = home.run("web", 1, 2);
        let events = home.subscribe("web");

        let target = home
            .host
            .attach_disk("web", &disk("default/one.qcow2"), ChangeScope::LIVE)
            .expect("attach one");
        assert_eq!(target, "vda");
        console.wait_for("ready: qcow2-disk-label", 1);
        let target = home
            .host
            .attach_disk("web", &disk("default/two.raw"), ChangeScope::LIVE)
            .expect("attach two");
        assert_eq!(target, "vdb");
        console.wait_for("ready: raw-disk-label!!", 1);
        let disks = home.host.info("web").expect("info").disks;
        assert_eq!(
            disks.iter().map(|d| d.target.as_str()).collect::<Vec<_>>(),
            ["vda", "vdb"]
        );
        assert!(home.vmd_has_open("web", &one) && home.vmd_has_open("web", &two));
        wait_until(
            "the stats name both hot-added disks, each read once",
            || {
                let stats = home.host.stats("web").expect("stats");
                let seen: Vec<(String, u64)> = stats
                    .disks
                    .iter()
                    .map(|d| (d.target.clone(), d.read_ops))
                    .collect();
                seen == [("vda".to_string(), 1), ("vdb".to_string(), 1)]
            },
        );

        home.host
            .detach_disk("web", "vda", ChangeScope::LIVE)
            .expect("detach");
        console.wait_for(&format!("disk {} ejected", disks[0].slot), 1);
        wait_until("vda is gone and its image closed", || {
            home.host.info("web").expect("info").disks.len() == 1 && !home.vmd_has_open("web", &one)
        });
        assert!(home.vmd_has_open("web", &two));
        let mut removed = false;
        wait_until("the disk_removed event arrived", || {
            while let Ok(line) = events.try_recv() {
                removed |= line.contains("\"event\":\"disk_removed\",\"target\":\"vda\"");
            }
            removed
        });
        let check = std::process::Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(&one)
            .output()
            .expect("run qemu-img");
        assert!(
            check.status.success(),
            "qemu-img check: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        assert!(
            home.host
                .status("web")
                .expect("status")
                .config
                .disks
                .is_empty(),
            "a live-only attach leaves the definition alone"
        );
    }

    #[test]
    fn a_disk_attached_live_and_in_the_definition_stays_across_a_reboot() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        home.volume("data.qcow2", "persistent-label");
        let console = home.run("web", 1, 2);

        home.host
            .attach_disk("web", &disk("default/data.qcow2"), ChangeScope::BOTH)
            .expect("attach");
        console.wait_for("ready: persistent-label", 1);
        home.host.reboot("web").expect("reboot");
        wait_until("the VM booted again", || {
            home.host.info("web").is_ok_and(|info| info.boots == 2)
        });

        let info = home.host.info("web").expect("info");
        assert_eq!(info.disks.len(), 1, "{:?}", info.disks);
        assert_eq!(info.disks[0].target, "vda");
        let config = home.host.status("web").expect("status").config;
        assert_eq!(config.disks.len(), 1);
        assert_eq!(config.disks[0].target.as_deref(), Some("vda"));
    }

    #[test]
    fn attach_disk_errors_change_nothing() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = Home::new();
        home.volume("data.qcow2", "label");
        home.volume("other.qcow2", "label");
        let _console = home.run("web", 1, 2);
        home.host
            .attach_disk(
                "web",
                &disk("default/data.qcow2,target=vdc"),
                ChangeScope::LIVE,
            )
            .expect("first attach");
        let mut db = VmConfig::new("db", BootConfig::Demo);
        db.disks = vec![disk("default/other.qcow2")];
        home.host.define(&db).expect("define db");
        let before = home.host.status("web").expect("status").config;

        let refused = [
            ("default/data.qcow2", "as disk vdc"),
            ("default/other.qcow2", "VM 'db'"),
            ("default/missing.qcow2", "missing.qcow2"),
            ("nopool/x.qcow2", "nopool"),
        ];
        for (source, why) in refused {
            let err = home
                .host
                .attach_disk("web", &disk(source), ChangeScope::LIVE)
                .expect_err(source);
            assert!(err.to_string().contains(why), "{source}: {err}");
        }
        home.volume("third.qcow2", "label");
        let err = home
            .host
            .attach_disk(
                "web",
                &disk("default/third.qcow2,target=vdc"),
                ChangeScope::LIVE,
            )
            .expect_err("taken target");
        assert!(err.to_string().contains("already has a disk vdc"), "{err}");
        let err = home
            .host
            .attach_disk("db", &disk("default/third.qcow2"), ChangeScope::LIVE)
            .expect_err("db is not running");
        assert!(matches!(err, ClientError::LiveNeedsRunning(_)), "{err}");
        let err = home
            .host
            .detach_disk("web", "vdq", ChangeScope::LIVE)
            .expect_err("no such disk");
        assert!(err.to_string().contains("no disk vdq"), "{err}");

        // vmd checks again what reaches it directly.
        let mut stream = UnixStream::connect(home.host.paths().socket("web")).expect("connect");
        stream
            .write_all(b"{\"id\":3,\"cmd\":\"attach_disk\",\"path\":\"relative.qcow2\"}\n")
            .expect("send");
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).expect("reply");
        assert!(reply.contains("\"kind\":\"invalid_argument\""), "{reply}");

        let info = home.host.info("web").expect("info");
        assert_eq!(info.disks.len(), 1, "{:?}", info.disks);
        assert_eq!(home.host.status("web").expect("status").config, before);
    }

    #[test]
    fn detach_disk_from_the_definition_of_a_stopped_vm() {
        let home = Home::new();
        home.volume("a.qcow2", "label");
        home.volume("b.qcow2", "label");
        let mut config = VmConfig::new("idle", BootConfig::Demo);
        config.disks = vec![disk("default/a.qcow2"), disk("default/b.qcow2")];
        home.host.define(&config).expect("define");

        home.host
            .detach_disk("idle", "vda", ChangeScope::CONFIG)
            .expect("detach");

        let disks = home.host.status("idle").expect("status").config.disks;
        assert_eq!(disks.len(), 1);
        // `define` recorded each disk's format.
        assert_eq!(
            disks[0].to_string(),
            "default/b.qcow2,target=vdb,format=qcow2"
        );
    }

    #[test]
    fn setvcpus_live_of_a_stopped_vm_is_refused_and_config_still_works() {
        let home = Home::new();
        let mut config = VmConfig::new("idle", BootConfig::Demo);
        config.max_vcpus = 4;
        home.host.define(&config).expect("define");

        let err = home
            .host
            .set_vcpus("idle", 2, ChangeScope::LIVE)
            .expect_err("not running");
        assert!(matches!(err, ClientError::LiveNeedsRunning(_)), "{err}");
        let err = home
            .host
            .set_vcpus("idle", 2, ChangeScope::BOTH)
            .expect_err("not running");
        assert!(matches!(err, ClientError::LiveNeedsRunning(_)), "{err}");
        assert_eq!(home.host.status("idle").expect("status").config.vcpus, 1);

        home.host
            .set_vcpus("idle", 2, ChangeScope::CONFIG)
            .expect("config");
        assert_eq!(home.host.status("idle").expect("status").config.vcpus, 2);
    }
}

// ---- the `vmux setvcpus` verb, through the real binary --------------------------------------

mod cli {
    use super::common::prereq::{Need, met};
    use std::process::Command;

    /// Runs `vmux ARGS` under `home`; returns (exit code, stdout, stderr).
    fn vmux(home: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_vmux"))
            .args(args)
            .env("VMUX_HOME", home)
            .env_remove("VMUX_LOG")
            .output()
            .expect("run vmux");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Destroys VM `web` under the home when the test ends, passed or failed.
    struct DestroyOnDrop<'a>(&'a std::path::Path);

    impl Drop for DestroyOnDrop<'_> {
        fn drop(&mut self) {
            let _ = vmux(self.0, &["destroy", "web"]);
        }
    }

    #[test]
    fn setvcpus_defaults_to_live_when_running_and_to_the_definition_when_not() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = tempfile::tempdir().expect("tempdir");
        let home = home.path();
        let _cleanup = DestroyOnDrop(home);
        let (code, _, err) = vmux(home, &["create", "web", "--demo", "--max-vcpus", "4"]);
        assert_eq!(code, Some(0), "{err}");

        let (code, out, err) = vmux(home, &["setvcpus", "web", "2"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("will start with 2 vCPUs"), "{out}");

        let (code, _, err) = vmux(home, &["setvcpus", "web", "3", "--live"]);
        assert_eq!(code, Some(1));
        assert!(err.contains("--config"), "{err}");

        let (code, _, err) = vmux(home, &["start", "web"]);
        assert_eq!(code, Some(0), "{err}");
        let (code, out, err) = vmux(home, &["setvcpus", "web", "3"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("set to 3 vCPUs live"), "{out}");
        super::vmd::wait_until("the demo has 3 vCPUs online", || {
            let (_, out, _) = vmux(home, &["info", "web", "--json"]);
            out.contains("\"vcpus\": 3") || out.contains("\"vcpus\":3")
        });

        let (code, _, err) = vmux(home, &["setvcpus", "web", "5"]);
        assert_eq!(code, Some(1));
        assert!(err.contains("max_vcpus"), "{err}");
        let (code, out, _) = vmux(home, &["dumpconfig", "web"]);
        assert_eq!(code, Some(0));
        assert!(out.contains("vcpus = 2"), "{out}");
    }

    /// Waits until `vmux console NAME --history` shows `text`.
    fn wait_for_console(home: &std::path::Path, vm: &str, text: &str) -> String {
        let (code, out, err) = vmux(
            home,
            &[
                "console",
                vm,
                "--until",
                &regex_escape(text),
                "--timeout",
                "30",
            ],
        );
        assert_eq!(code, Some(0), "{text} never came: {err}");
        out
    }

    fn regex_escape(text: &str) -> String {
        text.chars()
            .flat_map(|c| {
                let special = "\\.+*?()|[]{}^$".contains(c);
                special
                    .then_some('\\')
                    .into_iter()
                    .chain(std::iter::once(c))
            })
            .collect()
    }

    #[test]
    fn the_demo_guest_ejects_a_disk_and_detach_disk_says_so() {
        let home = tempfile::tempdir().expect("tempdir");
        let home = home.path();
        let _cleanup = DestroyOnDrop(home);
        let (code, _, err) = vmux(home, &["vol-create-as", "default", "data.qcow2", "8M"]);
        assert_eq!(code, Some(0), "{err}");
        let (code, _, err) = vmux(
            home,
            &[
                "create",
                "web",
                "--demo",
                "--disk",
                "default/data.qcow2",
                "--start",
            ],
        );
        assert_eq!(code, Some(0), "{err}");
        wait_for_console(home, "web", "demo$ ");

        let (code, out, err) = vmux(home, &["detach-disk", "web", "vda", "--live", "--config"]);

        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("Asked the guest of VM 'web' to eject disk vda; waiting")
                && out.contains("The guest ejected disk vda"),
            "{out}"
        );
        let (_, info, _) = vmux(home, &["info", "web"]);
        assert!(!info.contains("data.qcow2"), "{info}");
        wait_for_console(home, "web", "disk hotplug: slot 1 ejected");
        let (code, _, err) = vmux(
            home,
            &["attach-disk", "web", "default/data.qcow2", "--live"],
        );
        assert_eq!(code, Some(0), "{err}");
        wait_for_console(home, "web", "disk hotplug: slot 1 added (8 MiB)");
    }

    #[test]
    fn a_disk_a_guest_does_not_eject_stays_pending_until_forced() {
        let home = tempfile::tempdir().expect("tempdir");
        let home = home.path();
        let _cleanup = DestroyOnDrop(home);
        let (code, _, err) = vmux(home, &["vol-create-as", "default", "data.qcow2", "8M"]);
        assert_eq!(code, Some(0), "{err}");
        // `echo` has no PCI hot-plug support: it never answers an eject request.
        let kernel = format!("{}/echo.elf", env!("VMUX_GUEST_DIR"));
        let (code, _, err) = vmux(
            home,
            &[
                "create",
                "web",
                "--kernel",
                &kernel,
                "--disk",
                "default/data.qcow2",
                "--start",
            ],
        );
        assert_eq!(code, Some(0), "{err}");

        let (code, out, err) = vmux(home, &["detach-disk", "web", "vda", "--timeout", "1"]);

        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("has not ejected disk vda after 1 s")
                && out.contains("vmux detach-disk web vda --force"),
            "{out}"
        );
        let (_, info, _) = vmux(home, &["info", "web"]);
        assert!(info.contains("being removed for"), "{info}");

        let (code, out, err) = vmux(home, &["detach-disk", "web", "vda", "--force"]);

        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains("without the guest's consent"), "{err}");
        assert!(out.contains("taken away"), "{out}");
        let (_, info, _) = vmux(home, &["info", "web"]);
        assert!(!info.contains("data.qcow2"), "{info}");
    }

    #[test]
    fn attach_disk_and_detach_disk_follow_the_vm_state() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let home = tempfile::tempdir().expect("tempdir");
        let home = home.path();
        let _cleanup = DestroyOnDrop(home);
        assert_eq!(vmux(home, &["create", "web", "--demo"]).0, Some(0));
        let (code, _, err) = vmux(home, &["vol-create-as", "default", "data.qcow2", "8M"]);
        assert_eq!(code, Some(0), "{err}");

        let (code, out, err) = vmux(home, &["attach-disk", "web", "default/data.qcow2"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("added to the definition of VM 'web' as vda"),
            "{out}"
        );
        let (code, _, err) = vmux(home, &["attach-disk", "web", "default/data.qcow2"]);
        assert_eq!(code, Some(1));
        assert!(err.contains("already has"), "{err}");
        let (code, out, err) = vmux(home, &["detach-disk", "web", "vda"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("removed from the definition"), "{out}");

        assert_eq!(vmux(home, &["start", "web"]).0, Some(0));
        let (code, out, err) = vmux(home, &["attach-disk", "web", "default/data.qcow2"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("attached to VM 'web' as vda"), "{out}");
        let (_, out, _) = vmux(home, &["info", "web"]);
        assert!(out.contains("Disk:") && out.contains("data.qcow2"), "{out}");
        let (_, out, _) = vmux(home, &["dumpconfig", "web"]);
        assert!(!out.contains("data.qcow2"), "live only: {out}");
    }
}
