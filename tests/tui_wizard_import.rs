//! The creation wizard's copy of a disk image into a pool, as a user meets it: a task in the
//! task list with its real progress, `x` cancels it (no volume, no VM), and once it is done
//! the VM is made as before. `update` driven with keys against the fakes; the import is held
//! in flight by the harness to look at it.

mod common;

use common::tui::{Harness, fleet, fleet_networks, fleet_storage, status_text};
use crossterm::event::KeyCode;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmux::client::Host;
use vmux::config::BootConfig;
use vmux::progress::ProgressSnapshot;
use vmux::tui::action::Action;
use vmux::tui::app::StatusKind;
use vmux::tui::tasks::{Task, TaskProgress};

/// A downloaded image file in `dir`.
fn image_file(dir: &Path) -> PathBuf {
    let file = dir.join("debian.qcow2");
    std::fs::write(&file, b"image").expect("image file");
    file
}

/// What the wizard's boot step is given.
enum Image<'a> {
    /// A file, copied into the default pool.
    CopiedFile(&'a Path),
    /// A file, linked: an overlay on a base volume copied from it.
    LinkedFile(&'a Path),
    /// An overlay on the pool volume default/base.qcow2.
    LinkedVolume,
}

/// The fleet with tasks held and the wizard walked through to VM `web9` from `image`, Enter
/// pressed on the review.
fn wizard_from(image: Image<'_>) -> Harness {
    let mut harness = Harness::with_backends(fleet(), fleet_storage(), fleet_networks(), 80, 24);
    harness.hold_tasks = true;
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("web9");
    harness.key(KeyCode::Enter);
    // Install from: the disk image; a file or the first volume; linked (the default).
    harness.key(KeyCode::Left);
    harness.key(KeyCode::Down);
    match image {
        Image::CopiedFile(file) | Image::LinkedFile(file) => {
            harness.key(KeyCode::Down);
            harness.type_text(&file.display().to_string());
        }
        Image::LinkedVolume => harness.key(KeyCode::Right),
    }
    if let Image::CopiedFile(_) = image {
        harness.key(KeyCode::Down);
        harness.key(KeyCode::Right);
    }
    harness.key(KeyCode::Enter);
    // Cloud-init: user me, no key (the defaults come from $USER and ~/.ssh).
    harness.ctrl('u');
    harness.type_text("me");
    harness.key(KeyCode::Tab);
    harness.ctrl('u');
    for _ in 0..8 {
        if harness.app.overlay.is_none() {
            break;
        }
        harness.key(KeyCode::Enter);
    }
    assert!(
        harness.app.overlay.is_none(),
        "the wizard did not finish: {}",
        harness.screen()
    );
    harness
}

/// [`wizard_from`] a copied file: the import is in flight; its task id.
fn import_in_flight(file: &Path) -> (Harness, u64) {
    let harness = wizard_from(Image::CopiedFile(file));
    let (id, running) = harness.app.tasks.iter().next().expect("the import runs");
    assert!(
        matches!(&running.task, Task::ImportImage { vm, import } if vm == "web9" && !import.linked),
        "{:?}",
        running.task
    );
    let id = *id;
    (harness, id)
}

/// The import at `done` of `total` bytes, at 85 MiB/s with 12 s left.
fn progress(done: u64, total: u64) -> TaskProgress {
    TaskProgress {
        snapshot: ProgressSnapshot {
            done,
            total,
            finished: false,
            cancelled: false,
        },
        rate: Some((85u64 << 20) as f64),
        eta: Some(Duration::from_secs(12)),
    }
}

#[test]
fn a_copied_image_shows_its_progress_in_the_task_list_before_the_vm_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = image_file(dir.path());
    let (mut harness, id) = import_in_flight(&file);
    assert!(harness.host.status("web9").is_err(), "defined too early");
    harness.act(Action::TaskProgress {
        id,
        progress: progress(1 << 30, 2 << 30),
    });
    let screen = harness.screen();
    assert!(
        screen.contains(" 50% 85M/s · 12s left · importing default/web9.qcow2"),
        "{screen}"
    );
    harness.char('T');
    let list = harness.screen();
    assert!(
        list.contains("▶ importing default/web9.qcow2 for web9"),
        "{list}"
    );
    assert!(list.contains(" 50%  1G of 2G · 85M/s · 12s left"), "{list}");
    assert!(list.contains("x cancels it"), "{list}");
}

