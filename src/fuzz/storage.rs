//! Fuzz entry points for image files: the qcow2 header parser on its own, and whole images
//! opened through the storage layer (imago underneath) as a volume whose recorded format is
//! qcow2, then read and written.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::format::inspect as inspect_image;
use crate::storage::qcow2_header::Qcow2Header;
use crate::storage::{Detect, ImageFormat, OpenOptions, open_image};

/// Parses `data` as the start of a qcow2 file; when it parses and is supported, points it at
/// a new backing file, and the rewritten header must parse and name exactly that file.
pub fn qcow2_header(data: &[u8]) {
    let Ok(header) = Qcow2Header::parse(data) else {
        return;
    };
    if header.check_supported().is_err() {
        return;
    }
    let Ok(rewritten) = header.with_backing(data, Some(("base.qcow2", "qcow2"))) else {
        return;
    };
    let mut file = rewritten;
    // The rewrite covers the old header; the rest of the first cluster is as it was.
    if file.len() < data.len() {
        file.extend_from_slice(&data[file.len()..]);
    }
    let again = Qcow2Header::parse(&file).expect("a rewritten header parses");
    assert_eq!(again.backing_file.as_deref(), Some("base.qcow2"));
    assert_eq!(again.backing_format.as_deref(), Some("qcow2"));
    assert_eq!(again.size, header.size);
}

/// A file name of this process's own for one input, in the temp directory.
fn scratch_path() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vmux-fuzz-{}-{n}.qcow2", std::process::id()))
}

/// Writes `data` to a file and opens it as a recorded qcow2 volume, read-only then writable;
/// reads and writes a few clusters through each. No backing file is trusted, so an image that
/// names one must never open.
pub fn qcow2_open(data: &[u8]) {
    let path = scratch_path();
    if std::fs::write(&path, data).is_ok() {
        exercise(&path);
    }
    let _ = std::fs::remove_file(&path);
}

fn exercise(path: &std::path::Path) {
    let _ = inspect_image(path, Detect::ByName);
    let detect = Detect::Known(ImageFormat::Qcow2);
    for options in [OpenOptions::read_only(), OpenOptions::writable()] {
        let Ok(mut image) = open_image(path, &options.detect(detect)) else {
            continue;
        };
        let backing = inspect_image(path, detect)
            .ok()
            .and_then(|info| info.backing);
        assert!(backing.is_none(), "an untrusted backing file was opened");
        let capacity = image.capacity();
        let mut buf = vec![0u8; 4096];
        for offset in [0, capacity / 2, capacity.saturating_sub(4096)] {
            let len = (capacity - offset.min(capacity)).min(4096) as usize;
            let _ = image.read_at(offset, &mut buf[..len]);
            let _ = image.extent(offset, 1 << 20);
            if !image.read_only() {
                let _ = image.write_at(offset, &buf[..len]);
                let _ = image.write_zeroes(offset, len as u64);
                let _ = image.discard(offset, len as u64);
            }
        }
        let _ = image.flush();
    }
}
