//! The wizard's fields: how each is declared in the form (label, kind, whether Ctrl-O
//! browses for it), what is wrong with it (checked as it is typed, path fields on disk) and
//! the advice under it.

use super::{IMAGE_SOURCE, SOURCES, Wizard};
use crate::config::{
    BootConfig, VmConfig, format_size, parse_size, validate_name, validate_volume_name,
};
use crate::engine::layout::MAX_VCPUS;
use crate::storage::ImageFormat;
use crate::tui::form::checklist::Checklist;
use crate::tui::form::{FieldKey, FieldValue, FormField};
use std::path::Path;

/// A text field.
pub(super) fn text(key: FieldKey, label: &'static str, value: &str) -> FormField {
    FormField::text(key, label, value)
}

/// A choice among `options`, the first chosen.
pub(super) fn choice(key: FieldKey, label: &'static str, options: &[&str]) -> FormField {
    FormField::choice(key, label, options.iter().map(|o| o.to_string()).collect())
}

/// The fields the creation wizard and the edit form share (boot source, CPUs, memory), filled
/// from `config`.
pub(super) fn boot_fields(config: &VmConfig) -> Vec<FormField> {
    let (source, kernel, initrd, cmdline) = match &config.boot {
        BootConfig::Demo => (0, String::new(), String::new(), "console=ttyS0".to_string()),
        BootConfig::Image { .. } => (
            IMAGE_SOURCE,
            String::new(),
            String::new(),
            "console=ttyS0".to_string(),
        ),
        BootConfig::Kernel {
            kernel,
            initrd,
            cmdline,
        } => (
            1,
            kernel.display().to_string(),
            initrd
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            cmdline.clone(),
        ),
    };
    let mut source_field = choice(FieldKey::Source, "Install from", SOURCES);
    if let FieldValue::Choice { index, .. } = &mut source_field.value {
        *index = source;
    }
    vec![
        source_field,
        text(FieldKey::Kernel, "Kernel", &kernel).browsing(),
        text(FieldKey::Initrd, "Initrd", &initrd).browsing(),
        text(FieldKey::Cmdline, "Command line", &cmdline),
        FormField::number(FieldKey::Vcpus, "vCPUs", config.vcpus, 1, MAX_VCPUS),
        FormField::number(
            FieldKey::MaxVcpus,
            "Max vCPUs",
            config.max_vcpus,
            1,
            MAX_VCPUS,
        ),
        text(FieldKey::Memory, "Memory", &format_size(config.memory)).hint_always(),
    ]
}

/// An on/off field.
pub(super) fn toggle(key: FieldKey, label: &'static str, on: bool) -> FormField {
    FormField::toggle(key, label, on)
}

/// An empty checklist field drawn under `heading`, showing `empty` while it has no items.
pub(super) fn checklist(
    key: FieldKey,
    label: &'static str,
    heading: &str,
    empty: &str,
) -> FormField {
    FormField::checklist(key, label, Checklist::new(heading, empty))
}

impl Wizard {
    /// What is wrong with field `id` now, if anything.
    pub(super) fn check(&self, id: FieldKey) -> Option<String> {
        let value = self.text(id);
        if let Some(problem) = self.check_image(id) {
            return Some(problem);
        }
        match id {
            FieldKey::Name => validate_name(value).err().or_else(|| {
                self.existing
                    .iter()
                    .any(|n| n == value)
                    .then(|| format!("a VM named '{value}' already exists; pick another name"))
            }),
            FieldKey::Kernel if self.kernel_boot() => check_path(value, true),
            FieldKey::Initrd if self.kernel_boot() => check_path(value, false),
            FieldKey::Vcpus => self.form.number(id).err(),
            FieldKey::MaxVcpus => {
                let max = match self.form.number(id) {
                    Ok(max) => max,
                    Err(e) => return Some(e),
                };
                let vcpus = self.form.number(FieldKey::Vcpus).ok()?;
                (max < vcpus)
                    .then(|| format!("must be at least vCPUs ({vcpus}); raise it to hot-add later"))
            }
            FieldKey::Memory => match parse_size(value) {
                Err(e) => Some(e),
                Ok(bytes) if bytes < 16 << 20 => Some("give at least 16M".into()),
                Ok(bytes) if bytes % (2 << 20) != 0 => Some(format!(
                    "must be a multiple of 2M; try {}",
                    format_size(bytes.div_ceil(2 << 20) * (2 << 20))
                )),
                Ok(_) => None,
            },
            FieldKey::Volumes => self.checklist(id).and_then(Checklist::problem),
            FieldKey::StartNetworks
                if self.flag(FieldKey::StartNow) && !self.flag(FieldKey::StartNetworks) =>
            {
                let inactive = self.inactive_chosen();
                (!inactive.is_empty()).then(|| {
                    format!(
                        "network {} is not started: tick this (Space) to start it first, or untick Start now to create the VM without starting it",
                        inactive.join(", ")
                    )
                })
            }
            _ if !self.flag(FieldKey::NewDisk) => None,
            FieldKey::DiskPool if self.pools.is_empty() => Some(
                "no storage pool is active; start one in the Storage pane (2) or untick New volume"
                    .into(),
            ),
            FieldKey::DiskName => self.check_disk_name(value),
            FieldKey::DiskSize => match parse_size(value) {
                Err(e) => Some(e),
                Ok(0) => Some("give a size above zero, like 10G".into()),
                Ok(_) => None,
            },
            _ => None,
        }
    }

