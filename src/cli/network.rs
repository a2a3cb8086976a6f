//! The network verbs: `net-list`, `net-define-as`, `net-start`, `net-destroy`,
//! `net-undefine`, `net-autostart`, `net-info` and `domifaddr`, over the host's
//! [`NetworkHost`].
//!
//! Every verb first checks CAP_NET_ADMIN (and says exactly that when it is missing), then
//! reconciles recorded state with the host, printing each repair as a warning on stderr.
//! Read verbs print a table, or JSON with `--json`.

use super::Io;
use super::complete;
use crate::client::{HostApi, NetworkHost};
use crate::config::{DhcpRange, Ipv4Net, NetworkConfig, NetworkMode, validate_name};
use crate::network::{
    AttachedNic, InterfaceAddress, NetworkError, NetworkInfo, NetworkStatus, leases::Lease,
};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;

/// The network verbs, flattened into the top-level command line.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum NetworkCommand {
    /// List active networks (all defined ones with --all).
    NetList {
        /// Include inactive networks.
        #[arg(long)]
        all: bool,
        /// Only inactive networks.
        #[arg(long, conflicts_with = "all")]
        inactive: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Define a network from options (nat, isolated or bridge).
    NetDefineAs(DefineArgs),
    /// Start a network: bridge, NAT rules and DHCP/DNS come up.
    NetStart {
        /// Network name.
        #[arg(add = ArgValueCandidates::new(complete::network_names))]
        name: String,
    },
    /// Stop a network (refused while running VMs use it).
    NetDestroy {
        /// Network name.
        #[arg(add = ArgValueCandidates::new(complete::network_names))]
        name: String,
    },
    /// Delete a stopped network's definition.
    NetUndefine {
        /// Network name.
        #[arg(add = ArgValueCandidates::new(complete::network_names))]
        name: String,
    },
    /// Start a network with `vmux autostart-all` (host boot).
    NetAutostart {
        /// Network name.
        #[arg(add = ArgValueCandidates::new(complete::network_names))]
        name: String,
        /// Stop autostarting it instead.
        #[arg(long)]
        disable: bool,
    },
    /// Show a network: addressing, DHCP leases, attached VMs.
    NetInfo {
        /// Network name.
        #[arg(add = ArgValueCandidates::new(complete::network_names))]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the IP addresses of a VM's network interfaces.
    Domifaddr {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        vm: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Options of `net-define-as`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DefineArgs {
    /// Network name.
    pub name: String,
    /// How guests are connected.
    #[arg(long, value_enum, default_value_t = ModeArg::Nat)]
    pub mode: ModeArg,
    /// Guest subnet, e.g. 10.77.0.0/24 (nat and isolated).
    #[arg(long, value_parser = parse_text::<Ipv4Net>)]
    pub subnet: Option<Ipv4Net>,
    /// The host's address in the subnet (default: its first address).
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Addresses DHCP hands out, e.g. 10.77.0.100-10.77.0.200 (default: the rest of the subnet).
    #[arg(long, value_parser = parse_text::<DhcpRange>)]
    pub dhcp_range: Option<DhcpRange>,
    /// Bridge: the host's existing bridge (bridge mode) or the name vmux gives its own.
    #[arg(long)]
    pub bridge: Option<String>,
    /// Also mark it to start at host boot.
    #[arg(long)]
    pub autostart: bool,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// NAT to the host's other interfaces, with DHCP and DNS.
    Nat,
    /// DHCP and DNS, no way out.
    Isolated,
    /// Join an existing host bridge (guests appear on the LAN).
    Bridge,
}

impl From<ModeArg> for NetworkMode {
    fn from(mode: ModeArg) -> NetworkMode {
        match mode {
            ModeArg::Nat => NetworkMode::Nat,
            ModeArg::Isolated => NetworkMode::Isolated,
            ModeArg::Bridge => NetworkMode::Bridge,
        }
    }
}

fn parse_text<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

impl NetworkCommand {
    /// Whether the verb was asked for JSON output (`--json` on the read verbs).
    pub fn wants_json(&self) -> bool {
        match self {
            NetworkCommand::NetList { json, .. }
            | NetworkCommand::NetInfo { json, .. }
            | NetworkCommand::Domifaddr { json, .. } => *json,
            _ => false,
        }
    }
}

/// Runs one network verb against `host`'s networks, results on `io.out`, warnings on
/// `io.err`.
pub fn run(command: NetworkCommand, host: &HostApi, io: &mut Io<'_>) -> anyhow::Result<ExitCode> {
    let json = command.wants_json();
    let networks = host.networks.as_ref();
    networks.require_admin()?;
    for note in networks.reconcile()? {
        writeln!(io.err, "warning: {note}")?;
    }
    execute(networks, command, json, io.out, io.err)?;
    Ok(ExitCode::SUCCESS)
}

/// Carries out `command`, results on `out`, warnings on `err`.
fn execute(
    manager: &dyn NetworkHost,
    command: NetworkCommand,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        NetworkCommand::NetList { all, inactive, .. } => {
            let list = manager.list()?;
            for broken in &list.broken {
                writeln!(err, "warning: {broken}")?;
            }
            let shown: Vec<NetworkStatus> = list
                .networks
                .into_iter()
                .filter(|status| all || status.active != inactive)
                .collect();
            if json {
                writeln!(out, "{:#}", list_json(&shown))?;
            } else {
                write!(out, "{}", list_table(&shown))?;
            }
        }
        NetworkCommand::NetDefineAs(args) => {
            let cfg = definition(manager, args)?;
            manager.define(&cfg)?;
            writeln!(out, "Network {} defined ({})", cfg.name, summary(&cfg))?;
        }
        NetworkCommand::NetStart { name } => {
            manager.start(&name)?;
            writeln!(out, "Network {name} started")?;
        }
        NetworkCommand::NetDestroy { name } => {
            manager.stop(&name)?;
            writeln!(out, "Network {name} destroyed")?;
        }
        NetworkCommand::NetUndefine { name } => {
            for note in manager.undefine(&name)? {
                writeln!(err, "warning: {note}")?;
            }
            writeln!(out, "Network {name} has been undefined")?;
        }
        NetworkCommand::NetAutostart { name, disable } => {
            manager.set_autostart(&name, !disable)?;
            let verb = if disable { "unmarked" } else { "marked" };
            writeln!(out, "Network {name} {verb} as autostarted")?;
        }
        NetworkCommand::NetInfo { name, .. } => {
            let info = manager.info(&name)?;
            if json {
                writeln!(out, "{:#}", info_json(&info))?;
            } else {
                write!(out, "{}", info_text(&info))?;
            }
        }
        NetworkCommand::Domifaddr { vm, .. } => {
            let addresses = manager.addresses(&vm)?;
            if addresses.is_empty() {
                writeln!(
                    err,
                    "VM '{vm}' has no network interfaces; give it one with `--network <net>` when creating it"
                )?;
            }
            if json {
                writeln!(out, "{:#}", serde_json::to_value(&addresses)?)?;
            } else {
                write!(out, "{}", addresses_table(&addresses))?;
            }
        }
    }
    Ok(())
}

/// The definition `net-define-as` asks for, with defaults filled in.
fn definition(manager: &dyn NetworkHost, args: DefineArgs) -> anyhow::Result<NetworkConfig> {
    validate_name(&args.name).map_err(NetworkError::Invalid)?;
    let mode = NetworkMode::from(args.mode);
    let mut cfg = if mode.is_managed() {
        let subnet = args.subnet.with_context(|| {
            format!(
                "a {mode} network needs --subnet, e.g. `vmux net-define-as {} --mode {mode} --subnet 10.77.0.0/24`",
                args.name
            )
        })?;
        let bridge = match args.bridge {
            Some(bridge) => bridge,
            None => manager.unused_bridge_name(&args.name)?,
        };
        NetworkConfig::routed(
            &args.name,
            mode,
            &bridge,
            subnet,
            args.gateway,
            args.dhcp_range,
        )
    } else {
        if args.subnet.is_some() || args.gateway.is_some() || args.dhcp_range.is_some() {
            anyhow::bail!(
                "--subnet, --gateway and --dhcp-range do not apply to bridge mode: guests get their addresses from the LAN behind the bridge"
            );
        }
        let bridge = args.bridge.with_context(|| {
            format!(
                "bridge mode needs --bridge naming an existing host bridge, e.g. `vmux net-define-as {} --mode bridge --bridge br0`",
                args.name
            )
        })?;
        NetworkConfig::bridged(&args.name, &bridge)
    };
    cfg.autostart = args.autostart;
    Ok(cfg)
}

/// `nat, 192.168.123.0/24, bridge vmux-default`.
fn summary(cfg: &NetworkConfig) -> String {
    match cfg.subnet {
        Some(subnet) => format!("{}, {subnet}, bridge {}", cfg.mode, cfg.bridge),
        None => format!("{}, host bridge {}", cfg.mode, cfg.bridge),
    }
}

fn state_label(active: bool) -> &'static str {
    if active { "active" } else { "inactive" }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn list_table(networks: &[NetworkStatus]) -> String {
    let rows = networks
        .iter()
        .map(|n| {
            vec![
                n.config.name.clone(),
                state_label(n.active).into(),
                yes_no(n.config.autostart).into(),
                n.config.mode.to_string(),
                n.config.bridge.clone(),
                or_dash(n.config.subnet),
            ]
        })
        .collect();
    table(
        &["Name", "State", "Autostart", "Mode", "Bridge", "Subnet"],
        rows,
    )
}

fn list_json(networks: &[NetworkStatus]) -> Value {
    networks
        .iter()
        .map(|n| {
            json!({
                "name": n.config.name,
                "state": state_label(n.active),
                "autostart": n.config.autostart,
                "mode": n.config.mode,
                "bridge": n.config.bridge,
                "subnet": n.config.subnet,
                "gateway": n.config.gateway,
                "dhcp_range": n.config.dhcp_range,
            })
        })
        .collect()
}

fn info_json(info: &NetworkInfo) -> Value {
    let cfg = &info.config;
    json!({
        "name": cfg.name,
        "state": state_label(info.active.is_some()),
        "autostart": cfg.autostart,
        "mode": cfg.mode,
        "bridge": cfg.bridge,
        "subnet": cfg.subnet,
        "gateway": cfg.gateway,
        "dhcp_range": cfg.dhcp_range,
        "nft_table": info.active.as_ref().and_then(|a| a.nft_table.clone()),
        "dnsmasq_pid": info.active.as_ref().and_then(|a| a.dnsmasq).map(|p| p.pid),
        "leases": info.leases,
        "vms": info.attached,
    })
}

fn info_text(info: &NetworkInfo) -> String {
    let cfg = &info.config;
    let mut text = String::new();
    let mut field = |label: &str, value: String| {
        let _ = writeln!(text, "{:<14}{value}", format!("{label}:"));
    };
    field("Name", cfg.name.clone());
    field("State", state_label(info.active.is_some()).into());
    field("Autostart", yes_no(cfg.autostart).into());
    field("Mode", cfg.mode.to_string());
    field("Bridge", cfg.bridge.clone());
    if let Some(addressing) = cfg.addressing() {
        field("Subnet", addressing.subnet.to_string());
        field("Gateway", addressing.gateway.to_string());
        field(
            "DHCP range",
            format!(
                "{} ({} addresses)",
                addressing.dhcp_range,
                addressing.dhcp_range.size()
            ),
        );
    }
    if let Some(active) = &info.active {
        if let Some(table) = &active.nft_table {
            field("NAT table", format!("ip {table}"));
        }
        if let Some(process) = active.dnsmasq {
            field("dnsmasq pid", process.pid.to_string());
        }
    }
    if cfg.mode.is_managed() {
        text.push_str("\nLeases:\n");
        text.push_str(&leases_table(&info.leases));
    }
    text.push_str("\nVMs:\n");
    text.push_str(&attached_table(&info.attached));
    text
}

fn leases_table(leases: &[Lease]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rows = leases
        .iter()
        .map(|l| {
            let expires = match l.expires {
                None => "never".to_string(),
                Some(end) => format!("in {}s", end.saturating_sub(now)),
            };
            vec![
                l.mac.to_string(),
                l.ip.to_string(),
                or_dash(l.hostname.clone()),
                expires,
            ]
        })
        .collect();
    table(&["MAC address", "Address", "Hostname", "Expires"], rows)
}

fn attached_table(nics: &[AttachedNic]) -> String {
    let rows = nics
        .iter()
        .map(|n| {
            vec![
                n.vm.clone(),
                n.mac.to_string(),
                or_dash(n.tap.clone()),
                or_dash(n.ip),
            ]
        })
        .collect();
    table(&["VM", "MAC address", "TAP", "Address"], rows)
}

fn addresses_table(addresses: &[InterfaceAddress]) -> String {
    let rows = addresses
        .iter()
        .map(|a| {
            let address = match (a.ip, a.prefix) {
                (Some(ip), Some(prefix)) => format!("{ip}/{prefix}"),
                (Some(ip), None) => ip.to_string(),
                (None, _) => "-".into(),
            };
            vec![
                or_dash(a.tap.clone()),
                a.mac.to_string(),
                a.network.clone(),
                if a.ip.is_some() { "ipv4" } else { "-" }.into(),
                address,
            ]
        })
        .collect();
    table(
        &["Name", "MAC address", "Network", "Protocol", "Address"],
        rows,
    )
}

/// A virsh-style table: header, a rule, left-aligned columns.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|col| {
            rows.iter()
                .filter_map(|r| r.get(col))
                .map(|c| c.chars().count())
                .chain(std::iter::once(header[col].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(text, " {cell:<width$}  ");
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    out.push_str(&"-".repeat(widths.iter().map(|w| w + 3).sum()));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::LocalNetworks;
    use crate::config::{BootConfig, MacAddr, Paths, VmConfig};
    use crate::network::host::HostView;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: NetworkCommand,
    }

    fn parse(args: &[&str]) -> NetworkCommand {
        Cli::try_parse_from(std::iter::once("vmux").chain(args.iter().copied()))
            .expect("parses")
            .command
    }

    /// The networks of a temp home, seeing a host with no interfaces and no routes: no unit
    /// test depends on the machine's own (a user's `vmux-lab` bridge, say).
    fn manager() -> (tempfile::TempDir, LocalNetworks) {
        let dir = tempfile::tempdir().expect("tempdir");
        let networks = LocalNetworks::new(Paths::under(dir.path())).with_host(HostView::Fixed {
            links: Vec::new(),
            routes: Vec::new(),
        });
        (dir, networks)
    }

    fn run_verb(manager: &LocalNetworks, args: &[&str], json: bool) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        execute(manager, parse(args), json, &mut out, &mut err).expect("verb succeeds");
        (
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    }

    #[test]
    fn verbs_parse_with_virsh_names() {
        assert_eq!(
            parse(&["net-list", "--all"]),
            NetworkCommand::NetList {
                all: true,
                inactive: false,
                json: false
            }
        );
        let NetworkCommand::NetDefineAs(args) = parse(&[
            "net-define-as",
            "lab",
            "--mode",
            "isolated",
            "--subnet",
            "10.77.0.0/24",
            "--dhcp-range",
            "10.77.0.100-10.77.0.200",
        ]) else {
            panic!("not net-define-as");
        };
        assert_eq!(args.mode, ModeArg::Isolated);
        assert_eq!(args.dhcp_range.map(|r| r.size()), Some(101));
    }

    #[test]
    fn a_bad_subnet_is_refused_by_the_parser_with_an_example() {
        let err = Cli::try_parse_from(["vmux", "net-define-as", "x", "--subnet", "10.1.2.3"])
            .expect_err("bad subnet");
        assert!(err.to_string().contains("192.168.50.0/24"), "{err}");
    }

    #[test]
    fn net_list_all_shows_the_default_network_inactive() {
        let (_dir, manager) = manager();
        let (out, _) = run_verb(&manager, &["net-list", "--all"], false);
        let line = out.lines().nth(2).expect("one row");
        for cell in [
            "default",
            "inactive",
            "no",
            "nat",
            "vmux-default",
            "192.168.123.0/24",
        ] {
            assert!(line.contains(cell), "{cell} missing: {out}");
        }
        let (active_only, _) = run_verb(&manager, &["net-list"], false);
        assert_eq!(active_only.lines().count(), 2, "{active_only}");
    }

    #[test]
    fn define_as_fills_in_gateway_range_and_a_bridge_name() {
        let (_dir, manager) = manager();
        let args = [
            "net-define-as",
            "lab",
            "--mode",
            "isolated",
            "--subnet",
            "10.77.0.0/24",
        ];
        let Ok(cfg) = (match parse(&args) {
            NetworkCommand::NetDefineAs(args) => definition(&manager, args),
            other => panic!("{other:?}"),
        }) else {
            panic!("definition refused");
        };
        assert_eq!(cfg.gateway, Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(
            cfg.dhcp_range.map(|r| r.to_string()).as_deref(),
            Some("10.77.0.2-10.77.0.254")
        );
        assert_eq!(cfg.bridge, "vmux-lab");
    }

    #[test]
    fn bridge_mode_without_a_bridge_says_how() {
        let (_dir, manager) = manager();
        let NetworkCommand::NetDefineAs(args) =
            parse(&["net-define-as", "lan", "--mode", "bridge"])
        else {
            panic!("not net-define-as");
        };
        let err = definition(&manager, args).expect_err("no bridge");
        assert!(err.to_string().contains("--bridge br0"), "{err}");
    }

    #[test]
    fn a_bridge_named_like_an_option_is_refused_before_anything_runs() {
        let (_dir, manager) = manager();
        let args = parse(&["net-define-as", "lan", "--mode", "bridge", "--bridge=-help"]);
        let (mut out, mut err) = (Vec::new(), Vec::new());

        let result = execute(&manager, args, false, &mut out, &mut err);

        let text = format!("{:#}", result.expect_err("refused"));
        assert!(
            text.contains("'-help'") && text.contains("option"),
            "{text}"
        );
        let list = manager.list().expect("list");
        assert!(!list.networks.iter().any(|n| n.config.name == "lan"));
    }

    #[test]
    fn net_info_json_has_addressing_leases_and_vms() {
        let (dir, manager) = manager();
        let mut vm = VmConfig::new("web1", BootConfig::Demo);
        let mac: MacAddr = "52:54:00:12:34:56".parse().expect("mac");
        vm.nics.push(
            manager
                .new_nic(&vm, "default", Some(mac))
                .expect("nic on default"),
        );
        crate::config::Store::new(Paths::under(dir.path()))
            .create(&vm)
            .expect("define web1");
        let leases =
            crate::network::state::StateDir::new(&Paths::under(dir.path())).lease_file("default");
        std::fs::create_dir_all(leases.parent().expect("dir")).expect("mkdir");
        std::fs::write(&leases, "0 52:54:00:12:34:56 192.168.123.76 web1 *\n").expect("lease");
        let (out, _) = run_verb(&manager, &["net-info", "default"], true);
        let value: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["gateway"], "192.168.123.1");
        assert_eq!(value["dhcp_range"], "192.168.123.2-192.168.123.254");
        assert_eq!(value["leases"][0]["ip"], "192.168.123.76");
        assert_eq!(value["vms"][0]["vm"], "web1");
        assert_eq!(value["vms"][0]["ip"], "192.168.123.76");
        let (domifaddr, _) = run_verb(&manager, &["domifaddr", "web1"], false);
        assert!(domifaddr.contains("192.168.123.76/24"), "{domifaddr}");
    }

    #[test]
    fn domifaddr_of_a_vm_without_nics_says_how_to_add_one() {
        let (dir, manager) = manager();
        crate::config::Store::new(Paths::under(dir.path()))
            .create(&VmConfig::new("bare", BootConfig::Demo))
            .expect("define");
        let (_, err) = run_verb(&manager, &["domifaddr", "bare"], false);
        assert!(err.contains("--network"), "{err}");
    }
}
