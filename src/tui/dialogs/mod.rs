//! The storage and network dialogs: create, resize, clone, convert and upload a volume, and
//! define a network. Each is a [`Form`] plus what it is about ([`DialogKind`]): the kind
//! checks every field as it is typed against what the TUI knows (names taken, free space,
//! running users, subnets in use) so mistakes show beside the field, and turns the fields into
//! a [`Task`] on Enter. The library checks everything again when the task runs; its error, if
//! any, goes to the status line. The add-disk and remove-disk kinds live in [`disks`] and
//! build a [`HostOp`] or a confirmation instead.

pub mod disks;

use super::action::HostOp;
use super::confirm::Confirm;
use super::form::{FieldKey, FieldValue, Form, FormField, FormKey};
use super::hosts::config::{HostEntry, check_name, check_uri};
use super::tasks::Task;
use crate::client::PoolView;
use crate::config::{
    DhcpRange, Ipv4Net, NetworkConfig, NetworkMode, format_size, parse_size, validate_ifname,
    validate_name, validate_volume_name,
};
use crate::network::host::Route;
use crate::network::subnet_conflict;
use crate::storage::{ImageFormat, VolumeInfo, VolumeSpec};
use crossterm::event::KeyEvent;
use disks::{AddDisk, RemoveDisk};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Formats in the order the format choices offer them.
const FORMATS: [ImageFormat; 2] = [ImageFormat::Qcow2, ImageFormat::Raw];
/// Modes in the order the mode choice offers them.
const MODES: [NetworkMode; 3] = [NetworkMode::Nat, NetworkMode::Isolated, NetworkMode::Bridge];

/// What a dialog is about, with the facts its checks need.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogKind {
    /// A new volume in `pool`.
    CreateVolume {
        /// Pool.
        pool: String,
        /// Free bytes on its file system.
        free: u64,
        /// Names taken in it.
        taken: Vec<String>,
    },
    /// A new size for a volume.
    ResizeVolume {
        /// The volume.
        volume: Box<VolumeInfo>,
    },
    /// A copy of a volume.
    CloneVolume {
        /// The source.
        volume: Box<VolumeInfo>,
        /// Names taken in its pool.
        taken: Vec<String>,
    },
    /// A copy of a volume in another format.
    ConvertVolume {
        /// The source.
        volume: Box<VolumeInfo>,
        /// Names taken in its pool.
        taken: Vec<String>,
    },
    /// Replacing a volume's content with an image file's.
    UploadVolume {
        /// The volume.
        volume: Box<VolumeInfo>,
    },
    /// A new network.
    DefineNetwork {
        /// The networks defined now (names, bridges and subnets are taken).
        defined: Vec<NetworkConfig>,
        /// The host's routes (a subnet must not overlap a network the host reaches).
        routes: Vec<Route>,
    },
    /// A disk for a VM (hot-add and/or definition).
    AddDisk(Box<AddDisk>),
    /// Removing a VM's disk (hot-remove and/or definition).
    RemoveDisk(Box<RemoveDisk>),
    /// A remote host for the hosts pane.
    AddHost {
        /// Names of the hosts configured now.
        taken: Vec<String>,
    },
}

/// What a key in a dialog asks of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogOutcome {
    /// Nothing beyond redrawing.
    None,
    /// Close without doing anything.
    Cancel,
    /// Run this task and close.
    Run(Task),
    /// Run this VM operation and close.
    Host(HostOp),
    /// Ask this first, then run its task.
    Confirm(Confirm),
    /// Add this remote host (hosts pane) and close.
    AddHost(HostEntry),
}

/// A dialog: its kind, its form, and a problem with the whole (shown above the keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    /// What it is about.
    pub kind: DialogKind,
    /// The fields.
    pub form: Form,
    /// Why Enter did nothing, when it did nothing.
    pub problem: Option<String>,
}

fn format_field(initial: ImageFormat) -> FormField {
    let mut field = FormField::choice(
        FieldKey::Format,
        "Format",
        FORMATS.iter().map(|f| f.to_string()).collect(),
    );
    if let FieldValue::Choice { index, .. } = &mut field.value {
        *index = FORMATS.iter().position(|f| *f == initial).unwrap_or(0);
    }
    field
}

/// `stem-clone.ext`, `stem-clone2.ext`, ... the first not in `taken`.
fn free_variant(name: &str, suffix: &str, ext: Option<&str>, taken: &[String]) -> String {
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    let ext = ext
        .map(str::to_string)
        .or_else(|| path.extension().map(|e| e.to_string_lossy().into_owned()));
    (1..)
        .map(|i| {
            let counter = if i == 1 { String::new() } else { i.to_string() };
            match &ext {
                Some(ext) => format!("{stem}{suffix}{counter}.{ext}"),
                None => format!("{stem}{suffix}{counter}"),
            }
        })
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| format!("{stem}{suffix}"))
}

