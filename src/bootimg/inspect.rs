//! [`inspect`]: from a whole disk to a [`BootPlan`], the way a boot loader would choose.
//!
//! 1. The partition table ([`super::table`]) and what each partition holds
//!    ([`super::volumes`]).
//! 2. Boot Loader Specification entries in `/loader/entries` (a separate /boot, as Fedora
//!    and Ubuntu 24.04 have) or `/boot/loader/entries`, on each ext filesystem (Linux extended
//!    boot partitions first).
//! 3. Else grub.cfg (`/boot/grub/grub.cfg`, `/grub/grub.cfg`, and the `grub2` spellings),
//!    evaluated to its default entry, whose `search`/`set root` decide the partition.
//! 4. Else the `/vmlinuz` and `/initrd.img` links (at the root, or in /boot).
//!
//! The chosen files must exist, fit the size limits, and the kernel must be a format the
//! loader takes; otherwise the error says what was found and what would work. Only
//! metadata, the boot configuration files and the kernel's first kilobyte are read here.

use super::bls::{self, BlsEntry};
use super::cmdline;
use super::error::BootImageError;
use super::ext::ExtFs;
use super::grub::{self, GrubOutcome};
use super::grubenv;
use super::kernel;
use super::plan::{BootFile, BootPlan, EntryKind, PlanVolume};
use super::source::{Budget, ReadAt, Window};
use super::table::read_table;
use super::volumes::Volumes;
use super::{MAX_INITRD_SIZE, MAX_KERNEL_SIZE};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// Bytes an inspection may read (metadata and configuration files, never whole kernels).
pub const INSPECT_BUDGET_BYTES: u64 = 512 << 20;
/// Read calls an inspection may make.
pub const INSPECT_BUDGET_READS: u64 = 1 << 21;

/// Where grub.cfg is looked for on each ext filesystem, in order.
const GRUB_CONFIGS: [&str; 4] = [
    "/boot/grub/grub.cfg",
    "/grub/grub.cfg",
    "/boot/grub2/grub.cfg",
    "/grub2/grub.cfg",
];
/// Where BLS entries are looked for, and the prefix their paths get when they are not found
/// as written (entries in /boot/loader/entries on a root filesystem name /boot-relative paths).
const BLS_DIRS: [(&str, &str); 2] = [("/loader/entries", ""), ("/boot/loader/entries", "/boot")];
/// The fallback links: kernel, initrd.
const LINKS: [(&str, &str); 2] = [
    ("/vmlinuz", "/initrd.img"),
    ("/boot/vmlinuz", "/boot/initrd.img"),
];

/// Finds the kernel, initrd and command line the image's own boot configuration would boot.
pub fn inspect(disk: Arc<dyn ReadAt>) -> Result<BootPlan, BootImageError> {
    let budget = Budget::new(INSPECT_BUDGET_BYTES, INSPECT_BUDGET_READS);
    let whole = Window::whole(disk, budget);
    let table = read_table(&whole)?;
    let volumes = Volumes::probe(&whole, table)?;
    let mut plan = match from_bls(&volumes)? {
        Some(plan) => plan,
        None => match from_grub(&volumes)? {
            Some(plan) => plan,
            None => match from_links(&volumes)? {
                Some(plan) => plan,
                None => return Err(nothing_found(&volumes)),
            },
        },
    };
    let mut notes = volumes.notes.clone();
    notes.append(&mut plan.notes);
    plan.notes = notes;
    Ok(plan)
}

/// The error when no step found anything.
fn nothing_found(volumes: &Volumes) -> BootImageError {
    if let Some(failure) = volumes.take_failure(None) {
        return failure;
    }
    if let Some(v) = volumes.list.iter().find(|v| v.info.kind.could_hold_boot()) {
        return BootImageError::UnreadableBootFs {
            partition: Some(v.part.number),
            fs: v.info.kind.name().to_string(),
        };
    }
    let described: Vec<String> = volumes
        .list
        .iter()
        .map(|v| match v.part.number {
            0 => format!("the whole disk ({})", v.info.kind.name()),
            n => format!("partition {n} ({})", v.info.kind.name()),
        })
        .collect();
    if volumes.scheme == super::table::Scheme::None
        && !volumes.list.iter().any(|v| v.info.kind.is_ext())
    {
        return BootImageError::NothingRecognised {
            found: format!(
                "the first bytes are {}",
                volumes
                    .list
                    .first()
                    .map_or("missing", |v| v.info.kind.name())
            ),
        };
    }
    BootImageError::NoKernel {
        searched: if described.is_empty() {
            "an empty partition table".to_string()
        } else {
            described.join(", ")
        },
    }
}

