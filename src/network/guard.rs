//! Anti-spoofing: one nftables table per started network, `table bridge vmux_guard_<net>`,
//! that lets each VM's TAP send only frames from its own MAC and, on nat and isolated networks,
//! only from the IPv4 addresses dnsmasq leased to that MAC (libvirt's `clean-traffic` filter,
//! in nftables' bridge family).
//!
//! The table holds three sets, so per-TAP rules are set elements, added in one atomic `nft`
//! transaction when the TAP is created (before it joins the bridge) and removed by the
//! privileged side once the TAP is gone ([`sync_ports`], run by every network command and VM
//! start): vmd itself never runs `nft`, so it can give up its privileges once its TAPs are open.
//! Until then the entries name an interface that no longer exists, which matches no frame.
//!
//! - `taps`: the TAPs of this network's running VMs (frames from any other bridge port, such
//!   as the uplink of a bridge-mode network, are not filtered);
//! - `ports`: (TAP, guest MAC) pairs: a frame from a TAP must carry its guest's MAC, and an ARP
//!   packet must name it as sender;
//! - `leases`: (MAC, IPv4) pairs (nat/isolated only), filled by dnsmasq's lease-change script
//!   ([`lease_hook`]) and from the lease file when a TAP is created: IPv4 and ARP must come from
//!   a leased address. The only other IPv4 a guest may send is a DHCP request from 0.0.0.0;
//!   it may not answer as a DHCP server, and other ethertypes (IPv6, VLAN tags, ...) are dropped,
//!   as vmux's nat and isolated networks carry IPv4 only.

use super::NetworkError;
use super::host::run_with_input;
use crate::config::MacAddr;
use std::net::Ipv4Addr;
use std::path::Path;

/// The table name for network `network` (family `bridge`).
pub fn table_name(network: &str) -> String {
    format!("vmux_guard_{network}")
}

/// The whole table as `nft -f` input, with the given set elements: `ports` (TAP, MAC) and, when
/// `addressed` (nat/isolated), `leases` (MAC, IPv4). It first declares and deletes the table,
/// so applying it replaces a stale copy in the same atomic transaction.
pub fn ruleset(
    table: &str,
    addressed: bool,
    ports: &[(String, MacAddr)],
    leases: &[(MacAddr, Ipv4Addr)],
) -> String {
    let taps: Vec<String> = ports.iter().map(|(tap, _)| format!("\"{tap}\"")).collect();
    let pairs: Vec<String> = ports
        .iter()
        .map(|(tap, mac)| format!("\"{tap}\" . {mac}"))
        .collect();
    let mut text = format!(
        "table bridge {table} {{}}\ndelete table bridge {table}\ntable bridge {table} {{\n{}{}",
        set("taps", "ifname", &taps),
        set("ports", "ifname . ether_addr", &pairs),
    );
    if addressed {
        let leased: Vec<String> = leases
            .iter()
            .map(|(mac, ip)| format!("{mac} . {ip}"))
            .collect();
        text.push_str(&set("leases", "ether_addr . ipv4_addr", &leased));
    }
    text.push_str(
        "\tchain prerouting {\n\
         \t\ttype filter hook prerouting priority filter; policy accept;\n\
         \t\tiifname != @taps accept\n\
         \t\tiifname . ether saddr != @ports drop\n\
         \t\tether type arp iifname . arp saddr ether != @ports drop\n",
    );
    if addressed {
        text.push_str(
            "\t\tether type arp arp saddr ip != 0.0.0.0 ether saddr . arp saddr ip != @leases drop\n\
             \t\tether type arp accept\n\
             \t\tip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n\
             \t\tudp sport 67 drop\n\
             \t\tether type ip ether saddr . ip saddr != @leases drop\n\
             \t\tether type ip accept\n\
             \t\tdrop\n",
        );
    }
    text.push_str("\t}\n}\n");
    text
}

/// One `set` block with optional elements.
fn set(name: &str, kind: &str, elements: &[String]) -> String {
    let elements = if elements.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", elements.join(", "))
    };
    format!("\tset {name} {{ type {kind};{elements} }}\n")
}

