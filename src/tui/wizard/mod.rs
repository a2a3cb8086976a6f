//! The creation wizard (`n`: name → install from → [cloud-init] → CPUs and memory → disks →
//! network → review) and the edit form (`e`), which share one set of fields, one validation
//! and one way to build a [`VmConfig`]. The "disk image" source and its cloud-init step live
//! in [`image`]. Each field is checked as it is typed and says what is wrong and how
//! to fix it; Esc goes back a step keeping everything typed. A small file picker fills the
//! kernel and initrd paths. The disk step picks existing volumes and can create a new one; the
//! network step (shown when networks are defined) picks networks, each becoming a NIC with a
//! fresh MAC when the VM is created; both steps' checklists are in [`devices`].

pub mod devices;
mod image;

use super::action::{DirEntry, NewVolume};
use super::backends::{NetworkSnapshot, StorageSnapshot};
use super::hosts::id::HostId;
use super::image_setup::ImageSetup;
use super::input::{Edit, LineInput};
use crate::config::{
    BootConfig, DiskConfig, VmConfig, format_size, parse_size, validate_name, validate_volume_name,
};
use crate::engine::layout::MAX_VCPUS;
use crate::storage::{ImageFormat, VolumeSpec};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use devices::{Checklist, network_items, volume_items};
use std::path::{Path, PathBuf};

/// Fields of a VM definition as the wizard shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldId {
    /// VM name.
    Name,
    /// Demo or kernel.
    Source,
    /// Kernel path.
    Kernel,
    /// Initrd path.
    Initrd,
    /// Kernel command line.
    Cmdline,
    /// vCPUs at boot.
    Vcpus,
    /// Most vCPUs (hot-add limit).
    MaxVcpus,
    /// Guest RAM.
    Memory,
    /// Autostart flag.
    Autostart,
    /// Start once created.
    StartNow,
    /// Attach the console once started.
    AttachNow,
    /// Existing volumes to attach.
    Volumes,
    /// Create a new volume for the VM.
    NewDisk,
    /// The new volume's pool.
    DiskPool,
    /// The new volume's name.
    DiskName,
    /// The new volume's size.
    DiskSize,
    /// The new volume's format.
    DiskFormat,
    /// Networks to attach.
    Networks,
    /// Start the chosen networks that are not started, before the VM (shown on the review
    /// only when one is needed).
    StartNetworks,
    /// The disk image: a pool volume, or a file.
    ImageFrom,
    /// The image file's path.
    ImageFile,
    /// Linked overlay, copy, or the volume itself.
    ImageMode,
    /// cloud-init: the user to create.
    CiUser,
    /// cloud-init: the SSH public key file.
    CiKey,
    /// cloud-init: no password, or a generated root password.
    CiPassword,
    /// cloud-init: the guest's host name.
    CiHostname,
}

/// Boot source choices, in the order of the `Source` field.
pub const SOURCES: &[&str] = &[
    "built-in demo guest",
    "Linux kernel (+ initrd)",
    "disk image (a cloud image, set up by cloud-init)",
];
/// Format choices of the new volume, in the order of the `DiskFormat` field.
pub const DISK_FORMATS: [ImageFormat; 2] = [ImageFormat::Qcow2, ImageFormat::Raw];

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Free text.
    Text(LineInput),
    /// On/off.
    Toggle(bool),
    /// One of the field's options ([`Wizard::options`]).
    Choice(usize),
    /// Things to tick.
    Checklist(Checklist),
}

/// One field with its current problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Which field.
    pub id: FieldId,
    /// The value.
    pub value: Value,
    /// What is wrong with it now, if anything.
    pub error: Option<String>,
}

impl FieldId {
    /// Label shown left of the field.
    pub fn label(self) -> &'static str {
        match self {
            FieldId::Name => "Name",
            FieldId::Source => "Install from",
            FieldId::Kernel => "Kernel",
            FieldId::Initrd => "Initrd",
            FieldId::Cmdline => "Command line",
            FieldId::Vcpus => "vCPUs",
            FieldId::MaxVcpus => "Max vCPUs",
            FieldId::Memory => "Memory",
            FieldId::Autostart => "Autostart",
            FieldId::StartNow => "Start now",
            FieldId::AttachNow => "Attach console",
            FieldId::Volumes => "Volumes",
            FieldId::NewDisk => "New volume",
            FieldId::DiskPool => "Pool",
            FieldId::DiskName => "Volume name",
            FieldId::DiskSize => "Size",
            FieldId::DiskFormat => "Format",
            FieldId::Networks => "Networks",
            FieldId::StartNetworks => "Start networks",
            FieldId::ImageFrom => "Image",
            FieldId::ImageFile => "Image file",
            FieldId::ImageMode => "Use it as",
            FieldId::CiUser => "User",
            FieldId::CiKey => "SSH key",
            FieldId::CiPassword => "Password",
            FieldId::CiHostname => "Host name",
        }
    }

    /// Whether the file picker can fill this field.
    pub fn is_path(self) -> bool {
        matches!(
            self,
            FieldId::Kernel | FieldId::Initrd | FieldId::ImageFile | FieldId::CiKey
        )
    }
}

/// Wizard steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The name.
    Name,
    /// Install from: the boot source.
    Boot,
    /// cloud-init settings (disk images only).
    CloudInit,
    /// vCPUs and memory.
    Resources,
    /// Existing volumes and a new one.
    Disks,
    /// Networks (when any is defined).
    Network,
    /// Summary, equivalent command, start/attach choices.
    Review,
    /// The single page of the edit form.
    Edit,
}

impl Step {
    /// Title shown at the top of the dialog.
    pub fn title(self) -> &'static str {
        match self {
            Step::Name => "Name",
            Step::Boot => "Install from",
            Step::CloudInit => "Cloud-init",
            Step::Resources => "CPUs, memory",
            Step::Disks => "Disks",
            Step::Network => "Network",
            Step::Review => "Review",
            Step::Edit => "Edit definition",
        }
    }
}