/// Step 2: BLS entries.
fn from_bls(volumes: &Volumes) -> Result<Option<BootPlan>, BootImageError> {
    for volume in volumes.ext_volumes() {
        let number = volume.part.number;
        let Some(fs) = volumes.ext(number)? else {
            continue;
        };
        for (dir, prefix) in BLS_DIRS {
            let Some(names) = fs.list(dir)? else { continue };
            let mut notes = Vec::new();
            let vars = read_grubenv(
                &fs,
                &[
                    "/grub2/grubenv",
                    "/grub/grubenv",
                    "/boot/grub2/grubenv",
                    "/boot/grub/grubenv",
                ],
            )?;
            let mut entries: Vec<BlsEntry> = Vec::new();
            let conf: Vec<&String> = names.iter().filter(|n| n.ends_with(".conf")).collect();
            if conf.len() > bls::MAX_ENTRIES {
                notes.push(format!(
                    "{dir} holds {} entries; vmux read the first {}",
                    conf.len(),
                    bls::MAX_ENTRIES
                ));
            }
            for name in conf.into_iter().take(bls::MAX_ENTRIES) {
                let path = format!("{dir}/{name}");
                let Some(bytes) = fs.read_file(&path, bls::MAX_ENTRY_SIZE, |size| {
                    config_too_large(&path, number, size, bls::MAX_ENTRY_SIZE)
                })?
                else {
                    continue;
                };
                let entry = bls::parse_entry(name, &String::from_utf8_lossy(&bytes), &vars);
                if entry.linux.is_none() {
                    notes.push(format!(
                        "BLS entry {name} has no linux line (an EFI or UKI entry?); vmux skipped it"
                    ));
                    continue;
                }
                if entry
                    .architecture
                    .as_deref()
                    .is_some_and(|a| !matches!(a, "x64" | "x86_64" | "amd64"))
                {
                    notes.push(format!(
                        "BLS entry {name} is for another architecture; vmux skipped it"
                    ));
                    continue;
                }
                entries.push(entry);
            }
            if entries.is_empty() {
                continue;
            }
            bls::sort(&mut entries);
            // A loader.conf that cannot be read only loses its `default`: the sort order stands.
            let loader_default = ["/loader/loader.conf", "/boot/loader/loader.conf"]
                .iter()
                .find_map(|p| {
                    fs.read_file(p, bls::MAX_ENTRY_SIZE, |size| {
                        config_too_large(p, number, size, bls::MAX_ENTRY_SIZE)
                    })
                    .ok()
                    .flatten()
                })
                .and_then(|b| bls::loader_conf_default(&String::from_utf8_lossy(&b)));
            let (chosen, note) = bls::choose(
                &entries,
                vars.get("saved_entry").map(String::as_str),
                loader_default.as_deref(),
            );
            notes.extend(note);
            let Some(entry) = chosen else { continue };
            let describe = entry.describe();
            let linux = entry.linux.as_deref().unwrap_or_default();
            let mut files = Files::new(volumes, &describe);
            let kernel = files.kernel(number, linux, prefix)?;
            let initrds = entry
                .initrds
                .iter()
                .map(|path| files.initrd(number, path, prefix))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Some(BootPlan {
                kind: EntryKind::Bls,
                title: entry.display_title().to_string(),
                entry_id: Some(entry.id.clone()),
                kernel,
                initrds,
                cmdline: cmdline::with_console(&[entry.options.as_str()]),
                volumes: files.volumes,
                notes,
            }));
        }
    }
    Ok(None)
}

