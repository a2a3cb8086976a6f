//! The SIGSYS side of seccomp's `TRAP` action: when a filter blocks a system call the kernel
//! does not run it and sends the calling thread SIGSYS with the call's number. The handler here
//! writes one line, `blocked system call N (name) on thread T`, to a pipe that vmd's reaper
//! thread reads (it records the line as the VM's crash reason, cleans up and ends vmd), then
//! waits for the end. If the reaper does not end the process within [`REAPER_PATIENCE_MS`]
//! (it is the thread that trapped, or it is stuck), the handler writes the line to stderr
//! (vmd.log) itself and exits with [`EXIT_CODE`].
//!
//! The handler is async-signal-safe: no allocation, no locks; it reads a const-initialised
//! thread-local label, formats into a stack buffer and makes only `write`, `nanosleep` and
//! `exit_group` calls, which every filter allows.

use std::cell::Cell;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// vmd's exit status after a blocked system call: 128 + SIGSYS, what a shell reports for a
/// process SIGSYS killed.
pub const EXIT_CODE: i32 = 128 + libc::SIGSYS;
/// How long a trapped thread waits for the reaper to end the process, in milliseconds.
pub const REAPER_PATIENCE_MS: u64 = 5_000;
/// Longest report line, in bytes (shorter than `PIPE_BUF`, so one write is atomic).
pub const MAX_REPORT: usize = 160;
/// `si_code` of a SIGSYS sent by seccomp.
const SYS_SECCOMP: i32 = 1;

/// The write end of the reaper's pipe; -1 until [`install`].
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);
/// Set by the first thread that reports; later ones only wait for the end.
static REPORTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The calling thread's name as the report shows it (at most 15 bytes, like the kernel's).
    static LABEL: Cell<[u8; 16]> = const { Cell::new([0; 16]) };
}

/// Names the calling thread in reports (`vcpu1`); call before its filter is installed.
pub fn set_thread_label(name: &str) {
    let mut label = [0u8; 16];
    let len = name.len().min(15);
    label[..len].copy_from_slice(&name.as_bytes()[..len]);
    LABEL.with(|cell| cell.set(label));
}

/// Installs the SIGSYS handler for the whole process; reports go to `report` (the write end of
/// the reaper's pipe, kept open for the life of the process).
pub fn install(report: OwnedFd) -> io::Result<()> {
    REPORT_FD.store(report.into_raw_fd(), Ordering::SeqCst);
    // SAFETY: an all-zero sigaction is a valid value to fill in (no handler, empty mask).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `sa_mask` is a valid sigset_t owned by `action`. Blocking every signal while the
    // handler runs keeps vCPU kicks from interrupting it.
    unsafe { libc::sigfillset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and names a handler with the SA_SIGINFO signature
    // that only makes async-signal-safe calls; the old action is not wanted.
    let rc = unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The fields of `siginfo_t` a seccomp SIGSYS fills in, in the kernel's x86_64 layout: three
/// ints, padding to the union, then `_sigsys { _call_addr, _syscall, _arch }`.
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: usize,
    syscall: i32,
    arch: u32,
}

extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let mut line = [0u8; MAX_REPORT];
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t, whose layout begins with
    // the fields of `SigsysInfo` (siginfo_t is 128 bytes, more than `SigsysInfo`); the
    // `_sigsys` members are only read when `si_code` says seccomp filled them in.
    let (code, syscall) = unsafe {
        let fields = &*info.cast::<SigsysInfo>();
        (fields.code, fields.syscall)
    };
    let label = LABEL.with(Cell::get);
    let len = if code == SYS_SECCOMP {
        format_report(i64::from(syscall), &label, &mut line)
    } else {
        copy_into(&mut line, 0, b"SIGSYS sent by another process")
    };
    report_and_wait(&line[..len])
}

