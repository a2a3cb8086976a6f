//! The boot loop: one engine `Vm` per boot, rebuilt from the same spec on reset and on a
//! requested reboot, until the VM powers off, is destroyed, or crashes.
//!
//! | boot ended with            | then                          |
//! |----------------------------|-------------------------------|
//! | reset (guest or `reset`)   | boot again                    |
//! | power-off after `reboot`   | boot again                    |
//! | power-off                  | shut off                      |
//! | destroy                    | shut off                      |
//! | debug exit                 | shut off                      |
//! | crash                      | crashed, with the reason      |
//!
//! A destroy that arrives while a new boot is being built wins: the new boot is destroyed as
//! soon as it exists. Each boot after the first is built from [`Supervisor::next_spec`], so
//! vCPUs and disks hot-plugged into the previous boot are there again.

use std::sync::Arc;

use syscalls::Sysno;

use super::machine::{Engine, Machine, MachineError};
use super::supervisor::Supervisor;
use crate::engine::confine::ioctls::{KVMIO, TYPE_MASK};
use crate::engine::confine::syscalls::{ArgRule, SyscallList};
use crate::engine::{SerialSink, VmExit, VmSpec};
use crate::protocol::ExitReason;

/// What the main thread (the boot loop) may call once the VM runs: build each further boot
/// (open /dev/kvm and the kernel, KVM's ioctls, guest RAM, eventfds), wait for it, and at the
/// end record the state and remove the socket and pid file (closing the images: `IMAGE_IO` is
/// added). It starts no thread itself (the thread factory does).
pub const SYSCALLS: SyscallList = SyscallList {
    any: &[
        Sysno::openat,
        Sysno::read,
        Sysno::newfstatat,
        Sysno::readlink,
        Sysno::eventfd2,
        Sysno::epoll_create1,
        Sysno::epoll_ctl,
        Sysno::tgkill,
        Sysno::rename,
        Sysno::unlink,
        Sysno::flock,
        Sysno::getdents64,
        Sysno::shutdown,
    ],
    ioctls: &[],
    args: &[ArgRule {
        call: Sysno::ioctl,
        index: 1,
        mask: TYPE_MASK,
        values: &[KVMIO << 8],
    }],
};

/// Builds and starts one boot, and tells the supervisor about it.
pub fn boot(
    sup: &Arc<Supervisor>,
    engine: &dyn Engine,
    spec: &VmSpec,
) -> Result<Box<dyn Machine>, MachineError> {
    let spec = sup.prepare_boot(spec)?;
    let serial: Arc<dyn SerialSink> = sup.ring().clone();
    let mut machine = engine.create(&spec, serial)?;
    // The engine reports the guest's hotplug answers on vCPU threads; the observer thread
    // applies them (see `observer`).
    machine.control().set_observer(sup.observer()?);
    machine.start()?;
    sup.boot_started(machine.control());
    Ok(machine)
}

/// Builds the first boot from a save file and starts it (paused when the restore says so),
/// and tells the supervisor about it.
pub fn restore(
    sup: &Arc<Supervisor>,
    engine: &dyn Engine,
    spec: &VmSpec,
    saved: &mut super::restore::Saved,
) -> Result<Box<dyn Machine>, MachineError> {
    let started = std::time::Instant::now();
    let serial: Arc<dyn SerialSink> = sup.ring().clone();
    let paused = saved.paused();
    let mut machine = engine.restore(spec, serial, &mut saved.file)?;
    machine.control().set_observer(sup.observer()?);
    if paused {
        // Before the vCPU threads start, so none of them runs a single instruction.
        machine.control().pause()?;
    }
    machine.start()?;
    sup.boot_started(machine.control());
    if paused {
        sup.restored_paused();
    }
    log::info!(
        "restored from {} in {} ms",
        saved.mode.file.display(),
        started.elapsed().as_millis()
    );
    Ok(machine)
}

/// Runs boots until the VM is over; returns why it ended.
pub fn run(sup: &Arc<Supervisor>, engine: &dyn Engine, first: Box<dyn Machine>) -> ExitReason {
    let mut machine = first;
    loop {
        let exit = machine.wait();
        let end = sup.boot_ended();
        log::info!("boot ended: {exit:?}");
        match exit {
            VmExit::Reset => {}
            VmExit::PowerOff if end.reboot_requested => {}
            VmExit::PowerOff => return ExitReason::PowerOff,
            VmExit::Destroyed => {
                return match sup.saved_to() {
                    Some(path) => ExitReason::Saved { path },
                    None => ExitReason::Destroyed,
                };
            }
            VmExit::DebugExit(code) => return ExitReason::DebugExit { code },
            VmExit::Crashed(reason) => return ExitReason::Crashed { reason },
        }
        if end.destroy_requested {
            return ExitReason::Destroyed;
        }
        machine = match boot(sup, engine, &sup.next_spec()) {
            Ok(machine) => machine,
            Err(e) => {
                return ExitReason::Crashed {
                    reason: format!("cannot boot again: {}", error_chain(e.as_ref())),
                };
            }
        };
    }
}

