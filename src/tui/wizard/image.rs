//! The wizard's "disk image" boot source and its cloud-init step: which image (a pool volume,
//! or a file that is imported into the default pool as a linked overlay or a copy), and the
//! cloud-init settings (user, SSH key, password, host name), checked as they are typed, turned
//! into the VM's disk vda, an [`ImageSetup`] for the worker, and `vmux create` words.

use super::fields::{choice, text};
use super::{FieldKey, FormField, IMAGE_SOURCE, Wizard};
use crate::client::{ImageSource, StorageSnapshot};
use crate::cloudinit::options::{hostname_from_vm_name, validate_hostname, validate_user};
use crate::cloudinit::{CloudInitOptions, Password, default_ssh_keys};
use crate::config::{DEFAULT_POOL, DiskConfig};
use crate::tui::image_setup::{ImageImport, ImageSetup};
use std::path::{Path, PathBuf};

/// The first `ImageFrom` choice: a file rather than a pool volume.
const FILE_CHOICE: &str = "an image file (Ctrl-O browses)";
/// `ImageMode` choices for a file.
const FILE_MODES: [&str; 2] = [
    "linked: a new overlay on the file (it stays unchanged)",
    "copy it into the default pool",
];
/// `ImageMode` choices for a pool volume.
const VOLUME_MODES: [&str; 2] = [
    "linked: a new overlay on it (it stays unchanged)",
    "the volume itself (the VM writes to it)",
];
/// `CiPassword` choices.
pub const PASSWORDS: [&str; 2] = ["none (log in with the SSH key)", "generate a root password"];

/// The image fields, with defaults: the user's name and first public key from `home`.
pub fn image_fields(home: Option<&Path>) -> Vec<FormField> {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| validate_user(u).is_ok())
        .unwrap_or_default();
    let key = home
        .map(default_ssh_keys)
        .and_then(|keys| keys.into_iter().next())
        .map(|k| k.display().to_string())
        .unwrap_or_default();
    vec![
        choice(FieldKey::ImageFrom, "Image", &[FILE_CHOICE]),
        text(FieldKey::ImageFile, "Image file", "").browsing(),
        choice(FieldKey::ImageMode, "Use it as", &FILE_MODES),
        text(FieldKey::CiUser, "User", &user),
        text(FieldKey::CiKey, "SSH key", &key).browsing(),
        choice(FieldKey::CiPassword, "Password", &PASSWORDS),
        text(FieldKey::CiHostname, "Host name", ""),
    ]
}

/// Readable volumes of active pools, as `pool/volume`, for `ImageFrom`.
pub fn image_volumes(storage: &StorageSnapshot) -> Vec<String> {
    storage
        .pools
        .iter()
        .filter(|p| p.active())
        .flat_map(|p| {
            p.volumes
                .iter()
                .filter(|v| v.info.is_ok())
                .map(move |v| format!("{}/{}", p.name(), v.name))
        })
        .collect()
}

impl Wizard {
    /// Whether the disk-image boot source is chosen.
    pub fn image_boot(&self) -> bool {
        self.choice_index(FieldKey::Source) == IMAGE_SOURCE
    }

    fn image_from_file(&self) -> bool {
        self.choice_index(FieldKey::ImageFrom) == 0
    }

    /// A new overlay rather than the image itself (a volume) or a copy (a file).
    fn image_linked(&self) -> bool {
        self.choice_index(FieldKey::ImageMode) == 0
    }

    /// The words of the image choice fields.
    pub(super) fn image_options(&self, id: FieldKey) -> Vec<String> {
        let words: Vec<&str> = match id {
            FieldKey::ImageFrom => {
                let mut all = vec![FILE_CHOICE.to_string()];
                all.extend(self.image_volumes.iter().cloned());
                return all;
            }
            FieldKey::ImageMode if self.image_from_file() => FILE_MODES.to_vec(),
            FieldKey::ImageMode => VOLUME_MODES.to_vec(),
            FieldKey::CiPassword => PASSWORDS.to_vec(),
            _ => Vec::new(),
        };
        words.into_iter().map(str::to_string).collect()
    }

    /// Boot-step fields for the image source.
    pub(super) fn image_visible(&self) -> Vec<FieldKey> {
        let mut ids = vec![FieldKey::Source, FieldKey::ImageFrom];
        if self.image_from_file() {
            ids.push(FieldKey::ImageFile);
        }
        ids.push(FieldKey::ImageMode);
        ids
    }

    /// The cloud-init step's fields.
    pub(super) fn cloud_init_visible(&self) -> Vec<FieldKey> {
        vec![
            FieldKey::CiUser,
            FieldKey::CiKey,
            FieldKey::CiPassword,
            FieldKey::CiHostname,
        ]
    }

