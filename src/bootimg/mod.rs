//! Booting a distribution disk image from its own /boot, the way Xen's pygrub does: read the
//! image's partition table, find the ext2/3/4 filesystem holding /boot, pick the entry the
//! distribution's boot loader would boot, and read that kernel and initrd out. No firmware and
//! no boot loader run; the guest gets the same kernel, initrd and command line it would get
//! from GRUB.
//!
//! # API (for the VM start path, `vmux info` and the CLI)
//!
//! ```no_run
//! use std::sync::Arc;
//! use vmux::bootimg::{self, ReadAt, StorageDisk};
//! use vmux::storage::format::{BackingTrust, Detect};
//!
//! # fn main() -> anyhow::Result<()> {
//! # let pools = BackingTrust::none();
//! let disk: Arc<dyn ReadAt> =
//!     Arc::new(StorageDisk::open("web1.qcow2".as_ref(), Detect::ByName, &pools)?);
//! let plan = bootimg::inspect(Arc::clone(&disk))?;     // which entry, files, cmdline
//! println!("boot: {}", plan.describe());                // "/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')"
//! let files = bootimg::extract(disk, &plan)?;           // kernel bytes, concatenated initrds
//! # let _ = files.kernel.len();
//! # Ok(()) }
//! ```
//!
//! - [`inspect`] reads the partition table, filesystem metadata, the boot configuration and
//!   the kernel's first kilobyte, and returns a [`BootPlan`] (serialisable: kind, title,
//!   files inside the image, command line, notes). Call it at every start: a kernel update
//!   inside the guest takes effect on the next boot.
//! - [`extract`] reads the files of a plan ([`BootFiles`]). The kernel is at most
//!   [`MAX_KERNEL_SIZE`], the initrds together at most [`MAX_INITRD_SIZE`]; the kernel is a
//!   bzImage or an ELF (what the engine's loader takes), checked by magic before the VM starts.
//! - Every failure is a [`BootImageError`] whose message names what was found and what would
//!   work (e.g. "the /boot filesystem (partition 2) is XFS, which vmux cannot read; boot this
//!   image with --kernel/--initrd extracted by hand, or convert /boot to ext4").
//!
//! Any byte source works through [`ReadAt`]: [`StorageDisk`] for vmux storage images (raw
//! and qcow2 with backing chains, through `storage::open_image`), [`RawFile`] for a plain
//! file, `Vec<u8>` in tests.
//!
//! # Hostile images
//!
//! The image is untrusted. Each inspection or extraction reads through a [`source::Budget`]
//! (bytes and read calls), every structure is bounds-checked before use (GPT entry arrays of
//! at most 1 MiB, at most 128 logical MBR partitions with loop detection, ext superblocks
//! checked against their partition before `ext4-view` sees them, symlinks at most 40 deep,
//! grub.cfg at most 1 MiB with step, nesting and variable-size limits, at most 256 BLS
//! entries), and nothing here panics on bad bytes.
//!
//! Files: [`source`] (byte sources, windows, budget), [`table`] with [`gpt`] and [`mbr`],
//! [`fsprobe`] (filesystem magics), [`ext`] (ext2/3/4 via ext4-view), [`volumes`] (probed
//! partitions, GRUB device names), [`bls`] with [`version`], [`grub`] with [`grubenv`],
//! [`kernel`] (format check), [`cmdline`], [`plan`], [`inspect`](mod@inspect),
//! [`extract`](mod@extract), [`storage_disk`], [`error`].

pub mod bls;
pub mod cmdline;
pub mod error;
pub mod ext;
pub mod extract;
pub mod fsprobe;
pub mod gpt;
pub mod grub;
pub mod grubenv;
pub mod inspect;
pub mod kernel;
pub mod mbr;
pub mod plan;
pub mod source;
pub mod storage_disk;
pub mod table;
pub mod version;
pub mod volumes;

pub use error::BootImageError;
pub use extract::{BootFiles, extract};
pub use inspect::inspect;
pub use plan::{BootFile, BootPlan, EntryKind, PlanVolume};
pub use source::{RawFile, ReadAt};
pub use storage_disk::StorageDisk;

/// Largest kernel vmux loads from an image, in bytes (256 MiB).
pub const MAX_KERNEL_SIZE: u64 = 256 << 20;
/// Largest initrd (all initrds of the entry together) vmux loads from an image, in bytes
/// (1 GiB).
pub const MAX_INITRD_SIZE: u64 = 1 << 30;

#[cfg(test)]
mod tests;
