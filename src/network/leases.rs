//! dnsmasq's lease file: which guest MAC holds which address.
//!
//! One lease per line: `<expiry> <mac> <ip> <hostname|*> <client-id|*>`, expiry in seconds
//! since the Unix epoch (0 = never). DHCPv6 lines (`duid ...`, IPv6 addresses) are skipped.

use super::NetworkError;
use crate::config::MacAddr;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;

/// One DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// When it ends, seconds since the Unix epoch; `None` for an infinite lease.
    pub expires: Option<u64>,
    /// The client's MAC.
    pub mac: MacAddr,
    /// The address leased.
    pub ip: Ipv4Addr,
    /// The hostname the client sent, if any.
    pub hostname: Option<String>,
}

/// Parses lease-file text, skipping lines that are not IPv4 leases.
pub fn parse(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let expires: u64 = fields.next()?.parse().ok()?;
            let mac = fields.next()?.parse().ok()?;
            let ip = fields.next()?.parse().ok()?;
            let hostname = fields.next().filter(|h| *h != "*").map(str::to_string);
            Some(Lease {
                expires: (expires != 0).then_some(expires),
                mac,
                ip,
                hostname,
            })
        })
        .collect()
}

/// The unexpired leases in `path` at time `now` (seconds since the epoch); a missing file
/// means no leases yet.
pub fn read(path: &Path, now: u64) -> Result<Vec<Lease>, NetworkError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetworkError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Ok(parse(&text)
        .into_iter()
        .filter(|lease| lease.expires.is_none_or(|end| end > now))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
1795317490 52:54:00:12:34:56 192.168.123.76 web1 01:52:54:00:12:34:56
0 52:54:00:00:00:02 192.168.123.9 * *
duid 00:01:00:01:2c:aa:bb:cc:dd:ee:ff:00:11:22
1795317490 1234 fd00::5 * 00:01:00:01
";

    #[test]
    fn ipv4_leases_parse_with_hostname_and_infinite_expiry() {
        let leases = parse(SAMPLE);
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[0].ip, Ipv4Addr::new(192, 168, 123, 76));
        assert_eq!(leases[0].hostname.as_deref(), Some("web1"));
        assert_eq!(leases[1].expires, None);
        assert_eq!(leases[1].hostname, None);
    }

    #[test]
    fn expired_leases_are_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leases");
        std::fs::write(&path, SAMPLE).expect("write");
        let leases = read(&path, 1_795_317_490).expect("read");
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].expires, None);
    }

    #[test]
    fn a_missing_lease_file_means_no_leases() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(&dir.path().join("none"), 0).expect("read").is_empty());
    }
}
