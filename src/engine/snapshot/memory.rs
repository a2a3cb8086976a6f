//! Guest RAM in a save file: only the pages the guest touched, as records of
//! `(guest address u64, length u64, bytes)`, ended by an address of `u64::MAX`.
//!
//! Which pages: `/proc/self/pagemap` says, for each host page of the guest's mappings, whether
//! it is present in RAM or swapped out; a page that is neither was never touched (or was
//! given back by the balloon) and reads as zeroes, so it is skipped without reading it. Of the
//! pages that are there, those holding only zeroes are skipped too (a page the guest only
//! read maps the shared zero page; a page it zeroed needs no bytes either). Why not mincore:
//! it reports a swapped-out page as absent, which would lose that page's contents. Without
//! pagemap (no /proc), every page is read and the zero check alone decides: slower, same file.
//!
//! Records are at most [`CHUNK`] bytes, so writing streams through one buffer; restoring reads
//! each record through one buffer into guest RAM, checking it lies inside.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use crate::engine::memory::GuestRam;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

/// Bytes per page (the host's and the guest's base page).
pub const PAGE: u64 = 4096;
/// Most bytes of one record.
pub const CHUNK: u64 = 1 << 20;
/// The address that ends the records.
pub const END: u64 = u64::MAX;
/// pagemap bit: page present in RAM.
const PM_PRESENT: u64 = 1 << 63;
/// pagemap bit: page swapped out.
const PM_SWAPPED: u64 = 1 << 62;

/// What a memory section holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryTotals {
    /// Pages written.
    pub pages: u64,
    /// Records written.
    pub records: u64,
}

