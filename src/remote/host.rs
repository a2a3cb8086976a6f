//! [`RemoteHost`]: the VMs of a remote host, as a `client::Host` whose every method is a call
//! over a [`Link`] to that host's agent. Errors read exactly as they do on that host; the ones
//! front ends act on (not running, unknown VM, broken definition, …) come back typed.

use super::calls::{Call, Lifecycle};
use super::link::{CallError, Link};
use crate::client::{
    BrokenVm, ChangeScope, ClientError, Console, Host, RestoreOptions, UndefineOptions, VmState,
    VmStatus,
};
use crate::config::{DiskConfig, VmConfig};
use crate::protocol::{MemoryStats, SaveInfo, VmInfo, VmStats};
use serde::de::DeserializeOwned;
use std::path::Path;

/// A remote host's VMs.
#[derive(Clone)]
pub struct RemoteHost {
    link: Link,
}

impl RemoteHost {
    /// The VMs behind `link`.
    pub fn new(link: Link) -> RemoteHost {
        RemoteHost { link }
    }

    fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, ClientError> {
        self.link.call(call).map_err(client_error)
    }

    fn lifecycle(&self, name: &str, verb: Lifecycle) -> Result<(), ClientError> {
        self.call(Call::Lifecycle {
            name: name.to_string(),
            verb,
        })
    }
}

/// A failed call as a host error.
pub(super) fn client_error(error: CallError) -> ClientError {
    match error {
        CallError::Remote(wire) => wire.into_client(),
        CallError::Link(link) => ClientError::Link(link),
    }
}

impl Host for RemoteHost {
    fn list(&self) -> Vec<Result<VmStatus, BrokenVm>> {
        // A listing cannot fail; a host that cannot be asked has no VMs to show (the hosts
        // pane and `--connect` say why).
        self.call(Call::List).unwrap_or_else(|e| {
            log::warn!("{}: cannot list its VMs: {e}", self.link.label());
            Vec::new()
        })
    }

    fn status(&self, name: &str) -> Result<VmStatus, ClientError> {
        self.call(Call::Status { name: name.into() })
    }

    fn state(&self, name: &str) -> Result<VmState, ClientError> {
        self.call(Call::State { name: name.into() })
    }

    fn definition_text(&self, name: &str) -> Result<String, ClientError> {
        self.call(Call::DefinitionText { name: name.into() })
    }

    fn info(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.call(Call::Info { name: name.into() })
    }

    fn stats(&self, name: &str) -> Result<VmStats, ClientError> {
        self.call(Call::Stats { name: name.into() })
    }

    fn define(&self, config: &VmConfig) -> Result<(), ClientError> {
        self.call(Call::Define {
            config: Box::new(config.clone()),
        })
    }

    fn update(&self, config: &VmConfig) -> Result<(), ClientError> {
        self.call(Call::Update {
            config: Box::new(config.clone()),
        })
    }

    fn update_from(&self, original: &VmConfig, config: &VmConfig) -> Result<(), ClientError> {
        self.call(Call::UpdateFrom {
            original: Box::new(original.clone()),
            config: Box::new(config.clone()),
        })
    }

    fn undefine_with(&self, name: &str, options: UndefineOptions) -> Result<(), ClientError> {
        self.call(Call::Undefine {
            name: name.into(),
            options,
        })
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), ClientError> {
        self.call(Call::SetAutostart {
            name: name.into(),
            enabled,
        })
    }

    fn start(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Start)
    }

    fn shutdown(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Shutdown)
    }

    fn destroy(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Destroy)
    }

    fn reboot(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Reboot)
    }

    fn reset(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Reset)
    }

    fn suspend(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Suspend)
    }

    fn resume(&self, name: &str) -> Result<(), ClientError> {
        self.lifecycle(name, Lifecycle::Resume)
    }

    fn console(&self, name: &str, history: bool) -> Result<Console, ClientError> {
        self.link
            .open_stream(|stream| Call::Console {
                name: name.into(),
                history,
                stream,
            })
            .map_err(client_error)
    }

    fn set_vcpus(&self, name: &str, count: u32, scope: ChangeScope) -> Result<(), ClientError> {
        self.call(Call::SetVcpus {
            name: name.into(),
            count,
            scope,
        })
    }

    fn attach_disk(
        &self,
        name: &str,
        disk: &DiskConfig,
        scope: ChangeScope,
    ) -> Result<String, ClientError> {
        self.call(Call::AttachDisk {
            name: name.into(),
            disk: disk.clone(),
            scope,
        })
    }

    fn detach_disk(&self, name: &str, target: &str, scope: ChangeScope) -> Result<(), ClientError> {
        self.call(Call::DetachDisk {
            name: name.into(),
            target: target.into(),
            scope,
        })
    }

    fn save(&self, name: &str, path: &Path, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.call(Call::Save {
            name: name.into(),
            path: path.to_path_buf(),
            paused,
        })
    }

    fn restore(&self, path: &Path, options: RestoreOptions) -> Result<String, ClientError> {
        self.call(Call::Restore {
            path: path.to_path_buf(),
            options,
        })
    }

    fn managed_save(&self, name: &str, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.call(Call::ManagedSave {
            name: name.into(),
            paused,
        })
    }

    fn managed_save_remove(&self, name: &str) -> Result<(), ClientError> {
        self.call(Call::ManagedSaveRemove { name: name.into() })
    }

    fn set_memory(&self, name: &str, bytes: u64, scope: ChangeScope) -> Result<(), ClientError> {
        self.call(Call::SetMemory {
            name: name.into(),
            bytes,
            scope,
        })
    }

    fn memory_stats(&self, name: &str) -> Result<MemoryStats, ClientError> {
        self.call(Call::MemoryStats { name: name.into() })
    }

    fn force_detach_disk(&self, name: &str, target: &str) -> Result<(), ClientError> {
        self.call(Call::ForceDetachDisk {
            name: name.into(),
            target: target.into(),
        })
    }
}
