//! The wizard's small file browser: Ctrl-O in a field that
//! [browses](crate::tui::form::FormField::browse) (kernel, initrd, image file, SSH key) lists
//! a directory through the worker, and Enter on a file fills the field.

use super::{Outcome, Wizard};
use crate::tui::action::DirEntry;
use crate::tui::form::FieldKey;
use crossterm::event::{KeyCode, KeyEvent};
use std::path::{Path, PathBuf};

/// A small directory browser for path fields.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePicker {
    /// The field it fills.
    pub target: FieldKey,
    /// The directory shown.
    pub dir: PathBuf,
    /// Its entries (directories first); empty while loading.
    pub entries: Vec<DirEntry>,
    /// Highlighted entry.
    pub selected: usize,
    /// Still waiting for the listing.
    pub loading: bool,
    /// Why the directory could not be read.
    pub error: Option<String>,
}

impl Wizard {
    /// The file browser opens in `dir` (the directory vmux was started in) when the path
    /// field does not name a directory of its own.
    pub fn browse_from(&mut self, dir: &Path) {
        self.browse_dir = dir.to_path_buf();
    }

    /// Ctrl-O: opens the picker for the focused field when it browses (in its directory, or
    /// ~/.ssh for an empty SSH key), else says where Ctrl-O works.
    pub(super) fn open_picker(&mut self) -> Outcome {
        let Some(target) = self
            .form
            .focused()
            .filter(|f| f.browse && self.focused() == Some(f.key))
            .map(|f| f.key)
        else {
            self.notice = Some(
                "Ctrl-O browses for a file in the Kernel and Initrd fields (boot source: Linux kernel)"
                    .into(),
            );
            return Outcome::None;
        };
        let current = self.text(target);
        let ssh_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh"));
        let dir = match ssh_dir {
            Some(ssh) if target == FieldKey::CiKey && current.is_empty() && ssh.is_dir() => ssh,
            _ => start_dir(current, &self.browse_dir),
        };
        self.picker = Some(FilePicker {
            target,
            dir: dir.clone(),
            entries: Vec::new(),
            selected: 0,
            loading: true,
            error: None,
        });
        Outcome::ListDir(dir)
    }

    /// A listing arrived for the picker (ignored when it is for another directory).
    pub fn listed(&mut self, dir: &Path, result: Result<Vec<DirEntry>, String>) {
        let Some(picker) = self.picker.as_mut().filter(|p| p.dir == dir) else {
            return;
        };
        picker.loading = false;
        picker.selected = 0;
        match result {
            Ok(entries) => {
                picker.entries = entries;
                picker.error = None;
            }
            Err(e) => {
                picker.entries.clear();
                picker.error = Some(e);
            }
        }
    }

    /// A key while the picker is open: move, open a directory, choose a file, or close.
    pub(super) fn picker_key(&mut self, key: &KeyEvent) -> Outcome {
        let Some(picker) = self.picker.as_mut() else {
            return Outcome::None;
        };
        // Entry 0 is always "..", so the parent is reachable with the arrows too.
        let count = picker.entries.len() + 1;
        match key.code {
            KeyCode::Esc => self.picker = None,
            KeyCode::Up => picker.selected = picker.selected.saturating_sub(1),
            KeyCode::Down => picker.selected = (picker.selected + 1).min(count - 1),
            KeyCode::PageUp => picker.selected = picker.selected.saturating_sub(10),
            KeyCode::PageDown => picker.selected = (picker.selected + 10).min(count - 1),
            KeyCode::Home => picker.selected = 0,
            KeyCode::End => picker.selected = count - 1,
            KeyCode::Backspace | KeyCode::Left => return self.picker_open_parent(),
            KeyCode::Enter | KeyCode::Right => {
                if picker.selected == 0 {
                    return self.picker_open_parent();
                }
                let Some(entry) = picker.entries.get(picker.selected - 1).cloned() else {
                    return Outcome::None;
                };
                let path = picker.dir.join(&entry.name);
                if entry.is_dir {
                    return self.picker_open(path);
                }
                if key.code == KeyCode::Enter {
                    let target = picker.target;
                    self.picker = None;
                    self.form.set_text(target, &path.display().to_string());
                    self.revalidate();
                }
            }
            KeyCode::Char(c) => {
                // Jump to the next entry starting with the typed letter.
                let found = picker
                    .entries
                    .iter()
                    .enumerate()
                    .cycle()
                    .skip(picker.selected)
                    .take(picker.entries.len())
                    .find(|(_, e)| e.name.starts_with(c))
                    .map(|(i, _)| i + 1);
                if let Some(i) = found {
                    picker.selected = i;
                }
            }
            _ => {}
        }
        Outcome::None
    }

    fn picker_open_parent(&mut self) -> Outcome {
        let parent = self
            .picker
            .as_ref()
            .and_then(|p| p.dir.parent().map(Path::to_path_buf));
        match parent {
            Some(parent) => self.picker_open(parent),
            None => Outcome::None,
        }
    }

    fn picker_open(&mut self, dir: PathBuf) -> Outcome {
        if let Some(picker) = self.picker.as_mut() {
            picker.dir = dir.clone();
            picker.entries.clear();
            picker.loading = true;
            picker.error = None;
            picker.selected = 0;
        }
        Outcome::ListDir(dir)
    }
}

/// The directory the picker opens in: the field's directory when it exists, else `fallback`
/// (the directory vmux was started in).
fn start_dir(current: &str, fallback: &Path) -> PathBuf {
    let path = Path::new(current);
    let dir = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    dir.filter(|d| d.is_absolute() && d.is_dir())
        .map_or_else(|| fallback.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{NetworkSnapshot, StorageSnapshot};
    use crate::tui::wizard::Step;
    use crossterm::event::KeyModifiers;

    fn create(existing: Vec<String>) -> Wizard {
        Wizard::create(
            existing,
            &StorageSnapshot::default(),
            &NetworkSnapshot::default(),
        )
    }

    fn press(wizard: &mut Wizard, code: KeyCode) -> Outcome {
        wizard.handle_key(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn picker_fills_the_path_field() {
        let mut wizard = create(Vec::new());
        wizard.step = Step::Boot;
        press(&mut wizard, KeyCode::Char(' '));
        press(&mut wizard, KeyCode::Down);
        let outcome = wizard.handle_key(&KeyEvent::new(KeyCode::Char('o'), KeyModifiers::CONTROL));
        assert_eq!(outcome, Outcome::ListDir(PathBuf::from("/")));
        wizard.listed(
            Path::new("/"),
            Ok(vec![DirEntry {
                name: "vmlinuz".into(),
                is_dir: false,
            }]),
        );
        press(&mut wizard, KeyCode::Down);
        press(&mut wizard, KeyCode::Enter);
        assert!(wizard.picker.is_none());
        assert_eq!(wizard.text(FieldKey::Kernel), "/vmlinuz");
    }
}