/// The first `vol<N>.qcow2` not in `taken`.
fn new_volume_name(taken: &[String]) -> String {
    (1..)
        .map(|i| format!("vol{i}.qcow2"))
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| "vol.qcow2".into())
}

/// The first 192.168.N.0/24 (N from 124) that no defined network and no host route overlaps.
fn free_subnet(defined: &[NetworkConfig], routes: &[Route]) -> String {
    (124..=254u8)
        .filter_map(|n| Ipv4Net::new(Ipv4Addr::new(192, 168, n, 0), 24).ok())
        .find(|net| subnet_conflict(*net, subnets(defined), routes).is_none())
        .map(|net| net.to_string())
        .unwrap_or_default()
}

/// The defined networks' names and subnets (nat and isolated ones have one).
fn subnets(defined: &[NetworkConfig]) -> impl Iterator<Item = (&str, Ipv4Net)> {
    defined
        .iter()
        .filter_map(|d| Some((d.name.as_str(), d.subnet?)))
}

/// The first `net<N>` not defined.
fn free_network_name(defined: &[NetworkConfig]) -> String {
    (1..)
        .map(|i| format!("net{i}"))
        .find(|n| !defined.iter().any(|d| &d.name == n))
        .unwrap_or_else(|| "net".into())
}

/// Parses a size, or `+SIZE` relative to `base` when `base` is given.
pub fn parse_new_size(text: &str, base: Option<u64>) -> Result<u64, String> {
    match (text.strip_prefix('+'), base) {
        (Some(delta), Some(base)) => parse_size(delta)?
            .checked_add(base)
            .ok_or_else(|| format!("'{text}' is too large a size")),
        _ => parse_size(text),
    }
}

fn check_new_name(name: &str, taken: &[String], pool: &str) -> Option<String> {
    validate_volume_name(name).err().or_else(|| {
        taken
            .iter()
            .any(|t| t == name)
            .then(|| format!("pool {pool} already has {name}; pick another name"))
    })
}

/// The format a name's extension promises, and whether it disagrees with `chosen`.
fn check_format_matches(name: &str, chosen: Option<&str>) -> Option<String> {
    let by_name = ImageFormat::from_name(Path::new(name))?;
    let chosen: ImageFormat = chosen?.parse().ok()?;
    (by_name != chosen)
        .then(|| format!("the name says {by_name}; choose {by_name} or rename it (.{chosen})"))
}

fn used_by_running(volume: &VolumeInfo) -> Option<String> {
    volume
        .running
        .first()
        .map(|vm| format!("running VM {vm} uses this volume; shut it down first"))
}

impl Dialog {
    fn with(kind: DialogKind, fields: Vec<FormField>) -> Dialog {
        let mut dialog = Dialog {
            kind,
            form: Form::new(fields),
            problem: None,
        };
        dialog.revalidate();
        dialog
    }

    /// A new volume in `pool`.
    pub fn create_volume(pool: &PoolView) -> Dialog {
        let taken: Vec<String> = pool.volumes.iter().map(|v| v.name.clone()).collect();
        let fields = vec![
            FormField::text(FieldKey::Name, "Name", &new_volume_name(&taken)),
            FormField::text(FieldKey::Size, "Size", "10G"),
            format_field(ImageFormat::Qcow2),
            FormField::toggle(FieldKey::Preallocate, "Preallocate", false),
        ];
        Dialog::with(
            DialogKind::CreateVolume {
                pool: pool.name().to_string(),
                free: pool.info.available,
                taken,
            },
            fields,
        )
    }

    /// A new size for `volume`.
    pub fn resize_volume(volume: &VolumeInfo) -> Dialog {
        let fields = vec![
            FormField::text(FieldKey::Size, "New size", &format_size(volume.capacity)),
            FormField::toggle(FieldKey::Shrink, "Allow shrink", false),
        ];
        Dialog::with(
            DialogKind::ResizeVolume {
                volume: Box::new(volume.clone()),
            },
            fields,
        )
    }

    /// A copy of `volume` in `pool`.
    pub fn clone_volume(pool: &PoolView, volume: &VolumeInfo) -> Dialog {
        let taken: Vec<String> = pool.volumes.iter().map(|v| v.name.clone()).collect();
        let fields = vec![
            FormField::text(
                FieldKey::Name,
                "Clone name",
                &free_variant(&volume.name, "-clone", None, &taken),
            ),
            FormField::toggle(FieldKey::Linked, "Linked clone", false),
        ];
        Dialog::with(
            DialogKind::CloneVolume {
                volume: Box::new(volume.clone()),
                taken,
            },
            fields,
        )
    }

