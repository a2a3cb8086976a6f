//! The seed of one defined VM: where it lives (`<state>/vms/<name>/cidata.img`, mode 0600,
//! next to the VM's other state, so `undefine` removes it), and [`ensure_seed`], which vmd
//! calls at every start to attach a current one.
//!
//! The definition stores the sealed options (`VmConfig::cloud_init`); the seed is built from
//! them, the files they name (SSH keys, user-data) and the VM's MACs. Beside the seed,
//! `cidata.id` records the instance-id it carries: while the inputs give the same id the seed
//! is kept as it is, and when any changes (a key, a NIC, an option after `vmux edit`) it is
//! rebuilt with the new id, so cloud-init in the guest applies the new settings once at the
//! next boot. When the inputs cannot be read any more (a key file removed) the existing seed is
//! used as it is, with a warning, rather than refusing to start the VM.

use super::error::CloudInitError;
use super::files::SeedContext;
use super::options::{CloudInitOptions, Password};
use super::seed::{build_seed, instance_id};
use crate::config::{MacAddr, Paths, VmConfig};
use std::path::{Path, PathBuf};

/// File name of the seed image in the VM's state directory.
pub const SEED_FILE: &str = "cidata.img";
/// File name of the instance-id record beside it.
const ID_FILE: &str = "cidata.id";
/// The serial number the seed disk shows the guest.
pub const SEED_SERIAL: &str = "cidata";

/// The seed attached to a VM's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSeed {
    /// The seed image.
    pub path: PathBuf,
    /// The instance-id it carries.
    pub instance_id: String,
    /// It was (re)built for this start.
    pub rebuilt: bool,
    /// Why an older seed is used as it is (its inputs could not be read).
    pub warning: Option<String>,
}

/// Where VM `name`'s seed is.
pub fn seed_path(paths: &Paths, name: &str) -> PathBuf {
    paths.vm_state_dir(name).join(SEED_FILE)
}

/// The instance-id of the seed at `seed` as recorded when it was built, if any.
pub fn recorded_instance_id(seed: &Path) -> Option<String> {
    let text = std::fs::read_to_string(seed.with_file_name(ID_FILE)).ok()?;
    let id = text.trim();
    (seed.is_file() && !id.is_empty()).then(|| id.to_string())
}

/// Makes sure VM `cfg`'s seed is current and returns it; `None` when the VM has no cloud-init
/// settings (a seed left from earlier settings is then removed: it may hold password hashes).
pub fn ensure_seed(paths: &Paths, cfg: &VmConfig) -> Result<Option<VmSeed>, CloudInitError> {
    let path = seed_path(paths, &cfg.name);
    let Some(options) = &cfg.cloud_init else {
        remove_seed(&path);
        return Ok(None);
    };
    refuse_unsealed(options)?;
    let macs: Vec<MacAddr> = cfg.nics.iter().map(|nic| nic.mac).collect();
    let ctx = SeedContext {
        vm_name: &cfg.name,
        macs: &macs,
    };
    let recorded = recorded_instance_id(&path);
    let wanted = match instance_id(options, &ctx) {
        Ok(id) => id,
        Err(e) => {
            return match recorded {
                Some(id) => Ok(Some(VmSeed {
                    path,
                    instance_id: id,
                    rebuilt: false,
                    warning: Some(format!(
                        "the cloud-init settings cannot be read now ({e}); the seed built before is used as it is"
                    )),
                })),
                None => Err(e),
            };
        }
    };
    if recorded.as_deref() == Some(wanted.as_str()) {
        return Ok(Some(VmSeed {
            path,
            instance_id: wanted,
            rebuilt: false,
            warning: None,
        }));
    }
    let dir = paths.vm_state_dir(&cfg.name);
    std::fs::create_dir_all(&dir).map_err(|source| CloudInitError::Write {
        path: dir.clone(),
        source,
    })?;
    let info = build_seed(options, &ctx, &path)?;
    let id_path = path.with_file_name(ID_FILE);
    crate::config::write_atomic(&id_path, format!("{}\n", info.instance_id).as_bytes()).map_err(
        |source| CloudInitError::Write {
            path: id_path.clone(),
            source,
        },
    )?;
    Ok(Some(VmSeed {
        path,
        instance_id: info.instance_id,
        rebuilt: true,
        warning: None,
    }))
}

/// Removes the seed at `seed` and its record, if there.
pub fn remove_seed(seed: &Path) {
    for file in [seed.to_path_buf(), seed.with_file_name(ID_FILE)] {
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", file.display());
        }
    }
}

