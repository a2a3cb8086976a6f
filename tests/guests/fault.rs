//! `fault`: makes the VM fail on purpose, to test how the engine reports guest failures.
//!
//! First it executes `cmpxchg16b`, which the emulating KVM here cannot emulate
//! (KVM_EXIT_INTERNAL_ERROR). Where the instruction simply works (hardware virtualization), it
//! goes on to triple-fault: a zero-limit IDT and `ud2`. With `fault=triple` on the command
//! line it triple-faults straight away. This is the one program allowed to contain
//! cmpxchg16b.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use core::arch::asm;

#[repr(C, align(16))]
struct Aligned([u64; 2]);

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    if boot.arg("fault") != Some(b"triple") {
        println!("fault: executing cmpxchg16b");
        let mut target = Aligned([0, 0]);
        // SAFETY: `target` is a live, 16-byte aligned local; the instruction compares it with
        // RDX:RAX (0:0) and stores RCX:RBX (0:0). RBX belongs to LLVM, so it is swapped with a
        // scratch register around the instruction.
        unsafe {
            asm!(
                "xchg {scratch}, rbx",
                "lock cmpxchg16b xmmword ptr [{target}]",
                "xchg {scratch}, rbx",
                target = in(reg) &mut target.0,
                scratch = inout(reg) 0u64 => _,
                inout("rax") 0u64 => _,
                inout("rdx") 0u64 => _,
                in("rcx") 0u64,
            )
        }
    }
    println!("fault: triple fault");
    kit::power::triple_fault()
}
