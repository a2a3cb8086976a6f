//! What vmux remembers about running networks, under `<state>/networks/`:
//!
//! ```text
//! networks/.lock               flock held by whoever changes network state
//! networks/<net>/active.json   present while the network is started: what to tear down
//! networks/<net>/leases        dnsmasq's lease file (kept across restarts)
//! networks/<net>/dnsmasq.pid   dnsmasq's pid file
//! networks/<net>/lease-hook    dnsmasq's lease-change script (anti-spoofing, see `guard`)
//! taps/<tap>.json              one per TAP in use (see `network::tap`)
//! ```
//!
//! `active.json` records everything a stop needs (bridge, nft table, dnsmasq's identity), so
//! a network can be torn down even after its definition file was edited or lost.

use super::NetworkError;
use super::host::ProcessId;
use crate::config::{Ipv4Net, NetworkMode, Paths, write_atomic};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// The record of a started network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveNetwork {
    /// Mode it was started in.
    pub mode: NetworkMode,
    /// Its bridge (created by vmux unless `mode` is `bridge`).
    pub bridge: String,
    /// Its subnet (nat/isolated), for overlap checks against networks started later.
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    /// The nft table vmux loaded (nat only).
    #[serde(default)]
    pub nft_table: Option<String>,
    /// The dnsmasq serving it (nat/isolated).
    #[serde(default)]
    pub dnsmasq: Option<ProcessId>,
    /// The anti-spoofing table vmux loaded (`network::guard`); `None` for a network started
    /// by a vmux without one (the next network command or VM start adds it).
    #[serde(default)]
    pub guard_table: Option<String>,
    /// When it was started, seconds since the Unix epoch.
    pub started_at: u64,
}

/// The `networks/` and `taps/` directories under the state root.
#[derive(Debug, Clone)]
pub struct StateDir {
    networks: PathBuf,
    taps: PathBuf,
}

/// Exclusive access to network state for as long as it lives (an flock, so a crashed holder
/// releases it).
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<File>,
}

impl StateDir {
    /// The state directories of `paths`.
    pub fn new(paths: &Paths) -> StateDir {
        StateDir {
            networks: paths.state.join("networks"),
            taps: paths.state.join("taps"),
        }
    }

    /// `networks/<net>/`.
    pub fn network_dir(&self, network: &str) -> PathBuf {
        self.networks.join(network)
    }

    /// dnsmasq's lease file of `network`.
    pub fn lease_file(&self, network: &str) -> PathBuf {
        self.network_dir(network).join("leases")
    }

    /// dnsmasq's pid file of `network`.
    pub fn pid_file(&self, network: &str) -> PathBuf {
        self.network_dir(network).join("dnsmasq.pid")
    }

    /// The lease-change script dnsmasq of `network` runs (`network::guard::lease_hook`).
    pub fn lease_hook(&self, network: &str) -> PathBuf {
        self.network_dir(network).join("lease-hook")
    }

    fn active_file(&self, network: &str) -> PathBuf {
        self.network_dir(network).join("active.json")
    }

    /// The directory of TAP records.
    pub fn taps_dir(&self) -> &Path {
        &self.taps
    }

    /// Creates `networks/<net>/` and `taps/`.
    pub fn ensure(&self, network: &str) -> Result<(), NetworkError> {
        for dir in [self.network_dir(network), self.taps.clone()] {
            fs::create_dir_all(&dir).map_err(|source| NetworkError::Io { path: dir, source })?;
        }
        Ok(())
    }

    /// Waits for and takes the state lock.
    pub fn lock(&self) -> Result<StateLock, NetworkError> {
        let path = self.networks.join(".lock");
        let io_err = |source| NetworkError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.networks).map_err(io_err)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_err(std::io::Error::from(errno)))?;
        Ok(StateLock { _lock: lock })
    }

    /// The record of `network` if it is started.
    pub fn load(&self, network: &str) -> Result<Option<ActiveNetwork>, NetworkError> {
        let path = self.active_file(network);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NetworkError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| NetworkError::Parse {
                what: path.display().to_string(),
                detail: e.to_string(),
            })
    }

    /// Records `network` as started.
    pub fn save(&self, network: &str, active: &ActiveNetwork) -> Result<(), NetworkError> {
        self.ensure(network)?;
        let path = self.active_file(network);
        let text = serde_json::to_string_pretty(active).expect("state serializes to JSON");
        write_atomic(&path, text.as_bytes()).map_err(|source| NetworkError::Io { path, source })
    }

    /// Forgets that `network` is started.
    pub fn clear(&self, network: &str) -> Result<(), NetworkError> {
        let path = self.active_file(network);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(NetworkError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Names of the networks with a record, sorted.
    pub fn started(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.networks) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("active.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(&Paths::under(dir.path()));
        (dir, state)
    }

    #[test]
    fn saved_record_loads_back_and_lists_as_started() {
        let (_dir, state) = state();
        let active = ActiveNetwork {
            mode: NetworkMode::Nat,
            bridge: "vmux-default".into(),
            subnet: "192.168.123.0/24".parse().ok(),
            nft_table: Some("vmux_default".into()),
            dnsmasq: ProcessId::current(),
            guard_table: Some("vmux_guard_default".into()),
            started_at: 1,
        };
        state.save("default", &active).expect("save");
        assert_eq!(state.load("default").expect("load"), Some(active));
        assert_eq!(state.started(), ["default"]);
    }

    #[test]
    fn cleared_network_is_not_started() {
        let (_dir, state) = state();
        state.ensure("lab").expect("ensure");
        state.clear("lab").expect("clear of nothing is fine");
        assert_eq!(state.load("lab").expect("load"), None);
        assert!(state.started().is_empty());
    }
}
