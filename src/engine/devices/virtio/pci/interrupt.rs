//! The transport's side of [`VirtioInterrupt`]: the ISR status byte, the
//! `DEVICE_NEEDS_RESET` flag and the MSI-X vector of each queue and of configuration changes.
//!
//! Shared between the transport (vCPU threads: the driver maps vectors, reads the ISR) and the
//! device's worker threads (which signal), so all state is atomic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, Ordering};

use crate::engine::devices::virtio::VirtioInterrupt;
use crate::engine::pci::Msix;

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
        }
    }

    /// Forgets vectors, ISR bits and the needs-reset flag (device reset).
    pub fn reset(&self) {
        self.isr.store(0, Ordering::SeqCst);
        self.needs_reset.store(false, Ordering::SeqCst);
        self.config_vector.store(NO_VECTOR, Ordering::SeqCst);
        for vector in &self.queue_vectors {
            vector.store(NO_VECTOR, Ordering::SeqCst);
        }
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
        self.raise(ISR_CONFIG, self.config_vector());
    }

    fn signal_needs_reset(&self) {
        self.set_needs_reset();
    }
}