/// Loads (or replaces) the table with these elements.
pub fn apply(
    table: &str,
    addressed: bool,
    ports: &[(String, MacAddr)],
    leases: &[(MacAddr, Ipv4Addr)],
) -> Result<(), NetworkError> {
    nft(&ruleset(table, addressed, ports, leases))
}

/// Whether the table is loaded.
pub fn exists(table: &str) -> Result<bool, NetworkError> {
    let listing = super::host::run("nft", &["list", "tables", "bridge"])?;
    let wanted = format!("table bridge {table}");
    Ok(listing.lines().any(|line| line.trim() == wanted))
}

/// Removes the table if it is loaded.
pub fn delete(table: &str) -> Result<(), NetworkError> {
    if exists(table)? {
        nft(&format!("delete table bridge {table}\n"))?;
    }
    Ok(())
}

/// Lets TAP `tap` send as `mac`, and `mac` send from `leases`, in one transaction.
pub fn add_port(
    table: &str,
    tap: &str,
    mac: MacAddr,
    addressed: bool,
    leases: &[Ipv4Addr],
) -> Result<(), NetworkError> {
    let mut text = format!(
        "add element bridge {table} taps {{ \"{tap}\" }}\n\
         add element bridge {table} ports {{ \"{tap}\" . {mac} }}\n"
    );
    if addressed {
        for ip in leases {
            text.push_str(&format!(
                "add element bridge {table} leases {{ {mac} . {ip} }}\n"
            ));
        }
    }
    nft(&text)
}

/// Takes every TAP that is not in `live` (TAP, MAC) out of the table, in one transaction;
/// returns the TAPs taken out.
pub fn sync_ports(table: &str, live: &[(String, MacAddr)]) -> Result<Vec<String>, NetworkError> {
    let listed = |set: &str| {
        super::host::run("nft", &["-j", "list", "set", "bridge", table, set])
            .map(|json| set_elements(&json))
    };
    let is_live = |tap: &str, mac: Option<&str>| {
        live.iter()
            .any(|(t, m)| t == tap && mac.is_none_or(|mac| m.to_string() == mac))
    };
    let mut text = String::new();
    let mut gone = Vec::new();
    for element in listed("ports")? {
        if let [tap, mac] = element.as_slice()
            && !is_live(tap, Some(&mac.to_ascii_lowercase()))
        {
            text.push_str(&format!(
                "delete element bridge {table} ports {{ \"{tap}\" . {mac} }}\n"
            ));
        }
    }
    for element in listed("taps")? {
        if let [tap] = element.as_slice()
            && !is_live(tap, None)
        {
            text.push_str(&format!(
                "delete element bridge {table} taps {{ \"{tap}\" }}\n"
            ));
            gone.push(tap.clone());
        }
    }
    if !text.is_empty() {
        nft(&text)?;
    }
    Ok(gone)
}

/// The elements of the one set in `nft -j list set` output, each as its parts (one part for a
/// plain element, several for a concatenation). Anything unexpected is skipped.
fn set_elements(json: &str) -> Vec<Vec<String>> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["set"]["elem"].as_array())
        .flatten()
        .filter_map(|elem| match elem {
            serde_json::Value::String(one) => Some(vec![one.clone()]),
            other => other["concat"]
                .as_array()
                .map(|parts| parts.iter().filter_map(text).collect()),
        })
        .collect()
}

/// The lease-change script dnsmasq runs (through its root helper, `--dhcp-script`) with
/// `add|old|del MAC IP ...`: it adds or removes `MAC . IP` in the table's `leases` set, using
/// the `nft` at `nft_path`. Arguments come from dnsmasq (a MAC and a dotted address); they are
/// quoted, never evaluated.
pub fn lease_hook(table: &str, nft_path: &Path) -> String {
    let nft = nft_path.display();
    format!(
        "#!/bin/sh\n\
         # Written by vmux: dnsmasq runs this on DHCP lease changes so that the network's\n\
         # anti-spoofing table lets each guest send from the addresses leased to it.\n\
         case \"$1\" in\n\
         \tadd|old) '{nft}' add element bridge {table} leases \"{{ $2 . $3 }}\" 2>/dev/null ;;\n\
         \tdel) '{nft}' delete element bridge {table} leases \"{{ $2 . $3 }}\" 2>/dev/null ;;\n\
         esac\n\
         exit 0\n"
    )
}

