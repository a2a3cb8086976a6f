//! `VmConfig`: one VM's definition as the user wrote it (`vms/<name>.toml`), and `validate()`.
//!
//! ```toml
//! name = "web1"
//! vcpus = 2
//! max_vcpus = 8
//! memory = "1G"
//! autostart = false
//!
//! [boot]
//! source = "kernel"          # or "demo", or "image" (see below)
//! kernel = "/srv/vmlinuz"
//! initrd = "/srv/initrd.img"
//! cmdline = "console=ttyS0"
//!
//! [[disks]]                  # optional, see `DiskConfig`
//! pool = "default"
//! volume = "web1.qcow2"
//!
//! [[nics]]                   # zero or more; see `config::network`
//! network = "default"
//! mac = "52:54:00:12:34:56"
//! ```
//!
//! A VM made from a distribution disk image boots the kernel that image's own /boot names
//! (read again at every start, see `bootimg`); the image is its disk `vda`. Its cloud-init
//! settings are stored sealed (password hashes only; the secrets live in the seed vmd builds,
//! see `cloudinit::vm_seed`):
//!
//! ```toml
//! [boot]
//! source = "image"
//! cmdline_extra = "systemd.unit=multi-user.target"
//!
//! [cloud_init]
//! user = "alice"
//! ssh_keys = ["/home/alice/.ssh/id_ed25519.pub"]
//! ```

use super::disk::{DiskConfig, assign_targets};
use super::network::NicConfig;
use super::size::{format_size, parse_size};
use crate::cloudinit::{CloudInitOptions, Password};
use crate::engine::layout::{CMDLINE_MAX_SIZE, MAX_VCPUS};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Memory a VM gets when the user does not say.
pub const DEFAULT_MEMORY_BYTES: u64 = 256 << 20;
/// Smallest memory accepted.
const MIN_MEMORY_BYTES: u64 = 16 << 20;
/// Memory must be a multiple of this (huge-page friendly, and what the e820 map assumes).
const MEMORY_ALIGN: u64 = 2 << 20;

/// One VM definition. A file may leave out what `vmux create` defaults (`vcpus` 1, `memory`
/// 256M, `max_vcpus` twice `vcpus`, at least 4): `vmux define` reads what `create` writes and
/// what a person writes by hand alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "VmConfigFile")]
pub struct VmConfig {
    /// Unique name: `[A-Za-z0-9._-]`, at most 64 characters.
    pub name: String,
    /// vCPUs at boot.
    pub vcpus: u32,
    /// Most vCPUs this VM can be hot-added up to (ACPI makes room for them at boot).
    pub max_vcpus: u32,
    /// Guest RAM, written as a size (`"256M"`, `"2G"`).
    #[serde(with = "size_string")]
    pub memory: u64,
    /// Start with `vmux autostart-all` (host boot).
    #[serde(default)]
    pub autostart: bool,
    /// A memory balloon (virtio-balloon) so `vmux setmem` can take memory back; on unless
    /// the definition says `balloon = false`.
    #[serde(
        default = "balloon_default",
        skip_serializing_if = "is_balloon_default"
    )]
    pub balloon: bool,
    /// Memory the guest is left with at start (the balloon takes the rest), written as a
    /// size; absent: all of `memory`. Set by `vmux setmem --config`.
    #[serde(
        default,
        with = "optional_size_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub current_memory: Option<u64>,
    /// What to boot.
    pub boot: BootConfig,
    /// Virtio-blk disks, in PCI slot order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskConfig>,
    /// Network interfaces, in guest PCI order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicConfig>,
    /// cloud-init settings (sealed: no plain or to-be-generated password); vmd attaches a
    /// NoCloud seed built from them as a read-only disk after the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitOptions>,
}

fn balloon_default() -> bool {
    true
}

fn is_balloon_default(balloon: &bool) -> bool {
    *balloon
}

