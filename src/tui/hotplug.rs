//! Hot-add from the TUI: `+`/`-` change a VM's vCPU count, the add-disk and remove-disk
//! dialogs attach (an existing or a new volume) and detach disks, and the palette's
//! `setvcpus` / `attach-disk` / `detach-disk` do the same with virsh's flags.
//!
//! Every change says where it applies (now, at the next boot, or both: `client::ChangeScope`)
//! and then what the guest did: after a live change the VM's live facts are re-read each
//! second ([`Watch`]) until the guest has brought the vCPUs online or ejected what was
//! removed, or until [`WATCH_TICKS`] pass, which is said too (a guest without hot-plug
//! support ignores the request).

use super::action::{Effect, HostOp, NewVolume};
use super::app::{App, Confirm, Overlay, StatusKind};
use super::backends::StorageSnapshot;
use super::commands::run_ops;
use super::dialogs::{Dialog, DialogOutcome};
use super::form::{FieldKey, FieldValue, Form, FormField};
use crate::client::ChangeScope;
use crate::config::{
    DiskConfig, DiskSource, assign_targets, format_size, parse_size, validate_volume_name,
};
use crate::protocol::VmInfo;
use crate::storage::{ImageFormat, VolumeInfo, VolumeSpec};
use std::path::Path;

/// Seconds the TUI waits for the guest to act on a live change before saying it has not.
pub const WATCH_TICKS: u64 = 15;

/// Where a change applies, in words.
pub fn scope_words(scope: ChangeScope) -> &'static str {
    match (scope.live, scope.config) {
        (true, true) => "now and at the next boot",
        (true, false) => "now only (the definition is unchanged)",
        (false, true) => "saved for the next boot",
        (false, false) => "nowhere",
    }
}

/// Where the keys and dialogs apply a change by default: a running VM now and at its next
/// boot, a stopped one at its next boot.
pub fn default_scope(live: bool) -> ChangeScope {
    if live {
        ChangeScope::BOTH
    } else {
        ChangeScope::CONFIG
    }
}

/// What the guest is expected to do after a live change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Have this many vCPUs online (it onlines added ones, ejects removed ones).
    Vcpus {
        /// The count before the change.
        from: u32,
        /// The count wanted.
        count: u32,
    },
    /// Eject this disk.
    DiskGone(String),
}

/// A live change the TUI is waiting to see the guest complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The VM.
    pub vm: String,
    /// What the guest should do.
    pub expect: Expect,
    /// Tick after which the TUI stops waiting.
    pub until: u64,
}

/// Starts waiting for the guest after a live change that worked.
pub(super) fn watch(app: &mut App, op: &HostOp) {
    let (vm, expect) = match op {
        HostOp::SetVcpus {
            vm,
            from,
            count,
            scope,
        } if scope.live && from != count => (
            vm,
            Expect::Vcpus {
                from: *from,
                count: *count,
            },
        ),
        HostOp::DetachDisk {
            vm,
            target,
            scope,
            force: false,
        } if scope.live => (vm, Expect::DiskGone(target.clone())),
        // A forced removal is done when the host answers: re-read the VM's disks once.
        HostOp::DetachDisk {
            vm, force: true, ..
        } => {
            app.effects.push(Effect::ReadInfo(vm.clone()));
            return;
        }
        // A hot-added disk is plugged when the host answers: re-read the VM's disks once.
        HostOp::AttachDisk { vm, scope, .. } if scope.live => {
            app.effects.push(Effect::ReadInfo(vm.clone()));
            return;
        }
        _ => return,
    };
    app.watches.retain(|w| w.vm != *vm || w.expect != expect);
    app.watches.push(Watch {
        vm: vm.clone(),
        expect,
        until: app.ticks + WATCH_TICKS,
    });
    app.effects.push(Effect::ReadInfo(vm.clone()));
}

