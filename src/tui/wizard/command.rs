//! The wizard's review shows the shell commands that make the same VM: `vmux create` with the
//! fields' options, after `vmux vol-create-as`, `vmux vol-import` or `vmux net-start` where the
//! choices need them.

use super::Wizard;
use crate::tui::form::FieldKey;

impl Wizard {
    /// The `vmux create` command line that makes the same VM (after a `vmux vol-create-as`
    /// for the new volume).
    pub fn command_line(&self) -> String {
        let mut words = Vec::new();
        if let Some(volume) = self.new_volume() {
            words.extend([
                "vmux".to_string(),
                "vol-create-as".to_string(),
                shell_quote(&volume.pool),
                shell_quote(&volume.name),
                shell_quote(self.text(FieldKey::DiskSize)),
                "&&".to_string(),
            ]);
        }
        for network in self.networks_to_start() {
            words.extend([
                "vmux".to_string(),
                "net-start".to_string(),
                shell_quote(&network),
                "&&".to_string(),
            ]);
        }
        words.extend([
            "vmux".to_string(),
            "create".to_string(),
            shell_quote(self.text(FieldKey::Name)),
        ]);
        if self.image_boot() {
            let (before, image) = self.image_words(shell_quote);
            words.splice(0..0, before);
            words.extend(image);
        } else if self.kernel_boot() {
            words.push("--kernel".into());
            words.push(shell_quote(self.text(FieldKey::Kernel)));
            let initrd = self.text(FieldKey::Initrd);
            if !initrd.is_empty() {
                words.push("--initrd".into());
                words.push(shell_quote(initrd));
            }
            let cmdline = self.text(FieldKey::Cmdline);
            if !cmdline.is_empty() {
                words.push("--cmdline".into());
                words.push(shell_quote(cmdline));
            }
        } else {
            words.push("--demo".into());
        }
        for (flag, id) in [
            ("--vcpus", FieldKey::Vcpus),
            ("--max-vcpus", FieldKey::MaxVcpus),
            ("--memory", FieldKey::Memory),
        ] {
            words.push(flag.into());
            words.push(shell_quote(self.text(id)));
        }
        if self.flag(FieldKey::Autostart) {
            words.push("--autostart".into());
        }
        let new_disk = self.new_volume().map(|v| format!("{}/{}", v.pool, v.name));
        for disk in new_disk.into_iter().chain(self.chosen_volumes()) {
            words.push("--disk".into());
            words.push(shell_quote(&disk));
        }
        for network in self.chosen_networks() {
            words.push("--network".into());
            words.push(shell_quote(&network));
        }
        if self.flag(FieldKey::StartNow) {
            words.push("--start".into());
        }
        words.join(" ")
    }
}

/// Quotes `word` for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./=:,+-@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_quotes_spaces_and_quotes() {
        assert_eq!(shell_quote("console=ttyS0"), "console=ttyS0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
