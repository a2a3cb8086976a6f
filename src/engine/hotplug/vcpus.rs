//! Every vCPU of one boot and its thread: created at boot or on hot-add, started, stopped by
//! an eject, plugged again, and joined when the boot ends.
//!
//! A slot holds the vCPU while it has no thread (created, or handed back by a thread that
//! ended) or the thread's handle while it runs. A hot-add reuses a slot's vCPU when there is
//! one (KVM cannot create the same vCPU id twice), joining the ejected thread first.
//!
//! Owned by the VM's shared state behind a mutex that serializes hot-add, start and the final
//! join; the vCPU threads never take it.

use std::sync::Arc;
use std::thread::JoinHandle;

use kvm_bindings::CpuId;
use kvm_ioctls::VmFd;

use super::super::vcpu::{RunContext, Vcpu, VcpuError, VcpuStart};

/// One possible vCPU.
enum Slot {
    /// Never created.
    Empty,
    /// Created (or handed back by its thread), no thread.
    Idle(Vcpu),
    /// Its thread runs (or has ended and not been joined yet).
    Running(JoinHandle<Vcpu>),
}

/// The vCPUs of one boot.
pub struct VcpuSet {
    vm_fd: Arc<VmFd>,
    supported_cpuid: CpuId,
    max_vcpus: u32,
    ctx: Arc<RunContext>,
    slots: Vec<Slot>,
}

impl VcpuSet {
    /// An empty set of `max_vcpus` slots for the VM `vm_fd`, whose threads share `ctx`.
    pub fn new(
        vm_fd: Arc<VmFd>,
        supported_cpuid: CpuId,
        max_vcpus: u32,
        ctx: Arc<RunContext>,
    ) -> VcpuSet {
        VcpuSet {
            vm_fd,
            supported_cpuid,
            max_vcpus,
            ctx,
            slots: (0..max_vcpus).map(|_| Slot::Empty).collect(),
        }
    }

    /// Creates boot vCPU `index` (no thread yet) and registers it: plugged and online.
    pub fn create_boot(&mut self, index: u32, start: VcpuStart) -> Result<(), VcpuError> {
        let vcpu = Vcpu::create(
            &self.vm_fd,
            index,
            &self.supported_cpuid,
            self.max_vcpus,
            start,
        )?;
        self.ctx
            .lifecycle
            .register_vcpu(index as usize, vcpu.kick());
        self.ctx.cpus.plug_boot(index, vcpu.stats());
        if let Some(slot) = self.slots.get_mut(index as usize) {
            *slot = Slot::Idle(vcpu);
        }
        Ok(())
    }

    /// Creates vCPU `index` of a VM being restored (no thread yet) and registers it without
    /// touching its hotplug flags, which the restore has set; the caller writes its saved
    /// state through [`vcpu_fd`](Self::vcpu_fd).
    pub fn create_restored(&mut self, index: u32) -> Result<(), VcpuError> {
        let vcpu = Vcpu::create(
            &self.vm_fd,
            index,
            &self.supported_cpuid,
            self.max_vcpus,
            VcpuStart::Parked,
        )?;
        self.ctx
            .lifecycle
            .register_vcpu(index as usize, vcpu.kick());
        self.ctx.cpus.attach_stats(index, vcpu.stats());
        if let Some(slot) = self.slots.get_mut(index as usize) {
            *slot = Slot::Idle(vcpu);
        }
        Ok(())
    }

    /// The KVM fd of vCPU `index` while it has no thread (created, or parked for a save).
    pub fn vcpu_fd(&self, index: u32) -> Option<&kvm_ioctls::VcpuFd> {
        match self.slots.get(index as usize)? {
            Slot::Idle(vcpu) => Some(vcpu.fd()),
            _ => None,
        }
    }

    /// The VM the vCPUs belong to.
    pub fn vm_fd(&self) -> &VmFd {
        &self.vm_fd
    }

