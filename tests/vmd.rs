//! vmd as real processes: each test gets its own `VMUX_HOME` in a temp dir, drives the `vmux`
//! binary's `__vmd` through `LocalHost`, and checks what a user would: states, replies, the
//! console, and that nothing (process, socket, pid file) is left behind.

use std::path::{Path, PathBuf};

use vmux::client::{ClientError, Host, LocalHost};
use vmux::config::{BootConfig, VmConfig};
use vmux::engine::control::RunState;

/// A private vmux home with a host over it.
struct TestHome {
    dir: tempfile::TempDir,
    host: LocalHost,
}

fn home() -> TestHome {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = LocalHost::with_home(dir.path()).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
    TestHome { dir, host }
}

impl TestHome {
    fn kernel_vm(&self, name: &str, kernel: &Path) -> VmConfig {
        let mut config = VmConfig::new(
            name,
            BootConfig::Kernel {
                kernel: kernel.to_path_buf(),
                initrd: None,
                cmdline: String::new(),
            },
        );
        config.memory = 64 << 20;
        self.host.define(&config).expect("define");
        config
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.host.paths().socket(name)
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.host.paths().vm_state_dir(name).join("vmd.pid")
    }

    /// Live (non-zombie) vmd processes started for this home.
    fn vmd_processes(&self) -> Vec<u32> {
        let needle = format!("VMUX_HOME={}", self.dir.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'));
                !zombie
                    && contains(&cmdline, b"__vmd")
                    && environ
                        .split(|&b| b == 0)
                        .any(|var| var == needle.as_bytes())
            })
            .collect()
    }

    fn assert_nothing_left(&self, name: &str) {
        assert!(!self.socket(name).exists(), "socket left behind");
        assert!(!self.pid_file(name).exists(), "pid file left behind");
        assert_eq!(self.vmd_processes(), Vec::<u32>::new(), "vmd left running");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn start_failure(result: Result<(), ClientError>) -> String {
    match result {
        Err(ClientError::StartFailed { message, .. }) => message,
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

#[test]
fn starting_with_a_missing_kernel_names_the_file_and_spawns_nothing() {
    let home = home();
    home.kernel_vm("k", Path::new("/nonexistent/vmlinuz"));
    let message = start_failure(home.host.start("k"));
    assert!(message.contains("/nonexistent/vmlinuz"), "{message}");
    home.assert_nothing_left("k");
}

#[test]
fn starting_with_more_memory_than_the_host_has_is_refused() {
    let home = home();
    let kernel = home.dir.path().join("kernel");
    std::fs::write(&kernel, b"x").expect("write kernel");
    let mut config = home.kernel_vm("big", &kernel);
    config.memory = 1 << 50;
    home.host.update(&config).expect("update");
    let message = start_failure(home.host.start("big"));
    assert!(message.contains("available"), "{message}");
    home.assert_nothing_left("big");
}

#[test]
fn an_unbootable_kernel_reports_vmds_error_and_leaves_nothing_behind() {
    let home = home();
    let kernel = home.dir.path().join("garbage");
    std::fs::write(&kernel, vec![0xa5u8; 4096]).expect("write kernel");
    home.kernel_vm("bad", &kernel);
    let message = start_failure(home.host.start("bad"));
    // vmd's own message (the engine refused the image), not a host check.
    assert!(message.starts_with("cannot boot the VM"), "{message}");
    home.assert_nothing_left("bad");
    assert_eq!(
        home.host.status("bad").expect("status").state,
        RunState::ShutOff
    );
}

#[test]
fn starting_an_undefined_vm_names_it() {
    let home = home();
    let err = home.host.start("ghost").expect_err("unknown");
    assert!(err.to_string().contains("'ghost'"), "{err}");
}

#[test]
fn commands_to_a_stopped_vm_say_it_is_not_running() {
    let home = home();
    home.kernel_vm("idle", Path::new("/nonexistent/vmlinuz"));
    assert!(matches!(
        home.host.info("idle"),
        Err(ClientError::NotRunning(_))
    ));
    assert!(matches!(
        home.host.shutdown("idle"),
        Err(ClientError::NotRunning(_))
    ));
}

#[test]
fn undefine_removes_the_definition_and_its_state() {
    let home = home();
    home.kernel_vm("gone", Path::new("/nonexistent/vmlinuz"));
    let state_dir = home.host.paths().vm_state_dir("gone");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    std::fs::write(state_dir.join("console.log"), b"old").expect("log");
    home.host.undefine("gone").expect("undefine");
    assert!(home.host.status("gone").is_err());
    assert!(!state_dir.exists());
}
