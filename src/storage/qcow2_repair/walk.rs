//! The walk: every structure of a qcow2 image that references host clusters, each reference
//! counted in [`References`] (as `qemu-img check` counts them, `qcow2-refcount.c`):
//!
//! - the header cluster; the active L1 table, each L2 table it names (once per naming L1
//!   entry), and each data cluster an L2 entry names, once per L1 entry naming that L2 table
//!   (standard clusters, "zero" clusters that keep their allocation, and every cluster a
//!   compressed cluster's bytes touch);
//! - the snapshot table, and for each internal snapshot its L1 table, L2 tables and data;
//! - the bitmap directory, each bitmap's table and its data clusters (when the bitmaps
//!   extension is valid);
//! - last the refcount table and blocks themselves, which are only counted when they do not
//!   collide with anything above (the rebuild replaces them anyway).
//!
//! Offsets come from untrusted bytes: each is checked for alignment and against the file's
//! end before it is read or counted, and a cluster claimed twice as metadata is damage (and
//! not read twice). Every table is read once, however many L1 entries share it (snapshots
//! share L2 tables), so the walk reads at most the file's own size; [`MAX_WORK`] entries
//! bound it again.

use super::file::{ImageFile, Span, SpanProblem};
use super::layout::{Layout, be64};
use super::refs::{MAX_CLUSTERS, Overlap, References, Role};
use std::collections::BTreeMap;
use std::io;

/// Offset bits of L1, L2 and bitmap table entries.
pub(super) const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Offset bits of refcount table entries.
const REFTABLE_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
/// Bit 63 of L1/L2 entries: the cluster's refcount is exactly 1 (written in place).
pub(super) const COPIED: u64 = 1 << 63;
/// Bit 62 of L2 entries: compressed cluster descriptor.
pub(super) const COMPRESSED: u64 = 1 << 62;
/// Table entries (L1, L2, bitmap tables) the walk visits at most: 16 GiB of tables.
pub(super) const MAX_WORK: u64 = 1 << 31;
/// Largest L1 table QEMU accepts, in entries (`QCOW_MAX_L1_SIZE` = 32 MiB).
const MAX_L1_ENTRIES: u64 = (32 << 20) / 8;
/// Largest snapshot table vmux reads (QEMU's `QCOW_MAX_SNAPSHOTS_SIZE` is 64 MiB).
const MAX_SNAPSHOT_TABLE: u64 = 64 << 20;
/// Largest extra data of one snapshot table entry (`QCOW_MAX_SNAPSHOT_EXTRA_DATA`).
const MAX_SNAPSHOT_EXTRA: u64 = 1024;
/// Bitmaps per image (`QCOW2_MAX_BITMAPS`).
const MAX_BITMAPS: u32 = 65535;
/// Largest bitmap directory (`QCOW2_MAX_BITMAP_DIRECTORY_SIZE`).
const MAX_BITMAP_DIRECTORY: u64 = 64 << 20;
/// Largest bitmap table, in entries (`BME_MAX_TABLE_SIZE`).
const MAX_BITMAP_TABLE: u64 = 0x800_0000;
/// Problems described in a report; the rest are counted.
pub(super) const MAX_LISTED: usize = 20;

/// Why the walk stopped.
#[derive(Debug)]
pub(super) enum WalkError {
    /// A read failed.
    Io(io::Error),
    /// The image is larger than the check handles; the text says what.
    TooLarge(String),
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> WalkError {
        WalkError::Io(e)
    }
}

/// A list of problems: the first [`MAX_LISTED`] described, all counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Problems {
    /// How many.
    pub count: u64,
    /// The first few, described.
    pub listed: Vec<String>,
}

impl Problems {
    /// Records one.
    pub fn push(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push(what());
        }
    }
}

/// A refcount table entry that names a usable refcount block.
#[derive(Debug, Clone, Copy)]
pub(super) struct RefBlockAt {
    /// Index in the refcount table.
    pub index: u64,
    /// File offset of the block.
    pub offset: u64,
}

/// What the walk found.
#[derive(Debug)]
pub(super) struct Findings {
    /// References per cluster, including the old refcount structures that are usable.
    pub refs: References,
    /// Damage a refcount rebuild cannot fix (pointers out of the file, overlapping metadata).
    pub damage: Problems,
    /// Problems of the refcount table and blocks (the rebuild replaces them).
    pub refcount_structure: Problems,
    /// The usable refcount blocks, in table order.
    pub refblocks: Vec<RefBlockAt>,
    /// Clusters the file holds (the last one may be partial).
    pub file_clusters: u64,
}

