//! [`CloudInitOptions`]: what `--cloud-init user=alice,ssh-key=~/.ssh/id_ed25519.pub,...` asks
//! for, parsed and checked the way virt-install's `--cloud-init` sub-options are.
//!
//! Options: `user=NAME`, `ssh-key=FILE` (may repeat), `root-password=generate|PASS`,
//! `user-password=generate|PASS`, `hostname=NAME`, `user-data=FILE` (a user's own
//! #cloud-config or script, used as is), `network-config=FILE` (used as is). Values cannot
//! hold commas. `user-data` replaces everything vmux would write into user-data, so it cannot
//! be combined with `user`, `ssh-key` or the passwords.
//!
//! Definitions should store options after [`CloudInitOptions::seal`], which replaces plain
//! passwords with their SHA-512 crypt hash: serialising a plain password is refused, so no
//! definition file ever holds one.

use super::error::CloudInitError;
use super::files::GeneratedPassword;
use super::password;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A password option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Password {
    /// A random password, generated when the seed is built and shown to the user once.
    Generate,
    /// A password as typed; never serialised (see [`CloudInitOptions::seal`]).
    #[serde(skip)]
    Plain(String),
    /// A SHA-512 crypt hash (`$6$...`).
    Hashed(String),
}

/// Parsed `--cloud-init` options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudInitOptions {
    /// The user to create (with passwordless sudo); `None`: the image's default user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Public key files for that user (or the default user).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<PathBuf>,
    /// root's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password: Option<Password>,
    /// The user's password (needs `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_password: Option<Password>,
    /// The guest's host name; `None`: the VM's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// A user-data file used as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<PathBuf>,
    /// A network-config file used as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<PathBuf>,
}

impl CloudInitOptions {
    /// Parses `key=value,key=value`. `~/` in file names is expanded with `$HOME`.
    pub fn parse(text: &str) -> Result<CloudInitOptions, CloudInitError> {
        let mut opts = CloudInitOptions::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let (key, value) = (key.trim(), value.trim());
            let example = match key {
                "user" => "user=alice",
                "ssh-key" => "ssh-key=~/.ssh/id_ed25519.pub",
                "root-password" | "user-password" => "root-password=generate",
                "hostname" => "hostname=web1",
                "user-data" => "user-data=./user-data.yaml",
                "network-config" => "network-config=./network-config.yaml",
                _ => {
                    return Err(CloudInitError::UnknownKey {
                        key: key.to_string(),
                    });
                }
            };
            if value.is_empty() {
                return Err(CloudInitError::MissingValue {
                    key: key.to_string(),
                    example,
                });
            }
            let duplicate = || CloudInitError::Duplicate {
                key: key.to_string(),
            };
            match key {
                "user" => set_once(&mut opts.user, value.to_string(), duplicate)?,
                "ssh-key" => opts.ssh_keys.push(expand_home(value)),
                "root-password" => {
                    set_once(&mut opts.root_password, password_spec(value), duplicate)?
                }
                "user-password" => {
                    set_once(&mut opts.user_password, password_spec(value), duplicate)?
                }
                "hostname" => set_once(&mut opts.hostname, value.to_string(), duplicate)?,
                "user-data" => set_once(&mut opts.user_data, expand_home(value), duplicate)?,
                _ => set_once(&mut opts.network_config, expand_home(value), duplicate)?,
            }
        }
        opts.validate()?;
        Ok(opts)
    }

    /// Checks names and combinations (not the files: [`super::build_seed`] reads them).
    pub fn validate(&self) -> Result<(), CloudInitError> {
        if let Some(user) = &self.user {
            validate_user(user)?;
        }
        if let Some(host) = &self.hostname {
            validate_hostname(host)?;
        }
        if self.user_data.is_some() {
            let mut clash = Vec::new();
            if self.user.is_some() {
                clash.push("user");
            }
            if !self.ssh_keys.is_empty() {
                clash.push("ssh-key");
            }
            if self.root_password.is_some() {
                clash.push("root-password");
            }
            if self.user_password.is_some() {
                clash.push("user-password");
            }
            if !clash.is_empty() {
                return Err(CloudInitError::Conflict(format!(
                    "user-data=FILE is used as is, so {} cannot be added to it; put them in that file, or leave out user-data",
                    clash.join(", ")
                )));
            }
        }
        if self.user_password.is_some() && self.user.is_none() {
            return Err(CloudInitError::Conflict(
                "user-password needs user=NAME (for the image's default user, set the password in a user-data file)".into(),
            ));
        }
        Ok(())
    }

    /// Replaces plain passwords with SHA-512 crypt hashes (salted per VM and user, so the
    /// same settings hash the same), ready to be stored in a definition.
    pub fn seal(&mut self, vm_name: &str) -> Result<(), CloudInitError> {
        let user = self.user.clone().unwrap_or_default();
        if let Some(Password::Plain(p)) = &self.root_password {
            self.root_password = Some(Password::Hashed(password::hash_for(p, vm_name, "root")?));
        }
        if let Some(Password::Plain(p)) = &self.user_password {
            self.user_password = Some(Password::Hashed(password::hash_for(p, vm_name, &user)?));
        }
        Ok(())
    }

    /// Makes the passwords asked for with `generate` now and keeps only their hashes, so the
    /// options can be stored and every seed built from them later carries the same password.
    /// Returns the passwords, to be shown to the user once (they are stored nowhere).
    pub fn generate_passwords(&mut self) -> Result<Vec<GeneratedPassword>, CloudInitError> {
        let mut generated = Vec::new();
        let user = self.user.clone().unwrap_or_default();
        for (slot, whose) in [
            (&mut self.root_password, "root".to_string()),
            (&mut self.user_password, user),
        ] {
            if *slot == Some(Password::Generate) {
                let plain = password::generate()?;
                *slot = Some(Password::Hashed(password::hash_random(&plain)?));
                generated.push(GeneratedPassword {
                    user: whose,
                    password: plain,
                });
            }
        }
        Ok(generated)
    }

    /// Ready to store in a definition: passwords to generate are generated (and returned, to
    /// show once), plain ones hashed.
    pub fn sealed_for_storage(
        &mut self,
        vm_name: &str,
    ) -> Result<Vec<GeneratedPassword>, CloudInitError> {
        let generated = self.generate_passwords()?;
        self.seal(vm_name)?;
        Ok(generated)
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    duplicate: impl FnOnce() -> CloudInitError,
) -> Result<(), CloudInitError> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

