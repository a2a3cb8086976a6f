//! VM-state verbs: `save`, `restore`, `managedsave`, `managedsave-remove` (virsh's, with the
//! same meaning: a saved VM is shut off, a restore continues it where it was), and memory
//! through the balloon: `setmem` and `dommemstat`.

use super::hotplug::resolve_scope;
use super::show::write_json;
use super::{CliError, Io, RestoreArgs, SaveArgs, SetmemArgs};
use crate::client::{Host, RestoreOptions};
use crate::config::{format_size, parse_size};
use crate::protocol::{MemoryStats, RunState, SaveInfo};

/// The state after a restore from `--running` / `--paused` (neither: as saved).
pub fn after_restore(running: bool, paused: bool) -> Option<bool> {
    match (running, paused) {
        (_, true) => Some(true),
        (true, false) => Some(false),
        (false, false) => None,
    }
}

fn describe(info: &SaveInfo) -> String {
    format!(
        "{} of memory in a {} file, {:.1} s",
        format_size(info.saved_memory_bytes),
        format_size(info.file_bytes),
        info.save_ms as f64 / 1000.0
    )
}

/// `vmux save NAME FILE [--running|--paused]`.
pub fn save(host: &dyn Host, args: &SaveArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let info = host.save(
        &args.name,
        &args.file,
        after_restore(args.running, args.paused),
    )?;
    if args.json {
        return write_json(io, &info);
    }
    writeln!(
        io.out,
        "VM '{}' saved to {} ({}) and shut off; `vmux restore {}` continues it",
        args.name,
        info.path.display(),
        describe(&info),
        info.path.display()
    )?;
    Ok(())
}

/// `vmux restore FILE [--running|--paused] [--force]`.
pub fn restore(host: &dyn Host, args: &RestoreArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let options = RestoreOptions {
        paused: after_restore(args.running, args.paused),
        force: args.force,
    };
    let name = host.restore(&args.file, options)?;
    let state = host.status(&name)?.state;
    if args.json {
        #[derive(serde::Serialize)]
        struct Restored<'a> {
            name: &'a str,
            state: RunState,
        }
        return write_json(io, &Restored { name: &name, state });
    }
    writeln!(
        io.out,
        "VM '{name}' restored from {} ({})",
        args.file.display(),
        state.label()
    )?;
    Ok(())
}

/// `vmux managedsave NAME [--running|--paused]`.
pub fn managedsave(
    host: &dyn Host,
    name: &str,
    paused: Option<bool>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let info = host.managed_save(name, paused)?;
    writeln!(
        io.out,
        "VM '{name}' saved ({}) and shut off; `vmux start {name}` resumes it",
        describe(&info)
    )?;
    Ok(())
}

/// `vmux managedsave-remove NAME`.
pub fn managedsave_remove(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    host.managed_save_remove(name)?;
    writeln!(
        io.out,
        "Managed save of VM '{name}' removed; its next start boots it afresh"
    )?;
    Ok(())
}

/// `vmux start --force-boot`: drops the managed save first, when there is one.
pub fn discard_managed_save(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    if host.status(name)?.state == RunState::Saved {
        host.managed_save_remove(name)?;
        writeln!(io.err, "Discarded the managed save of VM '{name}'")?;
    }
    Ok(())
}

/// `vmux setmem NAME SIZE [--live] [--config]`.
pub fn setmem(host: &dyn Host, args: &SetmemArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let name = &args.name;
    let bytes = parse_size(&args.size)
        .map_err(|e| CliError::Invalid(format!("{e}; give a size such as 512M or 1G")))?;
    let status = host.status(name)?;
    let scope = resolve_scope(args.live, args.config, status.state);
    host.set_memory(name, bytes, scope)?;
    if scope.live {
        writeln!(
            io.out,
            "VM '{name}' asked to keep {} of its {}; the guest gives the rest back through \
             its balloon (`vmux dommemstat {name}` shows how far it got)",
            format_size(bytes),
            format_size(status.config.memory)
        )?;
    }
    if scope.config {
        writeln!(
            io.out,
            "VM '{name}' will start with {} of its {} (definition updated)",
            format_size(bytes),
            format_size(status.config.memory)
        )?;
    }
    Ok(())
}

/// `vmux dommemstat NAME [--json]`: virsh's keys in KiB, or the JSON shape in bytes.
pub fn dommemstat(
    host: &dyn Host,
    name: &str,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let stats = host.memory_stats(name)?;
    if json {
        return write_json(io, &stats);
    }
    for (key, value) in dommemstat_lines(&stats) {
        writeln!(io.out, "{key} {value}")?;
    }
    Ok(())
}

