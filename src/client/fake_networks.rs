//! In-memory [`NetworkHost`] for tests, benchmarks and screenshots: networks live in a map,
//! operations are instant, and they follow the real rules the front ends must explain (names
//! unique and valid, starting a network needs CAP_NET_ADMIN, a network running VMs use cannot
//! be stopped).
//!
//! Test hooks (`add`, `attach`, `set_capability`, `fail_next`, ...) let a test set the scene
//! or play the host misbehaving. tests/backend_contract.rs runs the same contracts against
//! this fake and the real [`super::LocalNetworks`].

use super::network_api::{AutostartResult, NetworkHost, NetworkList, NetworkSnapshot};
use crate::config::{MacAddr, NetworkConfig, NicConfig, VmConfig};
use crate::network::state::ActiveNetwork;
use crate::network::{
    AddressSource, AttachedNic, InterfaceAddress, NetworkError, NetworkInfo, NetworkStatus,
    leases::Lease,
};
use crate::tui::error_text::error_chain;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct NetworkState {
    networks: BTreeMap<String, NetworkInfo>,
    broken: Vec<String>,
    no_capability: bool,
    failures: HashMap<&'static str, String>,
    next_mac: u32,
    routes: Vec<crate::network::host::Route>,
}

/// Networks in memory. Starts empty; [`FakeNetworks::with_default`] adds vmux's `default`.
#[derive(Default)]
pub struct FakeNetworks {
    state: Mutex<NetworkState>,
}

impl FakeNetworks {
    /// No networks at all.
    pub fn new() -> FakeNetworks {
        FakeNetworks::default()
    }

    /// vmux's `default` nat network (192.168.123.0/24), defined and inactive.
    pub fn with_default() -> FakeNetworks {
        let networks = FakeNetworks::new();
        networks.add(NetworkConfig::default_network(), false);
        networks
    }

    /// Adds a network definition, started or not.
    pub fn add(&self, config: NetworkConfig, active: bool) {
        let info = NetworkInfo {
            active: active.then(|| active_record(&config)),
            config: config.clone(),
            leases: Vec::new(),
            attached: Vec::new(),
        };
        lock(&self.state).networks.insert(config.name, info);
    }

    /// The host routes `define` (and the new-network form) check subnets against.
    pub fn set_routes(&self, routes: Vec<crate::network::host::Route>) {
        lock(&self.state).routes = routes;
    }

    /// Without CAP_NET_ADMIN, start and stop fail as the real ones do.
    pub fn set_capability(&self, present: bool) {
        lock(&self.state).no_capability = !present;
    }

    /// A VM NIC on `network` (with a TAP when `running`) holding `ip` by DHCP lease.
    pub fn attach(
        &self,
        network: &str,
        vm: &str,
        mac: MacAddr,
        ip: Option<Ipv4Addr>,
        running: bool,
    ) {
        let mut state = lock(&self.state);
        let Some(info) = state.networks.get_mut(network) else {
            return;
        };
        if let Some(ip) = ip {
            info.leases.push(Lease {
                expires: None,
                mac,
                ip,
                hostname: Some(vm.to_string()),
            });
        }
        let index = info.attached.iter().filter(|a| a.vm == vm).count();
        info.attached.push(AttachedNic {
            vm: vm.to_string(),
            mac,
            tap: running.then(|| format!("vmux-{vm}-{index}")),
            ip,
        });
    }

    /// Adds a broken network definition, shown as an error row.
    pub fn add_broken(&self, message: &str) {
        lock(&self.state).broken.push(message.to_string());
    }

    /// The next call of `op` (`"define"`, `"start"`, `"stop"`, `"undefine"`, `"nic"`) fails
    /// with `message`.
    pub fn fail_next(&self, op: &'static str, message: &str) {
        lock(&self.state).failures.insert(op, message.to_string());
    }

    /// The network named `name`.
    pub fn network(&self, name: &str) -> Option<NetworkInfo> {
        lock(&self.state).networks.get(name).cloned()
    }