    /// The image volume chosen, when it is a pool volume.
    fn image_volume(&self) -> Option<(String, String)> {
        let chosen = self
            .image_volumes
            .get(self.choice_index(FieldKey::ImageFrom).checked_sub(1)?)?;
        let (pool, volume) = chosen.split_once('/')?;
        Some((pool.to_string(), volume.to_string()))
    }

    /// The volume the VM's new overlay or copy becomes: `<name>.qcow2` in the default pool.
    fn import_volume(&self) -> String {
        format!("{}.qcow2", self.text(FieldKey::Name))
    }

    /// Keeps the host name following the VM's name until the user types one.
    pub(super) fn follow_hostname(&mut self) {
        if self.hostname_auto {
            let host = hostname_from_vm_name(self.text(FieldKey::Name));
            self.form.set_text(FieldKey::CiHostname, &host);
        }
    }

    /// The problem with image field `id`, if any (`None` when the image source is not chosen).
    pub(super) fn check_image(&self, id: FieldKey) -> Option<String> {
        if !self.image_boot() || self.editing.is_some() {
            return None;
        }
        let value = self.text(id);
        match id {
            FieldKey::ImageFile if self.image_from_file() => {
                if value.is_empty() {
                    return Some("give the image file's path (Ctrl-O browses)".into());
                }
                let path = Path::new(value);
                if !path.is_absolute() {
                    return Some(format!("{value} must be an absolute path (start with /)"));
                }
                (!path.is_file()).then(|| format!("no file at {value} (Ctrl-O browses)"))
            }
            FieldKey::ImageMode if self.image_linked() || self.image_from_file() => {
                let name = self.import_volume();
                let default = self.pools.iter().find(|p| p.name == DEFAULT_POOL);
                match default {
                    None => Some(format!(
                        "the {DEFAULT_POOL} pool is not active; start it in the Storage pane (2)"
                    )),
                    Some(pool) if pool.taken.contains(&name) => Some(format!(
                        "pool {DEFAULT_POOL} already has {name}; pick another VM name"
                    )),
                    Some(_) => None,
                }
            }
            FieldKey::CiUser if !value.is_empty() => {
                validate_user(value).err().map(|e| e.to_string())
            }
            FieldKey::CiKey if !value.is_empty() => {
                let path = Path::new(value);
                if !path.is_absolute() {
                    Some(format!("{value} must be an absolute path"))
                } else if !path.is_file() {
                    Some(format!("no file at {value} (Ctrl-O browses ~/.ssh)"))
                } else {
                    None
                }
            }
            FieldKey::CiHostname if !value.is_empty() => {
                validate_hostname(value).err().map(|e| e.to_string())
            }
            _ => None,
        }
    }

    /// The VM's disk vda for the image choice.
    pub(super) fn image_disk(&self) -> Option<DiskConfig> {
        if !self.image_boot() {
            return None;
        }
        match self.image_volume() {
            Some((pool, volume)) if !self.image_linked() => {
                Some(DiskConfig::volume(&pool, &volume))
            }
            _ => Some(DiskConfig::volume(DEFAULT_POOL, &self.import_volume())),
        }
    }

    /// The image to import, when the choice needs one.
    fn image_import(&self) -> Option<ImageImport> {
        let source = match self.image_volume() {
            Some((pool, volume)) => {
                if !self.image_linked() {
                    return None;
                }
                ImageSource::Volume { pool, volume }
            }
            None => ImageSource::File(PathBuf::from(self.text(FieldKey::ImageFile))),
        };
        Some(ImageImport {
            source,
            pool: DEFAULT_POOL.to_string(),
            volume: self.import_volume(),
            linked: self.image_linked(),
        })
    }

    /// The cloud-init settings chosen (not sealed).
    fn cloud_init_options(&self) -> CloudInitOptions {
        let some = |id| Some(self.text(id).to_string()).filter(|t| !t.is_empty());
        CloudInitOptions {
            user: some(FieldKey::CiUser),
            ssh_keys: some(FieldKey::CiKey)
                .map(PathBuf::from)
                .into_iter()
                .collect(),
            root_password: (self.choice_index(FieldKey::CiPassword) == 1)
                .then_some(Password::Generate),
            hostname: some(FieldKey::CiHostname),
            ..CloudInitOptions::default()
        }
    }

    /// What the worker does for the image choice before defining the VM.
    pub fn image_setup(&self) -> Option<ImageSetup> {
        self.image_boot().then(|| ImageSetup {
            import: self.image_import(),
            cloud_init: Some(self.cloud_init_options()),
            imported: false,
        })
    }

