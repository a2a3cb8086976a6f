//! Who may hold a control connection, so that idle or runaway clients cannot lock the VM's
//! owner out (a client can only be of vmd's own user, but one stuck process is enough).
//!
//! - At most [`MAX_CONNECTIONS`] connections serve every command, and one client process
//!   (by the pid `SO_PEERCRED` reports) holds at most [`MAX_PER_PEER`] of them.
//! - Beyond that, [`LIFECYCLE_SLOTS`] more connections are kept for lifecycle commands only
//!   (info, shutdown, destroy, ...), one per process: `vmux destroy` always gets through.
//! - Every slot is given back when its connection ends; idle connections end by themselves
//!   (`session`'s idle timeout).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Connections that serve every command.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections one client process may hold among [`MAX_CONNECTIONS`].
pub const MAX_PER_PEER: usize = 16;
/// Connections kept for lifecycle commands beyond [`MAX_CONNECTIONS`].
pub const LIFECYCLE_SLOTS: usize = 4;

/// What an admitted connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Every command.
    Full,
    /// One lifecycle command, then the connection closes.
    LifecycleOnly,
}

#[derive(Debug, Default)]
struct Counts {
    full: usize,
    lifecycle: usize,
    full_by_peer: HashMap<u32, usize>,
    lifecycle_by_peer: HashMap<u32, usize>,
}

/// The connection slots of one control socket.
#[derive(Debug, Default, Clone)]
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
}

/// A held slot; given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    counts: Arc<Mutex<Counts>>,
    peer: u32,
    slot: Slot,
}

impl Ticket {
    /// What the connection may do.
    pub fn slot(&self) -> Slot {
        self.slot
    }
}

impl Admission {
    /// Admits a connection from process `peer`, or `None` when even the lifecycle slots are
    /// taken (or this process already holds its lifecycle slot).
    pub fn admit(&self, peer: u32) -> Option<Ticket> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.full_by_peer.get(&peer).copied().unwrap_or(0);
        let slot = if counts.full < MAX_CONNECTIONS && held < MAX_PER_PEER {
            counts.full += 1;
            *counts.full_by_peer.entry(peer).or_default() += 1;
            Slot::Full
        } else if counts.lifecycle < LIFECYCLE_SLOTS
            && !counts.lifecycle_by_peer.contains_key(&peer)
        {
            counts.lifecycle += 1;
            *counts.lifecycle_by_peer.entry(peer).or_default() += 1;
            Slot::LifecycleOnly
        } else {
            return None;
        };
        Some(Ticket {
            counts: Arc::clone(&self.counts),
            peer,
            slot,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = &mut *counts;
        let (total, by_peer) = match self.slot {
            Slot::Full => (&mut counts.full, &mut counts.full_by_peer),
            Slot::LifecycleOnly => (&mut counts.lifecycle, &mut counts.lifecycle_by_peer),
        };
        *total = total.saturating_sub(1);
        if let Some(held) = by_peer.get_mut(&self.peer) {
            *held -= 1;
            if *held == 0 {
                by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_gets_its_share_then_one_lifecycle_slot_then_nothing() {
        let admission = Admission::default();
        let tickets: Vec<_> = (0..MAX_PER_PEER)
            .map(|_| admission.admit(7).expect("within the share"))
            .collect();
        assert!(tickets.iter().all(|t| t.slot() == Slot::Full));
        let extra = admission.admit(7).expect("lifecycle slot");
        assert_eq!(extra.slot(), Slot::LifecycleOnly);
        assert!(admission.admit(7).is_none());
        // Another process still gets a full connection.
        assert_eq!(admission.admit(8).expect("other peer").slot(), Slot::Full);
    }

    #[test]
    fn with_every_full_slot_taken_lifecycle_commands_still_get_in() {
        let admission = Admission::default();
        let _held: Vec<_> = (0..MAX_CONNECTIONS as u32)
            .map(|peer| admission.admit(peer).expect("full slot"))
            .collect();
        let lifecycle: Vec<_> = (0..LIFECYCLE_SLOTS as u32)
            .map(|i| admission.admit(1000 + i).expect("lifecycle slot"))
            .collect();
        assert!(lifecycle.iter().all(|t| t.slot() == Slot::LifecycleOnly));
        assert!(admission.admit(2000).is_none());
        drop(lifecycle);
        assert!(admission.admit(2000).is_some());
    }

    #[test]
    fn a_closed_connection_gives_its_slot_back() {
        let admission = Admission::default();
        let tickets: Vec<_> = (0..MAX_PER_PEER)
            .filter_map(|_| admission.admit(3))
            .collect();
        drop(tickets);
        assert_eq!(admission.admit(3).expect("again").slot(), Slot::Full);
    }
}
