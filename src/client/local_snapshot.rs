//! The live snapshot of a running VM, one host API operation made of three local steps: the
//! snapshot manager makes the overlays, vmd switches the disks to them (vCPUs paused for the
//! switch), then the definition records its new disks. A failed switch removes the overlays.

use super::LocalHost;
use crate::storage::{SnapshotInfo, SnapshotManager, StorageError};
use crate::tui::error_text::error_chain;

/// Takes snapshot `name` of running VM `vm`, whose vmd `vms` reaches.
pub fn live(
    snapshots: &SnapshotManager,
    vms: &LocalHost,
    vm: &str,
    name: &str,
) -> Result<SnapshotInfo, StorageError> {
    let prepared = snapshots.prepare(vm, name)?;
    let switches = prepared
        .overlays
        .iter()
        .map(|(target, path)| crate::protocol::DiskSwitch {
            target: target.clone(),
            path: path.clone(),
        })
        .collect();
    if let Err(e) = vms.switch_disks(vm, switches) {
        let mut message = error_chain(&e);
        if let Err(abort) = snapshots.abort(&prepared) {
            message.push_str(&format!(
                "; the unused overlays of snapshot {name} remain: {}",
                error_chain(&abort)
            ));
        }
        return Err(StorageError::Invalid(message));
    }
    snapshots.complete(&prepared)
}