/// A pool the new volume can go in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolChoice {
    name: String,
    taken: Vec<String>,
}

/// A small directory browser for path fields.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePicker {
    /// The field it fills.
    pub target: FieldId,
    /// The directory shown.
    pub dir: PathBuf,
    /// Its entries (directories first); empty while loading.
    pub entries: Vec<DirEntry>,
    /// Highlighted entry.
    pub selected: usize,
    /// Still waiting for the listing.
    pub loading: bool,
    /// Why the directory could not be read.
    pub error: Option<String>,
}

/// What a key in the wizard asks of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing beyond redrawing.
    None,
    /// Close the wizard without doing anything.
    Cancel,
    /// List this directory for the file picker.
    ListDir(PathBuf),
    /// Create this VM (creation wizard).
    Create {
        /// The definition.
        config: Box<VmConfig>,
        /// Start it.
        start: bool,
        /// Attach its console.
        attach: bool,
        /// A volume to create first (already among the config's disks).
        new_volume: Option<NewVolume>,
        /// Networks to give NICs on.
        networks: Vec<String>,
        /// Networks to start before the VM (the chosen ones that are not started).
        start_networks: Vec<String>,
        /// For the disk-image source: the import and cloud-init settings.
        image: Option<Box<ImageSetup>>,
    },
    /// Save this definition (edit form).
    Save(Box<VmConfig>),
}

/// The wizard or the edit form. Owned by the UI thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Wizard {
    /// The current step.
    pub step: Step,
    /// All fields (some hidden depending on step and boot source).
    pub fields: Vec<Field>,
    /// Index into [`Wizard::visible`] of the focused field.
    pub focus: usize,
    /// The file picker, when open.
    pub picker: Option<FilePicker>,
    /// A problem with the whole definition (shown on Review / Edit).
    pub problem: Option<String>,
    /// Why the last key did nothing, until the next key.
    pub notice: Option<String>,
    /// Names already defined (a new VM must not reuse one).
    existing: Vec<String>,
    /// Editing this definition (None: creating); its disks and NICs are kept.
    editing: Option<Box<VmConfig>>,
    /// Active pools, for the new volume.
    pools: Vec<PoolChoice>,
    /// The new volume's name follows the VM's name until the user types one.
    disk_name_auto: bool,
    /// Networks defined but not started (a VM on one cannot start).
    inactive_networks: Vec<String>,
    /// Readable volumes of active pools (`pool/volume`), for the image choice.
    image_volumes: Vec<String>,
    /// The cloud-init host name follows the VM's name until the user types one.
    hostname_auto: bool,
    /// Where the file browser opens when the field names no directory.
    browse_dir: PathBuf,
    /// The host the VM is made (or edited) on; its storage and networks fill the choices.
    pub host: HostId,
}

fn text(id: FieldId, value: &str) -> Field {
    Field {
        id,
        value: Value::Text(LineInput::new(value)),
        error: None,
    }
}

fn toggle(id: FieldId, on: bool) -> Field {
    Field {
        id,
        value: Value::Toggle(on),
        error: None,
    }
}

