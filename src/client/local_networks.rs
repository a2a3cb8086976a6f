//! The real [`NetworkHost`]: a thin wrapper over `network::NetworkManager` for one vmux home
//! (`config::Paths`).

use super::network_api::{NetworkHost, NetworkSnapshot};
use crate::config::{NetworkConfig, NicConfig, Paths, VmConfig};
use crate::network::{NetworkError, NetworkManager};
use crate::tui::error_text::error_chain;

/// Guest networks under one vmux home.
pub struct LocalNetworks {
    paths: Paths,
}

impl LocalNetworks {
    /// Networks under `paths`.
    pub fn new(paths: Paths) -> LocalNetworks {
        LocalNetworks { paths }
    }

    /// The manager; opening it defines the `default` network on first use, as the CLI does.
    fn manager(&self) -> Result<NetworkManager, NetworkError> {
        NetworkManager::open(&self.paths)
    }
}

impl NetworkHost for LocalNetworks {
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError> {
        let manager = self.manager()?;
        let mut snapshot = NetworkSnapshot::default();
        for entry in manager.list() {
            match entry.map_err(NetworkError::from).and_then(|status| {
                let name = status.config.name;
                manager
                    .info(&name)
                    .map_err(|e| NetworkError::Invalid(format!("{name}: {}", error_chain(&e))))
            }) {
                Ok(info) => snapshot.networks.push(info),
                Err(e) => snapshot.broken.push(error_chain(&e)),
            }
        }
        // Without the routes the form checks what it can; `define` checks them again.
        snapshot.routes = crate::network::host::routes().unwrap_or_default();
        Ok(snapshot)
    }

    fn define(&self, config: &NetworkConfig) -> Result<(), NetworkError> {
        self.manager()?.define(config)
    }

    fn start(&self, name: &str) -> Result<(), NetworkError> {
        self.manager()?.start(name)
    }

    fn stop(&self, name: &str) -> Result<(), NetworkError> {
        self.manager()?.destroy(name)
    }

    fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError> {
        self.manager()?.undefine(name)
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError> {
        self.manager()?.set_autostart(name, enabled)
    }

    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError> {
        self.manager()?.unused_bridge_name(network)
    }

    fn new_nic(&self, vm: &VmConfig, network: &str) -> Result<NicConfig, NetworkError> {
        self.manager()?.new_nic(vm, network, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_network_is_listed_inactive() {
        let home = tempfile::tempdir().expect("tempdir");
        let networks = LocalNetworks::new(Paths::under(home.path()));
        let snapshot = networks.snapshot().expect("snapshot");
        let default = snapshot
            .networks
            .iter()
            .find(|n| n.config.name == "default")
            .expect("default network");
        assert!(default.active.is_none());
    }
}
