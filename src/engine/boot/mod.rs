//! Everything written into guest memory before the first instruction runs, and the boot
//! vCPU's register state: the kernel or program image, the initrd, the command line, the zero
//! page with its e820 map, the GDT/IDT and the identity-map page tables.
//!
//! [`load`] does the memory part for a [`BootSpec`]; `regs`, `msrs` and `lapic` program vCPUs.
//! The addresses all come from [`layout`].

pub mod gdt;
pub mod image;
pub mod lapic;
pub mod msrs;
pub mod paging;
pub mod regs;
pub mod zero_page;

use super::BootSpec;
use super::layout;
use super::memory;
use crate::engine::memory::GuestRam;
use std::fs::File;
use std::path::{Path, PathBuf};
use vm_memory::{Bytes, GuestAddress};
use zero_page::InitrdPlacement;

/// The name errors use for [`BootSpec::Image`].
const BUILT_IN_IMAGE_NAME: &str = "the built-in guest image";
/// Where an initrd may end when the kernel does not say (`initrd_addr_max` of protocols before
/// 2.03, and of every ELF image).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;
/// Initrds are page aligned.
const PAGE: u64 = 0x1000;

/// Errors preparing the guest's memory for boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel file could not be read.
    #[error("cannot read kernel {path}: check that the file exists and is readable")]
    ReadKernel {
        /// The kernel path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image is neither a bzImage nor an ELF.
    #[error(
        "{name} is neither a Linux bzImage nor an x86-64 ELF executable: \
         point the VM at a bzImage, a vmlinux or a static ELF64 program"
    )]
    UnknownImageFormat {
        /// The image's path or description.
        name: String,
    },
    /// An ELF that cannot be booted.
    #[error("cannot boot ELF {name}: {reason}")]
    UnsupportedElf {
        /// The image's path or description.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A bzImage that cannot be booted.
    #[error("cannot boot bzImage {name}: {reason}")]
    UnsupportedBzImage {
        /// The image's path or description.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The image does not fit in RAM below the MMIO hole.
    #[error(
        "kernel {name} needs guest memory up to {needed_mib} MiB but the VM has only \
         {ram_mib} MiB: give the VM more memory",
        needed_mib = needed_end.div_ceil(1 << 20),
        ram_mib = ram_end >> 20
    )]
    KernelTooLarge {
        /// The image's path or description.
        name: String,
        /// First guest-physical address after the image, bytes.
        needed_end: u64,
        /// End of RAM below the MMIO hole, bytes.
        ram_end: u64,
    },
    /// linux-loader refused the image.
    #[error("cannot load kernel {name}")]
    LoadKernel {
        /// The image's path or description.
        name: String,
        /// What linux-loader reported.
        #[source]
        source: linux_loader::loader::Error,
    },
    /// The initrd could not be read.
    #[error("cannot read initrd {path}: check that the file exists and is readable")]
    ReadInitrd {
        /// The initrd path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The initrd does not fit between the kernel and the top of low RAM.
    #[error(
        "initrd {path} ({size_mib} MiB) does not fit in the {available_mib} MiB of guest memory \
         above the kernel: give the VM more memory or use a smaller initrd",
        size_mib = size.div_ceil(1 << 20),
        available_mib = available >> 20
    )]
    InitrdDoesNotFit {
        /// The initrd path.
        path: PathBuf,
        /// Its size, bytes.
        size: u64,
        /// Room between the kernel and the highest address an initrd may use, bytes.
        available: u64,
    },
    /// The command line does not fit its buffer.
    #[error(
        "the kernel command line is {len} bytes but at most {max} fit: shorten it",
        max = layout::CMDLINE_MAX_SIZE - 1
    )]
    CmdlineTooLong {
        /// Its length, bytes.
        len: usize,
    },
    /// The command line contains a NUL byte, which would cut it short.
    #[error("the kernel command line contains a NUL byte: remove it")]
    CmdlineHasNul,
    /// Scratch memory to check a kernel in could not be mapped.
    #[error("cannot map {} MiB of scratch memory to check the kernel in", bytes >> 20)]
    ScratchMemory {
        /// Bytes asked for.
        bytes: u64,
        /// Why the mapping failed.
        #[source]
        source: Box<memory::MemoryError>,
    },
    /// Writing a boot structure into guest memory failed.
    #[error("cannot write the {what} into guest memory")]
    WriteGuestMemory {
        /// Which structure.
        what: &'static str,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// What the vCPU setup needs from a loaded boot image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfo {
    /// Guest-physical 64-bit entry point of the boot vCPU.
    pub entry: u64,
}

