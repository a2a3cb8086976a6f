//! The save file: a fixed prefix, a JSON header, the JSON state, guest memory and a trailer
//! (docs/save-format.md describes it for people reading or checking one).
//!
//! ```text
//! 0   "VMUXSAVE"          magic
//! 8   u32 format version  [`FORMAT_VERSION`]
//! 12  u32 header bytes
//! 16  u64 state bytes
//! 24  u64 file bytes      the whole file, so a truncated copy is refused before it is read
//! 32  u32 CRC-32 of the header
//! 36  u32 CRC-32 of the state, the memory records and the trailer's page count
//! 40  u32 CRC-32 of bytes 0..40
//! 44  u32 0
//! 48  header (JSON, [`SaveHeader`]), state (JSON), memory records (memory.rs),
//!     trailer: u64 pages, "VMUXEND\0"
//! ```
//! All integers are little endian. The JSON objects refuse unknown fields: a save from a newer
//! vmux that recorded more than this one understands is refused with the field named, never
//! half-restored.
//!
//! Writing is atomic: everything goes to a hidden temporary file in the target's directory
//! (mode 0600: it holds the guest's memory), the prefix is filled in last, the file is
//! fsynced, renamed over the target, and the directory fsynced. A failure removes the
//! temporary file; a process killed mid-save leaves only the temporary file, which the next
//! save to the same path removes once its writer is gone. The target is either the previous
//! file or a complete new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::engine::memory::GuestRam;
use serde::{Deserialize, Serialize};

use super::VmState;
use super::memory::{self, MemoryStateError, MemoryTotals};

/// Magic at byte 0.
pub const MAGIC: &[u8; 8] = b"VMUXSAVE";
/// Magic at the end.
pub const END_MAGIC: &[u8; 8] = b"VMUXEND\0";
/// The layout version this vmux writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the fixed prefix.
pub const PREFIX_BYTES: usize = 48;
/// Longest header accepted, bytes (it holds a VM definition).
const MAX_HEADER_BYTES: u32 = 1 << 20;
/// Longest state accepted, bytes (a few KiB per vCPU and device).
const MAX_STATE_BYTES: u64 = 64 << 20;
/// Write buffer.
const BUFFER_BYTES: usize = 1 << 20;

/// The header: what the file is and whose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveHeader {
    /// The vmux version that wrote it.
    pub vmux_version: String,
    /// Seconds since the Unix epoch when it was written.
    pub created_at: u64,
    /// Guest RAM, bytes.
    pub memory_bytes: u64,
    /// vCPUs the VM could grow to.
    pub max_vcpus: u32,
    /// vCPUs plugged when saved.
    pub vcpus: u32,
    /// What the owner of the VM (vmd) records about it: its definition and disks, as its own
    /// JSON; the engine does not read it.
    pub owner: String,
}

/// Why a save file could not be written or read. Messages name the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SaveFileError {
    /// The file or its temporary copy could not be written.
    #[error("cannot write the save file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Guest memory could not be written.
    #[error("cannot write the save file {}", path.display())]
    WriteMemory {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: MemoryStateError,
    },
    /// The file could not be opened or read.
    #[error("cannot read the save file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Not a save file at all.
    #[error("{} is not a vmux save file (no VMUXSAVE magic)", path.display())]
    NotASave {
        /// The file.
        path: PathBuf,
    },
    /// A later format than this vmux reads.
    #[error(
        "{} was written by {writer} in save format {found}; this vmux ({ours}) reads format \
         {FORMAT_VERSION}: restore it with that vmux version or a later one",
        path.display(),
        ours = env!("CARGO_PKG_VERSION")
    )]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// Who wrote it ("vmux 0.3.0", or "a newer vmux").
        writer: String,
    },
    /// The file is shorter (or longer) than it says.
    #[error(
        "{} is {actual} bytes but its header says {expected}: the file was truncated or \
         copied incompletely; use a complete copy",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the prefix records.
        expected: u64,
        /// Bytes there are.
        actual: u64,
    },
    /// A checksum does not match.
    #[error("{} is damaged: the checksum of its {part} does not match", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Which part ("header", "state and memory").
        part: &'static str,
    },
    /// A JSON part does not parse (damaged, or fields this vmux does not know).
    #[error(
        "{} cannot be restored by this vmux ({ours}): its {part} written by vmux {writer} does \
         not fit ({reason}); restore it with vmux {writer}",
        path.display(),
        ours = env!("CARGO_PKG_VERSION")
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// Which part.
        part: &'static str,
        /// The vmux version that wrote it.
        writer: String,
        /// What serde said (names an unknown field).
        reason: String,
    },
    /// The memory section is malformed.
    #[error("{} is damaged", path.display())]
    Memory {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: MemoryStateError,
    },
}

