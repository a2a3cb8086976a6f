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
//! * Remote: each contract also runs (`remote` tests) against the real implementation seen
//!   through the host protocol: served by `vmux agent`'s code in this process over pipes and
//!   reached through a `Link`, as `--connect` reaches another host (tests/remote_cli.rs adds
//!   ssh on top).

mod common;

use common::prereq::{CAPSH, Need, met};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use vmux::client::fake::FakeHost;
use vmux::client::{
    ChangeScope, ClientError, Console, FakeNetworks, FakeStorage, Host, HostApi, ImageSource,
    LocalHost, LocalNetworks, LocalStorage, NetworkHost, StorageHost,
};
use vmux::config::{BootConfig, DiskConfig, Paths, Store, VmConfig};
use vmux::config::{ImageFormat, NetworkConfig, NetworkMode};
use vmux::network::NetworkError;
use vmux::progress::Progress;
use vmux::protocol::RunState;
use vmux::remote::Link;
use vmux::storage::{ImageError, StorageError, VolumeSpec};

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

/// `api` served by the agent in this process over pipes, and the host API of a link to it:
/// what `--connect` gives, without ssh. The link closes (and the agent ends) when the returned
/// link is dropped.
fn served(api: HostApi) -> (HostApi, Link) {
    let (agent_in, client_out) = std::io::pipe().expect("pipe");
    let (client_in, agent_out) = std::io::pipe().expect("pipe");
    std::thread::spawn(move || {
        let _ = vmux::remote::agent::serve(
            api,
            std::io::BufReader::new(agent_in),
            Box::new(agent_out),
            "contract".into(),
        );
    });
    let link = Link::over_pipes(
        "contract".into(),
        std::io::BufReader::new(client_in),
        Box::new(client_out),
    )
    .expect("the agent says hello");
    (vmux::remote::api(&link), link)
}

/// The real host, storage and networks of one temp home, through the host protocol.
fn remote_api(host: &LocalHost) -> (HostApi, Link) {
    served(HostApi::local(host.clone()))
}

