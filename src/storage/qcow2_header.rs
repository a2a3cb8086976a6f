//! The qcow2 header, read by vmux itself (QEMU `docs/interop/qcow2.txt`), before imago opens an
//! image: to name the features vmux refuses (imago only says "unrecognized feature"), to walk
//! backing chains safely (missing files and loops are found here, not by recursion in imago),
//! and to rewrite the backing file name in place (what `qemu-img rebase -u` does), which
//! snapshot deletion needs.
//!
//! Only the first cluster is touched here: header, header extensions, backing file name.

use std::io;

/// `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Byte offset of the virtual disk size (u64, big endian) in every header version.
pub const SIZE_OFFSET: u64 = 24;
/// Header extension: end of the extension list.
const EXT_END: u32 = 0;
/// Header extension: backing file format name.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension: full disk encryption parameters.
const EXT_CRYPTO: u32 = 0x0537_be77;
/// Header extension: external data file name.
const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Size of the version 2 header.
const V2_HEADER_LEN: usize = 72;
/// Size of the version 3 header without the optional compression type.
const V3_HEADER_MIN_LEN: usize = 104;
/// Longest backing file name QEMU accepts.
const BACKING_NAME_MAX: usize = 1023;
/// Largest L1 table QEMU accepts (`QCOW_MAX_L1_SIZE`); imago loads the whole table, so a header
/// claiming more could make vmux allocate gigabytes.
const MAX_L1_BYTES: u64 = 32 << 20;
/// Largest refcount table QEMU accepts (`QCOW_MAX_REFTABLE_SIZE`); same reason.
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Most internal snapshots QEMU accepts (`QCOW_MAX_SNAPSHOTS`).
const MAX_SNAPSHOTS: u32 = 65536;

/// Incompatible feature bits (header offset 72).
mod incompatible {
    pub const DIRTY: u64 = 1 << 0;
    pub const CORRUPT: u64 = 1 << 1;
    pub const EXTERNAL_DATA_FILE: u64 = 1 << 2;
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    pub const EXTENDED_L2: u64 = 1 << 4;
}

/// The parts of a qcow2 header vmux looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// 0 none, 1 AES, 2 LUKS.
    pub crypt_method: u32,
    /// Backing file name as written in the image (relative names are relative to the image's
    /// directory).
    pub backing_file: Option<String>,
    /// Backing format from the header extension (`qcow2`, `raw`), when present.
    pub backing_format: Option<String>,
    /// Number of internal snapshots.
    pub snapshots: u32,
    /// Incompatible feature bits.
    pub incompatible_features: u64,
    /// Compatible feature bits (bit 0: lazy refcounts).
    pub compatible_features: u64,
    /// log2 of the refcount width in bits.
    pub refcount_order: u32,
    /// Compression type byte (0 zlib, 1 zstd); 0 for headers too short to hold it.
    pub compression_type: u8,
    /// Length of the fixed header (extensions start here).
    header_length: usize,
    /// Header extensions other than the end marker, in file order: (type, data).
    extensions: Vec<(u32, Vec<u8>)>,
}

/// Why a header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Not qcow2 at all (no magic).
    NotQcow2,
    /// The header contradicts itself or the file; the text says how.
    Corrupt(String),
    /// A valid image using something vmux does not support; the text names it.
    Unsupported(String),
    /// The dirty bit is set (lazy refcounts not written back): needs a repair first.
    Dirty,
}

fn be32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_be_bytes(bytes)
}

fn be64(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(bytes)
}

