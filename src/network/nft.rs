//! The nftables table of one nat network: `table ip vmux_<net>`, vmux's own, so starting and
//! stopping a network never edits a rule anyone else wrote.
//!
//! It masquerades the subnet's traffic leaving through any other interface and, like
//! libvirt, lets guests start connections out while only replies come back in.

use super::NetworkError;
use super::host::{run, run_with_input};
use crate::config::Ipv4Net;

/// The table name for network `network` (family `ip`).
pub fn table_name(network: &str) -> String {
    format!("vmux_{network}")
}

/// The complete table, as `nft -f` input. It first declares and deletes the table, so
/// applying it replaces a stale copy in the same atomic transaction.
pub fn ruleset(table: &str, bridge: &str, subnet: Ipv4Net) -> String {
    format!(
        r#"table ip {table} {{}}
delete table ip {table}
table ip {table} {{
	chain postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr {subnet} ip daddr {{ 224.0.0.0/24, 255.255.255.255 }} return
		ip saddr {subnet} ip daddr != {subnet} oifname != "{bridge}" masquerade
	}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		iifname "{bridge}" ip saddr {subnet} accept
		oifname "{bridge}" ip daddr {subnet} ct state established,related accept
		oifname "{bridge}" reject
		iifname "{bridge}" reject
	}}
}}
"#
    )
}

/// Loads (or replaces) the table.
pub fn apply(table: &str, bridge: &str, subnet: Ipv4Net) -> Result<(), NetworkError> {
    run_with_input("nft", &["-f", "-"], Some(&ruleset(table, bridge, subnet))).map(drop)
}

/// Whether the table is loaded.
pub fn exists(table: &str) -> Result<bool, NetworkError> {
    let listing = run("nft", &["list", "tables", "ip"])?;
    let wanted = format!("table ip {table}");
    Ok(listing.lines().any(|line| line.trim() == wanted))
}

/// Removes the table if it is loaded.
pub fn delete(table: &str) -> Result<(), NetworkError> {
    if exists(table)? {
        run("nft", &["delete", "table", "ip", table])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_masquerades_only_the_subnet_and_names_only_our_table() {
        let subnet = "192.168.123.0/24".parse().expect("valid");
        let text = ruleset("vmux_default", "vmux-default", subnet);
        assert!(text.contains(
            "ip saddr 192.168.123.0/24 ip daddr != 192.168.123.0/24 oifname != \"vmux-default\" masquerade"
        ));
        let tables: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("table") || l.starts_with("delete"))
            .collect();
        assert!(
            tables.iter().all(|l| l.contains("ip vmux_default")),
            "{tables:?}"
        );
    }
}
