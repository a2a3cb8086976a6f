//! Checking and repairing qcow2 refcounts without QEMU (`vmux vol-check`, and the repair a
//! client or vmd runs after a vmd was killed).
//!
//! Why: imago 0.2.6 updates refcounts in its in-memory refcount block cache and writes them
//! back only at the next flush, while it writes a new L2 table and the L1 entry naming it at
//! once (`ensure_l2`). A vmd killed in between leaves an L1 entry pointing at a cluster whose
//! stored refcount is 0, which a later allocation would hand out again. Like QEMU's lazy
//! refcounts, vmux therefore treats refcounts as possibly stale after a crash and rebuilds
//! them before the image is used again.
//!
//! How: [`walk`] counts every reference to every host cluster (header, L1/L2 tables, data
//! and compressed clusters, snapshot table and each snapshot's tables, bitmaps, refcount
//! structures); [`compare`] holds the stored refcounts against them; [`copied`] checks the
//! L1/L2 "copied" flags. [`repair_image`] then [`rebuild`]s the refcount structures when any
//! refcount differs (or the dirty bit is set), fixes the flags, and checks again.
//!
//! Damage a refcount rebuild cannot fix (pointers outside the file, metadata overlapping
//! other metadata or data) is reported and nothing is written. Images with structures this
//! check does not walk (encryption, external data files, extended L2 entries, unknown
//! incompatible features) are refused by name. Image bytes are untrusted: every offset is
//! checked before use, memory is bounded by the file's real size, and the number of table
//! entries visited is capped.

mod compare;
mod copied;
mod file;
mod layout;
mod rebuild;
mod refs;
mod walk;
mod width;

#[cfg(test)]
mod tests;

/// Damaged images for the tests of the repair's callers.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::storage::create::{NewImage, create_image};
    use crate::storage::format::ImageFormat;
    use crate::storage::image::{OpenOptions, open_image};
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    /// Creates a 1 GiB qcow2 image at `image` holding 64 KiB of data, then clears its refcount
    /// table's entry 0, so every refcount is lost (what `repair_image` rebuilds).
    pub(crate) fn qcow2_with_lost_refcounts(image: &Path) {
        create_image(image, &NewImage::new(ImageFormat::Qcow2, 1 << 30)).expect("create");
        let open = open_image(image, &OpenOptions::writable()).expect("open");
        open.write_at(0, &[7u8; 65536]).expect("write");
        open.flush().expect("flush");
        drop(open);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(image)
            .expect("open file");
        let mut table = [0u8; 8];
        file.read_exact_at(&mut table, 48).expect("read header");
        file.write_all_at(&[0u8; 8], u64::from_be_bytes(table))
            .expect("drop the refcount block");
    }
}

use super::image::{ImageError, ImageLock};
use super::nofollow::open_image_file;
use super::qcow2_header::read_start;
use file::ImageFile;
use layout::{Layout, LayoutProblem, incompatible};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use walk::{Findings, MAX_LISTED, Problems, WalkError};

/// Errors of [`check_image`] and [`repair_image`]. Messages name the image and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Opening or locking the image failed, or its header is not usable.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A read, write or sync failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// The image.
        path: PathBuf,
        /// "read", "write", ...
        op: &'static str,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The image uses a structure the check does not walk.
    #[error(
        "{} uses {feature}, which vmux's refcount check does not handle; check it with `qemu-img check -r all {}`",
        path.display(), path.display()
    )]
    Unsupported {
        /// The image.
        path: PathBuf,
        /// The feature, by name.
        feature: String,
    },
    /// The image is beyond the check's memory or time bounds.
    #[error(
        "{} is too large for vmux's refcount check ({what}); check it with `qemu-img check -r all {}`",
        path.display(), path.display()
    )]
    TooLarge {
        /// The image.
        path: PathBuf,
        /// Which bound, and by how much.
        what: String,
    },
    /// Damage a refcount rebuild cannot fix; nothing was written.
    #[error(
        "{} has damage a refcount repair cannot fix ({count} problems; first: {}); nothing was changed; copy the data out with `qemu-img convert`, or try `qemu-img check -r all` on a copy",
        path.display(), first.join("; ")
    )]
    Damaged {
        /// The image.
        path: PathBuf,
        /// How many problems.
        count: u64,
        /// The first few, described.
        first: Vec<String>,
    },
    /// The repair ran but the image still does not check clean.
    #[error(
        "repairing {} left problems ({left}); keep a copy of the image and report this vmux bug; `qemu-img check -r all {}` may fix it",
        path.display(), path.display()
    )]
    NotFixed {
        /// The image.
        path: PathBuf,
        /// What the check after the repair found.
        left: String,
    },
}

