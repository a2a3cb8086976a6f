//! The image file as the check sees it: its length fixed when opened, and reads that never go
//! past it. Every offset here comes from the image's own bytes, so a range outside the file
//! is an answer ([`Span::check`] says why), not a short read or a panic.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A range of the file named by a structure of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    /// File byte offset.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// Why a [`Span`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SpanProblem {
    /// The offset is not a multiple of the cluster size.
    Unaligned,
    /// It ends past the end of the file (or overflows).
    PastEnd,
}

impl Span {
    /// Whether the span starts on a cluster boundary and lies inside a file of `file_len`
    /// bytes (the last cluster may be partial: the file length need not be a multiple of the
    /// cluster size).
    pub fn check(self, cluster_bits: u32, file_len: u64) -> Result<(), SpanProblem> {
        if self.offset & ((1u64 << cluster_bits) - 1) != 0 {
            return Err(SpanProblem::Unaligned);
        }
        match self.offset.checked_add(self.len) {
            Some(end) if end <= file_len.next_multiple_of(1 << cluster_bits) => Ok(()),
            _ => Err(SpanProblem::PastEnd),
        }
    }

    /// The clusters it touches (first, count); none for an empty span.
    pub fn clusters(self, cluster_bits: u32) -> (u64, u64) {
        if self.len == 0 {
            return (self.offset >> cluster_bits, 0);
        }
        let first = self.offset >> cluster_bits;
        let last = (self.offset.saturating_add(self.len) - 1) >> cluster_bits;
        (first, last - first + 1)
    }
}

/// An open image file and its length at open time.
#[derive(Debug)]
pub(super) struct ImageFile {
    file: File,
    len: u64,
}

impl ImageFile {
    /// Wraps `file`, taking its current length.
    pub fn new(file: File) -> io::Result<ImageFile> {
        let len = file.metadata()?.len();
        Ok(ImageFile { file, len })
    }

    /// Length in bytes when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The underlying file (for writes and sync).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Fills `buf` from `offset`; bytes past the end of the file read as zeroes (a last
    /// cluster the file only partly holds). Callers check the span against the file first.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        let mut done = 0;
        while done < buf.len() {
            let at = offset.saturating_add(done as u64);
            if at >= self.len {
                break;
            }
            match self.file.read_at(&mut buf[done..], at) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_all_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_past_the_end_or_overflowing_is_refused() {
        let span = Span {
            offset: 65536,
            len: 65536,
        };
        assert_eq!(span.check(16, 131072), Ok(()));
        assert_eq!(span.check(16, 65536), Err(SpanProblem::PastEnd));
        let huge = Span {
            offset: u64::MAX - 65535,
            len: 65536 * 2,
        };
        assert_eq!(huge.check(16, u64::MAX), Err(SpanProblem::PastEnd));
        let odd = Span {
            offset: 512,
            len: 8,
        };
        assert_eq!(odd.check(16, 1 << 20), Err(SpanProblem::Unaligned));
    }

    #[test]
    fn a_partial_last_cluster_counts_as_inside_the_file() {
        let span = Span {
            offset: 65536,
            len: 65536,
        };
        assert_eq!(span.check(16, 65536 + 100), Ok(()));
    }

    #[test]
    fn clusters_of_an_unaligned_span_cover_both_ends() {
        let span = Span {
            offset: 65536 - 10,
            len: 20,
        };
        assert_eq!(span.clusters(16), (0, 2));
        assert_eq!(Span { offset: 0, len: 0 }.clusters(16), (0, 0));
    }
}
