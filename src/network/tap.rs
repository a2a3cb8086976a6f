//! VM NICs on the host: a [`Tap`] per NIC, named after its VM, joined to its network's
//! bridge, with a record under `<state>/taps/<tap>.json` saying which VM and process own it.
//!
//! The TAP itself is non-persistent, so the kernel removes it when its owner (vmd) exits,
//! however it exits. The record outlives a crash; `clean_stale` removes records (and any
//! interface still carrying the name) whose owner is gone, and the records of live owners are
//! how vmux knows which running VMs use a network.
//!
//! Each TAP is entered in its network's anti-spoofing table (`network::guard`) before it joins
//! the bridge, so no frame it sends is ever unfiltered. vmd never runs `nft` afterwards: once
//! its record is gone (or stale) the next network command or VM start takes the TAP out of the
//! table (`guard::sync_ports`).

use super::NetworkError;
use super::guard;
use super::host::{self, ProcessId, ip};
use super::names::tap_name;
use super::state::StateDir;
use crate::config::{MacAddr, NicConfig, write_atomic};
use crate::engine::tap::TapDevice;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How many alternative names are tried when the natural one is taken.
const NAME_ATTEMPTS: u32 = 16;

/// Who owns a TAP: one file in `<state>/taps/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapRecord {
    /// The TAP's interface name.
    pub tap: String,
    /// The VM whose NIC it is.
    pub vm: String,
    /// The network it joined.
    pub network: String,
    /// The guest's MAC on it.
    pub mac: MacAddr,
    /// The process holding the TAP open (vmd).
    pub owner: ProcessId,
}

impl TapRecord {
    /// Whether the owning process still runs.
    pub fn is_live(&self) -> bool {
        self.owner.is_alive()
    }
}

/// One VM NIC's TAP, up and joined to its bridge. Dropping it closes the device (the
/// kernel deletes the interface) and removes its record. Owned by vmd's virtio-net device.
#[derive(Debug)]
pub struct Tap {
    device: TapDevice,
    record: TapRecord,
    record_path: PathBuf,
}

/// Where a new TAP is entered for anti-spoofing (`network::guard`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The network's anti-spoofing table.
    pub table: String,
    /// nat/isolated: addresses are checked too.
    pub addressed: bool,
    /// The addresses already leased to the NIC's MAC.
    pub leases: Vec<std::net::Ipv4Addr>,
}

impl Tap {
    /// The interface name.
    pub fn name(&self) -> &str {
        self.device.name()
    }

    /// The device virtio-net reads and writes frames through.
    pub fn device(&self) -> &TapDevice {
        &self.device
    }

    /// The guest's MAC.
    pub fn mac(&self) -> MacAddr {
        self.record.mac
    }

    /// The network the TAP joined.
    pub fn network(&self) -> &str {
        &self.record.network
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        // The interface goes with the fd, and its anti-spoofing entries with the next network
        // command (see the module docs); only the record is ours to remove.
        let _ = std::fs::remove_file(&self.record_path);
    }
}

