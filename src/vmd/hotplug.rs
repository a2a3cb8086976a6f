//! Hotplug in vmd: the `set_vcpus`, `attach_disk` and `detach_disk` commands, the engine's
//! hotplug facts (`vcpus_changed`, `disk_removed`) turned into events, and what the next boot
//! is built from, so a reboot keeps the vCPUs and disks plugged live.
//!
//! Commands run under the supervisor's command lock and check everything before they touch the
//! engine: counts against `max_vcpus`, targets and images against the disks the VM has. The
//! definition on disk is not vmd's business (`vmux ... --config` changes it client-side).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, PoisonError};

use super::boot::error_chain;
use super::disks;
use super::live_disks::{LiveDisks, Reopen, SavedDisk};
use super::machine::MachineControl;
use super::supervisor::{Supervisor, protocol_error};
use crate::engine::VmSpec;
use crate::protocol::{DiskInfo, DiskSwitch, ErrorKind, Event, ProtocolError};

/// Whether `target` is a guest disk name vmux hands out (`vda`..`vdz`).
fn valid_target(target: &str) -> bool {
    matches!(target.as_bytes(), [b'v', b'd', b'a'..=b'z'])
}

impl Supervisor {
    fn lock_disks(&self) -> MutexGuard<'_, LiveDisks> {
        self.disks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Names the boot disks after the definition's targets (in definition order).
    pub fn set_disk_targets(&self, targets: &[String]) {
        self.lock_disks().set_targets(targets);
    }

    /// What the next boot is built from: the first boot's spec with the vCPUs and disks
    /// plugged now.
    pub fn next_spec(&self) -> VmSpec {
        VmSpec {
            vcpus: self.plugged_vcpus.load(Ordering::SeqCst),
            disks: self.lock_disks().boot_specs(),
            ..self.base_spec.clone()
        }
    }

    /// A boot started: learns which slots its disks took, and forgets (with an event) disks
    /// whose removal the previous boot never completed.
    pub(super) fn record_boot_disks(&self, control: &dyn MachineControl) {
        // The engine's slots first, then vmd's disks: no vmd lock is held while the engine
        // takes its own (a guard alive across both would order them against the engine's).
        let slots = control.disk_slots();
        let gone = self.lock_disks().boot_started(&slots);
        if !gone.is_empty() {
            // Their last reference went with the previous boot: closed (and flushed) now.
            self.sync_open_images();
        }
        for target in gone {
            self.events.publish(&Event::DiskRemoved { target });
        }
    }

    /// The disks `info` reports.
    pub(super) fn disk_infos(&self) -> Vec<DiskInfo> {
        self.lock_disks().infos()
    }

    /// Every plugged disk as a save records it: (target, image, read-only, serial, slot), in
    /// slot order.
    pub(super) fn disk_records(&self) -> Vec<SavedDisk> {
        self.lock_disks().records()
    }

