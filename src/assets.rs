//! Files built into the vmux binary: the demo guest, so that a fresh install has a VM to
//! start and a console to type into.
//!
//! The demo guest's source is assets/demo/demo.rs, a guest-kit program (tests/guests/kit)
//! that build.rs compiles to `$OUT_DIR/guests/demo.elf`; tests/guests/README.md describes it.

/// The demo guest: a static ELF64 x86-64 executable linked at 1 MiB, booted like any other
/// kernel image (`BootSpec::Image`). Its command line is ignored.
pub fn demo_guest() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/guests/demo.elf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_guest_is_a_static_elf64_x86_64_executable_entered_at_1_mib() {
        let elf = demo_guest();

        assert_eq!(&elf[..4], b"\x7fELF", "ELF magic");
        assert_eq!(elf[4], 2, "64-bit class");
        assert_eq!(u16::from_le_bytes([elf[16], elf[17]]), 2, "ET_EXEC");
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "EM_X86_64");
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry, 0x10_0000);
    }
}
