//! The "copied" flag (bit 63) of the active L1 and L2 entries: set exactly when the cluster's
//! refcount is 1, so a writer may write it in place. A set flag on a cluster an internal
//! snapshot shares would let the next write change the snapshot; a missing one only costs a
//! copy. `qemu-img check` reports both (`ERROR OFLAG_COPIED ...`); the repair rewrites the
//! entries from the references found (compressed clusters never carry the flag).
//!
//! Each fix is one entry rewritten in place, so a crash in the middle leaves every entry
//! either old or new, and the next check finds what is left.

use super::file::{ImageFile, Span};
use super::layout::{Layout, be64};
use super::refs::References;
use super::walk::{COMPRESSED, COPIED, OFFSET_MASK, Problems};
use std::io;

/// Checks (and with `fix`, rewrites) the flags of the active L1 table and its L2 tables
/// against `refs`. Entries the walk found unusable are skipped (they are damage already).
pub(super) fn copied_flags(
    image: &ImageFile,
    layout: &Layout,
    refs: &References,
    fix: bool,
) -> io::Result<Problems> {
    let mut problems = Problems::default();
    let bits = layout.cluster_bits;
    let cluster_size = layout.cluster_size();
    let l1_span = Span {
        offset: layout.l1_offset,
        len: layout.l1_entries * 8,
    };
    if layout.l1_entries == 0 || l1_span.check(bits, image.len()).is_err() {
        return Ok(problems);
    }
    let mut l1 = vec![0u8; l1_span.len as usize];
    image.read_into(l1_span.offset, &mut l1)?;
    let mut l2 = vec![0u8; cluster_size as usize];
    for l1_index in 0..layout.l1_entries {
        let at = (l1_index * 8) as usize;
        let entry = be64(&l1, at);
        let l2_offset = entry & OFFSET_MASK;
        let table = Span {
            offset: l2_offset,
            len: cluster_size,
        };
        if l2_offset == 0 || table.check(bits, image.len()).is_err() {
            continue;
        }
        let refcount = refs.get(l2_offset >> bits);
        if (entry & COPIED != 0) != (refcount == 1) {
            problems.push(|| {
                format!(
                    "ERROR OFLAG_COPIED L2 cluster: l1_index={l1_index} l1_entry={entry:x} refcount={refcount}"
                )
            });
            if fix {
                let fixed = with_copied(entry, refcount == 1);
                image.write_all_at(l1_span.offset + at as u64, &fixed.to_be_bytes())?;
            }
        }
        image.read_into(l2_offset, &mut l2)?;
        for index in 0..cluster_size / 8 {
            let at = (index * 8) as usize;
            let entry = be64(&l2, at);
            let want = if entry & COMPRESSED != 0 {
                false
            } else {
                let data = entry & OFFSET_MASK;
                let span = Span {
                    offset: data,
                    len: cluster_size,
                };
                if data == 0 || span.check(bits, image.len()).is_err() {
                    continue;
                }
                refs.get(data >> bits) == 1
            };
            if (entry & COPIED != 0) != want {
                let refcount = if entry & COMPRESSED != 0 {
                    None
                } else {
                    Some(refs.get((entry & OFFSET_MASK) >> bits))
                };
                problems.push(|| match refcount {
                    Some(refcount) => format!(
                        "ERROR OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={refcount}"
                    ),
                    None => {
                        format!("ERROR compressed cluster with the copied flag: l2_entry={entry:x}")
                    }
                });
                if fix {
                    let fixed = with_copied(entry, want);
                    image.write_all_at(l2_offset + at as u64, &fixed.to_be_bytes())?;
                }
            }
        }
    }
    Ok(problems)
}

/// `entry` with the copied flag set to `copied`.
fn with_copied(entry: u64, copied: bool) -> u64 {
    if copied {
        entry | COPIED
    } else {
        entry & !COPIED
    }
}
