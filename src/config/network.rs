//! Network definitions (`networks/<name>.toml`) and VM NICs (`[[nics]]` in a VM definition),
//! with the address types they are written in: [`Ipv4Net`], [`DhcpRange`], [`MacAddr`].
//!
//! ```toml
//! name = "default"
//! mode = "nat"                       # nat | isolated | bridge
//! bridge = "vmux-default"            # made by vmux (nat, isolated) or the host's (bridge)
//! subnet = "192.168.123.0/24"        # nat and isolated only
//! gateway = "192.168.123.1"
//! dhcp_range = "192.168.123.2-192.168.123.254"
//! autostart = false
//! ```
//!
//! Everything here is pure data and validation; `crate::network` creates bridges, firewall
//! tables and dnsmasq instances from it.

use super::vm::validate_name;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// How a network connects its guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A vmux bridge with DHCP/DNS, masqueraded out of the host's other interfaces.
    Nat,
    /// A vmux bridge with DHCP/DNS and no way out.
    Isolated,
    /// The guests' TAPs join an existing host bridge (the LAN's DHCP serves them).
    Bridge,
}

impl NetworkMode {
    /// The word used in files and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            NetworkMode::Nat => "nat",
            NetworkMode::Isolated => "isolated",
            NetworkMode::Bridge => "bridge",
        }
    }

    /// Whether vmux creates the bridge and runs dnsmasq for this mode.
    pub fn is_managed(self) -> bool {
        !matches!(self, NetworkMode::Bridge)
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One network definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Unique name, same rules as VM names.
    pub name: String,
    /// How guests are connected.
    pub mode: NetworkMode,
    /// The bridge: created by vmux for nat/isolated (unique among definitions, at most 15
    /// characters), an existing host bridge for `bridge` mode.
    pub bridge: String,
    /// The guests' subnet (nat/isolated only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Net>,
    /// The host's address on the bridge: default route and DNS server for guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Addresses dnsmasq hands out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_range: Option<DhcpRange>,
    /// Start with `vmux autostart-all` (host boot).
    #[serde(default)]
    pub autostart: bool,
}

/// The addressing of a nat or isolated network, all three parts present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The host's address in it.
    pub gateway: Ipv4Addr,
    /// The DHCP pool.
    pub dhcp_range: DhcpRange,
}

impl NetworkConfig {
    /// The network vmux defines on first use: nat on 192.168.123.0/24 (libvirt's default
    /// network uses 192.168.122.0/24; a different subnet lets both coexist on one host).
    pub fn default_network() -> NetworkConfig {
        let subnet = Ipv4Net::new(Ipv4Addr::new(192, 168, 123, 0), 24)
            .expect("192.168.123.0/24 is a valid network address");
        NetworkConfig::routed(
            "default",
            NetworkMode::Nat,
            "vmux-default",
            subnet,
            None,
            None,
        )
    }

    /// A nat or isolated network; a missing gateway is the subnet's first host, a missing
    /// DHCP range is everything after the gateway up to the last host (libvirt's defaults).
    pub fn routed(
        name: &str,
        mode: NetworkMode,
        bridge: &str,
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        dhcp_range: Option<DhcpRange>,
    ) -> NetworkConfig {
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        let dhcp_range = dhcp_range.unwrap_or_else(|| DhcpRange {
            start: Ipv4Addr::from(u32::from(gateway).saturating_add(1)),
            end: subnet.last_host(),
        });
        NetworkConfig {
            name: name.to_string(),
            mode,
            bridge: bridge.to_string(),
            subnet: Some(subnet),
            gateway: Some(gateway),
            dhcp_range: Some(dhcp_range),
            autostart: false,
        }
    }

    /// A `bridge`-mode network over the host bridge `bridge`.
    pub fn bridged(name: &str, bridge: &str) -> NetworkConfig {
        NetworkConfig {
            name: name.to_string(),
            mode: NetworkMode::Bridge,
            bridge: bridge.to_string(),
            subnet: None,
            gateway: None,
            dhcp_range: None,
            autostart: false,
        }
    }

