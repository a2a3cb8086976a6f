//! Who uses an image: which VM definitions reach it (as a disk or anywhere in a disk's backing
//! chain), which of those VMs run, and which other images use it as their backing file.
//! Storage operations that write or delete a volume ask here first, so they can refuse with the
//! VM's name instead of corrupting a disk under a running guest.

use super::format::{Detect, canonical, chain, inspect};
use crate::config::{DiskConfig, Paths, Store};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Whether VM `name` runs now: its vmd wrote its pid to `<state>/vms/<name>/vmd.pid` and that
/// process is alive. (The same file vmd's stale-state cleanup relies on.)
pub fn vm_is_running(paths: &Paths, name: &str) -> bool {
    let pid_file = paths.vm_state_dir(name).join("vmd.pid");
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    text.trim()
        .parse::<u32>()
        .is_ok_and(|pid| pid > 0 && Path::new(&format!("/proc/{pid}")).exists())
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
    /// Scans every VM definition (their disks resolved by `resolve`) and the images in
    /// `pool_images` (every volume of every active pool), following backing chains.
    /// Definitions or images that cannot be read are skipped: they use nothing vmux can see.
    pub fn scan(
        paths: &Paths,
        resolve: &dyn Fn(&DiskConfig) -> Option<PathBuf>,
        pool_images: &[PathBuf],
    ) -> Usage {
        let mut usage = Usage::default();
        let mut overlays: BTreeSet<PathBuf> = pool_images.iter().map(|p| canonical(p)).collect();
        for vm in Store::new(paths.clone()).list().into_iter().flatten() {
            let running = vm_is_running(paths, &vm.name);
            for disk in &vm.disks {
                let Some(path) = resolve(disk) else { continue };
                let Ok(layers) = chain(&path, Detect::ByName) else {
                    // A broken chain still uses its top image.
                    usage
                        .vm_images
                        .push((canonical(&path), vm.name.clone(), running));
                    continue;
                };
                for layer in layers {
                    overlays.insert(canonical(&layer.path));
                    usage
                        .vm_images
                        .push((canonical(&layer.path), vm.name.clone(), running));
                }
            }
        }
        for image in overlays {
            let Ok(info) = inspect(&image, Detect::ByName) else {
                continue;
            };
            if let Some(backing) = info.backing {
                usage
                    .backing_edges
                    .push((canonical(&backing.path), image.clone()));
            }
        }
        usage
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
    fn a_vm_whose_pid_is_alive_is_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        let state = paths.vm_state_dir("web1");
        std::fs::create_dir_all(&state).expect("mkdir");
        std::fs::write(state.join("vmd.pid"), std::process::id().to_string()).expect("write");
        assert!(vm_is_running(&paths, "web1"));
        std::fs::write(state.join("vmd.pid"), "2147483647").expect("write");
        assert!(!vm_is_running(&paths, "web1"));
    }
}