/// A seed built from options with a password still to generate would carry a password
/// nobody ever sees; stored definitions never hold one (see `VmConfig::validate`).
fn refuse_unsealed(options: &CloudInitOptions) -> Result<(), CloudInitError> {
    let unsealed = [&options.root_password, &options.user_password]
        .into_iter()
        .any(|p| matches!(p, Some(Password::Generate | Password::Plain(_))));
    if unsealed {
        return Err(CloudInitError::Conflict(
            "the stored cloud-init settings hold a password to generate or in plain text; create the VM again with `vmux create --cloud-init ...`, which stores only hashes".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BootConfig, NicConfig};

    fn vm(home: &Path, key: &Path) -> (Paths, VmConfig) {
        let paths = Paths::under(home);
        let mut cfg = VmConfig::new("web1", BootConfig::Demo);
        let mut options = CloudInitOptions::parse(&format!("user=alice,ssh-key={}", key.display()))
            .expect("options");
        options.seal("web1").expect("seal");
        cfg.cloud_init = Some(options);
        (paths, cfg)
    }

    fn key_file(dir: &Path, comment: &str) -> PathBuf {
        let path = dir.join("id_ed25519.pub");
        std::fs::write(
            &path,
            format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmK8vNYVH2kq0JUhw1Pc3Xo1ZB1gVgJ9Pc {comment}\n"),
        )
        .expect("write key");
        path
    }

    #[test]
    fn the_first_start_builds_a_private_seed_and_the_next_keeps_it() {
        let home = tempfile::tempdir().expect("tempdir");
        let key = key_file(home.path(), "alice@host");
        let (paths, cfg) = vm(home.path(), &key);

        let first = ensure_seed(&paths, &cfg).expect("builds").expect("a seed");
        let second = ensure_seed(&paths, &cfg).expect("checks").expect("a seed");

        assert!(first.rebuilt && !second.rebuilt);
        assert_eq!(first.instance_id, second.instance_id);
        assert_eq!(first.path, seed_path(&paths, "web1"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.path)
            .expect("seed")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_new_nic_or_key_gives_a_new_instance_id() {
        let home = tempfile::tempdir().expect("tempdir");
        let key = key_file(home.path(), "alice@host");
        let (paths, mut cfg) = vm(home.path(), &key);
        let first = ensure_seed(&paths, &cfg).expect("builds").expect("a seed");

        cfg.nics.push(NicConfig {
            network: "default".into(),
            mac: "52:54:00:12:34:56".parse().expect("mac"),
        });
        let with_nic = ensure_seed(&paths, &cfg)
            .expect("rebuilds")
            .expect("a seed");
        key_file(home.path(), "alice@laptop");
        let with_key = ensure_seed(&paths, &cfg)
            .expect("rebuilds")
            .expect("a seed");

        assert!(with_nic.rebuilt && with_key.rebuilt);
        assert_ne!(first.instance_id, with_nic.instance_id);
        assert_ne!(with_nic.instance_id, with_key.instance_id);
    }

    #[test]
    fn a_key_file_gone_keeps_the_old_seed_with_a_warning() {
        let home = tempfile::tempdir().expect("tempdir");
        let key = key_file(home.path(), "alice@host");
        let (paths, cfg) = vm(home.path(), &key);
        let first = ensure_seed(&paths, &cfg).expect("builds").expect("a seed");
        std::fs::remove_file(&key).expect("remove key");

        let later = ensure_seed(&paths, &cfg).expect("keeps").expect("a seed");

        assert_eq!(later.instance_id, first.instance_id);
        let warning = later.warning.expect("a warning");
        assert!(warning.contains("id_ed25519.pub"), "{warning}");
    }

    #[test]
    fn a_key_file_missing_before_any_seed_is_an_error() {
        let home = tempfile::tempdir().expect("tempdir");
        let (paths, cfg) = vm(home.path(), &home.path().join("nope.pub"));
        let err = ensure_seed(&paths, &cfg).expect_err("no key");
        assert!(err.to_string().contains("nope.pub"), "{err}");
    }

    #[test]
    fn settings_removed_from_the_definition_remove_the_seed() {
        let home = tempfile::tempdir().expect("tempdir");
        let key = key_file(home.path(), "alice@host");
        let (paths, mut cfg) = vm(home.path(), &key);
        let seed = ensure_seed(&paths, &cfg).expect("builds").expect("a seed");
        cfg.cloud_init = None;

        assert_eq!(ensure_seed(&paths, &cfg).expect("removes"), None);
        assert!(!seed.path.exists());
    }
}
