//! Storage and network operations the TUI runs on worker threads: [`Task`]s. Each has the
//! words the status line shows while it runs, the message it leaves when done (or, when
//! cancelled, what it left as it was), and which pane's data it changes.
//!
//! The long ones (full clone, convert, upload, wipe, and the creation wizard's copy of a disk
//! image into a pool) report their progress themselves through
//! the [`Progress`] handle the runtime gives [`Task::run`]: the storage layer counts the bytes it
//! has walked of the bytes it has to walk, and the same handle cancels the task, which then
//! cleans up as after a failure.

use super::error_text::error_chain;
use super::image_setup::ImageImport;
use crate::client::HostApi;
use crate::config::{NetworkConfig, format_size};
use crate::progress::{Progress, ProgressSnapshot};
use crate::storage::{ImageFormat, StorageError, VolumeSpec};
use std::path::PathBuf;
use std::time::Duration;

/// Identifies a running task.
pub type TaskId = u64;

/// A storage or network operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// `vol-create-as`.
    CreateVolume {
        /// Pool.
        pool: String,
        /// New volume name.
        name: String,
        /// Size, format, preallocation.
        spec: VolumeSpec,
    },
    /// `vol-resize`.
    ResizeVolume {
        /// Pool.
        pool: String,
        /// Volume.
        name: String,
        /// New size in bytes.
        capacity: u64,
        /// The user agreed to shrink.
        shrink: bool,
    },
    /// `vol-clone`.
    CloneVolume {
        /// Pool.
        pool: String,
        /// Source volume.
        source: String,
        /// New volume.
        name: String,
        /// qcow2 overlay on the source instead of a full copy.
        linked: bool,
    },
    /// `vol-convert`.
    ConvertVolume {
        /// Pool.
        pool: String,
        /// Source volume.
        source: String,
        /// New volume.
        name: String,
        /// Its format.
        format: ImageFormat,
    },
    /// `vol-upload`: replace a volume's content with an image file's.
    UploadVolume {
        /// Pool.
        pool: String,
        /// Volume.
        name: String,
        /// The image file.
        source: PathBuf,
    },
    /// `vol-wipe`.
    WipeVolume {
        /// Pool.
        pool: String,
        /// Volume.
        name: String,
    },
    /// `vol-delete`.
    DeleteVolume {
        /// Pool.
        pool: String,
        /// Volume.
        name: String,
    },
    /// The creation wizard's import of a disk image file into a pool (`vol-import`, a copy or
    /// `--linked` on a base volume copied from the file), run before the VM is made; the
    /// wizard queues the rest of the creation when it is done.
    ImportImage {
        /// The VM the image is for (the status line names it).
        vm: String,
        /// The image, and the pool and volume it becomes.
        import: ImageImport,
    },
    /// `pool-start`.
    StartPool(String),
    /// `pool-destroy` (volumes stay).
    StopPool(String),
    /// `pool-autostart`.
    PoolAutostart(String, bool),
    /// `net-define-as`; an empty bridge of a nat/isolated network gets a free name.
    DefineNetwork(Box<NetworkConfig>),
    /// `net-start`.
    StartNetwork(String),
    /// `net-destroy`.
    StopNetwork(String),
    /// `net-undefine`.
    UndefineNetwork(String),
    /// `net-autostart`.
    NetworkAutostart(String, bool),
}

/// Which loaded data a finished task makes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// Pools and volumes.
    Storage,
    /// Networks.
    Networks,
}

/// How far a running task has got, as the task list shows it: the storage layer's own count
/// of bytes done of bytes to do, with the rate and time left the runtime measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskProgress {
    /// Bytes done of bytes to do (from the task's [`Progress`] handle).
    pub snapshot: ProgressSnapshot,
    /// Bytes per second over the last few seconds, once known.
    pub rate: Option<f64>,
    /// Time left at that rate, once known.
    pub eta: Option<Duration>,
}

impl TaskProgress {
    /// The done fraction, 0.0..=1.0.
    pub fn fraction(&self) -> f64 {
        self.snapshot.fraction()
    }

    /// `640M of 1.5G · 85M/s · 12s left` (rate and time left once they are known).
    pub fn words(&self) -> String {
        match self.rate_words() {
            Some(rate) => format!("{} · {rate}", self.bytes_words()),
            None => self.bytes_words(),
        }
    }

    /// `640M of 1.5G`.
    pub fn bytes_words(&self) -> String {
        format!(
            "{} of {}",
            format_size(self.snapshot.done),
            format_size(self.snapshot.total)
        )
    }