#[test]
fn cancelling_the_copy_leaves_no_volume_and_no_vm_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = image_file(dir.path());
    let (mut harness, id) = import_in_flight(&file);
    harness.char('T');
    harness.char('x');
    assert!(harness.app.tasks[&id].cancelling);
    assert!(
        harness
            .screen()
            .contains("cancelling importing default/web9.qcow2")
    );

    harness.release_tasks();

    assert!(harness.app.tasks.is_empty());
    assert!(harness.app.after_import.is_empty());
    assert_eq!(
        harness.app.status.as_ref().map(|s| s.kind),
        Some(StatusKind::Info)
    );
    assert_eq!(
        status_text(&harness),
        format!(
            "cancelled: web9 was not created; {} is unchanged",
            file.display()
        )
    );
    assert!(harness.storage.volume("default", "web9.qcow2").is_none());
    assert!(harness.host.status("web9").is_err());
    assert!(harness.app.vms.iter().all(|vm| vm.name() != "web9"));
    assert_eq!(std::fs::read(&file).expect("image"), b"image");
}

#[test]
fn a_failed_copy_makes_no_vm_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = image_file(dir.path());
    let (mut harness, _) = import_in_flight(&file);
    harness
        .storage
        .fail_next("import", "no space left on device");
    harness.release_tasks();
    assert_eq!(
        harness.app.status.as_ref().map(|s| s.kind),
        Some(StatusKind::Error)
    );
    let status = status_text(&harness);
    assert!(
        status.starts_with("web9 was not created: ") && status.contains("no space left"),
        "{status}"
    );
    assert!(harness.storage.volume("default", "web9.qcow2").is_none());
    assert!(harness.host.status("web9").is_err());
    assert!(harness.app.after_import.is_empty());
}

#[test]
fn once_the_copy_is_done_the_vm_is_made_on_it_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = image_file(dir.path());
    let (mut harness, _) = import_in_flight(&file);
    harness.release_tasks();

    assert!(harness.app.tasks.is_empty());
    let volume = harness
        .storage
        .volume("default", "web9.qcow2")
        .expect("imported");
    assert!(volume.backing.is_none(), "a copy, not an overlay");
    let config = harness.host.status("web9").expect("defined").config;
    assert!(matches!(config.boot, BootConfig::Image { .. }));
    assert_eq!(config.disks[0].to_string(), "default/web9.qcow2");
    assert_eq!(
        config.cloud_init.and_then(|c| c.user).as_deref(),
        Some("me")
    );
    // Started and attached, as the wizard does without a copy.
    assert_eq!(
        harness.host.status("web9").expect("defined").state,
        vmux::protocol::RunState::Running
    );
    assert_eq!(
        status_text(&harness),
        "attached to web9; Ctrl-] detaches (the VM keeps running)"
    );
    assert_eq!(harness.app.list.selected.as_deref(), Some("web9"));
}

#[test]
fn a_linked_file_is_a_task_too_as_its_base_is_copied_into_the_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = image_file(dir.path());
    let mut harness = wizard_from(Image::LinkedFile(&file));
    let running = harness.app.tasks.values().next().expect("the import runs");
    assert!(
        matches!(&running.task, Task::ImportImage { import, .. } if import.linked),
        "{:?}",
        running.task
    );
    assert!(running.task.cancellable());
    harness.release_tasks();
    let volume = harness
        .storage
        .volume("default", "web9.qcow2")
        .expect("overlay");
    assert!(volume.backing.is_some());
    assert!(harness.host.status("web9").is_ok());
}

#[test]
fn an_overlay_on_a_pool_volume_is_still_made_in_one_step() {
    // Tasks are held: a task would still be waiting here.
    let harness = wizard_from(Image::LinkedVolume);
    assert!(harness.app.tasks.is_empty());
    let volume = harness
        .storage
        .volume("default", "web9.qcow2")
        .expect("overlay");
    assert!(
        volume
            .backing
            .is_some_and(|b| b.path.ends_with("base.qcow2")),
        "an overlay on default/base.qcow2"
    );
    assert!(harness.host.status("web9").is_ok());
}

#[test]
fn a_second_wizard_does_not_offer_the_name_of_a_vm_being_imported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = image_file(dir.path());
    let (mut harness, _) = import_in_flight(&file);
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("web9");
    harness.key(KeyCode::Enter);
    let screen = harness.screen();
    assert!(
        screen.contains("a VM named 'web9' already exists"),
        "{screen}"
    );
}
