//! The rebuild: new refcount structures written from the references found, like
//! `qemu-img check -r all`'s `rebuild_refcount_structure`, ordered so that a crash at any
//! point leaves a usable image:
//!
//! 1. a new refcount table and refcount blocks are written *after the end of the file*
//!    (clusters nothing references), covering every referenced cluster and themselves;
//! 2. fsync;
//! 3. one header write switches the refcount table pointer and size (and clears the dirty
//!    bit); fsync.
//!
//! Before step 3 the old structures are still the image's (the new bytes are unreferenced
//! tail); after it the old table and blocks are simply free clusters. Only blocks that count
//! something are written; table entries of empty ranges stay 0.

use super::file::ImageFile;
use super::layout::{INCOMPATIBLE_OFFSET, Layout, REFTABLE_OFFSET, incompatible};
use super::refs::{References, Role};
use super::width::Width;
use std::collections::BTreeSet;
use std::io;

/// Largest refcount table QEMU accepts (`QCOW_MAX_REFTABLE_SIZE`).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// Why a rebuild could not be done.
#[derive(Debug)]
pub(super) enum RebuildError {
    /// A write or sync failed.
    Io(io::Error),
    /// The new refcount table would be larger than QEMU allows; the text says how large.
    TooLarge(String),
}

impl From<io::Error> for RebuildError {
    fn from(e: io::Error) -> RebuildError {
        RebuildError::Io(e)
    }
}

/// Where the new structures went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewRefcounts {
    /// Cluster index of the new refcount table.
    pub table_cluster: u64,
    /// Its clusters.
    pub table_clusters: u64,
    /// Refcount blocks written.
    pub blocks: u64,
}

/// The plan: the table's clusters and which blocks (by table index) exist, for new
/// structures starting at cluster `end`.
struct Plan {
    end: u64,
    table_clusters: u64,
    blocks: Vec<u64>,
}

impl Plan {
    fn clusters(&self) -> u64 {
        self.table_clusters + self.blocks.len() as u64
    }

    /// References of `cluster` once the new structures exist.
    fn count(&self, refs: &References, cluster: u64) -> u64 {
        if cluster < self.end {
            refs.get(cluster)
        } else if cluster < self.end + self.clusters() {
            1
        } else {
            0
        }
    }
}

/// Replaces the refcount structures with ones built from `refs` (the references of
/// everything but the old refcount table and blocks, which are dropped from `refs` here).
/// `start` is the header as read (at least 104 bytes for version 3, 72 for version 2).
pub(super) fn rebuild(
    image: &ImageFile,
    layout: &Layout,
    refs: &mut References,
    file_clusters: u64,
    start: &[u8],
) -> Result<NewRefcounts, RebuildError> {
    refs.remove_role(Role::RefTable);
    refs.remove_role(Role::RefBlock);
    let plan = plan(layout, refs, file_clusters)?;
    let width = Width::new(layout.refcount_order);
    let bits = layout.cluster_bits;
    let cluster_size = layout.cluster_size();
    let per_block = width.per_block(bits);
    let mut table = vec![0u8; (plan.table_clusters * cluster_size) as usize];
    let mut block = vec![0u8; cluster_size as usize];
    for (position, &index) in plan.blocks.iter().enumerate() {
        block.fill(0);
        let first = index * per_block;
        for j in 0..per_block {
            let count = plan.count(refs, first + j);
            if count > 0 {
                width.set(&mut block, j, count.min(width.max()));
            }
        }
        let offset = (plan.end + plan.table_clusters + position as u64) << bits;
        image.write_all_at(offset, &block)?;
        let at = (index * 8) as usize;
        table[at..at + 8].copy_from_slice(&offset.to_be_bytes());
    }
    let table_offset = plan.end << bits;
    image.write_all_at(table_offset, &table)?;
    image.file().sync_all()?;
    let clusters = u32::try_from(plan.table_clusters).map_err(|_| {
        RebuildError::TooLarge("a refcount table of more than 2^32 clusters".into())
    })?;
    switch_header(image, layout, start, table_offset, clusters)?;
    Ok(NewRefcounts {
        table_cluster: plan.end,
        table_clusters: plan.table_clusters,
        blocks: plan.blocks.len() as u64,
    })
}

/// Finds how many clusters the new structures need, placed from `file_clusters` on: adding
/// them can need more blocks (and a larger table), so it repeats until the count is stable.
/// The count only grows, and is bounded by the table size limit.
fn plan(layout: &Layout, refs: &References, file_clusters: u64) -> Result<Plan, RebuildError> {
    let bits = layout.cluster_bits;
    let per_block = Width::new(layout.refcount_order).per_block(bits);
    let end = file_clusters;
    let mut used = BTreeSet::new();
    let mut first = 0;
    while first < end {
        if refs.any_in(first, per_block.min(end - first)) {
            used.insert(first / per_block);
        }
        first += per_block;
    }
    let mut plan = Plan {
        end,
        table_clusters: 0,
        blocks: used.iter().copied().collect(),
    };
    loop {
        let new = plan.clusters();
        let mut blocks = used.clone();
        if new > 0 {
            let last = end + new - 1;
            blocks.extend(end / per_block..=last / per_block);
        }
        let entries = blocks.last().map_or(1, |last| last + 1);
        let table_bytes = (entries * 8).next_multiple_of(1 << bits);
        if table_bytes > MAX_REFTABLE_BYTES {
            return Err(RebuildError::TooLarge(format!(
                "a refcount table of {table_bytes} bytes (QEMU allows {MAX_REFTABLE_BYTES})"
            )));
        }
        let next = Plan {
            end,
            table_clusters: table_bytes >> bits,
            blocks: blocks.into_iter().collect(),
        };
        if next.clusters() == new && next.table_clusters == plan.table_clusters {
            return Ok(next);
        }
        plan = next;
    }
}

/// Points the header at the new refcount table and clears the dirty bit, in one write of
/// the fields from the refcount table offset up to the feature bits; then fsync.
fn switch_header(
    image: &ImageFile,
    layout: &Layout,
    start: &[u8],
    table_offset: u64,
    table_clusters: u32,
) -> io::Result<()> {
    let end = if layout.version == 3 {
        INCOMPATIBLE_OFFSET + 8
    } else {
        REFTABLE_OFFSET + 12
    };
    let mut fields = start[REFTABLE_OFFSET..end].to_vec();
    fields[0..8].copy_from_slice(&table_offset.to_be_bytes());
    fields[8..12].copy_from_slice(&table_clusters.to_be_bytes());
    if layout.version == 3 {
        let bits = layout.incompatible & !incompatible::DIRTY;
        let at = INCOMPATIBLE_OFFSET - REFTABLE_OFFSET;
        fields[at..at + 8].copy_from_slice(&bits.to_be_bytes());
    }
    image.write_all_at(REFTABLE_OFFSET as u64, &fields)?;
    image.file().sync_all()
}

/// Clears the dirty bit alone (refcounts already right); then fsync.
pub(super) fn clear_dirty(image: &ImageFile, layout: &Layout) -> io::Result<()> {
    let bits = layout.incompatible & !incompatible::DIRTY;
    image.write_all_at(INCOMPATIBLE_OFFSET as u64, &bits.to_be_bytes())?;
    image.file().sync_all()
}
