//! Contract tests: the fakes the TUI tests run on are held to the real backends. Each contract
//! is one function taking the trait object, run once against the fake (`fake` tests) and once
//! against the real implementation (`real` tests), so a fake that drifts from the product
//! fails here instead of letting the TUI tests pass against behaviour vmux does not have.
//!
//! * VMs: [`FakeHost`] against [`LocalHost`] with `VMUX_HOME` in a temp dir, booting the demo
//!   guest through real vmd processes on /dev/kvm.
//! * Storage: [`FakeStorage`] against [`LocalStorage`] over a temp vmux home.
//! * Networks: [`FakeNetworks`] against [`LocalNetworks`] over a temp vmux home; nothing here
//!   creates a host interface (the capability contract runs the real one without
//!   CAP_NET_ADMIN, in a child process when this one has it).

mod common;

use common::prereq::{CAPSH, Need, met};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use vmux::client::fake::FakeHost;
use vmux::client::{ChangeScope, ClientError, Console, Host, LocalHost};
use vmux::config::{BootConfig, DiskConfig, Paths, Store, VmConfig};
use vmux::network::NetworkError;
use vmux::protocol::RunState;
use vmux::storage::VolumeSpec;
use vmux::tui::backends::fake::{FakeNetworks, FakeStorage};
use vmux::tui::backends::local::{LocalNetworks, LocalStorage};
use vmux::tui::backends::{NetworkHost, StorageHost};

/// Longest the demo guest may take to print what a contract waits for (emulating KVM).
const GUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A real host over a temporary `VMUX_HOME`, its vmd being this build's `vmux`; every VM it
/// started is destroyed on drop, whatever the test did.
struct RealHost {
    host: LocalHost,
    _home: tempfile::TempDir,
}

impl RealHost {
    fn new() -> RealHost {
        let home = tempfile::tempdir().expect("tempdir");
        let host =
            LocalHost::with_home(home.path()).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
        RealHost { host, _home: home }
    }
}

impl Drop for RealHost {
    fn drop(&mut self) {
        for entry in self.host.list() {
            let (name, state) = match entry {
                Ok(status) => (status.config.name, status.state),
                Err(broken) => (broken.name, broken.live.state),
            };
            if matches!(state, RunState::Running | RunState::Paused) {
                let _ = self.host.destroy(&name);
            }
        }
    }
}

/// Runs VM contract `$name` against the fake and against the real host (which needs KVM).
macro_rules! host_contract {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn fake() {
                host_contracts::$name(&FakeHost::new());
            }

            #[test]
            fn real() {
                if !met(&[Need::Kvm]) {
                    return;
                }
                host_contracts::$name(&RealHost::new().host);
            }
        }
    };
}

/// Runs storage contract `$name` against the fake and against the real storage.
macro_rules! storage_contract {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn fake() {
                let storage = FakeStorage::new();
                storage_contracts::$name(&storage, &|pool, volume, vm| {
                    storage.set_users(pool, volume, &[vm], &[])
                });
            }

            #[test]
            fn real() {
                let home = tempfile::tempdir().expect("tempdir");
                let paths = Paths::under(home.path());
                let storage = LocalStorage::new(paths.clone());
                storage_contracts::$name(&storage, &|pool, volume, vm| {
                    define_vm_using(&paths, vm, &format!("{pool}/{volume}"))
                });
            }
        }
    };
}

/// Defines stopped demo VM `vm` with disk `disk` (`pool/volume`).
fn define_vm_using(paths: &Paths, vm: &str, disk: &str) {
    let mut cfg = VmConfig::new(vm, BootConfig::Demo);
    cfg.disks = vec![disk.parse::<DiskConfig>().expect("disk spec")];
    Store::new(paths.clone()).create(&cfg).expect("define VM");
}

