//! vCPU (and disk) hot-add and removal, end to end: the `hotplug` guest-kit program answers
//! the engine's hotplug events the way an ACPI OS does, first on the engine directly, then on
//! a real vmd driven through `LocalHost` in a private `VMUX_HOME`.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vmux::engine::{BootSpec, EngineError, HotplugError, SerialSink, Vm, VmExit, VmHandle, VmSpec};

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

#[test]
fn engine_refuses_hotplug_after_the_boot_ended() {
    let vm = Engine::start(1, 4);
    let handle = vm.handle.clone();
    vm.finish();

    let err = handle.set_vcpus(2).expect_err("not running");

    assert!(
        matches!(err, EngineError::Hotplug(HotplugError::NotRunning)),
        "{err}"
    );
}
