//! The body of a vCPU thread: enter the guest, dispatch each exit, repeat.
//!
//! Port I/O and MMIO exits go to the buses; power-off and reset system events, fatal exits
//! (triple fault, internal error, failed entry) and KVM errors end the boot through the
//! [`Lifecycle`]. When a kick interrupts `KVM_RUN` (`EINTR`), the thread clears
//! `immediate_exit` and asks the lifecycle whether to park, run on, or leave (the boot ended,
//! or this vCPU was ejected). A parked vCPU's `KVM_RUN` returns `EAGAIN` once the guest's INIT
//! reaches it: the thread tells the CPU hotplug controller the guest is starting it, and runs
//! again. A guard makes sure that even a panic on this thread ends the boot as crashed instead
//! of leaving the other vCPUs running and `Vm::wait` blocked.

use super::crash;
use super::{RunContext, Vcpu};
use crate::engine::VmExit;
use crate::engine::lifecycle::{Checkpoint, Lifecycle};
use kvm_bindings::{KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::VcpuExit;
use std::sync::atomic::Ordering;

/// What the loop does after one exit.
enum Flow {
    /// Enter the guest again.
    Continue,
    /// The thread was kicked: consult the lifecycle.
    Kicked,
    /// End the boot.
    Stop(VmExit),
}

/// Ends the boot as crashed if the thread unwinds before it reported how it ended.
struct ExitGuard<'a> {
    lifecycle: &'a Lifecycle,
    index: u32,
    finished: bool,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.lifecycle.request_exit(VmExit::Crashed(format!(
                "the thread of vCPU {} failed unexpectedly",
                self.index
            )));
        }
        self.lifecycle.vcpu_exited(self.index as usize);
    }
}

/// Runs `vcpu` until the boot ends or the vCPU is stopped; hands it back.
pub(super) fn run(mut vcpu: Vcpu, ctx: &RunContext) -> Vcpu {
    let mut guard = ExitGuard {
        lifecycle: &ctx.lifecycle,
        index: vcpu.index,
        finished: false,
    };
    vcpu.kick.attach_current_thread();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    vcpu.stats.tid.store(tid as u32, Ordering::Relaxed);

    'boot: while ctx.lifecycle.checkpoint(vcpu.index as usize) == Checkpoint::Run {
        loop {
            match run_once(&mut vcpu, ctx) {
                Flow::Continue => {}
                Flow::Kicked => {
                    // Clear before consulting the lifecycle: a kick that lands after this
                    // store sets the flag again, so it cannot be lost.
                    vcpu.kick.set_immediate_exit(0);
                    continue 'boot;
                }
                Flow::Stop(exit) => {
                    ctx.lifecycle.request_exit(exit);
                    break 'boot;
                }
            }
        }
    }
    vcpu.kick.detach_thread();
    guard.finished = true;
    drop(guard);
    vcpu
}

/// Enters the guest once and handles the exit.
fn run_once(vcpu: &mut Vcpu, ctx: &RunContext) -> Flow {
    let io_size = io_access_size(vcpu);
    let exit = match vcpu.fd.run() {
        Ok(exit) => exit,
        Err(e) if e.errno() == libc::EINTR => return Flow::Kicked,
        Err(e) if e.errno() == libc::EAGAIN => {
            // Only a vCPU waiting for INIT returns this, once INIT has arrived.
            ctx.cpus.vcpu_started(vcpu.index);
            return Flow::Continue;
        }
        Err(e) => {
            return Flow::Stop(VmExit::Crashed(format!(
                "KVM_RUN failed on vCPU {}: {e}",
                vcpu.index
            )));
        }
    };
    vcpu.stats.exits.fetch_add(1, Ordering::Relaxed);
    match exit {
        VcpuExit::IoIn(port, data) => {
            let size = io_size().clamp(1, data.len().max(1));
            for access in data.chunks_mut(size) {
                ctx.io_bus.read(u64::from(port), access);
            }
            Flow::Continue
        }
        VcpuExit::IoOut(port, data) => {
            let size = io_size().clamp(1, data.len().max(1));
            for access in data.chunks(size) {
                ctx.io_bus.write(u64::from(port), access);
            }
            Flow::Continue
        }
        VcpuExit::MmioRead(addr, data) => {
            ctx.mmio_bus.read(addr, data);
            Flow::Continue
        }
        VcpuExit::MmioWrite(addr, data) => {
            ctx.mmio_bus.write(addr, data);
            Flow::Continue
        }
        // Only seen without an in-kernel irqchip; there is nothing to wait for here.
        VcpuExit::Hlt => Flow::Continue,
        VcpuExit::SystemEvent(kind, _) => match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => Flow::Stop(VmExit::PowerOff),
            KVM_SYSTEM_EVENT_RESET => Flow::Stop(VmExit::Reset),
            KVM_SYSTEM_EVENT_CRASH => Flow::Stop(VmExit::Crashed(
                "the guest reported a crash through a system event".to_owned(),
            )),
            other => Flow::Stop(VmExit::Crashed(format!(
                "unexpected KVM system event {other}"
            ))),
        },
        VcpuExit::Shutdown => Flow::Stop(VmExit::Crashed(crash::triple_fault(&vcpu.fd, &ctx.mem))),
        VcpuExit::InternalError => Flow::Stop(VmExit::Crashed(crash::internal_error(
            &mut vcpu.fd,
            &ctx.mem,
        ))),
        VcpuExit::FailEntry(reason, _) => {
            Flow::Stop(VmExit::Crashed(crash::failed_entry(&vcpu.fd, reason)))
        }
        // The interrupt-window and TPR exits are never requested; an IRQ exit is a kick.
        VcpuExit::Intr => Flow::Kicked,
        other => {
            let what = format!("{other:?}");
            Flow::Stop(VmExit::Crashed(crash::unexpected_exit(&vcpu.fd, &what)))
        }
    }
}

/// A reader for the access width (1, 2 or 4 bytes) of the port I/O exit the next `KVM_RUN`
/// returns. kvm-ioctls hands out `count * size` bytes of a string I/O as one slice; the width
/// is needed to split it into the accesses the guest made.
fn io_access_size(vcpu: &Vcpu) -> impl Fn() -> usize + use<> {
    let run = vcpu.run;
    move || {
        // SAFETY: `run` is the live kvm_run mapping of the vCPU this thread owns; the closure is
        // only called while handling an I/O exit of that vCPU, when the kernel has filled the
        // `io` member. The read does not overlap the data area kvm-ioctls lends out (which
        // starts at `io.data_offset`, a page past the header), and `size` is a plain byte.
        usize::from(unsafe { (*run).__bindgen_anon_1.io.size })
    }
}