/// Why guest memory could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum MemoryStateError {
    /// Writing the file failed.
    #[error("cannot write guest memory to the save file")]
    Write(#[source] io::Error),
    /// Reading the file failed (or it ends early).
    #[error("cannot read guest memory from the save file")]
    Read(#[source] io::Error),
    /// A record lies outside the VM's RAM.
    #[error(
        "the save file holds {len:#x} bytes of memory at guest address {addr:#x}, outside the \
         VM's RAM: the file is damaged or belongs to a VM with more memory"
    )]
    OutsideRam {
        /// Guest address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// Guest memory could not be read or written (a vm-memory error).
    #[error("cannot access guest memory at {addr:#x}")]
    Access {
        /// Guest address.
        addr: u64,
        /// Cause.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// Reads the pagemap of this process when it can.
struct Pagemap(Option<File>);

impl Pagemap {
    fn open() -> Pagemap {
        match File::open("/proc/self/pagemap") {
            Ok(file) => Pagemap(Some(file)),
            Err(e) => {
                log::warn!("cannot read /proc/self/pagemap ({e}); scanning all guest memory");
                Pagemap(None)
            }
        }
    }

    /// For each page of `pages` host pages from `host`, whether it may hold data (present or
    /// swapped); all true without pagemap.
    fn touched(&self, host: usize, pages: usize, out: &mut Vec<bool>) {
        out.clear();
        let Some(file) = &self.0 else {
            out.resize(pages, true);
            return;
        };
        let mut raw = vec![0u8; pages * 8];
        let offset = (host as u64 / PAGE) * 8;
        if file.read_exact_at(&mut raw, offset).is_err() {
            out.resize(pages, true);
            return;
        }
        out.extend(raw.chunks_exact(8).map(|entry| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(entry);
            u64::from_le_bytes(bytes) & (PM_PRESENT | PM_SWAPPED) != 0
        }));
    }
}

/// Writes the touched, non-zero pages of `mem` as records, then the end record.
pub fn write(mem: &GuestRam, out: &mut impl Write) -> Result<MemoryTotals, MemoryStateError> {
    let pagemap = Pagemap::open();
    let mut totals = MemoryTotals::default();
    let mut buffer = vec![0u8; CHUNK as usize];
    let mut touched = Vec::new();
    for region in mem.iter() {
        let start = region.start_addr().0;
        let len = region.len();
        let host = region.as_ptr() as usize;
        let mut offset = 0u64;
        while offset < len {
            let chunk = CHUNK.min(len - offset);
            let pages = (chunk / PAGE) as usize;
            pagemap.touched(host + offset as usize, pages, &mut touched);
            if touched.iter().any(|&t| t) {
                let data = &mut buffer[..chunk as usize];
                mem.read_slice(data, GuestAddress(start + offset))
                    .map_err(|source| MemoryStateError::Access {
                        addr: start + offset,
                        source,
                    })?;
                write_runs(out, start + offset, data, &touched, &mut totals)?;
            }
            offset += chunk;
        }
    }
    out.write_all(&END.to_le_bytes())
        .and_then(|()| out.write_all(&0u64.to_le_bytes()))
        .map_err(MemoryStateError::Write)?;
    Ok(totals)
}

/// Writes the runs of pages of `data` (at guest address `addr`) that are touched and not all
/// zero, one record each.
fn write_runs(
    out: &mut impl Write,
    addr: u64,
    data: &[u8],
    touched: &[bool],
    totals: &mut MemoryTotals,
) -> Result<(), MemoryStateError> {
    let page = PAGE as usize;
    let keep = |i: usize| {
        touched.get(i).copied().unwrap_or(false)
            && data[i * page..(i + 1) * page].iter().any(|&b| b != 0)
    };
    let pages = data.len() / page;
    let mut i = 0;
    while i < pages {
        if !keep(i) {
            i += 1;
            continue;
        }
        let first = i;
        while i < pages && keep(i) {
            i += 1;
        }
        let bytes = &data[first * page..i * page];
        out.write_all(&(addr + (first * page) as u64).to_le_bytes())
            .and_then(|()| out.write_all(&(bytes.len() as u64).to_le_bytes()))
            .and_then(|()| out.write_all(bytes))
            .map_err(MemoryStateError::Write)?;
        totals.pages += (i - first) as u64;
        totals.records += 1;
    }
    Ok(())
}

/// Reads records from `input` into `mem` until the end record; every record must lie inside
/// RAM and be at most [`CHUNK`] bytes.
pub fn read(mem: &GuestRam, input: &mut impl Read) -> Result<MemoryTotals, MemoryStateError> {
    let mut totals = MemoryTotals::default();
    let mut buffer = vec![0u8; CHUNK as usize];
    loop {
        let mut header = [0u8; 16];
        input
            .read_exact(&mut header)
            .map_err(MemoryStateError::Read)?;
        let mut field = [0u8; 8];
        field.copy_from_slice(&header[..8]);
        let addr = u64::from_le_bytes(field);
        field.copy_from_slice(&header[8..]);
        let len = u64::from_le_bytes(field);
        if addr == END {
            return Ok(totals);
        }
        let inside = len <= CHUNK
            && len.is_multiple_of(PAGE)
            && addr.is_multiple_of(PAGE)
            && addr
                .checked_add(len)
                .is_some_and(|end| mem.check_range(GuestAddress(addr), len as usize) && end > addr);
        if !inside {
            return Err(MemoryStateError::OutsideRam { addr, len });
        }
        let data = &mut buffer[..len as usize];
        input.read_exact(data).map_err(MemoryStateError::Read)?;
        populate(mem, addr, len);
        mem.write_slice(data, GuestAddress(addr))
            .map_err(|source| MemoryStateError::Access { addr, source })?;
        totals.pages += len / PAGE;
        totals.records += 1;
    }
}

/// Faults in the host pages behind `len` bytes of guest RAM at `addr` in one system call
/// (`MADV_POPULATE_WRITE`), so the copy that follows takes no page fault per page. Best
/// effort: a kernel older than 5.14 refuses it and the copy faults the pages in as usual.
fn populate(mem: &GuestRam, addr: u64, len: u64) {
    let Some(region) = mem.find_region(GuestAddress(addr)) else {
        return;
    };
    let offset = addr - region.start_addr().0;
    if offset.checked_add(len).is_none_or(|end| end > region.len()) {
        return;
    }
    let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
        return;
    };
    // SAFETY: `offset..offset + len` lies inside this region's live mapping (checked above;
    // `mem` is borrowed for the call), and `addr` (so `offset`) is page aligned (the caller
    // checked). MADV_POPULATE_WRITE only faults pages in as a write would, leaving their
    // contents (zero, in a VM being restored) as they are.
    let rc = unsafe {
        libc::madvise(
            region.as_ptr().add(offset).cast::<libc::c_void>(),
            len,
            libc::MADV_POPULATE_WRITE,
        )
    };
    if rc != 0 {
        log::debug!(
            "MADV_POPULATE_WRITE: {}; the restore faults pages in one by one",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn only_written_pages_are_saved_and_they_come_back() {
        let mem = crate::engine::memory::create_guest_memory(8 * MIB).expect("map");
        mem.write_slice(&[0x11; 8192], GuestAddress(MIB))
            .expect("write");
        mem.write_slice(&[0x22; 4096], GuestAddress(5 * MIB + 4096))
            .expect("write");
        let mut read_zero = [0u8; 4096];
        mem.read_slice(&mut read_zero, GuestAddress(6 * MIB))
            .expect("read");

        let mut file = Vec::new();
        let totals = write(&mem, &mut file).expect("save");

        assert_eq!(
            totals,
            MemoryTotals {
                pages: 3,
                records: 2
            }
        );
        assert_eq!(file.len(), 2 * 16 + 3 * 4096 + 16);
        let fresh = crate::engine::memory::create_guest_memory(8 * MIB).expect("map");
        read(&fresh, &mut file.as_slice()).expect("restore");
        let mut back = [0u8; 4096];
        fresh
            .read_slice(&mut back, GuestAddress(5 * MIB + 4096))
            .expect("read");
        assert!(back.iter().all(|&b| b == 0x22));
    }

    #[test]
    fn a_record_outside_ram_is_refused() {
        let mem = crate::engine::memory::create_guest_memory(4 * MIB).expect("map");
        let mut file = Vec::new();
        file.extend_from_slice(&(4 * MIB).to_le_bytes());
        file.extend_from_slice(&PAGE.to_le_bytes());
        file.extend_from_slice(&[1; 4096]);
        let err = read(&mem, &mut file.as_slice()).expect_err("outside");
        assert!(matches!(err, MemoryStateError::OutsideRam { .. }), "{err}");
    }

    #[test]
    fn a_file_that_ends_mid_record_is_refused() {
        let mem = crate::engine::memory::create_guest_memory(4 * MIB).expect("map");
        mem.write_slice(&[7; 4096], GuestAddress(MIB))
            .expect("write");
        let mut file = Vec::new();
        write(&mem, &mut file).expect("save");
        file.truncate(100);
        let fresh = crate::engine::memory::create_guest_memory(4 * MIB).expect("map");
        assert!(matches!(
            read(&fresh, &mut file.as_slice()),
            Err(MemoryStateError::Read(_))
        ));
    }
}