    /// `85M/s · 12s left`, once the rate is known.
    pub fn rate_words(&self) -> Option<String> {
        let rate = format!("{}/s", format_size(self.rate? as u64));
        Some(match self.eta {
            Some(eta) => format!("{rate} · {} left", duration_words(eta)),
            None => rate,
        })
    }
}

/// `12s`, `3m05s`, `1h02m`.
pub fn duration_words(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// How a task ended, as the status line reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// It worked; what the status line says.
    Done(String),
    /// It failed; the error chain.
    Failed(String),
    /// It was cancelled; what was left as it was.
    Cancelled(String),
}

impl Task {
    /// What the status line says while it runs: "cloning default/a.qcow2 to b.qcow2".
    pub fn progress_words(&self) -> String {
        match self {
            Task::CreateVolume { pool, name, spec } => {
                format!("creating {pool}/{name} ({})", format_size(spec.capacity))
            }
            Task::ResizeVolume {
                pool,
                name,
                capacity,
                ..
            } => format!("resizing {pool}/{name} to {}", format_size(*capacity)),
            Task::CloneVolume {
                pool,
                source,
                name,
                linked,
            } => format!(
                "{} {pool}/{source} to {name}",
                if *linked { "linking" } else { "cloning" }
            ),
            Task::ConvertVolume {
                pool,
                source,
                name,
                format,
            } => format!("converting {pool}/{source} to {name} ({format})"),
            Task::UploadVolume { pool, name, source } => {
                format!("uploading {} into {pool}/{name}", source.display())
            }
            Task::WipeVolume { pool, name } => format!("wiping {pool}/{name}"),
            Task::ImportImage { vm, import } => format!(
                "importing {}/{} for {vm} from {}",
                import.pool, import.volume, import.source
            ),
            Task::DeleteVolume { pool, name } => format!("deleting {pool}/{name}"),
            Task::StartPool(pool) => format!("starting pool {pool}"),
            Task::StopPool(pool) => format!("stopping pool {pool}"),
            Task::PoolAutostart(pool, _) => format!("saving pool {pool}"),
            Task::DefineNetwork(config) => format!("defining network {}", config.name),
            Task::StartNetwork(name) => format!("starting network {name}"),
            Task::StopNetwork(name) => format!("stopping network {name}"),
            Task::UndefineNetwork(name) => format!("deleting network {name}"),
            Task::NetworkAutostart(name, _) => format!("saving network {name}"),
        }
    }

    /// Which data to reload when it is done.
    pub fn touches(&self) -> Touches {
        match self {
            Task::DefineNetwork(_)
            | Task::StartNetwork(_)
            | Task::StopNetwork(_)
            | Task::UndefineNetwork(_)
            | Task::NetworkAutostart(..) => Touches::Networks,
            _ => Touches::Storage,
        }
    }

    /// Whether it reports progress and can be cancelled (the long ones: a full clone,
    /// convert, upload, wipe, an image copied into a pool). The others end within moments on
    /// their own.
    pub fn cancellable(&self) -> bool {
        match self {
            Task::ImportImage { import, .. } => import.copies(),
            _ => matches!(
                self,
                Task::CloneVolume { linked: false, .. }
                    | Task::ConvertVolume { .. }
                    | Task::UploadVolume { .. }
                    | Task::WipeVolume { .. }
            ),
        }
    }

    /// What a cancel left as it was, for the status line. `at` is where the task stood (a
    /// wipe says how far it got).
    pub fn cancelled_words(&self, at: &ProgressSnapshot) -> String {
        match self {
            Task::CloneVolume {
                pool, source, name, ..
            }
            | Task::ConvertVolume {
                pool, source, name, ..
            } => format!("cancelled: {pool}/{name} was not created; {pool}/{source} is unchanged"),
            Task::UploadVolume { pool, name, source } => format!(
                "cancelled: {pool}/{name} still holds its old content; {} is unchanged",
                source.display()
            ),
            Task::WipeVolume { pool, name } => format!(
                "cancelled: {pool}/{name} is partly wiped (its first {} of {} were overwritten with zeroes); wipe it again to finish",
                format_size(at.done),
                format_size(at.total)
            ),
            Task::ImportImage { vm, import } => format!(
                "cancelled: {vm} was not created; {} is unchanged",
                import.source
            ),
            other => format!("cancelled: {}", other.progress_words()),
        }
    }

