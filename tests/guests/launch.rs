//! `launch`: measures launch → first guest instruction. The first instruction at either entry
//! point writes 0 to the debug-exit port (0xf4), which ends the VM.
//!
//! It does not use the kit: `xor eax, eax; out 0xf4, al` encodes the same in 32- and 64-bit
//! mode, so one `_start` serves as both the ELF entry (vmux, 64-bit) and the PVH entry
//! (QEMU, 32-bit).

#![no_std]
#![no_main]

core::arch::global_asm!(
    r#"
    .pushsection .text.kit_start, "ax"
    .globl _start
_start:
    xor %eax, %eax
    out %al, $0xf4
1:
    cli
    hlt
    jmp 1b
    .popsection

    .pushsection .note.kit_pvh, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad _start
    .popsection
    "#,
    options(att_syntax)
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
