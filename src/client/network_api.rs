//! The network half of the host API: guest networks ([`NetworkHost`]) and the plain data its
//! listings travel in. The CLI and the TUI reach networks only through this trait;
//! [`super::LocalNetworks`] is the real one, [`super::FakeNetworks`] the in-memory one, and a
//! remote host implements it over its connection, so every argument and result serializes.
//!
//! Every method blocks (`ip`, `nft`, `dnsmasq`, the file system): call them on worker threads
//! in the TUI, never from `update` or `draw`.

use crate::config::{MacAddr, NetworkConfig, NicConfig, VmConfig};
use crate::network::{InterfaceAddress, NetworkError, NetworkInfo, NetworkStatus};
use serde::{Deserialize, Serialize};

/// Everything the networks pane shows, read in one go.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkSnapshot {
    /// Usable networks with state, leases and attached VMs, sorted by name.
    pub networks: Vec<NetworkInfo>,
    /// Network definition files that could not be used, as messages.
    pub broken: Vec<String>,
    /// The host's IPv4 routes (a new network's subnet must not overlap them).
    pub routes: Vec<crate::network::host::Route>,
}

/// The networks of a host, as `net-list` shows them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkList {
    /// Usable networks with their state, sorted by name.
    pub networks: Vec<NetworkStatus>,
    /// Network definition files that could not be used, as messages.
    pub broken: Vec<String>,
}

/// What `autostart-all` did to one network: started it, or why not.
pub type AutostartResult = (String, Result<(), String>);

/// Guest networks of one host. Blocking; see the module docs.
pub trait NetworkHost: Send + Sync {
    /// Every network with state, leases and attached VMs.
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError>;
    /// Refuses, saying so, when this host's networks cannot be changed by the caller (no
    /// CAP_NET_ADMIN).
    fn require_admin(&self) -> Result<(), NetworkError>;
    /// Brings the recorded state in line with the host (bridges, rules, dnsmasq that vanished
    /// or linger) and returns one note per repair.
    fn reconcile(&self) -> Result<Vec<String>, NetworkError>;
    /// The networks with their state, and the unusable definitions.
    fn list(&self) -> Result<NetworkList, NetworkError>;
    /// One network: addressing, DHCP leases, attached VMs.
    fn info(&self, name: &str) -> Result<NetworkInfo, NetworkError>;
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
    /// Starts every autostart network that is not running; one result per network tried,
    /// a failure as its message.
    fn autostart_all(&self) -> Vec<AutostartResult>;
    /// A free bridge name for a new nat/isolated network.
    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError>;
    /// A new NIC on `network` for VM definition `vm`: `mac` when given and unused on this
    /// host, else a generated MAC unused on this host.
    fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError>;
    /// The addresses of VM `vm`'s NICs, one per NIC in definition order.
    fn addresses(&self, vm: &str) -> Result<Vec<InterfaceAddress>, NetworkError>;
}
