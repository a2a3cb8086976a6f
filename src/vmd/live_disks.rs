//! The disks of the running VM as vmd knows them: each disk's guest name (`target`), its open
//! image and the PCI slot the engine plugged it into, from the first boot through hot-add,
//! detach and reboots.
//!
//! The open images live here (an `Arc` shared with the engine's device), so they survive
//! reboots; a disk the guest ejected leaves the list, which drops the last reference and
//! closes the image. A reboot builds the next boot's disks from this list, so a hot-added disk
//! stays, and a disk whose removal was requested does not come back.

use crate::config::ImageFormat;
use crate::engine::DiskSpec;
use crate::protocol::DiskInfo;
use std::path::PathBuf;

/// How to open a hot-added disk's image again (for a restore): what `attach_disk` was given.
/// Boot disks leave it empty: a restore opens them as the definition says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reopen {
    /// The recorded format (`None`: the file name says it).
    pub format: Option<ImageFormat>,
    /// Backing files outside the pools its chain may use.
    pub allow_backing: Vec<PathBuf>,
}

/// A plugged disk as a save records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedDisk {
    /// Guest device name.
    pub target: String,
    /// The image.
    pub path: PathBuf,
    /// Plugged read-only.
    pub read_only: bool,
    /// The serial the guest read.
    pub serial: String,
    /// PCI slot.
    pub slot: u8,
    /// How to open it again when it was hot-added.
    pub reopen: Reopen,
}

/// One disk.
#[derive(Debug)]
struct LiveDisk {
    target: String,
    spec: DiskSpec,
    /// PCI slot in the current boot (`None` between boots).
    slot: Option<u8>,
    /// `detach_disk` was asked (at this Unix second); the guest has not ejected it yet.
    removing: Option<u64>,
    /// How a hot-added disk was opened.
    reopen: Reopen,
}

/// The VM's disks, in PCI slot order of the current boot (boot disks first).
#[derive(Debug, Default)]
pub struct LiveDisks {
    disks: Vec<LiveDisk>,
}

/// The first free guest name (`vda`..`vdz`) not in `taken`.
pub fn first_free_target<'a>(taken: impl Iterator<Item = &'a str> + Clone) -> Option<String> {
    (b'a'..=b'z')
        .map(|c| format!("vd{}", c as char))
        .find(|name| !taken.clone().any(|t| t == name))
}

impl LiveDisks {
    /// The boot disks of `specs`, named by `targets` (the definition's, in the same order);
    /// disks beyond the given targets get the first free names.
    pub fn new(specs: Vec<DiskSpec>, targets: &[String]) -> LiveDisks {
        let mut live = LiveDisks::default();
        for (index, spec) in specs.into_iter().enumerate() {
            let target = targets
                .get(index)
                .cloned()
                .or_else(|| live.free_target())
                .unwrap_or_else(|| format!("disk{index}"));
            live.disks.push(LiveDisk {
                target,
                spec,
                slot: None,
                removing: None,
                reopen: Reopen::default(),
            });
        }
        live
    }

    /// Names the disks, in order, by `targets` (the definition's); extra disks keep theirs.
    pub fn set_targets(&mut self, targets: &[String]) {
        for (disk, target) in self.disks.iter_mut().zip(targets) {
            disk.target.clone_from(target);
        }
    }

    /// The first guest name no disk has.
    pub fn free_target(&self) -> Option<String> {
        first_free_target(self.disks.iter().map(|d| d.target.as_str()))
    }

    /// The disk with guest name `target`.
    pub fn by_target(&self, target: &str) -> Option<DiskInfo> {
        self.infos().into_iter().find(|d| d.target == target)
    }

    /// The open backend of disk `target` and its current image path.
    pub fn backend(
        &self,
        target: &str,
    ) -> Option<(
        std::path::PathBuf,
        std::sync::Arc<dyn crate::engine::DiskBackend>,
    )> {
        let disk = self.disks.iter().find(|d| d.target == target)?;
        Some((disk.spec.path.clone(), disk.spec.backend.clone()?))
    }

    /// The open backend and image path of disk `target` as the next boot plugs it (`None`
    /// when there is no such disk or its removal was asked).
    pub fn boot_backend(
        &self,
        target: &str,
    ) -> Option<(
        std::path::PathBuf,
        std::sync::Arc<dyn crate::engine::DiskBackend>,
    )> {
        let disk = self
            .disks
            .iter()
            .find(|d| d.target == target && d.removing.is_none())?;
        Some((disk.spec.path.clone(), disk.spec.backend.clone()?))
    }

