//! Saving and restoring the GED: its pending event bits. A restore does not interrupt the
//! guest again: an interrupt that was raised is in the saved IOAPIC and local APIC state.

use super::Ged;
use crate::engine::snapshot::GedState;

impl Ged {
    /// The pending events for a save.
    pub fn save_state(&self) -> GedState {
        GedState {
            pending: self.pending,
        }
    }

    /// Takes back saved pending events.
    pub fn restore_state(&mut self, saved: &GedState) {
        self.pending = saved.pending;
    }
}