    /// A copy of `volume` in the other format.
    pub fn convert_volume(pool: &PoolView, volume: &VolumeInfo) -> Dialog {
        let taken: Vec<String> = pool.volumes.iter().map(|v| v.name.clone()).collect();
        let target = match volume.format {
            ImageFormat::Qcow2 => ImageFormat::Raw,
            ImageFormat::Raw => ImageFormat::Qcow2,
        };
        let fields = vec![
            FormField::text(
                FieldKey::Name,
                "New volume",
                &free_variant(&volume.name, "", Some(target.as_str()), &taken),
            ),
            format_field(target),
        ];
        Dialog::with(
            DialogKind::ConvertVolume {
                volume: Box::new(volume.clone()),
                taken,
            },
            fields,
        )
    }

    /// Replacing `volume`'s content with an image file's.
    pub fn upload_volume(volume: &VolumeInfo) -> Dialog {
        let fields = vec![FormField::text(FieldKey::Path, "Image file", "")];
        Dialog::with(
            DialogKind::UploadVolume {
                volume: Box::new(volume.clone()),
            },
            fields,
        )
    }

    /// A new network, given the ones defined and the host's routes.
    pub fn define_network(defined: Vec<NetworkConfig>, routes: Vec<Route>) -> Dialog {
        let fields = vec![
            FormField::text(FieldKey::Name, "Name", &free_network_name(&defined)),
            FormField::choice(
                FieldKey::Mode,
                "Mode",
                MODES.iter().map(|m| m.to_string()).collect(),
            ),
            FormField::text(FieldKey::Bridge, "Bridge", ""),
            FormField::text(FieldKey::Subnet, "Subnet", &free_subnet(&defined, &routes)),
            FormField::text(FieldKey::Gateway, "Gateway", ""),
            FormField::text(FieldKey::DhcpRange, "DHCP range", ""),
            FormField::toggle(FieldKey::Autostart, "Autostart", false),
        ];
        Dialog::with(DialogKind::DefineNetwork { defined, routes }, fields)
    }

