//! The transport's side of [`VirtioInterrupt`]: the ISR status byte, the
//! `DEVICE_NEEDS_RESET` flag, the MSI-X vector of each queue and of configuration changes,
//! and the configuration generation (bumped with every configuration-change interrupt, so a
//! driver reading a multi-field configuration sees whether it changed meanwhile).
//!
//! Shared between the transport (vCPU threads: the driver maps vectors, reads the ISR) and the
//! device's worker threads (which signal), so all state is atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, Ordering};

use crate::engine::devices::virtio::VirtioInterrupt;
use crate::engine::pci::Msix;
use crate::engine::snapshot::TransportState;

/// "No vector": the driver does not want this interrupt (virtio 1.x §4.1.4.3).
pub const NO_VECTOR: u16 = 0xffff;
/// ISR bit: a queue has new used buffers.
const ISR_QUEUE: u8 = 1;
/// ISR bit: the device configuration changed.
const ISR_CONFIG: u8 = 2;

/// Interrupt state of one virtio PCI function.
pub struct PciInterrupt {
    msix: Arc<Msix>,
    isr: AtomicU8,
    needs_reset: AtomicBool,
    config_vector: AtomicU16,
    queue_vectors: Vec<AtomicU16>,
    config_generation: AtomicU8,
}

impl PciInterrupt {
    /// State for `queues` queues delivering through `msix`; every vector starts unmapped.
    pub fn new(msix: Arc<Msix>, queues: usize) -> PciInterrupt {
        PciInterrupt {
            msix,
            isr: AtomicU8::new(0),
            needs_reset: AtomicBool::new(false),
            config_vector: AtomicU16::new(NO_VECTOR),
            queue_vectors: (0..queues).map(|_| AtomicU16::new(NO_VECTOR)).collect(),
            config_generation: AtomicU8::new(0),
        }
    }

    /// The configuration generation.
    pub fn config_generation(&self) -> u8 {
        self.config_generation.load(Ordering::SeqCst)
    }

    /// Records the ISR bits, the needs-reset flag, the vectors and the configuration
    /// generation in `state` (for a save).
    pub fn save_into(&self, state: &mut TransportState) {
        state.isr = self.isr.load(Ordering::SeqCst);
        state.needs_reset = self.needs_reset();
        state.config_vector = self.config_vector();
        state.queue_vectors = (0..self.queue_vectors.len())
            .map(|q| self.queue_vector(q))
            .collect();
        state.config_generation = self.config_generation();
    }

    /// Takes those back from a saved `state`; vectors out of range read back as no vector, as
    /// if the driver had written them.
    pub fn restore_from(&self, state: &TransportState) {
        self.isr.store(state.isr, Ordering::SeqCst);
        self.needs_reset.store(state.needs_reset, Ordering::SeqCst);
        self.set_config_vector(state.config_vector);
        for (queue, &vector) in state.queue_vectors.iter().enumerate() {
            self.set_queue_vector(queue, vector);
        }
        self.config_generation
            .store(state.config_generation, Ordering::SeqCst);
    }

    /// Forgets vectors, ISR bits and the needs-reset flag (device reset).
    pub fn reset(&self) {
        self.isr.store(0, Ordering::SeqCst);
        self.needs_reset.store(false, Ordering::SeqCst);
        self.config_vector.store(NO_VECTOR, Ordering::SeqCst);
        for vector in &self.queue_vectors {
            vector.store(NO_VECTOR, Ordering::SeqCst);
        }
        self.config_generation.store(0, Ordering::SeqCst);
    }

    /// Reads and clears the ISR status (the driver's read of the ISR region).
    pub fn take_isr(&self) -> u8 {
        self.isr.swap(0, Ordering::SeqCst)
    }

    /// Whether the device has asked for a reset.
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::SeqCst)
    }

    /// Marks the device as needing a reset (also used by the transport itself when activation
    /// fails) and tells the driver.
    pub fn set_needs_reset(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
        self.signal_config();
    }

    /// A vector value the driver may store: in range or [`NO_VECTOR`]. Anything else is
    /// refused by storing `NO_VECTOR`, which the driver reads back (virtio 1.x §4.1.5.1.2).
    fn checked_vector(&self, vector: u16) -> u16 {
        if vector < self.msix.vector_count() {
            vector
        } else {
            NO_VECTOR
        }
    }

    /// The configuration-change vector.
    pub fn config_vector(&self) -> u16 {
        self.config_vector.load(Ordering::SeqCst)
    }

    /// The driver maps configuration changes to `vector`.
    pub fn set_config_vector(&self, vector: u16) {
        self.config_vector
            .store(self.checked_vector(vector), Ordering::SeqCst);
    }

    /// The vector of queue `queue` ([`NO_VECTOR`] for queues that do not exist).
    pub fn queue_vector(&self, queue: usize) -> u16 {
        self.queue_vectors
            .get(queue)
            .map_or(NO_VECTOR, |v| v.load(Ordering::SeqCst))
    }

    /// The driver maps queue `queue` to `vector`.
    pub fn set_queue_vector(&self, queue: usize, vector: u16) {
        if let Some(slot) = self.queue_vectors.get(queue) {
            slot.store(self.checked_vector(vector), Ordering::SeqCst);
        }
    }

    fn raise(&self, isr: u8, vector: u16) {
        self.isr.fetch_or(isr, Ordering::SeqCst);
        if vector != NO_VECTOR {
            self.msix.trigger(vector);
        }
    }
}

impl VirtioInterrupt for PciInterrupt {
    fn signal_queue(&self, queue: u16) {
        self.raise(ISR_QUEUE, self.queue_vector(usize::from(queue)));
    }

    fn signal_config(&self) {
        self.config_generation.fetch_add(1, Ordering::SeqCst);
        self.raise(ISR_CONFIG, self.config_vector());
    }

    fn signal_needs_reset(&self) {
        self.set_needs_reset();
    }
}