/// Each second: re-read the live facts of VMs with changes pending, and give up on those
/// that took too long, saying so.
pub(super) fn on_tick(app: &mut App) {
    let now = app.ticks;
    let (expired, waiting): (Vec<Watch>, Vec<Watch>) = std::mem::take(&mut app.watches)
        .into_iter()
        .partition(|w| now > w.until);
    app.watches = waiting;
    for watch in expired {
        let online = app
            .entry(&watch.vm)
            .and_then(|vm| vm.info.as_ref())
            .map(|info| info.vcpus);
        let message = match &watch.expect {
            Expect::Vcpus { count, .. } => format!(
                "{}: the guest has {} vCPUs online, not {count}, after {WATCH_TICKS} s; a guest without CPU hot-plug support ignores the request",
                watch.vm,
                online.map_or("?".to_string(), |n| n.to_string())
            ),
            Expect::DiskGone(target) => format!(
                "{}: the guest has not ejected {target} after {WATCH_TICKS} s; unmount it in the guest, or press X and tick Force to take it away without the guest's consent",
                watch.vm
            ),
        };
        // An error, so a long one wraps over the rows above: the way out is at its end.
        app.set_status(StatusKind::Error, message);
    }
    let mut vms: Vec<String> = app.watches.iter().map(|w| w.vm.clone()).collect();
    vms.dedup();
    for vm in vms {
        app.effects.push(Effect::ReadInfo(vm));
    }
}

/// Fresh live facts of `vm`: say what the guest has done.
pub(super) fn on_info(app: &mut App, vm: &str, info: &VmInfo) {
    let (done, waiting): (Vec<Watch>, Vec<Watch>) =
        std::mem::take(&mut app.watches).into_iter().partition(|w| {
            w.vm == vm
                && match &w.expect {
                    Expect::Vcpus { count, .. } => info.vcpus == *count,
                    Expect::DiskGone(target) => !info.disks.iter().any(|d| &d.target == target),
                }
        });
    app.watches = waiting;
    for watch in done {
        let message = match watch.expect {
            Expect::Vcpus { from, count } if count > from => {
                format!("{vm}: the guest brought its new vCPUs online ({count} online)")
            }
            Expect::Vcpus { count, .. } => {
                format!("{vm}: the guest ejected the removed vCPUs ({count} online)")
            }
            Expect::DiskGone(target) => {
                format!("{vm}: the guest ejected {target}; its image is closed")
            }
        };
        app.set_status(StatusKind::Ok, message);
    }
}

/// `+` / `-`: one vCPU more or fewer on the selected VM (running: now and at the next boot;
/// stopped: at the next boot).
pub(super) fn change_vcpus(app: &mut App, delta: i32) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    let name = vm.name().to_string();
    if let Some(doing) = app.busy.get(&name) {
        app.set_status(StatusKind::Error, format!("{name} is busy {doing}"));
        return;
    }
    if let Some(why) = vm.broken_refusal("change its vCPUs") {
        app.set_status(StatusKind::Error, why);
        return;
    }
    let live = vm.is_live();
    let config_vcpus = vm.config().map_or(1, |c| c.vcpus);
    let from = if live {
        vm.vcpus_now().unwrap_or(config_vcpus)
    } else {
        config_vcpus
    };
    let max = vm.max_vcpus().unwrap_or(from);
    let count = from.saturating_add_signed(delta);
    if count == 0 {
        app.set_status(
            StatusKind::Error,
            format!("{name} has 1 vCPU, the least a VM can have"),
        );
        return;
    }
    if count > max {
        app.set_status(
            StatusKind::Error,
            format!(
                "{name} has {from} vCPUs, its maximum (max_vcpus {max}); raise it with e (edit) and restart {name} to hot-add more"
            ),
        );
        return;
    }
    run_ops(
        app,
        vec![HostOp::SetVcpus {
            vm: name,
            from,
            count,
            scope: default_scope(live),
        }],
    );
}

/// `A`: the add-disk dialog for the selected VM.
pub(super) fn add_disk(app: &mut App) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    if let Some(why) = vm.broken_refusal("add a disk") {
        app.set_status(StatusKind::Error, why);
        return;
    }
    let add = AddDisk {
        vm: vm.name().to_string(),
        running: vm.is_live(),
        own: vm
            .config()
            .map(|c| c.disks.iter().map(|d| d.source.to_string()).collect())
            .unwrap_or_default(),
        volumes: attachable(&app.storage.snapshot),
        pools: active_pools(&app.storage.snapshot),
        loaded: app.storage.loaded,
    };
    app.overlay = Some(Overlay::Dialog(Box::new(Dialog::add_disk(add))));
    super::storage_pane::request_load(app);
}

