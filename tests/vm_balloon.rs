//! The memory balloon through the real vmd: the `savestate` guest-kit program hands pages from
//! a pool it touched to the balloon when `setmem` lowers its memory, vmd's resident memory
//! drops by (nearly) as much, the guest takes them back when `setmem` raises it again, and its
//! statistics reach `dommemstat`.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::binary::guest;
use common::prereq::{Need, met};
use vmux::client::{ChangeScope, Host, LocalHost};
use vmux::config::{BootConfig, VmConfig};
use vmux::protocol::MemoryStats;

const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

fn wait_for_stats(
    host: &LocalHost,
    what: &str,
    mut done: impl FnMut(&MemoryStats) -> bool,
) -> MemoryStats {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stats = host.memory_stats("bal").expect("dommemstat");
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {stats:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn inflating_gives_memory_back_to_the_host_and_deflating_returns_it() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let host = LocalHost::with_home(dir.path()).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
    let mut config = VmConfig::new(
        "bal",
        BootConfig::Kernel {
            kernel: guest("savestate"),
            initrd: None,
            cmdline: "mem=1 pool=96 disk=0".into(),
        },
    );
    config.memory = 256 * MIB;
    host.define(&config).expect("define");
    host.start("bal").expect("start");
    // The guest touched its pool and its driver handed the first statistics over.
    let before = wait_for_stats(&host, "the guest's statistics arrive", |s| {
        s.free_bytes.is_some() && s.balloon.as_ref().is_some_and(|b| b.driver_ready)
    });
    assert_eq!(
        before.free_bytes,
        Some(96 * MIB),
        "the pool is free at first"
    );

    host.set_memory("bal", 256 * MIB - 64 * MIB, ChangeScope::LIVE)
        .expect("setmem down");
    let inflated = wait_for_stats(&host, "the guest gave 64 MiB back", |s| {
        s.balloon
            .as_ref()
            .is_some_and(|b| b.actual_bytes == 64 * MIB)
    });
    // The guest's next statistics say so too.
    let refreshed = wait_for_stats(&host, "fresh statistics", |s| {
        s.free_bytes == Some(32 * MIB)
    });

    let released = before.rss_bytes.saturating_sub(inflated.rss_bytes);
    assert!(
        released * 10 >= 64 * MIB * 8,
        "vmd's RSS fell by {} MiB of the 64 MiB given back ({} -> {} MiB)",
        released / MIB,
        before.rss_bytes / MIB,
        inflated.rss_bytes / MIB
    );
    assert_eq!(inflated.current_bytes, 192 * MIB);
    assert!(
        refreshed.major_faults.is_some_and(|n| n >= 2),
        "{refreshed:?}"
    );

    host.set_memory("bal", 256 * MIB, ChangeScope::LIVE)
        .expect("setmem up");
    let deflated = wait_for_stats(&host, "the guest took its memory back", |s| {
        s.balloon.as_ref().is_some_and(|b| b.actual_bytes == 0)
    });
    assert_eq!(deflated.current_bytes, 256 * MIB);
    host.destroy("bal").expect("destroy");
}

#[test]
fn setmem_above_the_defined_memory_is_refused_with_the_limit() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::binary::vmux(dir.path(), &["create", "big", "--demo", "--memory", "128M"]);
    assert!(out.status.success());

    let out = common::binary::vmux(dir.path(), &["setmem", "big", "1G", "--config"]);

    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has 128M of memory") && err.contains("1G"),
        "{err}"
    );
}

#[test]
fn the_demo_guest_gives_memory_back_when_setmem_asks() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let host = LocalHost::with_home(dir.path()).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
    let mut config = VmConfig::new("bal", BootConfig::Demo);
    config.memory = 128 * MIB;
    host.define(&config).expect("define");
    host.start("bal").expect("start");
    wait_for_stats(&host, "the demo's balloon driver runs", |s| {
        s.balloon.as_ref().is_some_and(|b| b.driver_ready)
    });

    host.set_memory("bal", 96 * MIB, ChangeScope::LIVE)
        .expect("setmem");

    let stats = wait_for_stats(&host, "the demo gave 32 MiB back", |s| {
        s.balloon
            .as_ref()
            .is_some_and(|b| b.actual_bytes == 32 * MIB)
    });
    assert_eq!(stats.current_bytes, 96 * MIB);
    let out = common::binary::ok(dir.path(), &["console", "bal", "--history"]);
    assert!(out.contains("balloon: 32 MiB given to the host"), "{out}");
    host.destroy("bal").expect("destroy");
}
