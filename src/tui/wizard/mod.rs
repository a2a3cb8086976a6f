//! The creation wizard (`n`: name → install from → [cloud-init] → CPUs and memory → disks →
//! network → review) and the edit form (`e`), which share one set of fields, one validation
//! and one way to build a [`VmConfig`]. The "disk image" source and its cloud-init step live
//! in [`image`]. Each field is checked as it is typed and says what is wrong and how
//! to fix it; Esc goes back a step keeping everything typed. A small file picker fills the
//! kernel and initrd paths. The disk step picks existing volumes and can create a new one; the
//! network step (shown when networks are defined) picks networks, each becoming a NIC with a
//! fresh MAC when the VM is created; both steps' checklist items are in [`devices`]. Every
//! step is a [`Form`] (the TUI's one form system): the wizard declares the fields
//! ([`fields`]: their kinds, problems and hints), shows those of the current step, and says
//! what Enter, Esc and Ctrl-O ([`picker`]) do; the review's shell commands are in [`command`].

mod command;
pub mod devices;
mod fields;
mod image;
mod picker;

pub use command::shell_quote;
pub use fields::memory_hint;
pub use picker::FilePicker;

use super::action::NewVolume;
use super::form::checklist::Checklist;
use super::form::{FieldKey, Form, FormField, FormKey};
use super::hosts::id::HostId;
use super::image_setup::ImageSetup;
use crate::client::{NetworkSnapshot, StorageSnapshot};
use crate::config::{BootConfig, DiskConfig, VmConfig, parse_size};
use crate::storage::{ImageFormat, VolumeSpec};
use crossterm::event::KeyEvent;
use devices::{network_items, volume_items};
use fields::{boot_fields, checklist, choice, text, toggle};
use std::path::PathBuf;

