//! One call, answered: the host API method it names, run against the agent's host, its result
//! as JSON or its error as a [`WireError`].

use super::Agent;
use super::{console, resources};
use crate::client::ClientError;
use crate::remote::calls::{Call, Lifecycle};
use crate::remote::error::WireError;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// Runs call `id` and returns what its reply carries.
pub(super) fn answer(agent: &Arc<Agent>, id: u64, call: Call) -> Result<Value, WireError> {
    let host = agent.api().vms.as_ref();
    match call {
        Call::List => json(Ok::<_, ClientError>(host.list())),
        Call::Status { name } => json(host.status(&name)),
        Call::State { name } => json(host.state(&name)),
        Call::DefinitionText { name } => json(host.definition_text(&name)),
        Call::Info { name } => json(host.info(&name)),
        Call::Stats { name } => json(host.stats(&name)),
        Call::Define { config } => json(host.define(&config)),
        Call::Update { config } => json(host.update(&config)),
        Call::UpdateFrom { original, config } => json(host.update_from(&original, &config)),
        Call::Undefine { name, options } => json(host.undefine_with(&name, options)),
        Call::SetAutostart { name, enabled } => json(host.set_autostart(&name, enabled)),
        Call::Lifecycle { name, verb } => json(match verb {
            Lifecycle::Start => host.start(&name),
            Lifecycle::Shutdown => host.shutdown(&name),
            Lifecycle::Destroy => host.destroy(&name),
            Lifecycle::Reboot => host.reboot(&name),
            Lifecycle::Reset => host.reset(&name),
            Lifecycle::Suspend => host.suspend(&name),
            Lifecycle::Resume => host.resume(&name),
        }),
        Call::Console {
            name,
            history,
            stream,
        } => json(console::open(agent, &name, history, stream)),
        Call::SetVcpus { name, count, scope } => json(host.set_vcpus(&name, count, scope)),
        Call::AttachDisk { name, disk, scope } => json(host.attach_disk(&name, &disk, scope)),
        Call::DetachDisk {
            name,
            target,
            scope,
        } => json(host.detach_disk(&name, &target, scope)),
        Call::ForceDetachDisk { name, target } => json(host.force_detach_disk(&name, &target)),
        Call::Save { name, path, paused } => json(host.save(&name, &path, paused)),
        Call::Restore { path, options } => json(host.restore(&path, options)),
        Call::ManagedSave { name, paused } => json(host.managed_save(&name, paused)),
        Call::ManagedSaveRemove { name } => json(host.managed_save_remove(&name)),
        Call::SetMemory { name, bytes, scope } => json(host.set_memory(&name, bytes, scope)),
        Call::MemoryStats { name } => json(host.memory_stats(&name)),
        Call::Storage { backing, call } => resources::storage(agent, id, &backing, call),
        Call::Network { call } => resources::network(agent, call),
    }
}

/// A host method's result as a reply.
fn json<T: Serialize>(result: Result<T, ClientError>) -> Result<Value, WireError> {
    let value = result.map_err(|e| WireError::from_client(&e))?;
    serde_json::to_value(value).map_err(|e| WireError::other(&e))
}
