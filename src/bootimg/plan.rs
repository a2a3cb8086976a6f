//! [`BootPlan`]: what vmux will boot from a disk image (which entry, which files on which
//! partition, which command line), as [`super::inspect`] found it. It is plain data: it can be
//! shown (`vmux info`), serialised (`vmux info --json`), and handed to [`super::extract`].

use crate::protocol::BootImageInfo;
use serde::{Deserialize, Serialize};

/// Where the chosen entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A Boot Loader Specification entry (`/loader/entries/*.conf`).
    Bls,
    /// grub.cfg's default `menuentry`.
    Grub,
    /// The `/vmlinuz` and `/initrd.img` links at the root of a filesystem.
    Links,
}

impl EntryKind {
    /// The word messages use.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Bls => "BLS",
            EntryKind::Grub => "grub",
            EntryKind::Links => "links",
        }
    }
}

/// A partition a boot file lives on, as it was when inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanVolume {
    /// Partition number (0: the whole disk).
    pub number: u32,
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// The ext filesystem's UUID (lower case), checked again by `extract`.
    pub uuid: String,
}

/// A kernel or initrd inside the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFile {
    /// Partition number (see [`BootPlan::volumes`]).
    pub partition: u32,
    /// The path as the entry names it (`/boot/vmlinuz-6.1.0-28-amd64`, `/vmlinuz`).
    pub path: String,
    /// The path with symlinks resolved.
    pub resolved: String,
    /// Its size in bytes when inspected.
    pub size: u64,
}

/// What vmux boots from a disk image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootPlan {
    /// Where the entry came from.
    pub kind: EntryKind,
    /// The entry's title (grub's menuentry title, BLS `title`, or a description for links).
    pub title: String,
    /// The BLS entry id or grub menuentry id, when it has one.
    pub entry_id: Option<String>,
    /// The kernel.
    pub kernel: BootFile,
    /// The initrds, loaded one after the other (usually one; none for some images).
    pub initrds: Vec<BootFile>,
    /// The kernel command line: the entry's, plus `console=ttyS0` when it names no console.
    pub cmdline: String,
    /// Every partition a file is on.
    pub volumes: Vec<PlanVolume>,
    /// Remarks for the user (a fallback taken, a damaged primary GPT, ...).
    pub notes: Vec<String>,
}

impl BootPlan {
    /// What `vmux info` reports about booting this plan from the image at `image` with
    /// `cmdline_extra` (sizes as inspected).
    pub fn boot_info(&self, image: &std::path::Path, cmdline_extra: &str) -> BootImageInfo {
        BootImageInfo {
            image: image.to_path_buf(),
            entry: self.kind.name().to_ascii_lowercase(),
            title: self.title.clone(),
            entry_id: self.entry_id.clone(),
            partition: self.kernel.partition,
            kernel: self.kernel.resolved.clone(),
            initrds: self.initrds.iter().map(|f| f.resolved.clone()).collect(),
            cmdline: super::cmdline::for_plan(self, cmdline_extra),
            kernel_bytes: self.kernel.size,
            initrd_bytes: self.initrds.iter().map(|f| f.size).sum(),
            notes: self.notes.clone(),
        }
    }

    /// "/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')", for `vmux info`.
    pub fn describe(&self) -> String {
        let entry = match self.kind {
            EntryKind::Links => "the /vmlinuz link".to_string(),
            kind => format!("{} entry '{}'", kind.name(), self.title),
        };
        format!("{} ({entry})", self.kernel.resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: EntryKind) -> BootPlan {
        BootPlan {
            kind,
            title: "Debian GNU/Linux".into(),
            entry_id: None,
            kernel: BootFile {
                partition: 1,
                path: "/vmlinuz".into(),
                resolved: "/boot/vmlinuz-6.1.0-28-amd64".into(),
                size: 8 << 20,
            },
            initrds: Vec::new(),
            cmdline: "root=UUID=x ro console=ttyS0".into(),
            volumes: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn descriptions_name_the_resolved_kernel_and_the_entry() {
        assert_eq!(
            plan(EntryKind::Grub).describe(),
            "/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')"
        );
        assert_eq!(
            plan(EntryKind::Links).describe(),
            "/boot/vmlinuz-6.1.0-28-amd64 (the /vmlinuz link)"
        );
    }

    #[test]
    fn plans_serialise_with_snake_case_kinds() {
        let json = serde_json::to_value(plan(EntryKind::Bls)).expect("serialises");
        assert_eq!(json["kind"], "bls");
        assert_eq!(json["kernel"]["resolved"], "/boot/vmlinuz-6.1.0-28-amd64");
    }
}