impl Qcow2Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Parses the start of a file (at least the first 104 bytes; the first cluster, or the whole
    /// file when shorter, for extensions and the backing name). Checks structure only; see
    /// [`Qcow2Header::check_supported`] for features.
    pub fn parse(buf: &[u8]) -> Result<Qcow2Header, HeaderProblem> {
        if buf.len() < 4 || buf[..4] != MAGIC {
            return Err(HeaderProblem::NotQcow2);
        }
        let corrupt = |what: String| HeaderProblem::Corrupt(what);
        if buf.len() < V2_HEADER_LEN {
            return Err(corrupt(format!(
                "the file is {} bytes, shorter than a qcow2 header",
                buf.len()
            )));
        }
        let version = be32(buf, 4);
        if version != 2 && version != 3 {
            return Err(HeaderProblem::Unsupported(format!(
                "qcow2 version {version} (vmux reads versions 2 and 3)"
            )));
        }
        let cluster_bits = be32(buf, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(corrupt(format!(
                "cluster_bits is {cluster_bits}, outside 9..21"
            )));
        }
        let cluster_size = 1usize << cluster_bits;
        let first_cluster = &buf[..buf.len().min(cluster_size)];
        let (incompatible_features, compatible_features, refcount_order, header_length) = if version
            == 3
        {
            if first_cluster.len() < V3_HEADER_MIN_LEN {
                return Err(corrupt("the version 3 header is truncated".into()));
            }
            let header_length = be32(buf, 100) as usize;
            if header_length < V3_HEADER_MIN_LEN
                || header_length > first_cluster.len()
                || !header_length.is_multiple_of(8)
            {
                return Err(corrupt(format!(
                    "header_length is {header_length}, not a multiple of 8 between 104 and the cluster size"
                )));
            }
            (be64(buf, 72), be64(buf, 80), be32(buf, 96), header_length)
        } else {
            (0, 0, 4, V2_HEADER_LEN)
        };
        if refcount_order > 6 {
            return Err(corrupt(format!(
                "refcount_order is {refcount_order}, above 6"
            )));
        }
        check_table_sizes(buf, cluster_bits)?;
        let compression_type = if header_length > V3_HEADER_MIN_LEN {
            buf[V3_HEADER_MIN_LEN]
        } else {
            0
        };
        let extensions = parse_extensions(first_cluster, header_length)?;
        let backing_offset = be64(buf, 8);
        let backing_size = be32(buf, 16) as usize;
        let backing_file = if backing_offset == 0 {
            None
        } else {
            let start = usize::try_from(backing_offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(backing_size);
            if backing_size > BACKING_NAME_MAX || end > first_cluster.len() {
                return Err(corrupt(format!(
                    "the backing file name ({backing_size} bytes at offset {backing_offset}) lies outside the first cluster"
                )));
            }
            let name = std::str::from_utf8(&first_cluster[start..end])
                .map_err(|_| corrupt("the backing file name is not UTF-8".into()))?;
            if name.is_empty() || name.contains('\0') {
                return Err(corrupt(
                    "the backing file name is empty or holds NUL".into(),
                ));
            }
            Some(name.to_string())
        };
        let backing_format = extensions
            .iter()
            .find(|(kind, _)| *kind == EXT_BACKING_FORMAT)
            .map(|(_, data)| {
                String::from_utf8_lossy(data)
                    .trim_end_matches('\0')
                    .to_string()
            });
        Ok(Qcow2Header {
            version,
            cluster_bits,
            size: be64(buf, 24),
            crypt_method: be32(buf, 32),
            backing_file,
            backing_format,
            snapshots: be32(buf, 60),
            incompatible_features,
            compatible_features,
            refcount_order,
            compression_type,
            header_length,
            extensions,
        })
    }

    /// The header extensions other than the end marker, in file order: (type, data). The
    /// refcount check reads the ones that reference clusters (bitmaps, encryption, data file).
    pub fn extensions(&self) -> &[(u32, Vec<u8>)] {
        &self.extensions
    }

    /// Refuses what vmux cannot read or write correctly, naming the feature.
    pub fn check_supported(&self) -> Result<(), HeaderProblem> {
        use incompatible::*;
        let unsupported = |what: &str| Err(HeaderProblem::Unsupported(what.to_string()));
        if self.incompatible_features & CORRUPT != 0 {
            return Err(HeaderProblem::Corrupt(
                "QEMU marked the image corrupt (incompatible feature bit 1)".into(),
            ));
        }
        if self.incompatible_features & DIRTY != 0 {
            return Err(HeaderProblem::Dirty);
        }
        if self.crypt_method != 0 || self.extensions.iter().any(|(k, _)| *k == EXT_CRYPTO) {
            return unsupported("encryption (AES or LUKS)");
        }
        if self.incompatible_features & EXTERNAL_DATA_FILE != 0
            || self.extensions.iter().any(|(k, _)| *k == EXT_DATA_FILE)
        {
            return unsupported("an external data file (data_file)");
        }
        if self.incompatible_features & COMPRESSION_TYPE != 0 || self.compression_type != 0 {
            let name = match self.compression_type {
                1 => "zstd compression (compression_type=zstd)".to_string(),
                other => format!("compression type {other}"),
            };
            return Err(HeaderProblem::Unsupported(name));
        }
        if self.incompatible_features & EXTENDED_L2 != 0 {
            return unsupported("extended L2 entries (extended_l2=on, subclusters)");
        }
        let known = DIRTY | CORRUPT | EXTERNAL_DATA_FILE | COMPRESSION_TYPE | EXTENDED_L2;
        let unknown = self.incompatible_features & !known;
        if unknown != 0 {
            return Err(HeaderProblem::Unsupported(format!(
                "unknown incompatible feature bits {unknown:#x}"
            )));
        }
        Ok(())
    }

    /// The first-cluster bytes that make this header point at `backing` (name and format, or
    /// none), keeping every other field and extension. The result starts at file offset 0 and
    /// covers everything the old header used, so writing it replaces the old header whole.
    pub fn with_backing(
        &self,
        original: &[u8],
        backing: Option<(&str, &str)>,
    ) -> Result<Vec<u8>, HeaderProblem> {
        let cluster_size = self.cluster_size() as usize;
        let mut out = original[..self.header_length].to_vec();
        let push_ext = |out: &mut Vec<u8>, kind: u32, data: &[u8]| {
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(8), 0);
        };
        for (kind, data) in self
            .extensions
            .iter()
            .filter(|(k, _)| *k != EXT_BACKING_FORMAT)
        {
            push_ext(&mut out, *kind, data);
        }
        if let Some((_, format)) = backing {
            push_ext(&mut out, EXT_BACKING_FORMAT, format.as_bytes());
        }
        push_ext(&mut out, EXT_END, &[]);
        let (offset, size) = match backing {
            Some((name, _)) => {
                if name.len() > BACKING_NAME_MAX {
                    return Err(HeaderProblem::Unsupported(format!(
                        "a backing file name of {} bytes (at most {BACKING_NAME_MAX})",
                        name.len()
                    )));
                }
                let offset = out.len();
                out.extend_from_slice(name.as_bytes());
                (offset as u64, name.len() as u32)
            }
            None => (0, 0),
        };
        if out.len() > cluster_size {
            return Err(HeaderProblem::Unsupported(
                "a header with its extensions larger than one cluster".into(),
            ));
        }
        out[8..16].copy_from_slice(&offset.to_be_bytes());
        out[16..20].copy_from_slice(&size.to_be_bytes());
        // Clear what the old header used beyond the new end, so no stale name survives.
        let old_end = self.used_len(original).min(cluster_size);
        if out.len() < old_end {
            out.resize(old_end, 0);
        }
        Ok(out)
    }

    /// How many bytes of the first cluster the header, its extensions and the backing name use.
    fn used_len(&self, original: &[u8]) -> usize {
        let mut end = self.header_length;
        for (_, data) in &self.extensions {
            end += 8 + data.len().next_multiple_of(8);
        }
        end += 8;
        let backing_offset = be64(original, 8) as usize;
        let backing_end = backing_offset + be32(original, 16) as usize;
        end.max(backing_end).min(original.len())
    }
}

