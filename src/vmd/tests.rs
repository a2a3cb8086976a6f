//! vmd end to end in one process: a real control socket, pid lock and state file, the real
//! client ([`LocalHost`]) on the other side, and the fake engine instead of KVM.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::fake::FakeEngine;
use super::supervisor::Supervisor;
use super::{StartMode, Vmd, VmdError};
use crate::client::{ClientError, Host, LocalHost};
use crate::config::{BootConfig, Paths, Store, VmConfig};
use crate::protocol::{ExitReason, RunState};
use crate::vmd::pidfile::PidFileError;

struct Running {
    _home: tempfile::TempDir,
    paths: Paths,
    host: LocalHost,
    engine: Arc<FakeEngine>,
    sup: Arc<Supervisor>,
    vmd: JoinHandle<ExitReason>,
}

fn define(paths: &Paths) {
    let config = VmConfig::new(
        "t",
        BootConfig::Kernel {
            kernel: "/fake/kernel".into(),
            initrd: None,
            cmdline: String::new(),
        },
    );
    Store::new(paths.clone()).create(&config).expect("define");
}

fn start(banner: &'static [u8]) -> Running {
    let home = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(home.path());
    define(&paths);
    let engine = Arc::new(FakeEngine::new(banner));
    let vmd = Vmd::start(&paths, "t", engine.clone(), &StartMode::Boot, None).expect("start");
    let sup = Arc::clone(&vmd.sup);
    let vmd = thread::spawn(move || vmd.run());
    let host = LocalHost::with_home(home.path());
    Running {
        _home: home,
        paths,
        host,
        engine,
        sup,
        vmd,
    }
}

