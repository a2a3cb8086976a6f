//! What a client does for a VM whose vmd it finds dead, besides removing the stale socket:
//! repair the qcow2 images that vmd left listed as open (`open-images.json`, see
//! `vmd::open_images`), so the next user of those images never sees stale refcounts, and say
//! so where `vmux list` and `vmux info` show it: the crash reason in `state.json` becomes
//! "vmd (pid N) exited unexpectedly; repaired the qcow2 refcounts of default/disk.qcow2 (...)".
//!
//! Runs under the pid-file probe's lock ([`crate::vmd::pidfile::probe`]), so no vmd of this
//! VM starts meanwhile; images another process has open are left listed for a later try.

use std::path::Path;

use crate::config::Paths;
use crate::protocol::RunState;
use crate::vmd::open_images::{LeftoverRepair, repair_leftover};
use crate::vmd::state_file::StateFile;

/// Repairs what the dead vmd of VM `name` left listed and records it in `state` (the VM's
/// `state.json`). Returns the notes (one per image repaired or not repairable).
pub(super) fn after_vmd_died(paths: &Paths, name: &str, state: &Path) -> Vec<String> {
    let Some(done) = repair_leftover(paths, &paths.vm_state_dir(name)) else {
        return Vec::new();
    };
    for note in &done.notes {
        log::warn!("VM '{name}': vmd (pid {}) is gone; {note}", done.pid);
    }
    if !done.notes.is_empty() {
        record(state, &done);
    }
    done.notes
}

/// Puts the notes into the crash reason: a file still saying running (vmd died without a
/// word) becomes crashed with the classifier's reason plus the notes; a recorded crash gets
/// the notes appended. A clean end keeps its state (the notes were logged).
fn record(path: &Path, done: &LeftoverRepair) {
    let notes = done.notes.join("; ");
    let updated = match StateFile::read(path) {
        Ok(Some(file)) if matches!(file.state, RunState::Running | RunState::Paused) => StateFile {
            state: RunState::Crashed,
            reason: Some(format!(
                "vmd (pid {}) exited unexpectedly; {notes}",
                file.pid
            )),
            ..file
        },
        Ok(Some(file)) if file.state == RunState::Crashed => StateFile {
            reason: Some(match &file.reason {
                Some(reason) => format!("{reason}; {notes}"),
                None => notes,
            }),
            ..file
        },
        Ok(_) => return,
        Err(e) => {
            log::warn!("cannot read {}: {e}", path.display());
            return;
        }
    };
    if let Err(e) = updated.write(path) {
        log::warn!("cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageManager;
    use crate::storage::image::ImageLock;
    use crate::storage::qcow2_repair::check_image;
    use crate::storage::qcow2_repair::fixtures::qcow2_with_lost_refcounts;
    use crate::vmd::open_images::{OPEN_IMAGES_FILE, OpenImagesFile};
    use std::path::PathBuf;

    /// A vmux home with a pool volume whose refcounts are all lost (refcount table entry 0
    /// cleared), and VM `web`'s state left by a vmd (pid 4242) that died listing it.
    fn crashed_vm(home: &Path) -> (Paths, PathBuf) {
        let paths = Paths::under(home);
        let pool = StorageManager::new(paths.clone())
            .active_dir("default")
            .expect("default pool");
        let image = pool.join("disk.qcow2");
        qcow2_with_lost_refcounts(&image);
        let dir = paths.vm_state_dir("web");
        std::fs::create_dir_all(&dir).expect("state dir");
        StateFile {
            state: RunState::Running,
            pid: 4242,
            vcpus: 1,
            boots: 1,
            started_at: 0,
            reason: None,
        }
        .write(&dir.join("state.json"))
        .expect("state");
        OpenImagesFile {
            pid: 4242,
            images: vec![image.clone()],
        }
        .write(&dir.join(OPEN_IMAGES_FILE))
        .expect("list");
        (paths, image)
    }

    #[test]
    fn a_listed_image_is_repaired_and_the_crash_reason_says_so() {
        let home = tempfile::tempdir().expect("tempdir");
        let (paths, image) = crashed_vm(home.path());
        assert!(check_image(&image).expect("check").errors > 0);
        let state = paths.vm_state_dir("web").join("state.json");

        let notes = after_vmd_died(&paths, "web", &state);

        assert!(check_image(&image).expect("check").is_clean());
        assert_eq!(notes.len(), 1);
        let file = StateFile::read(&state).expect("read").expect("a state");
        assert_eq!(file.state, RunState::Crashed);
        let reason = file.reason.expect("a reason");
        assert!(
            reason.starts_with("vmd (pid 4242) exited unexpectedly; repaired the qcow2 refcounts of default/disk.qcow2"),
            "{reason}"
        );
        assert!(!paths.vm_state_dir("web").join(OPEN_IMAGES_FILE).exists());
    }

    #[test]
    fn an_image_another_process_holds_is_left_listed_and_untouched() {
        let home = tempfile::tempdir().expect("tempdir");
        let (paths, image) = crashed_vm(home.path());
        let before = std::fs::read(&image).expect("read");
        let state = paths.vm_state_dir("web").join("state.json");
        let held = ImageLock::acquire(&image, false).expect("lock");

        let notes = after_vmd_died(&paths, "web", &state);

        assert!(notes.is_empty());
        assert_eq!(std::fs::read(&image).expect("read"), before);
        assert!(paths.vm_state_dir("web").join(OPEN_IMAGES_FILE).exists());
        drop(held);
        assert_eq!(after_vmd_died(&paths, "web", &state).len(), 1);
    }
}
