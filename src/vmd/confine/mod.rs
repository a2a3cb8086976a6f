//! vmd's confinement, the policy side (docs/security.md, "vmd confinement"): what limits a
//! vmd puts on itself, in the order it does so.
//!
//! 1. [`setup`], before any thread exists: umask 077 and `no_new_privs` for the process; the
//!    SIGSYS handler and the `reaper` thread that turns a blocked system call into a recorded
//!    crash; the thread factory, which drops every capability and installs its filter; and
//!    the engine's [`Confiner`], so that every later thread is made by the factory and
//!    confined to its kind's filter ([`filters`]) before it runs.
//! 2. [`Confinement::drop_privileges`], once the NICs' TAPs are open: the main thread drops
//!    its capabilities too (vmd needs none afterwards: TAPs stay open across reboots).
//! 3. [`Confinement::confine_main`], once the VM runs: the boot loop's own filter.
//!
//! `VMUX_SECCOMP=off` skips the filters (for debugging; everything else still applies).
//! `VMUX_TEST_SECCOMP_VIOLATION=<kind>` is a test hook: the first thread of that kind (see
//! `ThreadKind::name`) makes a forbidden call (`sysinfo`, which has no effect) right after
//! confining itself, so the tests can check that a violation ends vmd with its reason. It only
//! ever makes vmd stop itself.

mod factory;
pub mod filters;
mod privileges;
pub mod reaper;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use crate::engine::confine::{self, Confiner, ThreadKind, sigsys};
use filters::{FilterError, Filters};
use privileges::PrivilegeError;
use reaper::CrashFiles;

/// Set to `off` to run vmd without seccomp filters (debugging).
pub const SECCOMP_ENV: &str = "VMUX_SECCOMP";
/// Test hook: a thread kind whose first thread makes a forbidden system call.
pub const VIOLATION_ENV: &str = "VMUX_TEST_SECCOMP_VIOLATION";

/// Errors confining vmd (reported on the readiness line; vmd does not run unconfined).
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// umask, no_new_privs or a capability drop failed.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// A filter did not compile.
    #[error(transparent)]
    Filters(#[from] FilterError),
    /// `VMUX_SECCOMP` or the test hook has a value vmd does not know.
    #[error("{variable}={value} is not understood: {expected}")]
    Setting {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: String,
    },
    /// The reaper's pipe or the SIGSYS handler could not be set up.
    #[error("cannot set up the SIGSYS handler")]
    Handler(#[source] std::io::Error),
    /// The factory or the reaper could not be started.
    #[error("cannot start the {0} thread")]
    Thread(&'static str, #[source] std::io::Error),
}

/// What [`setup`] put in place; the later steps.
pub struct Confinement {
    filters: Option<Arc<Filters>>,
    violation: Option<ThreadKind>,
}

/// Whether seccomp filters are on: unless `VMUX_SECCOMP=off`.
fn seccomp_wanted() -> Result<bool, ConfineError> {
    match std::env::var(SECCOMP_ENV).as_deref() {
        Err(_) | Ok("" | "on") => Ok(true),
        Ok("off") => Ok(false),
        Ok(other) => Err(ConfineError::Setting {
            variable: SECCOMP_ENV,
            value: other.to_owned(),
            expected: "use `on` (the default) or `off`".into(),
        }),
    }
}

fn violation_wanted() -> Result<Option<ThreadKind>, ConfineError> {
    match std::env::var(VIOLATION_ENV).as_deref() {
        Err(_) | Ok("") => Ok(None),
        Ok(name) => ThreadKind::from_name(name)
            .map(Some)
            .ok_or_else(|| ConfineError::Setting {
                variable: VIOLATION_ENV,
                value: name.to_owned(),
                expected: format!(
                    "a thread kind: {}",
                    ThreadKind::ALL.map(ThreadKind::name).join(", ")
                ),
            }),
    }
}

/// Step 1, on the main thread before any other thread exists (see the module docs).
pub fn setup(files: CrashFiles) -> Result<Confinement, ConfineError> {
    privileges::restrict_process()?;
    let filters = if seccomp_wanted()? {
        Some(Arc::new(Filters::compile()?))
    } else {
        log::warn!("{SECCOMP_ENV}=off: vmd runs without system-call filters");
        None
    };
    let violation = violation_wanted()?;
    let (reports, report_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ConfineError::Handler(e.into()))?;
    sigsys::install(report_end).map_err(ConfineError::Handler)?;
    let policy = Policy {
        filters: filters.clone(),
        violation,
        tripped: AtomicBool::new(false),
    };
    let policy = Arc::new(policy);
    let for_factory = Arc::clone(&policy);
    let jobs = factory::start(move || {
        if let Err(e) = privileges::drop_capabilities() {
            sigsys::report_and_wait(e.to_string().as_bytes());
        }
        for_factory.enter(ThreadKind::Factory);
    })
    .map_err(|e| ConfineError::Thread("factory", e))?;
    confine::install(Arc::new(VmdConfiner {
        jobs: Mutex::new(jobs),
        policy,
    }));
    confine::spawn(ThreadKind::Reaper, "reaper".into(), move || {
        reaper::run(reports, &files);
    })
    .map_err(|e| ConfineError::Thread("reaper", e))?;
    Ok(Confinement { filters, violation })
}

impl Confinement {
    /// Step 2: the main thread drops its capabilities (after the TAPs are open).
    pub fn drop_privileges(&self) -> Result<(), ConfineError> {
        privileges::drop_capabilities().map_err(ConfineError::from)
    }

    /// Step 3: the main thread installs the boot loop's filter.
    pub fn confine_main(&self) {
        let policy = Policy {
            filters: self.filters.clone(),
            violation: self.violation,
            tripped: AtomicBool::new(false),
        };
        policy.enter(ThreadKind::Main);
    }
}

/// The filters and the test hook, shared by every thread's confinement.
struct Policy {
    filters: Option<Arc<Filters>>,
    violation: Option<ThreadKind>,
    /// The test hook has fired (once per vmd is enough).
    tripped: AtomicBool,
}

impl Policy {
    /// Labels the calling thread for reports, installs its kind's filter, and fires the test
    /// hook if it names this kind.
    fn enter(&self, kind: ThreadKind) {
        let current = std::thread::current();
        let name = current.name().unwrap_or(kind.name());
        sigsys::set_thread_label(name);
        if let Some(filters) = &self.filters
            && let Err(e) = filters.apply(kind)
        {
            let message = format!("cannot confine thread {name}: {e}");
            sigsys::report_and_wait(message.as_bytes());
        }
        if self.violation == Some(kind) && !self.tripped.swap(true, Ordering::SeqCst) {
            log::warn!("{VIOLATION_ENV}: thread {name} makes a forbidden system call");
            let _ = super::logger::flush();
            // `sysinfo` only reads figures; under the filter it never runs.
            let _ = nix::sys::sysinfo::sysinfo();
        }
    }
}

/// The engine's view of vmd's confinement.
struct VmdConfiner {
    jobs: Mutex<Sender<factory::Job>>,
    policy: Arc<Policy>,
}

impl Confiner for VmdConfiner {
    fn make_thread(&self, job: Box<dyn FnOnce() + Send>) {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        // A failed send drops the job, whose reply channel then tells the caller.
        let _ = jobs.send(job);
    }

    fn enter(&self, kind: ThreadKind) {
        self.policy.enter(kind);
    }
}
