//! The three files of a NoCloud seed, made from [`CloudInitOptions`] and the VM:
//! `user-data` (#cloud-config: host name, the user with sudo and keys, passwords), `meta-data`
//! (`instance-id`, `local-hostname`) and `network-config` (version 2: DHCPv4 on every NIC,
//! matched by MAC). A user's own user-data or network-config file replaces vmux's.
//!
//! [`SeedInputs::read`] reads every file the options name (keys, user-data, network-config)
//! once, checks them, and derives the instance-id from everything that ends up in the seed,
//! so the id changes exactly when the seed's meaning does.

use super::error::CloudInitError;
use super::options::{CloudInitOptions, Password, hostname_from_vm_name};
use super::password;
use super::yaml::{Yaml, render};
use crate::config::MacAddr;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Largest user-data or network-config file put in a seed.
pub const MAX_FILE_SIZE: u64 = 8 << 20;
/// Largest SSH public key file read.
pub const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;
/// The sudo rule given to the created user.
pub const SUDO_RULE: &str = "ALL=(ALL) NOPASSWD:ALL";
/// The created user's shell.
pub const SHELL: &str = "/bin/bash";

/// What the seed is built for.
#[derive(Debug, Clone, Copy)]
pub struct SeedContext<'a> {
    /// The VM's name (the default host name, and part of the instance-id).
    pub vm_name: &'a str,
    /// The MACs of the VM's virtio NICs, in order; none: no network-config.
    pub macs: &'a [MacAddr],
}

/// A password vmux generated, to show to the user once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPassword {
    /// Whose: "root" or the user's name.
    pub user: String,
    /// The password.
    pub password: String,
}

/// Everything the seed is made from, read and checked.
#[derive(Debug, Clone)]
pub struct SeedInputs {
    hostname: String,
    user: Option<String>,
    keys: Vec<String>,
    root_password: Option<Password>,
    user_password: Option<Password>,
    user_data: Option<Vec<u8>>,
    network_config: Option<Vec<u8>>,
    macs: Vec<String>,
    instance_id: String,
}