    /// What the review says about the image and cloud-init: (image, cloud-init), for the
    /// disk-image source.
    pub fn image_summary(&self) -> Option<(String, String)> {
        if !self.image_boot() {
            return None;
        }
        let source = match self.image_volume() {
            Some((pool, volume)) => format!("{pool}/{volume}"),
            None => self.text(FieldKey::ImageFile).to_string(),
        };
        let image = match (self.image_volume(), self.image_linked()) {
            (Some(_), false) => format!("{source}, used as it is (vda)"),
            (_, true) => format!(
                "vda {DEFAULT_POOL}/{}, a new overlay on {source}",
                self.import_volume()
            ),
            (None, false) => format!(
                "vda {DEFAULT_POOL}/{}, a copy of {source}",
                self.import_volume()
            ),
        };
        let options = self.cloud_init_options();
        let mut parts = vec![match &options.user {
            Some(user) => format!("user {user}"),
            None => "the image's default user".to_string(),
        }];
        match options.ssh_keys.first() {
            Some(key) => parts.push(format!("key {}", key.display())),
            None => parts.push("no SSH key".into()),
        }
        if options.root_password.is_some() {
            parts.push("generated root password".into());
        }
        parts.push(format!(
            "host {}",
            options
                .hostname
                .unwrap_or_else(|| hostname_from_vm_name(self.text(FieldKey::Name)))
        ));
        Some((image, parts.join(", ")))
    }

