//! Recognising and loading the boot image: a Linux bzImage, or any static x86-64 ELF64
//! executable (a Linux `vmlinux` or a guest-kit program).
//!
//! The format is decided by magic numbers alone, and everything the guest's memory map cannot
//! hold is refused here with the image named, before linux-loader copies a byte. Both formats
//! are entered in 64-bit mode: an ELF at `e_entry`, a bzImage at its 64-bit entry point
//! (`load address + 0x200`).

use super::BootError;
use crate::engine::layout;
use crate::engine::memory::GuestRam;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use std::io::Cursor;
use vm_memory::GuestAddress;

/// ELF magic at offset 0.
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
/// `EI_CLASS` value of a 64-bit ELF.
const ELF_CLASS_64: u8 = 2;
/// `EI_DATA` value of a little-endian ELF.
const ELF_DATA_LSB: u8 = 1;
/// `e_type` of an executable (not relocatable, not shared).
const ELF_TYPE_EXEC: u16 = 2;
/// `e_machine` of x86-64.
const ELF_MACHINE_X86_64: u16 = 62;
/// Program header type of a loadable segment.
const PT_LOAD: u32 = 1;
/// Size of an ELF64 file header and of one ELF64 program header.
const ELF64_EHDR_SIZE: usize = 64;
const ELF64_PHDR_SIZE: usize = 56;

/// Offset of the bzImage setup header's "HdrS" magic.
const BZIMAGE_MAGIC_OFFSET: usize = 0x202;
/// The setup header magic "HdrS".
const BZIMAGE_MAGIC: [u8; 4] = *b"HdrS";
/// `xloadflags` bit: the kernel has a 64-bit entry point at load address + 0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry point from the protected-mode kernel's load address.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// The two image formats vmux boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// A Linux bzImage (setup header with "HdrS").
    BzImage,
    /// A static x86-64 ELF64 executable.
    Elf,
}

/// Where the loaded image sits and how to enter it.
#[derive(Debug, Clone, Copy)]
pub struct LoadedImage {
    /// Guest-physical 64-bit entry point.
    pub entry: u64,
    /// First guest-physical address after everything the image occupies, including room a
    /// bzImage needs to decompress itself (`init_size`): the initrd must start above this.
    pub end: u64,
    /// The bzImage's setup header (with `code32_start` set to the load address), to be copied
    /// into the zero page; `None` for an ELF.
    pub setup_header: Option<setup_header>,
}

/// Says which format `image` is in, or why it is neither. `name` names the image in errors.
pub fn detect(image: &[u8], name: &str) -> Result<ImageKind, BootError> {
    if image.starts_with(&ELF_MAGIC) {
        return Ok(ImageKind::Elf);
    }
    if image.get(BZIMAGE_MAGIC_OFFSET..BZIMAGE_MAGIC_OFFSET + 4) == Some(&BZIMAGE_MAGIC[..]) {
        return Ok(ImageKind::BzImage);
    }
    Err(BootError::UnknownImageFormat {
        name: name.to_owned(),
    })
}

/// Loads `image` into `mem`, whose RAM below the MMIO hole ends at `low_ram_end`.
pub fn load(
    mem: &GuestRam,
    image: &[u8],
    name: &str,
    low_ram_end: u64,
) -> Result<LoadedImage, BootError> {
    match detect(image, name)? {
        ImageKind::Elf => load_elf(mem, image, name, low_ram_end),
        ImageKind::BzImage => load_bzimage(mem, image, name, low_ram_end),
    }
}