/// `X`: the remove-disk dialog for the selected VM.
pub(super) fn remove_disk(app: &mut App) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    let name = vm.name().to_string();
    let Some(config) = vm.config() else {
        let why = vm.broken_refusal("remove a disk").unwrap_or_default();
        app.set_status(StatusKind::Error, why);
        return;
    };
    let targets = assign_targets(&config.disks).unwrap_or_default();
    let mut disks: Vec<DiskChoice> = config
        .disks
        .iter()
        .zip(targets)
        .map(|(disk, target)| DiskChoice {
            target,
            label: disk.source.to_string(),
            in_config: true,
            live: false,
            removing_for: None,
        })
        .collect();
    let running = vm.is_live();
    let now = app.now;
    let pending = |live: &crate::protocol::DiskInfo| {
        live.removing
            .then(|| now.saturating_sub(live.removal_requested_at.unwrap_or(now)))
    };
    let live_disks = vm
        .info
        .as_ref()
        .filter(|_| running)
        .map(|i| i.disks.clone());
    if running && live_disks.is_none() {
        // Live facts not read yet: the definition's disks were plugged at boot.
        for disk in &mut disks {
            disk.live = true;
        }
    }
    for live in live_disks.unwrap_or_default() {
        match disks.iter_mut().find(|d| d.target == live.target) {
            Some(known) => {
                known.live = true;
                known.removing_for = pending(&live);
            }
            None => disks.push(DiskChoice {
                target: live.target.clone(),
                label: live.path.display().to_string(),
                in_config: false,
                live: true,
                removing_for: pending(&live),
            }),
        }
    }
    if disks.is_empty() {
        app.set_status(StatusKind::Error, format!("{name} has no disks"));
        return;
    }
    disks.sort_by(|a, b| a.target.cmp(&b.target));
    let remove = RemoveDisk {
        vm: name,
        running: vm.is_live(),
        disks,
    };
    app.overlay = Some(Overlay::Dialog(Box::new(Dialog::remove_disk(remove))));
}

/// Active pools and the volume names taken in each.
fn active_pools(storage: &StorageSnapshot) -> Vec<(String, Vec<String>)> {
    storage
        .pools
        .iter()
        .filter(|p| p.active())
        .map(|p| {
            let taken = p.volumes.iter().map(|v| v.name.clone()).collect();
            (p.name().to_string(), taken)
        })
        .collect()
}

/// Volumes of active pools, readable, as the add-disk dialog offers them.
fn attachable(storage: &StorageSnapshot) -> Vec<VolumeInfo> {
    storage
        .pools
        .iter()
        .filter(|p| p.active())
        .flat_map(|p| p.volumes.iter().filter_map(|v| v.info.clone().ok()))
        .collect()
}

/// What the add-disk dialog knows.
#[derive(Debug, Clone, PartialEq)]
pub struct AddDisk {
    /// The VM.
    pub vm: String,
    /// Whether it runs (then the disk can be hot-added).
    pub running: bool,
    /// Its definition's disks, as `pool/volume` or paths.
    pub own: Vec<String>,
    /// Volumes of active pools.
    pub volumes: Vec<VolumeInfo>,
    /// Active pools and the names taken in each.
    pub pools: Vec<(String, Vec<String>)>,
    /// The pools have been read (until then the lists are empty for want of data).
    pub loaded: bool,
}

const FORMATS: [ImageFormat; 2] = [ImageFormat::Qcow2, ImageFormat::Raw];

impl AddDisk {
    /// The dialog's fields.
    pub fn fields(&self) -> Vec<FormField> {
        let pool = self
            .pools
            .iter()
            .position(|(name, _)| name == crate::config::DEFAULT_POOL)
            .unwrap_or(0);
        let mut pool_field = FormField::choice(
            FieldKey::Pool,
            "Pool",
            self.pools.iter().map(|(name, _)| name.clone()).collect(),
        );
        if let FieldValue::Choice { index, .. } = &mut pool_field.value {
            *index = pool;
        }
        let taken = self
            .pools
            .get(pool)
            .map(|(_, t)| t.as_slice())
            .unwrap_or(&[]);
        let name = (1..)
            .map(|i| {
                if i == 1 {
                    format!("{}-data.qcow2", self.vm)
                } else {
                    format!("{}-data{i}.qcow2", self.vm)
                }
            })
            .find(|n| !taken.contains(n))
            .unwrap_or_default();
        let mut live = FormField::toggle(FieldKey::Live, "Now (live)", self.running);
        live.hidden = !self.running;
        let mut volume = FormField::choice(
            FieldKey::Volume,
            "Volume",
            self.volumes
                .iter()
                .map(|v| format!("{}/{}", v.pool, v.name))
                .collect(),
        );
        if let FieldValue::Choice { index, .. } = &mut volume.value {
            *index = self.first_usable();
        }
        vec![
            FormField::toggle(FieldKey::NewVolume, "New volume", false),
            volume,
            pool_field,
            FormField::text(FieldKey::Name, "Volume name", &name),
            FormField::text(FieldKey::Size, "Size", "10G"),
            FormField::choice(
                FieldKey::Format,
                "Format",
                FORMATS.iter().map(|f| f.to_string()).collect(),
            ),
            FormField::toggle(FieldKey::ReadOnly, "Read-only", false),
            live,
            FormField::toggle(FieldKey::Config, "At next boot", true),
        ]
    }

