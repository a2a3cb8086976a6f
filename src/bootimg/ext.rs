//! Read-only access to one ext2/3/4 filesystem through the `ext4-view` crate (written for
//! untrusted input: extents, 64-bit, htree directories, symlinks, metadata checksums and
//! journal replay in memory; it never writes).
//!
//! Before `ext4-view` sees the filesystem, [`ExtFs::open`] checks that the superblock's sizes
//! fit the partition, so a forged block or group count cannot make it allocate per-group
//! tables larger than the partition could describe. File reads are bounded by the caller's
//! limit, checked against the inode size before a byte is allocated.

use super::error::BootImageError;
use super::source::Window;
use ext4_view::{Ext4, Ext4Error};

/// Most block groups accepted (a 128 TiB filesystem with the default 128 MiB groups).
const MAX_GROUPS: u64 = 1 << 20;
/// Most directory entries listed from one directory.
pub const MAX_DIR_ENTRIES: usize = 4096;

/// One opened ext2/3/4 filesystem.
pub struct ExtFs {
    fs: Ext4,
    partition: u32,
    window: Window,
    uuid: String,
}

impl std::fmt::Debug for ExtFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtFs")
            .field("partition", &self.partition)
            .field("uuid", &self.uuid)
            .finish_non_exhaustive()
    }
}

impl ExtFs {
    /// Opens the filesystem in `window` (partition `partition`, for messages).
    pub fn open(window: Window, partition: u32) -> Result<ExtFs, BootImageError> {
        check_superblock(&window, partition)?;
        let fs = Ext4::load(Box::new(window.clone()))
            .map_err(|source| map_error(&window, partition, "", "load the superblock", source))?;
        let uuid = fs.uuid().to_string().to_ascii_lowercase();
        Ok(ExtFs {
            fs,
            partition,
            window,
            uuid,
        })
    }

    /// The partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The filesystem UUID, lower case.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    fn err(&self, path: &str, what: &str, source: Ext4Error) -> BootImageError {
        map_error(&self.window, self.partition, path, what, source)
    }

    /// The size of the regular file at `path` (symlinks followed), or `None` when there is
    /// no regular file there.
    pub fn file_size(&self, path: &str) -> Result<Option<u64>, BootImageError> {
        match self.fs.metadata(path) {
            Ok(meta) if meta.file_type().is_regular_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(self.err(path, &format!("look up {path}"), e)),
        }
    }

    /// Whether anything (file, directory, link target) exists at `path`.
    pub fn exists(&self, path: &str) -> Result<bool, BootImageError> {
        match self.fs.metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(self.err(path, &format!("look up {path}"), e)),
        }
    }

    /// Whether anything, a dangling or looping symlink included, is at `path` (its last
    /// component is not followed).
    pub fn exists_no_follow(&self, path: &str) -> Result<bool, BootImageError> {
        match self.fs.symlink_metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(self.err(path, &format!("look up {path}"), e)),
        }
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> Result<bool, BootImageError> {
        match self.fs.metadata(path) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(self.err(path, &format!("look up {path}"), e)),
        }
    }

    /// `path` with every symlink resolved.
    pub fn canonical(&self, path: &str) -> Result<String, BootImageError> {
        let resolved = self
            .fs
            .canonicalize(path)
            .map_err(|e| self.err(path, &format!("resolve {path}"), e))?;
        Ok(resolved.display().to_string())
    }

    /// The whole regular file at `path`, or `None` when there is none; `Err` when it is
    /// larger than `limit` bytes (`too_large` builds that error from the size).
    pub fn read_file(
        &self,
        path: &str,
        limit: u64,
        too_large: impl FnOnce(u64) -> BootImageError,
    ) -> Result<Option<Vec<u8>>, BootImageError> {
        let Some(size) = self.file_size(path)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(too_large(size));
        }
        self.read_prefix(path, size as usize).map(Some)
    }

    /// At most the first `len` bytes of the regular file at `path`.
    pub fn read_prefix(&self, path: &str, len: usize) -> Result<Vec<u8>, BootImageError> {
        let mut file = self
            .fs
            .open(path)
            .map_err(|e| self.err(path, &format!("open {path}"), e))?;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = file
                .read_bytes(&mut buf[filled..])
                .map_err(|e| self.err(path, &format!("read {path}"), e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// The names in directory `path` (without `.` and `..`), at most [`MAX_DIR_ENTRIES`];
    /// `None` when it is not a directory.
    pub fn list(&self, path: &str) -> Result<Option<Vec<String>>, BootImageError> {
        if !self.is_dir(path)? {
            return Ok(None);
        }
        let entries = self
            .fs
            .read_dir(path)
            .map_err(|e| self.err(path, &format!("list {path}"), e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.err(path, &format!("list {path}"), e))?;
            let name = entry.file_name();
            let Ok(name) = name.as_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            names.push(name.to_string());
            if names.len() >= MAX_DIR_ENTRIES {
                break;
            }
        }
        names.sort();
        Ok(Some(names))
    }
}

/// Errors that mean "nothing there" for a lookup.
fn is_absent(e: &Ext4Error) -> bool {
    matches!(
        e,
        Ext4Error::NotFound | Ext4Error::NotADirectory | Ext4Error::MalformedPath
    )
}

fn map_error(
    window: &Window,
    partition: u32,
    path: &str,
    what: &str,
    source: Ext4Error,
) -> BootImageError {
    if window.budget().exhausted() {
        return BootImageError::Budget {
            limit: window.budget().describe(),
        };
    }
    if matches!(source, Ext4Error::TooManySymlinks) {
        return BootImageError::SymlinkLoop {
            path: path.to_string(),
            partition,
        };
    }
    BootImageError::Ext {
        partition,
        what: what.to_string(),
        source,
    }
}

/// Refuses superblocks whose sizes do not fit `window`.
fn check_superblock(window: &Window, partition: u32) -> Result<(), BootImageError> {
    let corrupt = |reason: String| BootImageError::ExtCorrupt { partition, reason };
    let sb = window
        .read_vec(1024, 1024)
        .map_err(|e| BootImageError::read(format!("ext superblock of partition {partition}"), e))?
        .ok_or_else(|| corrupt("the partition is too small for an ext superblock".into()))?;
    let le32 = |at: usize| u64::from(u32::from_le_bytes(sb[at..at + 4].try_into().expect("4")));
    let log_block = le32(0x18);
    if log_block > 6 {
        return Err(corrupt(format!(
            "block size 2^{} is invalid",
            10 + log_block
        )));
    }
    let block_size = 1024u64 << log_block;
    let is_64bit = le32(0x60) & 0x80 != 0;
    let blocks = le32(0x4) | if is_64bit { le32(0x150) << 32 } else { 0 };
    let fs_bytes = blocks.saturating_mul(block_size);
    if fs_bytes > window.len() {
        return Err(corrupt(format!(
            "it claims {fs_bytes} bytes but its partition holds only {} (the image may be truncated)",
            window.len()
        )));
    }
    let per_group = le32(0x20);
    if per_group < 8 || per_group > 8 * block_size {
        return Err(corrupt(format!("{per_group} blocks per group is invalid")));
    }
    let groups = blocks.saturating_sub(le32(0x14)).div_ceil(per_group);
    if groups > MAX_GROUPS {
        return Err(corrupt(format!(
            "{groups} block groups are more than vmux reads"
        )));
    }
    let inodes_per_group = le32(0x28);
    if inodes_per_group == 0 || inodes_per_group > 8 * block_size {
        return Err(corrupt(format!(
            "{inodes_per_group} inodes per group is invalid"
        )));
    }
    Ok(())
}
