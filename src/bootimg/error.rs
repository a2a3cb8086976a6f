//! [`BootImageError`]: why vmux cannot boot a disk image from its own /boot. Every message
//! names what was found and what would work instead.

use std::io;

/// The advice every "cannot read /boot" message ends with.
pub const BY_HAND: &str = "boot this image with --kernel/--initrd extracted by hand";

/// Errors of boot-image inspection and extraction.
#[derive(Debug, thiserror::Error)]
pub enum BootImageError {
    /// The disk image could not be read.
    #[error("cannot read the disk image ({what})")]
    Read {
        /// What was being read.
        what: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The image is too small to hold anything bootable.
    #[error(
        "the disk image is only {size} bytes, too small to hold a partition table or a filesystem; check that the download or copy is complete"
    )]
    TooSmall {
        /// Image size in bytes.
        size: u64,
    },
    /// Both GPT headers (or their entry arrays) are unusable.
    #[error(
        "the GPT partition table is damaged: {reason}; the image may be truncated (it is {size} bytes): download it again, or repair it with `sgdisk -e` / `gdisk`"
    )]
    GptDamaged {
        /// What is wrong with the primary and the backup table.
        reason: String,
        /// Image size in bytes.
        size: u64,
    },
    /// Neither a partition table nor a filesystem vmux knows at the start of the image.
    #[error(
        "the disk image has no partition table and no filesystem vmux recognises ({found}); {BY_HAND}"
    )]
    NothingRecognised {
        /// What the first bytes look like.
        found: String,
    },
    /// The filesystem that holds (or may hold) /boot is one vmux cannot read.
    #[error(
        "the /boot filesystem{} is {fs}, which vmux cannot read; {BY_HAND}, or convert /boot to ext4",
        partition.map(|p| format!(" ({})", Place(p))).unwrap_or_default()
    )]
    UnreadableBootFs {
        /// The partition, when known (0: the whole disk).
        partition: Option<u32>,
        /// The filesystem or container, by name ("XFS", "btrfs", "an LVM physical volume").
        fs: String,
    },
    /// No boot entry and no kernel link anywhere.
    #[error(
        "no kernel found in the disk image: no Boot Loader Specification entry (/loader/entries), no grub.cfg and no /vmlinuz link on {searched}; {BY_HAND}"
    )]
    NoKernel {
        /// The filesystems searched, by partition.
        searched: String,
    },
    /// The chosen entry names a file that is not there.
    #[error(
        "{entry} loads {path} from {}, which does not exist there; fix the boot entry inside the guest (e.g. `update-grub`), or {BY_HAND}",
        Place(*partition)
    )]
    MissingFile {
        /// The entry ("grub entry 'Debian GNU/Linux'").
        entry: String,
        /// The path inside the filesystem.
        path: String,
        /// The partition.
        partition: u32,
    },
    /// The chosen entry names a device that is not a partition of this disk.
    #[error("{entry} loads {path} from {device}, which vmux cannot reach: {reason}; {BY_HAND}")]
    UnknownDevice {
        /// The entry.
        entry: String,
        /// The path as written.
        path: String,
        /// The GRUB device as written.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The chosen entry does not boot a Linux kernel directly.
    #[error("{entry} does not load a Linux kernel ({found}); {BY_HAND}")]
    NotLinux {
        /// The entry.
        entry: String,
        /// What it does instead.
        found: String,
    },
    /// A kernel or initrd larger than vmux loads.
    #[error(
        "the {what} {path} is {size} bytes, over the {limit} bytes vmux loads from an image; {BY_HAND}"
    )]
    FileTooLarge {
        /// "kernel" or "initrd".
        what: &'static str,
        /// Its path inside the filesystem.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The kernel is in a format the loader does not take.
    #[error(
        "the kernel {path} is {found}, which vmux's loader does not take (it boots a bzImage, an x86-64 ELF vmlinux or a static ELF64 program); {advice}"
    )]
    KernelFormat {
        /// Its path inside the filesystem.
        path: String,
        /// What it is.
        found: &'static str,
        /// What to do.
        advice: &'static str,
    },
    /// A symlink on the way to the kernel or initrd loops (or nests too deeply).
    #[error(
        "{path} on {} is a symlink that loops (or nests more than 40 links deep); fix the link inside the guest, or {BY_HAND}",
        Place(*partition)
    )]
    SymlinkLoop {
        /// The path that was being resolved.
        path: String,
        /// The partition.
        partition: u32,
    },
    /// The ext2/3/4 filesystem is damaged or uses a feature ext4-view does not read.
    #[error("cannot read the ext2/3/4 filesystem on {} ({what})", Place(*partition))]
    Ext {
        /// The partition.
        partition: u32,
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: ext4_view::Ext4Error,
    },
    /// The ext superblock makes no sense for its partition.
    #[error(
        "the ext2/3/4 filesystem on {} is damaged: {reason}; check it with `e2fsck -n`, or {BY_HAND}",
        Place(*partition)
    )]
    ExtCorrupt {
        /// The partition.
        partition: u32,
        /// What is wrong.
        reason: String,
    },
    /// grub.cfg cannot be parsed.
    #[error(
        "cannot parse {path} on {}, line {line}: {reason}; fix it inside the guest (`update-grub`), or {BY_HAND}",
        Place(*partition)
    )]
    GrubSyntax {
        /// Its path.
        path: String,
        /// The partition.
        partition: u32,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A boot configuration file breaks a size limit.
    #[error("{what} on {} {reason}; {BY_HAND}", Place(*partition))]
    ConfigTooLarge {
        /// Which file.
        what: String,
        /// The partition.
        partition: u32,
        /// Which limit.
        reason: String,
    },
    /// The inspection read more than its budget: the image is damaged or hostile.
    #[error(
        "reading the kernel out of this image needed more than {limit} of reads; the image is probably damaged; {BY_HAND}"
    )]
    Budget {
        /// The budget, human-readable.
        limit: String,
    },
    /// The image changed between inspection and extraction.
    #[error(
        "{} of the disk image no longer holds the filesystem {uuid} it held when vmux chose the kernel; inspect the image again",
        Place(*partition)
    )]
    Changed {
        /// The partition.
        partition: u32,
        /// The filesystem UUID recorded in the plan.
        uuid: String,
    },
}

/// "partition N", or "the whole disk" for number 0 (a disk without a partition table).
#[derive(Debug, Clone, Copy)]
pub struct Place(pub u32);

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => write!(f, "the whole disk"),
            n => write!(f, "partition {n}"),
        }
    }
}

impl BootImageError {
    /// A read failure of `what`.
    pub fn read(what: impl Into<String>, source: io::Error) -> BootImageError {
        BootImageError::Read {
            what: what.into(),
            source,
        }
    }
}