    /// Why volume `v` cannot be attached writable to this VM, if it cannot.
    fn problem(&self, v: &VolumeInfo, readonly: bool) -> Option<String> {
        let label = format!("{}/{}", v.pool, v.name);
        if self.own.contains(&label) {
            return Some(format!("{label} is already a disk of {}", self.vm));
        }
        if let Some(vm) = v.running.iter().find(|vm| **vm != self.vm) {
            return Some(format!(
                "running VM {vm} has it open; two VMs cannot write one disk"
            ));
        }
        (!v.backing_of.is_empty() && !readonly).then(|| {
            "other images use it as their backing file: attach it read-only or clone it".into()
        })
    }

    /// The first volume that can be attached as it is (the default choice).
    fn first_usable(&self) -> usize {
        self.volumes
            .iter()
            .position(|v| self.problem(v, false).is_none())
            .unwrap_or(0)
    }

    /// Takes fresh pools and volumes, keeping what the user chose.
    pub fn set_storage(&mut self, storage: &StorageSnapshot, form: &mut Form) {
        self.volumes = attachable(storage);
        self.pools = active_pools(storage);
        self.loaded = true;
        let volumes: Vec<String> = self
            .volumes
            .iter()
            .map(|v| format!("{}/{}", v.pool, v.name))
            .collect();
        let pools: Vec<String> = self.pools.iter().map(|(name, _)| name.clone()).collect();
        for (key, options) in [(FieldKey::Volume, volumes), (FieldKey::Pool, pools)] {
            let chosen = form.choice(key).map(str::to_string);
            if let Some(FieldValue::Choice {
                options: old,
                index,
            }) = form.field_mut(key).map(|f| &mut f.value)
            {
                let fallback = if key == FieldKey::Pool {
                    options
                        .iter()
                        .position(|o| o == crate::config::DEFAULT_POOL)
                        .unwrap_or(0)
                } else {
                    self.first_usable()
                };
                *index = chosen
                    .and_then(|c| options.iter().position(|o| *o == c))
                    .unwrap_or(fallback);
                *old = options;
            }
        }
    }

    /// Shows the fields of the source chosen (existing or new volume).
    pub fn show(&self, form: &mut Form) {
        let new = form.flag(FieldKey::NewVolume);
        form.set_hidden(FieldKey::Volume, new);
        for key in [
            FieldKey::Pool,
            FieldKey::Name,
            FieldKey::Size,
            FieldKey::Format,
        ] {
            form.set_hidden(key, !new);
        }
    }

    fn chosen(&self, form: &Form) -> Option<&VolumeInfo> {
        let key = form.choice(FieldKey::Volume)?;
        self.volumes
            .iter()
            .find(|v| format!("{}/{}", v.pool, v.name) == key)
    }

    /// What is wrong with field `key`.
    pub fn check(&self, form: &Form, key: FieldKey) -> Option<String> {
        let text = form.text(key);
        let new = form.flag(FieldKey::NewVolume);
        match key {
            FieldKey::Volume if !new => {
                let Some(volume) = self.chosen(form) else {
                    return Some(if self.loaded {
                        "no volume to attach in an active pool; tick New volume".into()
                    } else {
                        "reading the storage pools…".into()
                    });
                };
                self.problem(volume, form.flag(FieldKey::ReadOnly))
            }
            FieldKey::Pool if new && self.pools.is_empty() => {
                Some("no storage pool is active; start one in the Storage pane (2)".into())
            }
            FieldKey::Name if new => {
                if let Err(e) = validate_volume_name(text) {
                    return Some(e);
                }
                let pool = form.choice(FieldKey::Pool).unwrap_or_default();
                let taken = self
                    .pools
                    .iter()
                    .find(|(name, _)| name == pool)
                    .is_some_and(|(_, t)| t.iter().any(|n| n == text));
                if taken {
                    return Some(format!("pool {pool} already has {text}; pick another name"));
                }
                let by_name = ImageFormat::from_name(Path::new(text));
                let chosen = form.choice(FieldKey::Format).and_then(|f| f.parse().ok());
                match (by_name, chosen) {
                    (Some(a), Some(b)) if a != b => Some(format!(
                        "the name says {a} but the format is {b}; change one of them"
                    )),
                    _ => None,
                }
            }
            FieldKey::Size if new => match parse_size(text) {
                Err(e) => Some(e),
                Ok(0) => Some("give a size above zero, like 10G".into()),
                Ok(_) => None,
            },
            FieldKey::Config if !form.flag(FieldKey::Live) && !form.flag(FieldKey::Config) => {
                Some("choose now, the next boot or both".into())
            }
            _ => None,
        }
    }