/// The boot source of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum BootConfig {
    /// The built-in demo guest (embedded in the vmux binary).
    Demo,
    /// A kernel (bzImage, vmlinux or static ELF64) with optional initrd and command line.
    Kernel {
        /// Absolute path of the kernel.
        kernel: PathBuf,
        /// Absolute path of the initramfs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        initrd: Option<PathBuf>,
        /// Kernel command line.
        #[serde(default)]
        cmdline: String,
    },
    /// The kernel, initrd and command line the boot entry of the VM's disk `vda` names (a
    /// distribution disk image's own /boot), found again at every start.
    Image {
        /// Words appended to the entry's command line.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        cmdline_extra: String,
    },
}

/// The guest device name of the disk an image-booted VM boots from.
pub const IMAGE_BOOT_TARGET: &str = "vda";
/// A definition file as read, before `vmux create`'s defaults fill in what it leaves out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VmConfigFile {
    name: String,
    #[serde(default = "one_vcpu")]
    vcpus: u32,
    #[serde(default)]
    max_vcpus: Option<u32>,
    #[serde(default = "default_memory", with = "size_string")]
    memory: u64,
    #[serde(default)]
    autostart: bool,
    #[serde(default = "balloon_default")]
    balloon: bool,
    #[serde(default, with = "optional_size_string")]
    current_memory: Option<u64>,
    boot: BootConfig,
    #[serde(default)]
    disks: Vec<DiskConfig>,
    #[serde(default)]
    nics: Vec<NicConfig>,
    #[serde(default)]
    cloud_init: Option<CloudInitOptions>,
}

fn one_vcpu() -> u32 {
    1
}

fn default_memory() -> u64 {
    DEFAULT_MEMORY_BYTES
}

impl From<VmConfigFile> for VmConfig {
    fn from(file: VmConfigFile) -> VmConfig {
        VmConfig {
            max_vcpus: file
                .max_vcpus
                .unwrap_or_else(|| default_max_vcpus(file.vcpus)),
            name: file.name,
            vcpus: file.vcpus,
            memory: file.memory,
            autostart: file.autostart,
            balloon: file.balloon,
            current_memory: file.current_memory,
            boot: file.boot,
            disks: file.disks,
            nics: file.nics,
            cloud_init: file.cloud_init,
        }
    }
}

impl VmConfig {
    /// A definition with defaults: 1 vCPU (hot-add up to 4), 256 MiB.
    pub fn new(name: &str, boot: BootConfig) -> VmConfig {
        VmConfig {
            name: name.to_string(),
            vcpus: 1,
            max_vcpus: default_max_vcpus(1),
            memory: DEFAULT_MEMORY_BYTES,
            autostart: false,
            boot,
            disks: Vec::new(),
            nics: Vec::new(),
            cloud_init: None,
            balloon: true,
            current_memory: None,
        }
    }

