//! [`LocalHost`]'s VM-state operations: `save` and `restore` (a file the user names),
//! managed saves (`<state>/vms/<name>/managed.save`, resumed by the next `start`), and memory
//! through the balloon (`setmem`, whose `--config` half is the definition's `current_memory`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::local::{LocalHost, unexpected};
use super::{ChangeScope, ClientError, RestoreOptions};
use crate::config::{ConfigError, format_size};
use crate::engine::snapshot::file::read_header;
use crate::protocol::{Command, ReplyResult, SaveInfo};
use crate::vmd::save::SaveRecord;
use crate::vmd::{RestoreMode, StartMode};

/// How long a save may take to finish and vmd to exit after it (a large guest's memory goes to
/// disk first).
const SAVE_TIMEOUT: Duration = Duration::from_secs(600);
/// The managed save's file name in the VM's state directory.
const MANAGED_SAVE: &str = "managed.save";

impl LocalHost {
    /// Where the managed save of `name` lives (whether or not there is one).
    pub fn managed_save_path(&self, name: &str) -> PathBuf {
        self.paths().vm_state_dir(name).join(MANAGED_SAVE)
    }

    /// Saves `name` to `path` (made absolute against this process's directory) and waits
    /// until its vmd has exited.
    pub(super) fn save_vm(
        &self,
        name: &str,
        path: &Path,
        paused: Option<bool>,
    ) -> Result<SaveInfo, ClientError> {
        self.known(name)?;
        if !self.observe(name).is_active() {
            return Err(ClientError::NotRunning(name.to_string()));
        }
        let path = std::path::absolute(path).map_err(|e| {
            ClientError::Invalid(format!(
                "cannot use {} as the save file: {e}",
                path.display()
            ))
        })?;
        let command = Command::Save { path, paused };
        let reply = self
            .clone()
            .with_request_timeout(SAVE_TIMEOUT)
            .command(name, command)?;
        let Some(ReplyResult::Saved(info)) = reply else {
            return Err(unexpected(name, "save result"));
        };
        self.wait_for_exit(name, SAVE_TIMEOUT)?;
        Ok(*info)
    }

    /// Restores the VM saved in `path`: defines it from the save when it is not defined, then
    /// starts its vmd from the file.
    pub(super) fn restore_vm(
        &self,
        path: &Path,
        options: RestoreOptions,
    ) -> Result<String, ClientError> {
        let path = std::path::absolute(path).map_err(|e| {
            ClientError::Invalid(format!(
                "cannot use {} as the save file: {e}",
                path.display()
            ))
        })?;
        let invalid = |e: String| ClientError::Invalid(e);
        let header = read_header(&path).map_err(|e| invalid(crate::vmd::error_chain(&e)))?;
        let record = SaveRecord::parse(&header.owner)
            .map_err(|e| invalid(format!("cannot restore {}: {e}", path.display())))?;
        let name = record.vm.clone();
        let config = match self.store.load(&name) {
            Ok(config) => config,
            Err(ConfigError::UnknownVm(_)) => {
                self.store.create(&record.definition)?;
                log::info!("defined VM '{name}' from the save {}", path.display());
                record.definition.clone()
            }
            Err(e) => return Err(e.into()),
        };
        if self.observe(&name).is_active() {
            return Err(ClientError::AlreadyRunning(name));
        }
        let mode = StartMode::Restore(RestoreMode {
            file: path,
            paused: options.paused,
            force: options.force,
            discard: false,
        });
        self.spawn(&name, &config, &mode)?;
        Ok(name)
    }

    /// Deletes the managed save of `name`.
    pub(super) fn remove_managed_save(&self, name: &str) -> Result<(), ClientError> {
        self.known(name)?;
        let path = self.managed_save_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ClientError::Invalid(
                format!("VM '{name}' has no managed save"),
            )),
            Err(e) => Err(ClientError::Invalid(format!(
                "cannot remove {}: {e}",
                path.display()
            ))),
        }
    }

    /// `setmem`: live through the balloon, in the definition, or both.
    pub(super) fn set_memory_of(
        &self,
        name: &str,
        bytes: u64,
        scope: ChangeScope,
    ) -> Result<(), ClientError> {
        let mut config = self.store.load(name)?;
        if bytes > config.memory {
            return Err(ClientError::Invalid(format!(
                "VM '{name}' has {} of memory; setmem cannot give it {} (it never goes above \
                 the defined memory; raise `memory` with `vmux edit {name}` and restart for more)",
                format_size(config.memory),
                format_size(bytes)
            )));
        }
        if !config.balloon {
            return Err(ClientError::Invalid(format!(
                "VM '{name}' has no memory balloon; set balloon = true with `vmux edit {name}` \
                 and restart it"
            )));
        }
        if scope.live {
            if !self.observe(name).is_active() {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            self.command(name, Command::SetMemory { bytes })?;
        }
        if scope.config {
            config.current_memory = (bytes < config.memory).then_some(bytes);
            config.validate().map_err(ClientError::Invalid)?;
            self.store.save(&config)?;
        }
        Ok(())
    }
}
