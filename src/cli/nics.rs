//! What the VM verbs ask of the host's networks: a NIC for `create --network`, the addresses
//! `list --json` and `info` show, and the networks `autostart-all` starts before the VMs.
//!
//! [`Networks`] is a trait so the verbs' unit tests need no network; [`HostNetworks`] is the
//! real one, which opens the [`NetworkManager`] of the vmux home only when a verb needs it
//! (opening it defines the `default` network on first use).

use std::cell::OnceCell;

use crate::config::{MacAddr, NicConfig, Paths, VmConfig};
use crate::network::{InterfaceAddress, NetworkError, NetworkManager};

/// The network side of the VM verbs.
pub trait Networks {
    /// A NIC on `network` for the definition `vm` (being created): `mac` if given and free,
    /// else a generated one.
    fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError>;
    /// The addresses of VM `vm`'s NICs, one per NIC in definition order; empty when they
    /// cannot be looked up (a listing does not fail for that).
    fn addresses(&self, vm: &str) -> Vec<InterfaceAddress>;
    /// Starts every autostart network that is not running; one result per network tried.
    fn autostart(&self) -> Vec<(String, Result<(), NetworkError>)>;
}

/// The networks of one vmux home.
pub struct HostNetworks {
    paths: Paths,
    manager: OnceCell<Result<NetworkManager, String>>,
}

impl HostNetworks {
    /// The networks under `paths` (nothing is opened yet).
    pub fn new(paths: Paths) -> HostNetworks {
        HostNetworks {
            paths,
            manager: OnceCell::new(),
        }
    }

    fn manager(&self) -> Result<&NetworkManager, NetworkError> {
        self.manager
            .get_or_init(|| NetworkManager::open(&self.paths).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| NetworkError::Invalid(message.clone()))
    }
}

impl Networks for HostNetworks {
    fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError> {
        self.manager()?.new_nic(vm, network, mac)
    }

    fn addresses(&self, vm: &str) -> Vec<InterfaceAddress> {
        match self.manager().and_then(|m| m.addresses(vm)) {
            Ok(addresses) => addresses,
            Err(e) => {
                log::debug!("no addresses for VM '{vm}': {e}");
                Vec::new()
            }
        }
    }

    fn autostart(&self) -> Vec<(String, Result<(), NetworkError>)> {
        match self.manager() {
            Ok(manager) => manager.autostart_all(),
            Err(e) => vec![("(networks)".into(), Err(e))],
        }
    }
}

#[cfg(test)]
pub mod fake {
    //! A stand-in for the host's networks in the verbs' unit tests.

    use super::*;
    use crate::network::AddressSource;
    use std::cell::RefCell;
    use std::net::Ipv4Addr;

    /// Knows the networks named in `defined`; every NIC of VM `vm` has address `10.0.0.<n>`
    /// for its index n + 10; `autostart` reports the `autostarted` results once.
    #[derive(Default)]
    pub struct FakeNetworks {
        /// Defined network names.
        pub defined: Vec<String>,
        /// What `autostart` returns (taken on the first call).
        pub autostarted: RefCell<Vec<(String, Result<(), NetworkError>)>>,
        /// VMs whose NICs have addresses, with their NIC count.
        pub addressed: Vec<(String, usize)>,
    }

    impl Networks for FakeNetworks {
        fn new_nic(
            &self,
            vm: &VmConfig,
            network: &str,
            mac: Option<MacAddr>,
        ) -> Result<NicConfig, NetworkError> {
            if !self.defined.iter().any(|n| n == network) {
                return Err(NetworkError::UnknownNetwork(network.into()));
            }
            let mac = mac.unwrap_or(MacAddr::with_vmux_prefix(vm.nics.len() as u32 + 1));
            Ok(NicConfig {
                network: network.into(),
                mac,
            })
        }

        fn addresses(&self, vm: &str) -> Vec<InterfaceAddress> {
            let count = self
                .addressed
                .iter()
                .find(|(name, _)| name == vm)
                .map_or(0, |(_, count)| *count);
            (0..count)
                .map(|n| InterfaceAddress {
                    network: "default".into(),
                    mac: MacAddr::with_vmux_prefix(n as u32 + 1),
                    tap: Some(format!("vm-{vm}-{n}")),
                    ip: Some(Ipv4Addr::new(10, 0, 0, 10 + n as u8)),
                    prefix: Some(24),
                    source: Some(AddressSource::Lease),
                })
                .collect()
        }

        fn autostart(&self) -> Vec<(String, Result<(), NetworkError>)> {
            self.autostarted.take()
        }
    }
}
