//! The storage verbs of the command line: `pool-*`, `vol-*` and `snapshot-*`, named and shaped
//! like virsh's. Each verb is one [`StorageCommand`] variant; [`run`] carries it out through
//! the host's [`StorageHost`] and prints a table, a confirmation, or (`--json`, on the read
//! commands) one JSON document on stdout.

use super::Io;
use super::complete;
use super::progress::{Display, Reporter, cancelled};
use crate::client::{HostApi, ImageSource, StorageHost, VolumeProblem, VolumeView};
use crate::config::{format_size, parse_size};
use crate::storage::snapshot::{SnapshotState, format_timestamp};
use crate::storage::{ImageFormat, PoolStatus, SnapshotInfo, StorageError, VolumeInfo, VolumeSpec};
use anyhow::{Context, bail};
use clap::Subcommand;
use clap_complete::ArgValueCandidates;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Storage pool, volume and disk snapshot commands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StorageCommand {
    /// List storage pools (the `default` pool is created on first use).
    PoolList {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Define a directory pool (inactive until `pool-start`).
    PoolDefineAs {
        /// Pool name.
        name: String,
        /// The pool's directory (absolute).
        #[arg(long)]
        target: PathBuf,
        /// Create the directory when it does not exist.
        #[arg(long)]
        build: bool,
    },
    /// Start (activate) a pool after checking its directory.
    PoolStart {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        name: String,
    },
    /// Stop (deactivate) a pool; its volumes stay on disk.
    PoolDestroy {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        name: String,
    },
    /// Start a pool at host boot (or stop doing so with --disable).
    PoolAutostart {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        name: String,
        /// Turn autostart off.
        #[arg(long)]
        disable: bool,
    },
    /// Remove an inactive pool's definition (its directory stays).
    PoolUndefine {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        name: String,
    },
    /// Show a pool's state and space.
    PoolInfo {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the volumes of a pool.
    VolList {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a volume: format, capacity, allocation, backing file, users.
    VolInfo {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume (file) name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a volume (sparse unless --preallocate).
    VolCreateAs {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name; `.qcow2` or `.raw` decides the format.
        volume: String,
        /// Size, like 20G or 512M.
        size: String,
        /// raw or qcow2 (must agree with the name's extension).
        #[arg(long, value_parser = parse_format)]
        format: Option<ImageFormat>,
        /// Allocate all space now (free space is checked first).
        #[arg(long)]
        preallocate: bool,
    },
    /// Change a volume's size (`+5G` grows by 5G).
    VolResize {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// New size, or +SIZE.
        size: String,
        /// Allow shrinking (refused anyway when it would cut data).
        #[arg(long)]
        shrink: bool,
        /// Allocate the space the volume grows by now (it can take a while; Ctrl-C cancels
        /// and keeps the old size).
        #[arg(long, conflicts_with = "shrink")]
        preallocate: bool,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
        /// Follow this backing file outside the storage pools (repeatable); vmux follows
        /// backing files only inside pools unless allowed by path.
        #[arg(long = "allow-backing", value_name = "PATH")]
        allow_backing: Vec<PathBuf>,
    },
    /// Copy a volume within its pool: full copy, or --linked qcow2 overlay.
    VolClone {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Source volume.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        source: String,
        /// New volume.
        clone: String,
        /// Make a qcow2 overlay on the source instead of a copy.
        #[arg(long)]
        linked: bool,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
        /// Follow this backing file outside the storage pools (repeatable); vmux follows
        /// backing files only inside pools unless allowed by path.
        #[arg(long = "allow-backing", value_name = "PATH")]
        allow_backing: Vec<PathBuf>,
    },
    /// Replace a volume's content with an image file's (raw or qcow2, as --format or its name
    /// says; never guessed from its content).
    VolUpload {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// The image file to read.
        file: PathBuf,
        /// The file's format (needed when its name has no .qcow2/.raw/.img extension).
        #[arg(long, value_parser = parse_format)]
        format: Option<ImageFormat>,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
        /// Follow this backing file outside the storage pools (repeatable); vmux follows
        /// backing files only inside pools unless allowed by path.
        #[arg(long = "allow-backing", value_name = "PATH")]
        allow_backing: Vec<PathBuf>,
    },
    /// Bring a downloaded disk image (a distribution cloud image) into a pool: a copy, or with
    /// --linked a read-only base volume and a qcow2 overlay on it. The file's format is what
    /// its name says (or --format), checked against its content; an image with a backing file
    /// is refused.
    VolImport {
        /// Pool name.
        pool: String,
        /// The new volume's name (`.qcow2` or `.raw` decides its format; otherwise the file's).
        volume: String,
        /// The image file.
        file: PathBuf,
        /// Import FILE once as a read-only base volume (named after the file; reused when
        /// it is there already) and make VOLUME a qcow2 overlay on it, so many VMs share one
        /// base.
        #[arg(long)]
        linked: bool,
        /// The file's format, when its name does not say it (a qcow2 image named .img).
        #[arg(long, value_parser = parse_format)]
        format: Option<ImageFormat>,
        /// Print the new volume as JSON.
        #[arg(long)]
        json: bool,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
    },
    /// Write a volume's content to a file.
    VolDownload {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// The file to write.
        file: PathBuf,
        /// Output format (default: from the file name, else the volume's).
        #[arg(long, value_parser = parse_format)]
        format: Option<ImageFormat>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
        /// Follow this backing file outside the storage pools (repeatable); vmux follows
        /// backing files only inside pools unless allowed by path.
        #[arg(long = "allow-backing", value_name = "PATH")]
        allow_backing: Vec<PathBuf>,
    },
    /// Convert a volume into a new volume of another format.
    VolConvert {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Source volume.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        source: String,
        /// New volume.
        dest: String,
        /// Output format (default: from the new name).
        #[arg(long, value_parser = parse_format)]
        format: Option<ImageFormat>,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
        /// Follow this backing file outside the storage pools (repeatable); vmux follows
        /// backing files only inside pools unless allowed by path.
        #[arg(long = "allow-backing", value_name = "PATH")]
        allow_backing: Vec<PathBuf>,
    },
    /// Overwrite a volume's data with zeroes.
    VolWipe {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
        /// Follow this backing file outside the storage pools (repeatable); vmux follows
        /// backing files only inside pools unless allowed by path.
        #[arg(long = "allow-backing", value_name = "PATH")]
        allow_backing: Vec<PathBuf>,
    },
    /// Record a volume's format (for volumes vmux did not create; never guessed from content).
    VolSetFormat {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// raw or qcow2.
        #[arg(value_parser = parse_format)]
        format: ImageFormat,
    },
    /// Check a qcow2 volume's refcounts (like `qemu-img check`); --repair rebuilds them.
    VolCheck {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
        /// Rebuild the refcounts when anything is wrong (not while a VM uses the volume).
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a volume (refused while a VM uses it).
    VolDelete {
        /// Pool name.
        #[arg(add = ArgValueCandidates::new(complete::pool_names))]
        pool: String,
        /// Volume name.
        #[arg(add = ArgValueCandidates::new(complete::volume_names))]
        volume: String,
    },
    /// Take an external disk snapshot of a VM, running or not (a running VM's vCPUs pause
    /// while its disks switch to the new overlays).
    SnapshotCreate {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        vm: String,
        /// Snapshot name.
        name: String,
    },
    /// List a VM's snapshots, oldest first.
    SnapshotList {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        vm: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revert a stopped VM's disks to a snapshot (later changes and snapshots are discarded).
    SnapshotRevert {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        vm: String,
        /// Snapshot name.
        name: String,
    },
    /// Delete a snapshot, merging its overlay down.
    SnapshotDelete {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        vm: String,
        /// Snapshot name.
        name: String,
        /// Print progress as JSON lines on stderr (for scripts); a terminal gets a progress
        /// bar without it.
        #[arg(long)]
        progress: bool,
    },
}

fn parse_format(text: &str) -> Result<ImageFormat, String> {
    text.parse()
}

impl StorageCommand {
    /// Whether a read verb was asked for JSON (`--json`).
    pub fn wants_json(&self) -> bool {
        use StorageCommand::*;
        match self {
            PoolList { json }
            | PoolInfo { json, .. }
            | VolList { json, .. }
            | VolInfo { json, .. }
            | VolCheck { json, .. }
            | VolImport { json, .. }
            | SnapshotList { json, .. } => *json,
            _ => false,
        }
    }
}

impl StorageCommand {
    /// How a long verb shows its progress (`--progress`: JSON lines).
    fn progress_display(&self) -> Display {
        use StorageCommand::*;
        let json = match self {
            VolResize { progress, .. }
            | VolClone { progress, .. }
            | VolImport { progress, .. }
            | VolUpload { progress, .. }
            | VolDownload { progress, .. }
            | VolConvert { progress, .. }
            | VolWipe { progress, .. }
            | SnapshotDelete { progress, .. } => *progress,
            _ => false,
        };
        Display::choose(json)
    }

    /// The backing files outside the pools the user allowed (`--allow-backing`).
    fn allowed_backing(&self) -> Vec<PathBuf> {
        self.allowed_backing_paths().to_vec()
    }

    /// The `--allow-backing` paths as given.
    pub fn allowed_backing_paths(&self) -> &[PathBuf] {
        use StorageCommand::*;
        match self {
            VolResize { allow_backing, .. }
            | VolClone { allow_backing, .. }
            | VolUpload { allow_backing, .. }
            | VolDownload { allow_backing, .. }
            | VolConvert { allow_backing, .. }
            | VolWipe { allow_backing, .. } => allow_backing,
            _ => &[],
        }
    }
}

/// Carries out `cmd` on `host`'s storage; read verbs print JSON when asked with `--json`.
pub fn run(cmd: StorageCommand, host: &HostApi, io: &mut Io<'_>) -> anyhow::Result<ExitCode> {
    let json = cmd.wants_json();
    let display = cmd.progress_display();
    let long = |op: &'static str| Reporter::start(op, display);
    let out: &mut dyn Write = &mut *io.out;
    let mut allowed = Vec::new();
    for path in cmd.allowed_backing() {
        allowed.push(
            std::path::absolute(&path).with_context(|| {
                format!("cannot make --allow-backing {} absolute", path.display())
            })?,
        );
    }
    let storage = if allowed.is_empty() {
        host.storage.clone()
    } else {
        host.storage.allowing_backing(&allowed)
    };
    let storage = storage.as_ref();
    use StorageCommand::*;
    match cmd {
        PoolList { .. } => {
            let list = storage.list_pools()?;
            for broken in &list.broken {
                writeln!(io.err, "warning: {broken}")?;
            }
            let pools = list.pools;
            if json {
                print_json(out, &pools)?;
            } else {
                print_pools(out, &pools)?;
            }
        }
        PoolDefineAs {
            name,
            target,
            build,
        } => {
            storage.define_pool(&name, &target, build)?;
            writeln!(out, "Pool {name} defined")?;
        }
        PoolStart { name } => {
            storage.start_pool(&name)?;
            writeln!(out, "Pool {name} started")?;
        }
        PoolDestroy { name } => {
            storage.stop_pool(&name)?;
            writeln!(out, "Pool {name} destroyed (stopped; its volumes are kept)")?;
        }
        PoolAutostart { name, disable } => {
            storage.set_pool_autostart(&name, !disable)?;
            if disable {
                writeln!(out, "Pool {name} unmarked as autostarted")?;
            } else {
                writeln!(out, "Pool {name} marked as autostarted")?;
            }
        }
        PoolUndefine { name } => {
            storage.undefine_pool(&name)?;
            writeln!(out, "Pool {name} has been undefined")?;
        }
        PoolInfo { name, .. } => {
            let info = storage.pool_info(&name)?;
            if json {
                print_json(out, &info)?;
            } else {
                let s = &info.status;
                print_fields(
                    out,
                    &[
                        ("Name", s.name.clone()),
                        ("State", state_word(s.active).to_string()),
                        ("Autostart", yes_no(s.autostart).to_string()),
                        ("Path", s.path.display().to_string()),
                        ("Volumes", info.volumes.to_string()),
                        ("Capacity", format_size(info.capacity)),
                        ("Allocation", format_size(info.allocation)),
                        ("Available", format_size(info.available)),
                    ],
                )?;
            }
        }
        VolList { pool, .. } => {
            let entries = storage.list_volumes(&pool)?;
            if json {
                let docs: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|VolumeView { name, info }| match info {
                        Ok(info) => serde_json::to_value(info).unwrap_or_default(),
                        Err(VolumeProblem::Symlink { target, message }) => serde_json::json!({
                            "name": name,
                            "symlink": target,
                            "error": message,
                        }),
                        Err(VolumeProblem::Unreadable(message)) => {
                            serde_json::json!({"name": name, "error": message})
                        }
                    })
                    .collect();
                print_json(out, &docs)?;
            } else {
                print_volumes(out, &entries)?;
            }
        }
        VolInfo { pool, volume, .. } => {
            let info = storage.volume_info(&pool, &volume)?;
            if json {
                print_json(out, &info)?;
            } else {
                print_volume(out, &info)?;
            }
        }
        VolCreateAs {
            pool,
            volume,
            size,
            format,
            preallocate,
        } => {
            let capacity = size_arg(&size)?;
            let info = storage.create_volume(
                &pool,
                &volume,
                VolumeSpec {
                    capacity,
                    format,
                    preallocate,
                },
            )?;
            writeln!(
                out,
                "Vol {volume} created ({} {}, {})",
                format_size(info.capacity),
                info.format,
                if preallocate {
                    "preallocated"
                } else {
                    "sparse"
                }
            )?;
        }
        VolResize {
            pool,
            volume,
            size,
            shrink,
            preallocate,
            ..
        } => {
            let capacity = match size.strip_prefix('+') {
                Some(delta) => storage
                    .volume_info(&pool, &volume)?
                    .capacity
                    .checked_add(size_arg(delta)?)
                    .context("that size is too large")?,
                None => size_arg(&size)?,
            };
            let result = if preallocate {
                long("vol-resize")?
                    .run(|p| storage.grow_volume_allocated(&pool, &volume, capacity, p))
            } else {
                storage.resize_volume(&pool, &volume, capacity, shrink)
            };
            if let Err(e) = &result
                && e.is_cancelled()
            {
                return Ok(cancelled(&format!(
                    "{pool}/{volume} keeps its old size; nothing was allocated"
                )));
            }
            let info = in_use(storage, &pool, &volume, result)?;
            writeln!(
                out,
                "Size of volume '{volume}' is now {}",
                format_size(info.capacity)
            )?;
        }
        VolClone {
            pool,
            source,
            clone,
            linked,
            ..
        } => {
            let result =
                long("vol-clone")?.run(|p| storage.clone_volume(&pool, &source, &clone, linked, p));
            match result {
                Err(e) if e.is_cancelled() => {
                    return Ok(cancelled(&format!(
                        "{pool}/{clone} was not created; {pool}/{source} is unchanged"
                    )));
                }
                other => other?,
            };
            if linked {
                writeln!(
                    out,
                    "Vol {clone} cloned from {source} (linked: {source} is its backing file)"
                )?;
            } else {
                writeln!(out, "Vol {clone} cloned from {source}")?;
            }
        }
        VolImport {
            pool,
            volume,
            file,
            linked,
            format,
            ..
        } => {
            let unchanged = || {
                cancelled(&format!(
                    "{pool}/{volume} was not created; {} is unchanged",
                    file.display()
                ))
            };
            let source = ImageSource::File(file.clone());
            let result = long("vol-import")?
                .run(|p| storage.import_image(&pool, &volume, &source, format, linked, p));
            let made = match result {
                Err(e) if e.is_cancelled() => return Ok(unchanged()),
                other => other?,
            };
            if linked {
                let base = made.base.as_deref().unwrap_or("?");
                if json {
                    print_json(out, &made.volume)?;
                } else {
                    let how = if made.reused_base {
                        "already imported"
                    } else {
                        "imported now"
                    };
                    writeln!(
                        out,
                        "Vol {volume} created in {pool}: a {} qcow2 overlay on the base volume {pool}/{} ({how} from {}; it stays unchanged while overlays use it)",
                        format_size(made.volume.capacity),
                        base,
                        file.display()
                    )?;
                }
            } else {
                let info = made.volume;
                if json {
                    print_json(out, &info)?;
                } else {
                    writeln!(
                        out,
                        "Vol {volume} imported into {pool} from {} ({}, {})",
                        file.display(),
                        info.format,
                        format_size(info.capacity)
                    )?;
                }
            }
        }
        VolUpload {
            pool,
            volume,
            file,
            format,
            ..
        } => {
            let result = long("vol-upload")?
                .run(|p| storage.upload_volume(&pool, &volume, &file, format, p));
            if let Err(e) = &result
                && e.is_cancelled()
            {
                return Ok(cancelled(&format!(
                    "{pool}/{volume} still holds its old content; {} is unchanged",
                    file.display()
                )));
            }
            let info = in_use(storage, &pool, &volume, result)?;
            writeln!(
                out,
                "Vol {volume} now holds {} ({})",
                file.display(),
                format_size(info.capacity)
            )?;
        }
        VolDownload {
            pool,
            volume,
            file,
            format,
            force,
            ..
        } => {
            let existed = file.exists();
            let result = long("vol-download")?
                .run(|p| storage.download_volume(&pool, &volume, &file, format, force, p));
            let written = match result {
                Err(e) if e.is_cancelled() => {
                    let dest = if existed {
                        format!("{} keeps its old content", file.display())
                    } else {
                        format!("{} was not created", file.display())
                    };
                    return Ok(cancelled(&format!("{dest}; {pool}/{volume} is unchanged")));
                }
                other => other?,
            };
            writeln!(
                out,
                "Vol {volume} written to {} ({written})",
                file.display()
            )?;
        }
        VolConvert {
            pool,
            source,
            dest,
            format,
            ..
        } => {
            let result = long("vol-convert")?
                .run(|p| storage.convert_volume(&pool, &source, &dest, format, p));
            let info = match result {
                Err(e) if e.is_cancelled() => {
                    return Ok(cancelled(&format!(
                        "{pool}/{dest} was not created; {pool}/{source} is unchanged"
                    )));
                }
                other => other?,
            };
            writeln!(out, "Vol {dest} converted from {source} ({})", info.format)?;
        }
        VolWipe { pool, volume, .. } => {
            let reporter = long("vol-wipe")?;
            let handle = reporter.progress().clone();
            let result = reporter.run(|p| storage.wipe_volume(&pool, &volume, p));
            if let Err(e) = &result
                && e.is_cancelled()
            {
                let at = handle.snapshot();
                return Ok(cancelled(&format!(
                    "{pool}/{volume} is partly wiped (its first {} of {} were overwritten with zeroes, the rest is as it was); `vmux vol-wipe {pool} {volume}` finishes it",
                    format_size(at.done),
                    format_size(at.total)
                )));
            }
            in_use(storage, &pool, &volume, result)?;
            writeln!(out, "Vol {volume} wiped")?;
        }
        VolSetFormat {
            pool,
            volume,
            format,
        } => {
            storage.set_volume_format(&pool, &volume, format)?;
            writeln!(out, "Vol {volume} recorded as {format}")?;
        }
        VolCheck {
            pool,
            volume,
            repair,
            ..
        } => {
            return super::vol_check::run(storage, &pool, &volume, repair, json, out);
        }
        VolDelete { pool, volume } => {
            in_use(
                storage,
                &pool,
                &volume,
                storage.delete_volume(&pool, &volume),
            )?;
            writeln!(out, "Vol {volume} deleted")?;
        }
        SnapshotCreate { vm, name } => {
            let info = storage.create_snapshot(&vm, &name)?;
            writeln!(
                out,
                "Domain snapshot {name} created ({} disks)",
                info.disks.len()
            )?;
        }
        SnapshotList { vm, .. } => {
            let list = storage.list_snapshots(&vm)?;
            if json {
                print_json(out, &list)?;
            } else {
                print_snapshots(out, &list)?;
            }
        }
        SnapshotRevert { vm, name } => {
            let report = storage.revert_snapshot(&vm, &name)?;
            writeln!(out, "Domain {vm} reverted to snapshot {name}")?;
            if !report.removed_snapshots.is_empty() {
                writeln!(
                    out,
                    "Later snapshots discarded: {}",
                    report.removed_snapshots.join(", ")
                )?;
            }
        }
        SnapshotDelete { vm, name, .. } => {
            let result = long("snapshot-delete")?.run(|p| storage.delete_snapshot(&vm, &name, p));
            match result {
                Err(e) if e.is_cancelled() && !merge_began(storage, &vm, &name) => {
                    return Ok(cancelled(&format!(
                        "snapshot {name} of {vm} is unchanged (its merge had not begun)"
                    )));
                }
                Err(e) if e.is_cancelled() => {
                    return Ok(cancelled(&format!(
                        "snapshot {name} of {vm} is partly merged and stays marked 'deleting'; {vm}'s disks read exactly as before; `vmux snapshot-delete {vm} {name}` finishes it"
                    )));
                }
                other => other?,
            }
            writeln!(out, "Domain snapshot {name} deleted")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether snapshot `name` of `vm` is marked `deleting` (its merge began); unknown counts as
/// begun, so the message never claims more than is known.
fn merge_began(storage: &dyn StorageHost, vm: &str, name: &str) -> bool {
    storage.list_snapshots(vm).map_or(true, |list| {
        list.iter()
            .any(|s| s.name == name && s.state != SnapshotState::Ready)
    })
}

/// A volume another process holds is named by the running VM that holds it (a disk attached
/// live is in no definition, so the storage layer cannot tell), with the ways out.
fn in_use<T>(
    storage: &dyn StorageHost,
    pool: &str,
    volume: &str,
    result: Result<T, StorageError>,
) -> anyhow::Result<T> {
    let held = matches!(
        &result,
        Err(StorageError::Image(
            crate::storage::ImageError::InUse { .. }
        ))
    );
    let users = if held {
        storage.volume_holders(pool, volume)
    } else {
        Vec::new()
    };
    match users.first() {
        Some((vm, target)) => bail!(
            "volume {pool}/{volume} is in use by running VM '{vm}' as disk {target}; detach it with `vmux detach-disk {vm} {target}` or shut the VM down first (`vmux shutdown {vm}`)"
        ),
        None => Ok(result?),
    }
}

fn size_arg(text: &str) -> anyhow::Result<u64> {
    match parse_size(text) {
        Ok(bytes) => Ok(bytes),
        Err(message) => bail!("{message}"),
    }
}

fn print_json<T: serde::Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

fn state_word(active: bool) -> &'static str {
    if active { "active" } else { "inactive" }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

/// Prints rows under a header, columns padded to their widest cell.
fn print_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!(" {}", padded.join("   ").trim_end())
    };
    writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    )?;
    writeln!(
        out,
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 3 * widths.len())
    )?;
    for row in rows {
        writeln!(out, "{}", line(row.clone()))?;
    }
    Ok(())
}

fn print_fields(out: &mut dyn Write, fields: &[(&str, String)]) -> std::io::Result<()> {
    for (key, value) in fields {
        writeln!(out, "{:<15} {value}", format!("{key}:"))?;
    }
    Ok(())
}

fn print_pools(out: &mut dyn Write, pools: &[PoolStatus]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                state_word(p.active).to_string(),
                yes_no(p.autostart).to_string(),
                p.path.display().to_string(),
            ]
        })
        .collect();
    print_table(out, &["Name", "State", "Autostart", "Path"], &rows)
}

fn print_volumes(out: &mut dyn Write, entries: &[VolumeView]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|VolumeView { name, info }| match info {
            Ok(v) => vec![
                name.clone(),
                v.format.to_string(),
                format_size(v.capacity),
                format_size(v.allocation),
                users(v),
            ],
            Err(VolumeProblem::Symlink { target, .. }) => vec![
                name.clone(),
                "symlink".into(),
                "-".into(),
                "-".into(),
                match target {
                    Some(target) => format!("symlink to {}, not used", target.display()),
                    None => "symlink, not used".into(),
                },
            ],
            Err(VolumeProblem::Unreadable(message)) => vec![
                name.clone(),
                "?".into(),
                "-".into(),
                "-".into(),
                message.clone(),
            ],
        })
        .collect();
    print_table(
        out,
        &["Name", "Format", "Capacity", "Allocation", "Used by"],
        &rows,
    )
}