/// `error: cause: cause`, the way vmd reports errors in one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Command, RunState};
    use crate::vmd::fake::FakeEngine;
    use crate::vmd::ring::ConsoleRing;
    use crate::vmd::supervisor::tests::spec;
    use std::thread;

    fn setup(engine: FakeEngine) -> (Arc<Supervisor>, Arc<FakeEngine>, Box<dyn Machine>) {
        let sup = Arc::new(Supervisor::new(
            &spec(),
            1,
            Arc::new(ConsoleRing::new(4096)),
            None,
        ));
        let engine = Arc::new(engine);
        let first = boot(&sup, engine.as_ref(), &spec()).expect("first boot");
        (sup, engine, first)
    }

    fn run_in_thread(
        sup: &Arc<Supervisor>,
        engine: &Arc<FakeEngine>,
        first: Box<dyn Machine>,
    ) -> thread::JoinHandle<ExitReason> {
        let (sup, engine) = (Arc::clone(sup), Arc::clone(engine));
        thread::spawn(move || run(&sup, engine.as_ref(), first))
    }

    #[test]
    fn a_reset_builds_a_fresh_boot() {
        let (sup, engine, first) = setup(FakeEngine::new(b"hi\n"));
        let looped = run_in_thread(&sup, &engine, first);
        sup.execute(&Command::Reset).expect("reset");
        wait_for(|| sup.info().boots == 2);
        assert_eq!(engine.boots(), 2);
        sup.execute(&Command::Destroy).expect("destroy");
        assert_eq!(looped.join().expect("loop"), ExitReason::Destroyed);
    }

    #[test]
    fn the_guest_onlining_vcpus_reaches_subscribers() {
        let (sup, engine, first) = setup(FakeEngine::new(b""));
        let rx = sup.events().subscribe().expect("open");
        engine.control(1).guest_changed_vcpus(3);
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5))
                .expect("event"),
            crate::protocol::Event::Vcpus { vcpus: 3 }
        );
        drop(first);
    }

    #[test]
    fn a_plain_power_off_ends_the_vm() {
        let (sup, engine, first) = setup(FakeEngine::new(b""));
        let looped = run_in_thread(&sup, &engine, first);
        sup.execute(&Command::Shutdown).expect("shutdown");
        assert_eq!(looped.join().expect("loop"), ExitReason::PowerOff);
        assert_eq!(engine.boots(), 1);
    }

    #[test]
    fn a_power_off_after_reboot_boots_again() {
        let (sup, engine, first) = setup(FakeEngine::new(b"banner\n"));
        let looped = run_in_thread(&sup, &engine, first);
        sup.execute(&Command::Reboot).expect("reboot");
        wait_for(|| sup.info().boots == 2);
        assert_eq!(sup.info().state, RunState::Running);
        // The new boot printed its banner again.
        let mut out = Vec::new();
        sup.ring().read(0, usize::MAX, &mut out);
        assert_eq!(out, b"banner\nbanner\n");
        sup.execute(&Command::Shutdown).expect("shutdown");
        assert_eq!(looped.join().expect("loop"), ExitReason::PowerOff);
    }

    #[test]
    fn a_crash_ends_the_vm_with_its_reason() {
        let (sup, engine, first) = setup(FakeEngine::new(b""));
        let looped = run_in_thread(&sup, &engine, first);
        engine.control(1).crash("triple fault at rip 0x100000");
        assert_eq!(
            looped.join().expect("loop"),
            ExitReason::Crashed {
                reason: "triple fault at rip 0x100000".into()
            }
        );
    }

    #[test]
    fn a_reboot_that_cannot_build_the_vm_is_a_crash() {
        let mut engine = FakeEngine::new(b"");
        engine.fail_from_boot = Some(2);
        let (sup, engine, first) = setup(engine);
        let looped = run_in_thread(&sup, &engine, first);
        sup.execute(&Command::Reset).expect("reset");
        let ExitReason::Crashed { reason } = looped.join().expect("loop") else {
            panic!("expected a crash");
        };
        assert!(reason.starts_with("cannot boot again"), "{reason}");
    }

    fn wait_for(mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out");
            thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
