//! [`CloudInitError`]: why a `--cloud-init` option string or a seed cannot be made. Messages
//! name the option or file and the fix.

use std::io;
use std::path::PathBuf;

/// The option names `--cloud-init` takes, for messages.
pub const KEYS: &str =
    "user, ssh-key, root-password, user-password, hostname, user-data, network-config";

/// Errors of option parsing and seed building.
#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    /// An option name vmux does not know.
    #[error("unknown --cloud-init option '{key}'; the options are {KEYS}")]
    UnknownKey {
        /// The name given.
        key: String,
    },
    /// An option without `=VALUE` or with an empty value.
    #[error("--cloud-init option '{key}' needs a value, e.g. {example}")]
    MissingValue {
        /// The option.
        key: String,
        /// An example (`user=alice`).
        example: &'static str,
    },
    /// An option given twice (only `ssh-key` may repeat).
    #[error("--cloud-init option '{key}' is given twice; give it once (only ssh-key may repeat)")]
    Duplicate {
        /// The option.
        key: String,
    },
    /// A user name cloud-init and the guest's useradd would refuse.
    #[error(
        "'{name}' is not a usable user name: {reason}; use lower-case letters, digits, '-' and '_', starting with a letter or '_', at most 32 characters"
    )]
    InvalidUser {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A host name that is not a valid DNS name.
    #[error(
        "'{name}' is not a valid host name: {reason}; use letters, digits and '-', in dot-separated labels of at most 63 characters"
    )]
    InvalidHostname {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Options that cannot be combined.
    #[error("{0}")]
    Conflict(String),
    /// A file the options name cannot be read.
    #[error("cannot read the {what} file {}", path.display())]
    ReadFile {
        /// "SSH key", "user-data", "network-config".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A file is larger than a seed holds.
    #[error("the {what} file {} is {size} bytes, more than the {limit} a seed holds", path.display())]
    FileTooLarge {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An `ssh-key` file that holds no public key.
    #[error("{} {reason}; give a public key file such as ~/.ssh/id_ed25519.pub", path.display())]
    NotAPublicKey {
        /// The file.
        path: PathBuf,
        /// What it holds instead.
        reason: &'static str,
    },
    /// A user-data or network-config file that is not valid YAML.
    #[error("the {what} file {} is not valid YAML: {reason}; fix it (cloud-init would ignore it)", path.display())]
    BadYaml {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The system's random source failed (generated passwords, salts).
    #[error("cannot get random bytes from the system for a password or salt: {0}")]
    Random(String),
    /// Password hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// Building the FAT volume failed.
    #[error("cannot build the cloud-init seed's FAT volume")]
    Fat(#[source] io::Error),
    /// Writing the seed file failed.
    #[error("cannot write the cloud-init seed {}", path.display())]
    Write {
        /// The seed file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}
