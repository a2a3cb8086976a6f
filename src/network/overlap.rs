//! The one rule for guest subnets that collide: a nat or isolated network's subnet must not
//! overlap another vmux network's subnet or a network the host already routes (a LAN, a VPN,
//! a container bridge), or guests and the host would disagree about where packets go.
//!
//! `net-define-as` and the TUI's network form refuse a definition that breaks it (against the
//! defined networks); `net-start` checks again against the networks started and the routes at
//! that moment, since routes come and go.

use super::host::Route;
use crate::config::Ipv4Net;

/// What `subnet` overlaps, in words ("network 'lab' (10.77.0.0/24)", "the host route
/// 10.0.0.0/8 on eth0"), or `None`. `networks` are the other vmux networks' names and subnets;
/// they are named first, since their bridges' routes are among `routes` while they run.
pub fn subnet_conflict<'a>(
    subnet: Ipv4Net,
    networks: impl IntoIterator<Item = (&'a str, Ipv4Net)>,
    routes: &[Route],
) -> Option<String> {
    if let Some((name, theirs)) = networks
        .into_iter()
        .find(|(_, theirs)| theirs.overlaps(&subnet))
    {
        return Some(format!("network '{name}' ({theirs})"));
    }
    routes
        .iter()
        .find(|r| r.destination.overlaps(&subnet))
        .map(|r| format!("the host route {} on {}", r.destination, r.interface))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("subnet")
    }

    fn route(destination: &str, interface: &str) -> Route {
        Route {
            destination: net(destination),
            interface: interface.into(),
        }
    }

    #[test]
    fn another_network_is_named_before_its_bridge_route() {
        let routes = [route("10.77.0.0/24", "vmux-lab")];
        let conflict =
            subnet_conflict(net("10.77.0.0/16"), [("lab", net("10.77.0.0/24"))], &routes);
        assert_eq!(conflict.as_deref(), Some("network 'lab' (10.77.0.0/24)"));
    }

    #[test]
    fn a_host_route_is_named_with_its_interface() {
        let routes = [route("192.168.1.0/24", "eth0")];
        let conflict = subnet_conflict(net("192.168.0.0/16"), [], &routes);
        assert_eq!(
            conflict.as_deref(),
            Some("the host route 192.168.1.0/24 on eth0")
        );
    }

    #[test]
    fn a_free_subnet_has_no_conflict() {
        let routes = [route("192.168.1.0/24", "eth0")];
        let free = subnet_conflict(net("10.99.0.0/24"), [("lab", net("10.77.0.0/24"))], &routes);
        assert_eq!(free, None);
    }
}
