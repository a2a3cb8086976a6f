//! The one privilege networks need: CAP_NET_ADMIN, read from the effective set in
//! `/proc/self/status` (`CapEff`, a hex bitmask) so the error can come before any command
//! half-succeeds.

use super::NetworkError;

/// CAP_NET_ADMIN's bit number (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;

/// Fails with [`NetworkError::MissingCapability`] unless this process has CAP_NET_ADMIN
/// in its effective set.
pub fn require_net_admin() -> Result<(), NetworkError> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|source| NetworkError::Io {
        path: path.into(),
        source,
    })?;
    let effective = effective_caps(&status).ok_or_else(|| NetworkError::Parse {
        what: path.into(),
        detail: "no CapEff line".into(),
    })?;
    if effective & (1 << CAP_NET_ADMIN) == 0 {
        return Err(NetworkError::MissingCapability);
    }
    Ok(())
}

/// The `CapEff:` mask of a `/proc/<pid>/status` text.
fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_read_as_hex() {
        let status = "Name:\tvmux\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n";
        assert_eq!(effective_caps(status), Some(1 << CAP_NET_ADMIN));
    }

    #[test]
    fn a_mask_without_bit_12_lacks_net_admin() {
        let status = "CapEff:\t000001fffeffefff\n";
        let mask = effective_caps(status).expect("parses");
        assert_eq!(mask & (1 << CAP_NET_ADMIN), 0);
    }
}
