//! `create --cloud-init OPTS`: the options parsed (virt-install's sub-options), completed with
//! the user's own SSH keys when none is given, checked against the files they name (so a
//! missing key is refused now, not at the first start), and sealed for the definition:
//! passwords to generate are generated here, shown once by `create`, and stored only as hashes.
//! vmd builds the seed from the stored options at every start (`cloudinit::vm_seed`).

use super::CliError;
use crate::cloudinit::{
    CloudInitOptions, GeneratedPassword, SeedContext, default_ssh_keys, instance_id,
};
use crate::config::{MacAddr, VmConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The cloud-init settings of a new VM, ready to store.
#[derive(Debug, Clone)]
pub struct PreparedCloudInit {
    /// Sealed options (what the definition stores).
    pub options: CloudInitOptions,
    /// Passwords generated now: show them once.
    pub generated: Vec<GeneratedPassword>,
    /// The instance-id the first seed will carry.
    pub instance_id: String,
    /// No way to log in was configured (no key, no password, no user-data).
    pub no_login: bool,
}

/// A generated password in `create --json`.
#[derive(Debug, Serialize)]
pub struct PasswordJson<'a> {
    /// Whose: `root` or the user's name.
    pub user: &'a str,
    /// The password (shown once, stored nowhere).
    pub password: &'a str,
}

/// Parses `text` for VM `cfg` (whose NICs are already chosen), fills in the default SSH keys
/// from `home`, checks every file named, and seals the result.
pub fn prepare(
    text: &str,
    cfg: &VmConfig,
    home: Option<&Path>,
) -> Result<PreparedCloudInit, CliError> {
    let mut options = CloudInitOptions::parse(text)?;
    if options.ssh_keys.is_empty()
        && options.user_data.is_none()
        && let Some(home) = home
    {
        options.ssh_keys = default_ssh_keys(home);
    }
    options.ssh_keys = options
        .ssh_keys
        .iter()
        .map(|k| std::path::absolute(k).unwrap_or_else(|_| k.clone()))
        .collect::<Vec<PathBuf>>();
    let no_login = options.ssh_keys.is_empty()
        && options.user_data.is_none()
        && options.root_password.is_none()
        && options.user_password.is_none();
    let generated = options.sealed_for_storage(&cfg.name)?;
    let macs: Vec<MacAddr> = cfg.nics.iter().map(|nic| nic.mac).collect();
    let instance_id = instance_id(
        &options,
        &SeedContext {
            vm_name: &cfg.name,
            macs: &macs,
        },
    )?;
    Ok(PreparedCloudInit {
        options,
        generated,
        instance_id,
        no_login,
    })
}

/// One line saying what cloud-init will do: `user alice, 1 SSH key, hostname web1`.
pub fn summary(options: &CloudInitOptions, vm: &str) -> String {
    let mut parts = Vec::new();
    match &options.user {
        Some(user) => parts.push(format!("user {user}")),
        None if options.user_data.is_none() => parts.push("the image's default user".into()),
        None => {}
    }
    match options.ssh_keys.len() {
        0 => {}
        1 => parts.push(format!("SSH key {}", options.ssh_keys[0].display())),
        n => parts.push(format!("{n} SSH key files")),
    }
    if options.root_password.is_some() {
        parts.push("root password".into());
    }
    if options.user_password.is_some() {
        parts.push("user password".into());
    }
    parts.push(format!(
        "hostname {}",
        options
            .hostname
            .clone()
            .unwrap_or_else(|| crate::cloudinit::options::hostname_from_vm_name(vm))
    ));
    if let Some(file) = &options.user_data {
        parts.push(format!("user-data {}", file.display()));
    }
    if let Some(file) = &options.network_config {
        parts.push(format!("network-config {}", file.display()));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudinit::Password;
    use crate::config::BootConfig;

    fn vm() -> VmConfig {
        VmConfig::new(
            "web1",
            BootConfig::Image {
                cmdline_extra: String::new(),
            },
        )
    }

    fn home_with_key() -> tempfile::TempDir {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
        std::fs::write(
            home.path().join(".ssh/id_ed25519.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmK8vNYVH2kq0JUhw1Pc3Xo1ZB1gVgJ9Pc me@host\n",
        )
        .expect("key");
        home
    }

    #[test]
    fn without_ssh_key_the_users_own_public_keys_are_used() {
        let home = home_with_key();
        let prepared = prepare("user=me", &vm(), Some(home.path())).expect("prepares");
        assert_eq!(
            prepared.options.ssh_keys,
            [home.path().join(".ssh/id_ed25519.pub")]
        );
        assert!(!prepared.no_login);
        assert!(prepared.instance_id.starts_with("vmux-"));
    }

    #[test]
    fn a_generated_root_password_is_returned_once_and_stored_hashed() {
        let home = home_with_key();
        let prepared =
            prepare("root-password=generate", &vm(), Some(home.path())).expect("prepares");
        assert_eq!(prepared.generated.len(), 1);
        assert_eq!(prepared.generated[0].user, "root");
        assert!(matches!(
            prepared.options.root_password,
            Some(Password::Hashed(_))
        ));
    }

    #[test]
    fn a_missing_key_file_is_refused_now_naming_it() {
        let err = prepare("ssh-key=/nonexistent/key.pub", &vm(), None).expect_err("no file");
        assert!(err.to_string().contains("/nonexistent/key.pub"), "{err}");
    }

    #[test]
    fn no_key_and_no_password_is_flagged() {
        let home = tempfile::tempdir().expect("tempdir");
        let prepared = prepare("user=me", &vm(), Some(home.path())).expect("prepares");
        assert!(prepared.no_login);
    }

    #[test]
    fn the_summary_names_user_key_and_hostname() {
        let home = home_with_key();
        let prepared = prepare("user=me", &vm(), Some(home.path())).expect("prepares");
        let text = summary(&prepared.options, "web1");
        assert!(text.starts_with("user me, SSH key "), "{text}");
        assert!(text.ends_with("hostname web1"), "{text}");
    }
}