/// Boot source choices, in the order of the `Source` field.
pub const SOURCES: &[&str] = &[
    "built-in demo guest",
    "Linux kernel (+ initrd)",
    "disk image (a cloud image, set up by cloud-init)",
];
/// The `Source` choice that boots a disk image.
pub const IMAGE_SOURCE: usize = 2;
/// Format choices of the new volume, in the order of the `DiskFormat` field.
pub const DISK_FORMATS: [ImageFormat; 2] = [ImageFormat::Qcow2, ImageFormat::Raw];

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
    /// The fields of every step; those not on the current step (or not used by the chosen
    /// boot source) are hidden.
    pub form: Form,
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
        let mut fields = vec![text(FieldKey::Name, "Name", "")];
        fields.extend(boot_fields(&defaults));
        let formats: Vec<&str> = DISK_FORMATS.iter().map(|f| f.as_str()).collect();
        fields.extend([
            checklist(
                FieldKey::Volumes,
                "Volumes",
                "Existing volumes",
                "(no volumes in active pools; tick New volume to create one)",
            ),
            toggle(FieldKey::NewDisk, "New volume", false),
            choice(FieldKey::DiskPool, "Pool", &[]),
            text(FieldKey::DiskName, "Volume name", ""),
            text(FieldKey::DiskSize, "Size", "10G"),
            choice(FieldKey::DiskFormat, "Format", &formats),
            checklist(
                FieldKey::Networks,
                "Networks",
                "Networks",
                "(no networks defined)",
            ),
        ]);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        fields.extend(image::image_fields(home.as_deref()));
        fields.push(toggle(FieldKey::Autostart, "Autostart", false));
        fields.push(toggle(FieldKey::StartNow, "Start now", true));
        fields.push(toggle(FieldKey::StartNetworks, "Start networks", false));
        fields.push(toggle(FieldKey::AttachNow, "Attach console", true));
        let mut wizard = Wizard::over(fields, None);
        wizard.existing = existing;
        wizard.disk_name_auto = true;
        wizard.hostname_auto = true;
        wizard.suggest_name();
        wizard.set_storage(storage);
        wizard.set_networks(networks);
        wizard
    }

    /// A wizard on `fields`, at the first step (the edit form's page when `editing`).
    fn over(fields: Vec<FormField>, editing: Option<&VmConfig>) -> Wizard {
        let mut form = Form::new(fields);
        // ↑ on the first field stays there (as it does in a checklist).
        form.wrap_up = false;
        Wizard {
            step: if editing.is_some() {
                Step::Edit
            } else {
                Step::Name
            },
            form,
            picker: None,
            problem: None,
            notice: None,
            existing: Vec::new(),
            editing: editing.map(|c| Box::new(c.clone())),
            pools: Vec::new(),
            disk_name_auto: false,
            inactive_networks: Vec::new(),
            image_volumes: Vec::new(),
            hostname_auto: false,
            browse_dir: PathBuf::from("/"),
            host: HostId::Local,
        }
    }

    /// Fresh pools and volumes for the disk step; ticks and choices are kept.
    pub fn set_storage(&mut self, storage: &StorageSnapshot) {
        let chosen = self.chosen(FieldKey::DiskPool);
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
        let names = self.pools.iter().map(|p| p.name.clone()).collect();
        self.form.set_options(FieldKey::DiskPool, names);
        self.form.set_choice_index(FieldKey::DiskPool, index);
        if let Some(list) = self.form.checklist_mut(FieldKey::Volumes) {
            list.replace(volume_items(storage));
        }
        let image = self.chosen(FieldKey::ImageFrom);
        self.image_volumes = image::image_volumes(storage);
        let options = self.image_options(FieldKey::ImageFrom);
        let index = image
            .and_then(|chosen| options.iter().position(|o| *o == chosen))
            .unwrap_or(0);
        self.form.set_options(FieldKey::ImageFrom, options);
        self.form.set_choice_index(FieldKey::ImageFrom, index);
        self.revalidate();
    }

    /// Fresh networks for the network step; ticks are kept.
    pub fn set_networks(&mut self, networks: &NetworkSnapshot) {
        if let Some(list) = self.form.checklist_mut(FieldKey::Networks) {
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
            .checklist(FieldKey::Networks)
            .is_some_and(|l| !l.items.is_empty())
        {
            steps.push(Step::Network);
        }
        steps.push(Step::Review);
        steps
    }

    /// The checklist field `id`.
    pub fn checklist(&self, id: FieldKey) -> Option<&Checklist> {
        self.form.checklist(id)
    }

    fn choice_index(&self, id: FieldKey) -> usize {
        self.form.choice_index(id)
    }

    /// The chosen word of choice field `id`.
    pub fn chosen(&self, id: FieldKey) -> Option<String> {
        self.form.choice(id).map(str::to_string)
    }

    fn disk_format(&self) -> ImageFormat {
        DISK_FORMATS
            .get(self.choice_index(FieldKey::DiskFormat))
            .copied()
            .unwrap_or(ImageFormat::Qcow2)
    }

    /// The volume the wizard will create, when asked to.
    pub fn new_volume(&self) -> Option<NewVolume> {
        if !self.flag(FieldKey::NewDisk) {
            return None;
        }
        Some(NewVolume {
            pool: self.chosen(FieldKey::DiskPool)?,
            name: self.text(FieldKey::DiskName).to_string(),
            spec: VolumeSpec {
                capacity: parse_size(self.text(FieldKey::DiskSize)).ok()?,
                format: Some(self.disk_format()),
                preallocate: false,
            },
        })
    }

    /// The ticked existing volumes, as `pool/volume`.
    pub fn chosen_volumes(&self) -> Vec<String> {
        self.checklist(FieldKey::Volumes)
            .map(|l| l.checked().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The ticked networks (only while the network step is part of the wizard).
    pub fn chosen_networks(&self) -> Vec<String> {
        if !self.steps().contains(&Step::Network) {
            return Vec::new();
        }
        self.checklist(FieldKey::Networks)
            .map(|l| l.checked().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `<vm>.qcow2` (or `.raw`), made unique in the chosen pool.
    fn auto_disk_name(&self) -> String {
        let vm = self.text(FieldKey::Name);
        let vm = if vm.is_empty() { "disk" } else { vm };
        let ext = self.disk_format().as_str();
        let taken = self
            .pools
            .get(self.choice_index(FieldKey::DiskPool))
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

    /// The edit form for an existing definition (its disks and NICs are kept as they are).
    pub fn edit(config: &VmConfig) -> Wizard {
        let mut fields = boot_fields(config);
        fields.push(toggle(FieldKey::Autostart, "Autostart", config.autostart));
        let mut wizard = Wizard::over(fields, Some(config));
        wizard.revalidate();
        wizard.form.focus_first();
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
        self.form.set_text(FieldKey::Name, &name);
    }

    /// The field `id`.
    pub fn field(&self, id: FieldKey) -> Option<&FormField> {
        self.form.field(id)
    }

    /// The label of field `id`.
    fn label(&self, id: FieldKey) -> &'static str {
        self.field(id).map_or("", |f| f.label)
    }

    /// The trimmed text of field `id` ("" for non-text fields).
    pub fn text(&self, id: FieldKey) -> &str {
        self.form.text(id)
    }

    /// Whether toggle `id` is on.
    pub fn flag(&self, id: FieldKey) -> bool {
        self.form.flag(id)
    }

    /// Whether the kernel boot source is chosen.
    pub fn kernel_boot(&self) -> bool {
        self.choice_index(FieldKey::Source) == 1
    }

    /// Fields shown on the current step, in order.
    pub fn visible(&self) -> Vec<FieldKey> {
        let boot = if self.kernel_boot() {
            vec![
                FieldKey::Source,
                FieldKey::Kernel,
                FieldKey::Initrd,
                FieldKey::Cmdline,
            ]
        } else if self.image_boot() && self.editing.is_none() {
            self.image_visible()
        } else {
            vec![FieldKey::Source]
        };
        let resources = [FieldKey::Vcpus, FieldKey::MaxVcpus, FieldKey::Memory];
        match self.step {
            Step::Name => vec![FieldKey::Name],
            Step::Boot => boot,
            Step::CloudInit => self.cloud_init_visible(),
            Step::Resources => resources.to_vec(),
            Step::Disks => {
                let mut ids = vec![FieldKey::Volumes, FieldKey::NewDisk];
                if self.flag(FieldKey::NewDisk) {
                    ids.extend([
                        FieldKey::DiskPool,
                        FieldKey::DiskName,
                        FieldKey::DiskSize,
                        FieldKey::DiskFormat,
                    ]);
                }
                ids
            }
            Step::Network => vec![FieldKey::Networks],
            Step::Review => {
                let mut ids = vec![FieldKey::Autostart, FieldKey::StartNow];
                if self.flag(FieldKey::StartNow) {
                    if !self.inactive_chosen().is_empty() {
                        ids.push(FieldKey::StartNetworks);
                    }
                    ids.push(FieldKey::AttachNow);
                }
                ids
            }
            Step::Edit => {
                let mut ids = boot;
                ids.extend(resources);
                ids.push(FieldKey::Autostart);
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
        if self.flag(FieldKey::StartNow) && self.flag(FieldKey::StartNetworks) {
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
            .find_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.label)))
            .or_else(|| self.problem.clone())
    }

    /// The focused field.
    pub fn focused(&self) -> Option<FieldKey> {
        let visible = self.visible();
        self.form
            .focused()
            .map(|f| f.key)
            .filter(|key| visible.contains(key))
    }

    /// Shows the fields of the current step (and of the chosen boot source) and hides the
    /// rest, keeping the focus on a shown field.
    fn show_step(&mut self) {
        let visible = self.visible();
        let focused = self.form.focused().map(|f| f.key);
        for field in &mut self.form.fields {
            field.hidden = !visible.contains(&field.key);
        }
        if !focused.is_some_and(|key| self.form.focus_on(key)) {
            self.form.focus_first();
        }
    }

    /// Focuses field `id` when the current step shows it; says whether it does.
    pub fn focus_on(&mut self, id: FieldKey) -> bool {
        self.show_step();
        self.form.focus_on(id)
    }

    /// Checks every field, recording each problem beside its field, then the whole
    /// definition. Path fields are checked on disk (they must name existing files).
    pub fn revalidate(&mut self) {
        self.follow_hostname();
        if self.disk_name_auto && self.editing.is_none() {
            let name = self.auto_disk_name();
            self.form.set_text(FieldKey::DiskName, &name);
        }
        let modes = self.image_options(FieldKey::ImageMode);
        self.form.set_options(FieldKey::ImageMode, modes);
        self.show_step();
        let checked: Vec<(Option<String>, String)> = self
            .form
            .fields
            .iter()
            .map(|f| (self.check(f.key), self.hint(f.key)))
            .collect();
        let networks = self.inactive_chosen().join(", ");
        for (field, (error, hint)) in self.form.fields.iter_mut().zip(checked) {
            field.error = error;
            field.hint = hint;
            if field.key == FieldKey::StartNetworks {
                field.toggle_words = Some((
                    format!("start {networks} first"),
                    format!("{networks} not started"),
                ));
            }
        }
        self.problem = match self.build() {
            Ok(config) => config.validate().err(),
            Err(_) => None,
        };
    }

    /// The definition the fields describe, or the first field that is wrong.
    pub fn build(&self) -> Result<VmConfig, (FieldKey, String)> {
        let all = [
            FieldKey::Name,
            FieldKey::Kernel,
            FieldKey::Initrd,
            FieldKey::Vcpus,
            FieldKey::MaxVcpus,
            FieldKey::Memory,
            FieldKey::Volumes,
            FieldKey::DiskPool,
            FieldKey::DiskName,
            FieldKey::DiskSize,
            FieldKey::ImageFile,
            FieldKey::ImageMode,
            FieldKey::CiUser,
            FieldKey::CiKey,
            FieldKey::CiHostname,
        ];
        let creating_only = [
            FieldKey::Name,
            FieldKey::Volumes,
            FieldKey::DiskPool,
            FieldKey::DiskName,
            FieldKey::DiskSize,
            FieldKey::ImageFile,
            FieldKey::ImageMode,
            FieldKey::CiUser,
            FieldKey::CiKey,
            FieldKey::CiHostname,
        ];
        for id in all {
            let applies = !creating_only.contains(&id) || self.editing.is_none();
            if let Some(error) = self.check(id).filter(|_| applies) {
                return Err((id, error));
            }
        }
        let name = match &self.editing {
            Some(config) => config.name.clone(),
            None => self.text(FieldKey::Name).to_string(),
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
            let initrd = self.text(FieldKey::Initrd);
            BootConfig::Kernel {
                kernel: PathBuf::from(self.text(FieldKey::Kernel)),
                initrd: (!initrd.is_empty()).then(|| PathBuf::from(initrd)),
                cmdline: self.text(FieldKey::Cmdline).to_string(),
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
        let number = |id| self.form.number(id).map_err(|e| (id, e));
        Ok(VmConfig {
            name,
            vcpus: number(FieldKey::Vcpus)?,
            max_vcpus: number(FieldKey::MaxVcpus)?,
            memory: parse_size(self.text(FieldKey::Memory)).map_err(|e| (FieldKey::Memory, e))?,
            autostart: self.flag(FieldKey::Autostart),
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
        // The problem is shown from the field itself (`step_problem`), so it stays right
        // while storage and networks are refreshed underneath.
        !self.form.focus_first_error()
    }

    /// Handles a key; the caller acts on the [`Outcome`].
    pub fn handle_key(&mut self, key: &KeyEvent) -> Outcome {
        self.notice = None;
        if self.picker.is_some() {
            return self.picker_key(key);
        }
        self.show_step();
        match self.form.handle_key(key) {
            FormKey::Cancel => self.back(),
            FormKey::Submit => self.advance(),
            FormKey::Browse => self.open_picker(),
            FormKey::Changed => {
                self.edited();
                Outcome::None
            }
            FormKey::Moved => Outcome::None,
        }
    }

    /// The focused field changed: a typed disk or host name stops following the VM's name.
    fn edited(&mut self) {
        match self.focused() {
            Some(FieldKey::DiskName) => self.disk_name_auto = false,
            Some(FieldKey::CiHostname) => self.hostname_auto = false,
            _ => {}
        }
        self.revalidate();
    }

    /// Pasted text goes into the focused text field.
    pub fn paste(&mut self, text: &str) {
        self.show_step();
        if self.form.paste(text) == FormKey::Changed {
            self.edited();
        }
    }

    fn back(&mut self) -> Outcome {
        let steps = self.steps();
        match steps.iter().position(|s| *s == self.step) {
            Some(i) if i > 0 => {
                self.step = steps[i - 1];
                self.show_step();
                self.form.focus_first();
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
                self.show_step();
                self.form.focus_first();
                Outcome::None
            }
            _ => self.finish(),
        }
    }

    fn finish(&mut self) -> Outcome {
        match self.build() {
            Err((id, error)) => {
                self.problem = Some(format!("{}: {error}", self.label(id)));
                Outcome::None
            }
            Ok(config) => match config.validate() {
                Err(problem) => {
                    self.problem = Some(problem);
                    Outcome::None
                }
                Ok(()) if self.editing.is_some() => Outcome::Save(Box::new(config)),
                Ok(()) => {
                    let start = self.flag(FieldKey::StartNow);
                    Outcome::Create {
                        config: Box::new(config),
                        start,
                        attach: start && self.flag(FieldKey::AttachNow),
                        new_volume: self.new_volume(),
                        networks: self.chosen_networks(),
                        start_networks: self.networks_to_start(),
                        image: self.image_setup().map(Box::new),
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

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
        assert_eq!(wizard.text(FieldKey::Name), "vm2");
    }

    #[test]
    fn duplicate_name_blocks_the_step_with_a_reason() {
        let mut wizard = create(vec!["web".into()]);
        wizard.form.set_text(FieldKey::Name, "");
        type_text(&mut wizard, "web");
        assert_eq!(press(&mut wizard, KeyCode::Enter), Outcome::None);
        assert_eq!(wizard.step, Step::Name);
        let error = wizard.field(FieldKey::Name).and_then(|f| f.error.clone());
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
        assert_eq!(wizard.text(FieldKey::Vcpus), "3");
    }

    #[test]
    fn max_below_vcpus_is_explained() {
        let mut wizard = create(Vec::new());
        wizard.step = Step::Resources;
        wizard.form.set_text(FieldKey::Vcpus, "8");
        wizard.revalidate();
        let error = wizard
            .field(FieldKey::MaxVcpus)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("at least vCPUs (8)"));
    }

    #[test]
    fn memory_not_aligned_suggests_a_size() {
        let mut wizard = create(Vec::new());
        wizard.form.set_text(FieldKey::Memory, "100M1");
        wizard.revalidate();
        assert!(
            wizard
                .field(FieldKey::Memory)
                .and_then(|f| f.error.clone())
                .is_some()
        );
        wizard.form.set_text(FieldKey::Memory, "101M");
        wizard.revalidate();
        let error = wizard.field(FieldKey::Memory).and_then(|f| f.error.clone());
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
        assert_eq!(wizard.focused(), Some(FieldKey::Kernel));
        type_text(&mut wizard, "/nonexistent/vmlinuz");
        let error = wizard.field(FieldKey::Kernel).and_then(|f| f.error.clone());
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
    fn up_on_the_first_field_of_a_step_stays_there() {
        let mut wizard = create(Vec::new());
        press(&mut wizard, KeyCode::Enter);
        press(&mut wizard, KeyCode::Enter);
        assert_eq!(wizard.step, Step::Resources);
        press(&mut wizard, KeyCode::Up);
        assert_eq!(wizard.focused(), Some(FieldKey::Vcpus));
        press(&mut wizard, KeyCode::Down);
        assert_eq!(wizard.focused(), Some(FieldKey::MaxVcpus));
    }

    #[test]
    fn a_pasted_volume_name_stops_following_the_vm_name() {
        let mut wizard = create(Vec::new());
        wizard.step = Step::Disks;
        assert!(wizard.focus_on(FieldKey::NewDisk));
        press(&mut wizard, KeyCode::Char(' '));
        assert!(wizard.focus_on(FieldKey::DiskName));
        assert_eq!(wizard.text(FieldKey::DiskName), "vm1.qcow2");
        wizard.paste("-data");
        assert_eq!(wizard.text(FieldKey::DiskName), "vm1.qcow2-data");
        wizard.form.set_text(FieldKey::Name, "web");
        wizard.revalidate();
        assert_eq!(wizard.text(FieldKey::DiskName), "vm1.qcow2-data");
    }

    #[test]
    fn edit_form_saves_a_changed_definition_under_the_same_name() {
        let config = VmConfig::new("web", BootConfig::Demo);
        let mut wizard = Wizard::edit(&config);
        assert!(wizard.focus_on(FieldKey::Vcpus), "vcpus shown");
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
}
