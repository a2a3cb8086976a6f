//! Storage and network calls, answered: the `StorageHost` / `NetworkHost` method each names,
//! run against the agent's host. Long operations report progress and take cancels.

use super::Agent;
use crate::network::NetworkError;
use crate::remote::calls::{NetworkCall, StorageCall};
use crate::remote::error::WireError;
use crate::storage::StorageError;
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// Runs storage call `id` (`backing`: files outside the pools it may use).
pub(super) fn storage(
    agent: &Agent,
    id: u64,
    backing: &[PathBuf],
    call: StorageCall,
) -> Result<Value, WireError> {
    let allowed;
    let storage = if backing.is_empty() {
        agent.api().storage.as_ref()
    } else {
        allowed = agent.api().storage.allowing_backing(backing);
        allowed.as_ref()
    };
    let long = |op: &dyn Fn(&crate::progress::Progress) -> Result<Value, WireError>| {
        agent.with_progress(id, |progress| op(progress))
    };
    match call {
        StorageCall::Snapshot => json(storage.snapshot()),
        StorageCall::ListPools => json(storage.list_pools()),
        StorageCall::DefinePool {
            pool,
            target,
            build,
        } => json(storage.define_pool(&pool, &target, build)),
        StorageCall::PoolInfo { pool } => json(storage.pool_info(&pool)),
        StorageCall::StartPool { pool } => json(storage.start_pool(&pool)),
        StorageCall::StopPool { pool } => json(storage.stop_pool(&pool)),
        StorageCall::SetPoolAutostart { pool, enabled } => {
            json(storage.set_pool_autostart(&pool, enabled))
        }
        StorageCall::UndefinePool { pool } => json(storage.undefine_pool(&pool)),
        StorageCall::ListVolumes { pool } => json(storage.list_volumes(&pool)),
        StorageCall::VolumeInfo { pool, volume } => json(storage.volume_info(&pool, &volume)),
        StorageCall::CreateVolume { pool, volume, spec } => {
            json(storage.create_volume(&pool, &volume, spec))
        }
        StorageCall::ResizeVolume {
            pool,
            volume,
            capacity,
            allow_shrink,
        } => json(storage.resize_volume(&pool, &volume, capacity, allow_shrink)),
        StorageCall::GrowVolumeAllocated {
            pool,
            volume,
            capacity,
        } => long(&|p| json(storage.grow_volume_allocated(&pool, &volume, capacity, p))),
        StorageCall::CloneVolume {
            pool,
            source,
            clone,
            linked,
        } => long(&|p| json(storage.clone_volume(&pool, &source, &clone, linked, p))),
        StorageCall::ConvertVolume {
            pool,
            source,
            dest,
            format,
        } => long(&|p| json(storage.convert_volume(&pool, &source, &dest, format, p))),
        StorageCall::UploadVolume {
            pool,
            volume,
            source,
            format,
        } => long(&|p| json(storage.upload_volume(&pool, &volume, &source, format, p))),
        StorageCall::DownloadVolume {
            pool,
            volume,
            dest,
            format,
            force,
        } => long(&|p| json(storage.download_volume(&pool, &volume, &dest, format, force, p))),
        StorageCall::WipeVolume { pool, volume } => {
            long(&|p| json(storage.wipe_volume(&pool, &volume, p)))
        }
        StorageCall::SetVolumeFormat {
            pool,
            volume,
            format,
        } => json(storage.set_volume_format(&pool, &volume, format)),
        StorageCall::CheckVolume {
            pool,
            volume,
            repair,
        } => json(storage.check_volume(&pool, &volume, repair)),
        StorageCall::DeleteVolume { pool, volume } => json(storage.delete_volume(&pool, &volume)),
        StorageCall::VolumeHolders { pool, volume } => json(Ok::<_, StorageError>(
            storage.volume_holders(&pool, &volume),
        )),
        StorageCall::ImportImage {
            pool,
            volume,
            source,
            format,
            linked,
        } => long(&|p| json(storage.import_image(&pool, &volume, &source, format, linked, p))),
        StorageCall::BootPlan { disk } => json(storage.boot_plan(&disk)),
        StorageCall::DiskPath { disk } => json(storage.disk_path(&disk)),
        StorageCall::ImageFileFormat { file } => json(storage.image_file_format(&file)),
        StorageCall::CloudInitSeed { vm } => {
            json(Ok::<_, StorageError>(storage.cloud_init_seed(&vm)))
        }
        StorageCall::BootEntry { pool, volume } => to_value(storage.boot_entry(&pool, &volume)),
        StorageCall::CreateSnapshot { vm, name } => json(storage.create_snapshot(&vm, &name)),
        StorageCall::ListSnapshots { vm } => json(storage.list_snapshots(&vm)),
        StorageCall::RevertSnapshot { vm, name } => json(storage.revert_snapshot(&vm, &name)),
        StorageCall::DeleteSnapshot { vm, name } => {
            long(&|p| json(storage.delete_snapshot(&vm, &name, p)))
        }
    }
}

/// Runs a network call.
pub(super) fn network(agent: &Agent, call: NetworkCall) -> Result<Value, WireError> {
    let networks = agent.api().networks.as_ref();
    match call {
        NetworkCall::Snapshot => net(networks.snapshot()),
        NetworkCall::RequireAdmin => net(networks.require_admin()),
        NetworkCall::Reconcile => net(networks.reconcile()),
        NetworkCall::List => net(networks.list()),
        NetworkCall::Info { name } => net(networks.info(&name)),
        NetworkCall::Define { config } => net(networks.define(&config)),
        NetworkCall::Start { name } => net(networks.start(&name)),
        NetworkCall::Stop { name } => net(networks.stop(&name)),
        NetworkCall::Undefine { name } => net(networks.undefine(&name)),
        NetworkCall::SetAutostart { name, enabled } => net(networks.set_autostart(&name, enabled)),
        NetworkCall::AutostartAll => to_value(Ok::<_, String>(networks.autostart_all())),
        NetworkCall::UnusedBridgeName { network } => net(networks.unused_bridge_name(&network)),
        NetworkCall::NewNic { vm, network, mac } => net(networks.new_nic(&vm, &network, mac)),
        NetworkCall::Addresses { vm } => net(networks.addresses(&vm)),
    }
}

/// A storage result as a reply (a cancel keeps its kind).
fn json<T: Serialize>(result: Result<T, StorageError>) -> Result<Value, WireError> {
    let value = result.map_err(|e| WireError::from_storage(&e))?;
    serde_json::to_value(value).map_err(|e| WireError::other(&e))
}

/// A network result as a reply.
fn net<T: Serialize>(result: Result<T, NetworkError>) -> Result<Value, WireError> {
    let value = result.map_err(|e| WireError::from_network(&e))?;
    serde_json::to_value(value).map_err(|e| WireError::other(&e))
}

/// A result whose error is already words: it travels as a `Result` value.
fn to_value<T: Serialize>(result: Result<T, String>) -> Result<Value, WireError> {
    serde_json::to_value(result).map_err(|e| WireError::other(&e))
}