/// Refuses headers whose tables are larger than QEMU allows or too small for the disk size:
/// imago allocates what the header says before reading it.
fn check_table_sizes(buf: &[u8], cluster_bits: u32) -> Result<(), HeaderProblem> {
    let corrupt = |what: String| Err(HeaderProblem::Corrupt(what));
    let size = be64(buf, 24);
    let l1_entries = u64::from(be32(buf, 36));
    let reftable_clusters = u64::from(be32(buf, 56));
    let snapshots = be32(buf, 60);
    if l1_entries * 8 > MAX_L1_BYTES {
        return corrupt(format!(
            "the L1 table has {l1_entries} entries, more than QEMU's 32 MiB limit"
        ));
    }
    // One L1 entry maps one L2 table, which maps cluster_size / 8 clusters.
    let per_l1_entry = 1u64 << (2 * cluster_bits - 3);
    if l1_entries < size.div_ceil(per_l1_entry) {
        return corrupt(format!(
            "the L1 table ({l1_entries} entries) is too small for a disk of {size} bytes"
        ));
    }
    if reftable_clusters << cluster_bits > MAX_REFTABLE_BYTES {
        return corrupt(format!(
            "the refcount table spans {reftable_clusters} clusters, more than QEMU's 8 MiB limit"
        ));
    }
    if snapshots > MAX_SNAPSHOTS {
        return corrupt(format!(
            "{snapshots} internal snapshots, more than QEMU's limit of {MAX_SNAPSHOTS}"
        ));
    }
    Ok(())
}

