//! The stats thread: once a second, sample the running boot ([`super::stats::Sampler`]),
//! store the sample for `stats` requests and push it to subscribers.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use syscalls::Sysno;

use super::stats::{HostReadings, Sampler};
use super::supervisor::Supervisor;
use crate::engine::confine::syscalls::{ArgRule, SyscallList};
use crate::engine::confine::{self, ThreadKind};

/// What the `stats` thread may call: read `/proc` (CPU time per vCPU thread, RSS) and see
/// which guest pages are resident (`mincore`). It opens files read-only and nothing else.
pub const SYSCALLS: SyscallList = SyscallList {
    any: &[
        Sysno::read,
        Sysno::fstat,
        Sysno::statx,
        Sysno::lseek,
        Sysno::mincore,
    ],
    ioctls: &[],
    args: &[ArgRule {
        call: Sysno::openat,
        index: 2,
        mask: (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) as u64,
        values: &[libc::O_RDONLY as u64],
    }],
};

/// Time between samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the sampler; it takes a first sample at once and runs until the VM is over.
pub fn spawn(sup: Arc<Supervisor>) -> io::Result<()> {
    confine::spawn(ThreadKind::Stats, "stats".into(), move || {
        let mut sampler = Sampler::default();
        let mut next = Instant::now();
        while !sup.events().is_closed() {
            if let Some(view) = sup.boot_view() {
                let engine = view.control.stats();
                let host = HostReadings::read(engine.vcpus.iter().map(|v| v.tid));
                let sample = sampler.sample(Instant::now(), &view.facts, &engine, &host);
                sup.record_stats(sample);
            }
            // Fixed-rate ticks: a slow sample does not drift the schedule.
            next += SAMPLE_INTERVAL;
            let now = Instant::now();
            if next < now {
                next = now;
            }
            std::thread::sleep(next - now);
        }
    })
    .map(drop)
}
