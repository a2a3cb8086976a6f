//! The one rule for what a test needs from the machine (a program on PATH, /dev/kvm, root's
//! network capabilities, hardware virtualization) and what happens when it is missing.
//!
//! A test names its [`Need`]s and asks [`met`] before doing anything:
//!
//! ```ignore
//! if !met(&[Need::Kvm, Need::program("qemu-img", "qemu-utils")]) {
//!     return;
//! }
//! ```
//!
//! * Everything there: the test runs.
//! * Something missing, outside CI: the test is skipped. It prints `skipped: <test>: <reason>`
//!   and appends `<test>\t<reason>` to the file `VMUX_SKIP_LOG` names, so `scripts/test.sh`
//!   can list every skipped test at the end (libtest swallows a passing test's output).
//! * Something missing under CI (`CI` set to anything but empty, `0` or `false`, as CI
//!   services and `.ci/run` set it): the test fails, naming what is missing and how to
//!   install it, so a broken install step cannot turn a suite green by not running it.
//!
//! The one prerequisite CI may lack is hardware virtualization ([`Need::HardwareVirtualization`]):
//! tests that need it have a nested-KVM equivalent that does run there.
//!
//! The library's unit tests use this same file (`crate::prereq`, src/lib.rs).
//!
//! A prerequisite found missing only while the test runs (a tool that refuses an option) goes
//! through [`settle`] with a [`Missing`] of its own. [`decide`] returns the verdict without
//! acting on it, for a test that wants to say more before skipping ([`record_skip`]).

use std::io::Write;
use std::path::Path;

/// The environment variable naming the file skipped tests are appended to.
pub const SKIP_LOG: &str = "VMUX_SKIP_LOG";

/// One thing a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A program on PATH, and the Debian package that installs it.
    Program {
        /// The executable's name.
        name: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// `/dev/kvm`, open for reading and writing.
    Kvm,
    /// CAP_NET_ADMIN (bridges, TAPs, nft) and CAP_SYS_ADMIN (`ip netns`): root.
    NetAdmin,
    /// A CPU with `vmx` or `svm`: a KVM that runs guest instructions instead of emulating
    /// them, which a stock Linux kernel needs to boot. The only need CI may lack.
    HardwareVirtualization,
}

impl Need {
    /// Program `name` on PATH, from Debian package `package`.
    pub const fn program(name: &'static str, package: &'static str) -> Need {
        Need::Program { name, package }
    }

    /// What is missing and how to get it, or `None` when the need is met.
    pub fn check(&self) -> Option<Missing> {
        match *self {
            Need::Program { name, package } => (!on_path(name)).then(|| {
                Missing::new(
                    format!("`{name}` is not on PATH"),
                    format!("apt-get install {package}"),
                )
            }),
            Need::Kvm => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .err()
                .map(|e| {
                    Missing::new(
                        format!("/dev/kvm cannot be opened ({e})"),
                        "enable KVM (modprobe kvm_intel or kvm_amd) and run as a user who may \
                         open /dev/kvm",
                    )
                }),
            Need::NetAdmin => (!has_net_admin()).then(|| {
                Missing::new(
                    "CAP_NET_ADMIN and CAP_SYS_ADMIN are missing",
                    "run the tests as root",
                )
            }),
            Need::HardwareVirtualization => (!has_hardware_virtualization()).then(|| Missing {
                ci_may_skip: true,
                ..Missing::new(
                    "this CPU reports no vmx/svm flag: its KVM emulates guest instructions \
                     and a stock Linux kernel does not finish booting on it",
                    "run on a host with hardware virtualization (or nested virtualization \
                     enabled)",
                )
            }),
        }
    }
}

/// A prerequisite that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, in words.
    pub what: String,
    /// How to get it.
    pub fix: String,
    /// Whether a CI run may skip for it (hardware virtualization only).
    pub ci_may_skip: bool,
}

impl Missing {
    /// A prerequisite CI must have: `what` is missing, `fix` gets it.
    pub fn new(what: impl Into<String>, fix: impl Into<String>) -> Missing {
        Missing {
            what: what.into(),
            fix: fix.into(),
            ci_may_skip: false,
        }
    }

    /// `what (fix: fix)`.
    pub fn reason(&self) -> String {
        format!("{} (fix: {})", self.what, self.fix)
    }
}

/// What a test does about its prerequisites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything is there.
    Run,
    /// Skip, for this reason.
    Skip(String),
    /// Fail, for this reason (CI lacks something it must have).
    Fail(String),
}