fn load_elf(
    mem: &GuestRam,
    image: &[u8],
    name: &str,
    low_ram_end: u64,
) -> Result<LoadedImage, BootError> {
    let header = ElfHeader::parse(image).map_err(|reason| unsupported_elf(name, reason))?;
    let mut end = 0u64;
    for index in 0..header.phnum {
        let segment = header
            .program_header(image, index)
            .map_err(|reason| unsupported_elf(name, reason))?;
        // linux-loader copies `filesz` bytes, so a segment whose file part is larger than its
        // memory part still occupies `filesz`.
        let size = segment.memsz.max(segment.filesz);
        if segment.kind != PT_LOAD || size == 0 {
            continue;
        }
        let seg_end = segment
            .paddr
            .checked_add(size)
            .ok_or_else(|| unsupported_elf(name, "a segment's address overflows"))?;
        if segment.paddr < layout::HIGH_RAM_START {
            return Err(unsupported_elf(
                name,
                "a segment is below 1 MiB, where the boot structures live; link it at 1 MiB",
            ));
        }
        if seg_end > low_ram_end {
            return Err(BootError::KernelTooLarge {
                name: name.to_owned(),
                needed_end: seg_end,
                ram_end: low_ram_end,
            });
        }
        end = end.max(seg_end);
    }
    if end == 0 {
        return Err(unsupported_elf(name, "it has no loadable segment"));
    }
    if header.entry < layout::HIGH_RAM_START || header.entry >= end {
        return Err(unsupported_elf(
            name,
            "its entry point is outside its loaded segments",
        ));
    }
    let loaded = Elf::load(
        mem,
        None,
        &mut Cursor::new(image),
        Some(GuestAddress(layout::HIGH_RAM_START)),
    )
    .map_err(|source| BootError::LoadKernel {
        name: name.to_owned(),
        source,
    })?;
    Ok(LoadedImage {
        entry: loaded.kernel_load.0,
        end: loaded.kernel_end.max(end),
        setup_header: None,
    })
}

fn load_bzimage(
    mem: &GuestRam,
    image: &[u8],
    name: &str,
    low_ram_end: u64,
) -> Result<LoadedImage, BootError> {
    let loaded = BzImage::load(
        mem,
        Some(GuestAddress(layout::HIGH_RAM_START)),
        &mut Cursor::new(image),
        Some(GuestAddress(layout::HIGH_RAM_START)),
    );
    let loaded = match loaded {
        Ok(loaded) => loaded,
        // The copy fails when the payload runs past the end of RAM; say so plainly.
        Err(linux_loader::loader::Error::Bzimage(
            linux_loader::loader::bzimage::Error::ReadBzImageCompressedKernel,
        )) => {
            return Err(BootError::KernelTooLarge {
                name: name.to_owned(),
                needed_end: layout::HIGH_RAM_START + image.len() as u64,
                ram_end: low_ram_end,
            });
        }
        Err(source) => {
            return Err(BootError::LoadKernel {
                name: name.to_owned(),
                source,
            });
        }
    };
    let header = loaded
        .setup_header
        .expect("the bzImage loader always returns the setup header");
    let xloadflags = header.xloadflags;
    if xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BootError::UnsupportedBzImage {
            name: name.to_owned(),
            reason: "it has no 64-bit entry point (boot protocol 2.12 or later is needed)",
        });
    }
    // The decompressor needs `init_size` bytes from the load address, more than the file.
    let init_size = u64::from(header.init_size);
    let end = loaded
        .kernel_end
        .max(loaded.kernel_load.0.saturating_add(init_size));
    if end > low_ram_end {
        return Err(BootError::KernelTooLarge {
            name: name.to_owned(),
            needed_end: end,
            ram_end: low_ram_end,
        });
    }
    Ok(LoadedImage {
        entry: loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
        end,
        setup_header: Some(header),
    })
}

fn unsupported_elf(name: &str, reason: &'static str) -> BootError {
    BootError::UnsupportedElf {
        name: name.to_owned(),
        reason,
    }
}

/// The fields of an ELF64 file header vmux checks.
struct ElfHeader {
    entry: u64,
    phoff: u64,
    phnum: u16,
}

/// The fields of an ELF64 program header vmux checks.
struct ProgramHeader {
    kind: u32,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

impl ElfHeader {
    fn parse(image: &[u8]) -> Result<ElfHeader, &'static str> {
        if image.len() < ELF64_EHDR_SIZE {
            return Err("it is shorter than an ELF header");
        }
        if image[4] != ELF_CLASS_64 {
            return Err("it is not a 64-bit ELF; build it for x86_64");
        }
        if image[5] != ELF_DATA_LSB {
            return Err("it is big-endian");
        }
        if le_u16(image, 16) != Some(ELF_TYPE_EXEC) {
            return Err("it is not a static executable (ET_EXEC); link it with -static -no-pie");
        }
        if le_u16(image, 18) != Some(ELF_MACHINE_X86_64) {
            return Err("it is not an x86-64 program");
        }
        if le_u16(image, 54) != Some(ELF64_PHDR_SIZE as u16) {
            return Err("its program header size is wrong");
        }
        Ok(ElfHeader {
            entry: le_u64(image, 24).ok_or("it is truncated")?,
            phoff: le_u64(image, 32).ok_or("it is truncated")?,
            phnum: le_u16(image, 56).ok_or("it is truncated")?,
        })
    }