    /// Checks everything that can be checked without touching the host: name, counts, sizes,
    /// command line. Host checks (files readable, memory available) are the caller's.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        if self.vcpus == 0 {
            return Err("vcpus must be at least 1".into());
        }
        if self.max_vcpus < self.vcpus {
            return Err(format!(
                "max_vcpus ({}) is below vcpus ({}); raise --max-vcpus or lower --vcpus",
                self.max_vcpus, self.vcpus
            ));
        }
        if self.max_vcpus > MAX_VCPUS {
            return Err(format!(
                "max_vcpus ({}) is above the limit of {MAX_VCPUS}",
                self.max_vcpus
            ));
        }
        if self.memory < MIN_MEMORY_BYTES {
            return Err(format!(
                "memory {} is too small; give at least {}",
                format_size(self.memory),
                format_size(MIN_MEMORY_BYTES)
            ));
        }
        if !self.memory.is_multiple_of(MEMORY_ALIGN) {
            return Err(format!(
                "memory {} is not a multiple of 2M; try {}",
                format_size(self.memory),
                format_size(self.memory.div_ceil(MEMORY_ALIGN) * MEMORY_ALIGN)
            ));
        }
        if let Some(current) = self.current_memory {
            if !self.balloon {
                return Err(
                    "current_memory needs the memory balloon; set balloon = true or remove \
                     current_memory"
                        .into(),
                );
            }
            if current > self.memory || current < MIN_MEMORY_BYTES {
                return Err(format!(
                    "current_memory {} must be between {} and the VM's memory ({})",
                    format_size(current),
                    format_size(MIN_MEMORY_BYTES),
                    format_size(self.memory)
                ));
            }
        }
        for disk in &self.disks {
            disk.validate()?;
        }
        let targets = assign_targets(&self.disks)?;
        for (index, nic) in self.nics.iter().enumerate() {
            nic.validate()?;
            if self.nics[..index].iter().any(|other| other.mac == nic.mac) {
                return Err(format!(
                    "MAC {} is given to two NICs; each NIC needs its own MAC",
                    nic.mac
                ));
            }
        }
        if let BootConfig::Kernel {
            kernel,
            initrd,
            cmdline,
        } = &self.boot
        {
            if !kernel.is_absolute() {
                return Err(format!("kernel path {} must be absolute", kernel.display()));
            }
            if let Some(initrd) = initrd.as_ref().filter(|p| !p.is_absolute()) {
                return Err(format!("initrd path {} must be absolute", initrd.display()));
            }
            if cmdline.len() >= CMDLINE_MAX_SIZE {
                return Err(format!(
                    "the kernel command line is {} bytes; the limit is {}",
                    cmdline.len(),
                    CMDLINE_MAX_SIZE - 1
                ));
            }
        }
        if let BootConfig::Image { cmdline_extra } = &self.boot {
            if !targets.iter().any(|t| t == IMAGE_BOOT_TARGET) {
                return Err(format!(
                    "the VM boots from its disk image, but it has no disk {IMAGE_BOOT_TARGET}; give the image as its first disk (vmux create --image POOL/VOLUME)"
                ));
            }
            if cmdline_extra.len() >= CMDLINE_MAX_SIZE / 2 {
                return Err(format!(
                    "cmdline_extra is {} bytes; keep it under {} so the image's own command line fits",
                    cmdline_extra.len(),
                    CMDLINE_MAX_SIZE / 2
                ));
            }
            if cmdline_extra.contains(['\0', '\n']) {
                return Err("cmdline_extra holds a NUL or newline; remove it".into());
            }
        }
        if let Some(cloud_init) = &self.cloud_init {
            validate_cloud_init(cloud_init)?;
        }
        Ok(())
    }
}

/// A stored cloud-init section: valid options, and no password left to generate or in plain
/// text (the CLI and wizard resolve `generate` when they create the VM, so the password can be
/// shown once; a definition written by hand cannot show it).
fn validate_cloud_init(options: &CloudInitOptions) -> Result<(), String> {
    options.validate().map_err(|e| e.to_string())?;
    for (key, password) in [
        ("root_password", &options.root_password),
        ("user_password", &options.user_password),
    ] {
        match password {
            Some(Password::Generate) => {
                return Err(format!(
                    "[cloud_init] {key} = \"generate\" cannot be stored: nobody would see the password; create the VM with `vmux create --cloud-init {}=generate` (it shows the password once), or give a SHA-512 hash ({key} = {{ hashed = \"$6$...\" }})",
                    key.replace('_', "-")
                ));
            }
            Some(Password::Plain(_)) => {
                return Err(format!(
                    "[cloud_init] {key} is in plain text; vmux stores only hashes"
                ));
            }
            Some(Password::Hashed(_)) | None => {}
        }
    }
    Ok(())
}

/// `max_vcpus` when the user gives none: room to hot-add (twice `vcpus`, at least 4).
pub fn default_max_vcpus(vcpus: u32) -> u32 {
    vcpus.saturating_mul(2).clamp(4, MAX_VCPUS).max(vcpus)
}

