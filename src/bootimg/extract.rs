//! [`extract`]: reads the kernel and initrd bytes a [`BootPlan`] names out of the image.
//! The partitions are reopened where the plan recorded them and must still hold the same
//! filesystem (UUID); the size limits apply again, and the read budget is the files' sizes
//! plus room for metadata, so a file that grew into something huge since inspection is
//! refused rather than read.

use super::error::BootImageError;
use super::ext::ExtFs;
use super::kernel;
use super::plan::{BootFile, BootPlan, EntryKind};
use super::source::{Budget, ReadAt, Window};
use super::{MAX_INITRD_SIZE, MAX_KERNEL_SIZE};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bytes read beyond the files themselves (inodes, extent trees, directories, read-ahead).
const METADATA_SLACK: u64 = 64 << 20;
/// Alignment of each initrd in the concatenated initrd (what GRUB uses between archives).
const INITRD_ALIGN: usize = 4;

/// The bytes to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// The kernel file.
    pub kernel: Vec<u8>,
    /// The initrds, concatenated (each padded to 4 bytes), when the plan has any.
    pub initrd: Option<Vec<u8>>,
}

/// Reads the files `plan` names from `disk`.
pub fn extract(disk: Arc<dyn ReadAt>, plan: &BootPlan) -> Result<BootFiles, BootImageError> {
    let sizes = plan
        .initrds
        .iter()
        .fold(plan.kernel.size, |sum, f| sum.saturating_add(f.size));
    let budget = Budget::new(
        sizes.saturating_mul(2).saturating_add(METADATA_SLACK),
        1 << 22,
    );
    let whole = Window::whole(disk, budget);
    let mut opened: BTreeMap<u32, ExtFs> = BTreeMap::new();
    for volume in &plan.volumes {
        let fs = ExtFs::open(whole.sub(volume.start, volume.size), volume.number)?;
        if fs.uuid() != volume.uuid {
            return Err(BootImageError::Changed {
                partition: volume.number,
                uuid: volume.uuid.clone(),
            });
        }
        opened.insert(volume.number, fs);
    }
    let entry = match plan.kind {
        EntryKind::Links => format!("the {} link", plan.kernel.path),
        kind => format!("{} entry '{}'", kind.name(), plan.title),
    };
    let read =
        |file: &BootFile, what: &'static str, limit: u64| -> Result<Vec<u8>, BootImageError> {
            let fs = opened
                .get(&file.partition)
                .ok_or_else(|| BootImageError::Changed {
                    partition: file.partition,
                    uuid: String::new(),
                })?;
            let too_large = |size| BootImageError::FileTooLarge {
                what,
                path: file.path.clone(),
                size,
                limit,
            };
            fs.read_file(&file.path, limit, too_large)?
                .ok_or_else(|| BootImageError::MissingFile {
                    entry: entry.clone(),
                    path: file.path.clone(),
                    partition: file.partition,
                })
        };
    let kernel_bytes = read(&plan.kernel, "kernel", MAX_KERNEL_SIZE)?;
    kernel::check(
        &kernel_bytes[..kernel_bytes.len().min(kernel::HEAD_LEN)],
        &plan.kernel.resolved,
    )?;
    let initrd = if plan.initrds.is_empty() {
        None
    } else {
        let mut all: Vec<u8> = Vec::new();
        for file in &plan.initrds {
            let bytes = read(file, "initrd", MAX_INITRD_SIZE)?;
            if all.is_empty() {
                // The usual single initrd is handed on as read, without another copy.
                all = bytes;
                continue;
            }
            all.resize(all.len().next_multiple_of(INITRD_ALIGN), 0);
            all.extend_from_slice(&bytes);
            if all.len() as u64 > MAX_INITRD_SIZE {
                return Err(BootImageError::FileTooLarge {
                    what: "initrd",
                    path: file.path.clone(),
                    size: all.len() as u64,
                    limit: MAX_INITRD_SIZE,
                });
            }
        }
        Some(all)
    };
    Ok(BootFiles {
        kernel: kernel_bytes,
        initrd,
    })
}
