//! Booting a VM from its disk image's own /boot (`BootConfig::Image`), pygrub-style: before
//! every boot (the first, and each reboot or reset) vmd reads the partition table, the boot
//! entry, the kernel and the initrd of disk `vda` and hands the bytes to the engine's loader,
//! the same one `--kernel` files go through. So a kernel the guest installed is what the next
//! boot runs, and a boot whose image cannot be read fails before any vCPU runs, with
//! `bootimg`'s message (what was found, what would work).
//!
//! The image is read through the disk vmd already holds open for the guest (its qcow2 chain
//! included, and its current overlay after a live snapshot), never by opening the file again:
//! the guest's own view of its disk is what decides, and nothing can write it while the
//! previous boot is over and the next one not yet built.
//!
//! Why bytes rather than files: the kernel and initrd go straight from the image into guest
//! RAM (one copy in vmd's heap, freed once the boot is built), with no plaintext copy of a
//! guest's initrd left on the host's disk, no file to clean up after a crash, and no file the
//! confined vmd would have to create at reboot time.

use std::path::Path;
use std::sync::Arc;

use std::sync::PoisonError;

use super::supervisor::Supervisor;
use crate::bootimg::{self, BootImageError, ReadAt};
use crate::config::IMAGE_BOOT_TARGET;
use crate::engine::{BootSpec, DiskBackend, VmSpec};
use crate::protocol::BootImageInfo;

/// A failed attempt to boot from the disk image.
#[derive(Debug, thiserror::Error)]
pub enum ImageBootError {
    /// The definition boots from disk vda, which this boot does not have.
    #[error(
        "the VM boots from its disk vda, which it no longer has (was it detached?); attach the image as vda again"
    )]
    NoBootDisk,
    /// The image's /boot could not be used.
    #[error("cannot boot from the disk image {image}")]
    Image {
        /// The image on the host.
        image: String,
        /// What bootimg found.
        #[source]
        source: BootImageError,
    },
}

/// How this VM boots from its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBoot {
    /// Words appended to the entry's command line (`cmdline_extra`).
    pub cmdline_extra: String,
}

/// A boot prepared from the image: the engine's spec and what `info` reports.
pub struct PreparedBoot {
    /// Kernel, initrd and command line, in memory.
    pub boot: BootSpec,
    /// What was chosen.
    pub info: BootImageInfo,
}

impl ImageBoot {
    /// Inspects the image behind `disk` (the file `image`) and reads its kernel and initrd.
    pub fn prepare(
        &self,
        image: &Path,
        disk: Arc<dyn DiskBackend>,
    ) -> Result<PreparedBoot, ImageBootError> {
        let failed = |source| ImageBootError::Image {
            image: image.display().to_string(),
            source,
        };
        let source: Arc<dyn ReadAt> = Arc::new(BackendReader(disk));
        let plan = bootimg::inspect(Arc::clone(&source)).map_err(failed)?;
        let files = bootimg::extract(source, &plan).map_err(failed)?;
        let mut info = plan.boot_info(image, &self.cmdline_extra);
        info.kernel_bytes = files.kernel.len() as u64;
        info.initrd_bytes = files.initrd.as_ref().map_or(0, |i| i.len() as u64);
        let cmdline = info.cmdline.clone();
        let name = format!("{} in {}", plan.kernel.resolved, image.display());
        Ok(PreparedBoot {
            boot: BootSpec::Loaded {
                name,
                kernel: Arc::new(files.kernel),
                initrd: files.initrd.map(Arc::new),
                cmdline,
            },
            info,
        })
    }
}

impl Supervisor {
    /// `spec` with its boot image filled in from disk vda's /boot when this VM boots from its
    /// image (recording what was chosen for `info`); `spec` as it is otherwise.
    pub fn prepare_boot(&self, spec: &VmSpec) -> Result<VmSpec, ImageBootError> {
        let Some(image_boot) = &self.image_boot else {
            return Ok(spec.clone());
        };
        let (image, disk) = self
            .disks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .boot_backend(IMAGE_BOOT_TARGET)
            .ok_or(ImageBootError::NoBootDisk)?;
        let started = std::time::Instant::now();
        let prepared = image_boot.prepare(&image, disk)?;
        log::info!(
            "boot: {} from {} in {} ms: {} bytes of kernel, {} of initrd; command line: {}",
            prepared.info.describe(),
            image.display(),
            started.elapsed().as_millis(),
            prepared.info.kernel_bytes,
            prepared.info.initrd_bytes,
            prepared.info.cmdline
        );
        *self
            .boot_image
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(prepared.info));
        Ok(VmSpec {
            boot: prepared.boot,
            ..spec.clone()
        })
    }
}

/// An open disk seen as the byte source `bootimg` reads.
struct BackendReader(Arc<dyn DiskBackend>);

impl ReadAt for BackendReader {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.0.capacity() => self.0.read_at(offset, buf),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at offset {offset} is past the end of the disk",
                    buf.len()
                ),
            )),
        }
    }

    fn size(&self) -> u64 {
        self.0.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootimg::{BootFile, BootPlan, EntryKind, cmdline};

    fn plan(cmdline: &str) -> BootPlan {
        BootPlan {
            kind: EntryKind::Grub,
            title: "Debian GNU/Linux".into(),
            entry_id: None,
            kernel: BootFile {
                partition: 1,
                path: "/boot/vmlinuz-6.1.0-28-amd64".into(),
                resolved: "/boot/vmlinuz-6.1.0-28-amd64".into(),
                size: 8 << 20,
            },
            initrds: Vec::new(),
            cmdline: cmdline.into(),
            volumes: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn the_command_line_is_grubs_plus_the_extra_words() {
        assert_eq!(
            cmdline::for_plan(
                &plan("root=UUID=1 ro console=ttyS0"),
                "systemd.unit=rescue.target"
            ),
            "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=1 ro console=ttyS0 systemd.unit=rescue.target"
        );
    }

    #[test]
    fn a_disk_without_a_partition_table_or_filesystem_is_refused_naming_the_image() {
        let disk: Arc<dyn DiskBackend> = Arc::new(ZeroDisk(4 << 20));
        let boot = ImageBoot {
            cmdline_extra: String::new(),
        };
        let err = match boot.prepare(Path::new("/pool/web1.qcow2"), disk) {
            Ok(_) => panic!("an empty disk boots nothing"),
            Err(e) => e,
        };
        let text = crate::vmd::error_chain(&err);
        assert!(text.contains("/pool/web1.qcow2"), "{text}");
        assert!(text.contains("no partition table"), "{text}");
    }

    /// A disk of zeroes.
    struct ZeroDisk(u64);

    impl DiskBackend for ZeroDisk {
        fn capacity(&self) -> u64 {
            self.0
        }
        fn read_only(&self) -> bool {
            true
        }
        fn read_at(&self, _offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn write_at(&self, _offset: u64, _buf: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("read-only"))
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn supports_discard(&self) -> bool {
            false
        }
        fn discard(&self, _offset: u64, _len: u64) -> std::io::Result<()> {
            Ok(())
        }
        fn supports_write_zeroes(&self) -> bool {
            false
        }
        fn write_zeroes(&self, _offset: u64, _len: u64) -> std::io::Result<()> {
            Ok(())
        }
    }
}
