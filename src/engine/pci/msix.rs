//! MSI-X (PCI 3.0 §6.8.2): the capability, the vector table and pending-bit array a device
//! exposes in one of its BARs, and delivery of each vector through its own irqfd and KVM MSI
//! route.
//!
//! Masking is honoured in user space: a vector fires only while MSI-X is enabled, the function
//! is not masked and the vector's entry is not masked; otherwise its pending bit is set and it
//! fires when it is unmasked. The KVM route of a vector is (re)installed whenever the guest
//! unmasks it with a message different from the installed one, so a route always matches what
//! the guest programmed before the vector can fire.
//!
//! Threads: the table is written by vCPU threads (BAR writes, the capability's message
//! control), vectors are triggered by device worker threads; both go through one mutex.
//!
//! Dropping the vectors (the function was hot-removed, or the VM ends) unregisters each irqfd
//! and gives its GSI and route back.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vmm_sys_util::eventfd::EventFd;

use super::{MsiMessage, PciError, VmInterface};

mod state;

/// PCI capability id of MSI-X.
pub const MSIX_CAPABILITY_ID: u8 = 0x11;
/// Size of one table entry (address low/high, data, vector control), bytes.
pub const MSIX_ENTRY_SIZE: u64 = 16;

/// Message control: MSI-X enable.
const CONTROL_ENABLE: u16 = 1 << 15;
/// Message control: all vectors masked.
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Vector control: this vector is masked.
const VECTOR_MASKED: u32 = 1;

/// Where a device places its MSI-X structures. The capability body (message control, table
/// offset/BIR, PBA offset/BIR) is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixLayout {
    /// Number of vectors (1..=2048).
    pub vectors: u16,
    /// BAR holding both the table and the PBA.
    pub bar: u8,
    /// Offset of the table in that BAR (8-byte aligned).
    pub table_offset: u32,
    /// Offset of the pending-bit array in that BAR (8-byte aligned).
    pub pba_offset: u32,
}

impl MsixLayout {
    /// Size of the vector table, bytes.
    pub fn table_size(&self) -> u64 {
        u64::from(self.vectors) * MSIX_ENTRY_SIZE
    }

    /// Size of the pending-bit array (whole qwords), bytes.
    pub fn pba_size(&self) -> u64 {
        u64::from(self.vectors).div_ceil(64) * 8
    }

    /// The capability body after id and next pointer (10 bytes) and its writable mask: only
    /// the enable and function-mask bits of message control change.
    pub fn capability(&self) -> ([u8; 10], [u8; 10]) {
        let control = self.vectors - 1;
        let table = self.table_offset | u32::from(self.bar);
        let pba = self.pba_offset | u32::from(self.bar);
        let mut body = [0u8; 10];
        body[0..2].copy_from_slice(&control.to_le_bytes());
        body[2..6].copy_from_slice(&table.to_le_bytes());
        body[6..10].copy_from_slice(&pba.to_le_bytes());
        let writable_control = (CONTROL_ENABLE | CONTROL_FUNCTION_MASK).to_le_bytes();
        let mut writable = [0u8; 10];
        writable[0..2].copy_from_slice(&writable_control);
        (body, writable)
    }
}

/// One function's MSI-X vectors. Shared (`Arc`) by the transport that owns the registers and
/// the interrupt sources that trigger vectors.
pub struct Msix {
    state: Mutex<MsixState>,
    vectors: Vec<Vector>,
    vm: Arc<dyn VmInterface>,
}

struct Vector {
    gsi: u32,
    irqfd: EventFd,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    address: u64,
    data: u32,
    control: u32,
}

impl Entry {
    fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[0..8].copy_from_slice(&self.address.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.data.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.control.to_le_bytes());
        bytes
    }

    fn from_bytes(bytes: [u8; 16]) -> Entry {
        let field = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Entry {
            address: u64::from(field(0)) | (u64::from(field(4)) << 32),
            data: field(8),
            // Bits 1..31 of vector control are reserved: they read as zero.
            control: field(12) & VECTOR_MASKED,
        }
    }

    fn message(&self) -> MsiMessage {
        MsiMessage {
            address: self.address,
            data: self.data,
        }
    }
}

struct MsixState {
    enabled: bool,
    function_masked: bool,
    entries: Vec<Entry>,
    pending: Vec<bool>,
    /// The message KVM routes each vector's GSI to, if any.
    installed: Vec<Option<MsiMessage>>,
}

impl Msix {
    /// `count` vectors (1..=2048), each with a GSI and an irqfd registered with the VM. All
    /// start masked, as after a function reset.
    pub fn new(count: u16, vm: Arc<dyn VmInterface>) -> Result<Msix, PciError> {
        let count = usize::from(count.clamp(1, 2048));
        let mut vectors = Vec::with_capacity(count);
        for _ in 0..count {
            let gsi = vm.allocate_gsi()?;
            let irqfd = EventFd::new(libc::EFD_NONBLOCK).map_err(PciError::CreateEventFd)?;
            vm.register_irqfd(&irqfd, gsi)?;
            vectors.push(Vector { gsi, irqfd });
        }
        let masked = Entry {
            control: VECTOR_MASKED,
            ..Entry::default()
        };
        Ok(Msix {
            state: Mutex::new(MsixState {
                enabled: false,
                function_masked: false,
                entries: vec![masked; count],
                pending: vec![false; count],
                installed: vec![None; count],
            }),
            vectors,
            vm,
        })
    }

