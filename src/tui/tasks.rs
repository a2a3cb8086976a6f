//! Storage and network operations the TUI runs on worker threads: [`Task`]s. Each has the
//! words the status line shows while it runs, the message it leaves when done, which pane's
//! data it changes, and, for the long copies (clone, convert, upload), how to measure its
//! progress ([`ProgressPlan`]).
//!
//! The storage library has no progress callback, so progress is estimated honestly from the
//! outside: the bytes the unfinished output file holds on disk against the bytes of data the
//! source holds (its file plus backing files). The status line says it is an estimate.

use super::action::error_chain;
use super::backends::Backends;
use crate::config::{NetworkConfig, format_size};
use crate::storage::{ImageFormat, VolumeSpec};
use std::path::PathBuf;

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

/// How the total of a measured task is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Total {
    /// The data of a volume in the same pool (file plus backing files).
    Volume(String),
    /// The data of an image file anywhere.
    File(PathBuf),
}

/// How to measure a long copy: the output volume whose temporary file grows, and the data it
/// is expected to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressPlan {
    /// Pool of the output.
    pub pool: String,
    /// The output volume.
    pub output: String,
    /// What the output is measured against.
    pub total: Total,
}

/// How far a measured task has got, in bytes of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes the output holds on disk so far.
    pub written: u64,
    /// Bytes of data the source holds (the expected end, roughly).
    pub total: u64,
}

impl Progress {
    /// Done fraction, 0.0..=0.99: the output's size is an estimate (qcow2 metadata, holes), so
    /// the bar never claims to be finished before the task says so.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        (self.written as f64 / self.total as f64).clamp(0.0, 0.99)
    }

    /// `1.2G of ~3.0G written`.
    pub fn words(&self) -> String {
        format!(
            "{} of ~{} written",
            format_size(self.written),
            format_size(self.total)
        )
    }
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

    /// How to measure its progress, for the long copies.
    pub fn progress_plan(&self) -> Option<ProgressPlan> {
        match self {
            Task::CloneVolume {
                pool,
                source,
                name,
                linked: false,
            }
            | Task::ConvertVolume {
                pool, source, name, ..
            } => Some(ProgressPlan {
                pool: pool.clone(),
                output: name.clone(),
                total: Total::Volume(source.clone()),
            }),
            Task::UploadVolume { pool, name, source } => Some(ProgressPlan {
                pool: pool.clone(),
                output: name.clone(),
                total: Total::File(source.clone()),
            }),
            _ => None,
        }
    }

    /// Carries the task out and returns what the status line says afterwards. Blocking: call
    /// it on a worker thread.
    pub fn run(&self, backends: &Backends) -> Result<String, String> {
        let storage = backends.storage.as_ref();
        let networks = backends.networks.as_ref();
        let chain = |e: &dyn std::error::Error| error_chain(e);
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
                .map_err(|e| chain(&e)),
            Task::ResizeVolume {
                pool,
                name,
                capacity,
                shrink,
            } => storage
                .resize_volume(pool, name, *capacity, *shrink)
                .map(|info| format!("{pool}/{name} is now {}", format_size(info.capacity)))
                .map_err(|e| chain(&e)),
            Task::CloneVolume {
                pool,
                source,
                name,
                linked,
            } => storage
                .clone_volume(pool, source, name, *linked)
                .map(|_| {
                    if *linked {
                        format!(
                            "created {pool}/{name}, a linked clone of {source} (keep {source} unchanged while {name} exists)"
                        )
                    } else {
                        format!("cloned {pool}/{source} to {name}")
                    }
                })
                .map_err(|e| chain(&e)),
            Task::ConvertVolume {
                pool,
                source,
                name,
                format,
            } => storage
                .convert_volume(pool, source, name, Some(*format))
                .map(|_| format!("converted {pool}/{source} to {name} ({format})"))
                .map_err(|e| chain(&e)),
            Task::UploadVolume { pool, name, source } => storage
                .upload_volume(pool, name, source)
                .map(|_| format!("uploaded {} into {pool}/{name}", source.display()))
                .map_err(|e| chain(&e)),
            Task::WipeVolume { pool, name } => storage
                .wipe_volume(pool, name)
                .map(|_| format!("wiped {pool}/{name}: it reads as zeroes now"))
                .map_err(|e| chain(&e)),
            Task::DeleteVolume { pool, name } => storage
                .delete_volume(pool, name)
                .map(|()| format!("deleted {pool}/{name}"))
                .map_err(|e| chain(&e)),
            Task::StartPool(pool) => storage
                .start_pool(pool)
                .map(|()| format!("pool {pool} started"))
                .map_err(|e| chain(&e)),
            Task::StopPool(pool) => storage
                .stop_pool(pool)
                .map(|()| format!("pool {pool} stopped; its volumes are kept"))
                .map_err(|e| chain(&e)),
            Task::PoolAutostart(pool, on) => storage
                .set_pool_autostart(pool, *on)
                .map(|()| autostart_words("pool", pool, *on))
                .map_err(|e| chain(&e)),
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
    fn progress_never_claims_completion() {
        let progress = Progress {
            written: 5 << 30,
            total: 4 << 30,
        };
        assert!(progress.fraction() < 1.0);
        assert_eq!(progress.words(), "5G of ~4G written");
    }

    #[test]
    fn only_full_copies_are_measured() {
        let linked = Task::CloneVolume {
            pool: "default".into(),
            source: "a.qcow2".into(),
            name: "b.qcow2".into(),
            linked: true,
        };
        assert_eq!(linked.progress_plan(), None);
        let full = Task::CloneVolume {
            pool: "default".into(),
            source: "a.qcow2".into(),
            name: "b.qcow2".into(),
            linked: false,
        };
        assert_eq!(
            full.progress_plan().map(|p| p.total),
            Some(Total::Volume("a.qcow2".into()))
        );
    }
}
