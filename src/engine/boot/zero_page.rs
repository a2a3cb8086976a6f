//! The Linux zero page (`struct boot_params`) handed to the guest in RSI.
//!
//! For a bzImage it starts from the image's own setup header (the kernel reads its loadflags,
//! alignment and version back from it); for an ELF it starts from a fresh header carrying the
//! magic numbers Linux checks. Either way the loader fields, command line, initrd, RSDP and e820
//! map are filled in here, as a pure function so the bytes can be tested without a VM.

use crate::engine::layout;
use crate::engine::memory::E820Entry;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

/// `type_of_loader` of a boot loader without an assigned id.
const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// `boot_flag` magic (the old boot sector signature).
const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header` magic "HdrS".
const HEADER_MAGIC: u32 = 0x5372_6448;
/// Physical alignment a fresh header advertises (the kernel's default, 16 MiB).
const DEFAULT_KERNEL_ALIGNMENT: u32 = 0x0100_0000;
/// Number of e820 entries the zero page holds.
pub const E820_MAX_ENTRIES: usize = 128;

/// An initrd already copied into guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdPlacement {
    /// Guest-physical start address (page aligned).
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Builds the zero page for a kernel whose bzImage header is `header` (`None` for an ELF),
/// with a command line of `cmdline_len` bytes (excluding the NUL) at
/// [`layout::CMDLINE_START`], an optional initrd and the given e820 map (at most
/// [`E820_MAX_ENTRIES`] entries are kept).
pub fn build(
    header: Option<setup_header>,
    cmdline_len: usize,
    initrd: Option<InitrdPlacement>,
    e820: &[E820Entry],
) -> boot_params {
    let hdr = match header {
        Some(header) => header,
        None => setup_header {
            kernel_alignment: DEFAULT_KERNEL_ALIGNMENT,
            ..setup_header::default()
        },
    };
    let mut params = boot_params {
        hdr,
        ..boot_params::default()
    };
    params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    params.hdr.boot_flag = BOOT_FLAG_MAGIC;
    params.hdr.header = HEADER_MAGIC;
    params.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some(initrd) = initrd {
        // Callers place the initrd below the MMIO hole, so both fit in 32 bits.
        params.hdr.ramdisk_image = initrd.addr as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }
    params.acpi_rsdp_addr = layout::RSDP_START;
    let count = e820.len().min(E820_MAX_ENTRIES);
    for (slot, entry) in params.e820_table.iter_mut().zip(&e820[..count]) {
        *slot = boot_e820_entry {
            addr: entry.addr,
            size: entry.size,
            r#type: entry.kind,
        };
    }
    params.e820_entries = count as u8;
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::e820_map;
    use vm_memory::ByteValued;

    const MIB: u64 = 1 << 20;

    fn u32_at(bytes: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
    }

    fn u64_at(bytes: &[u8], offset: usize) -> u64 {
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn elf_zero_page_carries_linux_magics_at_their_offsets() {
        let params = build(None, 0, None, &[]);
        let bytes = params.as_slice();
        assert_eq!(&bytes[0x1fe..0x200], &[0x55, 0xaa]);
        assert_eq!(&bytes[0x202..0x206], b"HdrS");
        assert_eq!(bytes[0x210], 0xff, "type_of_loader");
    }

    #[test]
    fn command_line_and_rsdp_are_recorded() {
        let params = build(None, 42, None, &[]);
        let bytes = params.as_slice();
        assert_eq!(u32_at(bytes, 0x228), 0x2_0000, "cmd_line_ptr");
        assert_eq!(u32_at(bytes, 0x238), 42, "cmdline_size");
        assert_eq!(u64_at(bytes, 0x070), 0xe_0000, "acpi_rsdp_addr");
    }

    #[test]
    fn initrd_location_is_recorded() {
        let initrd = InitrdPlacement {
            addr: 0x0700_0000,
            size: 0x1234,
        };
        let params = build(None, 0, Some(initrd), &[]);
        let bytes = params.as_slice();
        assert_eq!(u32_at(bytes, 0x218), 0x0700_0000, "ramdisk_image");
        assert_eq!(u32_at(bytes, 0x21c), 0x1234, "ramdisk_size");
    }

    #[test]
    fn e820_table_is_written_as_twenty_byte_entries() {
        let map = e820_map(64 * MIB);
        let params = build(None, 0, None, &map);
        let bytes = params.as_slice();
        assert_eq!(bytes[0x1e8] as usize, map.len());
        let third = 0x2d0 + 2 * 20;
        assert_eq!(u64_at(bytes, third), MIB);
        assert_eq!(u64_at(bytes, third + 8), 63 * MIB);
        assert_eq!(u32_at(bytes, third + 16), 1);
    }

    #[test]
    fn bzimage_header_fields_are_kept() {
        let header = setup_header {
            version: 0x020f,
            loadflags: 0x01,
            ..setup_header::default()
        };
        let params = build(Some(header), 0, None, &[]);
        let version = params.hdr.version;
        let loadflags = params.hdr.loadflags;
        assert_eq!((version, loadflags), (0x020f, 0x01));
    }
}
