//! Placeholder for the VM object: the public surface vmd programs against.
//! (Replaced by the real engine; the signatures below are the contract.)

use super::{SerialSink, VmExit, VmSpec};
use std::sync::Arc;

/// Errors building or controlling a VM.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Placeholder until the engine lands.
    #[error("the engine is not built yet")]
    NotBuilt,
}

/// Counters of one vCPU.
#[derive(Debug, Clone, PartialEq)]
pub struct VcpuCounters {
    /// vCPU index (= APIC id).
    pub index: u32,
    /// Host thread id of its thread.
    pub tid: u32,
    /// Exits handled since boot.
    pub exits: u64,
}

/// Engine-side counters; vmd adds host-side figures (CPU time, RSS).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    /// One entry per present vCPU.
    pub vcpus: Vec<VcpuCounters>,
    /// Guest RAM size, bytes.
    pub memory_bytes: u64,
    /// Guest RAM resident in host memory (touched), bytes.
    pub memory_touched_bytes: u64,
}

/// One boot of one VM; owns the KVM fds, memory, devices and vCPU threads.
pub struct Vm {
    _spec: VmSpec,
}

/// Cloneable, thread-safe control of a [`Vm`].
#[derive(Clone)]
pub struct VmHandle {}

impl Vm {
    /// Builds the VM (memory, irqchip, devices, ACPI, boot image loaded, vCPUs created) without
    /// running it.
    pub fn create(spec: &VmSpec, serial: Arc<dyn SerialSink>) -> Result<Vm, EngineError> {
        let _ = (spec, serial);
        Err(EngineError::NotBuilt)
    }
    /// Starts the vCPU threads; returns once vCPU 0 has entered the guest.
    pub fn start(&mut self) -> Result<(), EngineError> {
        Err(EngineError::NotBuilt)
    }
    /// A control handle usable from any thread.
    pub fn handle(&self) -> VmHandle {
        VmHandle {}
    }
    /// Blocks until this boot ends, joins every vCPU thread and says why it ended.
    pub fn wait(self) -> VmExit {
        VmExit::Crashed("the engine is not built yet".into())
    }
}

impl VmHandle {
    /// Stops every vCPU (kick with `immediate_exit` + signal) and returns once all are parked.
    pub fn pause(&self) -> Result<(), EngineError> {
        Err(EngineError::NotBuilt)
    }
    /// Lets paused vCPUs run again.
    pub fn resume(&self) -> Result<(), EngineError> {
        Err(EngineError::NotBuilt)
    }
    /// Whether the VM is paused.
    pub fn is_paused(&self) -> bool {
        false
    }
    /// Presses the ACPI power button (GED event + interrupt).
    pub fn power_button(&self) {}
    /// Ends this boot with [`VmExit::Reset`].
    pub fn reset(&self) {}
    /// Ends this boot with [`VmExit::Destroyed`].
    pub fn destroy(&self) {}
    /// Queues bytes for the guest's COM1 receiver (interrupt-driven); never blocks, drops
    /// beyond an internal bound and says how many were accepted.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        bytes.len()
    }
    /// vCPUs present now.
    pub fn vcpu_count(&self) -> u32 {
        0
    }
    /// Engine counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            vcpus: Vec::new(),
            memory_bytes: 0,
            memory_touched_bytes: 0,
        }
    }
}
