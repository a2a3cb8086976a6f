//! Guest networks on the host, libvirt-style: bridges, TAPs, NAT (nftables) and DHCP/DNS
//! (dnsmasq).
//!
//! - **nat**: a bridge `vmux-<net>` owning the gateway address, IPv4 forwarding on, vmux's own
//!   `table ip vmux_<net>` masquerading the subnet out of other interfaces, and a dnsmasq
//!   bound to that bridge only.
//! - **isolated**: the same bridge and dnsmasq, no forwarding, no masquerade, no default route.
//! - **bridge**: nothing is created; each VM's TAP joins an existing host bridge.
//!
//! Every started network also gets an anti-spoofing table ([`guard`]): each VM's TAP may send
//! only from its guest's MAC and, on nat/isolated networks, only from the addresses dnsmasq
//! leased to it. dnsmasq serves as an unprivileged user.
//!
//! [`NetworkManager`] is the entry point (define, start, destroy, list, info, NIC attach for
//! vmd, address lookup); it shells out to `ip`, `nft` and `dnsmasq` (see [`host`]), keeps what
//! it started in `<state>/networks/` ([`state`]) and checks on every call that what it started
//! is still there ([`NetworkManager::reconcile`]). Everything here needs CAP_NET_ADMIN
//! ([`caps`]); the raw TAP ioctls live in `engine::tap` (raw system calls stay in the engine).

pub mod caps;
mod dnsmasq;
pub mod guard;
pub mod host;
pub mod leases;
mod manager;
mod names;
mod nft;
mod overlap;
pub mod state;
mod store;
pub mod tap;

pub use manager::{
    AddressSource, AttachedNic, InterfaceAddress, NetworkInfo, NetworkManager, NetworkStatus,
};
pub use names::{bridge_name, tap_name};
pub use nft::table_name;
pub use overlap::subnet_conflict;
pub use store::NetworkStore;
pub use tap::{Tap, TapRecord};

use crate::config::{ConfigError, DefinitionError, Ipv4Net, MacAddr};
use std::path::PathBuf;