/// Writes the boot image described by `boot` and every boot structure into `mem`, a VM with
/// `memory_bytes` of RAM.
pub fn load(mem: &GuestRam, boot: &BootSpec, memory_bytes: u64) -> Result<BootInfo, BootError> {
    let low_ram_end = memory::low_ram_end(memory_bytes);
    let (loaded, cmdline, initrd) = match boot {
        BootSpec::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            check_cmdline(cmdline)?;
            let bytes = std::fs::read(kernel).map_err(|source| BootError::ReadKernel {
                path: kernel.clone(),
                source,
            })?;
            let name = kernel.display().to_string();
            let loaded = image::load(mem, &bytes, &name, low_ram_end)?;
            let placement = match initrd {
                Some(path) => Some(load_initrd(mem, path, &loaded, low_ram_end)?),
                None => None,
            };
            (loaded, cmdline, placement)
        }
        BootSpec::Loaded {
            name,
            kernel,
            initrd,
            cmdline,
        } => {
            check_cmdline(cmdline)?;
            let loaded = image::load(mem, kernel, name, low_ram_end)?;
            let placement = match initrd {
                Some(bytes) => Some(copy_initrd(mem, bytes, name, &loaded, low_ram_end)?),
                None => None,
            };
            (loaded, cmdline, placement)
        }
        BootSpec::Image { elf, cmdline } => {
            check_cmdline(cmdline)?;
            let loaded = image::load(mem, elf, BUILT_IN_IMAGE_NAME, low_ram_end)?;
            (loaded, cmdline, None)
        }
    };
    write_boot_structures(mem, &loaded, cmdline, initrd, memory_bytes)?;
    Ok(BootInfo {
        entry: loaded.entry,
    })
}

