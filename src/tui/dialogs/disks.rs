//! The add-disk and remove-disk dialogs' kinds: what each knows about the VM and its pools,
//! its fields, the checks and hints as they are typed, and the [`HostOp`] or confirmation it
//! builds. `hotplug` opens them; [`super::Dialog`] runs them.

use super::DialogOutcome;
use crate::client::ChangeScope;
use crate::client::StorageSnapshot;
use crate::config::{DiskConfig, DiskSource, format_size, parse_size, validate_volume_name};
use crate::storage::{ImageFormat, VolumeInfo, VolumeSpec};
use crate::tui::action::{HostOp, NewVolume};
use crate::tui::confirm::Confirm;
use crate::tui::form::{FieldKey, FieldValue, Form, FormField};
use crate::tui::scope::scope_words;
use std::path::Path;

/// Active pools and the volume names taken in each.
pub(in crate::tui) fn active_pools(storage: &StorageSnapshot) -> Vec<(String, Vec<String>)> {
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
pub(in crate::tui) fn attachable(storage: &StorageSnapshot) -> Vec<VolumeInfo> {
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
            remove_host: None,
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