/// Step 3: grub.cfg.
fn from_grub(volumes: &Volumes) -> Result<Option<BootPlan>, BootImageError> {
    for volume in volumes.ext_volumes() {
        let number = volume.part.number;
        let Some(fs) = volumes.ext(number)? else {
            continue;
        };
        for cfg in GRUB_CONFIGS {
            let Some(bytes) = fs.read_file(cfg, grub::MAX_CONFIG_SIZE, |size| {
                config_too_large(cfg, number, size, grub::MAX_CONFIG_SIZE)
            })?
            else {
                continue;
            };
            let dir = cfg.rsplit_once('/').map_or("/", |(d, _)| d);
            let vars = read_grubenv(&fs, &[&format!("{dir}/grubenv")])?;
            let src = String::from_utf8_lossy(&bytes);
            let outcome = grub::choose(&src, &vars, &volumes.device(number), dir, volumes)
                .map_err(|(line, reason)| BootImageError::GrubSyntax {
                    path: cfg.to_string(),
                    partition: number,
                    line,
                    reason,
                })?;
            let choice = match outcome {
                GrubOutcome::Entry(choice) => choice,
                GrubOutcome::NoEntry => return Ok(None),
            };
            let describe = format!("grub entry '{}'", choice.title);
            let Some((kernel_arg, args)) = choice.commands.linux.clone() else {
                return Err(BootImageError::NotLinux {
                    entry: describe,
                    found: choice
                        .commands
                        .other
                        .clone()
                        .unwrap_or_else(|| "it has no linux command".into()),
                });
            };
            let mut files = Files::new(volumes, &describe);
            let kernel_part = files.partition(&kernel_arg.device, &kernel_arg.path)?;
            let kernel = files.kernel(kernel_part, &kernel_arg.path, "")?;
            let mut initrds = Vec::new();
            for arg in &choice.commands.initrds {
                let part = files.partition(&arg.device, &arg.path)?;
                initrds.push(files.initrd(part, &arg.path, "")?);
            }
            return Ok(Some(BootPlan {
                kind: EntryKind::Grub,
                title: choice.title.clone(),
                entry_id: choice.id.clone(),
                kernel,
                initrds,
                cmdline: cmdline::with_console(&args),
                volumes: files.volumes,
                notes: choice.notes,
            }));
        }
    }
    Ok(None)
}

/// Step 4: the /vmlinuz and /initrd.img links.
fn from_links(volumes: &Volumes) -> Result<Option<BootPlan>, BootImageError> {
    for volume in volumes.ext_volumes() {
        let number = volume.part.number;
        let Some(fs) = volumes.ext(number)? else {
            continue;
        };
        for (kernel_link, initrd_link) in LINKS {
            if !fs.exists_no_follow(kernel_link)? {
                continue;
            }
            let describe = format!("the {kernel_link} link");
            let mut files = Files::new(volumes, &describe);
            let kernel = files.kernel(number, kernel_link, "")?;
            let initrds = if fs.file_size(initrd_link)?.is_some() {
                vec![files.initrd(number, initrd_link, "")?]
            } else {
                Vec::new()
            };
            let mut notes = Vec::new();
            let root = root_filesystem(volumes, &fs)?;
            let mut args = Vec::new();
            match root {
                Some(uuid) => {
                    args.push(format!("root=UUID={uuid}"));
                    args.push("ro".to_string());
                }
                None => notes.push("vmux found no filesystem with /etc to name as root=; add root= with --cmdline-extra".into()),
            }
            return Ok(Some(BootPlan {
                kind: EntryKind::Links,
                title: format!("{kernel_link} on partition {number}"),
                entry_id: None,
                kernel,
                initrds,
                cmdline: cmdline::with_console(&args),
                volumes: files.volumes,
                notes,
            }));
        }
    }
    Ok(None)
}

/// The UUID of the root filesystem for a links boot: `fs` when it has /etc, else the first
/// other ext filesystem that has.
fn root_filesystem(volumes: &Volumes, fs: &ExtFs) -> Result<Option<String>, BootImageError> {
    if fs.is_dir("/etc")? {
        return Ok(Some(fs.uuid().to_string()));
    }
    for volume in volumes.ext_volumes() {
        let Some(other) = volumes.ext(volume.part.number)? else {
            continue;
        };
        if other.is_dir("/etc")? {
            return Ok(Some(other.uuid().to_string()));
        }
    }
    Ok(None)
}

fn read_grubenv(fs: &ExtFs, paths: &[&str]) -> Result<BTreeMap<String, String>, BootImageError> {
    for path in paths {
        let read = fs.read_file(path, grubenv::MAX_SIZE, |size| {
            config_too_large(path, fs.partition(), size, grubenv::MAX_SIZE)
        })?;
        if let Some(bytes) = read {
            return Ok(grubenv::parse(&bytes));
        }
    }
    Ok(BTreeMap::new())
}