/// Checks, without a VM, that the kernel at `path` is an image this engine boots in a VM with
/// `memory_bytes` of RAM: the loader [`load`] uses runs on it into scratch memory laid out
/// like the VM's (mapped lazily; only the image's own bytes are touched), so a file `start`
/// would refuse (empty, random, 32-bit, too large) is refused when it is defined.
pub fn check_kernel(path: &Path, memory_bytes: u64) -> Result<(), BootError> {
    let bytes = std::fs::read(path).map_err(|source| BootError::ReadKernel {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    // The format is decided before any memory is mapped: most bad files stop here.
    image::detect(&bytes, &name)?;
    let low_ram_end = memory::low_ram_end(memory_bytes);
    let range = memory::RamRange {
        start: 0,
        len: low_ram_end,
    };
    let scratch = memory::map_ranges(&[range]).map_err(|source| BootError::ScratchMemory {
        bytes: low_ram_end,
        source: Box::new(source),
    })?;
    image::load(&scratch, &bytes, &name, low_ram_end).map(drop)
}

fn check_cmdline(cmdline: &str) -> Result<(), BootError> {
    if cmdline.len() >= layout::CMDLINE_MAX_SIZE {
        return Err(BootError::CmdlineTooLong { len: cmdline.len() });
    }
    if cmdline.as_bytes().contains(&0) {
        return Err(BootError::CmdlineHasNul);
    }
    Ok(())
}

/// Where an initrd of `size` bytes goes: as high as possible, page aligned, ending at or below
/// the top of low RAM and the kernel's `initrd_addr_max`, and starting above the kernel
/// (`image_end`). `None` when it does not fit.
pub fn place_initrd(
    size: u64,
    image_end: u64,
    low_ram_end: u64,
    initrd_addr_max: Option<u32>,
) -> Option<u64> {
    let addr_max = match initrd_addr_max {
        Some(max) if max != 0 => u64::from(max),
        _ => DEFAULT_INITRD_ADDR_MAX,
    };
    let limit = low_ram_end.min(addr_max.saturating_add(1));
    let start = limit.checked_sub(size)? & !(PAGE - 1);
    (start >= image_end.next_multiple_of(PAGE)).then_some(start)
}

/// Where an initrd of `size` bytes goes above `loaded`, or the error naming `path`.
fn initrd_address(
    size: u64,
    path: &Path,
    loaded: &image::LoadedImage,
    low_ram_end: u64,
) -> Result<u64, BootError> {
    let addr_max = loaded.setup_header.map(|h| h.initrd_addr_max);
    place_initrd(size, loaded.end, low_ram_end, addr_max).ok_or_else(|| {
        let top = low_ram_end.min(addr_max.map_or(DEFAULT_INITRD_ADDR_MAX, u64::from) + 1);
        BootError::InitrdDoesNotFit {
            path: path.to_owned(),
            size,
            available: top.saturating_sub(loaded.end),
        }
    })
}

/// Copies an initrd held in memory (`BootSpec::Loaded`) above the kernel.
fn copy_initrd(
    mem: &GuestRam,
    bytes: &[u8],
    name: &str,
    loaded: &image::LoadedImage,
    low_ram_end: u64,
) -> Result<InitrdPlacement, BootError> {
    let size = bytes.len() as u64;
    let path = PathBuf::from(format!("the initrd of {name}"));
    let addr = initrd_address(size, &path, loaded, low_ram_end)?;
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|source| BootError::WriteGuestMemory {
            what: "initrd",
            source,
        })?;
    Ok(InitrdPlacement { addr, size })
}

fn load_initrd(
    mem: &GuestRam,
    path: &Path,
    loaded: &image::LoadedImage,
    low_ram_end: u64,
) -> Result<InitrdPlacement, BootError> {
    let read_error = |source| BootError::ReadInitrd {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    let addr = initrd_address(size, path, loaded, low_ram_end)?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, size as usize)
        .map_err(|source| match source {
            vm_memory::GuestMemoryError::IOError(io) => read_error(io),
            other => BootError::WriteGuestMemory {
                what: "initrd",
                source: other,
            },
        })?;
    Ok(InitrdPlacement { addr, size })
}

fn write_boot_structures(
    mem: &GuestRam,
    loaded: &image::LoadedImage,
    cmdline: &str,
    initrd: Option<InitrdPlacement>,
    memory_bytes: u64,
) -> Result<(), BootError> {
    let write = |what: &'static str, bytes: &[u8], addr: u64| {
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(|source| BootError::WriteGuestMemory { what, source })
    };
    let mut cmdline_bytes = cmdline.as_bytes().to_vec();
    cmdline_bytes.push(0);
    write("command line", &cmdline_bytes, layout::CMDLINE_START)?;
    write("boot GDT", &gdt::gdt_bytes(), layout::BOOT_GDT_START)?;
    write("boot IDT", &[0u8; 8], layout::BOOT_IDT_START)?;
    for (addr, table) in paging::identity_map() {
        write("boot page tables", &table, addr)?;
    }
    let params = zero_page::build(
        loaded.setup_header,
        cmdline.len(),
        initrd,
        &memory::e820_map(memory_bytes),
    );
    mem.write_obj(params, GuestAddress(layout::ZERO_PAGE_START))
        .map_err(|source| BootError::WriteGuestMemory {
            what: "zero page",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MIB: u64 = 1 << 20;

    fn spec_with_cmdline(cmdline: String) -> BootSpec {
        BootSpec::Image {
            elf: Arc::from(image::tests::elf_with_code(&[0xf4], MIB)),
            cmdline,
        }
    }

    #[test]
    fn initrd_goes_to_the_top_of_low_ram_page_aligned() {
        let addr = place_initrd(0x1800, 2 * MIB, 64 * MIB, None);
        assert_eq!(addr, Some(64 * MIB - 0x2000));
    }

    #[test]
    fn initrd_respects_the_kernels_address_limit() {
        let addr = place_initrd(0x1000, 2 * MIB, 1 << 30, Some(0x0fff_ffff));
        assert_eq!(addr, Some(0x1000_0000 - 0x1000));
    }

    #[test]
    fn initrd_overlapping_the_kernel_does_not_fit() {
        assert_eq!(place_initrd(60 * MIB, 5 * MIB, 64 * MIB, None), None);
    }

    #[test]
    fn initrd_larger_than_memory_does_not_fit() {
        assert_eq!(place_initrd(u64::MAX, MIB, 64 * MIB, None), None);
    }

    #[test]
    fn command_line_of_maximum_length_is_refused() {
        let mem = memory::create_guest_memory(4 * MIB).expect("map");
        let spec = spec_with_cmdline("x".repeat(layout::CMDLINE_MAX_SIZE));
        let err = load(&mem, &spec, 4 * MIB).expect_err("too long");
        assert!(
            matches!(err, BootError::CmdlineTooLong { len: 2048 }),
            "{err}"
        );
    }

    #[test]
    fn command_line_is_written_nul_terminated() {
        let mem = memory::create_guest_memory(4 * MIB).expect("map");
        load(&mem, &spec_with_cmdline("console=ttyS0".into()), 4 * MIB).expect("load");
        let mut bytes = [0xaau8; 14];
        mem.read_slice(&mut bytes, GuestAddress(layout::CMDLINE_START))
            .expect("read");
        assert_eq!(&bytes, b"console=ttyS0\0");
    }

    #[test]
    fn missing_kernel_file_names_the_path() {
        let mem = memory::create_guest_memory(4 * MIB).expect("map");
        let spec = BootSpec::Kernel {
            kernel: PathBuf::from("/nonexistent/vmlinuz"),
            initrd: None,
            cmdline: String::new(),
        };
        let err = load(&mem, &spec, 4 * MIB).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/vmlinuz"), "{err}");
    }

    #[test]
    fn missing_initrd_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("prog.elf");
        std::fs::write(&kernel, image::tests::elf_with_code(&[0xf4], MIB)).expect("write");
        let mem = memory::create_guest_memory(4 * MIB).expect("map");
        let spec = BootSpec::Kernel {
            kernel,
            initrd: Some(dir.path().join("missing.cpio")),
            cmdline: String::new(),
        };
        let err = load(&mem, &spec, 4 * MIB).expect_err("missing initrd");
        assert!(err.to_string().contains("missing.cpio"), "{err}");
    }

    #[test]
    fn initrd_is_copied_and_recorded_in_the_zero_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("prog.elf");
        let initrd = dir.path().join("initrd");
        std::fs::write(&kernel, image::tests::elf_with_code(&[0xf4], MIB)).expect("write");
        std::fs::write(&initrd, b"initrd contents").expect("write");
        let mem = memory::create_guest_memory(8 * MIB).expect("map");
        let spec = BootSpec::Kernel {
            kernel,
            initrd: Some(initrd),
            cmdline: String::new(),
        };
        load(&mem, &spec, 8 * MIB).expect("load");
        let image: u32 = mem
            .read_obj(GuestAddress(layout::ZERO_PAGE_START + 0x218))
            .expect("ramdisk_image");
        let size: u32 = mem
            .read_obj(GuestAddress(layout::ZERO_PAGE_START + 0x21c))
            .expect("ramdisk_size");
        let mut contents = [0u8; 15];
        mem.read_slice(&mut contents, GuestAddress(u64::from(image)))
            .expect("read");
        assert_eq!((u64::from(image), size), (8 * MIB - 0x1000, 15));
        assert_eq!(&contents, b"initrd contents");
    }

    #[test]
    fn a_kernel_and_initrd_held_in_memory_load_like_files() {
        let mem = memory::create_guest_memory(8 * MIB).expect("map");
        let spec = BootSpec::Loaded {
            name: "/boot/vmlinuz in web1.qcow2".into(),
            kernel: Arc::new(image::tests::elf_with_code(&[0xf4], MIB)),
            initrd: Some(Arc::new(b"from the image".to_vec())),
            cmdline: "root=UUID=1 console=ttyS0".into(),
        };
        let info = load(&mem, &spec, 8 * MIB).expect("load");
        assert_eq!(info.entry, MIB);
        let image: u32 = mem
            .read_obj(GuestAddress(layout::ZERO_PAGE_START + 0x218))
            .expect("ramdisk_image");
        let mut contents = [0u8; 14];
        mem.read_slice(&mut contents, GuestAddress(u64::from(image)))
            .expect("read");
        assert_eq!(&contents, b"from the image");
        let mut cmdline = [0u8; 26];
        mem.read_slice(&mut cmdline, GuestAddress(layout::CMDLINE_START))
            .expect("read");
        assert_eq!(&cmdline, b"root=UUID=1 console=ttyS0\0");
    }

    #[test]
    fn an_initrd_in_memory_too_large_for_ram_names_the_kernel() {
        let mem = memory::create_guest_memory(4 * MIB).expect("map");
        let spec = BootSpec::Loaded {
            name: "/boot/vmlinuz in web1.qcow2".into(),
            kernel: Arc::new(image::tests::elf_with_code(&[0xf4], MIB)),
            initrd: Some(Arc::new(vec![0; 8 << 20])),
            cmdline: String::new(),
        };
        let err = load(&mem, &spec, 4 * MIB).expect_err("does not fit");
        assert!(
            err.to_string()
                .contains("the initrd of /boot/vmlinuz in web1.qcow2"),
            "{err}"
        );
    }
}
