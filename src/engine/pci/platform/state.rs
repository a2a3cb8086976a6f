//! Saving and restoring the VM's PCI functions: quiesce them all for a save, record each one
//! (which device, which slot, its BAR, its transport and device state), carry on after a
//! failed save, and rebuild the same functions in the same slots for a restore.
//!
//! A restore happens in two steps because the devices must not run before the vCPUs hold
//! their saved state (an interrupt delivered to a local APIC that is then overwritten would be
//! lost): [`PciPlatform::restore`] plugs every function where it was, built over the disks and
//! NICs the caller opened; [`PciPlatform::restore_states`] then puts each function's state
//! back and starts the devices that were running.

use std::sync::{Arc, PoisonError};

use super::{Function, PciPlatform, PlatformError};
use crate::engine::devices::bus::{Bus, lock};
use crate::engine::layout;
use crate::engine::memory::GuestRam;
use crate::engine::pci::VmInterface;
use crate::engine::snapshot::{FunctionKind, FunctionState};
use crate::engine::{DiskSpec, NicSpec};

impl PciPlatform {
    /// Every function with its slot, in slot order.
    fn functions(&self) -> Vec<(u8, FunctionKind, Function)> {
        let mut all: Vec<(u8, FunctionKind, Function)> = Vec::new();
        for (index, (&slot, disk)) in self.disks.iter().enumerate() {
            let kind = FunctionKind::Disk {
                disk: index,
                capacity: disk.capacity,
            };
            all.push((slot, kind, disk.function.clone()));
        }
        for (index, nic) in self.nic_functions.iter().enumerate() {
            let kind = FunctionKind::Nic {
                nic: index,
                mac: nic.mac,
            };
            all.push((nic.slot, kind, nic.function.clone()));
        }
        if let Some(balloon) = &self.balloon {
            all.push((
                layout::BALLOON_SLOT,
                FunctionKind::Balloon,
                balloon.function.clone(),
            ));
        }
        all.sort_by_key(|(slot, _, _)| *slot);
        all
    }

    /// Stops every device for a save (the vCPUs are paused) once it finished what its driver
    /// made available.
    pub fn quiesce(&self) {
        for (_, _, function) in self.functions() {
            lock(&function).quiesce();
        }
    }

    /// Makes every device's completed work durable; names the first slot that failed.
    pub fn sync(&self) -> Result<(), (u8, std::io::Error)> {
        for (slot, _, function) in self.functions() {
            lock(&function).sync().map_err(|e| (slot, e))?;
        }
        Ok(())
    }

    /// Starts every quiesced device again where it stopped.
    pub fn resume(&self) {
        for (_, _, function) in self.functions() {
            lock(&function).resume();
        }
    }

    /// Every function's state (after [`quiesce`](Self::quiesce)), in slot order. Disks are
    /// numbered in slot order: a restore must be given them in that order.
    pub fn save_state(&self) -> Vec<FunctionState> {
        self.functions()
            .into_iter()
            .map(|(slot, kind, function)| lock(&function).save_state(slot, kind))
            .collect()
    }

    /// A root bus with the functions of `saved` in their slots, over `disks` (in the saved
    /// disk order), `nics` (in definition order) and a balloon when the save has one. Nothing
    /// runs yet: [`restore_states`](Self::restore_states) does that.
    pub fn restore(
        vm: Arc<dyn VmInterface>,
        mem: &GuestRam,
        disks: &[DiskSpec],
        nics: &[NicSpec],
        saved: &[FunctionState],
        io_bus: &mut Bus,
        mmio_bus: &mut Bus,
    ) -> Result<PciPlatform, PlatformError> {
        let mismatch = |message: String| PlatformError::Mismatch(message);
        let saved_disks = saved
            .iter()
            .filter(|f| matches!(f.kind, FunctionKind::Disk { .. }))
            .count();
        if saved_disks != disks.len() {
            return Err(mismatch(format!(
                "the save has {saved_disks} disks but {} were given to restore it with",
                disks.len()
            )));
        }
        let saved_nics = saved
            .iter()
            .filter(|f| matches!(f.kind, FunctionKind::Nic { .. }))
            .count();
        if saved_nics != nics.len() {
            return Err(mismatch(format!(
                "the save has {saved_nics} network interfaces but the VM now has {}",
                nics.len()
            )));
        }
        let mut disk_indices: Vec<usize> = saved
            .iter()
            .filter_map(|f| match f.kind {
                FunctionKind::Disk { disk, .. } => Some(disk),
                _ => None,
            })
            .collect();
        disk_indices.sort_unstable();
        disk_indices.dedup();
        if disk_indices.len() != saved_disks {
            return Err(mismatch("the save plugs one disk twice".into()));
        }
        let mut platform = PciPlatform::empty(vm, mem, io_bus, mmio_bus)?;
        let mut nic_order: Vec<(usize, &FunctionState)> = saved
            .iter()
            .filter_map(|f| match f.kind {
                FunctionKind::Nic { nic, .. } => Some((nic, f)),
                _ => None,
            })
            .collect();
        nic_order.sort_by_key(|(nic, _)| *nic);
        for function in saved {
            let place = Some((function.slot, function.bar));
            match function.kind {
                FunctionKind::Disk { disk, capacity } => {
                    let spec = disks.get(disk).ok_or_else(|| {
                        mismatch(format!("the save names disk {disk}, which was not given"))
                    })?;
                    platform.plug_disk(spec, place)?;
                    let plugged = platform.disks.get(&function.slot).map(|d| d.capacity);
                    if plugged != Some(capacity) {
                        return Err(mismatch(format!(
                            "disk {} is {} bytes now but was {capacity} bytes when the VM was \
                             saved",
                            spec.path.display(),
                            plugged.unwrap_or(0)
                        )));
                    }
                }
                FunctionKind::Nic { .. } | FunctionKind::Balloon => {}
            }
        }
        // NICs keep their definition order, which names their worker threads and counters.
        for (index, (nic, function)) in nic_order.into_iter().enumerate() {
            let FunctionKind::Nic { mac, .. } = function.kind else {
                continue;
            };
            let spec = nics.get(index).filter(|_| nic == index).ok_or_else(|| {
                mismatch(format!(
                    "the save names network interface {nic}, which the VM lacks"
                ))
            })?;
            if spec.mac != mac {
                return Err(mismatch(format!(
                    "network interface {index} has another MAC address than when the VM was \
                     saved"
                )));
            }
            platform.plug_nic(spec, Some((function.slot, function.bar)))?;
        }
        if let Some(balloon) = saved.iter().find(|f| f.kind == FunctionKind::Balloon) {
            if balloon.slot != layout::BALLOON_SLOT {
                return Err(mismatch(format!(
                    "the save has the memory balloon in PCI slot {}",
                    balloon.slot
                )));
            }
            platform.add_balloon(Some(balloon.bar))?;
        }
        Ok(platform)
    }

