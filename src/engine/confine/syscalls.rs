//! System-call lists: what one kind of thread may call, written as data beside the code that
//! makes the calls, and compiled into a seccomp filter by vmd.
//!
//! [`RUNTIME`] is what every Rust thread needs on glibc whatever it does: memory, futexes,
//! signal return, clocks, thread exit, writing the log to stderr. The lists were found by
//! running every thread kind under its filter (the vmd, hotplug, snapshot and network test
//! suites) and with `strace -f`, not by guessing; a call missing from a list shows up as a
//! crash "blocked system call N (name) on thread T" in `vmux info`.

use syscalls::Sysno;

/// One argument condition: the call is allowed when `(argument & mask) == value` for one of
/// `values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgRule {
    /// The system call.
    pub call: Sysno,
    /// Which argument (0-based).
    pub index: u8,
    /// Bits of the argument compared; `u64::MAX` compares it whole.
    pub mask: u64,
    /// Accepted values of the masked argument.
    pub values: &'static [u64],
}

/// The system calls one kind of thread may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallList {
    /// Allowed with any arguments.
    pub any: &'static [Sysno],
    /// `ioctl` allowed with these request numbers only.
    pub ioctls: &'static [u64],
    /// Allowed only with the arguments given.
    pub args: &'static [ArgRule],
}

impl SyscallList {
    /// A list of calls allowed with any arguments.
    pub const fn calls(any: &'static [Sysno]) -> SyscallList {
        SyscallList {
            any,
            ioctls: &[],
            args: &[],
        }
    }
}

/// What every thread of vmd needs from Rust's runtime and glibc, whatever the thread does.
pub const RUNTIME: SyscallList = SyscallList {
    any: &[
        // Allocation (glibc malloc grows arenas with mmap/mprotect, trims with madvise).
        Sysno::brk,
        Sysno::mmap,
        Sysno::munmap,
        Sysno::mremap,
        Sysno::mprotect,
        Sysno::madvise,
        // Locks, condition variables, channels, thread parking and joins.
        Sysno::futex,
        Sysno::sched_yield,
        // Signal masks and returning from a handler (the vCPU kick, SIGSYS).
        Sysno::rt_sigprocmask,
        Sysno::rt_sigreturn,
        Sysno::sigaltstack,
        // The kernel resumes a sleep that a stop interrupted (SIGSTOP/SIGCONT, or a debugger
        // or strace attaching to vmd) by calling this on the thread's behalf: without it,
        // `kill -STOP` and `-CONT` of a vmd, or `strace -p`, would end the VM.
        Sysno::restart_syscall,
        // Clocks (normally the vDSO; a syscall when it is not usable) and sleeps.
        Sysno::clock_gettime,
        Sysno::clock_nanosleep,
        Sysno::nanosleep,
        // HashMap keys on first use in a thread.
        Sysno::getrandom,
        // Thread identity (the kick and the stats use tids; pthread_kill needs getpid).
        Sysno::gettid,
        Sysno::getpid,
        // Log lines and panic messages go to stderr; eventfds are written everywhere.
        Sysno::write,
        Sysno::close,
        // Leaving: a thread's own exit, the process's.
        Sysno::exit,
        Sysno::exit_group,
    ],
    ioctls: &[],
    // Descriptor flags and duplicates of descriptors the thread already has (`try_clone`;
    // debug builds check an fd is open before closing it).
    args: &[ArgRule {
        call: Sysno::fcntl,
        index: 1,
        mask: u64::MAX,
        values: &[
            libc::F_GETFD as u64,
            libc::F_SETFD as u64,
            libc::F_GETFL as u64,
            libc::F_SETFL as u64,
            libc::F_DUPFD_CLOEXEC as u64,
        ],
    }],
};

/// What the thread factory needs to make a thread (glibc's pthread_create and Rust's thread
/// start: stack, guard page, name, robust list, rseq), and what the new thread needs to add
/// its own filter (`no_new_privs`, then `seccomp`) while it still runs under the factory's.
pub const THREAD_CREATE: SyscallList = SyscallList {
    any: &[
        Sysno::clone3,
        Sysno::clone,
        Sysno::set_robust_list,
        Sysno::rseq,
        Sysno::sched_getaffinity,
    ],
    ioctls: &[],
    args: &[
        ArgRule {
            call: Sysno::prctl,
            index: 0,
            mask: u64::MAX,
            values: &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64],
        },
        ArgRule {
            call: Sysno::seccomp,
            index: 0,
            mask: u64::MAX,
            values: &[libc::SECCOMP_SET_MODE_FILTER as u64],
        },
    ],
};
