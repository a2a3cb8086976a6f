//! Where a qcow2 image keeps the structures that reference clusters, read from its header
//! (QEMU `docs/interop/qcow2.txt`): L1 table, refcount table, snapshot table, bitmap directory.
//! [`super::super::qcow2_header::Qcow2Header`] validates the header first; this adds the
//! offsets it does not keep and refuses what the refcount check cannot walk, by name.

use super::super::qcow2_header::{HeaderProblem, Qcow2Header};

/// Incompatible feature bits (header offset 72).
pub(super) mod incompatible {
    /// Refcounts may be stale (lazy refcounts): a repair clears it.
    pub const DIRTY: u64 = 1 << 0;
    /// QEMU found the metadata corrupt.
    pub const CORRUPT: u64 = 1 << 1;
    /// Guest data lives in another file.
    pub const EXTERNAL_DATA_FILE: u64 = 1 << 2;
    /// The compression type field is used (it does not change what references what).
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    /// 128-bit L2 entries with subcluster bitmaps.
    pub const EXTENDED_L2: u64 = 1 << 4;
}

/// Autoclear bit 0: the bitmaps extension is consistent.
const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
/// Header extension: persistent dirty bitmaps.
const EXT_BITMAPS: u32 = 0x2385_2875;
/// Header extension: full disk encryption parameters.
const EXT_CRYPTO: u32 = 0x0537_be77;
/// Header extension: external data file name.
const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Byte offset of the incompatible feature bits (version 3 headers).
pub(super) const INCOMPATIBLE_OFFSET: usize = 72;
/// Byte offset of the refcount table offset; the cluster count follows at 56.
pub(super) const REFTABLE_OFFSET: usize = 48;

/// The bitmaps extension (`qcow2.txt`, "Bitmaps extension").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BitmapsExtension {
    /// Bitmaps in the directory.
    pub count: u32,
    /// Bytes of the bitmap directory.
    pub directory_size: u64,
    /// File offset of the bitmap directory.
    pub directory_offset: u64,
}

/// Everything the refcount check needs from the header. Offsets are file byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size (9..=21).
    pub cluster_bits: u32,
    /// log2 of the refcount width in bits (0..=6; 4 for version 2).
    pub refcount_order: u32,
    /// Active L1 table.
    pub l1_offset: u64,
    /// Its entries.
    pub l1_entries: u64,
    /// Refcount table.
    pub reftable_offset: u64,
    /// Its size in clusters.
    pub reftable_clusters: u64,
    /// Snapshot table.
    pub snapshots_offset: u64,
    /// Internal snapshots in it.
    pub snapshots: u32,
    /// Incompatible feature bits (0 for version 2).
    pub incompatible: u64,
    /// The bitmaps extension, when present and marked consistent (autoclear bit 0).
    pub bitmaps: Option<BitmapsExtension>,
}

/// Why a header cannot be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LayoutProblem {
    /// The header itself is damaged or not qcow2 (see [`HeaderProblem`]).
    Header(HeaderProblem),
    /// A valid feature this check does not handle, by name.
    Unsupported(String),
}

fn be32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(bytes)
}

/// The big-endian u64 at `at` of `buf` (callers keep `at + 8 <= buf.len()`).
pub(super) fn be64(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(bytes)
}

impl Layout {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Reads the layout from the start of the file (the first cluster, as
    /// [`super::super::qcow2_header::read_start`] returns it).
    pub fn parse(start: &[u8]) -> Result<Layout, LayoutProblem> {
        let header = Qcow2Header::parse(start).map_err(LayoutProblem::Header)?;
        let unsupported = |what: &str| Err(LayoutProblem::Unsupported(what.to_string()));
        let has_extension = |kind: u32| header.extensions().iter().any(|(k, _)| *k == kind);
        if header.crypt_method != 0 || has_extension(EXT_CRYPTO) {
            return unsupported("encryption (AES or LUKS)");
        }
        let incompatible = header.incompatible_features;
        if incompatible & incompatible::EXTERNAL_DATA_FILE != 0 || has_extension(EXT_DATA_FILE) {
            return unsupported("an external data file (data_file)");
        }
        if incompatible & incompatible::EXTENDED_L2 != 0 {
            return unsupported("extended L2 entries (extended_l2=on, subclusters)");
        }
        if incompatible & incompatible::CORRUPT != 0 {
            return unsupported(
                "the corrupt bit (QEMU found overlapping metadata and stopped writing it)",
            );
        }
        let known = incompatible::DIRTY
            | incompatible::CORRUPT
            | incompatible::EXTERNAL_DATA_FILE
            | incompatible::COMPRESSION_TYPE
            | incompatible::EXTENDED_L2;
        if incompatible & !known != 0 {
            return Err(LayoutProblem::Unsupported(format!(
                "unknown incompatible feature bits {:#x}",
                incompatible & !known
            )));
        }
        // Qcow2Header::parse checked the length (72 bytes for version 2, header_length for 3).
        let autoclear = if header.version == 3 {
            be64(start, 88)
        } else {
            0
        };
        let bitmaps = match header.extensions().iter().find(|(k, _)| *k == EXT_BITMAPS) {
            Some((_, data)) if autoclear & AUTOCLEAR_BITMAPS != 0 => {
                if data.len() < 24 {
                    return Err(LayoutProblem::Header(HeaderProblem::Corrupt(
                        "the bitmaps header extension is shorter than 24 bytes".into(),
                    )));
                }
                Some(BitmapsExtension {
                    count: be32(data, 0),
                    directory_size: be64(data, 8),
                    directory_offset: be64(data, 16),
                })
            }
            // Without the autoclear bit the extension is stale and QEMU ignores it; so does the
            // check (its clusters count as leaked, as in `qemu-img check`).
            _ => None,
        };
        Ok(Layout {
            version: header.version,
            cluster_bits: header.cluster_bits,
            refcount_order: header.refcount_order,
            l1_offset: be64(start, 40),
            l1_entries: u64::from(be32(start, 36)),
            reftable_offset: be64(start, REFTABLE_OFFSET),
            reftable_clusters: u64::from(be32(start, REFTABLE_OFFSET + 8)),
            snapshots_offset: be64(start, 64),
            snapshots: header.snapshots,
            incompatible,
            bitmaps,
        })
    }
}