    /// Subnet, gateway and DHCP range, when all are set (nat/isolated definitions that
    /// passed [`NetworkConfig::validate`]).
    pub fn addressing(&self) -> Option<Addressing> {
        Some(Addressing {
            subnet: self.subnet?,
            gateway: self.gateway?,
            dhcp_range: self.dhcp_range?,
        })
    }

    /// Checks the definition on its own (no host access): names, and for nat/isolated that
    /// the gateway and DHCP range sit inside the subnet without colliding.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        validate_ifname(&self.bridge)?;
        if !self.mode.is_managed() {
            if self.subnet.is_some() || self.gateway.is_some() || self.dhcp_range.is_some() {
                return Err(format!(
                    "network '{}' is in bridge mode: its guests get addresses from the host's LAN, so remove subnet, gateway and dhcp_range",
                    self.name
                ));
            }
            return Ok(());
        }
        let Some(Addressing {
            subnet,
            gateway,
            dhcp_range,
        }) = self.addressing()
        else {
            return Err(format!(
                "network '{}' ({}) needs subnet, gateway and dhcp_range",
                self.name, self.mode
            ));
        };
        subnet.check_usable()?;
        let usable = |ip: Ipv4Addr| {
            subnet.contains(ip) && ip != subnet.network() && ip != subnet.broadcast()
        };
        if !usable(gateway) {
            return Err(format!(
                "gateway {gateway} is not a host address of {subnet}; try {}",
                subnet.first_host()
            ));
        }
        if !usable(dhcp_range.start) || !usable(dhcp_range.end) {
            return Err(format!(
                "DHCP range {dhcp_range} must lie within the host addresses of {subnet} ({}-{})",
                subnet.first_host(),
                subnet.last_host()
            ));
        }
        if dhcp_range.start > dhcp_range.end {
            return Err(format!(
                "DHCP range {dhcp_range} ends before it starts; write the lower address first"
            ));
        }
        if dhcp_range.contains(gateway) {
            return Err(format!(
                "DHCP range {dhcp_range} includes the gateway {gateway}; start the range after it"
            ));
        }
        Ok(())
    }
}

/// Checks a Linux interface name: 1-15 characters of `[A-Za-z0-9._-]`, not `.` or `..`, and
/// not starting with `-` (vmux hands bridge names to `ip` and `dnsmasq`, which would read
/// `-help` as an option).
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.starts_with('-') {
        return Err(format!(
            "'{name}' is not a usable interface name: it starts with '-', which `ip` and `dnsmasq` would read as an option; start it with a letter or digit"
        ));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > IFNAME_MAX || !valid_chars || name == "." || name == ".." {
        return Err(format!(
            "'{name}' is not a usable interface name; use 1-{IFNAME_MAX} characters from A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

/// One NIC of a VM: which network it joins and its MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicConfig {
    /// Name of the network definition.
    pub network: String,
    /// The guest's MAC, fixed at definition time so DHCP leases survive restarts.
    pub mac: MacAddr,
}

impl NicConfig {
    /// Checks the network name and that the MAC is a unicast address.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.network)?;
        if !self.mac.is_unicast() {
            return Err(format!(
                "MAC {} is a multicast or all-zero address; guests need a unicast MAC such as 52:54:00:12:34:56",
                self.mac
            ));
        }
        Ok(())
    }
}

/// An IPv4 subnet: network address and prefix length, written `192.168.123.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// A subnet; refuses a prefix above 32 and an address with host bits set.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Ipv4Net, String> {
        if prefix > 32 {
            return Err(format!("prefix /{prefix} is above /32"));
        }
        let net = Ipv4Net { addr, prefix };
        if net.network() != addr {
            return Err(format!(
                "{addr}/{prefix} has host bits set; the network address is {}/{prefix}",
                net.network()
            ));
        }
        Ok(net)
    }

    /// Prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask (`255.255.255.0` for /24).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The network address (all host bits clear).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The lowest host address (network + 1).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).saturating_add(1))
    }

    /// The highest host address (broadcast - 1).
    pub fn last_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.broadcast()).saturating_sub(1))
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Refuses subnets a guest network cannot use: fewer than two hosts besides the gateway
    /// (/31, /32), larger than /8, loopback, multicast and the like.
    pub fn check_usable(&self) -> Result<(), String> {
        if !(8..=30).contains(&self.prefix) {
            return Err(format!(
                "subnet {self} has a /{} prefix; use a prefix from /8 to /30 (e.g. /24)",
                self.prefix
            ));
        }
        let a = self.network();
        if a.is_loopback() || a.is_multicast() || a.is_unspecified() || a.octets()[0] >= 240 {
            return Err(format!(
                "subnet {self} is reserved; use a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Ipv4Net, String> {
        let bad = || format!("'{text}' is not a subnet; write it like 192.168.50.0/24");
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix)
    }
}

/// An inclusive range of addresses for DHCP, written `10.77.0.100-10.77.0.200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DhcpRange {
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
}

