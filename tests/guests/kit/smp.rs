//! Starting application processors: a real-mode trampoline copied to 0x10000, INIT/SIPI/SIPI
//! through the local APIC, and the AP's way into Rust.
//!
//! An AP starts in 16-bit real mode at CS:IP = 0x1000:0000. The trampoline loads the kit's GDT
//! (its pseudo-descriptor is inside the copied page), enters 32-bit protected mode, turns on
//! PAE with the boot CPU's CR3 (patched into the page before the first SIPI), sets EFER.LME,
//! enables paging, and far-jumps straight into `kit_ap_long_mode` in the program image. That
//! code picks its stack by local APIC id (one 8 KiB stack per possible id, from link.ld), so a
//! late AP can never share a stack with another, and calls `kit_ap_entry`.
//!
//! APs keep interrupts off for good: after the program's hook they halt.

use crate::kit::time::Deadline;
use crate::kit::{apic, cpu, idt, time};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Physical address the trampoline runs at (start-up IPI vector 0x10).
pub const TRAMPOLINE_BASE: u64 = 0x1_0000;
/// Offset of the CR3 slot inside the trampoline.
const TRAMPOLINE_CR3_OFFSET: u64 = 8;
/// Local APIC ids the kit can start (xAPIC ids are 8 bits).
pub const MAX_CPUS: usize = 256;

global_asm!(
    r#"
    .set KIT_TRAMPOLINE_BASE, 0x10000

    .pushsection .text.kit_trampoline, "ax"
    .balign 16
    .globl kit_trampoline_start, kit_trampoline_end
    .code16
kit_trampoline_start:
    # Runs at 0x10000 (CS = 0x1000, IP = 0); data first, at fixed offsets.
    jmp kit_tramp_real
    .balign 8
kit_trampoline_cr3:             # +8: patched with the boot CPU's CR3
    .long 0
    .long 0
kit_tramp_gdtr:                 # the kit GDT (4 entries, kit/entry.rs), 32-bit base
    .word 4 * 8 - 1
    .long kit_gdt
kit_tramp_real:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    # DS = CS, so trampoline offsets address the copy. lgdtl loads all 32 base bits.
    lgdtl kit_tramp_gdtr - kit_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x18, $(KIT_TRAMPOLINE_BASE + kit_tramp_32 - kit_trampoline_start)

    .code32
kit_tramp_32:
    # Protected mode with flat segments; now long mode, as in kit_pvh_start.
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov (KIT_TRAMPOLINE_BASE + kit_trampoline_cr3 - kit_trampoline_start), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000000, %eax
    mov %eax, %cr0
    # Straight into the program image (below 4 GiB) with the 64-bit code segment.
    ljmp $0x08, $kit_ap_long_mode
kit_trampoline_end:

    .code64
kit_ap_long_mode:
    lgdt kit_gdtr(%rip)
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    # Stack = __kit_ap_stacks + (APIC id + 1) * 8 KiB; the id is kit_ap_entry's argument.
    mov $0xfee00020, %eax
    mov (%rax), %edi
    shr $24, %edi
    lea 1(%rdi), %rax
    shl $13, %rax
    add $__kit_ap_stacks, %rax
    mov %rax, %rsp
    call kit_ap_entry
1:
    cli
    hlt
    jmp 1b
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static kit_trampoline_start: u8;
    static kit_trampoline_end: u8;
}

/// What an AP runs after it is up (its local APIC id as argument), before it halts for good.
static AP_HOOK: AtomicUsize = AtomicUsize::new(0);
static AP_IDLE: AtomicUsize = AtomicUsize::new(0);
/// Set by each AP once its hook returned, indexed by local APIC id.
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static TRAMPOLINE_READY: AtomicBool = AtomicBool::new(false);

/// Why an AP did not come up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The id is the boot CPU's, or beyond [`MAX_CPUS`].
    BadId,
    /// The local APIC never finished sending the IPI.
    Ipi,
    /// The AP did not report in before the timeout.
    Timeout,
}

fn hook() -> Option<fn(u32)> {
    match AP_HOOK.load(Ordering::Acquire) {
        0 => None,
        addr => {
            // SAFETY: `AP_HOOK` only ever holds 0 or `f as usize` for an `f: fn(u32)` (see
            // `set_ap_hook`), so this turns it back into that same function pointer.
            Some(unsafe { core::mem::transmute::<usize, fn(u32)>(addr) })
        }
    }
}

/// Sets what every AP runs once it is up (e.g. printing "cpu N online").
pub fn set_ap_hook(f: fn(u32)) {
    AP_HOOK.store(f as usize, Ordering::Release);
}