    fn program_header(&self, image: &[u8], index: u16) -> Result<ProgramHeader, &'static str> {
        let offset = usize::try_from(self.phoff)
            .ok()
            .and_then(|o| o.checked_add(usize::from(index) * ELF64_PHDR_SIZE))
            .ok_or("its program headers are out of the file")?;
        let kind = le_u32(image, offset).ok_or("its program headers are out of the file")?;
        let paddr = le_u64(image, offset + 24).ok_or("its program headers are out of the file")?;
        let filesz = le_u64(image, offset + 32).ok_or("its program headers are out of the file")?;
        let memsz = le_u64(image, offset + 40).ok_or("its program headers are out of the file")?;
        Ok(ProgramHeader {
            kind,
            paddr,
            filesz,
            memsz,
        })
    }
}

fn le_bytes<const N: usize>(image: &[u8], offset: usize) -> Option<[u8; N]> {
    image.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

fn le_u16(image: &[u8], offset: usize) -> Option<u16> {
    le_bytes(image, offset).map(u16::from_le_bytes)
}

fn le_u32(image: &[u8], offset: usize) -> Option<u32> {
    le_bytes(image, offset).map(u32::from_le_bytes)
}

fn le_u64(image: &[u8], offset: usize) -> Option<u64> {
    le_bytes(image, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_memory::Bytes;

    const MIB: u64 = 1 << 20;

    /// A minimal static ELF64 with one PT_LOAD segment holding `code` at `load_addr`, entered
    /// at its first byte.
    pub(crate) fn elf_with_code(code: &[u8], load_addr: u64) -> Vec<u8> {
        let mut elf = vec![0u8; 0x1000];
        elf[..4].copy_from_slice(&ELF_MAGIC);
        elf[4] = ELF_CLASS_64;
        elf[5] = ELF_DATA_LSB;
        elf[6] = 1; // EV_CURRENT
        elf[16..18].copy_from_slice(&ELF_TYPE_EXEC.to_le_bytes());
        elf[18..20].copy_from_slice(&ELF_MACHINE_X86_64.to_le_bytes());
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[24..32].copy_from_slice(&load_addr.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf[54..56].copy_from_slice(&(ELF64_PHDR_SIZE as u16).to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        elf[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        elf[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes()); // R+X
        elf[ph + 8..ph + 16].copy_from_slice(&0x1000u64.to_le_bytes()); // p_offset
        elf[ph + 16..ph + 24].copy_from_slice(&load_addr.to_le_bytes()); // p_vaddr
        elf[ph + 24..ph + 32].copy_from_slice(&load_addr.to_le_bytes()); // p_paddr
        elf[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
        elf[ph + 40..ph + 48].copy_from_slice(&(code.len() as u64).to_le_bytes());
        elf[ph + 48..ph + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        elf.extend_from_slice(code);
        elf
    }

    /// A minimal bzImage: one setup sector after the boot sector, boot protocol 2.15 with a
    /// 64-bit entry point, and `payload` as the protected-mode kernel needing `init_size`.
    fn bzimage(payload: &[u8], xloadflags: u16, init_size: u32) -> Vec<u8> {
        let mut image = vec![0u8; 1024];
        image[0x1f1] = 1; // setup_sects
        image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes()); // version
        image[0x211] = 1; // loadflags: LOADED_HIGH
        image[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
        image[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes()); // initrd_addr_max
        image[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        image[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
        image.extend_from_slice(payload);
        image
    }

    fn memory(bytes: u64) -> GuestRam {
        crate::engine::memory::create_guest_memory(bytes).expect("map guest memory")
    }

    #[test]
    fn elf_magic_is_detected() {
        let elf = elf_with_code(&[0xf4], MIB);
        assert_eq!(detect(&elf, "x").ok(), Some(ImageKind::Elf));
    }

    #[test]
    fn bzimage_magic_is_detected() {
        let mut image = vec![0u8; 0x400];
        image[BZIMAGE_MAGIC_OFFSET..BZIMAGE_MAGIC_OFFSET + 4].copy_from_slice(b"HdrS");
        assert_eq!(detect(&image, "x").ok(), Some(ImageKind::BzImage));
    }

    #[test]
    fn bzimage_payload_is_loaded_at_one_mib_and_entered_at_its_64_bit_entry() {
        let mem = memory(8 * MIB);
        let image = bzimage(&[0x0f, 0x0b, 0xf4], XLF_KERNEL_64, 0x1000);
        let loaded = load(&mem, &image, "bz", 8 * MIB).expect("load");
        let mut payload = [0u8; 3];
        mem.read_slice(&mut payload, GuestAddress(MIB))
            .expect("read");
        assert_eq!(payload, [0x0f, 0x0b, 0xf4]);
        assert_eq!(loaded.entry, MIB + 0x200);
        assert_eq!(loaded.end, MIB + 0x1000, "room for init_size");
        let version = loaded.setup_header.expect("bzImage header").version;
        assert_eq!(version, 0x020f);
    }

    #[test]
    fn bzimage_without_a_64_bit_entry_is_refused() {
        let image = bzimage(&[0xf4], 0, 0x1000);
        let err = load(&memory(4 * MIB), &image, "old", 4 * MIB).expect_err("32-bit only");
        assert!(err.to_string().contains("64-bit entry point"), "{err}");
    }

    #[test]
    fn bzimage_needing_more_than_ram_to_decompress_is_too_large() {
        let image = bzimage(&[0xf4], XLF_KERNEL_64, 16 << 20);
        let err = load(&memory(4 * MIB), &image, "big", 4 * MIB).expect_err("too large");
        assert!(matches!(err, BootError::KernelTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("give the VM more memory"), "{err}");
    }

    #[test]
    fn unknown_format_is_refused_naming_the_file() {
        let err = detect(b"#!/bin/sh\necho hi\n", "/tmp/script.sh").expect_err("not an image");
        assert!(err.to_string().contains("/tmp/script.sh"), "{err}");
    }

    #[test]
    fn elf_is_loaded_at_its_address_and_entered_there() {
        let mem = memory(4 * MIB);
        let elf = elf_with_code(&[0x90, 0xf4], MIB);
        let loaded = load(&mem, &elf, "prog", 4 * MIB).expect("load");
        let mut code = [0u8; 2];
        mem.read_slice(&mut code, GuestAddress(MIB)).expect("read");
        assert_eq!(code, [0x90, 0xf4]);
        assert_eq!(loaded.entry, MIB);
        assert_eq!(loaded.end, MIB + 2);
        assert!(loaded.setup_header.is_none());
    }

    #[test]
    fn elf_beyond_ram_is_too_large() {
        let mem = memory(2 * MIB);
        let elf = elf_with_code(&[0xf4], 2 * MIB);
        let err = load(&mem, &elf, "big", 2 * MIB).expect_err("does not fit");
        assert!(matches!(err, BootError::KernelTooLarge { .. }), "{err}");
    }

    #[test]
    fn file_part_larger_than_memory_part_counts_toward_the_size() {
        let mem = memory(2 * MIB);
        let mut elf = elf_with_code(&[0xf4; 16], 2 * MIB - 8);
        // p_memsz = 4 fits below 2 MiB, but p_filesz = 16 does not.
        elf[64 + 40..64 + 48].copy_from_slice(&4u64.to_le_bytes());
        let err = load(&mem, &elf, "odd", 2 * MIB).expect_err("does not fit");
        assert!(matches!(err, BootError::KernelTooLarge { .. }), "{err}");
    }

    #[test]
    fn elf_below_one_mib_is_refused() {
        let mem = memory(2 * MIB);
        let elf = elf_with_code(&[0xf4], 0x8000);
        let err = load(&mem, &elf, "low", 2 * MIB).expect_err("overlaps boot data");
        assert!(err.to_string().contains("1 MiB"), "{err}");
    }

    #[test]
    fn thirty_two_bit_elf_is_refused() {
        let mut elf = elf_with_code(&[0xf4], MIB);
        elf[4] = 1;
        let err = detect(&elf, "x")
            .and_then(|_| load(&memory(2 * MIB), &elf, "x", 2 * MIB))
            .expect_err("32-bit");
        assert!(err.to_string().contains("64-bit"), "{err}");
    }

    #[test]
    fn truncated_program_headers_are_refused_without_panic() {
        let elf = elf_with_code(&[0xf4], MIB);
        let err = load(&memory(2 * MIB), &elf[..80], "cut", 2 * MIB).expect_err("truncated");
        assert!(matches!(err, BootError::UnsupportedElf { .. }), "{err}");
    }
}