/// The `nft` executable on `PATH`, for the lease hook (dnsmasq's helper may run with another
/// `PATH`).
pub fn nft_path() -> Result<std::path::PathBuf, NetworkError> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nft"))
        .find(|candidate| candidate.is_file() && !candidate.to_string_lossy().contains('\''))
        .ok_or_else(|| NetworkError::Spawn {
            program: "nft".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
}

fn nft(input: &str) -> Result<(), NetworkError> {
    run_with_input("nft", &["-f", "-"], Some(input)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, last])
    }

    #[test]
    fn a_nat_table_pins_each_tap_to_its_mac_and_leased_addresses() {
        let ports = [("vm-web1-0".to_string(), mac(1))];
        let leases = [(mac(1), Ipv4Addr::new(10, 77, 0, 5))];

        let text = ruleset("vmux_guard_lab", true, &ports, &leases);

        for wanted in [
            "table bridge vmux_guard_lab {}\ndelete table bridge vmux_guard_lab\n",
            "set taps { type ifname; elements = { \"vm-web1-0\" }; }",
            "set ports { type ifname . ether_addr; elements = { \"vm-web1-0\" . 52:54:00:00:00:01 }; }",
            "set leases { type ether_addr . ipv4_addr; elements = { 52:54:00:00:00:01 . 10.77.0.5 }; }",
            "iifname != @taps accept",
            "iifname . ether saddr != @ports drop",
            "ether type arp iifname . arp saddr ether != @ports drop",
            "ether saddr . arp saddr ip != @leases drop",
            "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
            "udp sport 67 drop",
            "ether type ip ether saddr . ip saddr != @leases drop",
        ] {
            assert!(text.contains(wanted), "{wanted} missing:\n{text}");
        }
        assert!(text.trim_end().ends_with("drop\n\t}\n}"), "{text}");
    }

    #[test]
    fn a_bridge_mode_table_checks_macs_only() {
        let text = ruleset("vmux_guard_lan", false, &[], &[]);

        assert!(text.contains("set taps { type ifname; }"), "{text}");
        assert!(
            text.contains("iifname . ether saddr != @ports drop"),
            "{text}"
        );
        assert!(!text.contains("leases"), "{text}");
        assert!(!text.contains("\t\tdrop\n"), "{text}");
    }

    #[test]
    fn set_listings_give_plain_and_concatenated_elements() {
        let ports = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "bridge", "name": "ports", "table": "g", "type": ["ifname", "ether_addr"], "handle": 2, "elem": [{"concat": ["vm-a-0", "52:54:00:00:00:01"]}]}}]}"#;
        let taps = r#"{"nftables": [{"set": {"name": "taps", "elem": ["vm-a-0", "vm-b-0"]}}]}"#;
        let empty = r#"{"nftables": [{"set": {"name": "taps", "type": "ifname"}}]}"#;

        assert_eq!(
            set_elements(ports),
            [vec!["vm-a-0".to_string(), "52:54:00:00:00:01".to_string()]]
        );
        assert_eq!(set_elements(taps).len(), 2);
        assert!(set_elements(empty).is_empty());
        assert!(set_elements("not json").is_empty());
    }

    #[test]
    fn the_lease_hook_quotes_dnsmasqs_arguments_and_names_the_table() {
        let hook = lease_hook("vmux_guard_lab", Path::new("/usr/sbin/nft"));

        assert!(hook.starts_with("#!/bin/sh\n"), "{hook}");
        assert!(
            hook.contains(
                "add|old) '/usr/sbin/nft' add element bridge vmux_guard_lab leases \"{ $2 . $3 }\""
            ),
            "{hook}"
        );
        assert!(
            hook.contains("del) '/usr/sbin/nft' delete element bridge vmux_guard_lab leases"),
            "{hook}"
        );
    }
}
