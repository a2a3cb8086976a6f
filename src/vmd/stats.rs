//! Stats sampling: turns the engine's counters (exits, per-disk I/O) plus host figures
//! (per-vCPU CPU time from `/proc/self/task/<tid>/schedstat`, RSS from `/proc/self/statm`) into
//! [`VmStats`], with rates computed over the interval since the previous sample.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::MacAddr;
use crate::engine::EngineStats;
use crate::protocol::{DiskStats, NicStats, VcpuStats, VmStats};

/// What the sampler needs to know about the boot being sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFacts {
    /// Which boot (rates restart at a new one).
    pub boot: u32,
    /// Time since the boot started.
    pub uptime: Duration,
    /// Serial bytes the guest wrote during this boot.
    pub serial_out_bytes: u64,
    /// Guest device names of the disks, in `EngineStats::disks` order.
    pub disk_targets: Vec<String>,
}

/// Host-side readings taken at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostReadings {
    /// CPU time per vCPU thread id, nanoseconds (missing when unreadable).
    pub cpu_ns: HashMap<u32, u64>,
    /// vmd's resident set size, bytes.
    pub rss_bytes: u64,
}

impl HostReadings {
    /// Reads `/proc` for the given vCPU thread ids.
    pub fn read(tids: impl IntoIterator<Item = u32>) -> HostReadings {
        let cpu_ns = tids
            .into_iter()
            .filter_map(|tid| {
                let text =
                    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
                Some((tid, parse_schedstat(&text)?))
            })
            .collect();
        let rss_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|text| parse_statm_resident_pages(&text))
            .map_or(0, |pages| pages.saturating_mul(page_size()));
        HostReadings { cpu_ns, rss_bytes }
    }
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(4096)
}

/// First field of `schedstat`: time spent on a CPU, nanoseconds.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Second field of `statm`: resident pages.
pub fn parse_statm_resident_pages(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Keeps the previous sample's counters to compute rates. Owned by the sampler thread.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: Option<Previous>,
}

#[derive(Debug)]
struct Previous {
    boot: u32,
    at: Instant,
    cpu_ns: HashMap<u32, u64>,
    exits: u64,
    /// Each disk's counters by target name.
    disks: HashMap<String, DiskStats>,
    /// Per NIC: rx bytes, tx bytes, rx frames, tx frames.
    nics: Vec<[u64; 4]>,
}

/// Per-second rate of a counter that went from `before` to `now` over `interval_ns`; zero for
/// an empty interval or a counter that went backwards (it restarted).
fn rate(before: u64, now: u64, interval_ns: u64) -> f64 {
    if interval_ns == 0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 * 1e9 / interval_ns as f64
}

/// The name shown for disk `index` when the boot facts have none (never expected: vmd names
/// every disk it opens).
fn fallback_target(index: usize) -> String {
    format!("disk{index}")
}

