//! The network half of the host API: guest networks ([`NetworkHost`]) and the snapshot its
//! listing travels in. The CLI and the TUI reach networks only through this trait;
//! [`super::LocalNetworks`] is the real one, [`super::FakeNetworks`] the in-memory one.
//!
//! Every method blocks (`ip`, `nft`, `dnsmasq`, the file system): call them on worker threads
//! in the TUI, never from `update` or `draw`.

use crate::config::{NetworkConfig, NicConfig, VmConfig};
use crate::network::{NetworkError, NetworkInfo};

/// Everything the networks pane shows, read in one go.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkSnapshot {
    /// Usable networks with state, leases and attached VMs, sorted by name.
    pub networks: Vec<NetworkInfo>,
    /// Network definition files that could not be used, as messages.
    pub broken: Vec<String>,
    /// The host's IPv4 routes (a new network's subnet must not overlap them).
    pub routes: Vec<crate::network::host::Route>,
}

/// Guest networks of one host. Blocking; see the module docs.
pub trait NetworkHost: Send + Sync {
    /// Every network with state, leases and attached VMs.
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError>;
    /// Saves a new definition.
    fn define(&self, config: &NetworkConfig) -> Result<(), NetworkError>;
    /// Starts a network (bridge, NAT, DHCP); needs CAP_NET_ADMIN.
    fn start(&self, name: &str) -> Result<(), NetworkError>;
    /// Stops a network (refused while running VMs use it); needs CAP_NET_ADMIN.
    fn stop(&self, name: &str) -> Result<(), NetworkError>;
    /// Deletes a stopped network's definition; returns notes about VMs still naming it.
    fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError>;
    /// Sets or clears a network's autostart flag.
    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError>;
    /// A free bridge name for a new nat/isolated network.
    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError>;
    /// A new NIC on `network` for VM definition `vm`, with a MAC unused on this host.
    fn new_nic(&self, vm: &VmConfig, network: &str) -> Result<NicConfig, NetworkError>;
}
