//! Errors that cross the SSH link: [`RemoteError`] (an error raised on the remote host, carried
//! as its message and its causes' messages, so it reads and chains exactly as it did there) and
//! [`WireError`] (what a failed call's reply carries: that chain, plus the kind of the few
//! errors front ends act on, rebuilt into their typed variants on this side).

use crate::client::ClientError;
use crate::config::{ConfigError, DefinitionError};
use crate::network::NetworkError;
use crate::storage::{ImageError, StorageError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// An error raised on a remote host: its message, then its cause's, and so on. `Display` is the
/// message and `source()` the cause, so `{:#}` prints the same chain as on that host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// This level's message.
    pub message: String,
    /// The cause, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Box<RemoteError>>,
}

impl RemoteError {
    /// An error with no cause.
    pub fn new(message: impl Into<String>) -> RemoteError {
        RemoteError {
            message: message.into(),
            cause: None,
        }
    }

    /// `error` and its whole `source()` chain, as messages.
    pub fn capture(error: &(dyn std::error::Error + 'static)) -> RemoteError {
        RemoteError {
            message: error.to_string(),
            cause: error
                .source()
                .map(|cause| Box::new(RemoteError::capture(cause))),
        }
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

/// The kinds of host error that front ends tell apart (the rest are only shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorKind {
    /// Only shown.
    Other,
    /// [`ClientError::Invalid`]: a change the host refuses (`vmux edit` re-opens the editor).
    Invalid {
        /// The host's words.
        message: String,
    },
    /// [`ClientError::NotRunning`].
    NotRunning {
        /// VM name.
        name: String,
    },
    /// [`ClientError::AlreadyRunning`].
    AlreadyRunning {
        /// VM name.
        name: String,
    },
    /// [`ClientError::LiveNeedsRunning`].
    LiveNeedsRunning {
        /// VM name.
        name: String,
    },
    /// [`ConfigError::UnknownVm`].
    UnknownVm {
        /// VM name.
        name: String,
    },
    /// [`ConfigError::VmExists`].
    VmExists {
        /// VM name.
        name: String,
    },
    /// [`ConfigError::BrokenVm`]: `vmux edit` and `vmux info` show the broken file's problem.
    BrokenVm {
        /// VM name.
        name: String,
        /// Where and why (the path is the remote host's).
        definition: DefinitionError,
    },
    /// A long operation was cancelled (it cleaned up as after a failure).
    Cancelled,
    /// `StorageError::PoolActive`.
    PoolActive {
        /// Pool name.
        pool: String,
    },
    /// `StorageError::UndefineDefault`.
    UndefineDefault {
        /// The default pool's directory.
        path: PathBuf,
    },
    /// `StorageError::UnknownVolume`.
    UnknownVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// `StorageError::DestinationExists`.
    DestinationExists {
        /// The file.
        path: PathBuf,
    },
    /// `ImageError::FormatUnknown`: `create --image` then says how to import the file.
    FormatUnknown {
        /// The image file.
        path: PathBuf,
    },
    /// `ImageError::FormatAmbiguous`: as `FormatUnknown`.
    FormatAmbiguous {
        /// The image file.
        path: PathBuf,
    },
    /// `NetworkError::UnknownNetwork`.
    UnknownNetwork {
        /// Network name.
        name: String,
    },
    /// `NetworkError::MissingCapability`.
    MissingCapability,
    /// [`ConfigError::Changed`]: the editor's save lost a race.
    Changed {
        /// VM name.
        name: String,
    },
}

/// What a failed call's reply carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The kind, when front ends act on it.
    #[serde(flatten)]
    pub kind: ErrorKind,
    /// The error as it reads on the remote host.
    pub error: RemoteError,
}

impl WireError {
    /// Any error, only to be shown.
    pub fn other(error: &(dyn std::error::Error + 'static)) -> WireError {
        WireError {
            kind: ErrorKind::Other,
            error: RemoteError::capture(error),
        }
    }

    /// A host error, with its kind when front ends act on it.
    pub fn from_client(error: &ClientError) -> WireError {
        let kind = match error {
            ClientError::Invalid(message) => ErrorKind::Invalid {
                message: message.clone(),
            },
            ClientError::NotRunning(name) => ErrorKind::NotRunning { name: name.clone() },
            ClientError::AlreadyRunning(name) => ErrorKind::AlreadyRunning { name: name.clone() },
            ClientError::LiveNeedsRunning(name) => {
                ErrorKind::LiveNeedsRunning { name: name.clone() }
            }
            ClientError::Config(ConfigError::UnknownVm(name)) => {
                ErrorKind::UnknownVm { name: name.clone() }
            }
            ClientError::Config(ConfigError::VmExists(name)) => {
                ErrorKind::VmExists { name: name.clone() }
            }
            ClientError::Config(ConfigError::Changed(name)) => {
                ErrorKind::Changed { name: name.clone() }
            }
            ClientError::Config(ConfigError::BrokenVm { name, source }) => ErrorKind::BrokenVm {
                name: name.clone(),
                definition: source.clone(),
            },
            ClientError::Remote(wire) => wire.kind.clone(),
            _ => ErrorKind::Other,
        };
        WireError {
            kind,
            error: RemoteError::capture(error),
        }
    }

    /// A storage error, with its kind when front ends act on it.
    pub fn from_storage(error: &StorageError) -> WireError {
        let kind = match error {
            e if e.is_cancelled() => ErrorKind::Cancelled,
            StorageError::PoolActive(pool) => ErrorKind::PoolActive { pool: pool.clone() },
            StorageError::UndefineDefault(path) => {
                ErrorKind::UndefineDefault { path: path.clone() }
            }
            StorageError::UnknownVolume { pool, volume } => ErrorKind::UnknownVolume {
                pool: pool.clone(),
                volume: volume.clone(),
            },
            StorageError::DestinationExists(path) => {
                ErrorKind::DestinationExists { path: path.clone() }
            }
            StorageError::Image(ImageError::FormatUnknown { path }) => {
                ErrorKind::FormatUnknown { path: path.clone() }
            }
            StorageError::Image(ImageError::FormatAmbiguous { path }) => {
                ErrorKind::FormatAmbiguous { path: path.clone() }
            }
            StorageError::Remote(wire) => wire.kind.clone(),
            _ => ErrorKind::Other,
        };
        WireError {
            kind,
            error: RemoteError::capture(error),
        }
    }

    /// The storage error this was on the remote host: its typed variant when front ends act
    /// on it, else [`StorageError::Remote`] (which reads the same).
    pub fn into_storage(self) -> StorageError {
        match self.kind {
            ErrorKind::Cancelled => crate::progress::Cancelled.into(),
            ErrorKind::PoolActive { pool } => StorageError::PoolActive(pool),
            ErrorKind::UndefineDefault { path } => StorageError::UndefineDefault(path),
            ErrorKind::UnknownVolume { pool, volume } => {
                StorageError::UnknownVolume { pool, volume }
            }
            ErrorKind::DestinationExists { path } => StorageError::DestinationExists(path),
            ErrorKind::FormatUnknown { path } => {
                StorageError::Image(ImageError::FormatUnknown { path })
            }
            ErrorKind::FormatAmbiguous { path } => {
                StorageError::Image(ImageError::FormatAmbiguous { path })
            }
            _ => StorageError::Remote(Box::new(self)),
        }
    }

    /// A network error, with its kind when front ends act on it.
    pub fn from_network(error: &NetworkError) -> WireError {
        let kind = match error {
            NetworkError::UnknownNetwork(name) => ErrorKind::UnknownNetwork { name: name.clone() },
            NetworkError::MissingCapability => ErrorKind::MissingCapability,
            NetworkError::Remote(wire) => wire.kind.clone(),
            _ => ErrorKind::Other,
        };
        WireError {
            kind,
            error: RemoteError::capture(error),
        }
    }

    /// The network error this was on the remote host: its typed variant when front ends act
    /// on it, else [`NetworkError::Remote`] (which reads the same).
    pub fn into_network(self) -> NetworkError {
        match self.kind {
            ErrorKind::UnknownNetwork { name } => NetworkError::UnknownNetwork(name),
            ErrorKind::MissingCapability => NetworkError::MissingCapability,
            _ => NetworkError::Remote(Box::new(self)),
        }
    }

    /// The host error this was on the remote host: its typed variant when front ends act on
    /// it, else [`ClientError::Remote`] (which reads the same).
    pub fn into_client(self) -> ClientError {
        match self.kind {
            ErrorKind::Invalid { message } => ClientError::Invalid(message),
            ErrorKind::NotRunning { name } => ClientError::NotRunning(name),
            ErrorKind::AlreadyRunning { name } => ClientError::AlreadyRunning(name),
            ErrorKind::LiveNeedsRunning { name } => ClientError::LiveNeedsRunning(name),
            ErrorKind::UnknownVm { name } => ClientError::Config(ConfigError::UnknownVm(name)),
            ErrorKind::VmExists { name } => ClientError::Config(ConfigError::VmExists(name)),
            ErrorKind::Changed { name } => ClientError::Config(ConfigError::Changed(name)),
            ErrorKind::BrokenVm { name, definition } => {
                ClientError::Config(ConfigError::BrokenVm {
                    name,
                    source: definition,
                })
            }
            _ => ClientError::Remote(Box::new(self)),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for WireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_captured_error_chains_like_the_original() {
        let original = Outer(std::io::Error::other("inner"));
        let remote = RemoteError::capture(&original);
        assert_eq!(
            format!("{:#}", anyhow::Error::from(remote)),
            format!("{:#}", anyhow::Error::from(original))
        );
    }

    #[test]
    fn storage_and_network_errors_front_ends_act_on_come_back_typed() {
        let storage = StorageError::UnknownVolume {
            pool: "default".into(),
            volume: "a.qcow2".into(),
        };
        let back = WireError::from_storage(&storage).into_storage();
        assert!(
            matches!(back, StorageError::UnknownVolume { .. }),
            "{back:?}"
        );
        assert_eq!(back.to_string(), storage.to_string());
        let network = NetworkError::UnknownNetwork("lab".into());
        let back = WireError::from_network(&network).into_network();
        assert!(matches!(back, NetworkError::UnknownNetwork(_)), "{back:?}");
        assert_eq!(back.to_string(), network.to_string());
    }

    #[test]
    fn the_errors_front_ends_act_on_come_back_typed() {
        for error in [
            ClientError::Invalid("vCPU count 9 is above max_vcpus 4".into()),
            ClientError::NotRunning("web".into()),
            ClientError::AlreadyRunning("web".into()),
            ClientError::Config(ConfigError::UnknownVm("web".into())),
            ClientError::Config(ConfigError::BrokenVm {
                name: "web".into(),
                source: DefinitionError {
                    path: "/v/web.toml".into(),
                    line: Some(3),
                    reason: "bad".into(),
                },
            }),
        ] {
            let text = format!(
                "{:#}",
                anyhow::Error::from(ClientError::Invalid(error.to_string()))
            );
            let wire: WireError = serde_json::from_str(
                &serde_json::to_string(&WireError::from_client(&error)).expect("encodes"),
            )
            .expect("decodes");
            let back = wire.into_client();
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&error)
            );
            assert_eq!(back.to_string(), error.to_string(), "{text}");
        }
    }

    #[test]
    fn other_errors_read_the_same_after_the_trip() {
        let error = ClientError::StartFailed {
            name: "web".into(),
            message: "/dev/kvm is busy".into(),
        };
        let back = WireError::from_client(&error).into_client();
        assert!(matches!(back, ClientError::Remote(_)));
        assert_eq!(back.to_string(), error.to_string());
    }
}