/// What a check found (and, from [`repair_image`], whether it was repaired). Counts are
/// clusters (for `copied_flags`: table entries), as `qemu-img check` counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The image file.
    pub path: PathBuf,
    /// Clusters whose stored refcount is below their references ("corruptions" to QEMU:
    /// such a cluster could be allocated again while in use).
    pub errors: u64,
    /// Clusters whose refcount is above their references (lost space, harmless).
    pub leaks: u64,
    /// L1/L2 entries whose copied flag disagrees with the refcount.
    pub copied_flags: u64,
    /// Refcount table entries or blocks that are themselves broken (out of the file,
    /// overlapping other clusters); a rebuild replaces them.
    pub refcount_structure: u64,
    /// The dirty bit (lazy refcounts not written back) was set.
    pub dirty: bool,
    /// Problems a refcount repair cannot fix (pointers out of the file, overlapping metadata).
    pub damage: u64,
    /// The first problems, described (damage first), at most 20 of each kind.
    pub problems: Vec<String>,
    /// Clusters of the file something references.
    pub allocated_clusters: u64,
    /// Clusters the file holds.
    pub file_clusters: u64,
    /// The repair rewrote the refcount structures or flags.
    pub repaired: bool,
}

impl CheckReport {
    /// Nothing to repair and no damage.
    pub fn is_clean(&self) -> bool {
        self.damage == 0 && !self.needs_repair()
    }

    /// Something a repair fixes was found.
    pub fn needs_repair(&self) -> bool {
        self.errors + self.leaks + self.copied_flags + self.refcount_structure > 0 || self.dirty
    }