    /// Carries the task out, reporting on `progress` (which also cancels it), and says how it
    /// ended. Blocking: call it on a worker thread.
    pub fn run(&self, backends: &HostApi, progress: &Progress) -> TaskOutcome {
        match self.execute(backends, progress) {
            Ok(message) => TaskOutcome::Done(message),
            Err(Failure::Storage(e)) if e.is_cancelled() => {
                TaskOutcome::Cancelled(self.cancelled_words(&progress.snapshot()))
            }
            Err(Failure::Storage(e)) => TaskOutcome::Failed(error_chain(&e)),
            Err(Failure::Other(message)) => TaskOutcome::Failed(message),
        }
    }

    fn execute(&self, backends: &HostApi, progress: &Progress) -> Result<String, Failure> {
        let storage = backends.storage.as_ref();
        let networks = backends.networks.as_ref();
        let chain = |e: &dyn std::error::Error| Failure::Other(error_chain(e));
        match self {
            Task::CreateVolume { pool, name, spec } => storage
                .create_volume(pool, name, *spec)
                .map(|info| {
                    format!(
                        "created {pool}/{name}: {} {}",
                        info.format,
                        format_size(info.capacity)
                    )
                })
                .map_err(Failure::Storage),
            Task::ResizeVolume {
                pool,
                name,
                capacity,
                shrink,
            } => storage
                .resize_volume(pool, name, *capacity, *shrink)
                .map(|info| format!("{pool}/{name} is now {}", format_size(info.capacity)))
                .map_err(Failure::Storage),
            Task::CloneVolume {
                pool,
                source,
                name,
                linked,
            } => storage
                .clone_volume(pool, source, name, *linked, progress)
                .map(|_| {
                    if *linked {
                        format!(
                            "created {pool}/{name}, a linked clone of {source} (keep {source} unchanged while {name} exists)"
                        )
                    } else {
                        format!("cloned {pool}/{source} to {name}")
                    }
                })
                .map_err(Failure::Storage),
            Task::ConvertVolume {
                pool,
                source,
                name,
                format,
            } => storage
                .convert_volume(pool, source, name, Some(*format), progress)
                .map(|_| format!("converted {pool}/{source} to {name} ({format})"))
                .map_err(Failure::Storage),
            Task::UploadVolume { pool, name, source } => storage
                .upload_volume(pool, name, source, None, progress)
                .map(|_| format!("uploaded {} into {pool}/{name}", source.display()))
                .map_err(Failure::Storage),
            Task::WipeVolume { pool, name } => storage
                .wipe_volume(pool, name, progress)
                .map(|_| format!("wiped {pool}/{name}: it reads as zeroes now"))
                .map_err(Failure::Storage),
            Task::ImportImage { vm, import } => storage
                .import_image(
                    &import.pool,
                    &import.volume,
                    &import.source,
                    None,
                    import.linked,
                    progress,
                )
                .map(|_| {
                    format!(
                        "imported {} into {}/{} for {vm}",
                        import.source, import.pool, import.volume
                    )
                })
                .map_err(|e| {
                    if e.is_cancelled() {
                        Failure::Storage(e)
                    } else {
                        Failure::Other(format!("{vm} was not created: {}", error_chain(&e)))
                    }
                }),
            Task::DeleteVolume { pool, name } => storage
                .delete_volume(pool, name)
                .map(|()| format!("deleted {pool}/{name}"))
                .map_err(Failure::Storage),
            Task::StartPool(pool) => storage
                .start_pool(pool)
                .map(|()| format!("pool {pool} started"))
                .map_err(Failure::Storage),
            Task::StopPool(pool) => storage
                .stop_pool(pool)
                .map(|()| format!("pool {pool} stopped; its volumes are kept"))
                .map_err(Failure::Storage),
            Task::PoolAutostart(pool, on) => storage
                .set_pool_autostart(pool, *on)
                .map(|()| autostart_words("pool", pool, *on))
                .map_err(Failure::Storage),
            Task::DefineNetwork(config) => {
                let mut config = (**config).clone();
                if config.bridge.is_empty() {
                    config.bridge = networks
                        .unused_bridge_name(&config.name)
                        .map_err(|e| chain(&e))?;
                }
                networks
                    .define(&config)
                    .map(|()| {
                        format!(
                            "network {} defined on bridge {}; s starts it",
                            config.name, config.bridge
                        )
                    })
                    .map_err(|e| chain(&e))
            }
            Task::StartNetwork(name) => networks
                .start(name)
                .map(|()| format!("network {name} started"))
                .map_err(|e| chain(&e)),
            Task::StopNetwork(name) => networks
                .stop(name)
                .map(|()| format!("network {name} stopped"))
                .map_err(|e| chain(&e)),
            Task::UndefineNetwork(name) => networks
                .undefine(name)
                .map(|notes| {
                    let mut text = format!("network {name} deleted");
                    for note in notes {
                        text.push_str("; ");
                        text.push_str(&note);
                    }
                    text
                })
                .map_err(|e| chain(&e)),
            Task::NetworkAutostart(name, on) => networks
                .set_autostart(name, *on)
                .map(|()| autostart_words("network", name, *on))
                .map_err(|e| chain(&e)),
        }
    }
}

