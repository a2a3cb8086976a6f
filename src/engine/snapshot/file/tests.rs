//! The save file format without KVM: a state with no vCPUs or devices and a few pages of
//! memory, written, read back, and damaged in every way the format must notice.

use std::path::{Path, PathBuf};

use crate::engine::memory::GuestRam;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::engine::snapshot::{
    Blob, CpuHotplugState, GedState, PciHotplugState, PlatformState, SerialState, VmState,
};

const MIB: u64 = 1 << 20;

fn state() -> VmState {
    VmState {
        vcpus: Vec::new(),
        platform: PlatformState {
            pic_master: Blob(vec![1, 2]),
            pic_slave: Blob::default(),
            ioapic: Blob::default(),
            pit: Blob::default(),
            clock_ns: 42,
        },
        serial: SerialState::default(),
        ged: GedState { pending: 8 },
        cpu_hotplug: CpuHotplugState::default(),
        pci_hotplug: PciHotplugState::default(),
        pci: Vec::new(),
    }
}

fn header() -> SaveHeader {
    SaveHeader {
        vmux_version: env!("CARGO_PKG_VERSION").into(),
        created_at: 1,
        memory_bytes: 8 * MIB,
        max_vcpus: 4,
        vcpus: 1,
        owner: "{\"vm\":\"t\"}".into(),
    }
}

fn memory() -> GuestRam {
    let mem = crate::engine::memory::create_guest_memory(8 * MIB).expect("map");
    mem.write_slice(&[0x5a; 3 * 4096], GuestAddress(2 * MIB))
        .expect("write");
    mem
}

fn saved(dir: &Path) -> PathBuf {
    let path = dir.join("vm.save");
    write(&path, &header(), &state(), &memory()).expect("save");
    path
}

fn restore(path: &Path) -> Result<GuestRam, SaveFileError> {
    let mut file = SaveFile::open(path)?;
    let mem = crate::engine::memory::create_guest_memory(8 * MIB).expect("map");
    file.read_memory(&mem)?;
    Ok(mem)
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at as usize] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn a_save_reads_back_with_its_header_state_and_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());

    let file = SaveFile::open(&path).expect("open");
    assert_eq!(file.header, header());
    assert_eq!(file.state, state());
    let mem = restore(&path).expect("restore");
    let mut back = [0u8; 4096];
    mem.read_slice(&mut back, GuestAddress(2 * MIB + 8192))
        .expect("read");
    assert!(back.iter().all(|&b| b == 0x5a));
}

#[test]
fn the_file_holds_the_touched_pages_and_little_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let size = std::fs::metadata(&path).expect("stat").len();
    assert!((3 * 4096..4 * 4096).contains(&size), "{size} bytes");
}

#[test]
fn the_file_and_nothing_else_is_left_and_only_its_owner_reads_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["vm.save"]);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_file_that_is_not_a_save_is_refused_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"hello").expect("write");
    let err = SaveFile::open(&path).expect_err("not a save");
    assert!(err.to_string().contains("is not a vmux save file"), "{err}");
}

#[test]
fn a_truncated_save_is_refused_naming_both_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let size = std::fs::metadata(&path).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(size - 5000).expect("truncate");

    let err = SaveFile::open(&path).expect_err("truncated");

    let text = err.to_string();
    assert!(text.contains("truncated"), "{text}");
    assert!(text.contains(&size.to_string()), "{text}");
}

#[test]
fn a_flipped_bit_in_memory_is_refused_as_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let size = std::fs::metadata(&path).expect("stat").len();
    flip_byte(&path, size - 4096);

    let err = restore(&path).expect_err("damaged");
    assert!(err.to_string().contains("is damaged"), "{err}");
}

#[test]
fn a_flipped_bit_in_the_header_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    flip_byte(&path, PREFIX_BYTES as u64 + 5);

    let err = SaveFile::open(&path).expect_err("damaged");
    assert!(err.to_string().contains("checksum of its header"), "{err}");
}

#[test]
fn a_newer_format_names_the_vmux_that_wrote_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let prefix_crc = crc32fast::hash(&bytes[..40]);
    bytes[40..44].copy_from_slice(&prefix_crc.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");

    let err = SaveFile::open(&path).expect_err("newer");
    let text = err.to_string();
    assert!(text.contains("save format 7"), "{text}");
    assert!(
        text.contains(&format!("vmux {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}

#[test]
fn a_state_field_this_vmux_does_not_know_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.save");
    write(&path, &header(), &state(), &memory()).expect("save");
    // Rewrite the file with an extra state field and fresh checksums, as a newer vmux would.
    let file = SaveFile::open(&path).expect("open");
    let mut state_json = serde_json::to_value(&file.state).expect("json");
    state_json["tpm"] = serde_json::json!({"version": 2});
    drop(file);
    let bytes = std::fs::read(&path).expect("read");
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4")) as usize;
    let state_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8")) as usize;
    let new_state = serde_json::to_vec(&state_json).expect("json");
    let body_start = PREFIX_BYTES + header_len;
    let mut out = bytes[..body_start].to_vec();
    out.extend_from_slice(&new_state);
    out.extend_from_slice(&bytes[body_start + state_len..]);
    let len = out.len() as u64;
    out[16..24].copy_from_slice(&(new_state.len() as u64).to_le_bytes());
    out[24..32].copy_from_slice(&len.to_le_bytes());
    let prefix_crc = crc32fast::hash(&out[..40]);
    out[40..44].copy_from_slice(&prefix_crc.to_le_bytes());
    std::fs::write(&path, out).expect("write");

    let err = SaveFile::open(&path).expect_err("unknown field");
    let text = err.to_string();
    assert!(text.contains("unknown field `tpm`"), "{text}");
    assert!(text.contains("restore it with vmux"), "{text}");
}

#[test]
fn a_failed_save_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("vm.save");
    assert!(write(&path, &header(), &state(), &memory()).is_err());
    assert!(!dir.path().join("missing-dir").exists());
}

#[test]
fn a_save_over_an_old_one_replaces_it_and_clears_dead_partials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = saved(dir.path());
    // A partial file of a writer that no longer runs (pid numbers wrap far below this).
    let stale = dir.path().join(".vm.save.vmux-partial-4194304999");
    std::fs::write(&stale, b"half").expect("write");

    let mut newer = header();
    newer.created_at = 2;
    write(&path, &newer, &state(), &memory()).expect("save again");

    assert_eq!(SaveFile::open(&path).expect("open").header.created_at, 2);
    assert!(!stale.exists());
}
