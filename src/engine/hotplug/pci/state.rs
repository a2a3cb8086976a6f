//! Saving and restoring the PCI hotplug registers (plugged and unplug-request bitmaps not yet
//! reported, the slots whose eject the host will honour, the segment selector). Which
//! functions are plugged is the platform's state (`pci/platform/state.rs`).

use super::PciHotplug;
use crate::engine::snapshot::PciHotplugState;

impl PciHotplug {
    /// The registers for a save.
    pub fn save_state(&self) -> PciHotplugState {
        let state = self.lock();
        PciHotplugState {
            up: state.up,
            down: state.down,
            removing: state.removing,
            segment: state.segment,
        }
    }

    /// Takes back saved registers.
    pub fn restore_state(&self, saved: &PciHotplugState) {
        let mut state = self.lock();
        state.up = saved.up;
        state.down = saved.down;
        state.removing = saved.removing;
        state.segment = saved.segment;
    }
}
