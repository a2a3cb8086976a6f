//! [`NetworkManager`]: the network verbs (define, start, destroy, undefine, autostart, list,
//! info), NIC attach for vmd and guest address lookup, over the definition store, the state
//! directory and the host commands.
//!
//! Every change happens under the state lock. A start brings the pieces up in order (bridge,
//! address, nft table, anti-spoofing table, dnsmasq) while recording each in an
//! [`ActiveNetwork`]; if any step fails, that record drives the same teardown a stop uses, so a
//! failed start leaves nothing behind. [`NetworkManager::reconcile`] runs before every CLI
//! command: it drops records of networks whose bridge vanished, restores a flushed nft or
//! anti-spoofing table, restarts a dead dnsmasq and removes TAP records of VMs whose vmd is
//! gone, reporting each repair in words.

use super::host::{self, HostView, ProcessId, ip};
use super::leases::{self, Lease};
use super::names::{bridge_mac, bridge_name};
use super::state::{ActiveNetwork, StateDir};
use super::store::NetworkStore;
use super::tap::{self, Tap, TapRecord};
use super::{NetworkError, caps, dnsmasq, guard, nft, subnet_conflict};
use crate::config::{
    Addressing, DefinitionError, Ipv4Net, MacAddr, NetworkConfig, NetworkMode, NicConfig, Paths,
    Store, VmConfig,
};
use serde::{Deserialize, Serialize};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many random MACs are tried before giving up (each collides with probability
/// `defined NICs / 2^24`).
const MAC_ATTEMPTS: u32 = 64;

/// A network definition and whether it is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// The definition.
    pub config: NetworkConfig,
    /// Whether it is started.
    pub active: bool,
}

/// Everything `net-info` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The definition.
    pub config: NetworkConfig,
    /// What runs for it, when started.
    pub active: Option<ActiveNetwork>,
    /// Current DHCP leases (nat/isolated).
    pub leases: Vec<Lease>,
    /// NICs of VM definitions on this network.
    pub attached: Vec<AttachedNic>,
}

/// A VM NIC on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedNic {
    /// The VM.
    pub vm: String,
    /// The NIC's MAC.
    pub mac: MacAddr,
    /// Its TAP while the VM runs.
    pub tap: Option<String>,
    /// Its leased address, if any.
    pub ip: Option<Ipv4Addr>,
}

/// Where a guest address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    /// The network's dnsmasq lease file.
    Lease,
    /// The host's neighbour (ARP) table on the bridge.
    Arp,
}

/// One guest interface's address, for `domifaddr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// The network the NIC is on.
    pub network: String,
    /// The NIC's MAC.
    pub mac: MacAddr,
    /// Its TAP while the VM runs.
    pub tap: Option<String>,
    /// The address, when known.
    pub ip: Option<Ipv4Addr>,
    /// The prefix length, when known (leases on vmux subnets).
    pub prefix: Option<u8>,
    /// Where the address came from.
    pub source: Option<AddressSource>,
}

/// The network verbs over one vmux home.
#[derive(Debug, Clone)]
pub struct NetworkManager {
    store: NetworkStore,
    state: StateDir,
    vms: Store,
    /// The host's interfaces and routes, as far as picking names and subnets goes.
    host: HostView,
}

impl NetworkManager {
    /// A manager over `paths`; defines the `default` network on first use.
    pub fn open(paths: &Paths) -> Result<NetworkManager, NetworkError> {
        let manager = NetworkManager {
            store: NetworkStore::new(paths),
            state: StateDir::new(paths),
            vms: Store::new(paths.clone()),
            host: HostView::Live,
        };
        manager.store.ensure_default()?;
        Ok(manager)
    }

    /// The same manager seeing `host` as the host's interfaces and routes (unit tests).
    #[cfg(test)]
    pub(crate) fn with_host(mut self, host: HostView) -> NetworkManager {
        self.host = host;
        self
    }

