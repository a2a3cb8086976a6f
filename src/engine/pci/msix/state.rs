//! Saving and restoring one function's MSI-X state: the enable and function-mask bits, the
//! vector table and the pending bits. A restore installs the KVM route of every vector the
//! guest left unmasked, exactly as its own writes would have, so the first interrupt after the
//! restore reaches the same CPU and vector as before the save.

use super::{Entry, Msix, VECTOR_MASKED};
use crate::engine::snapshot::{MsixEntryState, MsixState};

impl Msix {
    /// The state for a save.
    pub fn save_state(&self) -> MsixState {
        let state = self.lock();
        MsixState {
            enabled: state.enabled,
            function_masked: state.function_masked,
            entries: state
                .entries
                .iter()
                .map(|e| MsixEntryState {
                    address: e.address,
                    data: e.data,
                    control: e.control,
                })
                .collect(),
            pending: state.pending.clone(),
        }
    }

    /// Takes back a saved state: as many vectors as both have (a function's vector count comes
    /// from its queue count, which the restore checks), then reinstalls the routes.
    pub fn restore_state(&self, saved: &MsixState) {
        let mut state = self.lock();
        state.enabled = saved.enabled;
        state.function_masked = saved.function_masked;
        for (entry, saved) in state.entries.iter_mut().zip(&saved.entries) {
            *entry = Entry {
                address: saved.address,
                data: saved.data,
                control: saved.control & VECTOR_MASKED,
            };
        }
        for (pending, &saved) in state.pending.iter_mut().zip(&saved.pending) {
            *pending = saved;
        }
        for vector in 0..self.vectors.len() {
            self.sync_vector(&mut state, vector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pci::MsiMessage;
    use crate::engine::pci::testing::FakeVm;
    use std::sync::Arc;

    #[test]
    fn a_restored_table_routes_unmasked_vectors_like_the_original() {
        let vm = Arc::new(FakeVm::default());
        let original = Msix::new(2, vm.clone()).expect("vectors");
        original.set_message_control(1 << 15);
        original.write_table(16, &0xfee0_1000u32.to_le_bytes());
        original.write_table(24, &0x31u32.to_le_bytes());
        original.write_table(28, &0u32.to_le_bytes());
        let saved = original.save_state();

        let restored_vm = Arc::new(FakeVm::default());
        let restored = Msix::new(2, restored_vm.clone()).expect("vectors");
        restored.restore_state(&saved);

        assert_eq!(restored.save_state(), saved);
        let routes = restored_vm.routes.lock().expect("routes");
        assert_eq!(
            routes.last().map(|r| r.1),
            Some(MsiMessage {
                address: 0xfee0_1000,
                data: 0x31
            })
        );
        assert_eq!(routes.len(), 1, "the masked vector 0 gets no route");
    }
}