    /// `vmux vol-import ... &&` words to put first, and the `create` options for the image.
    pub(super) fn image_words(&self, quote: fn(&str) -> String) -> (Vec<String>, Vec<String>) {
        let mut before = Vec::new();
        let mut words = vec!["--image".to_string()];
        match (self.image_volume(), self.image_linked()) {
            (Some((pool, volume)), linked) => {
                words.push(quote(&format!("{pool}/{volume}")));
                if linked {
                    words.push("--linked".into());
                }
            }
            (None, true) => {
                words.push(quote(self.text(FieldKey::ImageFile)));
                words.push("--linked".into());
            }
            (None, false) => {
                let volume = self.import_volume();
                before.extend([
                    "vmux".to_string(),
                    "vol-import".to_string(),
                    DEFAULT_POOL.to_string(),
                    quote(&volume),
                    quote(self.text(FieldKey::ImageFile)),
                    "&&".to_string(),
                ]);
                words.push(quote(&format!("{DEFAULT_POOL}/{volume}")));
            }
        }
        let options = self.cloud_init_options();
        let mut parts = Vec::new();
        if let Some(user) = &options.user {
            parts.push(format!("user={user}"));
        }
        for key in &options.ssh_keys {
            parts.push(format!("ssh-key={}", key.display()));
        }
        if options.root_password.is_some() {
            parts.push("root-password=generate".into());
        }
        if let Some(host) = &options.hostname {
            parts.push(format!("hostname={host}"));
        }
        words.push("--cloud-init".into());
        if !parts.is_empty() {
            words.push(quote(&parts.join(",")));
        }
        (before, words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::FakeStorage;
    use crate::client::{NetworkSnapshot, StorageHost};
    use crate::config::BootConfig;
    use crate::tui::wizard::{Outcome, Step};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    fn press(wizard: &mut Wizard, code: KeyCode) -> Outcome {
        wizard.handle_key(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn set(wizard: &mut Wizard, id: FieldKey, value: &str) {
        wizard.form.set_text(id, value);
        wizard.revalidate();
    }

    /// The wizard on its boot step with the disk-image source chosen; `dir` holds an image
    /// file and a public key.
    fn image_wizard(dir: &Path) -> Wizard {
        let storage = FakeStorage::new();
        storage.add_volume("default", "debian-12.qcow2", 2 << 30, 400 << 20);
        let snapshot = storage.snapshot().expect("snapshot");
        let mut wizard = Wizard::create(Vec::new(), &snapshot, &NetworkSnapshot::default());
        std::fs::write(dir.join("debian.qcow2"), b"image").expect("image");
        std::fs::write(dir.join("id_ed25519.pub"), b"ssh-ed25519 AAAA k").expect("key");
        press(&mut wizard, KeyCode::Enter);
        press(&mut wizard, KeyCode::Left);
        assert!(
            wizard.image_boot(),
            "Left from the demo picks the disk image"
        );
        set(&mut wizard, FieldKey::CiUser, "me");
        set(
            &mut wizard,
            FieldKey::CiKey,
            &dir.join("id_ed25519.pub").display().to_string(),
        );
        wizard
    }

    #[test]
    fn the_image_source_adds_a_cloud_init_step_and_needs_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wizard = image_wizard(dir.path());
        assert_eq!(
            wizard.steps(),
            [
                Step::Name,
                Step::Boot,
                Step::CloudInit,
                Step::Resources,
                Step::Disks,
                Step::Review
            ]
        );
        assert_eq!(press(&mut wizard, KeyCode::Enter), Outcome::None);
        assert_eq!(wizard.step, Step::Boot);
        assert_eq!(wizard.focused(), Some(FieldKey::ImageFile));
        set(
            &mut wizard,
            FieldKey::ImageFile,
            "/nonexistent/debian.qcow2",
        );
        let error = wizard
            .field(FieldKey::ImageFile)
            .and_then(|f| f.error.clone());
        assert!(error.expect("error").contains("no file at"));
    }

    #[test]
    fn a_linked_file_creates_an_overlay_vda_with_sealed_cloud_init_left_to_the_worker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wizard = image_wizard(dir.path());
        let file = dir.path().join("debian.qcow2");
        set(
            &mut wizard,
            FieldKey::ImageFile,
            &file.display().to_string(),
        );
        let key = dir.path().join("id_ed25519.pub");
        while wizard.step != Step::Review {
            assert_eq!(
                press(&mut wizard, KeyCode::Enter),
                Outcome::None,
                "{:?}",
                wizard.problem
            );
        }
        assert_eq!(
            wizard.command_line(),
            format!(
                "vmux create vm1 --image {} --linked --cloud-init user=me,ssh-key={},hostname=vm1 --vcpus 1 --max-vcpus 4 --memory 256M --start",
                file.display(),
                key.display()
            )
        );
        let Outcome::Create { config, image, .. } = press(&mut wizard, KeyCode::Enter) else {
            panic!("expected Create");
        };
        assert!(matches!(config.boot, BootConfig::Image { .. }));
        assert_eq!(config.disks[0].source.to_string(), "default/vm1.qcow2");
        let image = image.expect("an image setup");
        assert_eq!(
            image.import,
            Some(ImageImport {
                source: ImageSource::File(file),
                pool: "default".into(),
                volume: "vm1.qcow2".into(),
                linked: true,
            })
        );
        let options = image.cloud_init.expect("cloud-init");
        assert_eq!(options.user.as_deref(), Some("me"));
        assert_eq!(options.ssh_keys, [key]);
        assert_eq!(options.hostname.as_deref(), Some("vm1"));
    }

    #[test]
    fn a_copied_file_is_imported_first_in_the_equivalent_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wizard = image_wizard(dir.path());
        let file = dir.path().join("debian.qcow2");
        set(
            &mut wizard,
            FieldKey::ImageFile,
            &file.display().to_string(),
        );
        assert!(wizard.focus_on(FieldKey::ImageMode), "mode shown");
        press(&mut wizard, KeyCode::Char(' '));
        let line = wizard.command_line();
        assert!(
            line.starts_with(&format!(
                "vmux vol-import default vm1.qcow2 {} && vmux create vm1 --image default/vm1.qcow2 --cloud-init",
                file.display()
            )),
            "{line}"
        );
    }

    #[test]
    fn a_pool_volume_used_as_it_is_becomes_vda_and_needs_no_import() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wizard = image_wizard(dir.path());
        assert!(wizard.focus_on(FieldKey::ImageFrom));
        press(&mut wizard, KeyCode::Char(' '));
        assert_eq!(
            wizard.chosen(FieldKey::ImageFrom).as_deref(),
            Some("default/debian-12.qcow2")
        );
        assert!(!wizard.visible().contains(&FieldKey::ImageFile));
        assert!(wizard.focus_on(FieldKey::ImageMode));
        press(&mut wizard, KeyCode::Char(' '));
        let setup = wizard.image_setup().expect("setup");
        assert_eq!(setup.import, None);
        assert_eq!(
            wizard.image_disk().map(|d| d.source.to_string()).as_deref(),
            Some("default/debian-12.qcow2")
        );
    }

    #[test]
    fn the_host_name_follows_the_vm_name_until_typed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wizard = image_wizard(dir.path());
        set(&mut wizard, FieldKey::Name, "Web_1");
        assert_eq!(wizard.text(FieldKey::CiHostname), "web-1");
        wizard.step = Step::CloudInit;
        assert!(wizard.focus_on(FieldKey::CiHostname));
        press(&mut wizard, KeyCode::Char('x'));
        set(&mut wizard, FieldKey::Name, "web2");
        assert_eq!(wizard.text(FieldKey::CiHostname), "web-1x");
    }
}