/// The verdict for `missing` prerequisites, under CI or not.
pub fn verdict(missing: &[Missing], ci: bool) -> Verdict {
    if missing.is_empty() {
        return Verdict::Run;
    }
    let reason = missing
        .iter()
        .map(Missing::reason)
        .collect::<Vec<_>>()
        .join("; ");
    if ci && missing.iter().any(|m| !m.ci_may_skip) {
        Verdict::Fail(format!(
            "a prerequisite is missing and CI must run this test: {reason}"
        ))
    } else {
        Verdict::Skip(reason)
    }
}

/// Whether this is a CI run: `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    ci_value(std::env::var("CI").ok().as_deref())
}

/// Whether a value of `CI` means a CI run.
pub fn ci_value(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// The needs that are not met.
pub fn check(needs: &[Need]) -> Vec<Missing> {
    needs.iter().filter_map(Need::check).collect()
}

/// The verdict for `needs` here and now, without acting on it.
pub fn decide(needs: &[Need]) -> Verdict {
    verdict(&check(needs), in_ci())
}

/// Whether the test may go on: `true` when every need is met; otherwise records the skip and
/// returns `false`, or (under CI) fails the test naming what is missing.
pub fn met(needs: &[Need]) -> bool {
    settle(check(needs))
}

/// [`met`] for prerequisites the test found missing itself.
pub fn settle(missing: Vec<Missing>) -> bool {
    match verdict(&missing, in_ci()) {
        Verdict::Run => true,
        Verdict::Skip(reason) => {
            record_skip(&reason);
            false
        }
        Verdict::Fail(reason) => panic!("{reason}"),
    }
}

/// Says that the running test is skipped and why: on stderr, and as a line in the file
/// `VMUX_SKIP_LOG` names, when it is set.
pub fn record_skip(reason: &str) {
    let test = test_name();
    eprintln!("skipped: {test}: {reason}");
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        append_skip(Path::new(&log), &test, reason)
            .unwrap_or_else(|e| panic!("cannot append to {SKIP_LOG} {}: {e}", log.display()));
    }
}

/// Appends `test\treason\n` to `log` in one write (tests run in parallel, in several
/// processes; `O_APPEND` keeps each line whole).
pub fn append_skip(log: &Path, test: &str, reason: &str) -> std::io::Result<()> {
    let line = format!("{test}\t{}\n", reason.replace(['\t', '\n'], " "));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?
        .write_all(line.as_bytes())
}

/// `<test binary>::<test>`: libtest names each test's thread after the test.
pub fn test_name() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    format!("{}::{test}", env!("CARGO_CRATE_NAME"))
}

/// Whether an executable file `name` is in a directory on PATH.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Whether this process has CAP_NET_ADMIN (bit 12) and CAP_SYS_ADMIN (bit 21) in effect.
fn has_net_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    effective & (1 << 12) != 0 && effective & (1 << 21) != 0
}

/// Whether the CPU reports `vmx` or `svm`.
fn has_hardware_virtualization() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// `qemu-img` (qemu-utils).
pub const QEMU_IMG: Need = Need::program("qemu-img", "qemu-utils");
/// `qemu-io` (qemu-utils).
pub const QEMU_IO: Need = Need::program("qemu-io", "qemu-utils");
/// `qemu-system-x86_64` (qemu-system-x86).
pub const QEMU_SYSTEM: Need = Need::program("qemu-system-x86_64", "qemu-system-x86");
/// `objdump` (binutils).
pub const OBJDUMP: Need = Need::program("objdump", "binutils");
/// `tmux`.
pub const TMUX: Need = Need::program("tmux", "tmux");
/// `ip` (iproute2).
pub const IP: Need = Need::program("ip", "iproute2");
/// `nft` (nftables).
pub const NFT: Need = Need::program("nft", "nftables");
/// `dnsmasq` (dnsmasq-base).
pub const DNSMASQ: Need = Need::program("dnsmasq", "dnsmasq-base");
/// `busybox` (its `udhcpc` and `ping`).
pub const BUSYBOX: Need = Need::program("busybox", "busybox");
/// `iasl` (acpica-tools), ACPICA's reference compiler (the ACPI unit tests).
pub const IASL: Need = Need::program("iasl", "acpica-tools");
/// `capsh` (libcap2-bin).
pub const CAPSH: Need = Need::program("capsh", "libcap2-bin");
/// What every network test needs: root and the programs a network runs.
pub const NETWORK: [Need; 5] = [Need::NetAdmin, IP, NFT, DNSMASQ, BUSYBOX];
