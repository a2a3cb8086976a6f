//! The disk-image part of the creation wizard's work, run on a worker thread before the VM is
//! defined: bring the image into a pool (a linked overlay, or a copy of a file), check that its
//! own /boot can be booted, and seal the cloud-init settings (passwords to generate are made
//! now, to be shown once; the definition keeps only hashes). What `vmux create --image ...
//! --cloud-init ...` does in the CLI.

use crate::client::{HostApi, ImageSource};
use crate::cloudinit::{CloudInitOptions, GeneratedPassword, SeedContext, instance_id};
use crate::config::{MacAddr, VmConfig};
use crate::progress::Progress;
use crate::tui::error_text::error_chain;

/// An image to bring into a pool as the new VM's disk vda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageImport {
    /// The image.
    pub source: ImageSource,
    /// The pool of the new volume.
    pub pool: String,
    /// The new volume (the VM's disk vda names it).
    pub volume: String,
    /// A qcow2 overlay on the image (it stays unchanged) instead of a copy.
    pub linked: bool,
}

impl ImageImport {
    /// Whether it copies the image's bytes, a long operation with progress that can be
    /// cancelled: a copy, or a linked import of a file (the file becomes a base volume of the
    /// pool first, copied unless an earlier import left it there). Only an overlay on a pool
    /// volume is made at once.
    pub fn copies(&self) -> bool {
        !self.linked || matches!(self.source, ImageSource::File(_))
    }
}

/// What the wizard's "disk image" source asks for beyond the definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSetup {
    /// The image to bring into a pool first; `None`: vda is an existing volume, used as it is.
    pub import: Option<ImageImport>,
    /// cloud-init settings as chosen (not sealed yet).
    pub cloud_init: Option<CloudInitOptions>,
    /// The import ran already, as a task of its own (the wizard's copy, with progress and
    /// cancel): [`prepare`] does not import again, but the volume is still its to delete when
    /// the VM cannot be made.
    pub imported: bool,
}

/// What [`prepare`] did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The volume it created (to delete if the VM cannot be defined).
    pub created: Option<(String, String)>,
    /// Passwords generated for `generate`: shown once.
    pub passwords: Vec<GeneratedPassword>,
    /// What the image boots, in words.
    pub boot: String,
}

/// Imports the image (unless an import task did already), checks what it boots, and stores
/// the sealed cloud-init settings in `config` (whose NICs are chosen already). On failure
/// nothing it or the import task created is left.
pub fn prepare(
    backends: &HostApi,
    config: &mut VmConfig,
    setup: &ImageSetup,
) -> Result<Prepared, String> {
    let mut prepared = Prepared::default();
    let vda = match &setup.import {
        Some(import) if setup.imported => {
            prepared.created = Some((import.pool.clone(), import.volume.clone()));
            (import.pool.clone(), import.volume.clone())
        }
        Some(import) => {
            backends
                .storage
                .import_image(
                    &import.pool,
                    &import.volume,
                    &import.source,
                    None,
                    import.linked,
                    &Progress::new(),
                )
                .map_err(|e| error_chain(&e))?;
            prepared.created = Some((import.pool.clone(), import.volume.clone()));
            (import.pool.clone(), import.volume.clone())
        }
        None => match config.disks.first().map(|d| &d.source) {
            Some(crate::config::DiskSource::Volume { pool, volume }) => {
                (pool.clone(), volume.clone())
            }
            _ => return Err("the VM's first disk is not a pool volume".into()),
        },
    };
    let result = boot_and_seal(backends, config, setup, &vda, &mut prepared);
    if let Err(e) = result {
        discard(backends, &prepared);
        return Err(e);
    }
    Ok(prepared)
}

fn boot_and_seal(
    backends: &HostApi,
    config: &mut VmConfig,
    setup: &ImageSetup,
    (pool, volume): &(String, String),
    prepared: &mut Prepared,
) -> Result<(), String> {
    prepared.boot = backends.storage.boot_entry(pool, volume)?;
    if let Some(options) = &setup.cloud_init {
        let mut options = options.clone();
        prepared.passwords = options
            .sealed_for_storage(&config.name)
            .map_err(|e| error_chain(&e))?;
        let macs: Vec<MacAddr> = config.nics.iter().map(|nic| nic.mac).collect();
        // Reads the key files now, so a missing one is refused before the VM exists.
        instance_id(
            &options,
            &SeedContext {
                vm_name: &config.name,
                macs: &macs,
            },
        )
        .map_err(|e| error_chain(&e))?;
        config.cloud_init = Some(options);
    }
    Ok(())
}

/// Deletes the volume an earlier import task made for `setup` (the VM could not be made, and
/// [`prepare`] did not run to own it).
pub fn abandon(backends: &HostApi, setup: &ImageSetup) {
    if let Some(import) = setup.import.as_ref().filter(|_| setup.imported) {
        discard(
            backends,
            &Prepared {
                created: Some((import.pool.clone(), import.volume.clone())),
                ..Prepared::default()
            },
        );
    }
}

/// Deletes what [`prepare`] created (the VM could not be defined after all).
pub fn discard(backends: &HostApi, prepared: &Prepared) {
    if let Some((pool, volume)) = &prepared.created
        && let Err(e) = backends.storage.delete_volume(pool, volume)
    {
        log::warn!("cannot delete {pool}/{volume}: {}", error_chain(&e));
    }
}

/// What the status line adds: the generated passwords, shown this once.
pub fn passwords_message(passwords: &[GeneratedPassword]) -> String {
    passwords
        .iter()
        .map(|p| {
            format!(
                "; {} password: {} (shown once, stored only as a hash)",
                p.user, p.password
            )
        })
        .collect()
}
