//! User intent, on disk: VM definitions (`VmConfig`, with their `DiskConfig`s and NICs),
//! storage pool definitions (`PoolConfig`) and network definitions (`NetworkConfig`) with their
//! validation, the definition stores (atomic writes) and the directories vmux keeps things in
//! (`Paths`, `VMUX_HOME`).
//!
//! Nothing here talks to KVM or to vmd; the CLI, the TUI and vmd all read definitions through
//! this module.

mod atomic;
mod disk;
mod image_format;
mod network;
mod paths;
mod pool;
mod size;
mod store;
mod vm;

pub use atomic::write_atomic;
pub use disk::{DiskConfig, DiskSource, assign_targets, validate_volume_name};
pub use image_format::ImageFormat;
pub use network::{
    Addressing, DhcpRange, IFNAME_MAX, Ipv4Net, MacAddr, NetworkConfig, NetworkMode, NicConfig,
    validate_ifname,
};
pub use paths::{Paths, VmdFiles};
pub use pool::{DEFAULT_POOL, PoolConfig, PoolStore, default_pool_path, pool_file, pools_dir};
pub use size::{format_size, parse_size};
pub use store::parse_definition;
pub(crate) use store::parse_named;
pub use store::{DefinitionError, Store, StoreLock};
pub use vm::{
    BootConfig, DEFAULT_MEMORY_BYTES, IMAGE_BOOT_TARGET, VmConfig, default_max_vcpus, validate_name,
};

use std::path::PathBuf;

/// Errors reading, validating or writing definitions.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No home directory / XDG dirs could be determined.
    #[error("cannot determine where vmux keeps its files; set VMUX_HOME=<dir> or HOME")]
    NoHome,
    /// A directory could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written atomically.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A definition file does not parse or does not validate.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// VM `name`'s definition file does not parse or does not validate.
    #[error("the definition of VM '{name}' is broken; repair it with `vmux edit {name}`")]
    BrokenVm {
        /// VM name.
        name: String,
        /// Where and why.
        #[source]
        source: DefinitionError,
    },
    /// The definition is well-formed but asks for something impossible.
    #[error("{0}")]
    Invalid(String),
    /// No VM of that name is defined.
    #[error("no VM named '{0}' is defined; `vmux list --all` shows the defined VMs")]
    UnknownVm(String),
    /// A VM of that name is already defined.
    #[error("a VM named '{0}' is already defined; pick another name or `vmux undefine {0}` first")]
    VmExists(String),
    /// No storage pool of that name is defined.
    #[error("no storage pool named '{0}' is defined; `vmux pool-list` shows the defined pools")]
    UnknownPool(String),
    /// A definition changed between being read and being replaced (`vmux edit`).
    #[error(
        "the definition of VM '{0}' changed while you were editing it (another vmux command saved it); nothing was saved: run `vmux edit {0}` again to edit the current definition"
    )]
    Changed(String),
    /// A storage pool of that name is already defined.
    #[error(
        "a storage pool named '{0}' is already defined; pick another name or `vmux pool-undefine {0}` first"
    )]
    PoolExists(String),
}