/// The seed's files: name and content.
pub type SeedFiles = Vec<(&'static str, Vec<u8>)>;

impl SeedInputs {
    /// Reads and checks what `opts` names, for the VM `ctx`.
    pub fn read(
        opts: &CloudInitOptions,
        ctx: &SeedContext<'_>,
    ) -> Result<SeedInputs, CloudInitError> {
        opts.validate()?;
        let mut keys = Vec::new();
        for path in &opts.ssh_keys {
            keys.extend(read_public_keys(path)?);
        }
        let user_data = opts
            .user_data
            .as_deref()
            .map(|p| read_yaml_file("user-data", p, true))
            .transpose()?;
        let network_config = opts
            .network_config
            .as_deref()
            .map(|p| read_yaml_file("network-config", p, false))
            .transpose()?;
        let mut opts = opts.clone();
        opts.seal(ctx.vm_name)?;
        let hostname = opts
            .hostname
            .clone()
            .unwrap_or_else(|| hostname_from_vm_name(ctx.vm_name));
        let macs: Vec<String> = ctx.macs.iter().map(|m| m.to_string()).collect();
        let mut inputs = SeedInputs {
            hostname,
            user: opts.user.clone(),
            keys,
            root_password: opts.root_password.clone(),
            user_password: opts.user_password.clone(),
            user_data,
            network_config,
            macs,
            instance_id: String::new(),
        };
        inputs.instance_id = inputs.derive_instance_id(ctx.vm_name);
        Ok(inputs)
    }

    /// `vmux-` and 16 hex digits of SHA-256 over the VM name and every input.
    fn derive_instance_id(&self, vm_name: &str) -> String {
        let password = |p: &Option<Password>| match p {
            None => String::new(),
            Some(Password::Generate) => "generate".into(),
            Some(Password::Hashed(h)) => h.clone(),
            Some(Password::Plain(_)) => "plain".into(),
        };
        let file = |f: &Option<Vec<u8>>| {
            f.as_ref()
                .map(|b| hex(&Sha256::digest(b)))
                .unwrap_or_default()
        };
        let canonical = serde_json::json!({
            "vm": vm_name,
            "hostname": self.hostname,
            "user": self.user,
            "keys": self.keys,
            "root_password": password(&self.root_password),
            "user_password": password(&self.user_password),
            "user_data": file(&self.user_data),
            "network_config": file(&self.network_config),
            "macs": self.macs,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        format!("vmux-{}", hex(&digest[..8]))
    }

    /// The instance-id the seed will carry.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The seed's files, generating the passwords asked for (returned once).
    pub fn files(&self) -> Result<(SeedFiles, Vec<GeneratedPassword>), CloudInitError> {
        let mut generated = Vec::new();
        let user_data = match &self.user_data {
            Some(bytes) => bytes.clone(),
            None => self.cloud_config(&mut generated)?.into_bytes(),
        };
        let meta = render(&Yaml::map([
            ("instance-id", Yaml::str(&self.instance_id)),
            ("local-hostname", Yaml::str(&self.hostname)),
        ]));
        let mut files: SeedFiles = vec![("meta-data", meta.into_bytes()), ("user-data", user_data)];
        if let Some(own) = &self.network_config {
            files.push(("network-config", own.clone()));
        } else if !self.macs.is_empty() {
            files.push(("network-config", self.network_v2().into_bytes()));
        }
        Ok((files, generated))
    }

    /// vmux's #cloud-config.
    fn cloud_config(
        &self,
        generated: &mut Vec<GeneratedPassword>,
    ) -> Result<String, CloudInitError> {
        let mut doc: Vec<(String, Yaml)> = Vec::new();
        let (host, fqdn) = match self.hostname.split_once('.') {
            Some((short, _)) => (short.to_string(), Some(self.hostname.clone())),
            None => (self.hostname.clone(), None),
        };
        doc.push(("hostname".into(), Yaml::str(host)));
        if let Some(fqdn) = fqdn {
            doc.push(("fqdn".into(), Yaml::str(fqdn)));
        }
        let keys = Yaml::Seq(self.keys.iter().map(Yaml::str).collect());
        match &self.user {
            Some(user) => {
                let mut entry = vec![
                    ("name".to_string(), Yaml::str(user)),
                    ("sudo".into(), Yaml::str(SUDO_RULE)),
                    ("shell".into(), Yaml::str(SHELL)),
                ];
                match resolve(&self.user_password, user, generated)? {
                    Some(hash) => {
                        entry.push(("lock_passwd".into(), Yaml::Bool(false)));
                        entry.push(("hashed_passwd".into(), Yaml::str(hash)));
                    }
                    None => entry.push(("lock_passwd".into(), Yaml::Bool(true))),
                }
                if !self.keys.is_empty() {
                    entry.push(("ssh_authorized_keys".into(), keys));
                }
                doc.push(("users".into(), Yaml::Seq(vec![Yaml::Map(entry)])));
            }
            None if !self.keys.is_empty() => doc.push(("ssh_authorized_keys".into(), keys)),
            None => {}
        }
        if let Some(hash) = resolve(&self.root_password, "root", generated)? {
            doc.push((
                "chpasswd".into(),
                Yaml::map([
                    ("expire", Yaml::Bool(false)),
                    (
                        "users",
                        Yaml::Seq(vec![Yaml::map([
                            ("name", Yaml::str("root")),
                            ("password", Yaml::str(hash)),
                            ("type", Yaml::str("hash")),
                        ])]),
                    ),
                ]),
            ));
        }
        Ok(format!("#cloud-config\n{}", render(&Yaml::Map(doc))))
    }

    /// Network config version 2: DHCPv4 on each NIC, matched by MAC.
    fn network_v2(&self) -> String {
        let ethernets = self.macs.iter().enumerate().map(|(i, mac)| {
            (
                format!("nic{i}"),
                Yaml::map([
                    ("match", Yaml::map([("macaddress", Yaml::str(mac))])),
                    ("dhcp4", Yaml::Bool(true)),
                ]),
            )
        });
        render(&Yaml::map([
            ("version", Yaml::Int(2)),
            ("ethernets", Yaml::Map(ethernets.collect())),
        ]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash to write for `password` (generating one when asked), or `None`.
fn resolve(
    password: &Option<Password>,
    user: &str,
    generated: &mut Vec<GeneratedPassword>,
) -> Result<Option<String>, CloudInitError> {
    match password {
        None => Ok(None),
        Some(Password::Hashed(hash)) => Ok(Some(hash.clone())),
        Some(Password::Plain(plain)) => password::hash_random(plain).map(Some),
        Some(Password::Generate) => {
            let plain = password::generate()?;
            let hash = password::hash_random(&plain)?;
            generated.push(GeneratedPassword {
                user: user.to_string(),
                password: plain,
            });
            Ok(Some(hash))
        }
    }
}

fn read_limited(what: &'static str, path: &Path, limit: u64) -> Result<Vec<u8>, CloudInitError> {
    let io_err = |source| CloudInitError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io_err)?.len();
    if size > limit {
        return Err(CloudInitError::FileTooLarge {
            what,
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    std::fs::read(path).map_err(io_err)
}

/// The public keys in an SSH public key (or authorized_keys) file.
fn read_public_keys(path: &Path) -> Result<Vec<String>, CloudInitError> {
    let bytes = read_limited("SSH key", path, MAX_KEY_FILE_SIZE)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("PRIVATE KEY") {
        return Err(CloudInitError::NotAPublicKey {
            path: path.to_path_buf(),
            reason: "is a private key (never copy it into a VM)",
        });
    }
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| {
            let words: Vec<&str> = l.split_ascii_whitespace().collect();
            words.windows(2).any(|w| {
                (w[0].starts_with("ssh-")
                    || w[0].starts_with("ecdsa-sha2-")
                    || w[0].starts_with("sk-"))
                    && w[1].starts_with("AAAA")
            })
        })
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(CloudInitError::NotAPublicKey {
            path: path.to_path_buf(),
            reason: "holds no SSH public key line (type, base64 key, comment)",
        });
    }
    Ok(keys)
}

/// A user-data (`user_data`: only checked when it is #cloud-config) or network-config file.
fn read_yaml_file(
    what: &'static str,
    path: &Path,
    user_data: bool,
) -> Result<Vec<u8>, CloudInitError> {
    let bytes = read_limited(what, path, MAX_FILE_SIZE)?;
    let bad = |reason: String| CloudInitError::BadYaml {
        what,
        path: path.to_path_buf(),
        reason,
    };
    if user_data && !bytes.starts_with(b"#cloud-config") {
        // A script, a MIME multi-part or an #include: cloud-init decides.
        return Ok(bytes);
    }
    let value: serde_norway::Value =
        serde_norway::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if !matches!(
        value,
        serde_norway::Value::Mapping(_) | serde_norway::Value::Null
    ) {
        return Err(bad("the document is not a mapping of keys to values".into()));
    }
    Ok(bytes)
}