    /// A remote host, given the names configured now.
    pub fn add_host(taken: Vec<String>) -> Dialog {
        let name = (2..)
            .map(|i| format!("host{i}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| "host".into());
        let fields = vec![
            FormField::text(FieldKey::Name, "Name", &name),
            FormField::text(FieldKey::Uri, "Address", "ssh://"),
            FormField::toggle(FieldKey::Autostart, "Autoconnect", true),
        ];
        Dialog::with(DialogKind::AddHost { taken }, fields)
    }

    /// A disk for a VM.
    pub fn add_disk(add: AddDisk) -> Dialog {
        let fields = add.fields();
        Dialog::with(DialogKind::AddDisk(Box::new(add)), fields)
    }

    /// Removing a VM's disk.
    pub fn remove_disk(remove: RemoveDisk) -> Dialog {
        let fields = remove.fields();
        Dialog::with(DialogKind::RemoveDisk(Box::new(remove)), fields)
    }

    /// Fresh pools and volumes arrived (the add-disk dialog lists them).
    pub fn set_storage(&mut self, storage: &crate::client::StorageSnapshot) {
        if let DialogKind::AddDisk(add) = &mut self.kind {
            add.set_storage(storage, &mut self.form);
            self.revalidate();
        }
    }

    /// The dialog's title.
    pub fn title(&self) -> String {
        match &self.kind {
            DialogKind::AddDisk(add) => format!("add a disk to {}", add.vm),
            DialogKind::RemoveDisk(remove) => format!("remove a disk from {}", remove.vm),
            DialogKind::CreateVolume { pool, .. } => format!("new volume in pool {pool}"),
            DialogKind::ResizeVolume { volume } => {
                format!("resize {}/{}", volume.pool, volume.name)
            }
            DialogKind::CloneVolume { volume, .. } => {
                format!("clone {}/{}", volume.pool, volume.name)
            }
            DialogKind::ConvertVolume { volume, .. } => {
                format!("convert {}/{}", volume.pool, volume.name)
            }
            DialogKind::UploadVolume { volume } => {
                format!("upload into {}/{}", volume.pool, volume.name)
            }
            DialogKind::DefineNetwork { .. } => "new network".to_string(),
            DialogKind::AddHost { .. } => "add a remote host".to_string(),
        }
    }

    /// Lines of context above the fields.
    pub fn intro(&self) -> Vec<String> {
        match &self.kind {
            DialogKind::AddDisk(add) => add.intro(),
            DialogKind::RemoveDisk(remove) => remove.intro(),
            DialogKind::CreateVolume { free, .. } => vec![format!(
                "{} free in the pool; volumes are sparse unless preallocated",
                format_size(*free)
            )],
            DialogKind::ResizeVolume { volume } => vec![format!(
                "now {} ({}, {} on disk); growing is always safe",
                format_size(volume.capacity),
                volume.format,
                format_size(volume.allocation)
            )],
            DialogKind::CloneVolume { volume, .. } => vec![format!(
                "{}, {} of data; full: a separate copy; linked: a qcow2 overlay",
                format_size(volume.capacity),
                format_size(volume.allocation)
            )],
            DialogKind::ConvertVolume { volume, .. } => vec![format!(
                "{} is {}; the copy gets the format below (backing files are flattened in)",
                volume.name, volume.format
            )],
            DialogKind::UploadVolume { volume } => vec![
                format!(
                    "replaces everything in {} with an image file's content",
                    volume.name
                ),
                format!(
                    "the volume stays {}; the file may be raw or qcow2 (detected)",
                    volume.format
                ),
            ],
            DialogKind::DefineNetwork { .. } => vec![
                "nat: guests reach out through the host; isolated: guests and host only;".into(),
                "bridge: guests join an existing host bridge (the LAN's DHCP serves them)".into(),
            ],
            DialogKind::AddHost { .. } => vec![
                "reached with the system ssh (your ~/.ssh/config, keys and agent apply);".into(),
                "vmux must be installed there; saved in vmux.toml".into(),
            ],
        }
    }

    /// Handles a key; the caller acts on the outcome.
    pub fn handle_key(&mut self, key: &KeyEvent) -> DialogOutcome {
        match self.form.handle_key(key) {
            FormKey::Cancel => DialogOutcome::Cancel,
            FormKey::Submit => self.submit(),
            FormKey::Changed => {
                self.revalidate();
                DialogOutcome::None
            }
            // No dialog field browses for a file: Ctrl-O does nothing here.
            FormKey::Moved | FormKey::Browse => {
                self.revalidate();
                DialogOutcome::None
            }
        }
    }

    /// Pasted text goes into the focused field.
    pub fn paste(&mut self, text: &str) {
        if self.form.paste(text) == FormKey::Changed {
            self.revalidate();
        }
    }

    /// Re-checks every field and refreshes hints and hidden fields.
    pub fn revalidate(&mut self) {
        if let DialogKind::DefineNetwork { .. } = self.kind {
            let bridged = self.mode() == NetworkMode::Bridge;
            for key in [FieldKey::Subnet, FieldKey::Gateway, FieldKey::DhcpRange] {
                self.form.set_hidden(key, bridged);
            }
        }
        if let DialogKind::AddDisk(add) = &self.kind {
            add.show(&mut self.form);
        }
        if let DialogKind::RemoveDisk(remove) = &self.kind {
            remove.show(&mut self.form);
        }
        let keys: Vec<FieldKey> = self.form.fields.iter().map(|f| f.key).collect();
        for key in keys {
            let error = self.check(key);
            let hint = self.hint(key);
            if let Some(field) = self.form.field_mut(key) {
                field.error = error;
                field.hint = hint;
            }
        }
        self.problem = None;
    }

    fn mode(&self) -> NetworkMode {
        self.form
            .choice(FieldKey::Mode)
            .and_then(|m| MODES.iter().copied().find(|mode| mode.label() == m))
            .unwrap_or(NetworkMode::Nat)
    }

    fn format(&self) -> Option<ImageFormat> {
        self.form.choice(FieldKey::Format)?.parse().ok()
    }

    fn check(&self, key: FieldKey) -> Option<String> {
        let form = &self.form;
        let text = form.text(key);
        match (&self.kind, key) {
            (DialogKind::AddDisk(add), _) => add.check(form, key),
            (DialogKind::RemoveDisk(remove), _) => remove.check(form, key),
            (DialogKind::CreateVolume { pool, taken, .. }, FieldKey::Name) => {
                check_new_name(text, taken, pool)
            }
            (DialogKind::CreateVolume { free, .. }, FieldKey::Size) => match parse_size(text) {
                Err(e) => Some(e),
                Ok(0) => Some("give a size above zero, like 10G".into()),
                Ok(bytes) if form.flag(FieldKey::Preallocate) && bytes > *free => Some(format!(
                    "preallocating needs {}; the pool has {} free",
                    format_size(bytes),
                    format_size(*free)
                )),
                Ok(_) => None,
            },
            (
                DialogKind::CreateVolume { .. } | DialogKind::ConvertVolume { .. },
                FieldKey::Format,
            ) => check_format_matches(form.text(FieldKey::Name), form.choice(FieldKey::Format)),
            (DialogKind::ResizeVolume { volume }, FieldKey::Size) => {
                if let Some(running) = used_by_running(volume) {
                    return Some(running);
                }
                match parse_new_size(text, Some(volume.capacity)) {
                    Err(e) => Some(e),
                    Ok(0) => Some("give a size above zero".into()),
                    Ok(bytes) if bytes < volume.capacity && !form.flag(FieldKey::Shrink) => {
                        Some(format!(
                            "smaller than now ({}): shrinking cuts the end of the disk; turn on Allow shrink after shrinking the guest's file system",
                            format_size(volume.capacity)
                        ))
                    }
                    Ok(_) => None,
                }
            }
            (DialogKind::CloneVolume { volume, taken }, FieldKey::Name) => {
                check_new_name(text, taken, &volume.pool).or_else(|| {
                    let qcow2 = ImageFormat::from_name(Path::new(text)) == Some(ImageFormat::Qcow2);
                    (form.flag(FieldKey::Linked) && !qcow2).then(|| {
                        "a linked clone is a qcow2 overlay: end the name with .qcow2".into()
                    })
                })
            }
            (DialogKind::ConvertVolume { volume, taken }, FieldKey::Name) => {
                check_new_name(text, taken, &volume.pool)
            }
            (DialogKind::UploadVolume { volume }, FieldKey::Path) => {
                if let Some(running) = used_by_running(volume) {
                    return Some(running);
                }
                let path = Path::new(text);
                if text.is_empty() {
                    Some("give the image file's absolute path".into())
                } else if !path.is_absolute() {
                    Some(format!("{text} must be an absolute path (start with /)"))
                } else if !path.is_file() {
                    Some(format!("no file at {text}"))
                } else {
                    None
                }
            }
            (DialogKind::DefineNetwork { defined, .. }, FieldKey::Name) => {
                validate_name(text).err().or_else(|| {
                    defined
                        .iter()
                        .any(|d| d.name == text)
                        .then(|| format!("a network named {text} exists; pick another name"))
                })
            }
            (DialogKind::DefineNetwork { defined, .. }, FieldKey::Bridge) => {
                if text.is_empty() {
                    return (self.mode() == NetworkMode::Bridge)
                        .then(|| "bridge mode needs the host bridge's name, like br0".into());
                }
                validate_ifname(text).err().or_else(|| {
                    let managed = self.mode().is_managed();
                    defined
                        .iter()
                        .find(|d| d.bridge == text && (managed || d.mode.is_managed()))
                        .map(|d| format!("network {} uses bridge {text}", d.name))
                })
            }
            (DialogKind::DefineNetwork { defined, routes }, FieldKey::Subnet) => {
                let subnet: Ipv4Net = match text.parse() {
                    Ok(subnet) => subnet,
                    Err(e) => return Some(e),
                };
                // The rule `net-define-as` applies (network::subnet_conflict).
                subnet.check_usable().err().or_else(|| {
                    subnet_conflict(subnet, subnets(defined), routes)
                        .map(|conflict| format!("overlaps {conflict}; pick another subnet"))
                })
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::Gateway) if !text.is_empty() => {
                text.parse::<Ipv4Addr>().err().map(|_| {
                    format!(
                        "'{text}' is not an IPv4 address; leave it empty for the subnet's first"
                    )
                })
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::DhcpRange) if !text.is_empty() => {
                text.parse::<DhcpRange>().err()
            }
            (DialogKind::AddHost { taken }, FieldKey::Name) => {
                check_name(text).err().or_else(|| {
                    taken
                        .iter()
                        .any(|t| t == text)
                        .then(|| format!("a host named {text} exists; pick another name"))
                })
            }
            (DialogKind::AddHost { .. }, FieldKey::Uri) => check_uri(text).err(),
            _ => None,
        }
    }

    fn hint(&self, key: FieldKey) -> String {
        match (&self.kind, key) {
            (DialogKind::AddDisk(add), _) => add.hint(key),
            (DialogKind::RemoveDisk(remove), _) => remove.hint(key),
            (DialogKind::CreateVolume { .. }, FieldKey::Name) => {
                ".qcow2 or .raw names choose the format".into()
            }
            (DialogKind::CreateVolume { .. }, FieldKey::Size) => "like 512M, 10G, 1T".into(),
            (_, FieldKey::Format) => "Space or ←/→ switches".into(),
            (DialogKind::CreateVolume { .. }, FieldKey::Preallocate) => {
                "reserve all space now (slower to create, never runs out later)".into()
            }
            (DialogKind::ResizeVolume { .. }, FieldKey::Size) => {
                "a size (20G) or growth (+5G)".into()
            }
            (DialogKind::ResizeVolume { .. }, FieldKey::Shrink) => {
                "refused anyway if data lies beyond the new end".into()
            }
            (DialogKind::CloneVolume { volume, .. }, FieldKey::Linked) => format!(
                "instant; {} must then stay unchanged (vmux refuses writes to it)",
                volume.name
            ),
            (DialogKind::UploadVolume { .. }, FieldKey::Path) => {
                "raw or qcow2 image on this host".into()
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::Mode) => "Space or ←/→ switches".into(),
            (DialogKind::DefineNetwork { .. }, FieldKey::Bridge) => {
                if self.mode() == NetworkMode::Bridge {
                    "an existing host bridge, like br0".into()
                } else {
                    "empty: vmux picks a free name and creates it at start".into()
                }
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::Subnet) => {
                "guests' subnet, like 10.77.0.0/24".into()
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::Gateway) => {
                "empty: the subnet's first address".into()
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::DhcpRange) => {
                "empty: the rest of the subnet, or like 10.77.0.100-10.77.0.200".into()
            }
            (DialogKind::DefineNetwork { .. }, FieldKey::Autostart) => {
                "start it with `vmux autostart-all` at host boot".into()
            }
            (DialogKind::AddHost { .. }, FieldKey::Name) => "shown in the HOST column".into(),
            (DialogKind::AddHost { .. }, FieldKey::Uri) => "ssh://[user@]host[:port]".into(),
            (DialogKind::AddHost { .. }, FieldKey::Autostart) => {
                "connect whenever vmux starts".into()
            }
            _ => String::new(),
        }
    }

    fn submit(&mut self) -> DialogOutcome {
        self.revalidate();
        if self.form.focus_first_error() {
            self.problem = Some("fix the field marked in red first".into());
            return DialogOutcome::None;
        }
        match self.build() {
            Ok(outcome) => outcome,
            Err(problem) => {
                self.problem = Some(problem);
                DialogOutcome::None
            }
        }
    }

    fn build(&self) -> Result<DialogOutcome, String> {
        let form = &self.form;
        let name = form.text(FieldKey::Name).to_string();
        let outcome = match &self.kind {
            DialogKind::AddHost { .. } => DialogOutcome::AddHost(HostEntry {
                name,
                uri: form.text(FieldKey::Uri).to_string(),
                autoconnect: form.flag(FieldKey::Autostart),
            }),
            DialogKind::AddDisk(add) => add.build(form)?,
            DialogKind::RemoveDisk(remove) => remove.build(form)?,
            DialogKind::CreateVolume { pool, .. } => DialogOutcome::Run(Task::CreateVolume {
                pool: pool.clone(),
                name,
                spec: VolumeSpec {
                    capacity: parse_size(form.text(FieldKey::Size))?,
                    format: self.format(),
                    preallocate: form.flag(FieldKey::Preallocate),
                },
            }),
            DialogKind::ResizeVolume { volume } => {
                let capacity = parse_new_size(form.text(FieldKey::Size), Some(volume.capacity))?;
                DialogOutcome::Run(Task::ResizeVolume {
                    pool: volume.pool.clone(),
                    name: volume.name.clone(),
                    capacity,
                    shrink: capacity < volume.capacity,
                })
            }
            DialogKind::CloneVolume { volume, .. } => DialogOutcome::Run(Task::CloneVolume {
                pool: volume.pool.clone(),
                source: volume.name.clone(),
                name,
                linked: form.flag(FieldKey::Linked),
            }),
            DialogKind::ConvertVolume { volume, .. } => DialogOutcome::Run(Task::ConvertVolume {
                pool: volume.pool.clone(),
                source: volume.name.clone(),
                name,
                format: self.format().unwrap_or(ImageFormat::Qcow2),
            }),
            DialogKind::UploadVolume { volume } => {
                let source = PathBuf::from(form.text(FieldKey::Path));
                let mut message = format!(
                    "Replace everything in {}/{} with the content of {}?\nWhat the volume holds now is lost.",
                    volume.pool,
                    volume.name,
                    source.display()
                );
                if !volume.used_by.is_empty() {
                    message.push_str(&format!(
                        "\nVM(s) {} use this volume.",
                        volume.used_by.join(", ")
                    ));
                }
                DialogOutcome::Confirm(Confirm {
                    title: "Upload into a volume".into(),
                    message,
                    ops: Vec::new(),
                    task: Some(Task::UploadVolume {
                        pool: volume.pool.clone(),
                        name: volume.name.clone(),
                        source,
                    }),
                    bulk: false,
                    remove_host: None,
                })
            }
            DialogKind::DefineNetwork { .. } => {
                DialogOutcome::Run(Task::DefineNetwork(Box::new(self.network()?)))
            }
        };
        Ok(outcome)
    }

    /// The network definition the fields describe (an empty bridge is filled in when it
    /// runs).
    fn network(&self) -> Result<NetworkConfig, String> {
        let form = &self.form;
        let name = form.text(FieldKey::Name);
        let bridge = form.text(FieldKey::Bridge);
        let mode = self.mode();
        let mut config = if mode.is_managed() {
            let subnet: Ipv4Net = form.text(FieldKey::Subnet).parse()?;
            let gateway = match form.text(FieldKey::Gateway) {
                "" => None,
                text => Some(text.parse::<Ipv4Addr>().map_err(|e| e.to_string())?),
            };
            let range = match form.text(FieldKey::DhcpRange) {
                "" => None,
                text => Some(text.parse::<DhcpRange>()?),
            };
            NetworkConfig::routed(name, mode, bridge, subnet, gateway, range)
        } else {
            NetworkConfig::bridged(name, bridge)
        };
        config.autostart = form.flag(FieldKey::Autostart);
        // The bridge name is chosen at run time when left empty; check the rest now.
        let mut probe = config.clone();
        if probe.bridge.is_empty() {
            probe.bridge = "vmux-probe".into();
        }
        probe.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::VolumeView;
    use crate::storage::{PoolInfo, PoolStatus};
    use crossterm::event::{KeyCode, KeyModifiers};

    fn press(dialog: &mut Dialog, code: KeyCode) -> DialogOutcome {
        dialog.handle_key(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_text(dialog: &mut Dialog, text: &str) {
        for c in text.chars() {
            press(dialog, KeyCode::Char(c));
        }
    }

    fn clear(dialog: &mut Dialog) {
        dialog
            .form
            .handle_key(&KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        dialog.revalidate();
    }

    fn volume(name: &str) -> VolumeInfo {
        VolumeInfo {
            pool: "default".into(),
            name: name.into(),
            path: PathBuf::from("/p").join(name),
            format: ImageFormat::Qcow2,
            capacity: 10 << 30,
            allocation: 1 << 30,
            backing: None,
            backing_refused: None,
            cluster_size: Some(65536),
            internal_snapshots: 0,
            used_by: Vec::new(),
            running: Vec::new(),
            backing_of: Vec::new(),
        }
    }

    fn pool(volumes: &[&str]) -> PoolView {
        PoolView {
            info: PoolInfo {
                status: PoolStatus {
                    name: "default".into(),
                    path: "/p".into(),
                    active: true,
                    autostart: true,
                },
                capacity: 100 << 30,
                allocation: 40 << 30,
                available: 60 << 30,
                volumes: volumes.len(),
            },
            volumes: volumes
                .iter()
                .map(|n| VolumeView {
                    name: n.to_string(),
                    info: Ok(volume(n)),
                })
                .collect(),
            error: None,
        }
    }

    #[test]
    fn new_volume_names_avoid_taken_ones_and_enter_creates() {
        let mut dialog = Dialog::create_volume(&pool(&["vol1.qcow2"]));
        assert_eq!(dialog.form.text(FieldKey::Name), "vol2.qcow2");
        match press(&mut dialog, KeyCode::Enter) {
            DialogOutcome::Run(Task::CreateVolume { name, spec, .. }) => {
                assert_eq!(name, "vol2.qcow2");
                assert_eq!(spec.capacity, 10 << 30);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_taken_name_is_explained_and_blocks_enter() {
        let mut dialog = Dialog::create_volume(&pool(&["web.qcow2"]));
        clear(&mut dialog);
        type_text(&mut dialog, "web.qcow2");
        let error = dialog
            .form
            .field(FieldKey::Name)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("already has"));
        assert_eq!(press(&mut dialog, KeyCode::Enter), DialogOutcome::None);
        assert!(dialog.problem.is_some());
    }

    #[test]
    fn preallocating_more_than_is_free_is_refused_inline() {
        let mut dialog = Dialog::create_volume(&pool(&[]));
        press(&mut dialog, KeyCode::Down);
        clear(&mut dialog);
        type_text(&mut dialog, "100G");
        press(&mut dialog, KeyCode::Down);
        press(&mut dialog, KeyCode::Down);
        press(&mut dialog, KeyCode::Char(' '));
        let error = dialog
            .form
            .field(FieldKey::Size)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("60G free"));
    }

    #[test]
    fn a_format_against_the_name_is_refused() {
        let mut dialog = Dialog::create_volume(&pool(&[]));
        dialog.form.focus = 2;
        press(&mut dialog, KeyCode::Char(' '));
        let error = dialog
            .form
            .field(FieldKey::Format)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("qcow2"));
    }

    #[test]
    fn shrinking_needs_the_toggle() {
        let mut dialog = Dialog::resize_volume(&volume("a.qcow2"));
        clear(&mut dialog);
        type_text(&mut dialog, "5G");
        assert!(dialog.form.has_errors());
        press(&mut dialog, KeyCode::Down);
        press(&mut dialog, KeyCode::Char(' '));
        match press(&mut dialog, KeyCode::Enter) {
            DialogOutcome::Run(Task::ResizeVolume {
                capacity, shrink, ..
            }) => {
                assert_eq!(capacity, 5 << 30);
                assert!(shrink);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plus_size_grows_from_the_current_size() {
        assert_eq!(parse_new_size("+5G", Some(10 << 30)), Ok(15 << 30));
        assert_eq!(parse_new_size("5G", Some(10 << 30)), Ok(5 << 30));
    }

    #[test]
    fn resizing_a_disk_of_a_running_vm_is_refused_inline() {
        let mut busy = volume("a.qcow2");
        busy.running = vec!["web1".into()];
        let dialog = Dialog::resize_volume(&busy);
        let error = dialog
            .form
            .field(FieldKey::Size)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("web1"));
    }

    #[test]
    fn a_linked_clone_needs_a_qcow2_name() {
        let mut dialog = Dialog::clone_volume(&pool(&["a.qcow2"]), &volume("a.qcow2"));
        assert_eq!(dialog.form.text(FieldKey::Name), "a-clone.qcow2");
        clear(&mut dialog);
        type_text(&mut dialog, "b.raw");
        press(&mut dialog, KeyCode::Down);
        press(&mut dialog, KeyCode::Char(' '));
        assert!(dialog.form.has_errors());
    }

    #[test]
    fn convert_suggests_the_other_format() {
        let dialog = Dialog::convert_volume(&pool(&["a.qcow2"]), &volume("a.qcow2"));
        assert_eq!(dialog.form.text(FieldKey::Name), "a.raw");
        assert_eq!(dialog.form.choice(FieldKey::Format), Some("raw"));
    }

    #[test]
    fn upload_asks_before_replacing() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let mut dialog = Dialog::upload_volume(&volume("a.qcow2"));
        dialog.paste(&file.path().display().to_string());
        match press(&mut dialog, KeyCode::Enter) {
            DialogOutcome::Confirm(confirm) => {
                assert!(confirm.message.contains("lost"));
                assert!(matches!(confirm.task, Some(Task::UploadVolume { .. })));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn network_subnets_avoid_defined_ones_and_bridge_mode_hides_them() {
        let mut dialog = Dialog::define_network(vec![NetworkConfig::default_network()], Vec::new());
        assert_eq!(dialog.form.text(FieldKey::Subnet), "192.168.124.0/24");
        dialog.form.set_text(FieldKey::Subnet, "192.168.123.0/25");
        dialog.revalidate();
        let error = dialog
            .form
            .field(FieldKey::Subnet)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("default"));
        dialog.form.focus = 1;
        press(&mut dialog, KeyCode::Left);
        assert_eq!(dialog.form.choice(FieldKey::Mode), Some("bridge"));
        assert!(
            dialog
                .form
                .field(FieldKey::Subnet)
                .is_some_and(|f| f.hidden)
        );
        assert!(
            dialog
                .form
                .field(FieldKey::Bridge)
                .is_some_and(|f| f.error.is_some())
        );
    }

    #[test]
    fn a_subnet_the_host_routes_is_refused_and_not_suggested() {
        let lan = Route {
            destination: "192.168.124.0/22".parse().expect("subnet"),
            interface: "eth0".into(),
        };
        let mut dialog = Dialog::define_network(Vec::new(), vec![lan]);
        assert_eq!(dialog.form.text(FieldKey::Subnet), "192.168.128.0/24");
        dialog.form.set_text(FieldKey::Subnet, "192.168.125.0/24");
        dialog.revalidate();
        let error = dialog
            .form
            .field(FieldKey::Subnet)
            .and_then(|f| f.error.clone())
            .expect("refused");
        assert!(
            error.contains("host route 192.168.124.0/22 on eth0"),
            "{error}"
        );
    }

    #[test]
    fn a_nat_network_with_an_empty_bridge_is_built() {
        let mut dialog = Dialog::define_network(Vec::new(), Vec::new());
        match press(&mut dialog, KeyCode::Enter) {
            DialogOutcome::Run(Task::DefineNetwork(config)) => {
                assert_eq!(config.name, "net1");
                assert_eq!(config.mode, NetworkMode::Nat);
                assert!(config.bridge.is_empty());
                assert_eq!(config.gateway, Some(Ipv4Addr::new(192, 168, 124, 1)));
            }
            other => panic!("{other:?}"),
        }
    }
}
