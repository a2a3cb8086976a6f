//! Interface names made from network and VM names, within Linux's 15-character limit.
//!
//! Short names read as themselves (`vmux-default`, `vm-web1-0`); long ones keep a readable
//! prefix and add four hex digits of a stable hash of the whole name, so two long names that
//! share a prefix still differ. `salt` picks another hash when a name is taken.

use crate::config::{IFNAME_MAX, MacAddr};

/// The bridge name for network `network`: `vmux-<network>` when it fits, else
/// `vmux-<prefix><hash>`; `salt > 0` always takes the hashed form with another hash.
pub fn bridge_name(network: &str, salt: u32) -> String {
    fit("vmux-", network, "", salt)
}

/// The TAP name for NIC `index` of VM `vm`: `vm-<vm>-<index>` when it fits, else
/// `vm-<prefix><hash>-<index>`.
pub fn tap_name(vm: &str, index: usize, salt: u32) -> String {
    fit("vm-", vm, &format!("-{index}"), salt)
}

/// The fixed MAC of network `network`'s bridge: the 52:54:00 prefix and 24 bits of a hash
/// of the name, so it is the same after every start.
pub fn bridge_mac(network: &str) -> MacAddr {
    MacAddr::with_vmux_prefix(fnv1a(network.as_bytes(), 0))
}

/// `head + body + tail` if that fits and `salt == 0`; otherwise `body` is cut to make room
/// for a 4-digit hash of `(body, salt)`.
fn fit(head: &str, body: &str, tail: &str, salt: u32) -> String {
    if salt == 0 && head.len() + body.len() + tail.len() <= IFNAME_MAX {
        return format!("{head}{body}{tail}");
    }
    let hash = format!("{:04x}", fnv1a(body.as_bytes(), salt) & 0xffff);
    let room = IFNAME_MAX.saturating_sub(head.len() + hash.len() + tail.len());
    // Names are ASCII (validated), so a byte cut is a character cut.
    let prefix: String = body.chars().take(room).collect();
    format!("{head}{prefix}{hash}{tail}")
}

/// FNV-1a over `bytes` then `salt`: tiny and stable across Rust versions (unlike
/// `DefaultHasher`), so a name computed today is the name computed after an upgrade.
fn fnv1a(bytes: &[u8], salt: u32) -> u32 {
    bytes
        .iter()
        .chain(salt.to_le_bytes().iter())
        .fold(0x811c_9dc5u32, |hash, byte| {
            (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_read_as_themselves() {
        assert_eq!(bridge_name("default", 0), "vmux-default");
        assert_eq!(tap_name("web1", 0, 0), "vm-web1-0");
    }

    #[test]
    fn long_names_fit_in_15_and_differ_by_hash() {
        let a = bridge_name("production-frontend", 0);
        let b = bridge_name("production-backend", 0);
        assert!(a.len() <= IFNAME_MAX && b.len() <= IFNAME_MAX, "{a} {b}");
        assert!(a.starts_with("vmux-produc"), "{a}");
        assert_ne!(a, b);
        let tap = tap_name("a-very-long-vm-name", 12, 0);
        assert!(tap.len() <= IFNAME_MAX && tap.ends_with("-12"), "{tap}");
    }

    #[test]
    fn a_salt_gives_another_name() {
        assert_ne!(bridge_name("default", 1), bridge_name("default", 0));
        assert_ne!(bridge_name("default", 1), bridge_name("default", 2));
        assert!(bridge_name("default", 1).len() <= IFNAME_MAX);
    }

    #[test]
    fn hashed_names_do_not_change_between_releases() {
        // Pinned: a changed hash would orphan the bridges and TAPs of running networks.
        assert_eq!(tap_name("a-very-long-vm-name", 0, 0), "vm-a-veryd8ee-0");
        assert_eq!(bridge_mac("default").to_string(), "52:54:00:b4:bb:be");
    }
}