/// Walks the image. Fails only on I/O errors and images beyond the limits; damage is in the
/// findings.
pub(super) fn walk(image: &ImageFile, layout: &Layout) -> Result<Findings, WalkError> {
    let file_clusters = image.len().div_ceil(layout.cluster_size());
    if file_clusters > MAX_CLUSTERS {
        return Err(WalkError::TooLarge(format!(
            "{file_clusters} clusters, more than {MAX_CLUSTERS}"
        )));
    }
    let mut walker = Walker {
        image,
        layout,
        findings: Findings {
            refs: References::new(file_clusters),
            damage: Problems::default(),
            refcount_structure: Problems::default(),
            refblocks: Vec::new(),
            file_clusters,
        },
        work: 0,
        buf: vec![0u8; layout.cluster_size() as usize],
        l2_tables: BTreeMap::new(),
    };
    walker.meta(0, Role::Header);
    walker.l1_table(
        "the L1 table",
        layout.l1_offset,
        layout.l1_entries,
        Role::L1,
    )?;
    walker.snapshots()?;
    walker.l2_tables()?;
    walker.bitmaps()?;
    walker.refcount_structures()?;
    Ok(walker.findings)
}

struct Walker<'a> {
    image: &'a ImageFile,
    layout: &'a Layout,
    findings: Findings,
    work: u64,
    /// One cluster, reused for table reads.
    buf: Vec<u8>,
    /// L2 tables named by the L1 tables: offset → (how many L1 entries name it, the first).
    l2_tables: BTreeMap<u64, (u64, u64)>,
}

