//! The references the check finds, per host cluster: how many structures point at each
//! cluster (what its refcount must be) and, for metadata clusters, what they are, so that two
//! structures claiming one cluster (an L2 table inside the L1 table, guest data over a
//! refcount block) are found instead of counted.
//!
//! Memory: two bytes per cluster of the file (counts of 65535 and more spill into a map),
//! plus an entry per metadata cluster. The file's real length bounds it, and
//! [`MAX_CLUSTERS`] caps it.

use std::collections::HashMap;
use std::fmt;

/// Most clusters a file may have for the check (256 MiB of counts): 8 TiB at 64 KiB clusters.
pub(super) const MAX_CLUSTERS: u64 = 1 << 27;

/// What a metadata cluster holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The header (cluster 0).
    Header,
    /// The active L1 table.
    L1,
    /// An internal snapshot's L1 table.
    SnapshotL1,
    /// An L2 table (snapshots may share them).
    L2,
    /// The snapshot table.
    SnapshotTable,
    /// The bitmap directory.
    BitmapDirectory,
    /// A bitmap table.
    BitmapTable,
    /// The refcount table.
    RefTable,
    /// A refcount block.
    RefBlock,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Header => "the header",
            Role::L1 => "the L1 table",
            Role::SnapshotL1 => "a snapshot's L1 table",
            Role::L2 => "an L2 table",
            Role::SnapshotTable => "the snapshot table",
            Role::BitmapDirectory => "the bitmap directory",
            Role::BitmapTable => "a bitmap table",
            Role::RefTable => "the refcount table",
            Role::RefBlock => "a refcount block",
        })
    }
}

/// A cluster claimed twice in a way qcow2 does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Overlap {
    /// The cluster index.
    pub cluster: u64,
    /// What it already was.
    pub was: Role,
    /// What it was claimed as now (`None`: guest data).
    pub now: Option<Role>,
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.now {
            Some(now) => write!(f, "cluster {} is both {} and {now}", self.cluster, self.was),
            None => write!(f, "cluster {} is both {} and data", self.cluster, self.was),
        }
    }
}

/// Reference counts per cluster for clusters `0..len`.
#[derive(Debug)]
pub(super) struct References {
    counts: Vec<u16>,
    overflow: HashMap<u64, u64>,
    meta: HashMap<u64, (Role, u64)>,
}

impl References {
    /// Counts for `clusters` clusters (the caller keeps it at most [`MAX_CLUSTERS`]).
    pub fn new(clusters: u64) -> References {
        References {
            counts: vec![0; usize::try_from(clusters.min(MAX_CLUSTERS)).unwrap_or(0)],
            overflow: HashMap::new(),
            meta: HashMap::new(),
        }
    }

    /// References to `cluster` (0 outside the covered range).
    pub fn get(&self, cluster: u64) -> u64 {
        match usize::try_from(cluster)
            .ok()
            .and_then(|i| self.counts.get(i))
        {
            Some(&u16::MAX) => self.overflow.get(&cluster).copied().unwrap_or(0),
            Some(&count) => u64::from(count),
            None => 0,
        }
    }

    fn increment(&mut self, cluster: u64, by: u64) {
        let Some(slot) = usize::try_from(cluster)
            .ok()
            .and_then(|i| self.counts.get_mut(i))
        else {
            return;
        };
        if *slot == u16::MAX {
            let count = self.overflow.entry(cluster).or_insert(0);
            *count = count.saturating_add(by);
            return;
        }
        let count = u64::from(*slot).saturating_add(by);
        if count >= u64::from(u16::MAX) {
            *slot = u16::MAX;
            self.overflow.insert(cluster, count);
        } else {
            *slot = count as u16;
        }
    }

    fn decrement(&mut self, cluster: u64, by: u64) {
        let count = self.get(cluster).saturating_sub(by);
        let Some(slot) = usize::try_from(cluster)
            .ok()
            .and_then(|i| self.counts.get_mut(i))
        else {
            return;
        };
        if count >= u64::from(u16::MAX) {
            self.overflow.insert(cluster, count);
        } else {
            *slot = count as u16;
            self.overflow.remove(&cluster);
        }
    }