    /// Records that disk `target` now reads and writes the image at `path`.
    pub fn set_path(&mut self, target: &str, path: &std::path::Path) {
        if let Some(disk) = self.disks.iter_mut().find(|d| d.target == target) {
            disk.spec.path = path.to_path_buf();
        }
    }

    /// Whether a disk already uses the image at `path`.
    pub fn uses_image(&self, path: &std::path::Path) -> Option<String> {
        self.disks
            .iter()
            .find(|d| d.spec.path == path)
            .map(|d| d.target.clone())
    }

    /// What the next boot plugs, in order: every disk not being removed.
    pub fn boot_specs(&self) -> Vec<DiskSpec> {
        self.disks
            .iter()
            .filter(|d| d.removing.is_none())
            .map(|d| d.spec.clone())
            .collect()
    }

    /// A boot started and plugged [`LiveDisks::boot_specs`] into `slots` (ascending, the
    /// engine plugs boot disks in order); disks still marked for removal are dropped (their
    /// boot is over, and the new one does not have them). Returns the targets dropped.
    pub fn boot_started(&mut self, slots: &[u8]) -> Vec<String> {
        let gone: Vec<String> = self
            .disks
            .iter()
            .filter(|d| d.removing.is_some())
            .map(|d| d.target.clone())
            .collect();
        self.disks.retain(|d| d.removing.is_none());
        for (disk, slot) in self.disks.iter_mut().zip(slots) {
            disk.slot = Some(*slot);
        }
        gone
    }

    /// Adds a disk hot-plugged into `slot`.
    pub fn attached(&mut self, target: String, spec: DiskSpec, slot: u8) -> DiskInfo {
        self.disks.push(LiveDisk {
            target,
            spec,
            slot: Some(slot),
            removing: None,
            reopen: Reopen::default(),
        });
        self.disks.sort_by_key(|d| d.slot);
        self.infos()
            .into_iter()
            .find(|d| d.slot == slot)
            .expect("the disk was just added with this slot")
    }

    /// Marks `target` as being removed from now (the guest was asked to eject it).
    pub fn mark_removing(&mut self, target: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(disk) = self.disks.iter_mut().find(|d| d.target == target) {
            disk.removing = Some(now);
        }
    }

    /// The guest ejected the disk in `slot`: forgets it (closing its image once the engine has
    /// let go too) and returns its target.
    pub fn ejected(&mut self, slot: u8) -> Option<String> {
        let index = self.disks.iter().position(|d| d.slot == Some(slot))?;
        Some(self.disks.remove(index).target)
    }

    /// Records how the hot-added disk `target` was opened.
    pub fn set_reopen(&mut self, target: &str, reopen: Reopen) {
        if let Some(disk) = self.disks.iter_mut().find(|d| d.target == target) {
            disk.reopen = reopen;
        }
    }

    /// Every plugged disk as a save records it, in slot order.
    pub fn records(&self) -> Vec<SavedDisk> {
        let mut records: Vec<_> = self
            .disks
            .iter()
            .filter_map(|d| {
                Some(SavedDisk {
                    target: d.target.clone(),
                    path: d.spec.path.clone(),
                    read_only: d.spec.read_only,
                    serial: d.spec.serial.clone(),
                    slot: d.slot?,
                    reopen: d.reopen.clone(),
                })
            })
            .collect();
        records.sort_by_key(|r| r.slot);
        records
    }

    /// The VM is over: writes back and closes every image (the engine's devices are gone, so
    /// these are the last references). Returns, per disk that could not be written back, its
    /// target and the error; its image is closed all the same.
    pub fn close_all(&mut self) -> Vec<(String, std::io::Error)> {
        let mut failed = Vec::new();
        for disk in self.disks.drain(..) {
            if let Some(backend) = &disk.spec.backend
                && !disk.spec.read_only
                && let Err(e) = backend.flush()
            {
                failed.push((disk.target, e));
            }
        }
        failed
    }

