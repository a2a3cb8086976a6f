//! What the VM verbs ask of disk images: `create --image` turns a pool volume or an image
//! file into the VM's disk vda (making a qcow2 overlay on it with `--linked`) and checks that
//! its own /boot can be booted; `create`, `define` and `edit` check an image-booted
//! definition the same way; `info` shows what a shut-off image VM would boot.
//!
//! [`Images`] is a trait so the verbs' unit tests need no image files; [`HostImages`] is the
//! real one, over the storage pools of the vmux home.

use super::CliError;
use super::progress::{Display, Reporter};
use crate::bootimg::{self, BootPlan, ReadAt, StorageDisk};
use crate::config::{
    DEFAULT_POOL, DiskConfig, DiskSource, IMAGE_BOOT_TARGET, Paths, VmConfig, assign_targets,
};
use crate::storage::import::check_download;
use crate::storage::{ImageError, ImageFormat, StorageError, StorageManager};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `--image` made ready for a new VM.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The VM's disk vda.
    pub disk: DiskConfig,
    /// How messages name the image (`default/web1.qcow2`, or its path).
    pub label: String,
    /// Volumes `--linked` created, `pool/volume` (removed again if the VM is not defined
    /// after all): the overlay, and the base when this import made it.
    pub created: Vec<(String, String)>,
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

    /// The boot plan of disk `disk` (its recorded format, the pools' and its own allowed
    /// backing files).
    fn inspect(&self, disk: &DiskConfig) -> Result<BootPlan, CliError> {
        let path = self.storage.resolve_disk(disk)?;
        let detect = self.storage.disk_detect(disk)?;
        let trust = self.storage.trust(&disk.allow_backing);
        let label = disk.source.to_string();
        let disk = StorageDisk::open(&path, detect, &trust).map_err(StorageError::from)?;
        let source: Arc<dyn ReadAt> = Arc::new(disk);
        bootimg::inspect(source).map_err(|source| CliError::BootImage {
            image: label,
            source,
        })
    }
}

/// The format of an image file used in place as a writable disk: what its name says, checked
/// against its content. vmux never decides a writable disk's format by content (the guest
/// could write any header into it), so a file whose name does not say its format (a qcow2
/// image named `.img`, as Ubuntu names its cloud images) is refused with the way to import it.
fn in_place_format(path: &Path) -> Result<ImageFormat, CliError> {
    match check_download(path, None) {
        Ok(info) => Ok(info.format),
        Err(StorageError::Image(
            ImageError::FormatAmbiguous { .. } | ImageError::FormatUnknown { .. },
        )) => {
            let name = path
                .file_stem()
                .map_or_else(|| "vm".into(), |s| s.to_string_lossy().into_owned());
            Err(CliError::Invalid(format!(
                "the name of {} does not say its format (a qcow2 image named .img?); vmux decides a writable disk's format by its name, so import it into a pool saying its format: `vmux vol-import {DEFAULT_POOL} {name}.qcow2 {} --format qcow2`, then --image {DEFAULT_POOL}/{name}.qcow2",
                path.display(),
                path.display()
            )))
        }
        Err(e) => Err(e.into()),
    }
}

impl Images for HostImages {
    fn prepare(&self, vm: &str, image: &str, linked: bool) -> Result<PreparedImage, CliError> {
        let source = self.parse(image)?;
        let label = source.to_string();
        let overlay = format!("{vm}.qcow2");
        match (&source, linked) {
            (DiskSource::Volume { .. }, false) => {
                let disk = DiskConfig {
                    source,
                    ..DiskConfig::volume("", "")
                };
                let plan = self.inspect(&disk)?;
                Ok(PreparedImage {
                    disk,
                    label,
                    created: Vec::new(),
                    base: None,
                    plan,
                })
            }
            (DiskSource::Path(path), false) => {
                let disk = DiskConfig {
                    format: Some(in_place_format(path)?),
                    source,
                    ..DiskConfig::volume("", "")
                };
                let plan = self.inspect(&disk)?;
                Ok(PreparedImage {
                    disk,
                    label,
                    created: Vec::new(),
                    base: None,
                    plan,
                })
            }
            (DiskSource::Volume { pool, volume }, true) => {
                let plan = self.inspect(&DiskConfig::volume(pool, volume))?;
                self.storage
                    .vol_overlay(DEFAULT_POOL, &overlay, pool, volume)?;
                Ok(PreparedImage {
                    disk: DiskConfig::volume(DEFAULT_POOL, &overlay),
                    label: format!("{DEFAULT_POOL}/{overlay}"),
                    created: vec![(DEFAULT_POOL.to_string(), overlay)],
                    base: Some(label),
                    plan,
                })
            }
            (DiskSource::Path(path), true) => {
                let format = in_place_format(path)?;
                let plan = self.inspect(&DiskConfig {
                    format: Some(format),
                    source: source.clone(),
                    ..DiskConfig::volume("", "")
                })?;
                // A bar on a terminal while the base is copied; Ctrl-C cancels the copy, which
                // then leaves no volume behind.
                let reporter = Reporter::start("import", Display::choose(false))
                    .map_err(|e| CliError::Invalid(format!("cannot watch for Ctrl-C: {e}")))?;
                let linked = reporter.run(|p| {
                    self.storage
                        .vol_import_linked(DEFAULT_POOL, &overlay, path, Some(format), p)
                })?;
                let mut created = vec![(DEFAULT_POOL.to_string(), overlay.clone())];
                if !linked.reused_base {
                    created.push((DEFAULT_POOL.to_string(), linked.base.clone()));
                }
                Ok(PreparedImage {
                    disk: DiskConfig::volume(DEFAULT_POOL, &overlay),
                    label: format!("{DEFAULT_POOL}/{overlay}"),
                    created,
                    base: Some(format!(
                        "{DEFAULT_POOL}/{} (imported from {label})",
                        linked.base
                    )),
                    plan,
                })
            }
        }
    }

    fn discard(&self, prepared: &PreparedImage) {
        for (pool, volume) in &prepared.created {
            if let Err(e) = self.storage.vol_delete(pool, volume) {
                log::warn!("cannot delete {pool}/{volume}: {e}");
            }
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
        self.inspect(disk)
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
            let (disk, created) = if linked {
                let overlay = format!("{vm}.qcow2");
                (
                    DiskConfig::volume("default", &overlay),
                    vec![("default".to_string(), overlay)],
                )
            } else {
                (DiskConfig::volume(pool, volume), Vec::new())
            };
            Ok(PreparedImage {
                label: disk.source.to_string(),
                disk,
                created,
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