/// What a finished save wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveTotals {
    /// File size, bytes.
    pub file_bytes: u64,
    /// Guest pages in it.
    pub pages: u64,
}

/// A writer that computes the CRC-32 of everything passing through.
struct Crc<W> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that computes the CRC-32 of everything read through it.
struct CrcReader<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The hidden temporary file a save to `path` writes first, for process `pid`.
fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.vmux-partial-{pid}"))
}

/// Removes temporary files of earlier saves to `path` whose writer no longer runs.
fn remove_stale_partials(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.vmux-partial-", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes a save file at `path` atomically: `header` (its `owner` already set), `state`, and
/// the memory of `mem`.
pub fn write(
    path: &Path,
    header: &SaveHeader,
    state: &VmState,
    mem: &GuestRam,
) -> Result<SaveTotals, SaveFileError> {
    remove_stale_partials(path);
    let temp = temp_path(path, std::process::id());
    let result = write_temp(&temp, header, state, mem).and_then(|totals| {
        let err = |source| SaveFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        fs::rename(&temp, path).map_err(err)?;
        sync_dir(path).map_err(err)?;
        Ok(totals)
    });
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_temp(
    temp: &Path,
    header: &SaveHeader,
    state: &VmState,
    mem: &GuestRam,
) -> Result<SaveTotals, SaveFileError> {
    let err = |source| SaveFileError::Write {
        path: temp.to_path_buf(),
        source,
    };
    let header_json = serde_json::to_vec(header).map_err(|e| err(io::Error::other(e)))?;
    let state_json = serde_json::to_vec(state).map_err(|e| err(io::Error::other(e)))?;
    let header_len = u32::try_from(header_json.len()).map_err(|e| err(io::Error::other(e)))?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(err)?;
    let mut out = Crc {
        inner: BufWriter::with_capacity(BUFFER_BYTES, file),
        hasher: crc32fast::Hasher::new(),
    };
    out.inner.write_all(&[0u8; PREFIX_BYTES]).map_err(err)?;
    out.inner.write_all(&header_json).map_err(err)?;
    out.write_all(&state_json).map_err(err)?;
    let totals = memory::write(mem, &mut out).map_err(|source| SaveFileError::WriteMemory {
        path: temp.to_path_buf(),
        source,
    })?;
    out.write_all(&totals.pages.to_le_bytes()).map_err(err)?;
    let body_crc = out.hasher.clone().finalize();
    out.inner.write_all(END_MAGIC).map_err(err)?;
    let mut file = out.inner.into_inner().map_err(|e| err(e.into_error()))?;
    let file_bytes = file.stream_position().map_err(err)?;
    let mut prefix = [0u8; PREFIX_BYTES];
    prefix[0..8].copy_from_slice(MAGIC);
    prefix[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    prefix[12..16].copy_from_slice(&header_len.to_le_bytes());
    prefix[16..24].copy_from_slice(&(state_json.len() as u64).to_le_bytes());
    prefix[24..32].copy_from_slice(&file_bytes.to_le_bytes());
    prefix[32..36].copy_from_slice(&crc(&header_json).to_le_bytes());
    prefix[36..40].copy_from_slice(&body_crc.to_le_bytes());
    let prefix_crc = crc(&prefix[..40]);
    prefix[40..44].copy_from_slice(&prefix_crc.to_le_bytes());
    file.seek(SeekFrom::Start(0)).map_err(err)?;
    file.write_all(&prefix).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(SaveTotals {
        file_bytes,
        pages: totals.pages,
    })
}

/// fsyncs the directory holding `path`, so the rename is durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// An opened save file: prefix, header and state read and checked; memory not yet read.
pub struct SaveFile {
    path: PathBuf,
    /// The header.
    pub header: SaveHeader,
    /// The state.
    pub state: VmState,
    body_crc: u32,
    input: CrcReader<BufReader<File>>,
}

impl std::fmt::Debug for SaveFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveFile")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// The header of the save file at `path`, without reading the rest (for `vmux restore` to
/// know the VM, and for listing).
pub fn read_header(path: &Path) -> Result<SaveHeader, SaveFileError> {
    Ok(open_checked(path)?.header)
}

/// A save file opened and checked up to its header.
struct Opened {
    /// Positioned just after the header.
    input: BufReader<File>,
    header: SaveHeader,
    /// Bytes of the state section.
    state_len: u64,
    /// CRC-32 the state, memory and page count must have.
    body_crc: u32,
}

/// Opens `path`, checks the prefix and the header; returns the reader after the header.
fn open_checked(path: &Path) -> Result<Opened, SaveFileError> {
    let read_err = |source| SaveFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let actual = file.metadata().map_err(read_err)?.len();
    let mut input = BufReader::with_capacity(BUFFER_BYTES, file);
    let mut prefix = [0u8; PREFIX_BYTES];
    if let Err(e) = input.read_exact(&mut prefix) {
        return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
            SaveFileError::NotASave {
                path: path.to_path_buf(),
            }
        } else {
            read_err(e)
        });
    }
    if &prefix[0..8] != MAGIC {
        return Err(SaveFileError::NotASave {
            path: path.to_path_buf(),
        });
    }
    let u32_at = |at: usize| {
        u32::from_le_bytes([prefix[at], prefix[at + 1], prefix[at + 2], prefix[at + 3]])
    };
    let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
    let damaged = |part| SaveFileError::Damaged {
        path: path.to_path_buf(),
        part,
    };
    if crc(&prefix[..40]) != u32_at(40) {
        return Err(damaged("header"));
    }
    let version = u32_at(8);
    let header_len = u32_at(12);
    let state_len = u64_at(16);
    let expected = u64_at(24);
    if header_len > MAX_HEADER_BYTES {
        return Err(damaged("header"));
    }
    let mut header_json = vec![0u8; header_len as usize];
    let header_read = input.read_exact(&mut header_json);
    if version > FORMAT_VERSION {
        let writer = header_read
            .ok()
            .and_then(|()| serde_json::from_slice::<serde_json::Value>(&header_json).ok())
            .and_then(|v| v.get("vmux_version")?.as_str().map(|v| format!("vmux {v}")))
            .unwrap_or_else(|| "a newer vmux".to_string());
        return Err(SaveFileError::NewerFormat {
            path: path.to_path_buf(),
            found: version,
            writer,
        });
    }
    if expected != actual {
        return Err(SaveFileError::Truncated {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    header_read.map_err(read_err)?;
    if crc(&header_json) != u32_at(32) {
        return Err(damaged("header"));
    }
    let header: SaveHeader = serde_json::from_slice(&header_json).map_err(|e| {
        let writer = serde_json::from_slice::<serde_json::Value>(&header_json)
            .ok()
            .and_then(|v| v.get("vmux_version")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "?".to_string());
        SaveFileError::Incompatible {
            path: path.to_path_buf(),
            part: "header",
            writer,
            reason: e.to_string(),
        }
    })?;
    Ok(Opened {
        input,
        header,
        state_len,
        body_crc: u32_at(36),
    })
}

impl SaveFile {
    /// Opens the save file at `path` and reads its header and state; every check that does
    /// not need the memory is done.
    pub fn open(path: &Path) -> Result<SaveFile, SaveFileError> {
        let Opened {
            input,
            header,
            state_len,
            body_crc,
        } = open_checked(path)?;
        if state_len > MAX_STATE_BYTES {
            return Err(SaveFileError::Damaged {
                path: path.to_path_buf(),
                part: "state and memory",
            });
        }
        let mut input = CrcReader {
            inner: input,
            hasher: crc32fast::Hasher::new(),
        };
        let mut state_json = vec![0u8; state_len as usize];
        input
            .read_exact(&mut state_json)
            .map_err(|source| SaveFileError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        let state: VmState =
            serde_json::from_slice(&state_json).map_err(|e| SaveFileError::Incompatible {
                path: path.to_path_buf(),
                part: "state",
                writer: header.vmux_version.clone(),
                reason: e.to_string(),
            })?;
        Ok(SaveFile {
            path: path.to_path_buf(),
            header,
            state,
            body_crc,
            input,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the memory records into `mem` and checks the trailer and the checksum. `mem` is
    /// only trustworthy when this returns `Ok`.
    pub fn read_memory(&mut self, mem: &GuestRam) -> Result<MemoryTotals, SaveFileError> {
        let path = self.path.clone();
        let totals = memory::read(mem, &mut self.input).map_err(|source| match source {
            MemoryStateError::Read(source) => SaveFileError::Read {
                path: path.clone(),
                source,
            },
            source => SaveFileError::Memory {
                path: path.clone(),
                source,
            },
        })?;
        let mut pages = [0u8; 8];
        self.input
            .read_exact(&mut pages)
            .map_err(|source| SaveFileError::Read {
                path: path.clone(),
                source,
            })?;
        let body_crc = self.input.hasher.clone().finalize();
        let mut end = [0u8; 8];
        self.input
            .inner
            .read_exact(&mut end)
            .map_err(|source| SaveFileError::Read {
                path: path.clone(),
                source,
            })?;
        if body_crc != self.body_crc
            || &end != END_MAGIC
            || u64::from_le_bytes(pages) != totals.pages
        {
            return Err(SaveFileError::Damaged {
                path,
                part: "state and memory",
            });
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests;