/// Creates, records, enters in `guard` and brings up the TAP of NIC `index` of VM `vm` on
/// `bridge`. The caller holds the state lock and has checked that the network is started.
pub(crate) fn create(
    state: &StateDir,
    vm: &str,
    index: usize,
    nic: &NicConfig,
    bridge: &str,
    guard: &Guard,
) -> Result<Tap, NetworkError> {
    let owner = ProcessId::current().ok_or_else(|| NetworkError::Io {
        path: "/proc/self/stat".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let existing = host::links()?;
    for salt in 0..NAME_ATTEMPTS {
        let name = tap_name(vm, index, salt);
        let record_path = record_path(state, &name);
        if read_record(&record_path).is_some_and(|r| r.is_live())
            || existing.iter().any(|l| l.ifname == name)
        {
            continue;
        }
        let record = TapRecord {
            tap: name.clone(),
            vm: vm.to_string(),
            network: nic.network.clone(),
            mac: nic.mac,
            owner,
        };
        let text = serde_json::to_string_pretty(&record).expect("a TAP record serializes");
        write_atomic(&record_path, text.as_bytes()).map_err(|source| NetworkError::Io {
            path: record_path.clone(),
            source,
        })?;
        let device = match TapDevice::create(&name) {
            Ok(device) => device,
            Err(source) => {
                let _ = std::fs::remove_file(&record_path);
                return Err(NetworkError::Tap(source));
            }
        };
        // Entered before it joins the bridge: no frame of it ever goes unfiltered.
        if let Err(e) =
            guard::add_port(&guard.table, &name, nic.mac, guard.addressed, &guard.leases)
        {
            let _ = std::fs::remove_file(&record_path);
            return Err(e);
        }
        let tap = Tap {
            device,
            record,
            record_path,
        };
        // The TAP's own MAC is the guest's with a locally administered 0xfe first byte (as
        // libvirt does): distinct from the guest's, and high enough never to become the
        // bridge's address.
        let mut host_side = nic.mac;
        host_side.0[0] = 0xfe;
        ip(&format!(
            "link set dev {name} address {host_side} master {bridge} up"
        ))?;
        return Ok(tap);
    }
    Err(NetworkError::NoTapName {
        vm: vm.to_string(),
        tried: tap_name(vm, index, 0),
    })
}

/// Every TAP record, live or not.
pub fn records(state: &StateDir) -> Vec<TapRecord> {
    let Ok(entries) = std::fs::read_dir(state.taps_dir()) else {
        return Vec::new();
    };
    let mut records: Vec<TapRecord> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| read_record(&e.path()))
        .collect();
    records.sort_by(|a, b| a.tap.cmp(&b.tap));
    records
}

/// The records whose owner still runs: the NICs of running VMs.
pub fn live_records(state: &StateDir) -> Vec<TapRecord> {
    records(state)
        .into_iter()
        .filter(TapRecord::is_live)
        .collect()
}

/// Removes the records of TAPs whose owner is gone, deleting a leftover TAP interface of that
/// name if one exists (a non-persistent TAP normally vanished with its owner). Returns one
/// line per TAP cleaned.
pub(crate) fn clean_stale(state: &StateDir) -> Result<Vec<String>, NetworkError> {
    let stale: Vec<TapRecord> = records(state)
        .into_iter()
        .filter(|r| !r.is_live())
        .collect();
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let links = host::links()?;
    let mut notes = Vec::new();
    for record in stale {
        let leftover = links
            .iter()
            .any(|l| l.ifname == record.tap && l.kind() == Some("tun"));
        if leftover {
            // The kernel removes a dead owner's TAP by itself, possibly between the listing
            // above and this delete: a TAP gone by now is what this wanted.
            if let Err(e) = ip(&format!("link delete dev {}", record.tap))
                && host::links()?.iter().any(|l| l.ifname == record.tap)
            {
                return Err(e);
            }
            notes.push(format!(
                "removed TAP {} left behind by VM '{}' (its vmd pid {} is gone)",
                record.tap, record.vm, record.owner.pid
            ));
        }
        let path = record_path(state, &record.tap);
        std::fs::remove_file(&path).map_err(|source| NetworkError::Io { path, source })?;
    }
    Ok(notes)
}

fn record_path(state: &StateDir, tap: &str) -> PathBuf {
    state.taps_dir().join(format!("{tap}.json"))
}

fn read_record(path: &std::path::Path) -> Option<TapRecord> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    fn record(tap: &str, owner: ProcessId) -> TapRecord {
        TapRecord {
            tap: tap.into(),
            vm: "web1".into(),
            network: "default".into(),
            mac: MacAddr::with_vmux_prefix(1),
            owner,
        }
    }

    fn write(state: &StateDir, record: &TapRecord) {
        std::fs::create_dir_all(state.taps_dir()).expect("mkdir");
        let text = serde_json::to_string(record).expect("json");
        std::fs::write(record_path(state, &record.tap), text).expect("write");
    }

    #[test]
    fn only_records_of_live_owners_count_as_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::new(&Paths::under(dir.path()));
        let me = ProcessId::current().expect("own stat");
        let gone = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        write(&state, &record("vm-web1-0", me));
        write(&state, &record("vm-web1-1", gone));
        assert_eq!(records(&state).len(), 2);
        let live: Vec<String> = live_records(&state).into_iter().map(|r| r.tap).collect();
        assert_eq!(live, ["vm-web1-0"]);
    }
}
