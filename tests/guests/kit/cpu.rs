//! Thin wrappers over the x86 instructions the kit needs: port I/O, interrupts on/off, halt,
//! TSC, CPUID, control registers.
//!
//! Port I/O is exposed as safe functions: a guest-kit program is the only code in its VM and
//! runs at CPL 0, the ports it touches are the fixed devices of docs/platform.md, and no port
//! write here can break Rust's memory safety (no device the kit drives does DMA).

use core::arch::asm;

/// Writes one byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects visible to Rust (see the module comment).
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads one byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as in `outb`.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as in `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a 32-bit value from an I/O port.
pub fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: as in `outb`.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Reads the time-stamp counter (ticks since reset; rate from kit/time.rs).
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Executes CPUID for `leaf` (sub-leaf 0); returns (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: cpuid only reads identification registers. RBX is reserved by LLVM, so it is
    // saved in a scratch register around the instruction.
    unsafe {
        asm!(
            "mov {saved:r}, rbx",
            "cpuid",
            "xchg {saved:r}, rbx",
            saved = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") 0u32 => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags),
        )
    }
    (eax, ebx, ecx, edx)
}

/// True when CPUID says we run under a hypervisor (leaf 1, ECX bit 31).
pub fn under_hypervisor() -> bool {
    cpuid(1).2 & (1 << 31) != 0
}

/// Reads CR3 (the physical address of the PML4 in use).
pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Reads CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) }
    value
}

/// Spin-loop hint.
pub fn pause() {
    core::hint::spin_loop();
}

/// Enables interrupts and halts until one arrives, then disables them again.
///
/// The kit keeps interrupts off everywhere else, so handlers only ever run here: code that
/// was compiled with a red zone (the precompiled `core`) is never interrupted, and a handler
/// never races the code that reads what it stored. `sti` delays interrupts by one
/// instruction, so one that became pending before this call still wakes the `hlt`.
pub fn wait_for_interrupt() {
    // SAFETY: the IDT is loaded (kit_entry does it first); handlers preserve every register.
    // No `nostack`: handlers push onto this stack, so nothing may live in the red zone here.
    unsafe { asm!("sti", "hlt", "cli") }
}

/// Halts this CPU for good (interrupts off; only INIT or NMI would wake it).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stopping the CPU has no memory effects.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