/// Reads the extension list that starts at `at`.
fn parse_extensions(buf: &[u8], mut at: usize) -> Result<Vec<(u32, Vec<u8>)>, HeaderProblem> {
    let mut extensions = Vec::new();
    loop {
        if at + 8 > buf.len() {
            // A v2 image may end right after its header, with no end marker: no extensions.
            return Ok(extensions);
        }
        let kind = be32(buf, at);
        let len = be32(buf, at + 4) as usize;
        if kind == EXT_END {
            return Ok(extensions);
        }
        let data_start = at + 8;
        let data_end = data_start.saturating_add(len);
        if data_end > buf.len() {
            return Err(HeaderProblem::Corrupt(format!(
                "header extension {kind:#x} runs past the first cluster"
            )));
        }
        extensions.push((kind, buf[data_start..data_end].to_vec()));
        at = data_start + len.next_multiple_of(8);
    }
}

/// Reads the start of `file` that [`Qcow2Header::parse`] needs: 4 KiB, or the whole first
/// cluster (at most 2 MiB, the largest) when the file starts like qcow2. Listing a pool
/// inspects every volume, so raw files cost one small read.
pub fn read_start(file: &std::fs::File) -> io::Result<Vec<u8>> {
    let file_len = file.metadata()?.len();
    let mut buf = read_prefix(file, file_len.min(4096) as usize)?;
    if buf.len() >= 24 && buf[..4] == MAGIC {
        let cluster_bits = be32(&buf, 20);
        if (9..=21).contains(&cluster_bits) {
            let want = file_len.min(1 << cluster_bits) as usize;
            if want > buf.len() {
                buf = read_prefix(file, want)?;
            }
        }
    }
    Ok(buf)
}