    /// Number of vectors.
    pub fn vector_count(&self) -> u16 {
        self.vectors.len() as u16
    }

    /// The guest wrote the capability's message control register.
    pub fn set_message_control(&self, control: u16) {
        let mut state = self.lock();
        state.enabled = control & CONTROL_ENABLE != 0;
        state.function_masked = control & CONTROL_FUNCTION_MASK != 0;
        for vector in 0..self.vectors.len() {
            self.sync_vector(&mut state, vector);
        }
    }

    /// The guest reads the vector table at `offset`.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        let state = self.lock();
        for (i, byte) in data.iter_mut().enumerate() {
            let (vector, at) = table_position(offset.saturating_add(i as u64));
            *byte = state
                .entries
                .get(vector)
                .map_or(0, |entry| entry.to_bytes()[at]);
        }
    }

    /// The guest writes the vector table at `offset`.
    pub fn write_table(&self, offset: u64, data: &[u8]) {
        let mut state = self.lock();
        let mut touched = Vec::new();
        for (i, byte) in data.iter().enumerate() {
            let (vector, at) = table_position(offset.saturating_add(i as u64));
            let Some(entry) = state.entries.get_mut(vector) else {
                continue;
            };
            let mut bytes = entry.to_bytes();
            bytes[at] = *byte;
            *entry = Entry::from_bytes(bytes);
            if touched.last() != Some(&vector) {
                touched.push(vector);
            }
        }
        for vector in touched {
            self.sync_vector(&mut state, vector);
        }
    }

    /// The guest reads the pending-bit array at `offset` (writes to it are ignored).
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        let state = self.lock();
        for (i, byte) in data.iter_mut().enumerate() {
            let first = offset
                .saturating_add(i as u64)
                .saturating_mul(8)
                .try_into()
                .unwrap_or(usize::MAX);
            *byte = (0..8)
                .filter(|bit| {
                    first
                        .checked_add(*bit)
                        .and_then(|at| state.pending.get(at))
                        .copied()
                        .unwrap_or(false)
                })
                .fold(0, |acc, bit| acc | (1 << bit));
        }
    }

    /// Raises `vector`, or marks it pending while it is masked. Vectors out of range and
    /// triggers while MSI-X is disabled are dropped (vmux devices have no INTx line).
    pub fn trigger(&self, vector: u16) {
        let mut state = self.lock();
        let vector = usize::from(vector);
        if vector >= self.vectors.len() || !state.enabled {
            return;
        }
        if self.is_masked(&state, vector) {
            state.pending[vector] = true;
        } else {
            self.fire(vector);
        }
    }

    fn is_masked(&self, state: &MsixState, vector: usize) -> bool {
        state.function_masked || state.entries[vector].control & VECTOR_MASKED != 0
    }

    /// Brings vector's route and pending bit in line with its entry after a guest change.
    fn sync_vector(&self, state: &mut MsixState, vector: usize) {
        if !state.enabled || self.is_masked(state, vector) {
            return;
        }
        let message = state.entries[vector].message();
        if state.installed[vector] != Some(message) {
            match self.vm.set_msi_route(self.vectors[vector].gsi, message) {
                Ok(()) => state.installed[vector] = Some(message),
                Err(e) => log::warn!("MSI-X vector {vector}: {e}"),
            }
        }
        if state.pending[vector] {
            state.pending[vector] = false;
            self.fire(vector);
        }
    }

    fn fire(&self, vector: usize) {
        // Writing an eventfd fails only when its counter would overflow, and then the
        // interrupt is already pending in KVM.
        if let Err(e) = self.vectors[vector].irqfd.write(1) {
            log::warn!("MSI-X vector {vector}: irqfd write: {e}");
        }
    }

    fn lock(&self) -> MutexGuard<'_, MsixState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Msix {
    fn drop(&mut self) {
        for (index, vector) in self.vectors.iter().enumerate() {
            if let Err(e) = self.vm.unregister_irqfd(&vector.irqfd, vector.gsi) {
                log::warn!("MSI-X vector {index}: {e}");
            }
            if let Err(e) = self.vm.release_gsi(vector.gsi) {
                log::warn!("MSI-X vector {index}: {e}");
            }
        }
    }
}