/// Why [`Task::execute`] failed: a storage error (which may be a cancel), or a message.
enum Failure {
    Storage(StorageError),
    Other(String),
}

fn autostart_words(what: &str, name: &str, on: bool) -> String {
    if on {
        format!("{what} {name} will start with `vmux autostart-all`")
    } else {
        format!("{what} {name} no longer autostarts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_words_show_rate_and_time_left_once_known() {
        let mut progress = TaskProgress {
            snapshot: ProgressSnapshot {
                done: 640 << 20,
                total: 1536 << 20,
                finished: false,
                cancelled: false,
            },
            rate: None,
            eta: None,
        };
        assert_eq!(progress.words(), "640M of 1.5G");
        progress.rate = Some((85 << 20) as f64);
        progress.eta = Some(Duration::from_secs(185));
        assert_eq!(progress.words(), "640M of 1.5G · 85M/s · 3m05s left");
    }

    #[test]
    fn only_long_tasks_can_be_cancelled() {
        let clone = |linked| Task::CloneVolume {
            pool: "default".into(),
            source: "a.qcow2".into(),
            name: "b.qcow2".into(),
            linked,
        };
        assert!(clone(false).cancellable());
        assert!(!clone(true).cancellable());
        assert!(!Task::StartPool("default".into()).cancellable());
    }

    fn import(linked: bool) -> Task {
        Task::ImportImage {
            vm: "web1".into(),
            import: ImageImport {
                source: crate::client::ImageSource::File("/srv/debian.qcow2".into()),
                pool: "default".into(),
                volume: "web1.qcow2".into(),
                linked,
            },
        }
    }

    #[test]
    fn an_image_file_can_be_cancelled_and_an_overlay_on_a_volume_is_instant() {
        assert!(import(false).cancellable());
        assert!(import(true).cancellable(), "a linked file copies its base");
        let overlay = Task::ImportImage {
            vm: "web1".into(),
            import: ImageImport {
                source: crate::client::ImageSource::Volume {
                    pool: "default".into(),
                    volume: "debian-12.qcow2".into(),
                },
                pool: "default".into(),
                volume: "web1.qcow2".into(),
                linked: true,
            },
        };
        assert!(!overlay.cancellable());
        assert_eq!(
            import(false).progress_words(),
            "importing default/web1.qcow2 for web1 from /srv/debian.qcow2"
        );
    }

    #[test]
    fn a_cancelled_import_says_the_vm_was_not_created_and_the_image_is_unchanged() {
        assert_eq!(
            import(false).cancelled_words(&ProgressSnapshot::default()),
            "cancelled: web1 was not created; /srv/debian.qcow2 is unchanged"
        );
    }

    #[test]
    fn a_cancelled_import_leaves_no_volume() {
        let storage = crate::client::FakeStorage::new();
        let backends = HostApi {
            vms: std::sync::Arc::new(crate::client::fake::FakeHost::new()),
            storage: std::sync::Arc::new(storage),
            networks: std::sync::Arc::new(crate::client::FakeNetworks::new()),
        };
        let progress = Progress::new();
        progress.cancel();
        let outcome = import(false).run(&backends, &progress);
        assert!(matches!(outcome, TaskOutcome::Cancelled(_)), "{outcome:?}");
        let snapshot = backends.storage.snapshot().expect("snapshot");
        assert!(
            snapshot
                .pools
                .iter()
                .all(|p| p.volumes.iter().all(|v| v.name != "web1.qcow2"))
        );
    }

    #[test]
    fn a_cancelled_clone_says_what_was_left_as_it_was() {
        let task = Task::CloneVolume {
            pool: "default".into(),
            source: "web1.qcow2".into(),
            name: "web2.qcow2".into(),
            linked: false,
        };
        assert_eq!(
            task.cancelled_words(&ProgressSnapshot::default()),
            "cancelled: default/web2.qcow2 was not created; default/web1.qcow2 is unchanged"
        );
    }
}
