//! What the VM verbs ask of disk images: `create --image` turns a pool volume or an image
//! file into the VM's disk vda (making a qcow2 overlay on it with `--linked`) and checks that
//! its own /boot can be booted; `create`, `define` and `edit` check an image-booted
//! definition the same way; `info` shows what a shut-off image VM would boot.
//!
//! [`Images`] is a trait so the verbs' unit tests need no image files; [`HostImages`] is the
//! real one, over the storage pools of the vmux home.

use super::CliError;
use crate::bootimg::{self, BootPlan, ReadAt, StorageDisk};
use crate::config::{
    DEFAULT_POOL, DiskConfig, DiskSource, IMAGE_BOOT_TARGET, Paths, VmConfig, assign_targets,
};
use crate::storage::format::Detect;
use crate::storage::import::check_download;
use crate::storage::{ImageFormat, StorageError, StorageManager};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `--image` made ready for a new VM.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The VM's disk vda.
    pub disk: DiskConfig,
    /// How messages name the image (`default/web1.qcow2`, or its path).
    pub label: String,
    /// The overlay `--linked` created (removed again if the VM is not defined after all).
    pub overlay: Option<PathBuf>,
    /// The base the overlay reads through.
    pub base: Option<String>,
    /// What the image boots.
    pub plan: BootPlan,
}

/// The image side of the VM verbs.
pub trait Images {
    /// Turns `--image IMAGE` of new VM `vm` into its disk vda (with `linked`, a new qcow2
    /// overlay in the default pool on IMAGE) and checks that its /boot can be booted.
    fn prepare(&self, vm: &str, image: &str, linked: bool) -> Result<PreparedImage, CliError>;
    /// Removes what [`Images::prepare`] created (the VM was not defined after all).
    fn discard(&self, prepared: &PreparedImage);
    /// What the image-booted `cfg` boots now (from its disk vda); an error says why it cannot.
    fn plan(&self, cfg: &VmConfig) -> Result<BootPlan, CliError>;
    /// The image file of `cfg`'s disk vda.
    fn vda_path(&self, cfg: &VmConfig) -> Option<PathBuf>;
    /// VM `vm`'s cloud-init seed and the instance-id it was built with (none before the first
    /// start).
    fn seed(&self, vm: &str) -> (PathBuf, Option<String>);
}

/// The images of one vmux home.
pub struct HostImages {
    storage: StorageManager,
}

impl HostImages {
    /// The images under `paths`.
    pub fn new(paths: Paths) -> HostImages {
        HostImages {
            storage: StorageManager::new(paths),
        }
    }

    /// What `IMAGE` names: a volume of a defined pool (`POOL/VOLUME`) or a file.
    fn parse(&self, image: &str) -> Result<DiskSource, CliError> {
        if let Some((pool, volume)) = image.split_once('/')
            && !pool.is_empty()
            && !volume.contains('/')
            && !matches!(pool, "." | ".." | "~")
            && self.storage.pool(pool).is_ok()
        {
            return Ok(DiskSource::Volume {
                pool: pool.to_string(),
                volume: volume.to_string(),
            });
        }
        let path = match (image.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => Path::new(&home).join(rest),
            _ => PathBuf::from(image),
        };
        let path = std::path::absolute(&path).map_err(|source| CliError::ReadFile {
            path: path.clone(),
            source,
        })?;
        if !path.is_file() {
            return Err(CliError::Invalid(format!(
                "--image {image}: no such file, and not POOL/VOLUME of a defined pool; give the path of a downloaded image or a volume like default/web1.qcow2 (`vmux vol-list default`)"
            )));
        }
        Ok(DiskSource::Path(path))
    }

    /// The boot plan of the image at `path`, opened as `detect` says.
    fn inspect(&self, label: &str, path: &Path, detect: Detect) -> Result<BootPlan, CliError> {
        let disk = StorageDisk::open(path, detect).map_err(StorageError::from)?;
        let source: Arc<dyn ReadAt> = Arc::new(disk);
        bootimg::inspect(source).map_err(|source| CliError::BootImage {
            image: label.to_string(),
            source,
        })
    }
}

