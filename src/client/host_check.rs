//! Checks a definition against this host before spawning vmd, so the common failures get a
//! precise message that names the fix: kernel or initrd unreadable, `/dev/kvm` missing or not
//! permitted, more memory asked for than the host has available.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::config::{BootConfig, VmConfig, format_size};

/// Where KVM lives.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// Runs every check; the first failure's message.
pub fn check(config: &VmConfig) -> Result<(), String> {
    if let BootConfig::Kernel { kernel, initrd, .. } = &config.boot {
        check_readable("kernel", kernel)?;
        if let Some(initrd) = initrd {
            check_readable("initrd", initrd)?;
        }
    }
    check_kvm(Path::new(KVM_DEVICE))?;
    match std::fs::read_to_string("/proc/meminfo") {
        Ok(meminfo) => check_memory(config.memory, &meminfo),
        // Without /proc/meminfo there is nothing to compare against; the engine will say if
        // it cannot allocate.
        Err(_) => Ok(()),
    }
}

fn check_readable(what: &str, path: &Path) -> Result<(), String> {
    File::open(path).map(drop).map_err(|e| {
        format!(
            "cannot read the {what} {}: {}; fix the path in the definition or the file's permissions",
            path.display(),
            io_reason(&e)
        )
    })
}

/// `/dev/kvm` must exist and be openable read-write.
pub fn check_kvm(device: &Path) -> Result<(), String> {
    match OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
            "{} does not exist: KVM is not available; enable virtualization in the firmware and load the module (`modprobe kvm_intel` or `modprobe kvm_amd`)",
            device.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(format!(
            "permission denied opening {}; add your user to the 'kvm' group (`sudo usermod -aG kvm $USER`) and log in again",
            device.display()
        )),
        Err(e) => Err(format!(
            "cannot open {}: {}",
            device.display(),
            io_reason(&e)
        )),
    }
}

/// The VM's memory must fit in `MemAvailable`.
pub fn check_memory(wanted: u64, meminfo: &str) -> Result<(), String> {
    let Some(available) = mem_available(meminfo) else {
        return Ok(());
    };
    if wanted > available {
        return Err(format!(
            "the VM needs {} of memory but the host has only {} available; lower `memory` in the definition or stop other VMs",
            format_size(wanted),
            format_size(available)
        ));
    }
    Ok(())
}

/// `MemAvailable` from `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The OS error text without Rust's " (os error N)" suffix.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str =
        "MemTotal:       16000000 kB\nMemFree:  1000 kB\nMemAvailable:    1048576 kB\n";

    #[test]
    fn memory_within_mem_available_passes() {
        assert_eq!(check_memory(512 << 20, MEMINFO), Ok(()));
    }

    #[test]
    fn memory_beyond_mem_available_names_both_sizes() {
        let err = check_memory(2 << 30, MEMINFO).expect_err("too much");
        assert!(err.contains("needs 2G") && err.contains("only 1G"), "{err}");
    }

    #[test]
    fn a_missing_kvm_device_says_how_to_get_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_kvm(&dir.path().join("kvm")).expect_err("missing");
        assert!(
            err.contains("does not exist") && err.contains("modprobe"),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_kernel_is_named() {
        let config = VmConfig::new(
            "a",
            BootConfig::Kernel {
                kernel: "/nonexistent/vmlinuz".into(),
                initrd: None,
                cmdline: String::new(),
            },
        );
        let err = check(&config).expect_err("missing kernel");
        assert!(
            err.contains("kernel /nonexistent/vmlinuz: No such file or directory"),
            "{err}"
        );
    }
}