fn password_spec(value: &str) -> Password {
    if value == "generate" {
        Password::Generate
    } else {
        Password::Plain(value.to_string())
    }
}

fn expand_home(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(value),
    }
}

/// Checks a user name (Debian's default `NAME_REGEX`, and not root).
pub fn validate_user(name: &str) -> Result<(), CloudInitError> {
    let bad = |reason| {
        Err(CloudInitError::InvalidUser {
            name: name.to_string(),
            reason,
        })
    };
    if name == "root" {
        return bad("root exists already (set its password with root-password=)");
    }
    if name.len() > 32 {
        return bad("it is longer than 32 characters");
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c == '_' => {}
        _ => return bad("it must start with a lower-case letter or '_'"),
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return bad("it holds a character other than a-z, 0-9, '-' and '_'");
    }
    Ok(())
}

/// Checks a host name (RFC 1123).
pub fn validate_hostname(name: &str) -> Result<(), CloudInitError> {
    let bad = |reason| {
        Err(CloudInitError::InvalidHostname {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 253 {
        return bad("it must be 1 to 253 characters long");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated label must be 1 to 63 characters long");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("it holds a character other than letters, digits, '-' and '.'");
        }
    }
    Ok(())
}

/// A host name made from a VM name: lower case, other characters as '-', at most 63.
pub fn hostname_from_vm_name(vm_name: &str) -> String {
    let mut host: String = vm_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    host = host.trim_matches('-').to_string();
    if host.is_empty() {
        "vmux-guest".to_string()
    } else {
        host
    }
}

/// The invoking user's public keys: `~/.ssh/id_*.pub` under `home`, sorted (what `--cloud-init`
/// uses when no `ssh-key` is given).
pub fn default_ssh_keys(home: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(home.join(".ssh")) else {
        return Vec::new();
    };
    let mut keys: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("id_") && n.ends_with(".pub"))
        })
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_options_parse() {
        let opts = CloudInitOptions::parse(
            "user=alice,ssh-key=/k1.pub,ssh-key=/k2.pub,root-password=generate,user-password=s3cret,hostname=web1.example.org",
        )
        .expect("parses");
        assert_eq!(opts.user.as_deref(), Some("alice"));
        assert_eq!(
            opts.ssh_keys,
            vec![PathBuf::from("/k1.pub"), PathBuf::from("/k2.pub")]
        );
        assert_eq!(opts.root_password, Some(Password::Generate));
        assert_eq!(opts.user_password, Some(Password::Plain("s3cret".into())));
        assert_eq!(opts.hostname.as_deref(), Some("web1.example.org"));
    }

    #[test]
    fn an_unknown_option_lists_the_known_ones() {
        let err = CloudInitOptions::parse("usr=alice").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown --cloud-init option 'usr'; the options are user, ssh-key, root-password, user-password, hostname, user-data, network-config"
        );
    }

    #[test]
    fn a_missing_value_shows_an_example() {
        let err = CloudInitOptions::parse("user").expect_err("no value");
        assert_eq!(
            err.to_string(),
            "--cloud-init option 'user' needs a value, e.g. user=alice"
        );
    }

    #[test]
    fn a_repeated_option_is_refused_except_ssh_key() {
        assert!(CloudInitOptions::parse("user=a,user=b").is_err());
        assert!(CloudInitOptions::parse("ssh-key=/a,ssh-key=/b").is_ok());
    }

    #[test]
    fn bad_user_and_host_names_say_why() {
        let err = CloudInitOptions::parse("user=Alice").expect_err("upper case");
        assert!(
            err.to_string()
                .contains("must start with a lower-case letter"),
            "{err}"
        );
        assert!(CloudInitOptions::parse("user=root").is_err());
        let err = CloudInitOptions::parse("hostname=web_1").expect_err("underscore");
        assert!(err.to_string().contains("not a valid host name"), "{err}");
        assert!(CloudInitOptions::parse("hostname=-web").is_err());
    }

    #[test]
    fn user_data_cannot_be_mixed_with_generated_settings() {
        let err = CloudInitOptions::parse("user-data=/u.yaml,user=alice,ssh-key=/k")
            .expect_err("conflict");
        assert!(
            err.to_string().contains("user, ssh-key cannot be added"),
            "{err}"
        );
        assert!(CloudInitOptions::parse("user-data=/u.yaml,hostname=h,network-config=/n").is_ok());
    }

    #[test]
    fn a_user_password_needs_a_user() {
        assert!(CloudInitOptions::parse("user-password=x").is_err());
    }

    #[test]
    fn sealed_options_hold_no_plain_password_and_serialise() {
        let mut opts =
            CloudInitOptions::parse("user=alice,user-password=s3cret,root-password=generate")
                .expect("parses");
        assert!(
            toml::to_string(&opts).is_err(),
            "a plain password must not serialise"
        );
        opts.seal("web1").expect("hashes");
        let text = toml::to_string(&opts).expect("serialises");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("$6$"), "{text}");
        let back: CloudInitOptions = toml::from_str(&text).expect("reads back");
        assert_eq!(back, opts);
    }

    #[test]
    fn generated_passwords_are_returned_once_and_stored_as_hashes() {
        let mut opts =
            CloudInitOptions::parse("user=alice,root-password=generate,user-password=generate")
                .expect("parses");
        let generated = opts.sealed_for_storage("web1").expect("generates");
        let users: Vec<&str> = generated.iter().map(|g| g.user.as_str()).collect();
        assert_eq!(users, ["root", "alice"]);
        assert!(
            generated
                .iter()
                .all(|g| g.password.len() == password::GENERATED_LEN)
        );
        let text = toml::to_string(&opts).expect("serialises");
        assert!(!text.contains("generate"), "{text}");
        for g in &generated {
            assert!(!text.contains(&g.password), "{text}");
        }
        assert!(matches!(opts.root_password, Some(Password::Hashed(_))));
    }

    #[test]
    fn vm_names_become_host_names() {
        assert_eq!(hostname_from_vm_name("Web_1.prod"), "web-1-prod");
        assert_eq!(hostname_from_vm_name("__"), "vmux-guest");
    }

    #[test]
    fn default_keys_are_the_pub_files_of_dot_ssh() {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
        for name in ["id_rsa.pub", "id_ed25519.pub", "id_ed25519", "known_hosts"] {
            std::fs::write(home.path().join(".ssh").join(name), "x").expect("write");
        }
        let keys = default_ssh_keys(home.path());
        let names: Vec<_> = keys
            .iter()
            .filter_map(|k| k.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["id_ed25519.pub", "id_rsa.pub"]);
    }
}