/// Copies the trampoline to [`TRAMPOLINE_BASE`] and patches in this CPU's CR3.
fn install_trampoline() {
    if TRAMPOLINE_READY.load(Ordering::Relaxed) {
        return;
    }
    let start = &raw const kit_trampoline_start;
    let len = (&raw const kit_trampoline_end as usize) - (start as usize);
    // SAFETY: 0x10000 is free low RAM on vmux (docs/platform.md) and under PVH loaders, it is
    // identity mapped, and the trampoline (a few hundred bytes) fits in its page. The CR3 slot
    // is inside the copied bytes. The page tables live below 4 GiB, so CR3 fits in 32 bits.
    unsafe {
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE_BASE as usize as *mut u8, len);
        ((TRAMPOLINE_BASE + TRAMPOLINE_CR3_OFFSET) as usize as *mut u32)
            .write_volatile(cpu::read_cr3() as u32);
    }
    TRAMPOLINE_READY.store(true, Ordering::Relaxed);
}

/// Starts the CPU with local APIC id `apic_id` (INIT, SIPI, SIPI) and waits up to
/// `timeout_us` for it to run the hook and report in.
pub fn start_ap(apic_id: u32, timeout_us: u64) -> Result<(), StartError> {
    if apic_id as usize >= MAX_CPUS || apic_id == apic::lapic_id() {
        return Err(StartError::BadId);
    }
    install_trampoline();
    let page = (TRAMPOLINE_BASE >> 12) as u8;
    apic::send_init(apic_id).map_err(|_| StartError::Ipi)?;
    // Real hardware needs 10 ms between INIT and SIPI; hypervisors do not (Linux skips it too).
    time::delay_us(if cpu::under_hypervisor() { 100 } else { 10_000 });
    for _ in 0..2 {
        apic::send_startup(apic_id, page).map_err(|_| StartError::Ipi)?;
        time::delay_us(200);
        if is_online(apic_id) {
            return Ok(());
        }
    }
    let deadline = Deadline::after_us(timeout_us);
    while !is_online(apic_id) {
        if deadline.passed() {
            return Err(StartError::Timeout);
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Whether the CPU with this local APIC id has come up (the boot CPU counts once marked).
pub fn is_online(apic_id: u32) -> bool {
    ONLINE
        .get(apic_id as usize)
        .is_some_and(|f| f.load(Ordering::Acquire))
}

/// Parks the CPU with local APIC id `apic_id` (INIT: it waits for a start-up IPI again, like a
/// CPU Linux has taken offline) and forgets that it was online, so that [`start_ap`] can
/// bring it up again. Not for the calling CPU.
pub fn stop_ap(apic_id: u32) -> Result<(), StartError> {
    if apic_id as usize >= MAX_CPUS || apic_id == apic::lapic_id() {
        return Err(StartError::BadId);
    }
    apic::send_init(apic_id).map_err(|_| StartError::Ipi)?;
    if let Some(flag) = ONLINE.get(apic_id as usize) {
        flag.store(false, Ordering::Release);
    }
    Ok(())
}

/// Marks the calling (boot) CPU online, so `online_ids` includes it.
pub fn mark_boot_cpu_online() {
    if let Some(flag) = ONLINE.get(apic::lapic_id() as usize) {
        flag.store(true, Ordering::Release);
    }
}

/// Local APIC ids of every CPU marked online, ascending.
pub fn online_ids() -> impl Iterator<Item = u32> {
    (0..MAX_CPUS as u32).filter(|&id| is_online(id))
}

/// Where every AP lands in Rust (called by `kit_ap_long_mode` on the AP's own stack).
#[unsafe(no_mangle)]
extern "C" fn kit_ap_entry(apic_id: u32) -> ! {
    idt::load();
    apic::lapic_enable();
    if let Some(f) = hook() {
        f(apic_id);
    }
    if let Some(flag) = ONLINE.get(apic_id as usize) {
        flag.store(true, Ordering::Release);
    }
    match AP_IDLE.load(Ordering::Acquire) {
        0 => cpu::halt_forever(),
        addr => {
            // SAFETY: AP_IDLE only ever holds a `fn(u32) -> !` stored by `set_ap_idle`.
            let idle = unsafe { core::mem::transmute::<usize, fn(u32) -> !>(addr) };
            idle(apic_id)
        }
    }
}

/// What every AP does once online, instead of halting for good (it never returns).
pub fn set_ap_idle(f: fn(u32) -> !) {
    AP_IDLE.store(f as usize, Ordering::Release);
}