    /// Every disk as `info` reports it.
    pub fn infos(&self) -> Vec<DiskInfo> {
        self.disks
            .iter()
            .map(|d| DiskInfo {
                target: d.target.clone(),
                path: d.spec.path.clone(),
                read_only: d.spec.read_only,
                slot: d.slot.unwrap_or(0),
                removing: d.removing.is_some(),
                removal_requested_at: d.removing,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn spec(path: &str) -> DiskSpec {
        DiskSpec {
            path: path.into(),
            read_only: false,
            serial: String::new(),
            backend: None,
        }
    }

    fn booted(paths: &[&str]) -> LiveDisks {
        let mut live = LiveDisks::new(paths.iter().map(|p| spec(p)).collect(), &[]);
        let slots: Vec<u8> = (1..=paths.len() as u8).collect();
        live.boot_started(&slots);
        live
    }

    #[test]
    fn boot_disks_get_names_in_order_and_their_slots() {
        let live = booted(&["/a", "/b"]);
        let infos = live.infos();
        assert_eq!(
            infos
                .iter()
                .map(|d| (d.target.as_str(), d.slot))
                .collect::<Vec<_>>(),
            [("vda", 1), ("vdb", 2)]
        );
    }

    #[test]
    fn the_first_free_target_skips_taken_ones() {
        assert_eq!(
            first_free_target(["vda", "vdc"].into_iter()),
            Some("vdb".into())
        );
    }

    #[test]
    fn closing_writes_back_every_writable_image_and_forgets_it() {
        let flushed = Arc::new(AtomicUsize::new(0));
        let mut live = LiveDisks::new(
            vec![counting(&flushed, false), counting(&flushed, true)],
            &["vda".into(), "vdb".into()],
        );
        let failed = live.close_all();
        assert!(failed.is_empty());
        assert_eq!(
            flushed.load(Ordering::SeqCst),
            1,
            "only the writable disk is flushed"
        );
        assert!(live.infos().is_empty());
    }

    /// A disk whose backend counts flushes.
    fn counting(flushes: &Arc<AtomicUsize>, read_only: bool) -> DiskSpec {
        struct Counting(Arc<AtomicUsize>);
        impl crate::engine::DiskBackend for Counting {
            fn capacity(&self) -> u64 {
                512
            }
            fn read_only(&self) -> bool {
                false
            }
            fn read_at(&self, _: u64, _: &mut [u8]) -> std::io::Result<()> {
                Ok(())
            }
            fn write_at(&self, _: u64, _: &[u8]) -> std::io::Result<()> {
                Ok(())
            }
            fn flush(&self) -> std::io::Result<()> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            fn supports_discard(&self) -> bool {
                false
            }
            fn discard(&self, _: u64, _: u64) -> std::io::Result<()> {
                Ok(())
            }
            fn supports_write_zeroes(&self) -> bool {
                false
            }
            fn write_zeroes(&self, _: u64, _: u64) -> std::io::Result<()> {
                Ok(())
            }
        }
        DiskSpec {
            path: "/images/disk".into(),
            read_only,
            serial: String::new(),
            backend: Some(Arc::new(Counting(Arc::clone(flushes)))),
        }
    }

    #[test]
    fn an_ejected_disk_is_forgotten_and_named() {
        let mut live = booted(&["/a"]);
        live.attached("vdb".into(), spec("/b"), 2);
        assert_eq!(live.ejected(2), Some("vdb".into()));
        assert_eq!(live.uses_image(std::path::Path::new("/b")), None);
        assert_eq!(live.ejected(2), None);
    }

    #[test]
    fn a_hot_added_disk_boots_again_after_a_reboot() {
        let mut live = booted(&["/a"]);
        live.attached("vdb".into(), spec("/b"), 3);
        let next: Vec<_> = live.boot_specs().into_iter().map(|s| s.path).collect();
        assert_eq!(next, ["/a", "/b"].map(std::path::PathBuf::from));
        live.boot_started(&[1, 2]);
        assert_eq!(live.by_target("vdb").map(|d| d.slot), Some(2));
    }

    #[test]
    fn a_disk_being_removed_does_not_come_back_after_a_reboot() {
        let mut live = booted(&["/a", "/b"]);
        live.mark_removing("vda");
        assert_eq!(live.boot_specs().len(), 1);
        assert_eq!(live.boot_started(&[1]), ["vda"]);
        assert_eq!(live.by_target("vdb").map(|d| d.slot), Some(1));
    }
}
