//! The networks pane's state: the last [`NetworkSnapshot`] and the selected network, and the
//! guest addresses it knows from DHCP leases. `App` holds it; `pane` changes it.

use crate::client::NetworkSnapshot;
use crate::network::NetworkInfo;
use std::net::Ipv4Addr;

/// The networks pane's state. Owned by the UI thread.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkState {
    /// The last networks read.
    pub snapshot: NetworkSnapshot,
    /// A snapshot has arrived.
    pub loaded: bool,
    /// Why the last read failed.
    pub error: Option<String>,
    /// A read is in flight.
    pub loading: bool,
    /// Read again when the one in flight arrives.
    pub stale: bool,
    /// Tick of the last read asked for.
    pub last_load: Option<u64>,
    /// The selected network's name.
    pub selected: Option<String>,
}

impl NetworkState {
    /// The selected network.
    pub fn selected_network(&self) -> Option<&NetworkInfo> {
        let name = self.selected.as_deref()?;
        self.snapshot
            .networks
            .iter()
            .find(|n| n.config.name == name)
    }

    /// Position of the selected network.
    pub fn selected_row(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        self.snapshot
            .networks
            .iter()
            .position(|n| n.config.name == name)
    }

    /// Guest addresses of VM `vm` known from DHCP leases, in network order.
    pub fn addresses_of(&self, vm: &str) -> Vec<Ipv4Addr> {
        self.snapshot
            .networks
            .iter()
            .flat_map(|n| n.attached.iter())
            .filter(|nic| nic.vm == vm)
            .filter_map(|nic| nic.ip)
            .collect()
    }

    /// Keeps the selection on a network that exists: the first when the old one went away.
    pub fn fix_selection(&mut self) {
        if self.selected_network().is_none() {
            self.selected = self
                .snapshot
                .networks
                .first()
                .map(|n| n.config.name.clone());
        }
    }

    /// Moves the selection by `delta` rows (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        let networks = &self.snapshot.networks;
        if networks.is_empty() {
            return;
        }
        let row = self.selected_row().unwrap_or(0);
        let target = row.saturating_add_signed(delta).min(networks.len() - 1);
        self.selected = Some(networks[target].config.name.clone());
    }
}
