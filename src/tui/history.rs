//! The last minute of stats samples per VM, for the list's sparkline and the detail charts.
//! Fixed-size rings: memory stays bounded however long the TUI runs.

use crate::protocol::VmStats;
use std::collections::VecDeque;

/// Samples kept per series: one minute at vmd's 1 s sampling.
pub const HISTORY_LEN: usize = 60;
/// Per-vCPU series kept at most (the platform's vCPU limit is far below).
const MAX_VCPU_SERIES: usize = 256;

/// A bounded series, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series<T> {
    values: VecDeque<T>,
}

impl<T: Copy> Series<T> {
    /// Appends a sample, dropping the oldest beyond [`HISTORY_LEN`].
    pub fn push(&mut self, value: T) {
        if self.values.len() == HISTORY_LEN {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// Samples, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = T> + ExactSizeIterator + '_ {
        self.values.iter().copied()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<T> {
        self.values.back().copied()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no samples yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Per-device series kept at most (a VM has at most 26 disks and a few NICs).
const MAX_DEVICE_SERIES: usize = 64;

/// One device's two rates (disk: read and write; NIC: receive and transmit), bytes per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceSeries {
    /// The device (`vda`, `net0`).
    pub name: String,
    /// Read (disk) or receive (NIC) rate.
    pub input: Series<f64>,
    /// Write (disk) or transmit (NIC) rate.
    pub output: Series<f64>,
}

/// Records one sample of `(name, input, output)` rates into `series`: a new device starts an
/// empty series, a device gone from the sample is dropped.
fn record_devices(
    series: &mut Vec<DeviceSeries>,
    sample: impl Iterator<Item = (String, f64, f64)>,
) {
    let mut next = Vec::new();
    for (name, input, output) in sample.take(MAX_DEVICE_SERIES) {
        let mut device = match series.iter().position(|d| d.name == name) {
            Some(i) => series.swap_remove(i),
            None => DeviceSeries {
                name,
                ..DeviceSeries::default()
            },
        };
        device.input.push(sane(input));
        device.output.push(sane(output));
        next.push(device);
    }
    *series = next;
}

/// One VM's recent stats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Total CPU use, percent of one host CPU.
    pub cpu: Series<f64>,
    /// CPU use per vCPU (index = position in the sample), percent of one host CPU.
    pub vcpus: Vec<Series<f64>>,
    /// vmd resident set, bytes.
    pub rss: Series<u64>,
    /// Guest RAM touched, bytes.
    pub touched: Series<u64>,
    /// Memory the balloon leaves the guest (RAM less the balloon's target), bytes; empty
    /// without a balloon.
    pub balloon_target: Series<u64>,
    /// Free memory the guest reports through its balloon, bytes; empty until it does.
    pub guest_free: Series<u64>,
    /// VM exits per second.
    pub exits: Series<f64>,
    /// Read and write rates per disk, by guest device name.
    pub disks: Vec<DeviceSeries>,
    /// Receive and transmit rates per NIC, named `net<index>`.
    pub nics: Vec<DeviceSeries>,
}

/// Replaces NaN and negative values (a confused sampler) with 0 so charts stay sane.
fn sane(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

impl History {
    /// Adds one sample.
    pub fn record(&mut self, stats: &VmStats) {
        self.cpu.push(sane(stats.cpu_percent));
        self.rss.push(stats.rss_bytes);
        self.touched.push(stats.memory_touched_bytes);
        if let Some(balloon) = &stats.balloon {
            self.balloon_target
                .push(stats.memory_bytes.saturating_sub(balloon.target_bytes));
        }
        if let Some(free) = stats.guest_free_bytes {
            self.guest_free.push(free);
        }
        self.exits.push(sane(stats.exits_per_sec));
        let count = stats.vcpus.len().min(MAX_VCPU_SERIES);
        // A hot-added vCPU starts with an empty series; a removed one is dropped.
        self.vcpus.resize_with(count, Series::default);
        for (series, vcpu) in self.vcpus.iter_mut().zip(&stats.vcpus) {
            series.push(sane(vcpu.cpu_percent));
        }
        record_devices(
            &mut self.disks,
            stats.disks.iter().map(|d| {
                (
                    d.target.clone(),
                    d.read_bytes_per_sec,
                    d.write_bytes_per_sec,
                )
            }),
        );
        record_devices(
            &mut self.nics,
            stats.nics.iter().map(|n| {
                (
                    format!("net{}", n.index),
                    n.rx_bytes_per_sec,
                    n.tx_bytes_per_sec,
                )
            }),
        );
    }

    /// The rates of disk `target`.
    pub fn disk(&self, target: &str) -> Option<&DeviceSeries> {
        self.disks.iter().find(|d| d.name == target)
    }

    /// The rates of NIC `net<index>`.
    pub fn nic(&self, name: &str) -> Option<&DeviceSeries> {
        self.nics.iter().find(|d| d.name == name)
    }

    /// Forgets everything (the VM was restarted by someone else).
    pub fn clear(&mut self) {
        *self = History::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_keeps_only_the_last_minute() {
        let mut series = Series::default();
        for i in 0..(HISTORY_LEN as u64 + 10) {
            series.push(i);
        }
        assert_eq!(series.len(), HISTORY_LEN);
        assert_eq!(series.iter().next(), Some(10));
        assert_eq!(series.last(), Some(HISTORY_LEN as u64 + 9));
    }

    #[test]
    fn nan_cpu_is_recorded_as_zero() {
        let mut history = History::default();
        let stats = VmStats {
            uptime_ms: 0,
            vcpus: Vec::new(),
            cpu_percent: f64::NAN,
            memory_bytes: 0,
            memory_touched_bytes: 0,
            rss_bytes: 0,
            exits: 0,
            exits_per_sec: -3.0,
            serial_out_bytes: 0,
            disks: Vec::new(),
            nics: Vec::new(),
            balloon: None,
            guest_free_bytes: None,
        };
        history.record(&stats);
        assert_eq!(history.cpu.last(), Some(0.0));
        assert_eq!(history.exits.last(), Some(0.0));
    }

    #[test]
    fn disk_rates_follow_the_disks_in_the_sample() {
        let mut disks = Vec::new();
        record_devices(&mut disks, [("vda".to_string(), 1.0, 2.0)].into_iter());
        record_devices(
            &mut disks,
            [
                ("vdb".to_string(), 5.0, 0.0),
                ("vda".to_string(), 3.0, f64::NAN),
            ]
            .into_iter(),
        );
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[1].name, "vda");
        assert_eq!(disks[1].input.len(), 2);
        assert_eq!(disks[1].output.last(), Some(0.0));
        record_devices(&mut disks, [("vdb".to_string(), 1.0, 1.0)].into_iter());
        assert_eq!(disks.len(), 1);
    }
}
