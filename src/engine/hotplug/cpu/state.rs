//! Saving and restoring the CPU hotplug controller: the selected slot and every slot's flags.
//! A restore marks which vCPUs are plugged; the caller creates those vCPUs and hands their
//! counters over with [`CpuHotplug::attach_stats`].

use std::sync::Arc;

use super::{CpuHotplug, Slot};
use crate::engine::snapshot::{CpuHotplugState, CpuSlotState};
use crate::engine::vcpu::VcpuStats;

impl CpuHotplug {
    /// The registers and slots for a save.
    pub fn save_state(&self) -> CpuHotplugState {
        let state = self.lock();
        CpuHotplugState {
            selected: state.selected,
            slots: state
                .slots
                .iter()
                .map(|s| CpuSlotState {
                    plugged: s.plugged,
                    online: s.online,
                    inserting: s.inserting,
                    removing: s.removing,
                    remove_requested: s.remove_requested,
                })
                .collect(),
        }
    }

    /// Takes back saved slots; the save must have as many slots (`max_vcpus`) as this
    /// controller. Returns the plugged slots, whose vCPUs the caller restores.
    pub fn restore_state(&self, saved: &CpuHotplugState) -> Result<Vec<u32>, String> {
        let mut state = self.lock();
        if saved.slots.len() != state.slots.len() {
            return Err(format!(
                "the save has {} possible vCPUs (max_vcpus) but this VM has {}",
                saved.slots.len(),
                state.slots.len()
            ));
        }
        if !saved.slots.first().is_some_and(|s| s.plugged) {
            return Err("the save has no vCPU 0".into());
        }
        state.selected = saved.selected;
        for (slot, saved) in state.slots.iter_mut().zip(&saved.slots) {
            *slot = Slot {
                plugged: saved.plugged,
                online: saved.online && saved.plugged,
                inserting: saved.inserting,
                removing: saved.removing,
                remove_requested: saved.remove_requested,
                stats: None,
            };
        }
        Ok(state
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.plugged)
            .map(|(i, _)| i as u32)
            .collect())
    }

    /// Gives restored vCPU `index` its thread counters.
    pub fn attach_stats(&self, index: u32, stats: Arc<VcpuStats>) {
        if let Some(slot) = self.lock().slots.get_mut(index as usize) {
            slot.stats = Some(stats);
        }
    }
}
