//! The suite's rule for missing prerequisites (tests/common/prereq.rs): outside CI a missing
//! prerequisite skips the test, saying what is missing and how to install it, and records the
//! skip for scripts/test.sh's summary; under CI it fails the test naming it; only hardware
//! virtualization may be missing under CI. The end-to-end cases re-run this test binary on
//! its ignored `needs_a_program_nobody_has` test, with and without `CI=true`.

mod common;

use common::prereq::{Missing, Need, SKIP_LOG, Verdict, append_skip, ci_value, met, verdict};
use std::process::{Command, Output};

/// A program no machine has, and the package that would not install it.
const NOBODY_HAS: Need = Need::program("vmux-test-no-such-program", "vmux-test-no-such-package");

fn tool_missing() -> Missing {
    Missing::new("`qemu-img` is not on PATH", "apt-get install qemu-utils")
}

fn no_hardware_virtualization() -> Missing {
    Missing {
        ci_may_skip: true,
        ..Missing::new("this CPU reports no vmx/svm flag", "run on another host")
    }
}

#[test]
fn nothing_missing_runs_the_test() {
    assert_eq!(verdict(&[], false), Verdict::Run);
    assert_eq!(verdict(&[], true), Verdict::Run);
}

#[test]
fn a_missing_tool_outside_ci_skips_naming_it_and_its_install_command() {
    let Verdict::Skip(reason) = verdict(&[tool_missing()], false) else {
        panic!("not a skip");
    };
    assert!(reason.contains("`qemu-img` is not on PATH"), "{reason}");
    assert!(reason.contains("apt-get install qemu-utils"), "{reason}");
}

#[test]
fn a_missing_tool_under_ci_fails_naming_it() {
    let Verdict::Fail(reason) = verdict(&[tool_missing()], true) else {
        panic!("not a failure");
    };
    assert!(reason.contains("`qemu-img` is not on PATH"), "{reason}");
    assert!(reason.contains("CI must run this test"), "{reason}");
}

#[test]
fn missing_hardware_virtualization_skips_even_under_ci() {
    assert!(matches!(
        verdict(&[no_hardware_virtualization()], true),
        Verdict::Skip(_)
    ));
}

#[test]
fn hardware_virtualization_does_not_excuse_another_missing_prerequisite_under_ci() {
    let Verdict::Fail(reason) = verdict(&[no_hardware_virtualization(), tool_missing()], true)
    else {
        panic!("not a failure");
    };
    assert!(reason.contains("qemu-img"), "{reason}");
}

#[test]
fn ci_is_any_value_but_empty_zero_or_false() {
    for yes in ["true", "1", "yes", "TRUE"] {
        assert!(ci_value(Some(yes)), "{yes}");
    }
    for no in [None, Some(""), Some("0"), Some("false"), Some("False")] {
        assert!(!ci_value(no), "{no:?}");
    }
}

#[test]
fn skips_append_one_line_each_to_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("skipped");
    append_skip(&log, "a::one", "reason one").expect("append");
    append_skip(&log, "b::two", "two\tlines\nhere").expect("append");
    let text = std::fs::read_to_string(&log).expect("read");
    assert_eq!(text, "a::one\treason one\nb::two\ttwo lines here\n");
}

/// Needs a program nobody has; run only as a child process by the tests below.
#[test]
#[ignore = "helper: run as a child process by the prerequisite-rule tests"]
fn needs_a_program_nobody_has() {
    if !met(&[NOBODY_HAS]) {
        return;
    }
    panic!("the program nobody has was found");
}

/// Runs the helper test in a child process, with `CI` set to `ci` (or unset) and the skip log
/// in `log`.
fn run_helper(ci: Option<&str>, log: &std::path::Path) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args(["--exact", "needs_a_program_nobody_has", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(SKIP_LOG, log)
        .env_remove("CI");
    if let Some(value) = ci {
        command.env("CI", value);
    }
    command.output().expect("run the helper test")
}

#[test]
fn under_ci_a_test_missing_a_program_fails_and_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("skipped");

    let out = run_helper(Some("true"), &log);

    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("`vmux-test-no-such-program` is not on PATH"),
        "{text}"
    );
    assert!(
        text.contains("apt-get install vmux-test-no-such-package"),
        "{text}"
    );
    assert!(!log.exists(), "a failure is not a skip");
}

#[test]
fn outside_ci_a_test_missing_a_program_passes_and_its_skip_is_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("skipped");

    let out = run_helper(None, &log);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped: prereq_rule::needs_a_program_nobody_has: "),
        "{stderr}"
    );
    let logged = std::fs::read_to_string(&log).expect("the skip log");
    assert_eq!(
        logged,
        "prereq_rule::needs_a_program_nobody_has\t`vmux-test-no-such-program` is not on PATH \
         (fix: apt-get install vmux-test-no-such-package)\n"
    );
}
