//! The memory primitives the compiler expects from libc (`memcpy`, `memmove`, `memset`,
//! `memcmp`, `bcmp`) and the `rust_eh_personality` symbol the precompiled `core` refers to.
//!
//! The host target's `compiler_builtins` leaves these to libc, which a guest does not have.
//! The copies and fills are string instructions and the comparison reads bytes with volatile
//! loads, so the optimizer cannot turn them back into calls to themselves, and none contains
//! SSE.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst` (the regions must not overlap).
///
/// # Safety
/// Same contract as C `memcpy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for `n` bytes; DF is clear (the
    // kit's entry and interrupt stubs clear it, and the ABI requires it clear).
    unsafe {
        asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _,
             options(nostack, preserves_flags))
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`; the regions may overlap.
///
/// # Safety
/// Same contract as C `memmove`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: a forward copy is correct when `dst` does not start inside `src`.
        return unsafe { memcpy(dst, src, n) };
    }
    if n != 0 {
        // SAFETY: copy backwards (DF set, restored right after) so overlapping bytes are read
        // before they are overwritten; the caller guarantees both ranges are valid.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
                 inout("rcx") n => _, options(nostack))
        }
    }
    dst
}

/// Fills `n` bytes at `dst` with the low byte of `value`.
///
/// # Safety
/// Same contract as C `memset`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dst` is valid for `n` bytes; DF is clear.
    unsafe {
        asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") value as u8,
             options(nostack, preserves_flags))
    }
    dst
}

/// Compares `n` bytes; returns <0, 0 or >0 like C `memcmp`.
///
/// # Safety
/// Same contract as C `memcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes. Volatile reads
        // keep LLVM from recognising this loop as a memcmp and calling us recursively.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Like [`memcmp`] but only says whether the bytes differ.
///
/// # Safety
/// Same contract as C `bcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by unwind tables in the precompiled `core`; never called because every program
/// is built with `-C panic=abort`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