    /// Advice under field `key`.
    pub fn hint(&self, key: FieldKey) -> String {
        match key {
            FieldKey::NewVolume => "create a volume for it instead of picking one".into(),
            FieldKey::Volume => "Space or ←/→ picks (volumes of active pools)".into(),
            FieldKey::Live => "hot-add it to the running guest, which is notified".into(),
            FieldKey::Config => "add it to the definition, so it is there after a restart".into(),
            FieldKey::ReadOnly => "the guest cannot write it".into(),
            FieldKey::Size => "like 10G; sparse".into(),
            _ => String::new(),
        }
    }

    /// The operation the fields describe.
    pub fn build(&self, form: &Form) -> Result<DialogOutcome, String> {
        let scope = ChangeScope {
            live: form.flag(FieldKey::Live) && self.running,
            config: form.flag(FieldKey::Config),
        };
        let (pool, volume, new_volume) = if form.flag(FieldKey::NewVolume) {
            let pool = form
                .choice(FieldKey::Pool)
                .ok_or("no active pool")?
                .to_string();
            let name = form.text(FieldKey::Name).to_string();
            let spec = VolumeSpec {
                capacity: parse_size(form.text(FieldKey::Size))?,
                format: form.choice(FieldKey::Format).and_then(|f| f.parse().ok()),
                preallocate: false,
            };
            let new = NewVolume {
                pool: pool.clone(),
                name: name.clone(),
                spec,
            };
            (pool, name, Some(new))
        } else {
            let volume = self.chosen(form).ok_or("pick a volume")?;
            (volume.pool.clone(), volume.name.clone(), None)
        };
        let disk = DiskConfig {
            source: DiskSource::Volume { pool, volume },
            readonly: form.flag(FieldKey::ReadOnly),
            target: None,
            serial: None,
            format: None,
            allow_backing: Vec::new(),
        };
        Ok(DialogOutcome::Host(HostOp::AttachDisk {
            vm: self.vm.clone(),
            disk: Box::new(disk),
            new_volume,
            scope,
        }))
    }

    /// Lines above the fields.
    pub fn intro(&self) -> Vec<String> {
        let mut lines = vec![if self.running {
            format!(
                "{} runs: the disk can be hot-added now (PCI hot-plug)",
                self.vm
            )
        } else {
            format!(
                "{} is stopped: the disk is added to its definition",
                self.vm
            )
        }];
        if let Some(v) = self.volumes.first() {
            lines.push(format!(
                "{} volumes available, like {}/{} ({})",
                self.volumes.len(),
                v.pool,
                v.name,
                format_size(v.capacity)
            ));
        }
        lines
    }
}

/// One disk the remove-disk dialog offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskChoice {
    /// Guest device name.
    pub target: String,
    /// Its volume or file.
    pub label: String,
    /// In the definition.
    pub in_config: bool,
    /// Plugged into the running VM.
    pub live: bool,
    /// The guest was asked to eject it this many seconds ago and has not yet.
    pub removing_for: Option<u64>,
}

/// What the remove-disk dialog knows.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveDisk {
    /// The VM.
    pub vm: String,
    /// Whether it runs.
    pub running: bool,
    /// Its disks (definition and live), by target.
    pub disks: Vec<DiskChoice>,
}

