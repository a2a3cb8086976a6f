//! [`HostApi`]: everything a front end (the CLI, the TUI) asks of one host, as three trait
//! objects — VMs ([`Host`]), storage ([`StorageHost`]) and guest networks ([`NetworkHost`]).
//! The local one is built around a [`LocalHost`]; tests build one from the fakes; a remote host
//! fills the same three slots with implementations that talk to `vmux agent`.

use super::{ClientError, Host, LocalHost, LocalNetworks, LocalStorage, NetworkHost, StorageHost};
use std::sync::Arc;

/// One host's VMs, storage and networks, shared by the front end's threads.
#[derive(Clone)]
pub struct HostApi {
    /// VMs.
    pub vms: Arc<dyn Host>,
    /// Pools, volumes and disk snapshots.
    pub storage: Arc<dyn StorageHost>,
    /// Guest networks.
    pub networks: Arc<dyn NetworkHost>,
}

impl HostApi {
    /// This machine's VMs, storage and networks under the vmux home `VMUX_HOME` / XDG select.
    pub fn from_env() -> Result<HostApi, ClientError> {
        Ok(HostApi::local(LocalHost::from_env()?))
    }

    /// This machine's VMs through `host`, and the storage and networks under its vmux home.
    pub fn local(host: LocalHost) -> HostApi {
        let paths = host.paths().clone();
        HostApi {
            storage: Arc::new(LocalStorage::new(paths.clone())),
            networks: Arc::new(LocalNetworks::new(paths)),
            vms: Arc::new(host),
        }
    }
}