    fn failure(&self, op: &'static str) -> Result<(), NetworkError> {
        match lock(&self.state).failures.remove(op) {
            Some(message) => Err(NetworkError::Invalid(message)),
            None => Ok(()),
        }
    }

    fn privileged(&self, op: &'static str) -> Result<MutexGuard<'_, NetworkState>, NetworkError> {
        self.failure(op)?;
        let state = lock(&self.state);
        if state.no_capability {
            return Err(NetworkError::MissingCapability);
        }
        Ok(state)
    }
}

fn active_record(config: &NetworkConfig) -> ActiveNetwork {
    ActiveNetwork {
        guard_table: None,
        mode: config.mode,
        bridge: config.bridge.clone(),
        subnet: config.subnet,
        nft_table: (config.mode == crate::config::NetworkMode::Nat)
            .then(|| crate::network::table_name(&config.name)),
        dnsmasq: None,
        started_at: 0,
    }
}

impl NetworkHost for FakeNetworks {
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError> {
        self.failure("snapshot")?;
        let state = lock(&self.state);
        Ok(NetworkSnapshot {
            networks: state.networks.values().cloned().collect(),
            broken: state.broken.clone(),
            routes: state.routes.clone(),
        })
    }

    fn define(&self, config: &NetworkConfig) -> Result<(), NetworkError> {
        self.failure("define")?;
        config.validate().map_err(NetworkError::Invalid)?;
        let mut state = lock(&self.state);
        if state.networks.contains_key(&config.name) {
            return Err(NetworkError::NetworkExists(config.name.clone()));
        }
        if let Some(other) = state
            .networks
            .values()
            .find(|n| n.config.bridge == config.bridge)
        {
            return Err(NetworkError::BridgeTaken {
                bridge: config.bridge.clone(),
                other: other.config.name.clone(),
            });
        }
        if let Some(subnet) = config.subnet {
            let others = state
                .networks
                .values()
                .filter_map(|n| Some((n.config.name.as_str(), n.config.subnet?)));
            if let Some(conflict) = crate::network::subnet_conflict(subnet, others, &state.routes) {
                return Err(NetworkError::SubnetTaken {
                    network: config.name.clone(),
                    subnet,
                    conflict,
                });
            }
        }
        state.networks.insert(
            config.name.clone(),
            NetworkInfo {
                config: config.clone(),
                active: None,
                leases: Vec::new(),
                attached: Vec::new(),
            },
        );
        Ok(())
    }

    fn start(&self, name: &str) -> Result<(), NetworkError> {
        let mut state = self.privileged("start")?;
        let info = state
            .networks
            .get_mut(name)
            .ok_or_else(|| NetworkError::UnknownNetwork(name.to_string()))?;
        if info.active.is_some() {
            return Err(NetworkError::AlreadyActive(name.to_string()));
        }
        info.active = Some(active_record(&info.config));
        Ok(())
    }

    fn stop(&self, name: &str) -> Result<(), NetworkError> {
        let mut state = self.privileged("stop")?;
        let info = state
            .networks
            .get_mut(name)
            .ok_or_else(|| NetworkError::UnknownNetwork(name.to_string()))?;
        if info.active.is_none() {
            return Err(NetworkError::NotActive(name.to_string()));
        }
        let mut running: Vec<String> = info
            .attached
            .iter()
            .filter(|a| a.tap.is_some())
            .map(|a| a.vm.clone())
            .collect();
        running.sort();
        running.dedup();
        if !running.is_empty() {
            return Err(NetworkError::InUse {
                network: name.to_string(),
                vms: running,
            });
        }
        info.active = None;
        info.leases.clear();
        Ok(())
    }

    fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError> {
        self.failure("undefine")?;
        let mut state = lock(&self.state);
        let info = state
            .networks
            .get(name)
            .ok_or_else(|| NetworkError::UnknownNetwork(name.to_string()))?;
        if info.active.is_some() {
            return Err(NetworkError::StillActive(name.to_string()));
        }
        let mut users: Vec<String> = info.attached.iter().map(|a| a.vm.clone()).collect();
        users.dedup();
        state.networks.remove(name);
        Ok(if users.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "VM(s) {} still have a NIC on network '{name}' and will not start until it is defined again",
                users.join(", ")
            )]
        })
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError> {
        self.failure("autostart")?;
        let mut state = lock(&self.state);
        let info = state
            .networks
            .get_mut(name)
            .ok_or_else(|| NetworkError::UnknownNetwork(name.to_string()))?;
        info.config.autostart = enabled;
        Ok(())
    }

    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError> {
        let state = lock(&self.state);
        let taken = |name: &str| state.networks.values().any(|n| n.config.bridge == name);
        (0..64)
            .map(|salt| {
                let base: String = format!("vmux-{network}").chars().take(13).collect();
                if salt == 0 {
                    base
                } else {
                    format!("{base}{salt}")
                }
            })
            .find(|name| !taken(name))
            .ok_or_else(|| NetworkError::Invalid("no free bridge name".into()))
    }

    fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError> {
        self.failure("nic")?;
        let mut state = lock(&self.state);
        if !state.networks.contains_key(network) {
            return Err(NetworkError::UnknownNetwork(network.to_string()));
        }
        let mut used: Vec<(MacAddr, String)> = state
            .networks
            .values()
            .flat_map(|info| info.attached.iter())
            .filter(|nic| nic.vm != vm.name)
            .map(|nic| (nic.mac, nic.vm.clone()))
            .collect();
        used.extend(vm.nics.iter().map(|n| (n.mac, vm.name.clone())));
        if let Some(mac) = mac {
            if let Some((_, owner)) = used.iter().find(|(m, _)| *m == mac) {
                return Err(NetworkError::MacInUse {
                    mac,
                    vm: owner.clone(),
                });
            }
            return Ok(NicConfig {
                network: network.to_string(),
                mac,
            });
        }
        loop {
            state.next_mac += 1;
            let mac = MacAddr::with_vmux_prefix(state.next_mac);
            if !used.iter().any(|(m, _)| *m == mac) {
                return Ok(NicConfig {
                    network: network.to_string(),
                    mac,
                });
            }
        }
    }

    fn require_admin(&self) -> Result<(), NetworkError> {
        self.privileged("admin").map(drop)
    }

    fn reconcile(&self) -> Result<Vec<String>, NetworkError> {
        // Nothing outside the fake's own state can drift from it: there is nothing to repair.
        self.failure("reconcile").map(|()| Vec::new())
    }

    fn list(&self) -> Result<NetworkList, NetworkError> {
        self.failure("list")?;
        let state = lock(&self.state);
        Ok(NetworkList {
            networks: state
                .networks
                .values()
                .map(|info| NetworkStatus {
                    config: info.config.clone(),
                    active: info.active.is_some(),
                })
                .collect(),
            broken: state.broken.clone(),
        })
    }

    fn info(&self, name: &str) -> Result<NetworkInfo, NetworkError> {
        self.failure("info")?;
        self.network(name)
            .ok_or_else(|| NetworkError::UnknownNetwork(name.to_string()))
    }

    fn autostart_all(&self) -> Vec<AutostartResult> {
        let waiting: Vec<String> = lock(&self.state)
            .networks
            .values()
            .filter(|info| info.config.autostart && info.active.is_none())
            .map(|info| info.config.name.clone())
            .collect();
        waiting
            .into_iter()
            .map(|name| {
                let result = self.start(&name).map_err(|e| error_chain(&e));
                (name, result)
            })
            .collect()
    }

    fn addresses(&self, vm: &str) -> Result<Vec<InterfaceAddress>, NetworkError> {
        self.failure("addresses")?;
        let state = lock(&self.state);
        Ok(state
            .networks
            .values()
            .flat_map(|info| {
                info.attached
                    .iter()
                    .filter(|nic| nic.vm == vm)
                    .map(|nic| InterfaceAddress {
                        network: info.config.name.clone(),
                        mac: nic.mac,
                        tap: nic.tap.clone(),
                        ip: nic.ip,
                        prefix: nic.ip.and(info.config.subnet.map(|net| net.prefix())),
                        source: nic.ip.map(|_| AddressSource::Lease),
                    })
            })
            .collect())
    }
}
