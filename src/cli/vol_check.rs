//! `vmux vol-check POOL VOLUME [--repair] [--json]`: the qcow2 refcount check of a volume,
//! printed like `qemu-img check` and with its exit statuses: 0 clean (or repaired), 2 errors
//! left, 3 only leaked clusters left.

use crate::client::StorageHost;
use crate::storage::qcow2_repair::CheckReport;
use std::io::Write;
use std::process::ExitCode;

/// Checks (or repairs) `pool`/`volume` and prints the outcome to `out`.
pub fn run(
    storage: &dyn StorageHost,
    pool: &str,
    volume: &str,
    repair: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let report = storage.check_volume(pool, volume, repair)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print(&report, &format!("{pool}/{volume}"), pool, volume, out)?;
    }
    Ok(exit_code(&report))
}

/// 0 when nothing is left to fix, 3 when only leaks are, 2 otherwise (`qemu-img check`).
fn exit_code(report: &CheckReport) -> ExitCode {
    if report.repaired || report.is_clean() {
        ExitCode::SUCCESS
    } else if report.damage == 0
        && report.errors + report.copied_flags + report.refcount_structure == 0
        && !report.dirty
    {
        ExitCode::from(3)
    } else {
        ExitCode::from(2)
    }
}

fn print(
    report: &CheckReport,
    label: &str,
    pool: &str,
    volume: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if report.is_clean() {
        return writeln!(
            out,
            "No errors were found on {label} ({} of {} clusters in use).",
            report.allocated_clusters, report.file_clusters
        );
    }
    for problem in &report.problems {
        writeln!(out, "{problem}")?;
    }
    let shown = report.problems.len() as u64;
    let total = report.damage
        + report.errors
        + report.leaks
        + report.copied_flags
        + report.refcount_structure;
    if total > shown {
        writeln!(out, "... and {} more", total - shown)?;
    }
    if report.repaired {
        writeln!(
            out,
            "{label}: {} found and repaired; it checks clean now.",
            report.summary()
        )
    } else if report.damage > 0 {
        writeln!(
            out,
            "{label}: {}. The damage is beyond a refcount repair: copy the data out with `qemu-img convert`, or try `qemu-img check -r all` on a copy.",
            report.summary()
        )
    } else {
        writeln!(
            out,
            "{label}: {}. Repair it with `vmux vol-check {pool} {volume} --repair` while no VM uses it.",
            report.summary()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> CheckReport {
        CheckReport {
            path: "/p/a.qcow2".into(),
            allocated_clusters: 5,
            file_clusters: 6,
            ..CheckReport::default()
        }
    }

    fn printed(report: &CheckReport) -> String {
        let mut out = Vec::new();
        print(report, "default/a.qcow2", "default", "a.qcow2", &mut out).expect("print");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_clean_volume_says_so_and_exits_0() {
        let clean = report();
        assert!(printed(&clean).starts_with("No errors were found on default/a.qcow2"));
        assert_eq!(exit_code(&clean), ExitCode::SUCCESS);
    }

    #[test]
    fn leaks_only_exit_3_and_errors_exit_2_with_the_repair_command() {
        let leaks = CheckReport {
            leaks: 2,
            ..report()
        };
        assert_eq!(exit_code(&leaks), ExitCode::from(3));
        let errors = CheckReport {
            errors: 1,
            problems: vec!["ERROR cluster 4 refcount=0 reference=1".into()],
            ..report()
        };
        assert_eq!(exit_code(&errors), ExitCode::from(2));
        let text = printed(&errors);
        assert!(text.contains("ERROR cluster 4"), "{text}");
        assert!(
            text.contains("vmux vol-check default a.qcow2 --repair"),
            "{text}"
        );
    }

    #[test]
    fn a_repair_reports_what_it_fixed_and_exits_0() {
        let fixed = CheckReport {
            errors: 1,
            repaired: true,
            ..report()
        };
        assert_eq!(exit_code(&fixed), ExitCode::SUCCESS);
        assert!(printed(&fixed).contains("1 refcount error found and repaired"));
    }
}