    /// Advice under field `id` (the memory field's, about the host, is the view's to give).
    pub(super) fn hint(&self, id: FieldKey) -> String {
        match id {
            FieldKey::Name => "letters, digits, . _ - (at most 64)".into(),
            FieldKey::Source => "Space or ←/→ switches".into(),
            FieldKey::Kernel => "bzImage or vmlinux; Ctrl-O browses".into(),
            FieldKey::Initrd => "optional initramfs; Ctrl-O browses".into(),
            FieldKey::Cmdline => "console=ttyS0 puts the guest's console on the serial line".into(),
            FieldKey::Vcpus => "processors online at boot".into(),
            FieldKey::MaxVcpus => "hot-add limit (see below)".into(),
            FieldKey::Autostart => "start it with `vmux autostart-all` at host boot".into(),
            FieldKey::StartNow => "start the VM once it is created".into(),
            FieldKey::AttachNow => "open its console once it runs".into(),
            FieldKey::Volumes | FieldKey::Networks => "Space ticks, ↑/↓ moves".into(),
            FieldKey::NewDisk => "create a volume for this VM (it becomes vda)".into(),
            FieldKey::DiskPool => "Space or ←/→ switches (active pools)".into(),
            FieldKey::DiskName => ".qcow2 or .raw, matching the format".into(),
            FieldKey::DiskSize => "like 10G; sparse, so it costs only what the guest writes".into(),
            FieldKey::DiskFormat => {
                "qcow2: snapshots and linked clones; raw: plain and fast".into()
            }
            FieldKey::ImageFrom => {
                "a downloaded cloud image, or a pool volume; Space switches".into()
            }
            FieldKey::ImageFile => "e.g. ~/Downloads/debian-12-genericcloud-amd64.qcow2".into(),
            FieldKey::ImageMode => format!(
                "vmux boots the kernel its /boot names; new volume default/{}.qcow2",
                self.text(FieldKey::Name)
            ),
            FieldKey::CiUser => {
                "created with sudo; empty: the image's own user (debian, ubuntu)".into()
            }
            FieldKey::CiKey => "your public key, for `ssh USER@IP`; Ctrl-O browses ~/.ssh".into(),
            FieldKey::CiPassword => {
                "a generated password is shown once, when the VM is created".into()
            }
            FieldKey::CiHostname => "the guest's host name".into(),
            FieldKey::StartNetworks => format!(
                "start {} before the VM (needs root or CAP_NET_ADMIN)",
                self.inactive_chosen().join(", ")
            ),
            _ => String::new(),
        }
    }

    /// What is wrong with `name` as the new volume's name in the chosen pool and format.
    fn check_disk_name(&self, name: &str) -> Option<String> {
        if let Err(e) = validate_volume_name(name) {
            return Some(e);
        }
        let pool = self.pools.get(self.choice_index(FieldKey::DiskPool))?;
        if pool.taken.iter().any(|t| t == name) {
            return Some(format!(
                "pool {} already has {name}; pick another name or tick it above",
                pool.name
            ));
        }
        let format = self.disk_format();
        match ImageFormat::from_name(std::path::Path::new(name)) {
            Some(by_name) if by_name != format => Some(format!(
                "the name says {by_name} but the format is {format}; change one of them"
            )),
            _ => None,
        }
    }
}

fn check_path(text: &str, required: bool) -> Option<String> {
    if text.is_empty() {
        return required.then(|| "give the kernel's path (Ctrl-O browses)".to_string());
    }
    let path = Path::new(text);
    if !path.is_absolute() {
        return Some(format!("{text} must be an absolute path (start with /)"));
    }
    if !path.is_file() {
        return Some(format!("no file at {text} (Ctrl-O browses)"));
    }
    None
}

/// The host memory hint for the memory field.
pub fn memory_hint(requested: Option<u64>, available: Option<(u64, u64)>) -> String {
    match (requested, available) {
        (Some(bytes), Some((avail, total))) if bytes > avail => format!(
            "warning: only {} of {} host memory is free; the guest may be short of RAM",
            format_size(avail),
            format_size(total)
        ),
        (_, Some((avail, total))) => format!(
            "host: {} free of {}",
            format_size(avail),
            format_size(total)
        ),
        _ => "host memory unknown".to_string(),
    }
}
