//! Per-NIC traffic counters: updated by the NIC's worker thread, read by anyone (vmd's stats
//! sampling) through [`NicStats`] snapshots. Relaxed atomics: each counter is exact, a
//! snapshot may mix values from either side of a frame in flight.
//!
//! Directions are the guest's: `rx` is what the guest received (host → guest), `tx` what it
//! sent (guest → host).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one NIC, with the identity its stats are reported under.
#[derive(Debug)]
pub struct NicCounters {
    tap: String,
    mac: [u8; 6],
    rx_bytes: AtomicU64,
    rx_packets: AtomicU64,
    rx_dropped: AtomicU64,
    tx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_dropped: AtomicU64,
}

/// A snapshot of one NIC's counters since the VM booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicStats {
    /// The host interface (TAP) the NIC is connected to.
    pub tap: String,
    /// The guest's MAC address.
    pub mac: [u8; 6],
    /// Frame bytes (Ethernet header and payload, no virtio header) delivered to the guest.
    pub rx_bytes: u64,
    /// Frames delivered to the guest.
    pub rx_packets: u64,
    /// Frames from the host the device dropped: no fitting receive buffer, a malformed
    /// receive chain, or a runt.
    pub rx_dropped: u64,
    /// Frame bytes the guest sent that reached the host.
    pub tx_bytes: u64,
    /// Frames the guest sent that reached the host.
    pub tx_packets: u64,
    /// Frames the guest sent that were dropped: malformed chains, runts, oversized frames, or
    /// frames the host refused.
    pub tx_dropped: u64,
}

impl NicCounters {
    /// Zeroed counters for the NIC with MAC `mac` on host interface `tap`.
    pub fn new(tap: &str, mac: [u8; 6]) -> NicCounters {
        NicCounters {
            tap: tap.to_owned(),
            mac,
            rx_bytes: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            rx_dropped: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
        }
    }

    /// A frame of `bytes` bytes reached the guest.
    pub fn record_rx(&self, bytes: u64) {
        self.rx_packets.fetch_add(1, Ordering::Relaxed);
        self.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A frame for the guest was dropped.
    pub fn record_rx_drop(&self) {
        self.rx_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame of `bytes` bytes from the guest reached the host.
    pub fn record_tx(&self, bytes: u64) {
        self.tx_packets.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A frame from the guest was dropped.
    pub fn record_tx_drop(&self) {
        self.tx_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> NicStats {
        NicStats {
            tap: self.tap.clone(),
            mac: self.mac,
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_dropped: self.rx_dropped.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_dropped: self.tx_dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_counts_frames_and_bytes_per_direction() {
        let counters = NicCounters::new("vm-a-0", [0x52, 0x54, 0, 1, 2, 3]);

        counters.record_rx(60);
        counters.record_rx(1514);
        counters.record_tx(42);
        counters.record_tx_drop();
        counters.record_rx_drop();

        let stats = counters.snapshot();
        assert_eq!((stats.rx_packets, stats.rx_bytes), (2, 1574));
        assert_eq!((stats.tx_packets, stats.tx_bytes), (1, 42));
        assert_eq!((stats.rx_dropped, stats.tx_dropped), (1, 1));
        assert_eq!(stats.tap, "vm-a-0");
    }
}