/// Reads from `output` until `needle` shows up (or fails after 5 s).
fn read_until_contains(output: &mut (dyn Read + Send), needle: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Reads block; use a helper thread per call so the test stays bounded.
    let mut buf = [0u8; 1024];
    thread::scope(|scope| {
        scope.spawn(|| {
            while !String::from_utf8_lossy(&seen).contains(needle) {
                match output.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(deadline - Instant::now()).is_ok(),
            "timed out waiting for {needle:?}"
        );
    });
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn info_pause_resume_and_state_file_over_the_socket() {
    let vm = start(b"");
    let info = vm.host.info("t").expect("info");
    assert_eq!((info.state, info.boots), (RunState::Running, 1));
    vm.host.suspend("t").expect("suspend");
    assert_eq!(vm.host.status("t").expect("status").state, RunState::Paused);
    assert_eq!(vm.host.info("t").expect("info").state, RunState::Paused);
    vm.host.resume("t").expect("resume");
    assert_eq!(
        vm.host.status("t").expect("status").state,
        RunState::Running
    );
    vm.host.destroy("t").expect("destroy");
    assert_eq!(vm.vmd.join().expect("vmd"), ExitReason::Destroyed);
}

#[test]
fn a_refused_command_carries_vmds_reason() {
    let vm = start(b"");
    let err = vm.host.resume("t").expect_err("not paused");
    assert!(
        matches!(&err, ClientError::Refused { message, .. } if message.contains("not paused")),
        "{err}"
    );
    vm.host.destroy("t").expect("destroy");
}

#[test]
fn destroy_leaves_no_socket_or_pid_file_and_records_shut_off() {
    let vm = start(b"");
    vm.host.destroy("t").expect("destroy");
    vm.vmd.join().expect("vmd");
    assert!(!vm.paths.socket("t").exists());
    assert!(!vm.paths.vm_state_dir("t").join("vmd.pid").exists());
    let status = vm.host.status("t").expect("status");
    assert_eq!((status.state, status.pid), (RunState::ShutOff, None));
    assert!(matches!(vm.host.info("t"), Err(ClientError::NotRunning(_))));
}

#[test]
fn a_crash_is_reported_with_its_reason_after_vmd_exits() {
    let vm = start(b"");
    vm.engine
        .control(1)
        .crash("KVM_EXIT_INTERNAL_ERROR at rip 0x100004");
    vm.vmd.join().expect("vmd");
    let status = vm.host.status("t").expect("status");
    assert_eq!(status.state, RunState::Crashed);
    assert_eq!(
        status.reason.as_deref(),
        Some("KVM_EXIT_INTERNAL_ERROR at rip 0x100004")
    );
}

#[test]
fn two_console_clients_both_see_output_and_both_can_type() {
    let vm = start(b"");
    let mut a = vm.host.console("t", false).expect("console a");
    let mut b = vm.host.console("t", false).expect("console b");
    vm.sup.ring().push(b"hello from the guest\n");
    read_until_contains(&mut *a.output, "hello from the guest");
    read_until_contains(&mut *b.output, "hello from the guest");
    a.input.write_all(b"ab").expect("type a");
    b.input.write_all(b"cd").expect("type b");
    let control = vm.engine.control(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while control.input.lock().expect("input").len() < 4 {
        assert!(Instant::now() < deadline, "input did not arrive");
        thread::sleep(Duration::from_millis(5));
    }
    let mut typed = control.input.lock().expect("input").clone();
    typed.sort_unstable();
    assert_eq!(typed, b"abcd");
    vm.host.destroy("t").expect("destroy");
}

#[test]
fn a_late_console_with_history_gets_the_banner() {
    let vm = start(b"vmux demo banner\r\n");
    let mut late = vm.host.console("t", true).expect("console");
    let seen = read_until_contains(&mut *late.output, "vmux demo banner");
    assert!(seen.starts_with("vmux demo banner"), "{seen:?}");
    vm.host.destroy("t").expect("destroy");
}

#[test]
fn a_bad_line_gets_an_error_reply_and_the_connection_keeps_working() {
    let vm = start(b"");
    let stream = UnixStream::connect(vm.paths.socket("t")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"this is not json\n{\"id\":2,\"cmd\":\"info\"}\n")
        .expect("send");
    let mut line = String::new();
    reader.read_line(&mut line).expect("error reply");
    assert!(
        line.contains(r#""ok":false"#) && line.contains("bad_request"),
        "{line}"
    );
    line.clear();
    reader.read_line(&mut line).expect("info reply");
    assert!(line.contains(r#""id":2,"ok":true"#), "{line}");
    vm.host.destroy("t").expect("destroy");
}

#[test]
fn subscribers_get_state_events_and_the_exit() {
    let vm = start(b"");
    let stream = UnixStream::connect(vm.paths.socket("t")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let reader = BufReader::new(stream);
    writer
        .write_all(b"{\"id\":1,\"cmd\":\"subscribe\"}\n")
        .expect("send");
    let mut lines = reader.lines();
    let first = lines.next().expect("reply").expect("read");
    assert!(first.contains(r#""id":1,"ok":true"#), "{first}");
    vm.host.suspend("t").expect("suspend");
    vm.host.destroy("t").expect("destroy");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let paused = r#"{"event":"state","state":"paused"}"#;
    assert!(rest.iter().any(|l| l == paused), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l == r#"{"event":"exited","reason":{"kind":"destroyed"}}"#),
        "{rest:?}"
    );
}

#[test]
fn a_second_vmd_for_the_same_vm_is_refused() {
    let vm = start(b"");
    let engine = Arc::new(FakeEngine::new(b""));
    let err = Vmd::start(&vm.paths, "t", engine, &StartMode::Boot, None)
        .err()
        .expect("second start must fail");
    assert!(
        matches!(err, VmdError::Lock(PidFileError::AlreadyRunning { .. })),
        "{err}"
    );
    vm.host.destroy("t").expect("destroy");
}

#[test]
fn a_failed_boot_leaves_no_socket_or_pid_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(home.path());
    define(&paths);
    let mut engine = FakeEngine::new(b"");
    engine.fail_from_boot = Some(1);
    let err = Vmd::start(&paths, "t", Arc::new(engine), &StartMode::Boot, None)
        .err()
        .expect("must fail");
    assert!(
        super::error_chain(&err).contains("fake engine refused"),
        "{err}"
    );
    assert!(!paths.socket("t").exists());
    assert!(!paths.vm_state_dir("t").join("vmd.pid").exists());
}

#[test]
fn a_nic_on_a_network_that_is_not_started_stops_the_start_before_the_boot() {
    let home = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(home.path());
    let mut config = VmConfig::new("t", BootConfig::Demo);
    config.nics.push(crate::config::NicConfig {
        network: "default".into(),
        mac: crate::config::MacAddr::with_vmux_prefix(1),
    });
    Store::new(paths.clone()).create(&config).expect("define");
    let engine = Arc::new(FakeEngine::new(b""));

    let err = Vmd::start(&paths, "t", engine.clone(), &StartMode::Boot, None)
        .err()
        .expect("must fail");

    // Without CAP_NET_ADMIN it says that instead of naming `vmux net-start`; either way it is
    // the network that refused, before any boot.
    assert!(matches!(err, VmdError::Network(_)), "{err}");
    assert_eq!(engine.boots(), 0);
    assert!(!paths.socket("t").exists());
    assert!(!paths.vm_state_dir("t").join("vmd.pid").exists());
}

/// A VM `t` with writable disks `disk.qcow2` and `data.raw` in the default pool.
fn define_with_disks(paths: &Paths) -> std::path::PathBuf {
    use crate::storage::{StorageManager, VolumeSpec};
    let storage = StorageManager::new(paths.clone());
    for volume in ["disk.qcow2", "data.raw"] {
        storage
            .vol_create(
                "default",
                volume,
                VolumeSpec {
                    capacity: 1 << 30,
                    format: None,
                    preallocate: false,
                },
            )
            .expect("create volume");
    }
    let mut config = VmConfig::new("t", BootConfig::Demo);
    config.disks = vec![
        crate::config::DiskConfig::volume("default", "disk.qcow2"),
        crate::config::DiskConfig::volume("default", "data.raw"),
    ];
    Store::new(paths.clone()).create(&config).expect("define");
    storage
        .volume_path("default", "disk.qcow2")
        .expect("volume path")
}

#[test]
fn a_running_vmd_lists_its_writable_qcow2_images_and_a_clean_exit_removes_the_list() {
    use super::open_images::{OPEN_IMAGES_FILE, OpenImagesFile};
    let home = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(home.path());
    let image = define_with_disks(&paths);
    let list = paths.vm_state_dir("t").join(OPEN_IMAGES_FILE);
    let vmd = Vmd::start(
        &paths,
        "t",
        Arc::new(FakeEngine::new(b"")),
        &StartMode::Boot,
        None,
    )
    .expect("start");

    let listed = OpenImagesFile::read(&list).expect("read").expect("a list");
    assert_eq!(listed.images, [image]);
    assert_eq!(listed.pid, std::process::id());

    let vmd = thread::spawn(move || vmd.run());
    LocalHost::with_home(home.path())
        .destroy("t")
        .expect("destroy");
    vmd.join().expect("vmd");
    assert!(!list.exists(), "a clean exit leaves no list");
}

#[test]
fn a_list_left_by_a_dead_vmd_is_repaired_before_the_disks_open() {
    use super::open_images::{OPEN_IMAGES_FILE, OpenImagesFile};
    use crate::storage::qcow2_repair::check_image;
    use std::os::unix::fs::FileExt;
    let home = tempfile::tempdir().expect("tempdir");
    let paths = Paths::under(home.path());
    let image = define_with_disks(&paths);
    // Every refcount lost, as after a crash that never wrote them back.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .expect("open image");
    let mut table = [0u8; 8];
    file.read_exact_at(&mut table, 48).expect("read header");
    file.write_all_at(&[0u8; 8], u64::from_be_bytes(table))
        .expect("drop the refcount block");
    drop(file);
    let dir = paths.vm_state_dir("t");
    std::fs::create_dir_all(&dir).expect("state dir");
    OpenImagesFile {
        pid: 1,
        images: vec![image.clone()],
    }
    .write(&dir.join(OPEN_IMAGES_FILE))
    .expect("leftover list");

    // The second disk is gone, so this start fails at opening the disks, after the repair
    // (and leaves no image open, so the check below can lock it).
    std::fs::remove_file(image.with_file_name("data.raw")).expect("remove data.raw");

    let err = Vmd::start(
        &paths,
        "t",
        Arc::new(FakeEngine::new(b"")),
        &StartMode::Boot,
        None,
    )
    .err()
    .expect("the missing disk fails the start");

    assert!(matches!(err, VmdError::Disks(_)), "{err}");
    assert!(check_image(&image).expect("check").is_clean());
    assert!(!dir.join(OPEN_IMAGES_FILE).exists());
}
