//! The two ways into a guest-kit program, both ending in `kit_entry` (kit/mod.rs).
//!
//! * `_start`, the ELF entry point, is what vmux jumps to: 64-bit long mode, paging on, the
//!   zero page in RSI (docs/platform.md).
//! * `kit_pvh_start` is the 32-bit entry named by the PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY),
//!   which QEMU (`-kernel x.elf`) and other PVH loaders use: flat 32-bit protected mode, paging
//!   off, the `hvm_start_info` pointer in EBX. It loads the identity page tables below (linked
//!   in, so no loop has to build them while the slow emulating KVM here runs it), enables long
//!   mode and joins the 64-bit path with RSI = 0 ("no zero page") and RDX = start info.
//!
//! The common 64-bit path loads the kit's own GDT (so both paths, and the APs, share the same
//! selectors: code64 0x08, data 0x10, code32 0x18), switches to the kit stack, zeroes .bss and
//! calls `kit_entry(zero_page, pvh_start_info)`.

use core::arch::global_asm;

/// Selector of the kit's 64-bit code segment (what interrupt gates use).
pub const CODE64_SELECTOR: u16 = 0x08;

global_asm!(
    r#"
    .pushsection .text.kit_start, "ax"
    .code64
    .globl _start
_start:
    # vmux: 64-bit mode, zero page in RSI. No PVH start info.
    xor %edx, %edx
    jmp kit_common64

    .code32
    .globl kit_pvh_start
kit_pvh_start:
    # PVH: 32-bit protected mode, paging off, hvm_start_info in EBX (kept in EDI).
    cli
    cld
    mov %ebx, %edi
    # Only the low 32 bits of kit_gdtr's base are read here, which is where the GDT is.
    lgdt kit_gdtr
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    # CR4.PAE, CR3 = the linked-in identity map, EFER.LME, then CR0.PG: long mode
    # (compatibility submode until the far jump loads the 64-bit code segment).
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $kit_boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x08, $kit_pvh_long_mode

    .code64
kit_pvh_long_mode:
    # RSI = 0: no zero page. RDX = the PVH start info.
    mov %edi, %edx
    xor %esi, %esi

kit_common64:
    cli
    cld
    lgdt kit_gdtr(%rip)
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $__kit_stack_top, %esp
    # Reload CS with the kit's code64 selector (a far return is the 64-bit way to do it).
    pushq $0x08
    lea 1f(%rip), %rax
    push %rax
    lretq
1:
    # Zero .bss (the boot arguments wait in callee-saved registers), then enter Rust.
    mov %rsi, %r12
    mov %rdx, %r13
    mov $__kit_bss_start, %edi
    mov $__kit_bss_end, %ecx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    mov %r12, %rdi
    mov %r13, %rsi
    call kit_entry
2:
    cli
    hlt
    jmp 2b
    .popsection

    # The PVH note: name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), the 32-bit entry. The
    # address is 8 bytes because QEMU reads a pointer-sized value; linux-loader reads 4.
    .pushsection .note.kit_pvh, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad kit_pvh_start
    .popsection

    .pushsection .data.kit_gdt, "aw"
    .balign 16
    .globl kit_gdt, kit_gdt_end, kit_gdtr
    # Accessed bits preset, so the CPU never writes to the table.
kit_gdt:
    .quad 0                     # null
    .quad 0x00af9b000000ffff    # 0x08: code, 64-bit
    .quad 0x00cf93000000ffff    # 0x10: data, flat 4 GiB
    .quad 0x00cf9b000000ffff    # 0x18: code, 32-bit flat (the AP trampoline)
kit_gdt_end:
    .balign 8
kit_gdtr:
    .word kit_gdt_end - kit_gdt - 1
    .quad kit_gdt
    .popsection

    # The PVH entry's identity map of 0..4 GiB: one PML4, one PDPT, four page directories of
    # 2 MiB pages (present, writable, PS). The last GiB, the MMIO hole, is uncached (PWT|PCD).
    .pushsection .data.kit_boot_pagetables, "aw"
    .balign 4096
kit_boot_pml4:
    .quad kit_boot_pdpt + 3
    .fill 511, 8, 0
kit_boot_pdpt:
    .quad kit_boot_pd + 0x0003
    .quad kit_boot_pd + 0x1003
    .quad kit_boot_pd + 0x2003
    .quad kit_boot_pd + 0x3003
    .fill 508, 8, 0
kit_boot_pd:
    .set kit_pd_index, 0
    .rept 2048
    .if kit_pd_index >= 1536
    .quad (kit_pd_index << 21) | 0x9b
    .else
    .quad (kit_pd_index << 21) | 0x83
    .endif
    .set kit_pd_index, kit_pd_index + 1
    .endr
    .popsection
    "#,
    options(att_syntax)
);
