//! [`build_seed`]: writes a NoCloud seed image for a VM, atomically, mode 0600 (it may hold
//! password hashes and the user's own user-data), and says what it wrote.

use super::error::CloudInitError;
use super::fat;
use super::files::{GeneratedPassword, SeedContext, SeedInputs};
use super::options::CloudInitOptions;
use std::path::Path;

/// What [`build_seed`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedInfo {
    /// The seed's instance-id (store it: an unchanged id means the seed need not be rebuilt).
    pub instance_id: String,
    /// Passwords generated for `generate` options: show them once, they are stored nowhere.
    pub generated_passwords: Vec<GeneratedPassword>,
    /// The files in the seed.
    pub files: Vec<&'static str>,
    /// Size of the seed image in bytes.
    pub size: u64,
}

/// The instance-id a seed built now from `opts` would carry (reads the files `opts` names),
/// to decide whether an existing seed is still current without rebuilding it.
pub fn instance_id(
    opts: &CloudInitOptions,
    ctx: &SeedContext<'_>,
) -> Result<String, CloudInitError> {
    Ok(SeedInputs::read(opts, ctx)?.instance_id().to_string())
}

/// Builds the seed for `opts` and the VM `ctx`, and writes it to `path` (the directory must
/// exist). The old file, if any, is replaced only once the new one is complete.
pub fn build_seed(
    opts: &CloudInitOptions,
    ctx: &SeedContext<'_>,
    path: &Path,
) -> Result<SeedInfo, CloudInitError> {
    let inputs = SeedInputs::read(opts, ctx)?;
    let (files, generated_passwords) = inputs.files()?;
    let id = inputs.instance_id();
    let serial =
        u32::from_str_radix(id.get(id.len().saturating_sub(8)..).unwrap_or("0"), 16).unwrap_or(0);
    let volume = fat::build(&files, serial).map_err(CloudInitError::Fat)?;
    crate::config::write_atomic(path, &volume).map_err(|source| CloudInitError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SeedInfo {
        instance_id: id.to_string(),
        generated_passwords,
        files: files.iter().map(|(name, _)| *name).collect(),
        size: volume.len() as u64,
    })
}
