//! Per-disk I/O counters: updated by the disk's worker thread, read by anyone (vmd's stats
//! sampling) through [`DiskStats`] snapshots. Relaxed atomics: each counter is exact, a
//! snapshot may mix values from either side of a request in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters of one disk.
#[derive(Debug, Default)]
pub struct DiskCounters {
    read_ops: AtomicU64,
    read_bytes: AtomicU64,
    write_ops: AtomicU64,
    write_bytes: AtomicU64,
    flushes: AtomicU64,
    errors: AtomicU64,
    /// Requests that completed (any type, any status), for the average latency.
    completed: AtomicU64,
    /// Sum of their service times, nanoseconds.
    latency_ns: AtomicU64,
}

/// A snapshot of one disk's counters since the VM booted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Read requests completed successfully.
    pub read_ops: u64,
    /// Bytes read by them.
    pub read_bytes: u64,
    /// Write requests completed successfully (write-zeroes and discard included).
    pub write_ops: u64,
    /// Bytes written by them (write-zeroes and discard count their range).
    pub write_bytes: u64,
    /// Flush requests completed successfully.
    pub flushes: u64,
    /// Requests that failed or were malformed.
    pub errors: u64,
    /// Mean time from picking a request off the queue to completing it, nanoseconds (0 before
    /// the first request).
    pub average_latency_ns: u64,
}

impl DiskCounters {
    /// A successful read of `bytes`.
    pub fn record_read(&self, bytes: u64) {
        self.read_ops.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A successful write (or zeroing/discard) of `bytes`.
    pub fn record_write(&self, bytes: u64) {
        self.write_ops.fetch_add(1, Ordering::Relaxed);
        self.write_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A successful flush.
    pub fn record_flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed or malformed request.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A request (of any outcome) took `elapsed`.
    pub fn record_latency(&self, elapsed: Duration) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> DiskStats {
        let completed = self.completed.load(Ordering::Relaxed);
        let latency = self.latency_ns.load(Ordering::Relaxed);
        DiskStats {
            read_ops: self.read_ops.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
            write_ops: self.write_ops.load(Ordering::Relaxed),
            write_bytes: self.write_bytes.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            average_latency_ns: latency.checked_div(completed).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_averages_latency_over_completed_requests() {
        let counters = DiskCounters::default();

        counters.record_read(4096);
        counters.record_latency(Duration::from_micros(10));
        counters.record_write(512);
        counters.record_latency(Duration::from_micros(30));

        let stats = counters.snapshot();
        assert_eq!((stats.read_ops, stats.read_bytes), (1, 4096));
        assert_eq!((stats.write_ops, stats.write_bytes), (1, 512));
        assert_eq!(stats.average_latency_ns, 20_000);
    }

    #[test]
    fn no_requests_mean_zero_latency() {
        assert_eq!(DiskCounters::default().snapshot().average_latency_ns, 0);
    }
}