impl Sampler {
    /// Builds a sample taken at `now`. The first sample of a boot reports zero rates; so does a
    /// disk the previous sample did not have.
    pub fn sample(
        &mut self,
        now: Instant,
        boot: &BootFacts,
        engine: &EngineStats,
        host: &HostReadings,
    ) -> VmStats {
        let previous = self.previous.take().filter(|p| p.boot == boot.boot);
        let interval_ns = previous
            .as_ref()
            .map_or(0, |p| now.saturating_duration_since(p.at).as_nanos() as u64);
        let percent = |delta_ns: u64| {
            if interval_ns == 0 {
                0.0
            } else {
                delta_ns as f64 * 100.0 / interval_ns as f64
            }
        };
        let vcpus: Vec<VcpuStats> = engine
            .vcpus
            .iter()
            .map(|v| {
                let cpu_time_ns = host.cpu_ns.get(&v.tid).copied().unwrap_or(0);
                let before = previous
                    .as_ref()
                    .and_then(|p| p.cpu_ns.get(&v.tid).copied())
                    .unwrap_or(cpu_time_ns);
                VcpuStats {
                    index: v.index,
                    tid: v.tid,
                    cpu_time_ns,
                    cpu_percent: percent(cpu_time_ns.saturating_sub(before)),
                    exits: v.exits,
                }
            })
            .collect();
        let exits: u64 = engine.vcpus.iter().map(|v| v.exits).sum();
        let exits_per_sec = previous
            .as_ref()
            .map_or(0.0, |p| rate(p.exits, exits, interval_ns));
        let disks: Vec<DiskStats> = engine
            .disks
            .iter()
            .enumerate()
            .map(|(index, counters)| {
                let target = boot
                    .disk_targets
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| fallback_target(index));
                let before = previous.as_ref().and_then(|p| p.disks.get(&target));
                let per_sec = |field: fn(&DiskStats) -> u64, now: u64| {
                    before.map_or(0.0, |b| rate(field(b), now, interval_ns))
                };
                DiskStats {
                    read_bytes_per_sec: per_sec(|d| d.read_bytes, counters.read_bytes),
                    write_bytes_per_sec: per_sec(|d| d.write_bytes, counters.write_bytes),
                    read_ops_per_sec: per_sec(|d| d.read_ops, counters.read_ops),
                    write_ops_per_sec: per_sec(|d| d.write_ops, counters.write_ops),
                    target,
                    read_ops: counters.read_ops,
                    read_bytes: counters.read_bytes,
                    write_ops: counters.write_ops,
                    write_bytes: counters.write_bytes,
                    flushes: counters.flushes,
                    errors: counters.errors,
                    average_latency_ns: counters.average_latency_ns,
                }
            })
            .collect();
        let nic_counts: Vec<[u64; 4]> = engine
            .nics
            .iter()
            .map(|n| [n.rx_bytes, n.tx_bytes, n.rx_packets, n.tx_packets])
            .collect();
        let nics = engine
            .nics
            .iter()
            .zip(&nic_counts)
            .enumerate()
            .map(|(index, (nic, counts))| {
                let before = previous.as_ref().and_then(|p| p.nics.get(index));
                let per_sec = |i: usize| before.map_or(0.0, |b| rate(b[i], counts[i], interval_ns));
                NicStats {
                    index: index as u32,
                    tap: nic.tap.clone(),
                    mac: MacAddr(nic.mac).to_string(),
                    rx_bytes: nic.rx_bytes,
                    rx_packets: nic.rx_packets,
                    rx_dropped: nic.rx_dropped,
                    tx_bytes: nic.tx_bytes,
                    tx_packets: nic.tx_packets,
                    tx_dropped: nic.tx_dropped,
                    rx_bytes_per_sec: per_sec(0),
                    tx_bytes_per_sec: per_sec(1),
                    rx_packets_per_sec: per_sec(2),
                    tx_packets_per_sec: per_sec(3),
                }
            })
            .collect();
        self.previous = Some(Previous {
            boot: boot.boot,
            at: now,
            cpu_ns: vcpus.iter().map(|v| (v.tid, v.cpu_time_ns)).collect(),
            exits,
            disks: disks
                .iter()
                .map(|d| (d.target.clone(), d.clone()))
                .collect(),
            nics: nic_counts,
        });
        VmStats {
            uptime_ms: boot.uptime.as_millis() as u64,
            cpu_percent: vcpus.iter().map(|v| v.cpu_percent).sum(),
            vcpus,
            memory_bytes: engine.memory_bytes,
            memory_touched_bytes: engine.memory_touched_bytes,
            rss_bytes: host.rss_bytes,
            exits,
            exits_per_sec,
            serial_out_bytes: boot.serial_out_bytes,
            disks,
            nics,
            guest_free_bytes: engine.balloon.as_ref().and_then(|b| b.stats.free),
            balloon: engine.balloon.as_ref().map(balloon_status),
        }
    }
}