fn config_too_large(path: &str, partition: u32, size: u64, limit: u64) -> BootImageError {
    BootImageError::ConfigTooLarge {
        what: path.to_string(),
        partition,
        reason: format!("is {size} bytes, more than the {limit} vmux reads"),
    }
}

/// Resolves the files of one entry and collects the partitions they are on.
struct Files<'v> {
    disk: &'v Volumes,
    entry: String,
    initrd_total: u64,
    volumes: Vec<PlanVolume>,
}

impl<'v> Files<'v> {
    fn new(disk: &'v Volumes, entry: &str) -> Files<'v> {
        Files {
            disk,
            entry: entry.to_string(),
            initrd_total: 0,
            volumes: Vec::new(),
        }
    }

    /// The partition a GRUB device names.
    fn partition(&self, device: &str, path: &str) -> Result<u32, BootImageError> {
        self.disk
            .partition_of(device)
            .map_err(|reason| BootImageError::UnknownDevice {
                entry: self.entry.clone(),
                path: path.to_string(),
                device: device.to_string(),
                reason,
            })
    }

    /// The ext filesystem of partition `number`, or why it cannot be read.
    fn open(&mut self, number: u32) -> Result<Rc<ExtFs>, BootImageError> {
        let volume = self
            .disk
            .get(number)
            .ok_or_else(|| BootImageError::UnknownDevice {
                entry: self.entry.clone(),
                path: String::new(),
                device: self.disk.device(number),
                reason: format!("the image has no partition {number}"),
            })?;
        if !volume.info.kind.is_ext() {
            return Err(BootImageError::UnreadableBootFs {
                partition: Some(number),
                fs: volume.info.kind.name().to_string(),
            });
        }
        let fs = match self.disk.ext(number)? {
            Some(fs) => fs,
            None => {
                return Err(self.disk.take_failure(Some(number)).unwrap_or(
                    BootImageError::ExtCorrupt {
                        partition: number,
                        reason: "it cannot be opened".into(),
                    },
                ));
            }
        };
        if !self.volumes.iter().any(|v| v.number == number) {
            self.volumes.push(PlanVolume {
                number,
                start: volume.part.start,
                size: volume.window.len(),
                uuid: fs.uuid().to_string(),
            });
        }
        Ok(fs)
    }

    /// Finds `path` (or `prefix` + `path`) on partition `number`: the filesystem, the path
    /// that exists, its resolved form and size.
    fn locate(
        &mut self,
        number: u32,
        path: &str,
        prefix: &str,
    ) -> Result<(Rc<ExtFs>, BootFile), BootImageError> {
        let fs = self.open(number)?;
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let mut candidates = vec![path.clone()];
        if !prefix.is_empty() {
            candidates.push(format!("{prefix}{path}"));
        }
        for candidate in candidates {
            if let Some(size) = fs.file_size(&candidate)? {
                let resolved = fs.canonical(&candidate)?;
                return Ok((
                    fs,
                    BootFile {
                        partition: number,
                        path: candidate,
                        resolved,
                        size,
                    },
                ));
            }
        }
        Err(BootImageError::MissingFile {
            entry: self.entry.clone(),
            path,
            partition: number,
        })
    }

    fn kernel(
        &mut self,
        number: u32,
        path: &str,
        prefix: &str,
    ) -> Result<BootFile, BootImageError> {
        let (fs, file) = self.locate(number, path, prefix)?;
        if file.size > MAX_KERNEL_SIZE {
            return Err(BootImageError::FileTooLarge {
                what: "kernel",
                path: file.path,
                size: file.size,
                limit: MAX_KERNEL_SIZE,
            });
        }
        let head = fs.read_prefix(&file.path, kernel::HEAD_LEN)?;
        kernel::check(&head, &file.resolved)?;
        Ok(file)
    }

    fn initrd(
        &mut self,
        number: u32,
        path: &str,
        prefix: &str,
    ) -> Result<BootFile, BootImageError> {
        let (_, file) = self.locate(number, path, prefix)?;
        self.initrd_total = self.initrd_total.saturating_add(file.size);
        if self.initrd_total > MAX_INITRD_SIZE {
            return Err(BootImageError::FileTooLarge {
                what: "initrd",
                path: file.path,
                size: self.initrd_total,
                limit: MAX_INITRD_SIZE,
            });
        }
        Ok(file)
    }
}
