//! Facts of this host that `VmConfig::validate` cannot know, checked when a definition is saved
//! here (`define_check`, so `create`, `define` and `edit` get them from whichever host they
//! work on, over `--connect` too) and by `vmux run`: the boot files exist and are readable,
//! and the memory is no more than the host has in all. (`start` checks again, with
//! `/dev/kvm` and the memory available right then, in `host_check`.)

use crate::config::{BootConfig, VmConfig, format_size};
use std::path::PathBuf;

/// A definition this host cannot run. Messages name the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum HostFactError {
    /// A kernel or initrd cannot be read.
    #[error("cannot read the {what} {}; give the path of a readable file", path.display())]
    BootFile {
        /// `kernel` or `initrd`.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The VM asks for more memory than the host has.
    #[error("memory {requested} is more than this host has ({available}); give a smaller --memory")]
    MemoryTooLarge {
        /// Asked for, formatted.
        requested: String,
        /// The host's MemTotal, formatted.
        available: String,
    },
    /// /proc/meminfo could not be read.
    #[error("cannot read the host's memory size from /proc/meminfo; is /proc mounted?")]
    HostMemory {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}
use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

/// Checks every host fact a definition depends on.
pub fn check(cfg: &VmConfig) -> Result<(), HostFactError> {
    check_boot_files(&cfg.boot)?;
    check_memory(cfg.memory, host_memory_total()?)
}

/// Checks that the kernel and initrd can be opened for reading.
pub fn check_boot_files(boot: &BootConfig) -> Result<(), HostFactError> {
    let BootConfig::Kernel { kernel, initrd, .. } = boot else {
        return Ok(());
    };
    check_readable_file("kernel", kernel)?;
    if let Some(initrd) = initrd {
        check_readable_file("initrd", initrd)?;
    }
    Ok(())
}

fn check_readable_file(what: &'static str, path: &Path) -> Result<(), HostFactError> {
    let unreadable = |source| HostFactError::BootFile {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(unreadable(std::io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok(())
}

/// Makes a path the user typed absolute against the current directory.
pub fn absolute(path: &std::path::Path) -> Result<PathBuf, HostFactError> {
    std::path::absolute(path).map_err(|source| HostFactError::BootFile {
        what: "file",
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses `memory` bytes above `host_total` bytes.
pub fn check_memory(memory: u64, host_total: u64) -> Result<(), HostFactError> {
    if memory > host_total {
        return Err(HostFactError::MemoryTooLarge {
            requested: format_size(memory),
            available: format_size(host_total),
        });
    }
    Ok(())
}

/// The host's `MemTotal` in bytes.
pub fn host_memory_total() -> Result<u64, HostFactError> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|source| HostFactError::HostMemory { source })?;
    parse_mem_total(&text).ok_or_else(|| HostFactError::HostMemory {
        source: std::io::Error::new(ErrorKind::InvalidData, "no MemTotal line"),
    })
}

/// Extracts `MemTotal:  16318460 kB` from /proc/meminfo text, in bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:       16318460 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(text), Some(16318460 * 1024));
    }

    #[test]
    fn meminfo_without_mem_total_gives_none() {
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn memory_above_the_host_names_both_sizes() {
        let err = check_memory(8 << 30, 4 << 30).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("8G") && text.contains("4G"), "{text}");
    }

    #[test]
    fn memory_equal_to_the_host_is_accepted() {
        assert!(check_memory(4 << 30, 4 << 30).is_ok());
    }

    #[test]
    fn missing_kernel_is_named() {
        let boot = BootConfig::Kernel {
            kernel: "/nonexistent/vmlinuz".into(),
            initrd: None,
            cmdline: String::new(),
        };
        let err = check_boot_files(&boot).expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/vmlinuz"), "{err}");
    }

    #[test]
    fn a_directory_is_not_a_kernel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let boot = BootConfig::Kernel {
            kernel: dir.path().to_path_buf(),
            initrd: None,
            cmdline: String::new(),
        };
        assert!(check_boot_files(&boot).is_err());
    }
}
