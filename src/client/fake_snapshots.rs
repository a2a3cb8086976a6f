//! The disk snapshots of [`super::FakeStorage`]: per VM, its writable disks and a chain of
//! named snapshots, following the real rules the front ends explain (names unique, revert and
//! delete need a stopped VM, an unknown VM or snapshot is named).

use crate::config::ConfigError;
use crate::storage::snapshot::{RevertReport, SnapshotError, SnapshotState};
use crate::storage::{SnapshotInfo, StorageError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One fake VM as its snapshots see it.
#[derive(Default)]
struct FakeVmDisks {
    targets: Vec<String>,
    running: bool,
    snapshots: Vec<SnapshotInfo>,
}

/// Snapshots of the VMs a test defined, oldest first.
#[derive(Default)]
pub struct FakeSnapshots {
    vms: BTreeMap<String, FakeVmDisks>,
    /// Stands in for the clock: each snapshot is one second after the one before.
    clock: u64,
}

impl FakeSnapshots {
    /// Defines VM `vm` with writable disks `targets`.
    pub fn add_vm(&mut self, vm: &str, targets: &[&str]) {
        self.vms.insert(
            vm.to_string(),
            FakeVmDisks {
                targets: targets.iter().map(|t| t.to_string()).collect(),
                ..FakeVmDisks::default()
            },
        );
    }

    /// Marks VM `vm` running or not.
    pub fn set_running(&mut self, vm: &str, running: bool) {
        if let Some(disks) = self.vms.get_mut(vm) {
            disks.running = running;
        }
    }

    fn vm(&mut self, vm: &str) -> Result<&mut FakeVmDisks, StorageError> {
        self.vms
            .get_mut(vm)
            .ok_or_else(|| ConfigError::UnknownVm(vm.to_string()).into())
    }

    /// Takes snapshot `name` of `vm` (running or not: the fake switches disks at once).
    pub fn create(&mut self, vm: &str, name: &str) -> Result<SnapshotInfo, StorageError> {
        crate::config::validate_name(name).map_err(StorageError::Invalid)?;
        self.clock += 1;
        let created = 1_700_000_000 + self.clock;
        let disks = self.vm(vm)?;
        if disks.targets.is_empty() {
            return Err(SnapshotError::NoDisks(vm.to_string()).into());
        }
        if disks.snapshots.iter().any(|s| s.name == name) {
            return Err(SnapshotError::Exists {
                vm: vm.to_string(),
                name: name.to_string(),
            }
            .into());
        }
        for snapshot in &mut disks.snapshots {
            snapshot.current = false;
        }
        let info = SnapshotInfo {
            name: name.to_string(),
            created,
            state: SnapshotState::Ready,
            current: true,
            disks: disks
                .targets
                .iter()
                .map(|t| {
                    (
                        t.clone(),
                        PathBuf::from(format!("/fake/{vm}-{t}.{name}.qcow2")),
                    )
                })
                .collect(),
        };
        disks.snapshots.push(info.clone());
        Ok(info)
    }

    /// `vm`'s snapshots, oldest first.
    pub fn list(&mut self, vm: &str) -> Result<Vec<SnapshotInfo>, StorageError> {
        Ok(self.vm(vm)?.snapshots.clone())
    }

    fn position(disks: &FakeVmDisks, vm: &str, name: &str) -> Result<usize, StorageError> {
        disks
            .snapshots
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                SnapshotError::Unknown {
                    vm: vm.to_string(),
                    name: name.to_string(),
                }
                .into()
            })
    }

    /// Reverts stopped `vm` to `name`, dropping the later snapshots.
    pub fn revert(&mut self, vm: &str, name: &str) -> Result<RevertReport, StorageError> {
        let disks = self.vm(vm)?;
        if disks.running {
            return Err(SnapshotError::RunningFor(vm.to_string(), "revert to").into());
        }
        let at = Self::position(disks, vm, name)?;
        let removed: Vec<SnapshotInfo> = disks.snapshots.drain(at + 1..).collect();
        if let Some(snapshot) = disks.snapshots.last_mut() {
            snapshot.current = true;
        }
        Ok(RevertReport {
            snapshot: name.to_string(),
            removed_snapshots: removed.iter().map(|s| s.name.clone()).collect(),
            removed_images: removed
                .iter()
                .flat_map(|s| s.disks.iter().map(|(_, path)| path.clone()))
                .collect(),
        })
    }

    /// Deletes snapshot `name` of `vm`.
    pub fn delete(&mut self, vm: &str, name: &str) -> Result<(), StorageError> {
        let disks = self.vm(vm)?;
        if disks.running {
            return Err(SnapshotError::RunningFor(vm.to_string(), "delete").into());
        }
        let at = Self::position(disks, vm, name)?;
        let removed = disks.snapshots.remove(at);
        if removed.current
            && let Some(snapshot) = disks.snapshots.last_mut()
        {
            snapshot.current = true;
        }
        Ok(())
    }
}