/// Runs VM contract `$name` against the fake, the real host (which needs KVM) and the real
/// host through the host protocol.
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

            #[test]
            fn remote() {
                if !met(&[Need::Kvm]) {
                    return;
                }
                let real = RealHost::new();
                let (api, _link) = remote_api(&real.host);
                host_contracts::$name(api.vms.as_ref());
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
                    storage.set_users(pool, volume, &[vm], &[]);
                    storage.add_vm(vm, &["vda"]);
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

            #[test]
            fn remote() {
                let home = tempfile::tempdir().expect("tempdir");
                let paths = Paths::under(home.path());
                let (api, _link) = remote_api(&LocalHost::with_home(home.path()));
                storage_contracts::$name(api.storage.as_ref(), &|pool, volume, vm| {
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

    pub fn a_pool_goes_from_defined_to_active_and_back_to_undefined(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = storage
            .define_pool("fast", dir.path(), false)
            .expect("defined");
        assert!(!status.active);
        storage.start_pool("fast").expect("started");
        let info = storage.pool_info("fast").expect("info");
        assert!(info.status.active);
        assert_eq!(info.status.path, dir.path());
        let err = storage.undefine_pool("fast").expect_err("active");
        assert!(matches!(err, StorageError::PoolActive(_)), "{err}");
        storage.stop_pool("fast").expect("stopped");
        storage.undefine_pool("fast").expect("undefined");
        let names: Vec<String> = storage
            .list_pools()
            .expect("list")
            .pools
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["default"]);
    }

    pub fn the_default_pool_cannot_be_undefined(storage: &dyn StorageHost, _: UseVolume) {
        storage.stop_pool("default").expect("stopped");
        let err = storage.undefine_pool("default").expect_err("refused");
        assert!(matches!(err, StorageError::UndefineDefault(_)), "{err}");
    }

    pub fn a_volume_listing_names_each_volume_in_order_with_its_info(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        for name in ["b.raw", "a.qcow2"] {
            storage
                .create_volume("default", name, spec(1 << 20))
                .expect("created");
        }
        let listed = storage.list_volumes("default").expect("list");
        let names: Vec<&str> = listed.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["a.qcow2", "b.raw"]);
        let info = storage.volume_info("default", "b.raw").expect("info");
        assert_eq!(listed[1].info.as_ref().ok(), Some(&info));
        assert_eq!((info.format, info.capacity), (ImageFormat::Raw, 1 << 20));
    }

    pub fn an_unknown_volume_is_named_with_the_listing_command(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        let err = storage
            .volume_info("default", "nope.qcow2")
            .expect_err("unknown");
        assert!(matches!(err, StorageError::UnknownVolume { .. }), "{err}");
        assert!(err.to_string().contains("vmux vol-list default"), "{err}");
    }

    pub fn a_new_qcow2_volume_checks_clean_and_a_raw_one_has_nothing_to_check(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        storage
            .create_volume("default", "b.raw", spec(1 << 20))
            .expect("created");
        let report = storage
            .check_volume("default", "a.qcow2", false)
            .expect("checked");
        assert!(report.is_clean(), "{report:?}");
        let err = storage
            .check_volume("default", "b.raw", false)
            .expect_err("raw");
        assert!(err.to_string().contains("raw image"), "{err}");
    }

    pub fn growing_with_preallocation_allocates_the_new_space(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        storage
            .create_volume("default", "a.raw", spec(1 << 20))
            .expect("created");
        let info = storage
            .grow_volume_allocated("default", "a.raw", 2 << 20, &Progress::new())
            .expect("grown");
        assert_eq!(info.capacity, 2 << 20);
        assert!(info.allocation >= 1 << 20, "{info:?}");
    }

    pub fn a_download_does_not_replace_a_file_without_force(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out.raw");
        std::fs::write(&dest, b"mine").expect("write");
        let progress = Progress::new();
        let err = storage
            .download_volume("default", "a.qcow2", &dest, None, false, &progress)
            .expect_err("exists");
        assert!(matches!(err, StorageError::DestinationExists(_)), "{err}");
        let written = storage
            .download_volume("default", "a.qcow2", &dest, None, true, &progress)
            .expect("replaced");
        assert_eq!(written, ImageFormat::Raw);
    }

    pub fn a_linked_import_of_a_file_makes_a_qcow2_overlay_on_a_base_volume(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cloud.raw");
        std::fs::write(&file, vec![0u8; 1 << 20]).expect("write image");
        let made = storage
            .import_image(
                "default",
                "web.qcow2",
                &ImageSource::File(file),
                None,
                true,
                &Progress::new(),
            )
            .expect("imported");
        assert_eq!(made.volume.format, ImageFormat::Qcow2);
        assert_eq!(made.base.as_deref(), Some("cloud.raw"));
        assert!(!made.reused_base);
        assert!(made.volume.backing.is_some(), "{:?}", made.volume);
    }

    pub fn a_pool_volume_is_not_copied_by_an_import(storage: &dyn StorageHost, _: UseVolume) {
        storage
            .create_volume("default", "base.qcow2", spec(1 << 20))
            .expect("created");
        let source = ImageSource::Volume {
            pool: "default".into(),
            volume: "base.qcow2".into(),
        };
        let progress = Progress::new();
        assert!(
            storage
                .import_image("default", "copy.qcow2", &source, None, false, &progress)
                .is_err()
        );
    }

    pub fn snapshots_list_oldest_first_and_a_revert_drops_the_later_ones(
        storage: &dyn StorageHost,
        use_volume: UseVolume,
    ) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        use_volume("default", "a.qcow2", "web1");
        storage.create_snapshot("web1", "s1").expect("s1");
        storage.create_snapshot("web1", "s2").expect("s2");
        let list = storage.list_snapshots("web1").expect("list");
        let names: Vec<(&str, bool)> = list.iter().map(|s| (s.name.as_str(), s.current)).collect();
        assert_eq!(names, [("s1", false), ("s2", true)]);
        assert_eq!(list[0].disks[0].0, "vda");
        let report = storage.revert_snapshot("web1", "s1").expect("reverted");
        assert_eq!(report.removed_snapshots, ["s2"]);
        let names: Vec<String> = storage
            .list_snapshots("web1")
            .expect("list")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["s1"]);
    }

    pub fn a_snapshot_name_is_used_once_and_a_deleted_one_is_gone(
        storage: &dyn StorageHost,
        use_volume: UseVolume,
    ) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        use_volume("default", "a.qcow2", "web1");
        storage.create_snapshot("web1", "s1").expect("s1");
        let err = storage.create_snapshot("web1", "s1").expect_err("taken");
        assert!(
            err.to_string().contains("already has a snapshot 's1'"),
            "{err}"
        );
        storage
            .delete_snapshot("web1", "s1", &Progress::new())
            .expect("deleted");
        assert!(storage.list_snapshots("web1").expect("list").is_empty());
    }

    pub fn nobody_holds_a_volume_of_a_host_without_running_vms(
        storage: &dyn StorageHost,
        use_volume: UseVolume,
    ) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        use_volume("default", "a.qcow2", "web1");
        assert!(storage.volume_holders("default", "a.qcow2").is_empty());
    }

    pub fn a_volume_disk_is_the_file_in_its_pool_directory(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        let info = storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        let pool = storage.pool_info("default").expect("pool");
        let path = storage
            .disk_path(&DiskConfig::volume("default", "a.qcow2"))
            .expect("path");
        assert_eq!(path, pool.status.path.join("a.qcow2"));
        assert_eq!(path, info.path);
    }

    pub fn the_boot_plan_of_an_unknown_volume_names_it(storage: &dyn StorageHost, _: UseVolume) {
        let err = storage
            .boot_plan(&DiskConfig::volume("default", "nope.qcow2"))
            .expect_err("unknown");
        assert!(matches!(err, StorageError::UnknownVolume { .. }), "{err}");
    }

    pub fn an_image_file_has_the_format_its_name_says_and_no_name_says_none(
        storage: &dyn StorageHost,
        _: UseVolume,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("cloud.raw");
        let nameless = dir.path().join("cloud");
        for file in [&raw, &nameless] {
            std::fs::write(file, vec![0u8; 1 << 20]).expect("write image");
        }
        assert_eq!(
            storage.image_file_format(&raw).expect("raw"),
            ImageFormat::Raw
        );
        let err = storage.image_file_format(&nameless).expect_err("no format");
        assert!(
            matches!(
                err,
                StorageError::Image(
                    ImageError::FormatUnknown { .. } | ImageError::FormatAmbiguous { .. }
                )
            ),
            "{err}"
        );
    }

    pub fn a_vm_never_started_has_no_cloud_init_instance_id(
        storage: &dyn StorageHost,
        use_volume: UseVolume,
    ) {
        storage
            .create_volume("default", "a.qcow2", spec(1 << 20))
            .expect("created");
        use_volume("default", "a.qcow2", "web1");
        let (seed, instance_id) = storage.cloud_init_seed("web1");
        assert!(seed.ends_with("web1/cidata.img"), "{}", seed.display());
        assert_eq!(instance_id, None);
    }
}