/// The protocol's view of the engine's balloon.
pub fn balloon_status(info: &crate::engine::BalloonInfo) -> crate::protocol::BalloonStatus {
    crate::protocol::BalloonStatus {
        target_bytes: info.target_bytes,
        actual_bytes: info.actual_bytes,
        released_bytes: info.released_bytes,
        driver_ready: info.driver_ready,
    }
}

/// The sample served before the first real one (and between boots).
pub fn empty_stats(memory_bytes: u64) -> VmStats {
    VmStats {
        uptime_ms: 0,
        vcpus: Vec::new(),
        cpu_percent: 0.0,
        memory_bytes,
        memory_touched_bytes: 0,
        rss_bytes: 0,
        exits: 0,
        exits_per_sec: 0.0,
        serial_out_bytes: 0,
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: None,
        guest_free_bytes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::DiskStats as EngineDisk;
    use crate::engine::VcpuCounters;

    fn engine(exits: u64) -> EngineStats {
        EngineStats {
            vcpus: vec![VcpuCounters {
                index: 0,
                tid: 100,
                exits,
            }],
            memory_bytes: 256 << 20,
            memory_touched_bytes: 8 << 20,
            disks: Vec::new(),
            nics: Vec::new(),
            balloon: None,
        }
    }

    fn host(cpu_ns: u64) -> HostReadings {
        HostReadings {
            cpu_ns: HashMap::from([(100, cpu_ns)]),
            rss_bytes: 20 << 20,
        }
    }

    fn boot(boot: u32) -> BootFacts {
        BootFacts {
            boot,
            uptime: Duration::from_secs(3),
            serial_out_bytes: 42,
            disk_targets: vec!["vda".into(), "vdb".into()],
        }
    }

    /// Engine counters of two disks: `vda` with these reads and writes, `vdb` idle.
    fn with_disks(read_bytes: u64, write_bytes: u64) -> EngineStats {
        let vda = EngineDisk {
            read_ops: read_bytes / 4096,
            read_bytes,
            write_ops: write_bytes / 512,
            write_bytes,
            flushes: 3,
            errors: 1,
            average_latency_ns: 25_000,
        };
        EngineStats {
            disks: vec![vda, EngineDisk::default()],
            ..engine(0)
        }
    }

    #[test]
    fn rates_are_computed_over_the_interval() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        sampler.sample(t0, &boot(1), &engine(1000), &host(0));
        let s = sampler.sample(
            t0 + Duration::from_secs(2),
            &boot(1),
            &engine(5000),
            &host(1_000_000_000),
        );
        assert!((s.vcpus[0].cpu_percent - 50.0).abs() < 1e-9, "{s:?}");
        assert!((s.cpu_percent - 50.0).abs() < 1e-9);
        assert!((s.exits_per_sec - 2000.0).abs() < 1e-9);
        assert_eq!(s.exits, 5000);
        assert_eq!(s.rss_bytes, 20 << 20);
        assert_eq!(s.serial_out_bytes, 42);
    }

    #[test]
    fn a_new_boot_restarts_the_rates() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        sampler.sample(t0, &boot(1), &engine(9000), &host(5_000_000_000));
        let s = sampler.sample(t0 + Duration::from_secs(1), &boot(2), &engine(10), &host(1));
        assert_eq!(s.exits_per_sec, 0.0);
        assert_eq!(s.vcpus[0].cpu_percent, 0.0);
    }

    #[test]
    fn disk_rates_are_bytes_and_requests_per_second_over_the_interval() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        sampler.sample(t0, &boot(1), &with_disks(4096, 512), &host(0));

        let s = sampler.sample(
            t0 + Duration::from_millis(500),
            &boot(1),
            &with_disks(4096 * 11, 512 * 51),
            &host(0),
        );

        let vda = &s.disks[0];
        assert_eq!(vda.target, "vda");
        assert!((vda.read_bytes_per_sec - 81_920.0).abs() < 1e-6, "{vda:?}");
        assert!((vda.write_bytes_per_sec - 51_200.0).abs() < 1e-6, "{vda:?}");
        assert!((vda.read_ops_per_sec - 20.0).abs() < 1e-9, "{vda:?}");
        assert!((vda.write_ops_per_sec - 100.0).abs() < 1e-9, "{vda:?}");
    }

    #[test]
    fn disk_counters_are_reported_as_totals_since_boot() {
        let mut sampler = Sampler::default();

        let s = sampler.sample(Instant::now(), &boot(1), &with_disks(8192, 1024), &host(0));

        let vda = &s.disks[0];
        assert_eq!((vda.read_ops, vda.read_bytes), (2, 8192));
        assert_eq!((vda.write_ops, vda.write_bytes), (2, 1024));
        assert_eq!(
            (vda.flushes, vda.errors, vda.average_latency_ns),
            (3, 1, 25_000)
        );
        assert_eq!(s.disks[1].target, "vdb");
        assert_eq!(s.disks[1].read_bytes, 0);
    }

    #[test]
    fn the_first_sample_of_a_boot_has_zero_disk_rates() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        sampler.sample(t0, &boot(1), &with_disks(1 << 20, 1 << 20), &host(0));

        let s = sampler.sample(
            t0 + Duration::from_secs(1),
            &boot(2),
            &with_disks(4096, 0),
            &host(0),
        );

        assert_eq!(s.disks[0].read_bytes_per_sec, 0.0);
        assert_eq!(s.disks[0].write_bytes_per_sec, 0.0);
    }

    #[test]
    fn a_disk_counter_that_went_backwards_reports_a_zero_rate() {
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        sampler.sample(t0, &boot(1), &with_disks(1 << 20, 0), &host(0));

        let s = sampler.sample(
            t0 + Duration::from_secs(1),
            &boot(1),
            &with_disks(4096, 0),
            &host(0),
        );

        assert_eq!(s.disks[0].read_bytes_per_sec, 0.0);
    }

    #[test]
    fn a_disk_without_a_known_target_is_named_by_its_index() {
        let mut sampler = Sampler::default();
        let facts = BootFacts {
            disk_targets: vec!["vda".into()],
            ..boot(1)
        };

        let s = sampler.sample(Instant::now(), &facts, &with_disks(0, 0), &host(0));

        assert_eq!(s.disks[1].target, "disk1");
    }

    #[test]
    fn nic_rates_are_computed_over_the_interval() {
        let with_nic = |rx_bytes: u64, tx_packets: u64| EngineStats {
            nics: vec![crate::engine::NicStats {
                tap: "vm-web1-0".into(),
                mac: [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
                rx_bytes,
                rx_packets: 0,
                rx_dropped: 3,
                tx_bytes: 0,
                tx_packets,
                tx_dropped: 0,
            }],
            ..engine(0)
        };
        let mut sampler = Sampler::default();
        let t0 = Instant::now();
        sampler.sample(t0, &boot(1), &with_nic(1000, 10), &host(0));

        let s = sampler.sample(
            t0 + Duration::from_secs(2),
            &boot(1),
            &with_nic(5000, 30),
            &host(0),
        );

        let nic = &s.nics[0];
        assert_eq!(nic.mac, "52:54:00:ab:cd:ef");
        assert_eq!(
            (nic.tap.as_str(), nic.rx_bytes, nic.rx_dropped),
            ("vm-web1-0", 5000, 3)
        );
        assert!((nic.rx_bytes_per_sec - 2000.0).abs() < 1e-9, "{nic:?}");
        assert!((nic.tx_packets_per_sec - 10.0).abs() < 1e-9, "{nic:?}");
    }

    #[test]
    fn proc_fields_parse() {
        assert_eq!(parse_schedstat("123456 789 10\n"), Some(123_456));
        assert_eq!(
            parse_statm_resident_pages("5000 1200 300 1 0 900 0\n"),
            Some(1200)
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn reading_this_process_finds_its_own_rss() {
        let readings = HostReadings::read([]);
        assert!(readings.rss_bytes > 0);
    }
}
