//! Who uses an image: which VM definitions reach it (as a disk or anywhere in a disk's backing
//! chain), which of those VMs run, and which other images use it as their backing file.
//! Storage operations that write or delete a volume ask here first, so they can refuse with the
//! VM's name instead of corrupting a disk under a running guest.

use super::format::canonical;
use crate::config::Paths;
use crate::vmd::pidfile::{self, Liveness};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Whether VM `name` runs (or is paused) now: a vmd holds the lock on
/// `<state>/vms/<name>/vmd.pid`, the same probe `vmux list` uses ([`pidfile::probe`]). The lock
/// goes with the process however it dies, so a pid file left by a killed vmd, or a pid reused by
/// another process, never makes a VM look running. A pid file that cannot be probed counts as
/// running: refusing a change is the safe side.
pub fn vm_is_running(paths: &Paths, name: &str) -> bool {
    let pid_file = paths.vmd_files(name).pid;
    match pidfile::probe(&pid_file, || {}) {
        Ok(Liveness::Alive { .. }) => true,
        Ok(Liveness::Dead) => false,
        Err(e) => {
            log::warn!(
                "cannot probe {}: {e}; treating VM '{name}' as running",
                pid_file.display()
            );
            true
        }
    }
}

/// One VM's use of an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VmUse {
    /// VM name.
    pub vm: String,
    /// Whether it runs now.
    pub running: bool,
}

/// A snapshot of who uses which image, built once per command.
#[derive(Debug, Default)]
pub struct Usage {
    /// (canonical image path, VM name, running) for every image in every VM disk's chain.
    vm_images: Vec<(PathBuf, String, bool)>,
    /// (canonical backing path, canonical overlay path) for every overlay known.
    backing_edges: Vec<(PathBuf, PathBuf)>,
}

impl Usage {
    /// A usage snapshot from `vm_images` (image, VM, running) for every image in every VM
    /// disk's chain, and `backing_edges` (backing file, overlay) for every overlay known. Paths
    /// are compared canonical. `StorageManager::usage` builds them.
    pub fn new(
        vm_images: Vec<(PathBuf, String, bool)>,
        backing_edges: Vec<(PathBuf, PathBuf)>,
    ) -> Usage {
        Usage {
            vm_images: vm_images
                .into_iter()
                .map(|(path, vm, running)| (canonical(&path), vm, running))
                .collect(),
            backing_edges: backing_edges
                .into_iter()
                .map(|(backing, overlay)| (canonical(&backing), canonical(&overlay)))
                .collect(),
        }
    }

    /// The VMs whose disks reach `image` (directly or as a backing file), sorted, once each.
    pub fn vms_using(&self, image: &Path) -> Vec<VmUse> {
        let key = canonical(image);
        let set: BTreeSet<VmUse> = self
            .vm_images
            .iter()
            .filter(|(path, _, _)| *path == key)
            .map(|(_, vm, running)| VmUse {
                vm: vm.clone(),
                running: *running,
            })
            .collect();
        set.into_iter().collect()
    }

    /// The images whose backing file is `image`.
    pub fn overlays_of(&self, image: &Path) -> Vec<PathBuf> {
        let key = canonical(image);
        let set: BTreeSet<PathBuf> = self
            .backing_edges
            .iter()
            .filter(|(backing, _)| *backing == key)
            .map(|(_, overlay)| overlay.clone())
            .collect();
        set.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vm_without_pid_file_is_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!vm_is_running(&Paths::under(dir.path()), "web1"));
    }

    #[test]
    fn a_vm_whose_vmd_holds_the_pid_lock_is_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        let state = paths.vm_state_dir("web1");
        std::fs::create_dir_all(&state).expect("mkdir");

        let lock = pidfile::PidLock::acquire(&state.join("vmd.pid"), 4242).expect("lock");

        assert!(vm_is_running(&paths, "web1"));
        drop(lock);
    }

    #[test]
    fn a_pid_file_left_by_a_killed_vmd_is_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        let state = paths.vm_state_dir("web1");
        std::fs::create_dir_all(&state).expect("mkdir");

        // An unlocked file naming a live process (this one): what SIGKILL leaves behind, with
        // the pid since reused.
        std::fs::write(state.join("vmd.pid"), std::process::id().to_string()).expect("write");

        assert!(!vm_is_running(&paths, "web1"));
    }
}