storage_contract!(a_volume_disk_is_the_file_in_its_pool_directory);
storage_contract!(the_boot_plan_of_an_unknown_volume_names_it);
storage_contract!(an_image_file_has_the_format_its_name_says_and_no_name_says_none);
storage_contract!(a_vm_never_started_has_no_cloud_init_instance_id);
storage_contract!(a_pool_goes_from_defined_to_active_and_back_to_undefined);
storage_contract!(the_default_pool_cannot_be_undefined);
storage_contract!(a_volume_listing_names_each_volume_in_order_with_its_info);
storage_contract!(an_unknown_volume_is_named_with_the_listing_command);
storage_contract!(a_new_qcow2_volume_checks_clean_and_a_raw_one_has_nothing_to_check);
storage_contract!(growing_with_preallocation_allocates_the_new_space);
storage_contract!(a_download_does_not_replace_a_file_without_force);
storage_contract!(a_linked_import_of_a_file_makes_a_qcow2_overlay_on_a_base_volume);
storage_contract!(a_pool_volume_is_not_copied_by_an_import);
storage_contract!(snapshots_list_oldest_first_and_a_revert_drops_the_later_ones);
storage_contract!(a_snapshot_name_is_used_once_and_a_deleted_one_is_gone);
storage_contract!(nobody_holds_a_volume_of_a_host_without_running_vms);
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

    pub fn the_default_network_is_listed_and_described_inactive(networks: &dyn NetworkHost) {
        let list = networks.list().expect("list");
        let names: Vec<(&str, bool)> = list
            .networks
            .iter()
            .map(|n| (n.config.name.as_str(), n.active))
            .collect();
        assert_eq!(names, [("default", false)]);
        let info = networks.info("default").expect("info");
        assert!(info.active.is_none());
        assert_eq!(info.config, list.networks[0].config);
    }

    pub fn an_unknown_network_is_named(networks: &dyn NetworkHost) {
        let err = networks.info("nowhere").expect_err("unknown");
        assert!(matches!(err, NetworkError::UnknownNetwork(_)), "{err}");
    }

    pub fn a_defined_network_can_be_marked_autostart_and_undefined(networks: &dyn NetworkHost) {
        let bridge = networks.unused_bridge_name("lab").expect("bridge name");
        let subnet = "10.231.77.0/24".parse().expect("subnet");
        let config =
            NetworkConfig::routed("lab", NetworkMode::Isolated, &bridge, subnet, None, None);
        networks.define(&config).expect("defined");
        networks.set_autostart("lab", true).expect("marked");
        let lab = networks.info("lab").expect("info");
        assert!(lab.config.autostart);
        assert!(lab.active.is_none());
        networks.undefine("lab").expect("undefined");
        let err = networks.info("lab").expect_err("gone");
        assert!(matches!(err, NetworkError::UnknownNetwork(_)), "{err}");
    }

    pub fn autostart_all_with_nothing_marked_starts_nothing(networks: &dyn NetworkHost) {
        assert!(networks.autostart_all().is_empty());
    }

    pub fn a_mac_given_for_a_new_nic_is_kept(networks: &dyn NetworkHost) {
        let vm = VmConfig::new("a", BootConfig::Demo);
        let mac = "52:54:00:12:34:56".parse().expect("mac");
        let nic = networks.new_nic(&vm, "default", Some(mac)).expect("nic");
        assert_eq!((nic.network.as_str(), nic.mac), ("default", mac));
        let err = networks
            .new_nic(&vm, "nowhere", Some(mac))
            .expect_err("unknown network");
        assert!(matches!(err, NetworkError::UnknownNetwork(_)), "{err}");
    }
}

/// Runs network contract `$name` against the fake and against the real networks of a temp
/// home (nothing here touches a host interface).
macro_rules! network_contract {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn fake() {
                network_contracts::$name(&FakeNetworks::with_default());
            }

            #[test]
            fn real() {
                let home = tempfile::tempdir().expect("tempdir");
                network_contracts::$name(&LocalNetworks::new(Paths::under(home.path())));
            }

            #[test]
            fn remote() {
                let home = tempfile::tempdir().expect("tempdir");
                let (api, _link) = remote_api(&LocalHost::with_home(home.path()));
                network_contracts::$name(api.networks.as_ref());
            }
        }
    };
}

network_contract!(the_default_network_is_listed_and_described_inactive);
network_contract!(an_unknown_network_is_named);
network_contract!(a_defined_network_can_be_marked_autostart_and_undefined);
network_contract!(autostart_all_with_nothing_marked_starts_nothing);
network_contract!(a_mac_given_for_a_new_nic_is_kept);

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