    /// `times` references to guest data (or bitmap data) in `cluster` (an L2 table that
    /// `times` L1 entries name references its data that often). Data may be shared (internal
    /// snapshots), metadata may not: data in a metadata cluster is an [`Overlap`].
    pub fn add_data_times(&mut self, cluster: u64, times: u64) -> Result<(), Overlap> {
        self.increment(cluster, times);
        match self.meta.get(&cluster) {
            Some(&(was, _)) => Err(Overlap {
                cluster,
                was,
                now: None,
            }),
            None => Ok(()),
        }
    }

    /// A reference to `cluster` as metadata of kind `role`. Only L2 tables may be referenced
    /// more than once (by the L1 tables of snapshots).
    pub fn add_meta(&mut self, cluster: u64, role: Role) -> Result<(), Overlap> {
        let before = self.get(cluster);
        match self.meta.get_mut(&cluster) {
            Some((was, count)) => {
                let was = *was;
                if was != role || role != Role::L2 {
                    return Err(Overlap {
                        cluster,
                        was,
                        now: Some(role),
                    });
                }
                *count += 1;
            }
            None if before > 0 => {
                return Err(Overlap {
                    cluster,
                    was: role,
                    now: None,
                });
            }
            None => {
                self.meta.insert(cluster, (role, 1));
            }
        }
        self.increment(cluster, 1);
        Ok(())
    }

    /// Forgets every reference of kind `role` (the old refcount structures before a rebuild).
    pub fn remove_role(&mut self, role: Role) {
        let clusters: Vec<(u64, u64)> = self
            .meta
            .iter()
            .filter(|(_, (r, _))| *r == role)
            .map(|(c, (_, n))| (*c, *n))
            .collect();
        for (cluster, count) in clusters {
            self.decrement(cluster, count);
            self.meta.remove(&cluster);
        }
    }

    /// Clusters with at least one reference.
    pub fn allocated(&self) -> u64 {
        self.counts.iter().filter(|&&c| c > 0).count() as u64
    }

    /// Whether any cluster in `first..first + count` has a reference.
    pub fn any_in(&self, first: u64, count: u64) -> bool {
        let start = usize::try_from(first).unwrap_or(usize::MAX);
        let end = usize::try_from(first.saturating_add(count)).unwrap_or(usize::MAX);
        let end = end.min(self.counts.len());
        start < end && self.counts[start..end].iter().any(|&c| c > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_is_counted_and_shared_l2_tables_are_allowed() {
        let mut refs = References::new(8);
        refs.add_data_times(3, 1).expect("data");
        refs.add_data_times(3, 1).expect("shared data");
        refs.add_meta(4, Role::L2).expect("l2");
        refs.add_meta(4, Role::L2).expect("shared l2");
        assert_eq!((refs.get(3), refs.get(4)), (2, 2));
        assert_eq!(refs.allocated(), 2);
    }

    #[test]
    fn data_inside_metadata_and_metadata_over_data_are_overlaps() {
        let mut refs = References::new(8);
        refs.add_meta(1, Role::L1).expect("l1");
        assert!(refs.add_data_times(1, 1).is_err());
        refs.add_data_times(2, 1).expect("data");
        assert!(refs.add_meta(2, Role::L2).is_err());
        assert!(refs.add_meta(1, Role::L1).is_err(), "one L1 twice");
    }

    #[test]
    fn counts_beyond_sixteen_bits_are_kept_exactly() {
        let mut refs = References::new(2);
        for _ in 0..70_000 {
            refs.add_data_times(1, 1).expect("data");
        }
        assert_eq!(refs.get(1), 70_000);
    }

    #[test]
    fn removing_a_role_drops_its_references_only() {
        let mut refs = References::new(8);
        refs.add_meta(5, Role::RefBlock).expect("refblock");
        refs.add_meta(6, Role::L2).expect("l2");
        refs.remove_role(Role::RefBlock);
        assert_eq!((refs.get(5), refs.get(6)), (0, 1));
        refs.add_data_times(5, 1).expect("free again");
    }

    #[test]
    fn clusters_outside_the_range_are_ignored() {
        let mut refs = References::new(2);
        refs.add_data_times(u64::MAX, 1).expect("ignored");
        assert_eq!(refs.get(u64::MAX), 0);
        assert!(!refs.any_in(u64::MAX, 5));
    }
}
