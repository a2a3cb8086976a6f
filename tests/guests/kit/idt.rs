//! The interrupt descriptor table, its assembly entry stubs, and the Rust dispatcher.
//!
//! `extern "x86-interrupt"` is nightly-only, so each of the 256 vectors gets a 16-byte stub
//! (generated with `.rept`) that pushes a dummy error code where the CPU pushes none, then the
//! vector number, and jumps to `kit_isr_common`. That saves every general-purpose register,
//! calls `kit_interrupt(&mut Frame)` and returns with `iretq`. The kit has a fixed set of
//! interrupt sources, so dispatch is a `match` on the vector rather than a registration table.
//! CPU exceptions print what happened and end the VM with debug-exit code
//! [`power::EXIT_EXCEPTION`].

use crate::kit::console::{Hex, print_unlocked};
use crate::kit::entry::CODE64_SELECTOR;
use crate::kit::{apic, ged, power, serial, timer};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

/// Vector of COM1's interrupt (GSI 4).
pub const VECTOR_COM1: u8 = 0x24;
/// Vector of the GED's interrupt (GSI 5).
pub const VECTOR_GED: u8 = 0x25;
/// Vector of the PIT's interrupt (IOAPIC pin 0), counted by kit/timer.rs.
pub const VECTOR_PIT: u8 = 0x20;
/// Vector of the local APIC timer, counted by kit/timer.rs.
pub const VECTOR_LAPIC_TIMER: u8 = 0x30;
/// Vector of the inter-processor interrupt each CPU counts (kit/timer.rs).
pub const VECTOR_IPI: u8 = 0x31;
/// The local APIC's spurious-interrupt vector (no EOI).
pub const VECTOR_SPURIOUS: u8 = 0xff;

global_asm!(
    r#"
    .pushsection .text.kit_isr, "ax"
    .code64
    .balign 16
    .globl kit_isr_stubs
kit_isr_stubs:
    .set kit_isr_vector, 0
    .rept 256
    .balign 16
    .if (kit_isr_vector == 8) || (kit_isr_vector == 10) || (kit_isr_vector == 11) || (kit_isr_vector == 12) || (kit_isr_vector == 13) || (kit_isr_vector == 14) || (kit_isr_vector == 17) || (kit_isr_vector == 21) || (kit_isr_vector == 29) || (kit_isr_vector == 30)
    .else
    pushq $0
    .endif
    pushq $kit_isr_vector
    jmp kit_isr_common
    .set kit_isr_vector, kit_isr_vector + 1
    .endr

kit_isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call kit_interrupt
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first of 256 stubs, 16 bytes apart.
    static kit_isr_stubs: u8;
}

/// What `kit_isr_common` leaves on the stack (lowest address first).
#[repr(C)]
pub struct Frame {
    /// Saved general-purpose registers, r15 first (pushed last).
    pub gprs: [u64; 15],
    /// Vector number pushed by the stub.
    pub vector: u64,
    /// The CPU's error code, or 0 from the stub.
    pub error: u64,
    /// Interrupted instruction pointer.
    pub rip: u64,
    /// Interrupted code segment.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack segment.
    pub ss: u64,
}

/// 256 gates of 16 bytes (two u64 each). Atomics only so that a `static` needs no `unsafe`;
/// it is filled once on the boot CPU before any CPU loads it.
static IDT: [AtomicU64; 512] = [const { AtomicU64::new(0) }; 512];

/// Fills the IDT (every vector an interrupt gate to its stub) and loads it on this CPU.
pub fn init() {
    let base = &raw const kit_isr_stubs as u64;
    for (vector, gate) in IDT.chunks_exact(2).enumerate() {
        let handler = base + vector as u64 * 16;
        let low = (handler & 0xffff)
            | (u64::from(CODE64_SELECTOR) << 16)
            | (0x8e << 40) // present, DPL 0, 64-bit interrupt gate
            | (((handler >> 16) & 0xffff) << 48);
        for (word, value) in gate.iter().zip([low, handler >> 32]) {
            word.store(value, Ordering::Relaxed);
        }
    }
    load();
}

/// Loads the (already filled) IDT on this CPU; what APs do.
pub fn load() {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (512 * 8 - 1) as u16,
        base: IDT.as_ptr() as u64,
    };
    // SAFETY: the IDT is a static with valid gates, so it outlives every CPU that loads it.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) }
}

/// Loads an IDT with limit 0: the next exception cannot be delivered and becomes a triple
/// fault (used by `power::triple_fault`).
pub fn load_empty() {
    let pointer = [0u16; 5];
    // SAFETY: a zero-limit IDT is exactly what the caller asks for; nothing else is touched.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) }
}

const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Called by `kit_isr_common` for every interrupt and exception.
#[unsafe(no_mangle)]
extern "C" fn kit_interrupt(frame: &mut Frame) {
    match frame.vector {
        0..32 => exception(frame),
        v if v == u64::from(VECTOR_COM1) => {
            serial::on_interrupt();
            apic::eoi();
        }
        v if v == u64::from(VECTOR_GED) => {
            ged::on_interrupt();
            apic::eoi();
        }
        v if v == u64::from(VECTOR_PIT)
            || v == u64::from(VECTOR_LAPIC_TIMER)
            || v == u64::from(VECTOR_IPI) =>
        {
            timer::on_interrupt(v as u8);
            apic::eoi();
        }
        v if v == u64::from(VECTOR_SPURIOUS) => {}
        _ => apic::eoi(),
    }
}

fn exception(frame: &Frame) -> ! {
    let vector = frame.vector as usize;
    print_unlocked(format_args!(
        "\nexception {} ({}) on cpu {} at rip={} error={} cr2={}\n",
        crate::kit::console::Dec(vector as u64),
        crate::kit::console::Ascii(
            EXCEPTION_NAMES
                .get(vector)
                .map_or(&b"?"[..], |n| n.as_bytes())
        ),
        crate::kit::console::Dec(u64::from(apic::lapic_id())),
        Hex(frame.rip),
        Hex(frame.error),
        Hex(crate::kit::cpu::read_cr2()),
    ));
    power::debug_exit(power::EXIT_EXCEPTION)
}