fn users(info: &VolumeInfo) -> String {
    let mut parts: Vec<String> = info
        .used_by
        .iter()
        .map(|vm| {
            if info.running.contains(vm) {
                format!("{vm} (running)")
            } else {
                vm.clone()
            }
        })
        .collect();
    if !info.backing_of.is_empty() {
        parts.push(format!("backing of {}", info.backing_of.len()));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

fn print_volume(out: &mut dyn Write, info: &VolumeInfo) -> std::io::Result<()> {
    let mut fields = vec![
        ("Name", info.name.clone()),
        ("Pool", info.pool.clone()),
        ("Path", info.path.display().to_string()),
        ("Format", info.format.to_string()),
        (
            "Capacity",
            format!("{} ({} bytes)", format_size(info.capacity), info.capacity),
        ),
        ("Allocation", format_size(info.allocation)),
    ];
    if let Some(cluster) = info.cluster_size {
        fields.push(("Cluster size", format_size(cluster)));
    }
    if let Some(backing) = &info.backing {
        let format = backing
            .format
            .map(|f| f.to_string())
            .unwrap_or("format not recorded".into());
        let mut text = format!("{} ({format})", backing.path.display());
        if let Some(why) = &info.backing_refused {
            text.push_str(&format!("; not followed: {why}"));
        }
        fields.push(("Backing", text));
    }
    if info.internal_snapshots > 0 {
        fields.push(("Int. snapshots", info.internal_snapshots.to_string()));
    }
    fields.push(("Used by", users(info)));
    for overlay in &info.backing_of {
        fields.push(("Backing of", overlay.display().to_string()));
    }
    print_fields(out, &fields)
}

fn print_snapshots(out: &mut dyn Write, list: &[SnapshotInfo]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let state = match (s.state, s.current) {
                (SnapshotState::Ready, true) => "current".to_string(),
                (SnapshotState::Ready, false) => "ready".to_string(),
                (SnapshotState::Deleting, _) => "deleting (interrupted)".to_string(),
                (SnapshotState::Creating, _) => "creating".to_string(),
            };
            let disks: Vec<&str> = s.disks.iter().map(|(t, _)| t.as_str()).collect();
            vec![
                s.name.clone(),
                format_timestamp(s.created),
                state,
                disks.join(","),
            ]
        })
        .collect();
    print_table(out, &["Name", "Creation Time", "State", "Disks"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: StorageCommand,
    }

    #[test]
    fn verbs_use_virsh_names() {
        let cli = Cli::try_parse_from([
            "vmux",
            "vol-create-as",
            "default",
            "web1.qcow2",
            "20G",
            "--preallocate",
        ])
        .expect("parse");
        assert_eq!(
            cli.cmd,
            StorageCommand::VolCreateAs {
                pool: "default".into(),
                volume: "web1.qcow2".into(),
                size: "20G".into(),
                format: None,
                preallocate: true,
            }
        );
        assert!(
            Cli::try_parse_from(["vmux", "pool-define-as", "fast", "--target", "/srv"]).is_ok()
        );
        assert!(Cli::try_parse_from(["vmux", "snapshot-revert", "web1", "s1"]).is_ok());
    }

    #[test]
    fn an_unknown_format_is_refused_at_parse_time() {
        let err = Cli::try_parse_from([
            "vmux",
            "vol-convert",
            "default",
            "a.qcow2",
            "a.vmdk",
            "--format",
            "vmdk",
        ])
        .err()
        .expect("must fail");
        assert!(err.to_string().contains("raw or qcow2"), "{err}");
    }

    #[test]
    fn a_bad_size_names_the_expected_form() {
        let err = size_arg("lots").expect_err("must fail");
        assert!(err.to_string().contains("20GiB"), "{err}");
    }
}