/// The lines `virsh dommemstat` prints, for what is known: sizes in KiB.
fn dommemstat_lines(stats: &MemoryStats) -> Vec<(&'static str, u64)> {
    let kib = |bytes: u64| bytes / 1024;
    let mut lines = vec![("actual", kib(stats.current_bytes))];
    let optional = [
        ("swap_in", stats.swap_in_bytes.map(kib)),
        ("swap_out", stats.swap_out_bytes.map(kib)),
        ("major_fault", stats.major_faults),
        ("minor_fault", stats.minor_faults),
        ("unused", stats.free_bytes.map(kib)),
        ("available", stats.total_bytes.map(kib)),
        ("usable", stats.available_bytes.map(kib)),
        ("disk_caches", stats.disk_caches_bytes.map(kib)),
        ("last_update", stats.updated_at),
    ];
    lines.extend(
        optional
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?))),
    );
    lines.push(("rss", kib(stats.rss_bytes)));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{capture, config, host_with_vm, run_state};
    use crate::protocol::BalloonStatus;

    fn save_args(paused: bool) -> SaveArgs {
        SaveArgs {
            name: "web".into(),
            file: "/srv/web.save".into(),
            running: false,
            paused,
            json: false,
        }
    }

    #[test]
    fn save_stops_the_vm_and_names_the_restore_command() {
        let host = host_with_vm("web", RunState::Running);
        let (result, out, _) = capture(|io| save(&host, &save_args(false), io));
        result.expect("save");
        assert!(out.contains("vmux restore /srv/web.save"), "{out}");
        assert_eq!(run_state(&host, "web"), RunState::ShutOff);
    }

    #[test]
    fn save_of_a_shut_off_vm_says_it_is_not_running() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| save(&host, &save_args(false), io));
        let err = result.expect_err("not running");
        assert!(err.to_string().contains("vmux start web"), "{err}");
    }

    #[test]
    fn restore_paused_reports_the_state() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| save(&host, &save_args(false), io));
        result.expect("save");
        let args = RestoreArgs {
            file: "/srv/web.save".into(),
            running: false,
            paused: true,
            force: false,
            json: false,
        };
        let (result, out, _) = capture(|io| restore(&host, &args, io));
        result.expect("restore");
        assert!(
            out.contains("restored from /srv/web.save (paused)"),
            "{out}"
        );
    }

    #[test]
    fn a_managed_save_lists_as_saved_until_removed() {
        let host = host_with_vm("web", RunState::Running);
        let (result, out, _) = capture(|io| managedsave(&host, "web", None, io));
        result.expect("managedsave");
        assert!(out.contains("`vmux start web` resumes it"), "{out}");
        assert_eq!(run_state(&host, "web"), RunState::Saved);
        let (result, _, _) = capture(|io| managedsave_remove(&host, "web", io));
        result.expect("remove");
        assert_eq!(run_state(&host, "web"), RunState::ShutOff);
    }

    #[test]
    fn setmem_of_a_shut_off_vm_changes_the_definition() {
        let host = host_with_vm("web", RunState::ShutOff);
        let args = SetmemArgs {
            name: "web".into(),
            size: "128M".into(),
            live: false,
            config: false,
        };
        let (result, out, _) = capture(|io| setmem(&host, &args, io));
        result.expect("setmem");
        assert!(out.contains("will start with 128M"), "{out}");
        assert_eq!(config(&host, "web").current_memory, Some(128 << 20));
    }

    #[test]
    fn setmem_with_a_bad_size_names_the_fix() {
        let host = host_with_vm("web", RunState::Running);
        let args = SetmemArgs {
            name: "web".into(),
            size: "lots".into(),
            live: true,
            config: false,
        };
        let (result, _, _) = capture(|io| setmem(&host, &args, io));
        assert!(result.expect_err("bad size").to_string().contains("512M"));
    }

    /// What a guest with `memory` bytes and its balloon deflated reports.
    fn memory_stats(memory: u64) -> MemoryStats {
        MemoryStats {
            memory_bytes: memory,
            current_bytes: memory,
            balloon: Some(BalloonStatus {
                target_bytes: 0,
                actual_bytes: 0,
                released_bytes: 0,
                driver_ready: true,
            }),
            free_bytes: Some(100 << 20),
            available_bytes: Some(150 << 20),
            total_bytes: Some(memory),
            disk_caches_bytes: None,
            swap_in_bytes: Some(0),
            swap_out_bytes: Some(0),
            major_faults: Some(7),
            minor_faults: Some(4000),
            updated_at: Some(1_700_000_000),
            rss_bytes: 30 << 20,
        }
    }

    #[test]
    fn dommemstat_prints_virsh_keys_in_kib() {
        let host = host_with_vm("web", RunState::Running);
        host.set_memory_stats("web", memory_stats(256 << 20));
        let (result, out, _) = capture(|io| dommemstat(&host, "web", false, io));
        result.expect("dommemstat");
        assert!(out.starts_with("actual 262144\n"), "{out}");
        assert!(
            out.contains("unused 102400\n") && out.contains("rss 30720\n"),
            "{out}"
        );
    }
}
