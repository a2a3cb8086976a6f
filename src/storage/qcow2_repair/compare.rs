//! Stored refcounts against found references, cluster by cluster over the whole file, with
//! `qemu-img check`'s words: a refcount below the references is an error (the cluster could
//! be handed out again while in use: corruption waiting to happen), one above is a leak
//! (space lost, nothing else).

use super::file::ImageFile;
use super::layout::Layout;
use super::walk::{Findings, Problems};
use super::width::Width;
use std::collections::HashMap;
use std::io;

/// The result of the comparison.
#[derive(Debug, Default)]
pub(super) struct Comparison {
    /// Clusters whose refcount is below their references.
    pub errors: Problems,
    /// Clusters whose refcount is above their references.
    pub leaks: Problems,
    /// Clusters referenced more often than the refcount width can count (not repairable).
    pub overflow: Problems,
}

/// Compares every cluster of the file.
pub(super) fn compare(
    image: &ImageFile,
    layout: &Layout,
    findings: &Findings,
) -> io::Result<Comparison> {
    let width = Width::new(layout.refcount_order);
    let bits = layout.cluster_bits;
    let per_block = width.per_block(bits);
    let blocks: HashMap<u64, u64> = findings
        .refblocks
        .iter()
        .map(|b| (b.index, b.offset))
        .collect();
    let mut block = vec![0u8; layout.cluster_size() as usize];
    let mut result = Comparison::default();
    let file_clusters = findings.file_clusters;
    let mut first = 0;
    while first < file_clusters {
        let index = first / per_block;
        match blocks.get(&index) {
            Some(&offset) => image.read_into(offset, &mut block)?,
            None => block.fill(0),
        }
        let count = per_block.min(file_clusters - first);
        for j in 0..count {
            let cluster = first + j;
            let stored = width.get(&block, j);
            let found = findings.refs.get(cluster);
            if found > width.max() {
                result.overflow.push(|| {
                    format!(
                        "cluster {cluster} is referenced {found} times, more than refcount_bits={} can count",
                        width.bits()
                    )
                });
            }
            if stored < found {
                result.errors.push(|| {
                    format!("ERROR cluster {cluster} refcount={stored} reference={found}")
                });
            } else if stored > found {
                result.leaks.push(|| {
                    format!("Leaked cluster {cluster} refcount={stored} reference={found}")
                });
            }
        }
        first += count;
    }
    Ok(result)
}