/// Refuses an image file used in place as a writable disk when its name and content disagree:
/// vmux decides a writable disk's format by its name (the guest could write any header into
/// it), so a qcow2 image named `.img` (as Ubuntu names its cloud images) must be imported.
fn check_in_place(path: &Path) -> Result<(), CliError> {
    let content = check_download(path)?.format;
    let by_name = ImageFormat::from_name(path);
    if by_name != Some(content) {
        let name = path
            .file_stem()
            .map_or_else(|| "vm".into(), |s| s.to_string_lossy().into_owned());
        let said = by_name.map_or("nothing".to_string(), |f| f.to_string());
        return Err(CliError::Invalid(format!(
            "{} holds a {content} image but its name says {said}; vmux decides a writable disk's format by its name, so import it into a pool (`vmux vol-import {DEFAULT_POOL} {name}.{content} {}`, then --image {DEFAULT_POOL}/{name}.{content}), or boot a linked overlay on it with --linked",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

impl Images for HostImages {
    fn prepare(&self, vm: &str, image: &str, linked: bool) -> Result<PreparedImage, CliError> {
        let source = self.parse(image)?;
        let (base_path, detect) = match &source {
            DiskSource::Volume { pool, volume } => (
                self.storage.volume_path(pool, volume)?,
                // A pool volume's format is its name's, never its content's.
                Detect::ByName,
            ),
            DiskSource::Path(path) => {
                if !linked {
                    check_in_place(path)?;
                }
                (path.clone(), Detect::ByContent)
            }
        };
        let label = source.to_string();
        let plan = self.inspect(&label, &base_path, detect)?;
        if !linked {
            return Ok(PreparedImage {
                disk: DiskConfig {
                    source,
                    readonly: false,
                    target: None,
                    serial: None,
                },
                label,
                overlay: None,
                base: None,
                plan,
            });
        }
        let volume = format!("{vm}.qcow2");
        let info = self
            .storage
            .vol_overlay(DEFAULT_POOL, &volume, &base_path, detect)?;
        Ok(PreparedImage {
            disk: DiskConfig::volume(DEFAULT_POOL, &volume),
            label: format!("{DEFAULT_POOL}/{volume}"),
            overlay: Some(info.path),
            base: Some(label),
            plan,
        })
    }

    fn discard(&self, prepared: &PreparedImage) {
        if let Some(overlay) = &prepared.overlay
            && let Err(e) = std::fs::remove_file(overlay)
        {
            log::warn!("cannot remove {}: {e}", overlay.display());
        }
    }

    fn vda_path(&self, cfg: &VmConfig) -> Option<PathBuf> {
        let targets = assign_targets(&cfg.disks).ok()?;
        let disk = cfg
            .disks
            .iter()
            .zip(targets)
            .find(|(_, target)| target == IMAGE_BOOT_TARGET)?
            .0;
        self.storage.resolve_disk(disk).ok()
    }

    fn seed(&self, vm: &str) -> (PathBuf, Option<String>) {
        let path = crate::cloudinit::vm_seed::seed_path(self.storage.paths(), vm);
        let id = crate::cloudinit::vm_seed::recorded_instance_id(&path);
        (path, id)
    }

    fn plan(&self, cfg: &VmConfig) -> Result<BootPlan, CliError> {
        let targets = assign_targets(&cfg.disks).map_err(CliError::Invalid)?;
        let disk = cfg
            .disks
            .iter()
            .zip(targets)
            .find(|(_, target)| target == IMAGE_BOOT_TARGET)
            .map(|(disk, _)| disk)
            .ok_or_else(|| {
                CliError::Invalid(format!(
                    "VM '{}' boots from its disk image but has no disk {IMAGE_BOOT_TARGET}",
                    cfg.name
                ))
            })?;
        let path = self.storage.resolve_disk(disk)?;
        self.inspect(&disk.source.to_string(), &path, Detect::ByName)
    }
}

/// For an image-booted `cfg`: what it boots, or why it cannot (`None` for other VMs).
pub fn check_boot(images: &dyn Images, cfg: &VmConfig) -> Result<Option<BootPlan>, CliError> {
    match cfg.boot {
        crate::config::BootConfig::Image { .. } => images.plan(cfg).map(Some),
        _ => Ok(None),
    }
}

/// How messages name `cfg`'s disk vda (`default/web1.qcow2`, or its path).
pub fn vda_label(cfg: &VmConfig) -> String {
    assign_targets(&cfg.disks)
        .ok()
        .and_then(|targets| {
            cfg.disks
                .iter()
                .zip(targets)
                .find(|(_, t)| t == IMAGE_BOOT_TARGET)
                .map(|(disk, _)| disk.source.to_string())
        })
        .unwrap_or_else(|| IMAGE_BOOT_TARGET.to_string())
}

#[cfg(test)]
pub mod fake {
    //! Images for the verbs' unit tests: every image boots one canned plan.
    use super::*;
    use crate::bootimg::{BootFile, EntryKind};

    /// A boot plan like Debian's.
    pub fn debian_plan() -> BootPlan {
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
            cmdline: "root=UUID=1 ro console=ttyS0".into(),
            volumes: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Images that are all pool volumes booting [`debian_plan`].
    #[derive(Debug, Default)]
    pub struct FakeImages {
        /// `Some(message)`: every image fails to boot with it.
        pub broken: Option<String>,
        /// Overlays discarded.
        pub discarded: std::sync::Mutex<Vec<String>>,
    }

    impl Images for FakeImages {
        fn prepare(&self, vm: &str, image: &str, linked: bool) -> Result<PreparedImage, CliError> {
            if let Some(message) = &self.broken {
                return Err(CliError::Invalid(message.clone()));
            }
            let (pool, volume) = image
                .split_once('/')
                .ok_or_else(|| CliError::Invalid(format!("{image} is not POOL/VOLUME")))?;
            let (disk, overlay) = if linked {
                (
                    DiskConfig::volume("default", &format!("{vm}.qcow2")),
                    Some(PathBuf::from(format!("/pool/{vm}.qcow2"))),
                )
            } else {
                (DiskConfig::volume(pool, volume), None)
            };
            Ok(PreparedImage {
                label: disk.source.to_string(),
                disk,
                overlay,
                base: linked.then(|| image.to_string()),
                plan: debian_plan(),
            })
        }

        fn discard(&self, prepared: &PreparedImage) {
            self.discarded
                .lock()
                .expect("discarded")
                .push(prepared.label.clone());
        }

        fn plan(&self, _cfg: &VmConfig) -> Result<BootPlan, CliError> {
            match &self.broken {
                Some(message) => Err(CliError::Invalid(message.clone())),
                None => Ok(debian_plan()),
            }
        }

        fn vda_path(&self, cfg: &VmConfig) -> Option<PathBuf> {
            Some(PathBuf::from(format!("/pool/{}.qcow2", cfg.name)))
        }

        fn seed(&self, vm: &str) -> (PathBuf, Option<String>) {
            (PathBuf::from(format!("/state/{vm}/cidata.img")), None)
        }
    }
}
