//! `Vm::close_at_process_exit` on /dev/kvm: a boot that ends for good leaves the VM's
//! descriptor open for the process exit to close, a reset closes it as usual (so a guest that
//! resets in a loop cannot pile up VMs). Counted through `/proc/self/fd`. Where /dev/kvm
//! cannot be opened the tests skip, saying so, or fail under CI (tests/common/prereq.rs).

mod common;

use common::prereq::{Need, met};

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vmux::engine::{BootSpec, SerialSink, Vm, VmExit, VmSpec};

/// The tests count process-wide descriptors, so they must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

struct Discard;

impl SerialSink for Discard {
    fn write(&self, _: &[u8]) {}
}

fn spec(guest: &str) -> VmSpec {
    VmSpec {
        name: "teardown".into(),
        vcpus: 1,
        max_vcpus: 1,
        memory_bytes: 64 << 20,
        boot: BootSpec::Kernel {
            kernel: PathBuf::from(env!("VMUX_GUEST_DIR")).join(format!("{guest}.elf")),
            initrd: None,
            cmdline: String::new(),
        },
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: false,
    }
}

/// Open descriptors of this process that are KVM virtual machines.
fn open_vm_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:kvm-vm")
        .count()
}

#[test]
fn a_boot_that_ends_for_good_leaves_its_vm_to_the_process_exit() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_vm_fds();
    let mut vm = Vm::create(&spec("launch"), Arc::new(Discard)).expect("create");
    vm.close_at_process_exit();
    vm.start().expect("start");
    assert_eq!(vm.wait(), VmExit::DebugExit(0));
    assert_eq!(open_vm_fds(), before + 1);
}

#[test]
fn a_reset_closes_its_vm_as_usual() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_vm_fds();
    let mut vm = Vm::create(&spec("echo"), Arc::new(Discard)).expect("create");
    vm.close_at_process_exit();
    vm.start().expect("start");
    let handle = vm.handle();
    std::thread::sleep(Duration::from_millis(50));
    handle.reset();
    assert_eq!(vm.wait(), VmExit::Reset);
    assert_eq!(open_vm_fds(), before);
}