/// Checks a VM name: 1..=64 characters of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 64 || !valid_chars || name.starts_with(['.', '-']) {
        return Err(format!(
            "'{name}' is not a valid name; use 1-64 characters from A-Z a-z 0-9 . _ - (not starting with . or -)"
        ));
    }
    Ok(())
}

mod size_string {
    use super::{format_size, parse_size};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(*bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Bytes(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
            Raw::Bytes(b) => Ok(b),
        }
    }
}

mod optional_size_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => super::size_string::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::size_string")] u64);
        Option::<Wrapped>::deserialize(d).map(|w| w.map(|Wrapped(bytes)| bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(name: &str) -> VmConfig {
        VmConfig::new(name, BootConfig::Demo)
    }

    #[test]
    fn balloon_and_current_memory_round_trip_and_are_left_out_by_default() {
        let plain = toml::to_string(&demo("b")).expect("serialize");
        assert!(
            !plain.contains("balloon") && !plain.contains("current_memory"),
            "{plain}"
        );
        let cfg = VmConfig {
            balloon: false,
            ..demo("a")
        };
        let text = toml::to_string(&cfg).expect("serialize");
        assert!(text.contains("balloon = false"), "{text}");
        assert_eq!(toml::from_str::<VmConfig>(&text).expect("parse"), cfg);
        let cfg = VmConfig {
            current_memory: Some(128 << 20),
            ..demo("c")
        };
        let text = toml::to_string(&cfg).expect("serialize");
        assert!(text.contains("current_memory = \"128M\""), "{text}");
        assert_eq!(toml::from_str::<VmConfig>(&text).expect("parse"), cfg);
    }

    #[test]
    fn current_memory_above_memory_or_without_a_balloon_is_refused() {
        let mut cfg = demo("a");
        cfg.current_memory = Some(cfg.memory + (2 << 20));
        assert!(cfg.validate().expect_err("above").contains("between"));
        cfg.current_memory = Some(64 << 20);
        cfg.balloon = false;
        assert!(cfg.validate().expect_err("no balloon").contains("balloon"));
    }

    #[test]
    fn a_file_without_the_create_defaults_gets_them() {
        let text = "name = \"web\"\nvcpus = 3\n[boot]\nsource = \"demo\"\n";
        let cfg: VmConfig = toml::from_str(text).expect("defaults fill in");
        assert_eq!(cfg.max_vcpus, default_max_vcpus(3));
        assert_eq!(cfg.memory, DEFAULT_MEMORY_BYTES);
        let minimal: VmConfig =
            toml::from_str("name = \"a\"\n[boot]\nsource = \"demo\"\n").expect("minimal");
        assert_eq!(minimal, demo("a"));
    }

    #[test]
    fn an_unknown_field_is_still_refused() {
        let text = "name = \"web\"\ncpu = 3\n[boot]\nsource = \"demo\"\n";
        let err = toml::from_str::<VmConfig>(text).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `cpu`"), "{err}");
    }

    #[test]
    fn default_definition_is_valid_and_can_grow() {
        let cfg = demo("demo");
        assert_eq!(cfg.validate(), Ok(()));
        assert!(cfg.max_vcpus > cfg.vcpus);
    }

    #[test]
    fn names_with_slashes_or_spaces_are_refused() {
        for bad in ["", "a/b", "a b", ".hidden", "-x", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_name("web-1.prod_2").is_ok());
    }

    #[test]
    fn vcpus_above_max_is_refused_with_both_numbers() {
        let mut cfg = demo("a");
        cfg.vcpus = 4;
        cfg.max_vcpus = 2;
        let err = cfg.validate().expect_err("must fail");
        assert!(err.contains("(2)") && err.contains("(4)"), "{err}");
    }

    #[test]
    fn memory_not_multiple_of_2m_suggests_a_fix() {
        let mut cfg = demo("a");
        cfg.memory = (100 << 20) + 1;
        assert!(cfg.validate().expect_err("must fail").contains("try"));
    }

    #[test]
    fn two_nics_with_one_mac_are_refused() {
        let nic = NicConfig {
            network: "default".into(),
            mac: "52:54:00:00:00:01".parse().expect("valid"),
        };
        let cfg = VmConfig {
            nics: vec![nic.clone(), nic],
            ..demo("a")
        };
        assert!(cfg.validate().expect_err("must fail").contains("two NICs"));
    }

    #[test]
    fn nics_round_trip_and_are_left_out_when_empty() {
        let cfg = VmConfig {
            nics: vec![NicConfig {
                network: "default".into(),
                mac: "52:54:00:00:00:01".parse().expect("valid"),
            }],
            ..demo("a")
        };
        let text = toml::to_string(&cfg).expect("serialize");
        assert!(text.contains("[[nics]]"), "{text}");
        assert_eq!(toml::from_str::<VmConfig>(&text).expect("parse"), cfg);
        let plain = toml::to_string(&demo("b")).expect("serialize");
        assert!(!plain.contains("nics"), "{plain}");
    }

    #[test]
    fn toml_round_trip_keeps_human_sizes() {
        let cfg = VmConfig {
            boot: BootConfig::Kernel {
                kernel: "/k".into(),
                initrd: None,
                cmdline: "console=ttyS0".into(),
            },
            ..demo("web1")
        };
        let text = toml::to_string(&cfg).expect("serialize");
        assert!(text.contains("memory = \"256M\""), "{text}");
        let back: VmConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, cfg);
    }

    #[test]
    fn disks_round_trip_and_duplicate_targets_are_refused() {
        let mut cfg = demo("web1");
        cfg.disks = vec![
            "default/web1.qcow2".parse().expect("disk"),
            "default/data.raw,readonly,target=vdc"
                .parse()
                .expect("disk"),
        ];
        let text = toml::to_string(&cfg).expect("serialize");
        assert_eq!(toml::from_str::<VmConfig>(&text).expect("parse"), cfg);
        cfg.disks[0].target = Some("vdc".into());
        assert!(cfg.validate().expect_err("must fail").contains("vdc"));
    }

    #[test]
    fn a_definition_without_disks_writes_no_disks_key() {
        let text = toml::to_string(&demo("a")).expect("serialize");
        assert!(!text.contains("disks"), "{text}");
    }

    fn image_vm() -> VmConfig {
        let mut cfg = VmConfig::new(
            "web1",
            BootConfig::Image {
                cmdline_extra: "quiet".into(),
            },
        );
        cfg.disks = vec!["default/web1.qcow2".parse().expect("disk")];
        cfg
    }

    #[test]
    fn an_image_vm_round_trips_with_its_cloud_init_settings() {
        let mut cfg = image_vm();
        let mut options = CloudInitOptions::parse("user=alice,ssh-key=/k.pub,user-password=s3cret")
            .expect("options");
        options.seal("web1").expect("seal");
        cfg.cloud_init = Some(options);
        assert_eq!(cfg.validate(), Ok(()));
        let text = toml::to_string(&cfg).expect("serialize");
        assert!(text.contains("source = \"image\""), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(toml::from_str::<VmConfig>(&text).expect("parse"), cfg);
    }

    #[test]
    fn an_image_vm_without_a_vda_disk_says_how_to_give_one() {
        let mut cfg = image_vm();
        cfg.disks[0].target = Some("vdb".into());
        let err = cfg.validate().expect_err("no vda");
        assert!(err.contains("no disk vda"), "{err}");
        assert!(err.contains("--image"), "{err}");
    }

    #[test]
    fn a_stored_password_to_generate_is_refused_naming_the_way_to_get_one() {
        let mut cfg = image_vm();
        cfg.cloud_init = Some(CloudInitOptions::parse("root-password=generate").expect("options"));
        let err = cfg.validate().expect_err("generate");
        assert!(err.contains("root-password=generate"), "{err}");
    }
}