impl RemoveDisk {
    /// The dialog's fields.
    pub fn fields(&self) -> Vec<FormField> {
        let mut live = FormField::toggle(FieldKey::Live, "Now (live)", self.running);
        live.hidden = !self.running;
        let mut force = FormField::toggle(FieldKey::Force, "Force", false);
        force.hidden = true;
        let mut fields = vec![
            FormField::choice(
                FieldKey::Volume,
                "Disk",
                self.disks
                    .iter()
                    .map(|d| match d.removing_for {
                        Some(s) => format!("{}  {}  (being removed for {s} s)", d.target, d.label),
                        None => format!("{}  {}", d.target, d.label),
                    })
                    .collect(),
            ),
            live,
            force,
            // On for a disk the definition has (a disk added live only is in none).
            FormField::toggle(
                FieldKey::Config,
                "At next boot",
                self.disks.first().is_none_or(|d| d.in_config),
            ),
        ];
        let mut form = Form::new(std::mem::take(&mut fields));
        self.show(&mut form);
        form.fields
    }

    /// Shows the Force toggle while the chosen disk is one the guest was asked to eject and
    /// has not: the way out when a guest does not answer.
    pub fn show(&self, form: &mut Form) {
        let pending = self
            .chosen(form)
            .is_some_and(|d| d.removing_for.is_some() && self.running);
        form.set_hidden(FieldKey::Force, !pending);
    }

    fn chosen<'a>(&'a self, form: &Form) -> Option<&'a DiskChoice> {
        let text = form.choice(FieldKey::Volume)?;
        self.disks
            .iter()
            .find(|d| text.split_whitespace().next() == Some(d.target.as_str()))
    }

    /// What is wrong with field `key`.
    pub fn check(&self, form: &Form, key: FieldKey) -> Option<String> {
        let disk = self.chosen(form)?;
        let live = form.flag(FieldKey::Live) && self.running;
        let config = form.flag(FieldKey::Config);
        let force = form.flag(FieldKey::Force);
        match key {
            FieldKey::Force if live && !force => disk.removing_for.map(|s| {
                format!(
                    "the guest was asked {s} s ago and has not ejected {}; tick Force to take it away without its consent, or wait",
                    disk.target
                )
            }),
            FieldKey::Live if live && !disk.live => Some(format!(
                "{} is not plugged into the running VM (it is in the definition only)",
                disk.target
            )),
            FieldKey::Config if config && !disk.in_config => Some(format!(
                "{} was added live only; it is not in the definition",
                disk.target
            )),
            FieldKey::Config if !live && !config => {
                Some("choose now, the next boot or both".into())
            }
            _ => None,
        }
    }

    /// Advice under field `key`.
    pub fn hint(&self, key: FieldKey) -> String {
        match key {
            FieldKey::Volume => "Space or ←/→ picks".into(),
            FieldKey::Live => "the guest is asked to eject it; unmount it there first".into(),
            FieldKey::Force => {
                "the guest loses the disk at once: what it has not written is lost".into()
            }
            FieldKey::Config => "remove it from the definition too".into(),
            _ => String::new(),
        }
    }

    /// Asks before detaching.
    pub fn build(&self, form: &Form) -> Result<DialogOutcome, String> {
        let disk = self.chosen(form).ok_or("pick a disk")?;
        let scope = ChangeScope {
            live: form.flag(FieldKey::Live) && self.running,
            config: form.flag(FieldKey::Config),
        };
        let force = scope.live && form.flag(FieldKey::Force) && disk.removing_for.is_some();
        let op = HostOp::DetachDisk {
            vm: self.vm.clone(),
            target: disk.target.clone(),
            scope,
            force,
        };
        let message = if force {
            format!(
                "Take {} ({}) away from {} now, without the guest's consent?\nWhat the guest has not written to it is lost, and a program using it sees I/O errors. The volume itself is kept.",
                disk.target, disk.label, self.vm
            )
        } else {
            format!(
                "Remove {} ({}) from {}, {}?\nThe volume itself is kept.",
                disk.target,
                disk.label,
                self.vm,
                scope_words(scope)
            )
        };
        Ok(DialogOutcome::Confirm(Confirm {
            title: if force {
                "Force a disk out".into()
            } else {
                "Remove a disk".into()
            },
            message,
            ops: vec![op],
            task: None,
            bulk: false,
        }))
    }

    /// Lines above the fields.
    pub fn intro(&self) -> Vec<String> {
        vec![if self.running {
            format!(
                "{} runs: a live removal asks the guest to eject the disk (PCI hot-plug)",
                self.vm
            )
        } else {
            format!("{} is stopped: the disk leaves its definition", self.vm)
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_said_in_words() {
        assert_eq!(scope_words(ChangeScope::BOTH), "now and at the next boot");
        assert!(scope_words(ChangeScope::LIVE).contains("unchanged"));
        assert_eq!(default_scope(false), ChangeScope::CONFIG);
    }
}