    /// `set_vcpus`: hot-adds or removes vCPUs so that `count` are plugged.
    pub(super) fn set_vcpus(&self, count: u32) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let control = self.running_control()?;
        if count == 0 || count > self.max_vcpus {
            return Err(protocol_error(
                ErrorKind::InvalidArgument,
                format!(
                    "cannot run {count} vCPUs: VM '{}' allows 1 to {} (its max_vcpus); \
                     raise max_vcpus in the definition and restart it for more",
                    self.name, self.max_vcpus
                ),
            ));
        }
        control.set_vcpus(count).map_err(|e| {
            protocol_error(
                ErrorKind::Engine,
                format!("cannot change the vCPUs: {}", error_chain(e.as_ref())),
            )
        })?;
        self.plugged_vcpus.store(count, Ordering::SeqCst);
        Ok(())
    }

    /// The guest onlined or ejected a vCPU: records the new count and pushes a `vcpus` event.
    /// Called on a vCPU thread (no engine lock held).
    pub fn vcpus_changed(&self, online: u32) {
        {
            let live = self.live();
            if live.control.is_some() {
                self.persist(&live, None);
            }
        }
        self.events.publish(&Event::Vcpus { vcpus: online });
    }

    /// `attach_disk`: opens the image at `path` and plugs it as `target` (the first free name
    /// when `None`).
    pub(super) fn attach_disk(
        &self,
        path: &Path,
        target: Option<String>,
        read_only: bool,
        serial: Option<String>,
        how: disks::AttachImage,
    ) -> Result<DiskInfo, ProtocolError> {
        let _serial = self.lock_commands();
        let control = self.running_control()?;
        let invalid = |message: String| protocol_error(ErrorKind::InvalidArgument, message);
        if !path.is_absolute() {
            return Err(invalid(format!(
                "the image path {} is not absolute; give the full path",
                path.display()
            )));
        }
        let target = {
            let disks = self.lock_disks();
            if let Some(other) = disks.uses_image(path) {
                return Err(invalid(format!(
                    "VM '{}' already has {} as disk {other}; an image can be attached once",
                    self.name,
                    path.display()
                )));
            }
            match target {
                Some(target) if !valid_target(&target) => {
                    return Err(invalid(format!(
                        "'{target}' is not a disk target; use vda to vdz"
                    )));
                }
                Some(target) => {
                    if let Some(taken) = disks.by_target(&target) {
                        return Err(invalid(format!(
                            "VM '{}' already has a disk {target} ({}); pick another target or \
                             detach that one first",
                            self.name,
                            taken.path.display()
                        )));
                    }
                    target
                }
                None => disks.free_target().ok_or_else(|| {
                    invalid(format!(
                        "VM '{}' has no free disk target left (vda..vdz); detach a disk first",
                        self.name
                    ))
                })?,
            }
        };
        let reopen = Reopen {
            format: how.format,
            allow_backing: how.allow_backing.clone(),
        };
        let disk = disks::open_disk(path, &target, read_only, serial, how)
            .map_err(|e| protocol_error(ErrorKind::InvalidArgument, error_chain(&e)))?;
        if disk.writable_qcow2() {
            // Listed before the guest can write it (see open_images).
            self.list_open_images([disk.spec.path.clone()]);
        }
        let spec = disk.spec;
        let slot = match control.attach_disk(&spec) {
            Ok(slot) => slot,
            Err(e) => {
                drop(spec);
                self.sync_open_images();
                return Err(protocol_error(
                    ErrorKind::Engine,
                    format!("cannot attach the disk: {}", error_chain(e.as_ref())),
                ));
            }
        };
        let info = {
            let mut disks = self.lock_disks();
            let info = disks.attached(target, spec, slot);
            disks.set_reopen(&info.target, reopen);
            info
        };
        log::info!(
            "disk {} attached as {} in PCI slot {slot}",
            path.display(),
            info.target
        );
        self.events
            .publish(&Event::DiskAdded(Box::new(info.clone())));
        Ok(info)
    }

    /// `detach_disk`: asks the guest to eject disk `target`; with `force`, removes it at once
    /// without asking (also when the guest was asked already and has not answered).
    pub(super) fn detach_disk(&self, target: &str, force: bool) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let control = self.running_control()?;
        let Some(disk) = self.lock_disks().by_target(target) else {
            return Err(protocol_error(
                ErrorKind::InvalidArgument,
                format!(
                    "VM '{}' has no disk {target}; `vmux info {}` lists its disks",
                    self.name, self.name
                ),
            ));
        };
        if force {
            log::warn!("removing disk {target} without the guest's consent (forced)");
            // The engine drops the disk and calls `disk_removed` (which takes the disks'
            // lock) before it returns: no lock of ours is held across the call. Recording it
            // here again is a no-op then, and keeps the list right whatever the engine said;
            // the command lock keeps the slot from being reused in between.
            control.force_detach_disk(disk.slot).map_err(|e| {
                protocol_error(
                    ErrorKind::Engine,
                    format!("cannot remove the disk: {}", error_chain(e.as_ref())),
                )
            })?;
            self.disk_removed(disk.slot);
            return Ok(());
        }
        if disk.removing {
            return Err(protocol_error(
                ErrorKind::InvalidState,
                format!(
                    "disk {target} is already being removed; the guest has not ejected it yet \
                     (force it with `vmux detach-disk {} {target} --force`)",
                    self.name
                ),
            ));
        }
        control.detach_disk(disk.slot).map_err(|e| {
            protocol_error(
                ErrorKind::Engine,
                format!("cannot detach the disk: {}", error_chain(e.as_ref())),
            )
        })?;
        self.lock_disks().mark_removing(target);
        Ok(())
    }

    /// Live snapshot: with the vCPUs paused (so the disks of one snapshot are consistent with
    /// each other), switches each disk to its new image; a failure switches the ones already
    /// done back, so all disks switch or none does.
    pub(super) fn switch_disks(&self, switches: &[DiskSwitch]) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let (control, state) = self.current()?;
        let mut plan = Vec::new();
        for switch in switches {
            let Some((old, backend)) = self.lock_disks().backend(&switch.target) else {
                return Err(protocol_error(
                    ErrorKind::InvalidArgument,
                    format!(
                        "VM '{}' has no open disk {}; `vmux info {}` lists its disks",
                        self.name, switch.target, self.name
                    ),
                ));
            };
            plan.push((switch, old, backend));
        }
        // The new overlays are listed before anything can write them (see open_images).
        self.list_open_images(
            switches
                .iter()
                .filter(|switch| disks::is_qcow2(&switch.path))
                .map(|switch| switch.path.clone()),
        );
        let was_paused = state == crate::protocol::RunState::Paused;
        if !was_paused {
            control.pause().map_err(|e| {
                protocol_error(
                    ErrorKind::Engine,
                    format!("cannot pause the vCPUs: {}", error_chain(e.as_ref())),
                )
            })?;
        }
        let mut result = Ok(());
        for (done, (switch, _, backend)) in plan.iter().enumerate() {
            if let Err(e) = backend.switch_image(&switch.path) {
                for (undo, old, backend) in &plan[..done] {
                    if let Err(back) = backend.switch_image(old) {
                        log::error!(
                            "cannot switch disk {} back to {}: {back}",
                            undo.target,
                            old.display()
                        );
                    }
                }
                result = Err(protocol_error(
                    ErrorKind::Engine,
                    format!(
                        "cannot switch disk {} to {}: {e}; no disk was switched",
                        switch.target,
                        switch.path.display()
                    ),
                ));
                break;
            }
        }
        if result.is_ok() {
            let mut disks = self.lock_disks();
            for (switch, _, _) in &plan {
                disks.set_path(&switch.target, &switch.path);
            }
        }
        // The images switched away from were flushed and closed by the switch.
        self.sync_open_images();
        if !was_paused && let Err(e) = control.resume() {
            log::error!(
                "cannot resume the vCPUs after a disk switch: {}",
                error_chain(e.as_ref())
            );
        }
        result
    }

    /// The guest ejected the disk in PCI `slot`: drops vmd's reference to its image (closing
    /// it) and pushes a `disk_removed` event. Called on a vCPU thread (no engine lock held).
    pub fn disk_removed(&self, slot: u8) {
        let backend = {
            let disks = self.lock_disks();
            let target = disks.infos().into_iter().find(|d| d.slot == slot);
            target.and_then(|d| disks.backend(&d.target))
        };
        let target = self.lock_disks().ejected(slot);
        // Written back before the image leaves the open-images list (another reference may
        // keep it open a little longer).
        match backend.map(|(path, backend)| (path, backend.flush())) {
            Some((path, Err(e))) => log::warn!(
                "cannot flush the removed disk {}: {e}; it stays listed for a repair",
                path.display()
            ),
            _ => self.sync_open_images(),
        }
        if let Some(target) = target {
            log::info!("disk {target} left the VM; its image is closed");
            self.events.publish(&Event::DiskRemoved { target });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Command, ReplyResult};
    use crate::vmd::fake::FakeControl;
    use crate::vmd::ring::ConsoleRing;
    use crate::vmd::supervisor::tests::spec;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn running() -> (Supervisor, Arc<FakeControl>) {
        let sup = Supervisor::new(&spec(), 1, Arc::new(ConsoleRing::new(64)), None);
        let control = Arc::new(FakeControl::default());
        sup.boot_started(control.clone());
        (sup, control)
    }

    /// A 1 MiB raw image in `dir`.
    fn image(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, vec![0u8; 1 << 20]).expect("write image");
        path
    }

    fn attach(sup: &Supervisor, path: &Path, target: Option<&str>) -> Result<DiskInfo, String> {
        let command = Command::AttachDisk {
            path: path.to_path_buf(),
            target: target.map(str::to_string),
            read_only: false,
            serial: None,
            format: None,
            allow_backing: Vec::new(),
        };
        match sup.execute(&command) {
            Ok(Some(ReplyResult::Disk(disk))) => Ok(*disk),
            Ok(other) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.message),
        }
    }

    #[test]
    fn an_attached_disk_takes_the_first_free_target_and_a_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, _) = running();
        let disk = attach(&sup, &image(&dir, "a.raw"), None).expect("attach");
        assert_eq!((disk.target.as_str(), disk.slot), ("vda", 1));
        assert_eq!(sup.info().disks, [disk]);
    }

    #[test]
    fn attaching_an_image_twice_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, _) = running();
        let path = image(&dir, "a.raw");
        attach(&sup, &path, None).expect("attach");
        let err = attach(&sup, &path, None).expect_err("twice");
        assert!(err.contains("already has"), "{err}");
    }

    #[test]
    fn a_taken_or_malformed_target_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, _) = running();
        attach(&sup, &image(&dir, "a.raw"), Some("vdb")).expect("attach");
        let err = attach(&sup, &image(&dir, "b.raw"), Some("vdb")).expect_err("taken");
        assert!(err.contains("already has a disk vdb"), "{err}");
        let err = attach(&sup, &image(&dir, "c.raw"), Some("sda")).expect_err("bad");
        assert!(err.contains("vda to vdz"), "{err}");
    }

    #[test]
    fn a_missing_image_is_refused_naming_it() {
        let (sup, control) = running();
        let err = attach(&sup, Path::new("/nonexistent/x.raw"), None).expect_err("missing");
        assert!(err.contains("/nonexistent/x.raw"), "{err}");
        assert!(control.disk_slots().is_empty());
    }

    #[test]
    fn detach_asks_the_guest_and_the_eject_forgets_the_disk_with_an_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, control) = running();
        let disk = attach(&sup, &image(&dir, "a.raw"), None).expect("attach");
        let rx = sup.events().subscribe().expect("open");

        sup.execute(&Command::DetachDisk {
            target: "vda".into(),
            force: false,
        })
        .expect("detach");
        assert!(sup.info().disks[0].removing);
        assert_eq!(*control.detached.lock().expect("detached"), [disk.slot]);
        let again = sup.execute(&Command::DetachDisk {
            target: "vda".into(),
            force: false,
        });
        assert_eq!(again.expect_err("twice").kind, ErrorKind::InvalidState);

        sup.disk_removed(disk.slot);
        assert!(sup.info().disks.is_empty());
        assert_eq!(
            rx.try_recv().expect("event"),
            Event::DiskRemoved {
                target: "vda".into()
            }
        );
    }

    #[test]
    fn a_hot_added_qcow2_disk_is_listed_as_open_until_the_guest_ejects_it() {
        use crate::storage::create::{NewImage, create_image};
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, _) = running();
        let qcow2 = dir.path().join("hot.qcow2");
        create_image(
            &qcow2,
            &NewImage::new(crate::storage::ImageFormat::Qcow2, 1 << 20),
        )
        .expect("create");
        let listed = || sup.open_images.lock().expect("list").images();

        let disk = attach(&sup, &qcow2, None).expect("attach qcow2");
        attach(&sup, &image(&dir, "b.raw"), None).expect("attach raw");
        assert_eq!(
            listed(),
            std::slice::from_ref(&qcow2),
            "raw images need no repair"
        );

        sup.execute(&Command::DetachDisk {
            target: disk.target.clone(),
            force: false,
        })
        .expect("detach");
        assert_eq!(listed(), [qcow2], "listed until the guest lets go");
        sup.disk_removed(disk.slot);
        assert!(listed().is_empty());
    }

    #[test]
    fn a_forced_detach_removes_the_disk_the_guest_did_not_eject() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, _) = running();
        let disk = attach(&sup, &image(&dir, "a.raw"), None).expect("attach");
        sup.execute(&Command::DetachDisk {
            target: "vda".into(),
            force: false,
        })
        .expect("ask the guest");
        assert!(sup.info().disks[0].removal_requested_at.is_some());
        let rx = sup.events().subscribe().expect("open");

        sup.execute(&Command::DetachDisk {
            target: "vda".into(),
            force: true,
        })
        .expect("forced");

        assert!(sup.info().disks.is_empty(), "slot {} is empty", disk.slot);
        assert_eq!(
            rx.try_recv().expect("event"),
            Event::DiskRemoved {
                target: "vda".into()
            }
        );
    }

    #[test]
    fn detaching_an_unknown_target_names_the_way_to_list_disks() {
        let (sup, _) = running();
        let err = sup
            .execute(&Command::DetachDisk {
                target: "vdq".into(),
                force: false,
            })
            .expect_err("unknown");
        assert!(err.message.contains("vmux info t"), "{}", err.message);
    }

    #[test]
    fn the_next_boot_keeps_live_vcpus_and_disks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sup, _) = running();
        sup.execute(&Command::SetVcpus { count: 3 })
            .expect("set_vcpus");
        let path = image(&dir, "a.raw");
        attach(&sup, &path, None).expect("attach");
        let next = sup.next_spec();
        assert_eq!(next.vcpus, 3);
        assert_eq!(
            next.disks
                .iter()
                .map(|d| d.path.clone())
                .collect::<Vec<_>>(),
            [path]
        );
    }

    #[test]
    fn only_vda_to_vdz_are_targets() {
        assert!(valid_target("vdb"));
        for bad in ["vd", "vdaa", "sda", "vdB", "../x"] {
            assert!(!valid_target(bad), "{bad}");
        }
    }
}