impl Walker<'_> {
    fn cluster_bits(&self) -> u32 {
        self.layout.cluster_bits
    }

    fn damage(&mut self, what: impl FnOnce() -> String) {
        self.findings.damage.push(what);
    }

    fn overlap(&mut self, overlap: Overlap) {
        self.findings.damage.push(|| overlap.to_string());
    }

    /// Counts `entries` more table entries against [`MAX_WORK`].
    fn spend(&mut self, entries: u64) -> Result<(), WalkError> {
        self.work = self.work.saturating_add(entries);
        if self.work > MAX_WORK {
            return Err(WalkError::TooLarge(format!(
                "more than {MAX_WORK} table entries to visit (internal snapshots multiply them)"
            )));
        }
        Ok(())
    }

    /// Checks that `span` (named by `what`, called only for damage) is aligned and inside the
    /// file; records damage if not.
    fn usable(&mut self, what: impl FnOnce() -> String, span: Span) -> bool {
        match span.check(self.cluster_bits(), self.image.len()) {
            Ok(()) => true,
            Err(SpanProblem::Unaligned) => {
                self.damage(|| {
                    format!(
                        "{} at offset {:#x} is not aligned to a cluster",
                        what(),
                        span.offset
                    )
                });
                false
            }
            Err(SpanProblem::PastEnd) => {
                let len = self.image.len();
                self.damage(|| {
                    format!(
                        "{} ({} bytes at offset {:#x}) lies beyond the end of the file ({len} bytes)",
                        what(),
                        span.len,
                        span.offset
                    )
                });
                false
            }
        }
    }

    /// Counts `cluster` as `role`; false (and damage) when something else claims it.
    fn meta(&mut self, cluster: u64, role: Role) -> bool {
        match self.findings.refs.add_meta(cluster, role) {
            Ok(()) => true,
            Err(overlap) => {
                self.overlap(overlap);
                false
            }
        }
    }

    fn data(&mut self, cluster: u64, times: u64) {
        if let Err(overlap) = self.findings.refs.add_data_times(cluster, times) {
            self.overlap(overlap);
        }
    }

    /// Counts every cluster of `span` as `role`; false when any of them is claimed already
    /// (the structure is then not read: it cannot be what it claims).
    fn meta_span(&mut self, span: Span, role: Role) -> bool {
        let (first, count) = span.clusters(self.cluster_bits());
        let mut clean = true;
        for cluster in first..first + count {
            clean &= self.meta(cluster, role);
        }
        clean
    }

    /// Calls `each(walker, index, entry)` for the `entries` big-endian u64 entries of the
    /// table at `offset`, reading one cluster at a time (the span is checked already).
    fn for_each_entry(
        &mut self,
        offset: u64,
        entries: u64,
        mut each: impl FnMut(&mut Self, u64, u64) -> Result<(), WalkError>,
    ) -> Result<(), WalkError> {
        self.spend(entries)?;
        let per_cluster = self.layout.cluster_size() / 8;
        let mut buf = std::mem::take(&mut self.buf);
        let mut result = Ok(());
        let mut index = 0;
        'clusters: while index < entries {
            let chunk = per_cluster.min(entries - index);
            let bytes = &mut buf[..(chunk * 8) as usize];
            if let Err(e) = self.image.read_into(offset + index * 8, bytes) {
                result = Err(e.into());
                break;
            }
            for i in 0..chunk {
                let entry = be64(bytes, (i * 8) as usize);
                if let Err(e) = each(self, index + i, entry) {
                    result = Err(e);
                    break 'clusters;
                }
            }
            index += chunk;
        }
        self.buf = buf;
        result
    }

    /// An L1 table (active or a snapshot's), its L2 tables and their data clusters.
    fn l1_table(
        &mut self,
        what: &str,
        offset: u64,
        entries: u64,
        role: Role,
    ) -> Result<(), WalkError> {
        if entries == 0 {
            return Ok(());
        }
        if entries > MAX_L1_ENTRIES {
            self.damage(|| format!("{what} has {entries} entries, more than QEMU allows"));
            return Ok(());
        }
        let span = Span {
            offset,
            len: entries * 8,
        };
        if !self.usable(|| what.to_string(), span) || !self.meta_span(span, role) {
            return Ok(());
        }
        let what = what.to_string();
        self.for_each_entry(offset, entries, |walker, index, entry| {
            let l2_offset = entry & OFFSET_MASK;
            if l2_offset != 0 {
                walker.l2_reference(&what, index, l2_offset);
            }
            Ok(())
        })
    }

    /// Entry `l1_index` of an L1 table names an L2 table at `offset`: counted now, walked
    /// once for all its references by [`Walker::l2_tables`].
    fn l2_reference(&mut self, l1: &str, l1_index: u64, offset: u64) {
        let span = Span {
            offset,
            len: self.layout.cluster_size(),
        };
        if !self.usable(|| format!("the L2 table of entry {l1_index} of {l1}"), span) {
            return;
        }
        if self.meta(offset >> self.cluster_bits(), Role::L2) {
            self.l2_tables.entry(offset).or_insert((0, l1_index)).0 += 1;
        }
    }

    /// Every L2 table named by an L1 table, each read once; its data clusters are counted
    /// once per L1 entry naming the table.
    fn l2_tables(&mut self) -> Result<(), WalkError> {
        let entries = self.layout.cluster_size() / 8;
        for (offset, (times, l1_index)) in std::mem::take(&mut self.l2_tables) {
            self.for_each_entry(offset, entries, |walker, index, entry| {
                walker.l2_entry(l1_index, index, entry, times);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn l2_entry(&mut self, l1_index: u64, index: u64, entry: u64, times: u64) {
        let bits = self.cluster_bits();
        if entry & COMPRESSED != 0 {
            let span = compressed_span(entry, bits);
            let len = self.image.len();
            // Compressed bytes need not be cluster aligned, only inside the file.
            match span.offset.checked_add(span.len) {
                Some(end) if span.offset != 0 && end <= len.next_multiple_of(512) => {}
                _ => {
                    self.damage(|| {
                        format!(
                            "the compressed cluster of L2 entry {l1_index}/{index} ({} bytes at offset {:#x}) lies outside the file ({len} bytes)",
                            span.len, span.offset
                        )
                    });
                    return;
                }
            }
            let (first, count) = span.clusters(bits);
            for cluster in first..first + count {
                self.data(cluster, times);
            }
            return;
        }
        let offset = entry & OFFSET_MASK;
        if offset == 0 {
            return;
        }
        let span = Span {
            offset,
            len: 1 << bits,
        };
        if self.usable(
            || format!("the data cluster of L2 entry {l1_index}/{index}"),
            span,
        ) {
            self.data(offset >> bits, times);
        }
    }

    /// The snapshot table and every snapshot's L1 table.
    fn snapshots(&mut self) -> Result<(), WalkError> {
        let count = self.layout.snapshots;
        if count == 0 {
            return Ok(());
        }
        let start = self.layout.snapshots_offset;
        if !self.usable(
            || "the snapshot table".into(),
            Span {
                offset: start,
                len: 40,
            },
        ) {
            return Ok(());
        }
        let mut at = start;
        let mut tables = Vec::new();
        for index in 0..count {
            let used = at - start;
            if used + 40 > MAX_SNAPSHOT_TABLE || !self.snapshot_fits(index, at, 40) {
                return Ok(());
            }
            let mut fixed = [0u8; 40];
            self.image.read_into(at, &mut fixed)?;
            let l1_offset = be64(&fixed, 0);
            let l1_entries = u64::from(u32::from_be_bytes([
                fixed[8], fixed[9], fixed[10], fixed[11],
            ]));
            let id_len = u64::from(u16::from_be_bytes([fixed[12], fixed[13]]));
            let name_len = u64::from(u16::from_be_bytes([fixed[14], fixed[15]]));
            let extra = u64::from(u32::from_be_bytes([
                fixed[36], fixed[37], fixed[38], fixed[39],
            ]));
            if extra > MAX_SNAPSHOT_EXTRA {
                self.damage(|| {
                    format!(
                        "snapshot {index} has {extra} bytes of extra data, more than QEMU allows"
                    )
                });
                return Ok(());
            }
            let size = (40 + extra + id_len + name_len).next_multiple_of(8);
            if !self.snapshot_fits(index, at, size) {
                return Ok(());
            }
            tables.push((index, l1_offset, l1_entries));
            at += size;
        }
        let table = Span {
            offset: start,
            len: at - start,
        };
        if !self.meta_span(table, Role::SnapshotTable) {
            return Ok(());
        }
        for (index, l1_offset, l1_entries) in tables {
            self.l1_table(
                &format!("the L1 table of snapshot {index}"),
                l1_offset,
                l1_entries,
                Role::SnapshotL1,
            )?;
        }
        Ok(())
    }

    /// Whether snapshot entry `index` (`size` bytes at `at`) lies inside the file and the
    /// table size limit; records damage if not.
    fn snapshot_fits(&mut self, index: u32, at: u64, size: u64) -> bool {
        let start = self.layout.snapshots_offset;
        let end = at.saturating_add(size);
        if end - start > MAX_SNAPSHOT_TABLE {
            self.damage(|| {
                format!(
                    "the snapshot table is larger than {MAX_SNAPSHOT_TABLE} bytes at entry {index}"
                )
            });
            return false;
        }
        // The padding of the last entry may lie in the file's partial last cluster.
        if end
            > self
                .image
                .len()
                .next_multiple_of(self.layout.cluster_size())
        {
            self.damage(|| format!("snapshot table entry {index} lies beyond the end of the file"));
            return false;
        }
        true
    }

    /// The bitmap directory, bitmap tables and bitmap data clusters.
    fn bitmaps(&mut self) -> Result<(), WalkError> {
        let Some(ext) = self.layout.bitmaps else {
            return Ok(());
        };
        if ext.count == 0 {
            return Ok(());
        }
        if ext.count > MAX_BITMAPS || ext.directory_size > MAX_BITMAP_DIRECTORY {
            self.damage(|| {
                format!(
                    "the bitmaps extension names {} bitmaps in {} bytes, more than QEMU allows",
                    ext.count, ext.directory_size
                )
            });
            return Ok(());
        }
        let span = Span {
            offset: ext.directory_offset,
            len: ext.directory_size,
        };
        if !self.usable(|| "the bitmap directory".into(), span)
            || !self.meta_span(span, Role::BitmapDirectory)
        {
            return Ok(());
        }
        let mut directory = vec![0u8; ext.directory_size as usize];
        self.image.read_into(ext.directory_offset, &mut directory)?;
        let mut at = 0usize;
        for index in 0..ext.count {
            let Some(fixed) = directory.get(at..at + 24) else {
                self.damage(|| format!("bitmap {index} lies outside the bitmap directory"));
                return Ok(());
            };
            let table_offset = be64(fixed, 0);
            let table_entries = u64::from(u32::from_be_bytes([
                fixed[8], fixed[9], fixed[10], fixed[11],
            ]));
            let name_len = usize::from(u16::from_be_bytes([fixed[18], fixed[19]]));
            let extra = u32::from_be_bytes([fixed[20], fixed[21], fixed[22], fixed[23]]) as usize;
            // Bounded by the directory (at most 64 MiB), so the sum cannot overflow.
            at = (at + 24 + extra.min(directory.len()) + name_len).next_multiple_of(8);
            self.bitmap_table(index, table_offset, table_entries)?;
        }
        Ok(())
    }

    fn bitmap_table(&mut self, index: u32, offset: u64, entries: u64) -> Result<(), WalkError> {
        if entries == 0 {
            return Ok(());
        }
        if entries > MAX_BITMAP_TABLE {
            self.damage(|| {
                format!("bitmap {index}'s table has {entries} entries, more than QEMU allows")
            });
            return Ok(());
        }
        let span = Span {
            offset,
            len: entries * 8,
        };
        if !self.usable(|| format!("the table of bitmap {index}"), span)
            || !self.meta_span(span, Role::BitmapTable)
        {
            return Ok(());
        }
        let bits = self.cluster_bits();
        self.for_each_entry(offset, entries, |walker, i, entry| {
            let data = entry & OFFSET_MASK;
            if data != 0 {
                let span = Span {
                    offset: data,
                    len: 1 << bits,
                };
                if walker.usable(|| format!("data cluster {i} of bitmap {index}"), span) {
                    walker.data(data >> bits, 1);
                }
            }
            Ok(())
        })
    }

    /// The refcount table and blocks: usable ones are counted and remembered; the others are
    /// refcount-structure problems (the rebuild replaces them).
    fn refcount_structures(&mut self) -> Result<(), WalkError> {
        let bits = self.cluster_bits();
        let layout = self.layout;
        let span = Span {
            offset: layout.reftable_offset,
            len: layout.reftable_clusters << bits,
        };
        let problem = match span.check(bits, self.image.len()) {
            Err(SpanProblem::Unaligned) => Some("is not aligned to a cluster"),
            Err(SpanProblem::PastEnd) => Some("lies beyond the end of the file"),
            Ok(()) if span.len == 0 => Some("is empty"),
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            self.findings
                .refcount_structure
                .push(|| format!("the refcount table at offset {:#x} {problem}", span.offset));
            return Ok(());
        }
        let (first, count) = span.clusters(bits);
        if self.findings.refs.any_in(first, count) {
            self.findings.refcount_structure.push(|| {
                format!(
                    "the refcount table at offset {:#x} overlaps other metadata or data",
                    span.offset
                )
            });
            return Ok(());
        }
        self.meta_span(span, Role::RefTable);
        self.for_each_entry(span.offset, span.len / 8, |walker, index, entry| {
            let offset = entry & REFTABLE_OFFSET_MASK;
            if offset == 0 {
                return Ok(());
            }
            let block = Span {
                offset,
                len: 1 << bits,
            };
            let cluster = offset >> bits;
            let problem = if block.check(bits, walker.image.len()).is_err() {
                Some("is unaligned or beyond the end of the file")
            } else if walker.findings.refs.get(cluster) > 0 {
                Some("overlaps other metadata or data (or another refcount block)")
            } else {
                None
            };
            match problem {
                Some(problem) => walker
                    .findings
                    .refcount_structure
                    .push(|| format!("refcount block {index} at offset {offset:#x} {problem}")),
                None => {
                    if walker.meta(cluster, Role::RefBlock) {
                        walker.findings.refblocks.push(RefBlockAt { index, offset });
                    }
                }
            }
            Ok(())
        })
    }
}

/// The bytes a compressed L2 entry names (`qcow2_parse_compressed_l2_entry`): offset in the
/// low `62 - (cluster_bits - 8)` bits, then the count of 512-byte sectors beyond the first.
pub(super) fn compressed_span(entry: u64, cluster_bits: u32) -> Span {
    let shift = 62 - (cluster_bits - 8);
    let offset = entry & ((1u64 << shift) - 1);
    let sectors = ((entry >> shift) & ((1u64 << (cluster_bits - 8)) - 1)) + 1;
    Span {
        offset,
        len: (sectors * 512).saturating_sub(offset & 511),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_entry_names_its_offset_and_sectors() {
        // 64 KiB clusters: offset in bits 0..53, additional sectors from bit 54.
        let entry = COMPRESSED | (2u64 << 54) | 0x3_0100;
        let span = compressed_span(entry, 16);
        assert_eq!(span.offset, 0x3_0100);
        assert_eq!(span.len, 3 * 512 - 0x100);
    }
}