/// Table offset → (vector, byte within its entry).
fn table_position(offset: u64) -> (usize, usize) {
    (
        usize::try_from(offset / MSIX_ENTRY_SIZE).unwrap_or(usize::MAX),
        (offset % MSIX_ENTRY_SIZE) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pci::testing::FakeVm;

    fn msix(count: u16) -> (Msix, Arc<FakeVm>) {
        let vm = Arc::new(FakeVm::default());
        (Msix::new(count, vm.clone()).unwrap(), vm)
    }

    fn fired(msix: &Msix, vector: usize) -> bool {
        msix.vectors[vector].irqfd.read().is_ok()
    }

    fn program(msix: &Msix, vector: u64, address: u64, data: u32, masked: bool) {
        let base = vector * MSIX_ENTRY_SIZE;
        msix.write_table(base, &(address as u32).to_le_bytes());
        msix.write_table(base + 4, &((address >> 32) as u32).to_le_bytes());
        msix.write_table(base + 8, &data.to_le_bytes());
        msix.write_table(base + 12, &u32::from(masked).to_le_bytes());
    }

    #[test]
    fn unmasked_vector_fires_its_irqfd_with_its_route_installed() {
        let (msix, vm) = msix(2);
        msix.set_message_control(CONTROL_ENABLE);
        program(&msix, 1, 0xfee0_0000, 0x41, false);

        msix.trigger(1);

        assert!(fired(&msix, 1));
        assert!(!fired(&msix, 0));
        let expected = MsiMessage {
            address: 0xfee0_0000,
            data: 0x41,
        };
        assert_eq!(vm.routes.lock().unwrap().last(), Some(&(25, expected)));
    }

    #[test]
    fn masked_vector_is_pending_and_fires_on_unmask() {
        let (msix, _) = msix(1);
        msix.set_message_control(CONTROL_ENABLE);
        program(&msix, 0, 0xfee0_0000, 0x41, true);

        msix.trigger(0);
        let fired_while_masked = fired(&msix, 0);
        let mut pba = [0u8; 8];
        msix.read_pba(0, &mut pba);
        msix.write_table(12, &0u32.to_le_bytes());

        assert!(!fired_while_masked);
        assert_eq!(pba[0], 1);
        assert!(fired(&msix, 0));
        msix.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0);
    }

    #[test]
    fn function_mask_holds_every_vector() {
        let (msix, _) = msix(1);
        msix.set_message_control(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        program(&msix, 0, 0xfee0_0000, 0x41, false);

        msix.trigger(0);
        let fired_while_masked = fired(&msix, 0);
        msix.set_message_control(CONTROL_ENABLE);

        assert!(!fired_while_masked);
        assert!(fired(&msix, 0));
    }

    #[test]
    fn trigger_with_msix_disabled_is_dropped() {
        let (msix, _) = msix(1);
        program(&msix, 0, 0xfee0_0000, 0x41, false);

        msix.trigger(0);
        msix.set_message_control(CONTROL_ENABLE);

        assert!(!fired(&msix, 0));
    }

    #[test]
    fn table_reads_back_with_reserved_control_bits_clear() {
        let (msix, _) = msix(1);

        program(&msix, 0, 0x1_fee0_1000, 0x1234, true);
        msix.write_table(12, &u32::MAX.to_le_bytes());
        let mut entry = [0u8; 16];
        msix.read_table(0, &mut entry);

        assert_eq!(&entry[0..8], &0x1_fee0_1000u64.to_le_bytes());
        assert_eq!(&entry[8..12], &0x1234u32.to_le_bytes());
        assert_eq!(&entry[12..16], &1u32.to_le_bytes());
    }

    #[test]
    fn accesses_past_the_table_and_triggers_past_the_vectors_are_ignored() {
        let (msix, _) = msix(1);
        msix.set_message_control(CONTROL_ENABLE);

        msix.write_table(16, &[0xff; 8]);
        msix.trigger(7);
        let mut data = [0xaa; 4];
        msix.read_table(u64::MAX - 1, &mut data);

        assert_eq!(data, [0; 4]);
    }

    #[test]
    fn a_new_message_reinstalls_the_route() {
        let (msix, vm) = msix(1);
        msix.set_message_control(CONTROL_ENABLE);
        program(&msix, 0, 0xfee0_0000, 0x41, false);

        program(&msix, 0, 0xfee0_1000, 0x42, false);

        let routes = vm.routes.lock().unwrap();
        assert_eq!(
            routes.last().map(|r| r.1),
            Some(MsiMessage {
                address: 0xfee0_1000,
                data: 0x42
            })
        );
    }

    #[test]
    fn dropping_the_vectors_unregisters_their_irqfds_and_gives_back_their_gsis() {
        let (msix, vm) = msix(3);
        assert_eq!(vm.irqfds.lock().unwrap().len(), 3);

        drop(msix);

        assert!(vm.irqfds.lock().unwrap().is_empty());
        assert_eq!(*vm.released.lock().unwrap(), [24, 25, 26]);
    }

    #[test]
    fn capability_encodes_table_size_minus_one_and_bir() {
        let layout = MsixLayout {
            vectors: 3,
            bar: 0,
            table_offset: 0x4000,
            pba_offset: 0x5000,
        };

        let (body, writable) = layout.capability();

        assert_eq!(&body[0..2], &2u16.to_le_bytes());
        assert_eq!(&body[2..6], &0x4000u32.to_le_bytes());
        assert_eq!(&body[6..10], &0x5000u32.to_le_bytes());
        assert_eq!(&writable[0..2], &0xc000u16.to_le_bytes());
        assert_eq!(layout.pba_size(), 8);
    }
}