/// A stopped demo VM definition with `vcpus` of up to `max_vcpus`.
fn demo(name: &str, vcpus: u32, max_vcpus: u32) -> VmConfig {
    let mut cfg = VmConfig::new(name, BootConfig::Demo);
    cfg.vcpus = vcpus;
    cfg.max_vcpus = max_vcpus;
    cfg
}

/// Guest output of `console`, read on a thread so waits can be bounded.
struct Output {
    chunks: Receiver<Option<Vec<u8>>>,
    seen: String,
}

impl Output {
    fn of(console: Console) -> (Output, Box<dyn std::io::Write + Send>) {
        let Console { mut output, input } = console;
        let (tx, chunks) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match output.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let output = Output {
            chunks,
            seen: String::new(),
        };
        (output, input)
    }

    /// Reads until the output contains `text`; fails with what came after [`GUEST_TIMEOUT`].
    fn until(&mut self, text: &str) -> &str {
        let deadline = Instant::now() + GUEST_TIMEOUT;
        while !self.seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(Some(bytes)) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) => panic!("the console ended before {text:?}: {:?}", self.seen),
                Err(_) => panic!("no {text:?} within {GUEST_TIMEOUT:?}: {:?}", self.seen),
            }
        }
        &self.seen
    }

    /// Reads until the console ends (end of file); fails after [`GUEST_TIMEOUT`].
    fn until_end(&mut self) {
        let deadline = Instant::now() + GUEST_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(Some(bytes)) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) => return,
                Err(_) => panic!("the console did not end within {GUEST_TIMEOUT:?}"),
            }
        }
    }
}

/// What every VM backend must do, as the TUI relies on it.
mod host_contracts {
    use super::*;