/// Errors from network operations. Messages name the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// An error raised on a remote host (its words and causes, as they read there).
    #[error(transparent)]
    Remote(Box<crate::remote::WireError>),
    /// The connection to a remote host failed or dropped.
    #[error(transparent)]
    Link(#[from] crate::remote::LinkError),
    /// The process lacks CAP_NET_ADMIN.
    #[error(
        "vmux networks need the CAP_NET_ADMIN capability (bit 12 of CapEff in /proc/self/status), which this process does not have; run the command as root, e.g. with sudo"
    )]
    MissingCapability,
    /// A VM definition could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A network definition file does not parse or validate.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// A network definition asks for something impossible.
    #[error("{0}")]
    Invalid(String),
    /// No network of that name is defined.
    #[error("no network named '{0}' is defined; `vmux net-list --all` shows the defined networks")]
    UnknownNetwork(String),
    /// A network of that name is already defined.
    #[error(
        "a network named '{0}' is already defined; pick another name or `vmux net-undefine {0}` first"
    )]
    NetworkExists(String),
    /// Another definition already uses the bridge name.
    #[error(
        "bridge '{bridge}' already belongs to network '{other}'; leave --bridge out to get a free name"
    )]
    BridgeTaken {
        /// The bridge name.
        bridge: String,
        /// The network that has it.
        other: String,
    },
    /// The network is not started.
    #[error("network '{0}' is not active; start it with `vmux net-start {0}`")]
    NotActive(String),
    /// The network is started already.
    #[error("network '{0}' is already active")]
    AlreadyActive(String),
    /// The network is started, so it cannot be undefined.
    #[error("network '{0}' is active; stop it with `vmux net-destroy {0}` first")]
    StillActive(String),
    /// Running VMs have NICs on the network.
    #[error(
        "network '{network}' is in use by running VM(s) {}; shut them down first (`vmux shutdown {}`)",
        vms.join(", "),
        vms.first().map(String::as_str).unwrap_or_default()
    )]
    InUse {
        /// The network.
        network: String,
        /// The running VMs using it, sorted.
        vms: Vec<String>,
    },
    /// The subnet overlaps something already routed on the host.
    #[error(
        "cannot start network '{network}': its subnet {subnet} overlaps {conflict}; define it with another --subnet"
    )]
    SubnetOverlap {
        /// The network being started.
        network: String,
        /// Its subnet.
        subnet: Ipv4Net,
        /// What it overlaps, in words.
        conflict: String,
    },
    /// A new network's subnet overlaps another network or a host route.
    #[error(
        "cannot define network '{network}': its subnet {subnet} overlaps {conflict}; pick another --subnet"
    )]
    SubnetTaken {
        /// The network being defined.
        network: String,
        /// Its subnet.
        subnet: Ipv4Net,
        /// What it overlaps, in words.
        conflict: String,
    },
    /// A bridge-mode network's bridge is missing or is not a bridge.
    #[error(
        "network '{network}' uses host bridge '{bridge}', which {problem}; create it (`ip link add {bridge} type bridge`) or define the network over an existing bridge"
    )]
    BridgeMissing {
        /// The network.
        network: String,
        /// The bridge it names.
        bridge: String,
        /// "does not exist" or "is not a bridge".
        problem: &'static str,
    },
    /// The bridge vmux would create exists already and is not vmux's.
    #[error(
        "cannot start network '{network}': an interface named '{name}' already exists on this host and vmux did not create it; remove it or give the network another bridge name"
    )]
    InterfaceExists {
        /// The network.
        network: String,
        /// The interface.
        name: String,
    },
    /// A MAC is already given to another VM's NIC.
    #[error(
        "MAC {mac} is already used by VM '{vm}'; give another --mac or leave it out to get a generated one"
    )]
    MacInUse {
        /// The MAC.
        mac: MacAddr,
        /// The VM that has it.
        vm: String,
    },
    /// No unused MAC was found (the host has an enormous number of NICs defined).
    #[error("could not find an unused MAC after many tries; give one with --mac")]
    NoFreeMac,
    /// Every TAP name tried is taken.
    #[error("no free TAP name for VM '{vm}' (tried {tried} and hashed variants); rename the VM")]
    NoTapName {
        /// The VM.
        vm: String,
        /// The natural name.
        tried: String,
    },
    /// A TAP device could not be created.
    #[error(transparent)]
    Tap(#[from] crate::engine::tap::TapError),
    /// A helper program could not be run at all.
    #[error("cannot run `{program}`; {}", install_hint(program))]
    Spawn {
        /// The program.
        program: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A helper program ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// dnsmasq refused to start.
    #[error("dnsmasq for network '{network}' did not start: {detail}")]
    Dnsmasq {
        /// The network.
        network: String,
        /// dnsmasq's own message.
        detail: String,
    },
    /// dnsmasq would not stop.
    #[error("cannot stop dnsmasq (pid {pid}); stop it by hand with `kill -9 {pid}`")]
    StopDnsmasq {
        /// Its pid.
        pid: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A state or definition file could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file or program output did not have the expected form.
    #[error("cannot understand {what}: {detail}")]
    Parse {
        /// What was read.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// The package to install for a missing helper program.
fn install_hint(program: &str) -> String {
    let package = match program {
        "ip" => "iproute2",
        "nft" => "nftables",
        "dnsmasq" => "dnsmasq-base",
        other => other,
    };
    format!("install it (Debian/Ubuntu: `apt install {package}`) and make sure it is on PATH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_names_every_vm_and_how_to_stop_one() {
        let err = NetworkError::InUse {
            network: "lab".into(),
            vms: vec!["db1".into(), "web1".into()],
        };
        let text = err.to_string();
        assert!(text.contains("db1, web1"), "{text}");
        assert!(text.contains("vmux shutdown db1"), "{text}");
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let err = NetworkError::Spawn {
            program: "nft".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(err.to_string().contains("apt install nftables"), "{err}");
    }

    #[test]
    fn missing_capability_names_it_and_the_fix() {
        let text = NetworkError::MissingCapability.to_string();
        assert!(
            text.contains("CAP_NET_ADMIN") && text.contains("root"),
            "{text}"
        );
    }
}