impl DhcpRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&ip)
    }

    /// How many addresses the range holds (0 when it is reversed).
    pub fn size(&self) -> u64 {
        (u64::from(u32::from(self.end)) + 1).saturating_sub(u64::from(u32::from(self.start)))
    }
}

impl fmt::Display for DhcpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for DhcpRange {
    type Err = String;

    fn from_str(text: &str) -> Result<DhcpRange, String> {
        let bad =
            || format!("'{text}' is not an address range; write it like 10.77.0.100-10.77.0.200");
        let (start, end) = text.trim().split_once('-').ok_or_else(bad)?;
        Ok(DhcpRange {
            start: start.trim().parse().map_err(|_| bad())?,
            end: end.trim().parse().map_err(|_| bad())?,
        })
    }
}

/// An Ethernet MAC address, written `52:54:00:12:34:56` (lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The prefix vmux generates MACs under (the one QEMU and libvirt use for guests).
    pub const VMUX_PREFIX: [u8; 3] = [0x52, 0x54, 0x00];

    /// A MAC with the vmux prefix and the low three bytes of `seed`.
    pub fn with_vmux_prefix(seed: u32) -> MacAddr {
        let [_, a, b, c] = seed.to_be_bytes();
        let [p0, p1, p2] = MacAddr::VMUX_PREFIX;
        MacAddr([p0, p1, p2, a, b, c])
    }

    /// Whether frames to this MAC reach one station (multicast bit clear, not all zero).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0 && self.0 != [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<MacAddr, String> {
        let bad = || format!("'{text}' is not a MAC address; write it like 52:54:00:12:34:56");
        let mut bytes = [0u8; 6];
        let mut parts = text.trim().split(':');
        for byte in &mut bytes {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(bytes))
    }
}

