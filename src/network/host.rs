//! What the network code asks of the host: running `ip`, `nft` and `dnsmasq`, reading links
//! and routes, and telling a live process from a dead or recycled pid.
//!
//! Links come from `ip -j -d link show` rather than `/sys/class/net`, because sysfs shows the
//! namespace it was mounted in, while `ip` and `/proc/self/net` always show the caller's.

use super::NetworkError;
use crate::config::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Runs `program args...` and returns its stdout; a non-zero exit becomes
/// [`NetworkError::Command`] carrying stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, NetworkError> {
    run_with_input(program, args, None)
}

/// Runs `ip` with whitespace-separated `args` (`"link set dev vm-a-0 up"`). Only for
/// arguments vmux built from validated names and addresses, none of which hold whitespace.
pub(crate) fn ip(args: &str) -> Result<String, NetworkError> {
    run("ip", &args.split_whitespace().collect::<Vec<_>>())
}

/// Like [`run`], feeding `input` on stdin (for `nft -f -`).
pub(crate) fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, NetworkError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetworkError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error means the program exited early; its status and stderr say why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|source| NetworkError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetworkError::Command {
            command: std::iter::once(program)
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One network interface as `ip -j -d link show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Link {
    /// Interface name.
    pub ifname: String,
    /// The bridge (or bond) this interface is a port of.
    #[serde(default)]
    pub master: Option<String>,
    /// `IFF_*` flag names (`UP`, `LOWER_UP`, ...).
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct LinkInfo {
    #[serde(default)]
    info_kind: Option<String>,
}

impl Link {
    /// The link type (`bridge`, `tun`, `veth`), when it has one.
    pub fn kind(&self) -> Option<&str> {
        self.linkinfo.as_ref()?.info_kind.as_deref()
    }

    /// Whether the interface is a Linux bridge.
    pub fn is_bridge(&self) -> bool {
        self.kind() == Some("bridge")
    }

    /// Whether the interface is administratively up.
    pub fn is_up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
}

#[cfg(test)]
impl Link {
    /// A plain interface named `ifname` (unit tests' host pictures).
    pub(crate) fn named(ifname: &str) -> Link {
        Link {
            ifname: ifname.to_string(),
            master: None,
            flags: Vec::new(),
            linkinfo: None,
        }
    }
}

/// Where the network verbs read the host's interfaces and routes from: the host itself, or in
/// unit tests a fixed picture, so that no unit test depends on the interfaces of the machine
/// it runs on (a user's own `vmux-lab` bridge once changed a test's expected bridge name).
#[derive(Debug, Clone, Default)]
pub(crate) enum HostView {
    /// `ip -j -d link show` and `/proc/net/route` of the caller's namespace.
    #[default]
    Live,
    /// These links and routes (unit tests).
    #[cfg(test)]
    Fixed {
        /// The interfaces.
        links: Vec<Link>,
        /// The routes.
        routes: Vec<Route>,
    },
}

impl HostView {
    /// Every interface.
    pub(crate) fn links(&self) -> Result<Vec<Link>, NetworkError> {
        match self {
            HostView::Live => links(),
            #[cfg(test)]
            HostView::Fixed { links, .. } => Ok(links.clone()),
        }
    }

    /// The IPv4 routes except the default route.
    pub(crate) fn routes(&self) -> Result<Vec<Route>, NetworkError> {
        match self {
            HostView::Live => routes(),
            #[cfg(test)]
            HostView::Fixed { routes, .. } => Ok(routes.clone()),
        }
    }
}

/// Every interface in the caller's network namespace.
pub fn links() -> Result<Vec<Link>, NetworkError> {
    let text = run("ip", &["-j", "-d", "link", "show"])?;
    serde_json::from_str(&text).map_err(|e| NetworkError::Parse {
        what: "the output of `ip -j link show`".into(),
        detail: e.to_string(),
    })
}

/// The interface named `name`, if it exists.
pub fn link(name: &str) -> Result<Option<Link>, NetworkError> {
    Ok(links()?.into_iter().find(|l| l.ifname == name))
}

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub destination: Ipv4Net,
    /// Outgoing interface.
    pub interface: String,
}

/// The main table's IPv4 routes except the default route (which every subnet "overlaps").
pub fn routes() -> Result<Vec<Route>, NetworkError> {
    let path = "/proc/net/route";
    let text = std::fs::read_to_string(path).map_err(|source| NetworkError::Io {
        path: path.into(),
        source,
    })?;
    Ok(parse_routes(&text))
}

/// Parses `/proc/net/route`: addresses are little-endian hex (`0002A8C0` is 192.168.2.0).
fn parse_routes(text: &str) -> Vec<Route> {
    let hex = |field: &str| u32::from_str_radix(field, 16).ok().map(u32::from_be);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, mask) = (fields.first()?, fields.get(1)?, fields.get(7)?);
            let mask = hex(mask)?;
            if mask == 0 {
                return None;
            }
            let prefix = u8::try_from(mask.leading_ones()).ok()?;
            let destination = Ipv4Net::new(Ipv4Addr::from(hex(dest)?), prefix).ok()?;
            Some(Route {
                destination,
                interface: iface.to_string(),
            })
        })
        .collect()
}

/// MAC → IPv4 pairs the host's neighbour (ARP) table holds for `device`.
pub fn neighbours(device: &str) -> Result<Vec<(String, Ipv4Addr)>, NetworkError> {
    #[derive(Deserialize)]
    struct Neighbour {
        dst: String,
        #[serde(default)]
        lladdr: Option<String>,
    }
    let text = run("ip", &["-j", "-4", "neigh", "show", "dev", device])?;
    let entries: Vec<Neighbour> = serde_json::from_str(&text).map_err(|e| NetworkError::Parse {
        what: "the output of `ip -j neigh show`".into(),
        detail: e.to_string(),
    })?;
    Ok(entries
        .into_iter()
        .filter_map(|n| Some((n.lladdr?, n.dst.parse().ok()?)))
        .collect())
}

/// Turns on IPv4 forwarding. It must be global: replies to masqueraded guest traffic enter
/// through the uplink, whose own forwarding setting decides whether they are routed on.
/// libvirt does the same, and like libvirt vmux never turns it back off (other networks or
/// the admin may rely on it).
pub fn enable_ip_forward() -> Result<(), NetworkError> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1\n").map_err(|source| NetworkError::Io {
        path: path.into(),
        source,
    })
}

/// A process, identified by pid *and* start time so that a recycled pid is not mistaken for
/// the process we started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessId {
    /// The calling process.
    pub fn current() -> Option<ProcessId> {
        ProcessId::of(std::process::id())
    }

    /// The live (not zombie) process with this pid, if there is one.
    pub fn of(pid: u32) -> Option<ProcessId> {
        let stat = ProcStat::read(pid)?;
        (stat.state != 'Z' && stat.state != 'X').then_some(ProcessId {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Whether this very process still runs. A zombie counts as dead: daemons are reparented
    /// to a pid 1 that may never reap them.
    pub fn is_alive(&self) -> bool {
        ProcessId::of(self.pid).is_some_and(|now| now == *self)
    }

    /// The process's command name (`comm`), while it runs.
    pub fn command_name(&self) -> Option<String> {
        self.is_alive()
            .then(|| ProcStat::read(self.pid).map(|s| s.comm))
            .flatten()
    }
}

/// The fields of `/proc/<pid>/stat` vmux uses.
struct ProcStat {
    comm: String,
    state: char,
    start_time: u64,
}

impl ProcStat {
    fn read(pid: u32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        ProcStat::parse(&text)
    }

    /// `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last `)`.
    fn parse(text: &str) -> Option<ProcStat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_string();
        let mut rest = text.get(close + 1..)?.split_whitespace();
        let state = rest.next()?.chars().next()?;
        // Field 22 overall; `rest` starts at field 3.
        let start_time = rest.nth(22 - 4)?.parse().ok()?;
        Some(ProcStat {
            comm,
            state,
            start_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_routes_parse_little_endian_and_skip_the_default_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            wg0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
        let routes = parse_routes(text);
        let shown: Vec<String> = routes
            .iter()
            .map(|r| format!("{} {}", r.destination, r.interface))
            .collect();
        assert_eq!(shown, ["192.0.2.0/24 eth0", "10.0.0.0/8 wg0"]);
    }

    #[test]
    fn stat_with_parentheses_in_comm_parses() {
        let mut text = String::from("42 (a (b) c) S");
        for field in 4..=22 {
            text.push_str(&format!(" {field}"));
        }
        let stat = ProcStat::parse(&text).expect("parses");
        assert_eq!(stat.comm, "a (b) c");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 22);
    }

    #[test]
    fn the_current_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current().expect("own stat readable");
        assert!(me.is_alive());
        let recycled = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }

    #[test]
    fn link_json_gives_kind_master_and_state() {
        let text = r#"[{"ifname":"vm-a-0","flags":["BROADCAST","UP"],"master":"vmux-default",
            "linkinfo":{"info_kind":"tun"}},{"ifname":"lo","flags":["LOOPBACK"]}]"#;
        let links: Vec<Link> = serde_json::from_str(text).expect("parses");
        assert_eq!(links[0].kind(), Some("tun"));
        assert_eq!(links[0].master.as_deref(), Some("vmux-default"));
        assert!(links[0].is_up());
        assert!(!links[1].is_up() && !links[1].is_bridge());
    }
}