/// The first `len` bytes of `file` (fewer if it is shorter).
fn read_prefix(file: &std::fs::File, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal v3 header with 64 KiB clusters, as QEMU writes it.
    fn v3(extra_incompat: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 65536];
        buf[..4].copy_from_slice(&MAGIC);
        buf[4..8].copy_from_slice(&3u32.to_be_bytes());
        buf[20..24].copy_from_slice(&16u32.to_be_bytes());
        buf[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        buf[36..40].copy_from_slice(&2u32.to_be_bytes());
        buf[56..60].copy_from_slice(&1u32.to_be_bytes());
        buf[72..80].copy_from_slice(&extra_incompat.to_be_bytes());
        buf[96..100].copy_from_slice(&4u32.to_be_bytes());
        buf[100..104].copy_from_slice(&112u32.to_be_bytes());
        buf
    }

    #[test]
    fn a_plain_v3_header_parses() {
        let header = Qcow2Header::parse(&v3(0)).expect("parse");
        assert_eq!(header.size, 1 << 30);
        assert_eq!(header.cluster_size(), 65536);
        assert_eq!(header.backing_file, None);
        assert_eq!(header.check_supported(), Ok(()));
    }

    #[test]
    fn a_raw_file_is_not_qcow2() {
        assert_eq!(
            Qcow2Header::parse(&[0u8; 512]),
            Err(HeaderProblem::NotQcow2)
        );
    }

    #[test]
    fn zstd_is_refused_by_name() {
        let mut buf = v3(incompatible::COMPRESSION_TYPE);
        buf[104] = 1;
        let problem = Qcow2Header::parse(&buf)
            .expect("parse")
            .check_supported()
            .expect_err("must refuse");
        assert!(matches!(problem, HeaderProblem::Unsupported(ref s) if s.contains("zstd")));
    }

    #[test]
    fn extended_l2_and_data_file_are_refused_by_name() {
        for (bit, word) in [
            (incompatible::EXTENDED_L2, "extended L2"),
            (incompatible::EXTERNAL_DATA_FILE, "external data file"),
        ] {
            let problem = Qcow2Header::parse(&v3(bit))
                .expect("parse")
                .check_supported()
                .expect_err("must refuse");
            assert!(
                matches!(problem, HeaderProblem::Unsupported(ref s) if s.contains(word)),
                "{problem:?}"
            );
        }
    }

    #[test]
    fn a_truncated_header_is_corrupt() {
        let buf = v3(0);
        assert!(matches!(
            Qcow2Header::parse(&buf[..80]),
            Err(HeaderProblem::Corrupt(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser() {
        // xorshift64: deterministic garbage of many lengths, half of it with the magic.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for round in 0..4000 {
            let len = (next() % 700) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && len >= 8 {
                buf[..4].copy_from_slice(&MAGIC);
                buf[4..8].copy_from_slice(&(2 + (round as u32 / 2) % 2).to_be_bytes());
                // Plausible cluster size, table sizes and header length, so parsing goes deep
                // into extensions and backing names.
                if len >= 112 {
                    buf[20..24].copy_from_slice(&9u32.to_be_bytes());
                    buf[24..32].copy_from_slice(&(next() % (1 << 20)).to_be_bytes());
                    buf[36..40].copy_from_slice(&4096u32.to_be_bytes());
                    buf[56..60].copy_from_slice(&1u32.to_be_bytes());
                    buf[60..64].copy_from_slice(&0u32.to_be_bytes());
                    buf[96..100].copy_from_slice(&4u32.to_be_bytes());
                    buf[100..104].copy_from_slice(&104u32.to_be_bytes());
                    if round % 4 == 0 {
                        buf[8..20].fill(0);
                        buf[104..112].fill(0);
                        if round % 8 == 0 {
                            buf[72..80].fill(0);
                        }
                    }
                }
            }
            if let Ok(header) = Qcow2Header::parse(&buf) {
                parsed += 1;
                let _ = header.check_supported();
                let _ = header.with_backing(&buf, Some(("b.raw", "raw")));
            }
        }
        assert!(parsed > 100, "the garbage should often parse: {parsed}");
    }

    #[test]
    fn a_huge_l1_table_is_corrupt_before_anything_allocates_it() {
        let mut buf = v3(0);
        buf[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        let problem = Qcow2Header::parse(&buf).expect_err("must refuse");
        assert!(matches!(problem, HeaderProblem::Corrupt(ref s) if s.contains("L1")));
    }

    #[test]
    fn an_l1_table_too_small_for_the_size_is_corrupt() {
        let mut buf = v3(0);
        buf[36..40].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(
            Qcow2Header::parse(&buf),
            Err(HeaderProblem::Corrupt(_))
        ));
    }

    #[test]
    fn a_huge_refcount_table_is_corrupt() {
        let mut buf = v3(0);
        buf[56..60].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(
            Qcow2Header::parse(&buf),
            Err(HeaderProblem::Corrupt(ref s)) if s.contains("refcount")
        ));
    }

    #[test]
    fn a_backing_name_outside_the_cluster_is_corrupt() {
        let mut buf = v3(0);
        buf[8..16].copy_from_slice(&65530u64.to_be_bytes());
        buf[16..20].copy_from_slice(&100u32.to_be_bytes());
        assert!(matches!(
            Qcow2Header::parse(&buf),
            Err(HeaderProblem::Corrupt(_))
        ));
    }

    #[test]
    fn rewriting_the_backing_keeps_other_extensions() {
        let mut buf = v3(0);
        // A feature-name table extension (0x6803f857) with 3 bytes of data.
        buf[112..116].copy_from_slice(&0x6803_f857u32.to_be_bytes());
        buf[116..120].copy_from_slice(&3u32.to_be_bytes());
        buf[120..123].copy_from_slice(b"abc");
        let header = Qcow2Header::parse(&buf).expect("parse");
        let new = header
            .with_backing(&buf, Some(("base.raw", "raw")))
            .expect("rewrite");
        buf[..new.len()].copy_from_slice(&new);
        let again = Qcow2Header::parse(&buf).expect("parse again");
        assert_eq!(again.backing_file.as_deref(), Some("base.raw"));
        assert_eq!(again.backing_format.as_deref(), Some("raw"));
        assert!(
            again
                .extensions
                .iter()
                .any(|(k, d)| *k == 0x6803_f857 && d == b"abc")
        );
        let cleared = again.with_backing(&buf, None).expect("clear");
        buf[..cleared.len()].copy_from_slice(&cleared);
        let last = Qcow2Header::parse(&buf).expect("parse last");
        assert_eq!(last.backing_file, None);
        assert_eq!(last.backing_format, None);
        assert!(!buf.windows(8).any(|w| w == b"base.raw"));
    }
}
