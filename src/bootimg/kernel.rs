//! Is this kernel file one vmux's loader takes? The same magic-number rule as the engine's
//! loader (an ELF header, or a bzImage setup header with "HdrS" at 0x202), checked on the
//! first bytes before anything is loaded, plus names for the formats it does not take, so the
//! error can say "gzip-compressed" instead of "unknown".

use super::error::BootImageError;

/// Bytes of the kernel's start that [`check`] needs.
pub const HEAD_LEN: usize = 1024;

/// The formats the loader takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// A bzImage.
    BzImage,
    /// An ELF executable (vmlinux or a static ELF64 program).
    Elf,
}

/// Checks `head` (the kernel's first [`HEAD_LEN`] bytes, or all of it when shorter).
pub fn check(head: &[u8], path: &str) -> Result<KernelKind, BootImageError> {
    if head.starts_with(b"\x7fELF") {
        return Ok(KernelKind::Elf);
    }
    if head.get(0x202..0x206) == Some(b"HdrS") {
        return Ok(KernelKind::BzImage);
    }
    let (found, advice) = identify(head);
    Err(BootImageError::KernelFormat {
        path: path.to_string(),
        found,
        advice,
    })
}

const DECOMPRESS: &str = "decompress it on the host (e.g. `zcat`, `xz -dc`, `zstd -dc` into a vmlinux) and boot it with --kernel/--initrd, or install a distribution kernel package that ships a bzImage";

fn identify(head: &[u8]) -> (&'static str, &'static str) {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if head.is_empty() {
        return (
            "empty",
            "reinstall the kernel package inside the guest, or boot with --kernel/--initrd",
        );
    }
    if starts(&[0x1F, 0x8B]) {
        return ("gzip-compressed", DECOMPRESS);
    }
    if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        return ("xz-compressed", DECOMPRESS);
    }
    if starts(&[0x28, 0xB5, 0x2F, 0xFD]) {
        return ("zstd-compressed", DECOMPRESS);
    }
    if starts(b"BZh") {
        return ("bzip2-compressed", DECOMPRESS);
    }
    if starts(&[0x02, 0x21, 0x4C, 0x18]) || starts(&[0x04, 0x22, 0x4D, 0x18]) {
        return ("lz4-compressed", DECOMPRESS);
    }
    if starts(&[0x89, b'L', b'Z', b'O']) {
        return ("lzop-compressed", DECOMPRESS);
    }
    if starts(&[0x5D, 0x00, 0x00]) {
        return ("lzma-compressed", DECOMPRESS);
    }
    if head.get(0x38..0x3C) == Some(b"ARM\x64") {
        return (
            "an arm64 kernel Image",
            "vmux runs x86-64 guests; use the image's x86-64 (amd64) variant",
        );
    }
    if starts(b"MZ") {
        if head.get(4..8) == Some(b"zimg") {
            return (
                "an EFI zboot image (compressed kernel in a PE wrapper)",
                "boot it with --kernel/--initrd after extracting the vmlinux (e.g. with the kernel's scripts/extract-vmlinux)",
            );
        }
        return (
            "a PE/EFI executable without a Linux boot header (a unified kernel image or an EFI program)",
            "boot it with --kernel/--initrd extracted by hand (for a UKI: `objcopy -O binary --only-section=.linux`)",
        );
    }
    (
        "not a kernel format vmux recognises",
        "check that the boot entry names the kernel file, or boot with --kernel/--initrd",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_and_elf_are_taken() {
        let mut bz = vec![0u8; 1024];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(check(&bz, "/k").expect("bzImage"), KernelKind::BzImage);
        assert_eq!(
            check(b"\x7fELF\x02\x01", "/k").expect("elf"),
            KernelKind::Elf
        );
    }

    #[test]
    fn a_gzip_kernel_is_named_and_the_fix_given() {
        let err = check(&[0x1F, 0x8B, 8, 0], "/boot/vmlinux.gz").expect_err("gzip");
        let text = err.to_string();
        assert!(
            text.contains("/boot/vmlinux.gz is gzip-compressed"),
            "{text}"
        );
        assert!(text.contains("decompress it"), "{text}");
    }

    #[test]
    fn zstd_xz_pe_and_arm64_are_named() {
        let name = |head: &[u8]| match check(head, "/k") {
            Err(BootImageError::KernelFormat { found, .. }) => found,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(name(&[0x28, 0xB5, 0x2F, 0xFD, 0]), "zstd-compressed");
        assert_eq!(name(&[0xFD, b'7', b'z', b'X', b'Z', 0]), "xz-compressed");
        assert!(name(b"MZ\0\0zimg").contains("zboot"));
        let mut arm = vec![0u8; 64];
        arm[0x38..0x3C].copy_from_slice(b"ARM\x64");
        assert!(name(&arm).contains("arm64"));
        assert!(name(b"").contains("empty"));
    }
}