    pub fn started_vm_lists_as_running_with_a_pid(host: &dyn Host) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        let listed = host.list();
        let status = listed[0].as_ref().expect("valid");
        assert_eq!(status.state, RunState::Running);
        assert!(status.pid.is_some());
    }

    pub fn starting_twice_is_refused_as_already_running(host: &dyn Host) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        assert!(matches!(
            host.start("a"),
            Err(ClientError::AlreadyRunning(_))
        ));
    }

    pub fn late_attach_with_history_sees_the_banner(host: &dyn Host) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        // The banner is printed by now on the real guest too: its prompt follows it.
        let (mut first, _input) = Output::of(host.console("a", true).expect("console"));
        first.until("demo$ ");
        let (mut late, _input) = Output::of(host.console("a", true).expect("console"));
        assert!(late.until("vmux demo guest").contains("vmux demo guest"));
    }

    pub fn typing_help_gets_the_command_list(host: &dyn Host) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        let (mut history, _input) = Output::of(host.console("a", true).expect("console"));
        history.until("demo$ ");
        let (mut output, mut input) = Output::of(host.console("a", false).expect("console"));
        input.write_all(b"help\r").expect("write");
        let seen = output.until("commands:");
        assert!(seen.starts_with("help"), "echo first: {seen:?}");
    }

    pub fn shutdown_ends_attached_consoles(host: &dyn Host) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        let (mut history, _input) = Output::of(host.console("a", true).expect("console"));
        history.until("demo$ ");
        let (mut output, _input) = Output::of(host.console("a", false).expect("console"));
        host.shutdown("a").expect("shutdown");
        output.until_end();
    }

    pub fn undefining_a_running_vm_is_refused(host: &dyn Host) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        assert!(matches!(
            host.undefine("a"),
            Err(ClientError::AlreadyRunning(_))
        ));
        host.destroy("a").expect("destroy");
        host.undefine("a").expect("undefine");
        assert!(host.list().is_empty());
    }

    pub fn live_vcpu_change_shows_in_the_status_but_not_the_definition(host: &dyn Host) {
        host.define(&demo("web", 1, 4)).expect("define");
        host.start("web").expect("start");
        host.set_vcpus("web", 3, ChangeScope::LIVE).expect("live");
        // The guest onlines the new vCPUs in its own time (the fake at once).
        let deadline = Instant::now() + GUEST_TIMEOUT;
        let status = loop {
            let status = host.status("web").expect("status");
            if status.vcpus == Some(3) || Instant::now() > deadline {
                break status;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(status.vcpus, Some(3));
        assert_eq!(status.config.vcpus, 1);
    }

    pub fn live_vcpu_change_of_a_stopped_vm_is_refused(host: &dyn Host) {
        host.define(&demo("web", 1, 4)).expect("define");
        let err = host
            .set_vcpus("web", 2, ChangeScope::LIVE)
            .expect_err("not running");
        assert!(matches!(err, ClientError::LiveNeedsRunning(_)), "{err}");
    }

    pub fn stats_cover_every_vcpu(host: &dyn Host) {
        host.define(&demo("a", 3, 3)).expect("define");
        host.start("a").expect("start");
        // vmd's first sample comes a moment after the start (the fake has one at once).
        let deadline = Instant::now() + GUEST_TIMEOUT;
        let stats = loop {
            let stats = host.stats("a").expect("stats");
            if !stats.vcpus.is_empty() || Instant::now() > deadline {
                break stats;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(stats.vcpus.len(), 3);
        assert!(stats.memory_touched_bytes <= stats.memory_bytes);
    }
}

/// A running VM whose definition a user broke (here `vcpus = "two"`), each backend breaking
/// it its own way: listed as broken with its live state, and still destroyed.
mod a_running_vm_with_a_broken_definition_is_listed_and_can_be_destroyed {
    use super::*;

    fn contract(host: &dyn Host, break_definition: &dyn Fn()) {
        host.define(&demo("a", 1, 1)).expect("define");
        host.start("a").expect("start");
        break_definition();
        let listed = host.list();
        let broken = listed[0].as_ref().expect_err("broken");
        assert_eq!(
            (broken.name.as_str(), broken.live.state),
            ("a", RunState::Running)
        );
        assert!(host.status("a").is_err());
        host.destroy("a").expect("destroy without the definition");
        assert_eq!(host.state("a").expect("state").state, RunState::ShutOff);
    }

    #[test]
    fn fake() {
        let host = FakeHost::new();
        contract(&host, &|| {
            host.break_definition("a", "vcpus = \"two\"", "invalid type")
        });
    }

    #[test]
    fn real() {
        if !met(&[Need::Kvm]) {
            return;
        }
        let real = RealHost::new();
        let file = real.host.paths().vm_file("a");
        contract(&real.host, &|| {
            let text = std::fs::read_to_string(&file).expect("read the definition");
            let broken: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("vcpus") {
                        "vcpus = \"two\"".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            assert_ne!(
                broken.join("\n"),
                text.trim_end(),
                "no vcpus line in {text}"
            );
            std::fs::write(&file, broken.join("\n")).expect("break the definition");
        });
    }
}

host_contract!(started_vm_lists_as_running_with_a_pid);
host_contract!(starting_twice_is_refused_as_already_running);
host_contract!(late_attach_with_history_sees_the_banner);
host_contract!(typing_help_gets_the_command_list);
host_contract!(shutdown_ends_attached_consoles);
host_contract!(undefining_a_running_vm_is_refused);
host_contract!(live_vcpu_change_shows_in_the_status_but_not_the_definition);
host_contract!(live_vcpu_change_of_a_stopped_vm_is_refused);
host_contract!(stats_cover_every_vcpu);

/// Marks `pool/volume` as used by VM definition `vm`, the way each backend records it.
type UseVolume<'a> = &'a dyn Fn(&str, &str, &str);

fn spec(capacity: u64) -> VolumeSpec {
    VolumeSpec {
        capacity,
        format: None,
        preallocate: false,
    }
}

/// What every storage backend must do, as the storage pane relies on it.
mod storage_contracts {
    use super::*;

    pub fn a_volume_in_use_cannot_be_deleted(storage: &dyn StorageHost, use_volume: UseVolume) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 30))
            .expect("created");
        use_volume("default", "a.qcow2", "web1");
        let err = storage
            .delete_volume("default", "a.qcow2")
            .expect_err("refused");
        assert!(err.to_string().contains("web1"), "{err}");
    }

    pub fn shrinking_needs_consent(storage: &dyn StorageHost, _: UseVolume) {
        storage
            .create_volume("default", "a.raw", spec(2 << 30))
            .expect("created");
        assert!(
            storage
                .resize_volume("default", "a.raw", 1 << 30, false)
                .is_err()
        );
        let info = storage
            .resize_volume("default", "a.raw", 1 << 30, true)
            .expect("shrunk");
        assert_eq!(info.capacity, 1 << 30);
    }

    pub fn a_linked_clone_records_its_backing_file(storage: &dyn StorageHost, _: UseVolume) {
        storage
            .create_volume("default", "base.qcow2", spec(1 << 30))
            .expect("created");
        let clone = storage
            .clone_volume(
                "default",
                "base.qcow2",
                "web.qcow2",
                true,
                &vmux::progress::Progress::new(),
            )
            .expect("cloned");
        assert_eq!(clone.backing.map(|b| b.name).as_deref(), Some("base.qcow2"));
        assert!(storage.delete_volume("default", "base.qcow2").is_err());
    }
}

storage_contract!(a_volume_in_use_cannot_be_deleted);
storage_contract!(shrinking_needs_consent);
storage_contract!(a_linked_clone_records_its_backing_file);

/// What every network backend must do, as the networks pane relies on it.
mod network_contracts {
    use super::*;

    pub fn starting_a_network_without_the_capability_fails(networks: &dyn NetworkHost) {
        let err = networks.start("default").expect_err("refused");
        assert!(matches!(err, NetworkError::MissingCapability), "{err}");
    }

    pub fn new_nics_get_distinct_macs(networks: &dyn NetworkHost) {
        let mut vm = VmConfig::new("a", BootConfig::Demo);
        let first = networks.new_nic(&vm, "default", None).expect("nic");
        vm.nics.push(first.clone());
        let second = networks.new_nic(&vm, "default", None).expect("nic");
        assert_ne!(first.mac, second.mac);
    }
}

mod starting_a_network_without_the_capability_fails {
    use super::*;

    #[test]
    fn fake() {
        let networks = FakeNetworks::with_default();
        networks.set_capability(false);
        network_contracts::starting_a_network_without_the_capability_fails(&networks);
    }

    /// The real contract, in this process, which must lack CAP_NET_ADMIN; run by `real`.
    #[test]
    #[ignore = "helper: run by `real` without CAP_NET_ADMIN"]
    fn real_without_the_capability() {
        let home = tempfile::tempdir().expect("tempdir");
        let networks = LocalNetworks::new(Paths::under(home.path()));
        network_contracts::starting_a_network_without_the_capability_fails(&networks);
    }

    #[test]
    fn real() {
        if Need::NetAdmin.check().is_some() {
            // Without the capability already: the contract runs right here.
            real_without_the_capability();
            return;
        }
        if !met(&[CAPSH]) {
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let line = format!(
            "exec {} --exact starting_a_network_without_the_capability_fails::\
             real_without_the_capability --ignored --test-threads=1",
            exe.display()
        );
        let out = std::process::Command::new("capsh")
            .args(["--drop=cap_net_admin", "--", "-c", &line])
            .output()
            .expect("run capsh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

mod new_nics_get_distinct_macs {
    use super::*;

    #[test]
    fn fake() {
        network_contracts::new_nics_get_distinct_macs(&FakeNetworks::with_default());
    }

    #[test]
    fn real() {
        let home = tempfile::tempdir().expect("tempdir");
        let networks = LocalNetworks::new(Paths::under(home.path()));
        network_contracts::new_nics_get_distinct_macs(&networks);
    }
}