    /// Ends every vCPU thread while the boot goes on (the VM must be paused, so each is parked
    /// outside the guest) and keeps the vCPUs, so their state can be read. Returns the indices
    /// whose thread ended, for [`unpark_threads`](Self::unpark_threads).
    pub fn park_threads(&mut self) -> Vec<u32> {
        let mut parked = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            if matches!(slot, Slot::Running(_)) {
                self.ctx.lifecycle.request_stop(index);
            }
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            *slot = match std::mem::replace(slot, Slot::Empty) {
                Slot::Running(thread) => match thread.join() {
                    Ok(vcpu) => {
                        parked.push(index as u32);
                        Slot::Idle(vcpu)
                    }
                    // A panicking vCPU thread has already ended the boot as crashed.
                    Err(_) => Slot::Empty,
                },
                other => other,
            };
        }
        parked
    }

    /// Starts the threads of `indices` again (after [`park_threads`](Self::park_threads)); a
    /// VM still paused keeps them parked until it resumes.
    pub fn unpark_threads(&mut self, indices: &[u32]) -> Result<(), VcpuError> {
        for &index in indices {
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            if let Slot::Idle(vcpu) = std::mem::replace(slot, Slot::Empty) {
                self.ctx
                    .lifecycle
                    .register_vcpu(index as usize, vcpu.kick());
                vcpu.kick().set_immediate_exit(0);
                *slot = Slot::Running(vcpu.spawn(self.ctx.clone())?);
            }
        }
        Ok(())
    }

    /// Starts the thread of every created vCPU that has none (the boot vCPUs).
    pub fn start_idle(&mut self) -> Result<(), VcpuError> {
        for slot in &mut self.slots {
            *slot = match std::mem::replace(slot, Slot::Empty) {
                Slot::Idle(vcpu) => Slot::Running(vcpu.spawn(self.ctx.clone())?),
                other => other,
            };
        }
        Ok(())
    }

    /// Plugs vCPU `index` into the running VM: creates it (or takes back the one the guest
    /// ejected), parks it for INIT/SIPI, starts its thread and marks it inserting. The caller
    /// tells the guest.
    pub fn hot_add(&mut self, index: u32) -> Result<(), VcpuError> {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Ok(());
        };
        let mut vcpu = match std::mem::replace(slot, Slot::Empty) {
            Slot::Empty => Vcpu::create(
                &self.vm_fd,
                index,
                &self.supported_cpuid,
                self.max_vcpus,
                VcpuStart::HotAdded,
            )?,
            Slot::Idle(vcpu) => vcpu,
            // The guest ejected it: its thread was told to stop and ends promptly.
            Slot::Running(thread) => match thread.join() {
                Ok(vcpu) => vcpu,
                // The thread panicked and took the vCPU with it; the boot is already ending
                // as crashed (its exit guard), so there is nothing to plug.
                Err(_) => return Ok(()),
            },
        };
        if let Err(e) = vcpu.prepare_replug() {
            *slot = Slot::Idle(vcpu);
            return Err(e);
        }
        self.ctx
            .lifecycle
            .register_vcpu(index as usize, vcpu.kick());
        let stats = vcpu.stats();
        // `spawn` consumes the vCPU; when the OS refuses a thread the vCPU fd goes with it and
        // KVM keeps the id taken, so this slot cannot be plugged again in this boot (the next
        // attempt reports KVM's refusal).
        match vcpu.spawn(self.ctx.clone()) {
            Ok(thread) => *slot = Slot::Running(thread),
            Err(e) => {
                self.ctx.lifecycle.request_stop(index as usize);
                return Err(e);
            }
        }
        self.ctx.cpus.plug_hot(index, stats);
        Ok(())
    }

    /// Joins every vCPU thread (the boot has ended, so each is leaving) and drops the vCPUs.
    pub fn join_all(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Running(thread) = std::mem::replace(slot, Slot::Empty) {
                // A panicking vCPU thread has already ended the boot as crashed (its guard).
                let _ = thread.join();
            }
        }
    }

    /// Whether any thread was started.
    pub fn has_threads(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Running(_)))
    }
}
