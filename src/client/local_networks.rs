//! The real [`NetworkHost`]: a thin wrapper over `network::NetworkManager` for one vmux home
//! (`config::Paths`).

use super::network_api::{AutostartResult, NetworkHost, NetworkList, NetworkSnapshot};
use crate::config::{MacAddr, NetworkConfig, NicConfig, Paths, VmConfig};
use crate::network::{InterfaceAddress, NetworkError, NetworkInfo, NetworkManager};
use crate::tui::error_text::error_chain;

/// Guest networks under one vmux home.
pub struct LocalNetworks {
    paths: Paths,
    /// What unit tests make the manager see as the host's interfaces and routes.
    #[cfg(test)]
    host: Option<crate::network::host::HostView>,
}

impl LocalNetworks {
    /// Networks under `paths`.
    pub fn new(paths: Paths) -> LocalNetworks {
        LocalNetworks {
            paths,
            #[cfg(test)]
            host: None,
        }
    }

    /// The same networks seeing `host` as the host's interfaces and routes (unit tests).
    #[cfg(test)]
    pub(crate) fn with_host(mut self, host: crate::network::host::HostView) -> LocalNetworks {
        self.host = Some(host);
        self
    }

    /// The manager; opening it defines the `default` network on first use, as the CLI does.
    fn manager(&self) -> Result<NetworkManager, NetworkError> {
        let manager = NetworkManager::open(&self.paths)?;
        #[cfg(test)]
        let manager = match &self.host {
            Some(host) => manager.with_host(host.clone()),
            None => manager,
        };
        Ok(manager)
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

    fn require_admin(&self) -> Result<(), NetworkError> {
        crate::network::caps::require_net_admin()
    }

    fn reconcile(&self) -> Result<Vec<String>, NetworkError> {
        self.manager()?.reconcile()
    }

    fn list(&self) -> Result<NetworkList, NetworkError> {
        let mut list = NetworkList::default();
        for entry in self.manager()?.list() {
            match entry {
                Ok(status) => list.networks.push(status),
                Err(broken) => list.broken.push(broken.to_string()),
            }
        }
        Ok(list)
    }

    fn info(&self, name: &str) -> Result<NetworkInfo, NetworkError> {
        self.manager()?.info(name)
    }

    fn autostart_all(&self) -> Vec<AutostartResult> {
        match self.manager() {
            Ok(manager) => manager
                .autostart_all()
                .into_iter()
                .map(|(name, result)| (name, result.map_err(|e| error_chain(&e))))
                .collect(),
            Err(e) => vec![("(networks)".into(), Err(error_chain(&e)))],
        }
    }

    fn addresses(&self, vm: &str) -> Result<Vec<InterfaceAddress>, NetworkError> {
        self.manager()?.addresses(vm)
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

    fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError> {
        self.manager()?.new_nic(vm, network, mac)
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