fn boot_fields(config: &VmConfig) -> Vec<Field> {
    let (source, kernel, initrd, cmdline) = match &config.boot {
        BootConfig::Demo => (0, String::new(), String::new(), "console=ttyS0".to_string()),
        BootConfig::Image { .. } => (
            image::IMAGE_SOURCE,
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
    vec![
        Field {
            id: FieldId::Source,
            value: Value::Choice(source),
            error: None,
        },
        text(FieldId::Kernel, &kernel),
        text(FieldId::Initrd, &initrd),
        text(FieldId::Cmdline, &cmdline),
        text(FieldId::Vcpus, &config.vcpus.to_string()),
        text(FieldId::MaxVcpus, &config.max_vcpus.to_string()),
        text(FieldId::Memory, &format_size(config.memory)),
    ]
}

fn checklist(id: FieldId) -> Field {
    Field {
        id,
        value: Value::Checklist(Checklist::default()),
        error: None,
    }
}

fn choice(id: FieldId) -> Field {
    Field {
        id,
        value: Value::Choice(0),
        error: None,
    }
}

impl Wizard {
    /// The creation wizard, with defaults filled in; `existing` are the names in use,
    /// `storage` and `networks` what the disk and network steps offer (both are refreshed
    /// with [`Wizard::set_storage`] and [`Wizard::set_networks`]).
    pub fn create(
        existing: Vec<String>,
        storage: &StorageSnapshot,
        networks: &NetworkSnapshot,
    ) -> Wizard {
        let defaults = VmConfig::new("", BootConfig::Demo);
        let mut fields = vec![text(FieldId::Name, "")];
        fields.extend(boot_fields(&defaults));
        fields.extend([
            checklist(FieldId::Volumes),
            toggle(FieldId::NewDisk, false),
            choice(FieldId::DiskPool),
            text(FieldId::DiskName, ""),
            text(FieldId::DiskSize, "10G"),
            choice(FieldId::DiskFormat),
            checklist(FieldId::Networks),
        ]);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        fields.extend(image::image_fields(home.as_deref()));
        fields.push(toggle(FieldId::Autostart, false));
        fields.push(toggle(FieldId::StartNow, true));
        fields.push(toggle(FieldId::StartNetworks, false));
        fields.push(toggle(FieldId::AttachNow, true));
        let mut wizard = Wizard {
            step: Step::Name,
            fields,
            focus: 0,
            picker: None,
            problem: None,
            notice: None,
            existing,
            editing: None,
            pools: Vec::new(),
            disk_name_auto: true,
            inactive_networks: Vec::new(),
            image_volumes: Vec::new(),
            hostname_auto: true,
            browse_dir: PathBuf::from("/"),
            host: HostId::Local,
        };
        wizard.suggest_name();
        wizard.set_storage(storage);
        wizard.set_networks(networks);
        wizard
    }

    /// Fresh pools and volumes for the disk step; ticks and choices are kept.
    pub fn set_storage(&mut self, storage: &StorageSnapshot) {
        let chosen = self
            .options(FieldId::DiskPool)
            .get(self.choice_index(FieldId::DiskPool))
            .cloned();
        self.pools = storage
            .pools
            .iter()
            .filter(|p| p.active())
            .map(|p| PoolChoice {
                name: p.name().to_string(),
                taken: p.volumes.iter().map(|v| v.name.clone()).collect(),
            })
            .collect();
        let index = chosen
            .or_else(|| Some(crate::config::DEFAULT_POOL.to_string()))
            .and_then(|name| self.pools.iter().position(|p| p.name == name))
            .unwrap_or(0);
        if let Some(Value::Choice(i)) = self.value_mut(FieldId::DiskPool) {
            *i = index;
        }
        if let Some(Value::Checklist(list)) = self.value_mut(FieldId::Volumes) {
            list.replace(volume_items(storage));
        }
        let image = self.chosen(FieldId::ImageFrom);
        self.image_volumes = image::image_volumes(storage);
        let index = image
            .and_then(|chosen| {
                self.options(FieldId::ImageFrom)
                    .iter()
                    .position(|o| *o == chosen)
            })
            .unwrap_or(0);
        if let Some(Value::Choice(i)) = self.value_mut(FieldId::ImageFrom) {
            *i = index;
        }
        self.revalidate();
    }

    /// Fresh networks for the network step; ticks are kept.
    pub fn set_networks(&mut self, networks: &NetworkSnapshot) {
        if let Some(Value::Checklist(list)) = self.value_mut(FieldId::Networks) {
            list.replace(network_items(networks));
        }
        self.inactive_networks = networks
            .networks
            .iter()
            .filter(|n| n.active.is_none())
            .map(|n| n.config.name.clone())
            .collect();
        self.revalidate();
    }

    /// The steps of this wizard, in order: the network step only when networks exist.
    pub fn steps(&self) -> Vec<Step> {
        if self.editing.is_some() {
            return vec![Step::Edit];
        }
        let mut steps = vec![Step::Name, Step::Boot];
        if self.image_boot() {
            steps.push(Step::CloudInit);
        }
        steps.extend([Step::Resources, Step::Disks]);
        if self
            .checklist(FieldId::Networks)
            .is_some_and(|l| !l.items.is_empty())
        {
            steps.push(Step::Network);
        }
        steps.push(Step::Review);
        steps
    }

    /// The checklist field `id`.
    pub fn checklist(&self, id: FieldId) -> Option<&Checklist> {
        match self.field(id).map(|f| &f.value) {
            Some(Value::Checklist(list)) => Some(list),
            _ => None,
        }
    }

    /// The words a choice field cycles through.
    pub fn options(&self, id: FieldId) -> Vec<String> {
        match id {
            FieldId::Source => SOURCES.iter().map(|s| s.to_string()).collect(),
            FieldId::DiskPool => self.pools.iter().map(|p| p.name.clone()).collect(),
            FieldId::DiskFormat => DISK_FORMATS.iter().map(|f| f.to_string()).collect(),
            FieldId::ImageFrom | FieldId::ImageMode | FieldId::CiPassword => self.image_options(id),
            _ => Vec::new(),
        }
    }

    fn choice_index(&self, id: FieldId) -> usize {
        match self.field(id).map(|f| &f.value) {
            Some(Value::Choice(i)) => *i,
            _ => 0,
        }
    }

    /// The chosen word of choice field `id`.
    pub fn chosen(&self, id: FieldId) -> Option<String> {
        self.options(id).get(self.choice_index(id)).cloned()
    }

    fn disk_format(&self) -> ImageFormat {
        DISK_FORMATS
            .get(self.choice_index(FieldId::DiskFormat))
            .copied()
            .unwrap_or(ImageFormat::Qcow2)
    }

    /// The volume the wizard will create, when asked to.
    pub fn new_volume(&self) -> Option<NewVolume> {
        if !self.flag(FieldId::NewDisk) {
            return None;
        }
        Some(NewVolume {
            pool: self.chosen(FieldId::DiskPool)?,
            name: self.text(FieldId::DiskName).trim().to_string(),
            spec: VolumeSpec {
                capacity: parse_size(self.text(FieldId::DiskSize).trim()).ok()?,
                format: Some(self.disk_format()),
                preallocate: false,
            },
        })
    }

    /// The ticked existing volumes, as `pool/volume`.
    pub fn chosen_volumes(&self) -> Vec<String> {
        self.checklist(FieldId::Volumes)
            .map(|l| l.checked().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The ticked networks (only while the network step is part of the wizard).
    pub fn chosen_networks(&self) -> Vec<String> {
        if !self.steps().contains(&Step::Network) {
            return Vec::new();
        }
        self.checklist(FieldId::Networks)
            .map(|l| l.checked().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `<vm>.qcow2` (or `.raw`), made unique in the chosen pool.
    fn auto_disk_name(&self) -> String {
        let vm = self.text(FieldId::Name).trim();
        let vm = if vm.is_empty() { "disk" } else { vm };
        let ext = self.disk_format().as_str();
        let taken = self
            .pools
            .get(self.choice_index(FieldId::DiskPool))
            .map(|p| p.taken.clone())
            .unwrap_or_default();
        (1..)
            .map(|i| {
                if i == 1 {
                    format!("{vm}.{ext}")
                } else {
                    format!("{vm}-{i}.{ext}")
                }
            })
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| format!("{vm}.{ext}"))
    }

    /// The file browser opens in `dir` (the directory vmux was started in) when the path
    /// field does not name a directory of its own.
    pub fn browse_from(&mut self, dir: &Path) {
        self.browse_dir = dir.to_path_buf();
    }

    /// The edit form for an existing definition (its disks and NICs are kept as they are).
    pub fn edit(config: &VmConfig) -> Wizard {
        let mut fields = boot_fields(config);
        fields.push(toggle(FieldId::Autostart, config.autostart));
        let mut wizard = Wizard {
            step: Step::Edit,
            fields,
            focus: 0,
            picker: None,
            problem: None,
            notice: None,
            existing: Vec::new(),
            editing: Some(Box::new(config.clone())),
            pools: Vec::new(),
            disk_name_auto: false,
            inactive_networks: Vec::new(),
            image_volumes: Vec::new(),
            hostname_auto: false,
            browse_dir: PathBuf::from("/"),
            host: HostId::Local,
        };
        wizard.revalidate();
        wizard
    }

    /// The VM being edited, for the edit form.
    pub fn editing(&self) -> Option<&str> {
        self.editing.as_ref().map(|c| c.name.as_str())
    }

    /// Proposes `vm1`, `vm2`, ... (the first unused).
    fn suggest_name(&mut self) {
        let name = (1..)
            .map(|i| format!("vm{i}"))
            .find(|n| !self.existing.contains(n))
            .unwrap_or_default();
        if let Some(Value::Text(input)) = self.value_mut(FieldId::Name) {
            input.set(&name);
        }
    }

    /// The field `id`.
    pub fn field(&self, id: FieldId) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    fn value_mut(&mut self, id: FieldId) -> Option<&mut Value> {
        self.fields
            .iter_mut()
            .find(|f| f.id == id)
            .map(|f| &mut f.value)
    }

    /// The text of field `id` ("" for non-text fields).
    pub fn text(&self, id: FieldId) -> &str {
        match self.field(id).map(|f| &f.value) {
            Some(Value::Text(input)) => input.text(),
            _ => "",
        }
    }

    /// Whether toggle `id` is on.
    pub fn flag(&self, id: FieldId) -> bool {
        matches!(self.field(id).map(|f| &f.value), Some(Value::Toggle(true)))
    }

    /// Whether the kernel boot source is chosen.
    pub fn kernel_boot(&self) -> bool {
        matches!(
            self.field(FieldId::Source).map(|f| &f.value),
            Some(Value::Choice(1))
        )
    }

    /// Fields shown on the current step, in order.
    pub fn visible(&self) -> Vec<FieldId> {
        let boot = if self.kernel_boot() {
            vec![
                FieldId::Source,
                FieldId::Kernel,
                FieldId::Initrd,
                FieldId::Cmdline,
            ]
        } else if self.image_boot() && self.editing.is_none() {
            self.image_visible()
        } else {
            vec![FieldId::Source]
        };
        let resources = [FieldId::Vcpus, FieldId::MaxVcpus, FieldId::Memory];
        match self.step {
            Step::Name => vec![FieldId::Name],
            Step::Boot => boot,
            Step::CloudInit => self.cloud_init_visible(),
            Step::Resources => resources.to_vec(),
            Step::Disks => {
                let mut ids = vec![FieldId::Volumes, FieldId::NewDisk];
                if self.flag(FieldId::NewDisk) {
                    ids.extend([
                        FieldId::DiskPool,
                        FieldId::DiskName,
                        FieldId::DiskSize,
                        FieldId::DiskFormat,
                    ]);
                }
                ids
            }
            Step::Network => vec![FieldId::Networks],
            Step::Review => {
                let mut ids = vec![FieldId::Autostart, FieldId::StartNow];
                if self.flag(FieldId::StartNow) {
                    if !self.inactive_chosen().is_empty() {
                        ids.push(FieldId::StartNetworks);
                    }
                    ids.push(FieldId::AttachNow);
                }
                ids
            }
            Step::Edit => {
                let mut ids = boot;
                ids.extend(resources);
                ids.push(FieldId::Autostart);
                ids
            }
        }
    }

    /// The chosen networks that are not started.
    pub fn inactive_chosen(&self) -> Vec<String> {
        self.chosen_networks()
            .into_iter()
            .filter(|n| self.inactive_networks.contains(n))
            .collect()
    }

    /// The networks the wizard will start before the VM.
    pub fn networks_to_start(&self) -> Vec<String> {
        if self.flag(FieldId::StartNow) && self.flag(FieldId::StartNetworks) {
            self.inactive_chosen()
        } else {
            Vec::new()
        }
    }

    /// Why the current step cannot go on, and what to do, read from the fields as they are
    /// now (so it is never stale): the first visible field's problem, else the definition's.
    pub fn step_problem(&self) -> Option<String> {
        self.visible()
            .into_iter()
            .filter_map(|id| self.field(id))
            .find_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.id.label())))
            .or_else(|| self.problem.clone())
    }

    /// The focused field.
    pub fn focused(&self) -> Option<FieldId> {
        self.visible().get(self.focus).copied()
    }

    /// Checks every field, recording each problem beside its field, then the whole
    /// definition. Path fields are checked on disk (they must name existing files).
    pub fn revalidate(&mut self) {
        self.follow_hostname();
        if self.disk_name_auto && self.editing.is_none() {
            let name = self.auto_disk_name();
            if let Some(Value::Text(input)) = self.value_mut(FieldId::DiskName) {
                input.set(&name);
            }
        }
        let errors: Vec<Option<String>> = self.fields.iter().map(|f| self.check(f.id)).collect();
        for (field, error) in self.fields.iter_mut().zip(errors) {
            field.error = error;
        }
        self.problem = match self.build() {
            Ok(config) => config.validate().err(),
            Err(_) => None,
        };
    }

    fn check(&self, id: FieldId) -> Option<String> {
        let value = self.text(id).trim();
        if let Some(problem) = self.check_image(id) {
            return Some(problem);
        }
        match id {
            FieldId::Name => validate_name(value).err().or_else(|| {
                self.existing
                    .iter()
                    .any(|n| n == value)
                    .then(|| format!("a VM named '{value}' already exists; pick another name"))
            }),
            FieldId::Kernel if self.kernel_boot() => check_path(value, true),
            FieldId::Initrd if self.kernel_boot() => check_path(value, false),
            FieldId::Vcpus => check_count(value, "vCPUs").err(),
            FieldId::MaxVcpus => {
                let max = match check_count(value, "max vCPUs") {
                    Ok(max) => max,
                    Err(e) => return Some(e),
                };
                let vcpus = check_count(self.text(FieldId::Vcpus).trim(), "vCPUs").ok()?;
                (max < vcpus)
                    .then(|| format!("must be at least vCPUs ({vcpus}); raise it to hot-add later"))
            }
            FieldId::Memory => match parse_size(value) {
                Err(e) => Some(e),
                Ok(bytes) if bytes < 16 << 20 => Some("give at least 16M".into()),
                Ok(bytes) if bytes % (2 << 20) != 0 => Some(format!(
                    "must be a multiple of 2M; try {}",
                    format_size(bytes.div_ceil(2 << 20) * (2 << 20))
                )),
                Ok(_) => None,
            },
            FieldId::Volumes => self.checklist(id).and_then(Checklist::problem),
            FieldId::StartNetworks
                if self.flag(FieldId::StartNow) && !self.flag(FieldId::StartNetworks) =>
            {
                let inactive = self.inactive_chosen();
                (!inactive.is_empty()).then(|| {
                    format!(
                        "network {} is not started: tick this (Space) to start it first, or untick Start now to create the VM without starting it",
                        inactive.join(", ")
                    )
                })
            }
            _ if !self.flag(FieldId::NewDisk) => None,
            FieldId::DiskPool if self.pools.is_empty() => Some(
                "no storage pool is active; start one in the Storage pane (2) or untick New volume"
                    .into(),
            ),
            FieldId::DiskName => self.check_disk_name(value),
            FieldId::DiskSize => match parse_size(value) {
                Err(e) => Some(e),
                Ok(0) => Some("give a size above zero, like 10G".into()),
                Ok(_) => None,
            },
            _ => None,
        }
    }

    fn check_disk_name(&self, name: &str) -> Option<String> {
        if let Err(e) = validate_volume_name(name) {
            return Some(e);
        }
        let pool = self.pools.get(self.choice_index(FieldId::DiskPool))?;
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

    /// The definition the fields describe, or the first field that is wrong.
    pub fn build(&self) -> Result<VmConfig, (FieldId, String)> {
        let all = [
            FieldId::Name,
            FieldId::Kernel,
            FieldId::Initrd,
            FieldId::Vcpus,
            FieldId::MaxVcpus,
            FieldId::Memory,
            FieldId::Volumes,
            FieldId::DiskPool,
            FieldId::DiskName,
            FieldId::DiskSize,
            FieldId::ImageFile,
            FieldId::ImageMode,
            FieldId::CiUser,
            FieldId::CiKey,
            FieldId::CiHostname,
        ];
        let creating_only = [
            FieldId::Name,
            FieldId::Volumes,
            FieldId::DiskPool,
            FieldId::DiskName,
            FieldId::DiskSize,
            FieldId::ImageFile,
            FieldId::ImageMode,
            FieldId::CiUser,
            FieldId::CiKey,
            FieldId::CiHostname,
        ];
        for id in all {
            let applies = !creating_only.contains(&id) || self.editing.is_none();
            if let Some(error) = self.check(id).filter(|_| applies) {
                return Err((id, error));
            }
        }
        let name = match &self.editing {
            Some(config) => config.name.clone(),
            None => self.text(FieldId::Name).trim().to_string(),
        };
        let (disks, nics) = match &self.editing {
            Some(config) => (config.disks.clone(), config.nics.clone()),
            None => {
                let mut disks: Vec<DiskConfig> = self.image_disk().into_iter().collect();
                disks.extend(
                    self.new_volume()
                        .map(|v| DiskConfig::volume(&v.pool, &v.name)),
                );
                for key in self.chosen_volumes() {
                    if let Some((pool, volume)) = key.split_once('/') {
                        disks.push(DiskConfig::volume(pool, volume));
                    }
                }
                (disks, Vec::new())
            }
        };
        let boot = if self.kernel_boot() {
            let initrd = self.text(FieldId::Initrd).trim();
            BootConfig::Kernel {
                kernel: PathBuf::from(self.text(FieldId::Kernel).trim()),
                initrd: (!initrd.is_empty()).then(|| PathBuf::from(initrd)),
                cmdline: self.text(FieldId::Cmdline).trim().to_string(),
            }
        } else if self.image_boot() {
            let cmdline_extra = match self.editing.as_ref().map(|c| &c.boot) {
                Some(BootConfig::Image { cmdline_extra }) => cmdline_extra.clone(),
                _ => String::new(),
            };
            BootConfig::Image { cmdline_extra }
        } else {
            BootConfig::Demo
        };
        let number = |id| {
            self.text(id)
                .trim()
                .parse::<u32>()
                .map_err(|_| (id, "not a number".to_string()))
        };
        Ok(VmConfig {
            name,
            vcpus: number(FieldId::Vcpus)?,
            max_vcpus: number(FieldId::MaxVcpus)?,
            memory: parse_size(self.text(FieldId::Memory).trim())
                .map_err(|e| (FieldId::Memory, e))?,
            autostart: self.flag(FieldId::Autostart),
            boot,
            disks,
            nics,
            // A new VM's settings are sealed by the worker (see `image_setup`).
            cloud_init: self.editing.as_ref().and_then(|c| c.cloud_init.clone()),
            balloon: true,
            current_memory: None,
        })
    }

    /// Whether every field of the current step is valid.
    fn step_valid(&mut self) -> bool {
        self.revalidate();
        let visible = self.visible();
        match visible
            .iter()
            .position(|id| self.field(*id).is_some_and(|f| f.error.is_some()))
        {
            Some(bad) => {
                // The problem is shown from the field itself (`step_problem`), so it stays
                // right while storage and networks are refreshed underneath.
                self.focus = bad;
                false
            }
            None => true,
        }
    }

    /// Handles a key; the caller acts on the [`Outcome`].
    pub fn handle_key(&mut self, key: &KeyEvent) -> Outcome {
        self.notice = None;
        if self.picker.is_some() {
            return self.picker_key(key);
        }
        let shift_tab = key.code == KeyCode::BackTab
            || (key.code == KeyCode::Tab && key.modifiers.contains(KeyModifiers::SHIFT));
        let count = self.visible().len();
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // In a checklist the arrows move within it and leave it at either end.
        if let Some(id) = self.focused().filter(|id| self.checklist(*id).is_some()) {
            let delta = match key.code {
                KeyCode::Up => Some(-1),
                KeyCode::Down => Some(1),
                _ => None,
            };
            if let Some(delta) = delta
                && let Some(Value::Checklist(list)) = self.value_mut(id)
                && list.move_cursor(delta)
            {
                return Outcome::None;
            }
            if key.code == KeyCode::Up && self.focus == 0 {
                return Outcome::None;
            }
        }
        match key.code {
            KeyCode::Esc => return self.back(),
            _ if shift_tab => self.focus = (self.focus + count - 1) % count.max(1),
            KeyCode::Up => self.focus = self.focus.saturating_sub(1),
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % count.max(1),
            KeyCode::Enter => return self.advance(),
            KeyCode::Char('o') if ctrl => return self.open_picker(),
            _ => self.edit_focused(key),
        }
        Outcome::None
    }

    fn edit_focused(&mut self, key: &KeyEvent) {
        let Some(id) = self.focused() else {
            return;
        };
        let changed = match self.value_mut(id) {
            Some(Value::Text(input)) => input.handle(key) == Edit::Changed,
            Some(Value::Toggle(on)) => match key.code {
                KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right => {
                    *on = !*on;
                    true
                }
                _ => false,
            },
            Some(Value::Choice(_)) => {
                let count = self.options(id).len().max(1);
                let Some(Value::Choice(index)) = self.value_mut(id) else {
                    return;
                };
                match key.code {
                    KeyCode::Left => {
                        *index = (*index + count - 1) % count;
                        true
                    }
                    KeyCode::Char(' ') | KeyCode::Right => {
                        *index = (*index + 1) % count;
                        true
                    }
                    _ => false,
                }
            }
            Some(Value::Checklist(list)) => key.code == KeyCode::Char(' ') && list.toggle(),
            None => false,
        };
        if changed {
            if id == FieldId::DiskName {
                self.disk_name_auto = false;
            }
            if id == FieldId::CiHostname {
                self.hostname_auto = false;
            }
            self.revalidate();
        }
    }

    /// Pasted text goes into the focused text field.
    pub fn paste(&mut self, text: &str) {
        if let Some(id) = self.focused()
            && let Some(Value::Text(input)) = self.value_mut(id)
        {
            input.insert_str(text);
            self.revalidate();
        }
    }

    fn back(&mut self) -> Outcome {
        let steps = self.steps();
        match steps.iter().position(|s| *s == self.step) {
            Some(i) if i > 0 => {
                self.step = steps[i - 1];
                self.focus = 0;
                Outcome::None
            }
            _ => Outcome::Cancel,
        }
    }

    fn advance(&mut self) -> Outcome {
        if !self.step_valid() {
            return Outcome::None;
        }
        let steps = self.steps();
        match steps.iter().position(|s| *s == self.step) {
            Some(i) if i + 1 < steps.len() => {
                self.step = steps[i + 1];
                self.focus = 0;
                Outcome::None
            }
            _ => self.finish(),
        }
    }

    fn finish(&mut self) -> Outcome {
        match self.build() {
            Err((id, error)) => {
                self.problem = Some(format!("{}: {error}", id.label()));
                Outcome::None
            }
            Ok(config) => match config.validate() {
                Err(problem) => {
                    self.problem = Some(problem);
                    Outcome::None
                }
                Ok(()) if self.editing.is_some() => Outcome::Save(Box::new(config)),
                Ok(()) => {
                    let start = self.flag(FieldId::StartNow);
                    Outcome::Create {
                        config: Box::new(config),
                        start,
                        attach: start && self.flag(FieldId::AttachNow),
                        new_volume: self.new_volume(),
                        networks: self.chosen_networks(),
                        start_networks: self.networks_to_start(),
                        image: self.image_setup().map(Box::new),
                    }
                }
            },
        }
    }

    fn open_picker(&mut self) -> Outcome {
        let Some(target) = self.focused().filter(|id| id.is_path()) else {
            self.notice = Some(
                "Ctrl-O browses for a file in the Kernel and Initrd fields (boot source: Linux kernel)"
                    .into(),
            );
            return Outcome::None;
        };
        let current = self.text(target).trim();
        let ssh_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh"));
        let dir = match ssh_dir {
            Some(ssh) if target == FieldId::CiKey && current.is_empty() && ssh.is_dir() => ssh,
            _ => start_dir(current, &self.browse_dir),
        };
        self.picker = Some(FilePicker {
            target,
            dir: dir.clone(),
            entries: Vec::new(),
            selected: 0,
            loading: true,
            error: None,
        });
        Outcome::ListDir(dir)
    }

    /// A listing arrived for the picker (ignored when it is for another directory).
    pub fn listed(&mut self, dir: &Path, result: Result<Vec<DirEntry>, String>) {
        let Some(picker) = self.picker.as_mut().filter(|p| p.dir == dir) else {
            return;
        };
        picker.loading = false;
        picker.selected = 0;
        match result {
            Ok(entries) => {
                picker.entries = entries;
                picker.error = None;
            }
            Err(e) => {
                picker.entries.clear();
                picker.error = Some(e);
            }
        }
    }

    fn picker_key(&mut self, key: &KeyEvent) -> Outcome {
        let Some(picker) = self.picker.as_mut() else {
            return Outcome::None;
        };
        // Entry 0 is always "..", so the parent is reachable with the arrows too.
        let count = picker.entries.len() + 1;
        match key.code {
            KeyCode::Esc => self.picker = None,
            KeyCode::Up => picker.selected = picker.selected.saturating_sub(1),
            KeyCode::Down => picker.selected = (picker.selected + 1).min(count - 1),
            KeyCode::PageUp => picker.selected = picker.selected.saturating_sub(10),
            KeyCode::PageDown => picker.selected = (picker.selected + 10).min(count - 1),
            KeyCode::Home => picker.selected = 0,
            KeyCode::End => picker.selected = count - 1,
            KeyCode::Backspace | KeyCode::Left => return self.picker_open_parent(),
            KeyCode::Enter | KeyCode::Right => {
                if picker.selected == 0 {
                    return self.picker_open_parent();
                }
                let Some(entry) = picker.entries.get(picker.selected - 1).cloned() else {
                    return Outcome::None;
                };
                let path = picker.dir.join(&entry.name);
                if entry.is_dir {
                    return self.picker_open(path);
                }
                if key.code == KeyCode::Enter {
                    let target = picker.target;
                    self.picker = None;
                    if let Some(Value::Text(input)) = self.value_mut(target) {
                        input.set(&path.display().to_string());
                    }
                    self.revalidate();
                }
            }
            KeyCode::Char(c) => {
                // Jump to the next entry starting with the typed letter.
                let found = picker
                    .entries
                    .iter()
                    .enumerate()
                    .cycle()
                    .skip(picker.selected)
                    .take(picker.entries.len())
                    .find(|(_, e)| e.name.starts_with(c))
                    .map(|(i, _)| i + 1);
                if let Some(i) = found {
                    picker.selected = i;
                }
            }
            _ => {}
        }
        Outcome::None
    }

    fn picker_open_parent(&mut self) -> Outcome {
        let parent = self
            .picker
            .as_ref()
            .and_then(|p| p.dir.parent().map(Path::to_path_buf));
        match parent {
            Some(parent) => self.picker_open(parent),
            None => Outcome::None,
        }
    }

    fn picker_open(&mut self, dir: PathBuf) -> Outcome {
        if let Some(picker) = self.picker.as_mut() {
            picker.dir = dir.clone();
            picker.entries.clear();
            picker.loading = true;
            picker.error = None;
            picker.selected = 0;
        }
        Outcome::ListDir(dir)
    }

    /// The `vmux create` command line that makes the same VM (after a `vmux vol-create-as`
    /// for the new volume).
    pub fn command_line(&self) -> String {
        let mut words = Vec::new();
        if let Some(volume) = self.new_volume() {
            words.extend([
                "vmux".to_string(),
                "vol-create-as".to_string(),
                shell_quote(&volume.pool),
                shell_quote(&volume.name),
                shell_quote(self.text(FieldId::DiskSize).trim()),
                "&&".to_string(),
            ]);
        }
        for network in self.networks_to_start() {
            words.extend([
                "vmux".to_string(),
                "net-start".to_string(),
                shell_quote(&network),
                "&&".to_string(),
            ]);
        }
        words.extend([
            "vmux".to_string(),
            "create".to_string(),
            shell_quote(self.text(FieldId::Name).trim()),
        ]);
        if self.image_boot() {
            let (before, image) = self.image_words(shell_quote);
            words.splice(0..0, before);
            words.extend(image);
        } else if self.kernel_boot() {
            words.push("--kernel".into());
            words.push(shell_quote(self.text(FieldId::Kernel).trim()));
            let initrd = self.text(FieldId::Initrd).trim();
            if !initrd.is_empty() {
                words.push("--initrd".into());
                words.push(shell_quote(initrd));
            }
            let cmdline = self.text(FieldId::Cmdline).trim();
            if !cmdline.is_empty() {
                words.push("--cmdline".into());
                words.push(shell_quote(cmdline));
            }
        } else {
            words.push("--demo".into());
        }
        for (flag, id) in [
            ("--vcpus", FieldId::Vcpus),
            ("--max-vcpus", FieldId::MaxVcpus),
            ("--memory", FieldId::Memory),
        ] {
            words.push(flag.into());
            words.push(shell_quote(self.text(id).trim()));
        }
        if self.flag(FieldId::Autostart) {
            words.push("--autostart".into());
        }
        let new_disk = self.new_volume().map(|v| format!("{}/{}", v.pool, v.name));
        for disk in new_disk.into_iter().chain(self.chosen_volumes()) {
            words.push("--disk".into());
            words.push(shell_quote(&disk));
        }
        for network in self.chosen_networks() {
            words.push("--network".into());
            words.push(shell_quote(&network));
        }
        if self.flag(FieldId::StartNow) {
            words.push("--start".into());
        }
        words.join(" ")
    }
}

fn check_count(text: &str, what: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err(format!("{what} must be at least 1")),
        Ok(n) if n > MAX_VCPUS => Err(format!("{what} can be at most {MAX_VCPUS}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a whole number")),
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

/// The directory the picker opens in: the field's directory when it exists, else `fallback`
/// (the directory vmux was started in).
fn start_dir(current: &str, fallback: &Path) -> PathBuf {
    let path = Path::new(current);
    let dir = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    dir.filter(|d| d.is_absolute() && d.is_dir())
        .map_or_else(|| fallback.to_path_buf(), Path::to_path_buf)
}

/// Quotes `word` for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:,+-@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn create(existing: Vec<String>) -> Wizard {
        Wizard::create(
            existing,
            &StorageSnapshot::default(),
            &NetworkSnapshot::default(),
        )
    }

    fn press(wizard: &mut Wizard, code: KeyCode) -> Outcome {
        wizard.handle_key(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_text(wizard: &mut Wizard, text: &str) {
        for c in text.chars() {
            press(wizard, KeyCode::Char(c));
        }
    }

    #[test]
    fn suggested_name_avoids_existing_ones() {
        let wizard = create(vec!["vm1".into()]);
        assert_eq!(wizard.text(FieldId::Name), "vm2");
    }

    #[test]
    fn duplicate_name_blocks_the_step_with_a_reason() {
        let mut wizard = create(vec!["web".into()]);
        if let Some(Value::Text(input)) = wizard.value_mut(FieldId::Name) {
            input.set("");
        }
        type_text(&mut wizard, "web");
        assert_eq!(press(&mut wizard, KeyCode::Enter), Outcome::None);
        assert_eq!(wizard.step, Step::Name);
        let error = wizard.field(FieldId::Name).and_then(|f| f.error.clone());
        assert!(error.expect("error shown").contains("already exists"));
    }

    #[test]
    fn escape_goes_back_keeping_input() {
        let mut wizard = create(Vec::new());
        press(&mut wizard, KeyCode::Enter);
        press(&mut wizard, KeyCode::Enter);
        assert_eq!(wizard.step, Step::Resources);
        press(&mut wizard, KeyCode::Backspace);
        press(&mut wizard, KeyCode::Backspace);
        press(&mut wizard, KeyCode::Backspace);
        press(&mut wizard, KeyCode::Char('3'));
        press(&mut wizard, KeyCode::Esc);
        assert_eq!(wizard.step, Step::Boot);
        press(&mut wizard, KeyCode::Enter);
        assert_eq!(wizard.text(FieldId::Vcpus), "3");
    }

    #[test]
    fn max_below_vcpus_is_explained() {
        let mut wizard = create(Vec::new());
        wizard.step = Step::Resources;
        if let Some(Value::Text(input)) = wizard.value_mut(FieldId::Vcpus) {
            input.set("8");
        }
        wizard.revalidate();
        let error = wizard
            .field(FieldId::MaxVcpus)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("at least vCPUs (8)"));
    }

    #[test]
    fn memory_not_aligned_suggests_a_size() {
        let mut wizard = create(Vec::new());
        if let Some(Value::Text(input)) = wizard.value_mut(FieldId::Memory) {
            input.set("100M1");
        }
        wizard.revalidate();
        assert!(
            wizard
                .field(FieldId::Memory)
                .and_then(|f| f.error.clone())
                .is_some()
        );
        if let Some(Value::Text(input)) = wizard.value_mut(FieldId::Memory) {
            input.set("101M");
        }
        wizard.revalidate();
        let error = wizard.field(FieldId::Memory).and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("try 102M"));
    }

    #[test]
    fn kernel_boot_requires_an_existing_absolute_file() {
        let mut wizard = create(Vec::new());
        wizard.step = Step::Boot;
        press(&mut wizard, KeyCode::Char(' '));
        assert!(wizard.kernel_boot());
        assert_eq!(wizard.visible().len(), 4);
        press(&mut wizard, KeyCode::Enter);
        assert_eq!(wizard.focused(), Some(FieldId::Kernel));
        type_text(&mut wizard, "/nonexistent/vmlinuz");
        let error = wizard.field(FieldId::Kernel).and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("no file at"));
    }

    #[test]
    fn review_enter_creates_with_start_and_attach() {
        let mut wizard = create(Vec::new());
        for _ in 0..4 {
            press(&mut wizard, KeyCode::Enter);
        }
        assert_eq!(wizard.step, Step::Review);
        match press(&mut wizard, KeyCode::Enter) {
            Outcome::Create {
                config,
                start,
                attach,
                ..
            } => {
                assert_eq!(config.name, "vm1");
                assert_eq!(config.boot, BootConfig::Demo);
                assert!(start && attach);
            }
            other => panic!("expected Create, got {other:?}"),
        }
    }

    #[test]
    fn command_line_matches_the_fields() {
        let wizard = create(Vec::new());
        assert_eq!(
            wizard.command_line(),
            "vmux create vm1 --demo --vcpus 1 --max-vcpus 4 --memory 256M --start"
        );
    }

    #[test]
    fn picker_fills_the_path_field() {
        let mut wizard = create(Vec::new());
        wizard.step = Step::Boot;
        press(&mut wizard, KeyCode::Char(' '));
        press(&mut wizard, KeyCode::Down);
        let outcome = wizard.handle_key(&KeyEvent::new(KeyCode::Char('o'), KeyModifiers::CONTROL));
        assert_eq!(outcome, Outcome::ListDir(PathBuf::from("/")));
        wizard.listed(
            Path::new("/"),
            Ok(vec![DirEntry {
                name: "vmlinuz".into(),
                is_dir: false,
            }]),
        );
        press(&mut wizard, KeyCode::Down);
        press(&mut wizard, KeyCode::Enter);
        assert!(wizard.picker.is_none());
        assert_eq!(wizard.text(FieldId::Kernel), "/vmlinuz");
    }

    #[test]
    fn edit_form_saves_a_changed_definition_under_the_same_name() {
        let config = VmConfig::new("web", BootConfig::Demo);
        let mut wizard = Wizard::edit(&config);
        let vcpus_index = wizard.visible().iter().position(|id| *id == FieldId::Vcpus);
        wizard.focus = vcpus_index.expect("vcpus shown");
        press(&mut wizard, KeyCode::Backspace);
        press(&mut wizard, KeyCode::Char('2'));
        match press(&mut wizard, KeyCode::Enter) {
            Outcome::Save(saved) => {
                assert_eq!(saved.name, "web");
                assert_eq!(saved.vcpus, 2);
            }
            other => panic!("expected Save, got {other:?}"),
        }
    }

    #[test]
    fn shell_quote_quotes_spaces_and_quotes() {
        assert_eq!(shell_quote("console=ttyS0"), "console=ttyS0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