    /// The definition store.
    pub fn store(&self) -> &NetworkStore {
        &self.store
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Brings recorded state in line with the host (see the module docs) and returns one line
    /// per repair or problem found.
    pub fn reconcile(&self) -> Result<Vec<String>, NetworkError> {
        let _lock = self.state.lock()?;
        let mut notes = tap::clean_stale(&self.state)?;
        for name in self.state.started() {
            notes.extend(self.check_started(&name)?);
        }
        Ok(notes)
    }

    /// Every definition with its state; unusable files come back as errors in place.
    pub fn list(&self) -> Vec<Result<NetworkStatus, DefinitionError>> {
        self.store
            .list()
            .into_iter()
            .map(|cfg| {
                let cfg = cfg?;
                let active = self.is_active(&cfg.name);
                Ok(NetworkStatus {
                    config: cfg,
                    active,
                })
            })
            .collect()
    }

    /// Whether `network` is started.
    pub fn is_active(&self, network: &str) -> bool {
        self.state.load(network).ok().flatten().is_some()
    }

    /// A bridge name for a new nat/isolated network `network` that no definition uses and no
    /// host interface has.
    pub fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError> {
        let defined = self.store.valid();
        let links = self.host.links()?;
        (0..64)
            .map(|salt| bridge_name(network, salt))
            .find(|name| {
                !defined.iter().any(|d| &d.bridge == name)
                    && !links.iter().any(|l| &l.ifname == name)
            })
            .ok_or_else(|| {
                NetworkError::Invalid(format!(
                    "no free bridge name for network '{network}'; give one with --bridge"
                ))
            })
    }

    /// Saves a new definition; refuses a taken name or a bridge another definition uses.
    pub fn define(&self, cfg: &NetworkConfig) -> Result<(), NetworkError> {
        let _lock = self.state.lock()?;
        cfg.validate().map_err(NetworkError::Invalid)?;
        if self.store.exists(&cfg.name) {
            return Err(NetworkError::NetworkExists(cfg.name.clone()));
        }
        let clash = self.store.valid().into_iter().find(|other| {
            other.bridge == cfg.bridge && (cfg.mode.is_managed() || other.mode.is_managed())
        });
        if let Some(other) = clash {
            return Err(NetworkError::BridgeTaken {
                bridge: cfg.bridge.clone(),
                other: other.name,
            });
        }
        if let Some(subnet) = cfg.subnet {
            let defined = self.store.valid();
            let others = defined
                .iter()
                .filter(|other| other.name != cfg.name)
                .filter_map(|other| Some((other.name.as_str(), other.subnet?)));
            if let Some(conflict) = subnet_conflict(subnet, others, &self.host.routes()?) {
                return Err(NetworkError::SubnetTaken {
                    network: cfg.name.clone(),
                    subnet,
                    conflict,
                });
            }
        }
        self.store.save(cfg)
    }

    /// Deletes a stopped network's definition; returns a note naming VM definitions that
    /// still refer to it.
    pub fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError> {
        let _lock = self.state.lock()?;
        if !self.store.exists(name) {
            return Err(NetworkError::UnknownNetwork(name.to_string()));
        }
        in_use(name, &tap::live_records(&self.state))?;
        if self.state.load(name)?.is_some() {
            return Err(NetworkError::StillActive(name.to_string()));
        }
        self.store.remove(name)?;
        let users: Vec<String> = self
            .vm_definitions()
            .into_iter()
            .filter(|vm| vm.nics.iter().any(|n| n.network == name))
            .map(|vm| vm.name)
            .collect();
        Ok(if users.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "VM(s) {} still have a NIC on network '{name}' and will not start until it is defined again",
                users.join(", ")
            )]
        })
    }

    /// Sets or clears a network's autostart flag.
    pub fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError> {
        let _lock = self.state.lock()?;
        let mut cfg = self.store.load(name)?;
        cfg.autostart = enabled;
        self.store.save(&cfg)
    }

    /// Starts network `name`. On failure everything this start created is removed again.
    pub fn start(&self, name: &str) -> Result<(), NetworkError> {
        caps::require_net_admin()?;
        let _lock = self.state.lock()?;
        let cfg = self.store.load(name)?;
        for note in self.check_started(name)? {
            log::warn!("{note}");
        }
        if self.state.load(name)?.is_some() {
            return Err(NetworkError::AlreadyActive(name.to_string()));
        }
        match cfg.addressing() {
            Some(addressing) if cfg.mode.is_managed() => self.start_managed(&cfg, &addressing),
            _ => self.start_bridged(&cfg),
        }
    }

    /// Stops network `name`: dnsmasq, nft table and bridge go. Refused while running VMs
    /// have NICs on it.
    pub fn destroy(&self, name: &str) -> Result<(), NetworkError> {
        caps::require_net_admin()?;
        let _lock = self.state.lock()?;
        let Some(active) = self.state.load(name)? else {
            if !self.store.exists(name) {
                return Err(NetworkError::UnknownNetwork(name.to_string()));
            }
            return Err(NetworkError::NotActive(name.to_string()));
        };
        in_use(name, &tap::live_records(&self.state))?;
        self.teardown(name, &active)?;
        self.state.clear(name)
    }

    /// Starts every autostart network that is not active; one result per network tried.
    pub fn autostart_all(&self) -> Vec<(String, Result<(), NetworkError>)> {
        self.store
            .valid()
            .into_iter()
            .filter(|cfg| cfg.autostart && !self.is_active(&cfg.name))
            .map(|cfg| {
                let result = self.start(&cfg.name);
                (cfg.name, result)
            })
            .collect()
    }

    /// What `net-info` shows about `name`.
    pub fn info(&self, name: &str) -> Result<NetworkInfo, NetworkError> {
        let config = self.store.load(name)?;
        let active = self.state.load(name)?;
        let leases = if config.mode.is_managed() {
            leases::read(&self.state.lease_file(name), now())?
        } else {
            Vec::new()
        };
        let live = tap::live_records(&self.state);
        let attached = self
            .vm_definitions()
            .into_iter()
            .flat_map(|vm| {
                vm.nics
                    .into_iter()
                    .filter(|nic| nic.network == name)
                    .map(|nic| AttachedNic {
                        tap: tap_of(&live, &vm.name, nic.mac),
                        ip: leases.iter().find(|l| l.mac == nic.mac).map(|l| l.ip),
                        vm: vm.name.clone(),
                        mac: nic.mac,
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(NetworkInfo {
            config,
            active,
            leases,
            attached,
        })
    }

    /// A NIC on `network` for the VM definition `vm` (being created or edited): `mac` if
    /// given and not used by another VM, else a fresh 52:54:00 MAC unused on this host.
    pub fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError> {
        if !self.store.exists(network) {
            return Err(NetworkError::UnknownNetwork(network.to_string()));
        }
        let mut used: Vec<(MacAddr, String)> = self
            .vm_definitions()
            .into_iter()
            .filter(|other| other.name != vm.name)
            .flat_map(|other| {
                let name = other.name;
                other.nics.into_iter().map(move |n| (n.mac, name.clone()))
            })
            .collect();
        used.extend(vm.nics.iter().map(|n| (n.mac, vm.name.clone())));
        let mac = match mac {
            Some(mac) => {
                if let Some((_, owner)) = used.iter().find(|(m, _)| *m == mac) {
                    return Err(NetworkError::MacInUse {
                        mac,
                        vm: owner.clone(),
                    });
                }
                mac
            }
            None => {
                let taken: Vec<MacAddr> = used.iter().map(|(m, _)| *m).collect();
                random_mac(&taken).ok_or(NetworkError::NoFreeMac)?
            }
        };
        let nic = NicConfig {
            network: network.to_string(),
            mac,
        };
        nic.validate().map_err(NetworkError::Invalid)?;
        Ok(nic)
    }

    /// Creates the TAPs of `vm`'s NICs on their (started) networks, for vmd at VM start. The
    /// TAPs live as long as the returned values; records of crashed VMs are cleaned first.
    pub fn attach_vm(&self, vm: &VmConfig) -> Result<Vec<Tap>, NetworkError> {
        caps::require_net_admin()?;
        let _lock = self.state.lock()?;
        for note in tap::clean_stale(&self.state)? {
            log::info!("{note}");
        }
        let mut taps = Vec::with_capacity(vm.nics.len());
        for (index, nic) in vm.nics.iter().enumerate() {
            let cfg = self.store.load(&nic.network)?;
            for note in self.check_started(&cfg.name)? {
                log::warn!("{note}");
            }
            let active = self
                .state
                .load(&cfg.name)?
                .ok_or_else(|| NetworkError::NotActive(cfg.name.clone()))?;
            let table = active
                .guard_table
                .clone()
                .ok_or_else(|| NetworkError::NotActive(cfg.name.clone()))?;
            let leased: Vec<Ipv4Addr> = self
                .guard_leases(&cfg.name, active.mode)
                .into_iter()
                .filter(|(mac, _)| *mac == nic.mac)
                .map(|(_, ip)| ip)
                .collect();
            let guard = tap::Guard {
                table,
                addressed: active.mode.is_managed(),
                leases: leased,
            };
            taps.push(tap::create(
                &self.state,
                &vm.name,
                index,
                nic,
                &active.bridge,
                &guard,
            )?);
        }
        Ok(taps)
    }

    /// The addresses of VM `vm`'s NICs: from the lease file on vmux networks, from the host's
    /// neighbour table on bridge-mode networks.
    pub fn addresses(&self, vm: &str) -> Result<Vec<InterfaceAddress>, NetworkError> {
        let vm = self.vms.load(vm)?;
        let live = tap::live_records(&self.state);
        Ok(vm
            .nics
            .iter()
            .map(|nic| {
                let mut found = InterfaceAddress {
                    network: nic.network.clone(),
                    mac: nic.mac,
                    tap: tap_of(&live, &vm.name, nic.mac),
                    ip: None,
                    prefix: None,
                    source: None,
                };
                let Ok(cfg) = self.store.load(&nic.network) else {
                    return found;
                };
                if let Some(addressing) = cfg.addressing() {
                    let leases =
                        leases::read(&self.state.lease_file(&cfg.name), now()).unwrap_or_default();
                    if let Some(lease) = leases.iter().find(|l| l.mac == nic.mac) {
                        found.ip = Some(lease.ip);
                        found.prefix = Some(addressing.subnet.prefix());
                        found.source = Some(AddressSource::Lease);
                    }
                } else {
                    let mac = nic.mac.to_string();
                    let neighbours = host::neighbours(&cfg.bridge).unwrap_or_default();
                    if let Some((_, ip)) = neighbours.iter().find(|(m, _)| *m == mac) {
                        found.ip = Some(*ip);
                        found.source = Some(AddressSource::Arp);
                    }
                }
                found
            })
            .collect())
    }

    fn vm_definitions(&self) -> Vec<VmConfig> {
        self.vms.list().into_iter().filter_map(Result::ok).collect()
    }

    fn start_bridged(&self, cfg: &NetworkConfig) -> Result<(), NetworkError> {
        let problem = match host::link(&cfg.bridge)? {
            None => Some("does not exist"),
            Some(link) if !link.is_bridge() => Some("is not a bridge"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(NetworkError::BridgeMissing {
                network: cfg.name.clone(),
                bridge: cfg.bridge.clone(),
                problem,
            });
        }
        let table = guard::table_name(&cfg.name);
        guard::apply(&table, false, &[], &[])?;
        let active = ActiveNetwork {
            mode: cfg.mode,
            bridge: cfg.bridge.clone(),
            subnet: None,
            nft_table: None,
            dnsmasq: None,
            guard_table: Some(table.clone()),
            started_at: now(),
        };
        self.state.save(&cfg.name, &active).inspect_err(|_| {
            let _ = guard::delete(&table);
        })
    }

    fn start_managed(
        &self,
        cfg: &NetworkConfig,
        addressing: &Addressing,
    ) -> Result<(), NetworkError> {
        self.check_overlap(&cfg.name, addressing.subnet)?;
        if host::link(&cfg.bridge)?.is_some() {
            return Err(NetworkError::InterfaceExists {
                network: cfg.name.clone(),
                name: cfg.bridge.clone(),
            });
        }
        self.state.ensure(&cfg.name)?;
        let mut active = ActiveNetwork {
            mode: cfg.mode,
            bridge: cfg.bridge.clone(),
            subnet: Some(addressing.subnet),
            nft_table: None,
            dnsmasq: None,
            guard_table: None,
            started_at: now(),
        };
        let result = self
            .bring_up(cfg, addressing, &mut active)
            .and_then(|()| self.state.save(&cfg.name, &active));
        if let Err(error) = result {
            if let Err(cleanup) = self.teardown(&cfg.name, &active) {
                log::warn!(
                    "cleaning up after the failed start of '{}': {cleanup}",
                    cfg.name
                );
            }
            return Err(error);
        }
        Ok(())
    }

    /// The start steps; each fills in `active` as soon as there is something to undo.
    fn bring_up(
        &self,
        cfg: &NetworkConfig,
        addressing: &Addressing,
        active: &mut ActiveNetwork,
    ) -> Result<(), NetworkError> {
        let bridge = cfg.bridge.as_str();
        let Addressing {
            subnet, gateway, ..
        } = *addressing;
        // An explicit address keeps the bridge's MAC fixed; otherwise it would follow the
        // lowest MAC among its ports and change under the guests as VMs come and go.
        let mac = bridge_mac(&cfg.name);
        ip(&format!(
            "link add name {bridge} address {mac} type bridge stp_state 0 forward_delay 0"
        ))?;
        ip(&format!(
            "address add {gateway}/{} broadcast {} dev {bridge}",
            subnet.prefix(),
            subnet.broadcast()
        ))?;
        ip(&format!("link set dev {bridge} up"))?;
        if cfg.mode == NetworkMode::Nat {
            host::enable_ip_forward()?;
            let table = nft::table_name(&cfg.name);
            active.nft_table = Some(table.clone());
            nft::apply(&table, bridge, subnet)?;
        }
        // Before dnsmasq, whose lease-change script fills it; no TAP can be on a new bridge.
        let table = guard::table_name(&cfg.name);
        active.guard_table = Some(table.clone());
        guard::apply(&table, true, &[], &self.guard_leases(&cfg.name, cfg.mode))?;
        active.dnsmasq = Some(self.start_dnsmasq(cfg, addressing)?);
        Ok(())
    }

    /// The (MAC, address) pairs of `network`'s current leases (none for bridge mode).
    fn guard_leases(&self, network: &str, mode: NetworkMode) -> Vec<(MacAddr, Ipv4Addr)> {
        if !mode.is_managed() {
            return Vec::new();
        }
        leases::read(&self.state.lease_file(network), now())
            .unwrap_or_default()
            .into_iter()
            .map(|lease| (lease.mac, lease.ip))
            .collect()
    }

    /// The (TAP, MAC) pairs of `network`'s running VMs.
    fn live_ports(&self, network: &str) -> Vec<(String, MacAddr)> {
        tap::live_records(&self.state)
            .into_iter()
            .filter(|record| record.network == network)
            .map(|record| (record.tap, record.mac))
            .collect()
    }

    /// Loads `network`'s anti-spoofing table with everything it should hold now: the TAPs of
    /// its running VMs and its leases. For a table that went missing (a firewall reload) or a
    /// network started by a vmux without one.
    fn restore_guard(&self, network: &str, active: &ActiveNetwork) -> Result<String, NetworkError> {
        let table = guard::table_name(network);
        let ports = self.live_ports(network);
        let leases = self.guard_leases(network, active.mode);
        guard::apply(&table, active.mode.is_managed(), &ports, &leases)?;
        Ok(table)
    }

    fn start_dnsmasq(
        &self,
        cfg: &NetworkConfig,
        addressing: &Addressing,
    ) -> Result<ProcessId, NetworkError> {
        self.state.ensure(&cfg.name)?;
        let pid_file = self.state.pid_file(&cfg.name);
        let lease_file = self.state.lease_file(&cfg.name);
        let lease_hook = self.state.lease_hook(&cfg.name);
        let hook = guard::lease_hook(&guard::table_name(&cfg.name), &guard::nft_path()?);
        write_script(&lease_hook, &hook)?;
        let run_as = dnsmasq::unprivileged_user();
        dnsmasq::prepare_lease_file(&lease_file, run_as.as_ref())?;
        let files = dnsmasq::Files {
            pid_file: &pid_file,
            lease_file: &lease_file,
            lease_hook: &lease_hook,
        };
        let args = dnsmasq::args(&cfg.bridge, cfg.mode, addressing, &files, run_as.as_ref());
        dnsmasq::start(&cfg.name, &args, &pid_file)
    }

    /// Refuses a subnet that overlaps a started vmux network or a host route.
    fn check_overlap(&self, name: &str, subnet: Ipv4Net) -> Result<(), NetworkError> {
        let overlap = |conflict: String| NetworkError::SubnetOverlap {
            network: name.to_string(),
            subnet,
            conflict,
        };
        let mut started = Vec::new();
        for other in self.state.started().into_iter().filter(|n| n != name) {
            if let Some(theirs) = self.state.load(&other)?.and_then(|a| a.subnet) {
                started.push((other, theirs));
            }
        }
        let others = started.iter().map(|(n, s)| (n.as_str(), *s));
        match subnet_conflict(subnet, others, &self.host.routes()?) {
            Some(conflict) => Err(overlap(conflict)),
            None => Ok(()),
        }
    }

    /// Stops what `active` records: dnsmasq, the nft table, the bridge vmux made. Keeps going
    /// after a failure and returns the first.
    fn teardown(&self, name: &str, active: &ActiveNetwork) -> Result<(), NetworkError> {
        let mut first_error = None;
        let mut note = |result: Result<(), NetworkError>| {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        };
        if let Some(process) = &active.dnsmasq {
            note(dnsmasq::stop(process));
        }
        let _ = std::fs::remove_file(self.state.pid_file(name));
        if let Some(table) = &active.nft_table {
            note(nft::delete(table));
        }
        if let Some(table) = &active.guard_table {
            note(guard::delete(table));
        }
        if active.mode.is_managed() {
            let ours = host::link(&active.bridge).map(|l| l.is_some_and(|l| l.is_bridge()));
            note(match ours {
                Ok(true) => ip(&format!("link delete dev {}", active.bridge)).map(drop),
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            });
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Checks one started network against the host and repairs what it can; the caller holds
    /// the lock.
    fn check_started(&self, name: &str) -> Result<Vec<String>, NetworkError> {
        let Some(mut active) = self.state.load(name)? else {
            return Ok(Vec::new());
        };
        if !host::link(&active.bridge)?.is_some_and(|l| l.is_bridge()) {
            self.teardown(name, &active)?;
            self.state.clear(name)?;
            return Ok(vec![format!(
                "network '{name}' is no longer active: its bridge {} is gone (host reboot, or removed by hand); start it again with `vmux net-start {name}`",
                active.bridge
            )]);
        }
        let mut notes = Vec::new();
        let guard_missing = match &active.guard_table {
            Some(table) => !guard::exists(table)?,
            None => true,
        };
        // Started by a vmux without anti-spoofing: its dnsmasq has no lease hook to fill the
        // table, so it is restarted below with one.
        let without_hook = active.guard_table.is_none() && active.mode.is_managed();
        if let Some(table) = active.guard_table.as_ref().filter(|_| !guard_missing) {
            let live = self.live_ports(name);
            for tap in guard::sync_ports(table, &live)? {
                log::info!("network '{name}': TAP {tap} is gone; took it out of {table}");
            }
        }
        if guard_missing {
            let table = self.restore_guard(name, &active)?;
            notes.push(match active.guard_table.replace(table.clone()) {
                Some(_) => format!(
                    "network '{name}': anti-spoofing table {table} had been removed (firewall reload?); restored it"
                ),
                None => format!(
                    "network '{name}': added the anti-spoofing table {table} (each VM may now send only from its own MAC{})",
                    if active.mode.is_managed() { " and leased addresses" } else { "" }
                ),
            });
            self.state.save(name, &active)?;
        }
        if !active.mode.is_managed() {
            return Ok(notes);
        }
        let cfg = match self.store.load(name) {
            Ok(cfg) => cfg,
            Err(e) => {
                notes.push(format!(
                    "network '{name}' is active but its definition cannot be read ({e}); fix it or stop the network with `vmux net-destroy {name}`"
                ));
                return Ok(notes);
            }
        };
        if without_hook && let Some(old) = active.dnsmasq.take() {
            dnsmasq::stop(&old)?;
            let process = cfg
                .addressing()
                .ok_or_else(|| NetworkError::Invalid(format!("network '{name}' has no subnet")))
                .and_then(|addressing| self.start_dnsmasq(&cfg, &addressing))?;
            active.dnsmasq = Some(process);
            self.state.save(name, &active)?;
            notes.push(format!(
                "network '{name}': restarted dnsmasq (pid {} is now {}) with the lease hook the anti-spoofing table needs",
                old.pid, process.pid
            ));
        }
        if let (Some(table), Some(subnet)) = (&active.nft_table, active.subnet)
            && !nft::exists(table)?
        {
            nft::apply(table, &active.bridge, subnet)?;
            notes.push(format!(
                "network '{name}': nft table {table} had been removed (firewall reload?); restored it"
            ));
        }
        if !active.dnsmasq.as_ref().is_some_and(dnsmasq::is_running) {
            let before = active
                .dnsmasq
                .map(|p| format!(" (pid {})", p.pid))
                .unwrap_or_default();
            let restarted = cfg
                .addressing()
                .ok_or_else(|| NetworkError::Invalid(format!("network '{name}' has no subnet")))
                .and_then(|addressing| self.start_dnsmasq(&cfg, &addressing));
            match restarted {
                Ok(process) => {
                    active.dnsmasq = Some(process);
                    self.state.save(name, &active)?;
                    notes.push(format!(
                        "network '{name}': dnsmasq{before} had stopped; restarted it (pid {})",
                        process.pid
                    ));
                }
                Err(e) => notes.push(format!(
                    "network '{name}': dnsmasq{before} has stopped and could not be restarted: {e}; guests get no DHCP or DNS until `vmux net-destroy {name}` and `vmux net-start {name}`"
                )),
            }
        }
        Ok(notes)
    }
}

/// Writes the executable script `path` (mode 0700) with `text`, replacing any old one.
fn write_script(path: &std::path::Path, text: &str) -> Result<(), NetworkError> {
    use std::os::unix::fs::PermissionsExt;
    let io_error = |source| NetworkError::Io {
        path: path.to_path_buf(),
        source,
    };
    crate::config::write_atomic(path, text.as_bytes()).map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io_error)
}

/// Refuses when running VMs (live TAP records) have NICs on `network`, naming them.
fn in_use(network: &str, live: &[TapRecord]) -> Result<(), NetworkError> {
    let mut vms: Vec<String> = live
        .iter()
        .filter(|r| r.network == network)
        .map(|r| r.vm.clone())
        .collect();
    vms.sort();
    vms.dedup();
    if vms.is_empty() {
        return Ok(());
    }
    Err(NetworkError::InUse {
        network: network.to_string(),
        vms,
    })
}

/// The TAP of VM `vm`'s NIC `mac`, when the VM runs.
fn tap_of(live: &[TapRecord], vm: &str, mac: MacAddr) -> Option<String> {
    live.iter()
        .find(|r| r.vm == vm && r.mac == mac)
        .map(|r| r.tap.clone())
}

/// A random 52:54:00 MAC not in `taken`, or `None` after [`MAC_ATTEMPTS`] collisions.
fn random_mac(taken: &[MacAddr]) -> Option<MacAddr> {
    // RandomState is seeded from the OS per thread and differs per instance: enough
    // randomness for picking MACs without another dependency.
    let seed = RandomState::new();
    (0..MAC_ATTEMPTS)
        .map(|attempt| {
            let bits = seed.hash_one((attempt, SystemTime::now()));
            MacAddr::with_vmux_prefix(bits as u32)
        })
        .find(|mac| !taken.contains(mac))
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;

    fn live(vm: &str, network: &str) -> TapRecord {
        TapRecord {
            tap: format!("vm-{vm}-0"),
            vm: vm.into(),
            network: network.into(),
            mac: MacAddr::with_vmux_prefix(7),
            owner: ProcessId::current().expect("own stat"),
        }
    }

    /// A manager over a temp home that sees a host with no interfaces and no routes: no unit
    /// test depends on the machine's own (a user's `vmux-lab` bridge, say).
    fn manager() -> (tempfile::TempDir, NetworkManager) {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = NetworkManager::open(&Paths::under(dir.path()))
            .expect("open")
            .with_host(HostView::Fixed {
                links: Vec::new(),
                routes: Vec::new(),
            });
        (dir, manager)
    }

    #[test]
    fn a_new_bridge_name_avoids_the_hosts_interfaces() {
        let (_dir, manager) = manager();
        let free = manager.unused_bridge_name("lab").expect("a name");
        let manager = manager.with_host(HostView::Fixed {
            links: vec![host::Link::named(&free)],
            routes: Vec::new(),
        });

        let name = manager.unused_bridge_name("lab").expect("another name");

        assert_eq!(free, "vmux-lab");
        assert_ne!(name, free, "the host already has {free}");
        assert!(name.starts_with("vmux-lab"), "{name}");
    }

    #[test]
    fn a_network_used_by_a_running_vm_is_refused_naming_the_vm() {
        let records = [
            live("web1", "lab"),
            live("db1", "lab"),
            live("x", "default"),
        ];
        let err = in_use("lab", &records).expect_err("in use");
        assert!(
            matches!(&err, NetworkError::InUse { vms, .. } if vms == &["db1", "web1"]),
            "{err}"
        );
    }

    #[test]
    fn a_network_without_running_vms_is_free() {
        assert!(in_use("lab", &[live("x", "default")]).is_ok());
    }

    #[test]
    fn generated_macs_avoid_taken_ones_and_carry_the_prefix() {
        let first = random_mac(&[]).expect("one");
        let second = random_mac(&[first]).expect("another");
        assert_ne!(first, second);
        assert_eq!(second.0[..3], MacAddr::VMUX_PREFIX);
    }

    #[test]
    fn a_mac_used_by_another_vm_is_refused_naming_it() {
        let (_dir, manager) = manager();
        let mut web1 = VmConfig::new("web1", BootConfig::Demo);
        let nic = manager.new_nic(&web1, "default", None).expect("nic");
        web1.nics.push(nic.clone());
        manager.vms.create(&web1).expect("define web1");
        let web2 = VmConfig::new("web2", BootConfig::Demo);
        let err = manager
            .new_nic(&web2, "default", Some(nic.mac))
            .expect_err("taken");
        assert!(err.to_string().contains("'web1'"), "{err}");
    }

    #[test]
    fn a_nic_on_an_undefined_network_is_refused() {
        let (_dir, manager) = manager();
        let vm = VmConfig::new("web1", BootConfig::Demo);
        let err = manager.new_nic(&vm, "nowhere", None).expect_err("unknown");
        assert!(matches!(err, NetworkError::UnknownNetwork(_)));
    }

    #[test]
    fn defining_a_second_network_on_a_vmux_bridge_is_refused() {
        let (_dir, manager) = manager();
        let subnet = "10.77.0.0/24".parse().expect("subnet");
        let cfg = NetworkConfig::routed(
            "lab",
            NetworkMode::Isolated,
            "vmux-default",
            subnet,
            None,
            None,
        );
        let err = manager.define(&cfg).expect_err("bridge taken");
        assert!(matches!(err, NetworkError::BridgeTaken { ref other, .. } if other == "default"));
    }

    #[test]
    fn info_lists_definitions_whose_nics_use_the_network() {
        let (_dir, manager) = manager();
        let mut vm = VmConfig::new("web1", BootConfig::Demo);
        vm.nics
            .push(manager.new_nic(&vm, "default", None).expect("nic"));
        manager.vms.create(&vm).expect("define");
        let info = manager.info("default").expect("info");
        assert_eq!(info.attached.len(), 1);
        assert_eq!(info.attached[0].vm, "web1");
        assert_eq!(info.attached[0].tap, None);
        assert_eq!(info.active, None);
    }

    #[test]
    fn undefining_notes_vms_that_still_refer_to_the_network() {
        let (_dir, manager) = manager();
        let mut vm = VmConfig::new("web1", BootConfig::Demo);
        vm.nics
            .push(manager.new_nic(&vm, "default", None).expect("nic"));
        manager.vms.create(&vm).expect("define");
        let notes = manager.undefine("default").expect("undefine");
        assert!(notes[0].contains("web1"), "{notes:?}");
        assert!(!manager.store.exists("default"));
    }

    #[test]
    fn undefining_an_active_network_is_refused() {
        let (_dir, manager) = manager();
        let active = ActiveNetwork {
            mode: NetworkMode::Nat,
            bridge: "vmux-default".into(),
            subnet: None,
            nft_table: None,
            dnsmasq: None,
            guard_table: None,
            started_at: 0,
        };
        manager.state.save("default", &active).expect("save");
        let err = manager.undefine("default").expect_err("active");
        assert!(matches!(err, NetworkError::StillActive(_)));
    }
}
