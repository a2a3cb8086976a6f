//! What the VM verbs ask of disk images: `create --image` turns a pool volume or an image
//! file into the VM's disk vda (making a qcow2 overlay on it with `--linked`) and checks that
//! its own /boot can be booted; `create`, `define` and `edit` check an image-booted
//! definition the same way; `info` shows what a shut-off image VM would boot.
//!
//! Everything here goes through the host's [`StorageHost`], so the verbs' unit tests run on
//! the in-memory fake and `--connect` reaches the images of the other host (a file named by
//! `--image` is that host's: it is asked whether it can read it).

use super::CliError;
use super::progress::{Display, Reporter};
use crate::bootimg::BootPlan;
use crate::client::{ImageSource, StorageHost};
use crate::config::{
    DEFAULT_POOL, DiskConfig, DiskSource, IMAGE_BOOT_TARGET, VmConfig, assign_targets,
};
use crate::storage::{ImageError, ImageFormat, StorageError};
use std::path::{Path, PathBuf};

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

/// What `IMAGE` names: a volume of a defined pool (`POOL/VOLUME`) or a file.
fn parse(storage: &dyn StorageHost, image: &str) -> Result<DiskSource, CliError> {
    if let Some((pool, volume)) = image.split_once('/')
        && !pool.is_empty()
        && !volume.contains('/')
        && !matches!(pool, "." | ".." | "~")
        && storage.pool_info(pool).is_ok()
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
    // The file is the host's to find (over --connect, the other host's): ask it, not this
    // machine. A file whose name does not say its format exists all the same.
    if let Err(e) = storage.image_file_format(&path)
        && !matches!(
            e,
            StorageError::Image(
                ImageError::FormatAmbiguous { .. } | ImageError::FormatUnknown { .. }
            )
        )
    {
        return Err(CliError::Invalid(format!(
            "--image {image}: not POOL/VOLUME of a defined pool, and not an image file that can be read ({}); give the path of a downloaded image or a volume like default/web1.qcow2 (`vmux vol-list default`)",
            crate::vmd::error_chain(&e)
        )));
    }
    Ok(DiskSource::Path(path))
}

/// The format of an image file used in place as a writable disk: what its name says, checked
/// against its content. vmux never decides a writable disk's format by content (the guest
/// could write any header into it), so a file whose name does not say its format (a qcow2
/// image named `.img`, as Ubuntu names its cloud images) is refused with the way to import it.
fn in_place_format(storage: &dyn StorageHost, path: &Path) -> Result<ImageFormat, CliError> {
    match storage.image_file_format(path) {
        Ok(format) => Ok(format),
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

/// Turns `--image IMAGE` of new VM `vm` into its disk vda (with `linked`, a new qcow2 overlay
/// in the default pool on IMAGE) and checks that its /boot can be booted.
pub fn prepare(
    storage: &dyn StorageHost,
    vm: &str,
    image: &str,
    linked: bool,
) -> Result<PreparedImage, CliError> {
    let source = parse(storage, image)?;
    let label = source.to_string();
    let overlay = format!("{vm}.qcow2");
    match (&source, linked) {
        (DiskSource::Volume { .. }, false) => {
            let disk = DiskConfig {
                source,
                ..DiskConfig::volume("", "")
            };
            let plan = storage.boot_plan(&disk)?;
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
                format: Some(in_place_format(storage, path)?),
                source,
                ..DiskConfig::volume("", "")
            };
            let plan = storage.boot_plan(&disk)?;
            Ok(PreparedImage {
                disk,
                label,
                created: Vec::new(),
                base: None,
                plan,
            })
        }
        (DiskSource::Volume { pool, volume }, true) => {
            let plan = storage.boot_plan(&DiskConfig::volume(pool, volume))?;
            let base = ImageSource::Volume {
                pool: pool.clone(),
                volume: volume.clone(),
            };
            let progress = crate::progress::Progress::new();
            storage.import_image(DEFAULT_POOL, &overlay, &base, None, true, &progress)?;
            Ok(PreparedImage {
                disk: DiskConfig::volume(DEFAULT_POOL, &overlay),
                label: format!("{DEFAULT_POOL}/{overlay}"),
                created: vec![(DEFAULT_POOL.to_string(), overlay)],
                base: Some(label),
                plan,
            })
        }
        (DiskSource::Path(path), true) => {
            let format = in_place_format(storage, path)?;
            let plan = storage.boot_plan(&DiskConfig {
                format: Some(format),
                source: source.clone(),
                ..DiskConfig::volume("", "")
            })?;
            // A bar on a terminal while the base is copied; Ctrl-C cancels the copy, which
            // then leaves no volume behind.
            let reporter = Reporter::start("import", Display::choose(false))
                .map_err(|e| CliError::Invalid(format!("cannot watch for Ctrl-C: {e}")))?;
            let file = ImageSource::File(path.clone());
            let linked = reporter.run(|p| {
                storage.import_image(DEFAULT_POOL, &overlay, &file, Some(format), true, p)
            })?;
            let base = linked.base.unwrap_or_default();
            let mut created = vec![(DEFAULT_POOL.to_string(), overlay.clone())];
            if !linked.reused_base {
                created.push((DEFAULT_POOL.to_string(), base.clone()));
            }
            Ok(PreparedImage {
                disk: DiskConfig::volume(DEFAULT_POOL, &overlay),
                label: format!("{DEFAULT_POOL}/{overlay}"),
                created,
                base: Some(format!("{DEFAULT_POOL}/{base} (imported from {label})")),
                plan,
            })
        }
    }
}

/// Removes what [`prepare`] created (the VM was not defined after all).
pub fn discard(storage: &dyn StorageHost, prepared: &PreparedImage) {
    for (pool, volume) in &prepared.created {
        if let Err(e) = storage.delete_volume(pool, volume) {
            log::warn!("cannot delete {pool}/{volume}: {e}");
        }
    }
}

/// `cfg`'s disk vda.
fn vda(cfg: &VmConfig) -> Result<&DiskConfig, CliError> {
    let targets = assign_targets(&cfg.disks).map_err(CliError::Invalid)?;
    cfg.disks
        .iter()
        .zip(targets)
        .find(|(_, target)| target == IMAGE_BOOT_TARGET)
        .map(|(disk, _)| disk)
        .ok_or_else(|| {
            CliError::Invalid(format!(
                "VM '{}' boots from its disk image but has no disk {IMAGE_BOOT_TARGET}",
                cfg.name
            ))
        })
}

/// What the image-booted `cfg` boots now (from its disk vda); an error says why it cannot.
pub fn plan(storage: &dyn StorageHost, cfg: &VmConfig) -> Result<BootPlan, CliError> {
    Ok(storage.boot_plan(vda(cfg)?)?)
}

/// The image file of `cfg`'s disk vda.
pub fn vda_path(storage: &dyn StorageHost, cfg: &VmConfig) -> Option<PathBuf> {
    storage.disk_path(vda(cfg).ok()?).ok()
}

/// For an image-booted `cfg`: what it boots, or why it cannot (`None` for other VMs).
pub fn check_boot(storage: &dyn StorageHost, cfg: &VmConfig) -> Result<Option<BootPlan>, CliError> {
    match cfg.boot {
        crate::config::BootConfig::Image { .. } => plan(storage, cfg).map(Some),
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