/// Hands `message` (one line, no newline) to the reaper, waits for it to end the process, and
/// ends it directly if it does not. Async-signal-safe; also used when a thread cannot be
/// confined at all.
pub fn report_and_wait(message: &[u8]) -> ! {
    let mut line = [0u8; MAX_REPORT + 1];
    let len = copy_into(&mut line[..MAX_REPORT], 0, message);
    line[len] = b'\n';
    if !REPORTED.swap(true, Ordering::SeqCst) {
        let fd = REPORT_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            write_all(fd, &line[..=len]);
        }
    }
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    for _ in 0..REAPER_PATIENCE_MS / 10 {
        // SAFETY: `pause` is a valid timespec; the remainder is not wanted.
        unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
    }
    write_all(libc::STDERR_FILENO, b"vmd: ");
    write_all(libc::STDERR_FILENO, &line[..=len]);
    exit_now(EXIT_CODE)
}

/// Ends the process at once with `code`: no atexit handlers, no destructors, no flushing of
/// stdio (whose locks a trapped thread may hold).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it does not return.
    unsafe { libc::_exit(code) }
}

fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of `bytes.len()` bytes for the call.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        let Ok(written) = usize::try_from(written) else {
            return;
        };
        if written == 0 {
            return;
        }
        bytes = bytes.get(written..).unwrap_or_default();
    }
}

/// Writes `blocked system call N (name) on thread T` into `out`; returns its length. `label`
/// is a NUL-padded thread name (empty: `unnamed`).
pub fn format_report(syscall: i64, label: &[u8; 16], out: &mut [u8]) -> usize {
    let mut at = copy_into(out, 0, b"blocked system call ");
    let mut digits = [0u8; 20];
    at = copy_into(out, at, decimal(syscall, &mut digits));
    at = copy_into(out, at, b" (");
    let name = usize::try_from(syscall)
        .ok()
        .and_then(syscalls::Sysno::new)
        .map_or("unknown", |call| call.name());
    at = copy_into(out, at, name.as_bytes());
    at = copy_into(out, at, b") on thread ");
    let end = label.iter().position(|&b| b == 0).unwrap_or(label.len());
    let label = if end == 0 {
        &b"unnamed"[..]
    } else {
        &label[..end]
    };
    copy_into(out, at, label)
}

/// Copies as much of `bytes` as fits into `out` at `at`; returns the new end.
fn copy_into(out: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    let room = out.len().saturating_sub(at);
    let n = bytes.len().min(room);
    if let (Some(dst), Some(src)) = (out.get_mut(at..at + n), bytes.get(..n)) {
        dst.copy_from_slice(src);
    }
    at + n
}

/// `value` in decimal, in the tail of `digits`.
fn decimal(value: i64, digits: &mut [u8; 20]) -> &[u8] {
    let negative = value < 0;
    let mut rest = value.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        digits[at] = b'-';
    }
    &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(syscall: i64, name: &str) -> String {
        let mut label = [0u8; 16];
        label[..name.len()].copy_from_slice(name.as_bytes());
        let mut out = [0u8; MAX_REPORT];
        let len = format_report(syscall, &label, &mut out);
        String::from_utf8_lossy(&out[..len]).into_owned()
    }

    #[test]
    fn a_report_names_the_call_and_the_thread() {
        assert_eq!(
            report(99, "vcpu1"),
            "blocked system call 99 (sysinfo) on thread vcpu1"
        );
        assert_eq!(
            report(59, "conn"),
            "blocked system call 59 (execve) on thread conn"
        );
    }

    #[test]
    fn an_unknown_number_and_an_unnamed_thread_still_read() {
        assert_eq!(
            report(100_000, ""),
            "blocked system call 100000 (unknown) on thread unnamed"
        );
        assert_eq!(
            report(-1, "x"),
            "blocked system call -1 (unknown) on thread x"
        );
    }

    #[test]
    fn a_long_label_is_cut_like_the_kernel_cuts_thread_names() {
        set_thread_label("a-very-long-thread-name");
        let label = LABEL.with(Cell::get);
        assert_eq!(&label[..15], b"a-very-long-thr");
        assert_eq!(label[15], 0);
    }
}