    /// One line for logs: "2 refcount errors, 1 leaked cluster".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let mut count = |n: u64, one: &str, many: &str| {
            if n > 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        };
        count(self.damage, "unrepairable problem", "unrepairable problems");
        count(self.errors, "refcount error", "refcount errors");
        count(
            self.refcount_structure,
            "broken refcount table entry",
            "broken refcount table entries",
        );
        count(self.copied_flags, "wrong copied flag", "wrong copied flags");
        count(self.leaks, "leaked cluster", "leaked clusters");
        if self.dirty {
            parts.push("the dirty bit set".into());
        }
        if parts.is_empty() {
            "no problems".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Checks `path`'s refcounts (read-only, under a shared lock: fails while a VM writes it).
pub fn check_image(path: &Path) -> Result<CheckReport, RepairError> {
    let _lock = ImageLock::acquire(path, false)?;
    let image = open(path, false)?;
    Ok(inspect(path, &image)?.report)
}

/// Checks `path` and, when anything is wrong that a rebuild fixes, rebuilds its refcount
/// structures, fixes the copied flags, clears the dirty bit and checks again (under an
/// exclusive lock: fails while anyone else has the image open). Returns what the first
/// check found, with `repaired` set when something was written.
pub fn repair_image(path: &Path) -> Result<CheckReport, RepairError> {
    let _lock = ImageLock::acquire(path, true)?;
    let image = open(path, true)?;
    let Inspection {
        start,
        layout,
        mut findings,
        mut report,
    } = inspect(path, &image)?;
    if report.damage > 0 {
        return Err(RepairError::Damaged {
            path: path.to_path_buf(),
            count: report.damage,
            first: findings.damage.listed,
        });
    }
    if !report.needs_repair() {
        return Ok(report);
    }
    let io = |op| {
        move |source| RepairError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    if report.errors + report.leaks + report.refcount_structure > 0 {
        rebuild::rebuild(
            &image,
            &layout,
            &mut findings.refs,
            findings.file_clusters,
            &start,
        )
        .map_err(|e| match e {
            rebuild::RebuildError::Io(source) => io("write")(source),
            rebuild::RebuildError::TooLarge(what) => RepairError::TooLarge {
                path: path.to_path_buf(),
                what,
            },
        })?;
    } else if report.dirty {
        rebuild::clear_dirty(&image, &layout).map_err(io("write"))?;
    }
    if report.copied_flags > 0 {
        copied::copied_flags(&image, &layout, &findings.refs, true).map_err(io("write"))?;
        image.file().sync_all().map_err(io("sync"))?;
    }
    drop(image);
    let after = inspect(path, &open(path, false)?)?.report;
    if !after.is_clean() {
        return Err(RepairError::NotFixed {
            path: path.to_path_buf(),
            left: after.summary(),
        });
    }
    report.repaired = true;
    Ok(report)
}

/// Opens the image file itself, never a symbolic link (like every image vmux opens).
fn open(path: &Path, write: bool) -> Result<ImageFile, RepairError> {
    let file = open_image_file(path, write)?;
    ImageFile::new(file).map_err(|source| RepairError::Io {
        path: path.to_path_buf(),
        op: "inspect",
        source,
    })
}

/// Everything one check learns.
struct Inspection {
    start: Vec<u8>,
    layout: Layout,
    findings: Findings,
    report: CheckReport,
}

fn inspect(path: &Path, image: &ImageFile) -> Result<Inspection, RepairError> {
    let io = |op| {
        move |source| RepairError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    };
    let start = read_start(image.file()).map_err(io("read"))?;
    let layout = Layout::parse(&start).map_err(|problem| match problem {
        LayoutProblem::Header(problem) => RepairError::Image(ImageError::header(path, problem)),
        LayoutProblem::Unsupported(feature) => RepairError::Unsupported {
            path: path.to_path_buf(),
            feature,
        },
    })?;
    let findings = walk::walk(image, &layout).map_err(|e| match e {
        WalkError::Io(source) => io("read")(source),
        WalkError::TooLarge(what) => RepairError::TooLarge {
            path: path.to_path_buf(),
            what,
        },
    })?;
    let comparison = compare::compare(image, &layout, &findings).map_err(io("read"))?;
    let flags = if findings.damage.count == 0 {
        copied::copied_flags(image, &layout, &findings.refs, false).map_err(io("read"))?
    } else {
        Problems::default()
    };
    let mut damage = findings.damage.clone();
    damage.count += comparison.overflow.count;
    damage
        .listed
        .extend(comparison.overflow.listed.iter().cloned());
    damage.listed.truncate(MAX_LISTED);
    let mut problems = damage.listed.clone();
    for list in [
        &findings.refcount_structure,
        &comparison.errors,
        &flags,
        &comparison.leaks,
    ] {
        problems.extend(list.listed.iter().cloned());
    }
    let report = CheckReport {
        path: path.to_path_buf(),
        errors: comparison.errors.count,
        leaks: comparison.leaks.count,
        copied_flags: flags.count,
        refcount_structure: findings.refcount_structure.count,
        dirty: layout.incompatible & incompatible::DIRTY != 0,
        damage: damage.count,
        problems,
        allocated_clusters: findings.refs.allocated(),
        file_clusters: findings.file_clusters,
        repaired: false,
    };
    let findings = Findings { damage, ..findings };
    Ok(Inspection {
        start,
        layout,
        findings,
        report,
    })
}
