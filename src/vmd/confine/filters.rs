//! Which system calls each kind of vmd thread may make, and their compilation into seccomp
//! filters with `seccompiler`. The lists themselves live beside the code that makes the calls
//! (each module's `SYSCALLS`); this file only says which lists make up each kind's filter.
//!
//! Every filter allows [`RUNTIME`] plus its kind's list and traps everything else (SIGSYS,
//! reported by `engine::confine::sigsys`). The thread factory's filter is the union of every
//! kind's plus thread creation, because each new thread starts under it before adding its own.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use syscalls::Sysno;

use crate::engine::confine::syscalls::{RUNTIME, SyscallList, THREAD_CREATE};
use crate::engine::confine::{IMAGE_IO, ThreadKind, engine_syscalls};
use crate::engine::snapshot::SAVE_SYSCALLS;
use crate::vmd::state_file::SYSCALLS as STATE_FILE;

/// The lists (besides [`RUNTIME`]) that make up `kind`'s filter.
pub fn lists(kind: ThreadKind) -> Vec<SyscallList> {
    let own = match kind {
        ThreadKind::Main => vec![super::super::boot::SYSCALLS, IMAGE_IO, STATE_FILE],
        ThreadKind::Reaper => vec![super::reaper::SYSCALLS, STATE_FILE],
        ThreadKind::Log => vec![super::super::logger::SYSCALLS],
        ThreadKind::Control => vec![super::super::server::SYSCALLS],
        // `save` and `managedsave` run on the connection that asked.
        ThreadKind::Connection => vec![
            super::super::session::CONNECTION_SYSCALLS,
            IMAGE_IO,
            STATE_FILE,
            SAVE_SYSCALLS,
        ],
        ThreadKind::Events => vec![super::super::session::EVENTS_SYSCALLS],
        ThreadKind::ConsoleOut => vec![super::super::session::CONSOLE_OUT_SYSCALLS],
        ThreadKind::Stats => vec![super::super::sampler::SYSCALLS],
        ThreadKind::ConsoleLog => vec![super::super::console_log::SYSCALLS],
        ThreadKind::Signals => vec![super::super::signals::SYSCALLS],
        ThreadKind::Observer => vec![super::super::observer::SYSCALLS, IMAGE_IO, STATE_FILE],
        ThreadKind::Vcpu
        | ThreadKind::BlockWorker
        | ThreadKind::NetWorker
        | ThreadKind::BalloonWorker => engine_syscalls(kind),
        ThreadKind::Factory => {
            let mut all: Vec<SyscallList> = ThreadKind::ALL
                .into_iter()
                .filter(|k| *k != ThreadKind::Factory)
                .flat_map(lists)
                .collect();
            all.push(THREAD_CREATE);
            return all;
        }
    };
    let mut lists = vec![RUNTIME];
    lists.extend(own);
    lists
}

/// Errors building a filter (a defect in a list, reported at vmd start).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the system-call filter of the {kind} threads")]
pub struct FilterError {
    kind: &'static str,
    #[source]
    source: seccompiler::Error,
}

/// The compiled filter of every kind.
pub struct Filters {
    programs: BTreeMap<ThreadKind, BpfProgram>,
}

impl Filters {
    /// Compiles every kind's filter.
    pub fn compile() -> Result<Filters, FilterError> {
        let programs = ThreadKind::ALL
            .into_iter()
            .map(|kind| {
                compile(&lists(kind))
                    .map(|program| (kind, program))
                    .map_err(|source| FilterError {
                        kind: kind.name(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Filters { programs })
    }

    /// Installs `kind`'s filter on the calling thread (on top of any it inherited).
    pub fn apply(&self, kind: ThreadKind) -> Result<(), seccompiler::Error> {
        match self.programs.get(&kind) {
            Some(program) => seccompiler::apply_filter(program),
            None => Err(seccompiler::Error::EmptyFilter),
        }
    }
}

/// Compiles the union of `lists` into one filter: listed calls are allowed, anything else
/// traps.
pub fn compile(lists: &[SyscallList]) -> Result<BpfProgram, seccompiler::Error> {
    let mut unconditional = BTreeSet::new();
    let mut conditional: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for list in lists {
        for call in list.any {
            unconditional.insert(number(*call));
        }
        for &request in list.ioctls {
            let condition =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)?;
            conditional
                .entry(number(Sysno::ioctl))
                .or_default()
                .push(SeccompRule::new(vec![condition])?);
        }
        for rule in list.args {
            // ioctl's request is an `unsigned int` to the kernel: compare its low 32 bits.
            let width = if rule.call == Sysno::ioctl && rule.index == 1 {
                SeccompCmpArgLen::Dword
            } else {
                SeccompCmpArgLen::Qword
            };
            for &value in rule.values {
                let op = if rule.mask == u64::MAX {
                    SeccompCmpOp::Eq
                } else {
                    SeccompCmpOp::MaskedEq(rule.mask)
                };
                let condition = SeccompCondition::new(rule.index, width.clone(), op, value)?;
                conditional
                    .entry(number(rule.call))
                    .or_default()
                    .push(SeccompRule::new(vec![condition])?);
            }
        }
    }
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = conditional
        .into_iter()
        .filter(|(call, _)| !unconditional.contains(call))
        .collect();
    rules.extend(unconditional.into_iter().map(|call| (call, Vec::new())));
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    BpfProgram::try_from(filter).map_err(seccompiler::Error::Backend)
}

fn number(call: Sysno) -> i64 {
    i64::from(call.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_filter_that_compiles() {
        let filters = Filters::compile().expect("compile");
        assert_eq!(filters.programs.len(), ThreadKind::ALL.len());
    }

    #[test]
    fn the_factory_allows_what_every_kind_allows() {
        let factory: BTreeSet<Sysno> = lists(ThreadKind::Factory)
            .iter()
            .flat_map(|list| list.any.iter().copied())
            .collect();
        for kind in ThreadKind::ALL {
            for list in lists(kind) {
                for call in list.any {
                    assert!(factory.contains(call), "{call} of {}", kind.name());
                }
            }
        }
    }

    #[test]
    fn no_vcpu_may_create_threads_or_open_files() {
        let vcpu: BTreeSet<Sysno> = lists(ThreadKind::Vcpu)
            .iter()
            .flat_map(|list| list.any.iter().copied())
            .collect();
        for call in [
            Sysno::clone,
            Sysno::clone3,
            Sysno::execve,
            Sysno::openat,
            Sysno::socket,
        ] {
            assert!(!vcpu.contains(&call), "{call}");
        }
    }
}