/// Serializes the address types as their text form, so files read like the CLI.
macro_rules! serde_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(Ipv4Net, DhcpRange, MacAddr);

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("valid subnet")
    }

    #[test]
    fn default_network_is_valid_nat_with_libvirt_style_defaults() {
        let cfg = NetworkConfig::default_network();
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.mode, NetworkMode::Nat);
        assert_eq!(cfg.gateway, Some(Ipv4Addr::new(192, 168, 123, 1)));
        assert_eq!(
            cfg.dhcp_range.map(|r| r.to_string()).as_deref(),
            Some("192.168.123.2-192.168.123.254")
        );
    }

    #[test]
    fn subnet_with_host_bits_names_the_network_address() {
        let err = "10.77.0.5/24".parse::<Ipv4Net>().expect_err("must fail");
        assert!(err.contains("10.77.0.0/24"), "{err}");
    }

    #[test]
    fn subnet_arithmetic_matches_the_prefix() {
        let n = net("10.77.0.0/22");
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 252, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 77, 3, 255));
        assert_eq!(n.first_host(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(n.last_host(), Ipv4Addr::new(10, 77, 3, 254));
        assert!(n.contains(Ipv4Addr::new(10, 77, 2, 9)));
        assert!(!n.contains(Ipv4Addr::new(10, 77, 4, 0)));
    }

    #[test]
    fn overlap_is_detected_in_both_directions() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.77.0.0/24")));
        assert!(net("10.77.0.0/24").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.77.0.0/24").overlaps(&net("10.77.1.0/24")));
    }

    #[test]
    fn tiny_and_reserved_subnets_are_refused() {
        assert!(net("10.0.0.0/31").check_usable().is_err());
        assert!(net("127.0.0.0/24").check_usable().is_err());
        assert!(net("224.0.0.0/24").check_usable().is_err());
        assert!(net("10.0.0.0/30").check_usable().is_ok());
    }

    #[test]
    fn dhcp_range_outside_the_subnet_is_refused() {
        let range = "10.78.0.1-10.78.0.9".parse().ok();
        let cfg = NetworkConfig::routed(
            "lab",
            NetworkMode::Isolated,
            "vmux-lab",
            net("10.77.0.0/24"),
            None,
            range,
        );
        assert!(cfg.validate().expect_err("must fail").contains("within"));
    }

    #[test]
    fn dhcp_range_covering_the_gateway_is_refused() {
        let range = "10.77.0.1-10.77.0.9".parse().ok();
        let cfg = NetworkConfig::routed(
            "lab",
            NetworkMode::Nat,
            "vmux-lab",
            net("10.77.0.0/24"),
            None,
            range,
        );
        assert!(cfg.validate().expect_err("must fail").contains("gateway"));
    }

    #[test]
    fn reversed_dhcp_range_is_refused() {
        let range = "10.77.0.200-10.77.0.100".parse().ok();
        let cfg = NetworkConfig::routed(
            "lab",
            NetworkMode::Nat,
            "vmux-lab",
            net("10.77.0.0/24"),
            None,
            range,
        );
        assert!(cfg.validate().expect_err("must fail").contains("lower"));
    }

    #[test]
    fn bridge_mode_with_a_subnet_is_refused() {
        let cfg = NetworkConfig {
            subnet: Some(net("10.0.0.0/24")),
            ..NetworkConfig::bridged("lan", "br0")
        };
        assert!(cfg.validate().is_err());
        assert_eq!(NetworkConfig::bridged("lan", "br0").validate(), Ok(()));
    }

    #[test]
    fn interface_names_longer_than_15_are_refused() {
        assert!(validate_ifname("vmux-01234567890").is_err());
        assert!(validate_ifname("vmux-0123456789").is_ok());
        assert!(validate_ifname("br/0").is_err());
    }

    #[test]
    fn names_starting_with_a_dash_never_reach_a_command_line() {
        let err = validate_ifname("-help").expect_err("an option, not a name");
        assert!(err.contains("'-help'") && err.contains("option"), "{err}");
        let mut cfg = NetworkConfig::bridged("lan", "-help");
        assert!(cfg.validate().expect_err("bridge").contains("option"));
        cfg.bridge = "br0".into();
        cfg.name = "-lan".into();
        assert!(cfg.validate().is_err(), "network name");
        let nic = NicConfig {
            network: "-x".into(),
            mac: MacAddr::with_vmux_prefix(1),
        };
        assert!(nic.validate().is_err(), "network name in a NIC");
        assert!(
            crate::config::validate_name("-vm").is_err(),
            "VM and pool names"
        );
    }

    #[test]
    fn mac_parses_and_prints_lower_case() {
        let mac: MacAddr = "52:54:00:AB:cd:0f".parse().expect("valid");
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert!(mac.is_unicast());
        for bad in [
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "5254.00ab.cd0f",
            "52:54:00:ab:cd:g0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn multicast_mac_is_refused_for_a_nic() {
        let nic = NicConfig {
            network: "default".into(),
            mac: "01:00:5e:00:00:01".parse().expect("valid"),
        };
        assert!(nic.validate().expect_err("must fail").contains("multicast"));
    }

    #[test]
    fn generated_macs_carry_the_vmux_prefix() {
        let mac = MacAddr::with_vmux_prefix(0xdead_beef);
        assert_eq!(mac.to_string(), "52:54:00:ad:be:ef");
    }

    #[test]
    fn toml_round_trip_keeps_text_forms() {
        let cfg = NetworkConfig::default_network();
        let text = toml::to_string(&cfg).expect("serialize");
        assert!(text.contains("subnet = \"192.168.123.0/24\""), "{text}");
        assert!(text.contains("mode = \"nat\""), "{text}");
        let back: NetworkConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, cfg);
    }
}