    /// Puts each function's saved state back and starts the devices that were running. Call
    /// once the vCPUs hold their saved state.
    pub fn restore_states(&self, saved: &[FunctionState]) -> Result<(), PlatformError> {
        let functions = self.functions();
        for state in saved {
            let Some((_, _, function)) = functions.iter().find(|(slot, _, _)| *slot == state.slot)
            else {
                return Err(PlatformError::Mismatch(format!(
                    "nothing is plugged in PCI slot {} to restore",
                    state.slot
                )));
            };
            lock(function).restore_state(state).map_err(|e| {
                PlatformError::Mismatch(format!(
                    "cannot restore the device in PCI slot {}: {e}",
                    state.slot
                ))
            })?;
            self.root
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .refresh(state.slot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pci::testing::FakeVm;

    fn disk(dir: &std::path::Path, name: &str, sectors: usize) -> DiskSpec {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; sectors * 512]).expect("image");
        DiskSpec {
            path,
            read_only: false,
            serial: name.into(),
            backend: None,
        }
    }

    fn platform(
        disks: &[DiskSpec],
        saved: Option<&[FunctionState]>,
    ) -> Result<PciPlatform, PlatformError> {
        let mem = crate::engine::memory::create_guest_memory(16 << 20).expect("map");
        let vm = Arc::new(FakeVm::default());
        let (mut io, mut mmio) = (Bus::new(), Bus::new());
        match saved {
            None => PciPlatform::create(vm, &mem, disks, &[], true, &mut io, &mut mmio),
            Some(saved) => PciPlatform::restore(vm, &mem, disks, &[], saved, &mut io, &mut mmio),
        }
    }

    #[test]
    fn a_restored_platform_has_the_same_functions_in_the_same_slots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disks = [disk(dir.path(), "a.raw", 8), disk(dir.path(), "b.raw", 16)];
        let original = platform(&disks, None).expect("create");
        original.quiesce();
        let saved = original.save_state();

        let restored = platform(&disks, Some(&saved)).expect("restore");
        restored.restore_states(&saved).expect("states");

        assert_eq!(restored.disk_slots(), [1, 2]);
        assert!(restored.balloon().is_some());
        restored.quiesce();
        assert_eq!(restored.save_state(), saved);
    }

    #[test]
    fn a_disk_of_another_size_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = platform(&[disk(dir.path(), "a.raw", 8)], None).expect("create");
        original.quiesce();
        let saved = original.save_state();

        let grown = [disk(dir.path(), "a.raw", 32)];
        let err = platform(&grown, Some(&saved)).err().expect("refused");

        assert!(
            err.to_string()
                .contains("was 4096 bytes when the VM was saved"),
            "{err}"
        );
    }

    #[test]
    fn a_save_that_plugs_one_disk_twice_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disks = [disk(dir.path(), "a.raw", 8), disk(dir.path(), "b.raw", 8)];
        let original = platform(&disks, None).expect("create");
        original.quiesce();
        let mut saved = original.save_state();
        saved[1].kind = saved[0].kind;

        let err = platform(&disks, Some(&saved)).err().expect("refused");

        assert!(err.to_string().contains("one disk twice"), "{err}");
    }
}
