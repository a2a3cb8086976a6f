//! The real-Linux tier's test side (DESIGN §7): where a scenario runs, and the fixtures
//! scenarios share (a VMUX_HOME of their own, the `vmux` binary, a Linux guest's shell).
//!
//! A scenario is a `#[test]` whose body calls [`scenario`]. The body runs here when this
//! process can boot Linux itself: inside the tier's L1 machine (`VMUX_LINUX_TIER_INNER=1`, set
//! by `scripts/linux-tier.sh`) or on a host whose CPU has vmx/svm. Elsewhere the first
//! scenario runs `scripts/linux-tier.sh` once with this very test binary and the same test
//! filters, which boots L1 under QEMU's TCG and runs every selected scenario in it; each
//! scenario then reports the result L1 saw for it, with its log on failure.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

mod hang;

/// How long one `vmux` command of a scenario may run (a start waits for vmd at most 30 s).
pub const VMUX_COMMAND_BOUND: Duration = Duration::from_secs(240);
/// Kernel command line of the test guest.
pub const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
/// The guest shell's prompt (busybox sh as root in /).
const PROMPT: &str = "/ # ";
/// What the guest's init prints once it is up (followed by ", N cpus").
pub const BOOTED: &str = "vmux-linux-guest: booted";

/// The name of the enclosing function: a scenario's test name, as libtest prints it.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn f() {}
        let full = std::any::type_name_of_val(&f);
        let path = full.strip_suffix("::f").unwrap_or(full);
        path.rsplit("::").next().unwrap_or(path)
    }};
}

/// Why this host cannot boot Linux under vmux directly, or `None` when it can.
fn no_hardware_virtualization() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !hw_virt {
        return Some("this CPU reports no vmx/svm flag".into());
    }
    if !Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm is missing".into());
    }
    None
}

/// Why the nested tier cannot run here, or `None` when it can.
fn no_nested_tier() -> Option<String> {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
    };
    if !on_path("qemu-system-x86_64") && !on_path("apt-get") {
        return Some(
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86) and \
             apt-get is not available to install it"
                .into(),
        );
    }
    None
}

/// Runs scenario `name`: its body here when this host can boot Linux, else its result from
/// the nested tier.
pub fn scenario(name: &str, body: impl FnOnce()) {
    if std::env::var_os("VMUX_LINUX_TIER_INNER").is_some() {
        body();
        return;
    }
    if no_hardware_virtualization().is_none() {
        println!("real-Linux scenario {name}: running directly (hardware virtualization)");
        body();
        return;
    }
    if let Some(reason) = no_nested_tier() {
        let hw = no_hardware_virtualization().unwrap_or_default();
        let message = format!(
            "real-Linux scenario {name} cannot run: {hw}, and the nested tier needs QEMU: {reason}"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{message}");
        }
        println!("skipped: {message}");
        return;
    }
    let results = TIER.get_or_init(run_tier);
    let results = match results {
        Ok(results) => results,
        Err(message) => panic!("the real-Linux tier did not run: {message}"),
    };
    match results.outcomes.get(name) {
        Some(Outcome::Passed) => println!("real-Linux scenario {name}: passed in L1"),
        Some(Outcome::Failed(details)) => panic!(
            "real-Linux scenario {name} failed in L1 (logs in {}):\n{details}",
            results.run_dir.display()
        ),
        None => panic!(
            "real-Linux scenario {name} did not run in L1; see {}/l1-console.log and inner.log",
            results.run_dir.display()
        ),
    }
}

enum Outcome {
    Passed,
    Failed(String),
}

struct TierResults {
    run_dir: PathBuf,
    outcomes: HashMap<String, Outcome>,
}

static TIER: OnceLock<Result<TierResults, String>> = OnceLock::new();

/// The arguments of this test process that select tests, to hand on to L1 so that it runs
/// the same scenarios (`cargo test --test linux_boot hotplug` runs only those in L1 too).
fn forwarded_filters() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" | "--ignored" | "--include-ignored" => out.push(arg),
            "--skip" => {
                out.push(arg);
                out.extend(args.next());
            }
            "--test-threads" | "--color" | "--format" | "-Z" | "--logfile" | "--report-time" => {
                args.next();
            }
            _ if arg.starts_with('-') => {}
            _ => out.push(arg),
        }
    }
    out
}

fn run_tier() -> Result<TierResults, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linux-tier-run");
    let me = std::env::current_exe().map_err(|e| format!("cannot find this test binary: {e}"))?;
    println!(
        "real-Linux tier: no hardware virtualization here; booting L1 under QEMU TCG \
         (logs in {})",
        run_dir.display()
    );
    let status = Command::new("bash")
        .arg(repo.join("scripts/linux-tier.sh"))
        .arg("--test-binary")
        .arg(&me)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--")
        .args(forwarded_filters())
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run scripts/linux-tier.sh: {e}"))?;
    let log = std::fs::read_to_string(run_dir.join("inner.log")).map_err(|e| {
        format!(
            "scripts/linux-tier.sh ({status}) left no {}/inner.log: {e}",
            run_dir.display()
        )
    })?;
    Ok(TierResults {
        outcomes: parse_libtest(&log),
        run_dir,
    })
}

/// Each test's outcome in libtest's output, failures with their captured output.
fn parse_libtest(log: &str) -> HashMap<String, Outcome> {
    let mut outcomes = HashMap::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix(" ... ok") {
            outcomes.insert(name.to_string(), Outcome::Passed);
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            let header = format!("---- {name} stdout ----");
            let details = log
                .split_once(&header)
                .map(|(_, after)| {
                    after
                        .split("\n---- ")
                        .next()
                        .unwrap_or(after)
                        .split("\nfailures:\n")
                        .next()
                        .unwrap_or(after)
                        .to_string()
                })
                .unwrap_or_else(|| "(no output captured)".into());
            outcomes.insert(name.to_string(), Outcome::Failed(details));
        }
    }
    outcomes
}

/// The guest kernel and initramfs (built by `scripts/make-linux-guest.sh`; L1 is handed a
/// prebuilt one in `VMUX_LINUX_GUEST`, since it cannot write the host's files).
pub fn guest_files() -> (PathBuf, PathBuf) {
    let dir = match std::env::var_os("VMUX_LINUX_GUEST") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("linux-guest");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-linux-guest.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg(&dir)
                .status()
                .expect("run make-linux-guest.sh");
            assert!(
                status.success(),
                "{} failed ({status}); it needs Debian's package mirrors",
                script.display()
            );
            dir
        }
    };
    (dir.join("vmlinuz"), dir.join("initrd.img"))
}

/// The tier's cloud image (`scripts/make-image-guest.sh`: Debian's layout, two real kernels,
/// grub's default the second, an init that applies a NoCloud seed and starts dropbear) and
/// the releases of its kernels: (image, the default entry's, the first entry's). L1 is handed
/// a prebuilt one in `VMUX_IMAGE_GUEST`.
pub fn image_guest() -> (PathBuf, String, String) {
    let dir = match std::env::var_os("VMUX_IMAGE_GUEST") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/linux-tier/image-guest");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-image-guest.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg(&dir)
                .status()
                .expect("run make-image-guest.sh");
            assert!(
                status.success(),
                "{} failed ({status}); it needs Debian's package mirrors",
                script.display()
            );
            dir
        }
    };
    let kernels = std::fs::read_to_string(dir.join("kernels.env")).expect("kernels.env");
    let release = |key: &str| {
        kernels
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in kernels.env: {kernels}"))
            .to_string()
    };
    (
        dir.join("debian-cloud.qcow2"),
        release("GENERIC"),
        release("CLOUD"),
    )
}

/// What the test guest's kernel prints when QEMU (`-M microvm -enable-kvm -cpu host`, the same
/// kernel, initramfs and command line, 512 MiB, `cpus` vCPUs) boots it on this host's KVM, up
/// to the guest's booted line: the reference vmux is compared with.
///
/// QEMU is the yardstick here, not what is tested: in the nested tier its guest now and then
/// hangs early in boot (L1's emulated SVM), so a boot that does not finish is tried once more.
pub fn qemu_boot_log(cpus: u32) -> String {
    let first = qemu_boot_once(cpus);
    if first.contains(BOOTED) {
        return first;
    }
    let last_line = first.lines().rev().find(|l| !l.trim().is_empty());
    println!(
        "QEMU's reference boot did not finish within {} s (last line: {:?}); trying once more",
        QEMU_BOOT_BOUND.as_secs(),
        last_line.unwrap_or("")
    );
    let text = qemu_boot_once(cpus);
    assert!(
        text.contains(BOOTED),
        "QEMU did not boot the test guest, twice; the second try printed:\n{text}"
    );
    text
}

/// How long QEMU's reference boot may take (it takes well under a minute in the nested tier).
const QEMU_BOOT_BOUND: Duration = Duration::from_secs(150);

/// One QEMU reference boot: what the guest printed until its booted line, or until
/// [`QEMU_BOOT_BOUND`].
fn qemu_boot_once(cpus: u32) -> String {
    let (kernel, initrd) = guest_files();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-M",
            "microvm",
            "-enable-kvm",
            "-cpu",
            "host",
            "-m",
            "512",
            "-smp",
        ])
        .arg(cpus.to_string())
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run qemu-system-x86_64");
    let mut output = child.stdout.take().expect("qemu's stdout");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = output.read(&mut buf) {
            sink.lock()
                .expect("qemu log")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + QEMU_BOOT_BOUND;
    while !log.lock().expect("qemu log").contains(BOOTED) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    log.lock().expect("qemu log").clone()
}

/// A scenario's own vmux: `VMUX_HOME` in a temp dir, the `vmux` binary, and a log of what
/// it did (kept in the tier's run directory).
pub struct Lab {
    /// The scenario's name (log file names).
    pub name: String,
    home: tempfile::TempDir,
    log: Mutex<String>,
    /// Every console transcript a [`Shell`] collected, for the log.
    consoles: Mutex<Vec<(String, Arc<Mutex<String>>)>>,
}

impl Lab {
    /// A fresh `VMUX_HOME` with the default pool.
    pub fn new(name: &str) -> Lab {
        let lab = Lab {
            name: name.to_string(),
            home: tempfile::tempdir().expect("tempdir"),
            log: Mutex::new(String::new()),
            consoles: Mutex::new(Vec::new()),
        };
        lab.ok(&["pool-list"]);
        lab
    }

    /// The `VMUX_HOME` directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The default pool's directory.
    pub fn pool(&self) -> PathBuf {
        self.home().join("data/images")
    }

    /// A real client of this home (for console streams).
    pub fn host(&self) -> vmux::client::LocalHost {
        vmux::client::LocalHost::with_home(self.home())
            .with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")))
    }

    /// Appends a line to the scenario log, and to its file at once (a scenario stopped for
    /// running too long leaves what it did).
    pub fn note(&self, text: &str) {
        let mut log = self.log.lock().expect("log");
        log.push_str(text);
        log.push('\n');
        if let Some(path) = self.log_path() {
            let _ = std::fs::write(path, log.as_bytes());
        }
    }

    /// The scenario log's file in the tier's run directory, when there is one.
    fn log_path(&self) -> Option<PathBuf> {
        let dir = std::env::var_os("VMUX_TIER_RUN_DIR")?;
        Some(
            Path::new(&dir)
                .join("scenarios")
                .join(format!("{}.log", self.name)),
        )
    }

    /// The last `lines` lines of each VM's vmd.log, each under a heading.
    fn vmd_logs(&self, lines: usize) -> String {
        let mut text = String::new();
        let Ok(vms) = std::fs::read_dir(self.home().join("state/vms")) else {
            return text;
        };
        for vm in vms.flatten() {
            let log = std::fs::read_to_string(vm.path().join("vmd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            text.push_str(&format!(
                "\n--- last lines of {}/vmd.log ---\n",
                vm.file_name().to_string_lossy()
            ));
            for line in tail.iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Runs `vmux args...`; one that runs past [`VMUX_COMMAND_BOUND`] is killed and fails
    /// the scenario with what it printed so far and the last words of each vmd (the failure
    /// message is all a CI log keeps of a scenario).
    pub fn vmux(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        self.note(&format!("$ vmux {} (started)", args.join(" ")));
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmux"))
            .args(args)
            .env("VMUX_HOME", self.home())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run vmux");
        let collect = |mut pipe: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
        let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for vmux") {
                break status;
            }
            if started.elapsed() > VMUX_COMMAND_BOUND {
                let processes = hang::report();
                let _ = child.kill();
                let _ = child.wait();
                let out = stdout.join().unwrap_or_default();
                let err = stderr.join().unwrap_or_default();
                self.note("(killed: past its bound)");
                panic!(
                    "vmux {} ran past {} s; it printed: {}{}{}{processes}",
                    args.join(" "),
                    VMUX_COMMAND_BOUND.as_secs(),
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err),
                    self.vmd_logs(25)
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let out = Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        self.note(&format!(
            "$ vmux {} ({:.1} s, {})\n{}{}",
            args.join(" "),
            started.elapsed().as_secs_f64(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        out
    }

    /// Runs `vmux args...`, failing the scenario unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.vmux(args);
        assert!(
            out.status.success(),
            "vmux {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `vmux ARGS --json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).expect("vmux --json prints JSON")
    }

    /// Defines VM `name` booting the test guest with `vcpus` and `extra` create options.
    pub fn define_linux(&self, name: &str, vcpus: u32, extra: &[&str]) {
        let (kernel, initrd) = guest_files();
        let vcpus = vcpus.to_string();
        let mut args = vec![
            "create",
            name,
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--initrd",
            initrd.to_str().expect("utf-8 path"),
            "--cmdline",
            CMDLINE,
            "--memory",
            "512M",
            "--vcpus",
            &vcpus,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// The VM's state as `vmux list --all --json` reports it.
    pub fn state(&self, name: &str) -> String {
        let list = self.json(&["list", "--all"]);
        list["vms"]
            .as_array()
            .and_then(|vms| vms.iter().find(|vm| vm["name"] == name))
            .and_then(|vm| vm["state"].as_str())
            .unwrap_or("missing")
            .to_string()
    }

    /// Waits until the VM's state is `want`.
    pub fn wait_state(&self, name: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let state = self.state(name);
            if state == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "VM {name} is '{state}', not '{want}', after {secs} s"
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// vmd's pid for a running VM.
    pub fn vmd_pid(&self, name: &str) -> u32 {
        let status = self.host();
        let status = vmux::client::Host::status(&status, name).expect("status");
        status.pid.expect("a running VM has a vmd pid")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Leave nothing running: a scenario that failed half-way still stops its VMs.
        if let Ok(list) = std::fs::read_dir(self.home().join("config/vms")) {
            for entry in list.flatten() {
                if let Some(vm) = entry.path().file_stem().and_then(|s| s.to_str()) {
                    let _ = Command::new(env!("CARGO_BIN_EXE_vmux"))
                        .args(["destroy", vm])
                        .env("VMUX_HOME", self.home())
                        .output();
                }
            }
        }
        if let Some(path) = self.log_path() {
            let mut text = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            for (vm, console) in self.consoles.lock().iter().flat_map(|c| c.iter()) {
                text.push_str(&format!("\n--- console of {vm} ---\n"));
                text.push_str(
                    &console
                        .lock()
                        .map(|c| c.replace('\r', ""))
                        .unwrap_or_default(),
                );
            }
            // A failed scenario: what each vmd said (the VM's own view of why it stopped).
            if thread::panicking() {
                text.push_str(&self.vmd_logs(60));
            }
            let _ = std::fs::write(path, text);
        }
    }
}

/// A Linux guest's serial console: everything it printed (collected on a thread), and its
/// shell to type into.
pub struct Shell {
    seen: Arc<Mutex<String>>,
    /// Set once the console stream ended (the VM ended, or its vmd did): nothing more will
    /// come, so a wait fails at once instead of at its bound.
    closed: Arc<std::sync::atomic::AtomicBool>,
    input: Box<dyn Write + Send>,
    marks: u32,
}

impl Shell {
    /// Opens VM `name`'s console, history included (so the boot log is there too).
    pub fn open(lab: &Lab, name: &str) -> Shell {
        let console = vmux::client::Host::console(&lab.host(), name, true).expect("console");
        let seen = Arc::new(Mutex::new(String::new()));
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sink, ended) = (Arc::clone(&seen), Arc::clone(&closed));
        let mut output = console.output;
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                sink.lock()
                    .expect("console text")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        lab.consoles
            .lock()
            .expect("consoles")
            .push((name.to_string(), Arc::clone(&seen)));
        Shell {
            seen,
            closed,
            input: console.input,
            marks: 0,
        }
    }

    /// Everything the console showed so far.
    pub fn text(&self) -> String {
        self.seen.lock().expect("console text").clone()
    }

    /// Whether the console stream has ended. Read before the text: the reader sets it after
    /// its last append, so text read afterwards is all there will be.
    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the console showed `needle` `count` times in all; fails at once if the
    /// console closes first (the VM ended).
    pub fn wait_for_nth(&self, needle: &str, count: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let closed = self.closed();
            if self.text().matches(needle).count() >= count {
                return;
            }
            assert!(
                !closed,
                "the console closed (the VM ended) before '{needle}' (#{count}); it showed:\n{}",
                self.text()
            );
            if Instant::now() >= deadline {
                panic!(
                    "no '{needle}' (#{count}) within {secs} s; console so far:\n{}{}",
                    self.text(),
                    hang::report()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the console showed `needle`.
    pub fn wait_for(&self, needle: &str, secs: u64) {
        self.wait_for_nth(needle, 1, secs);
    }

    /// Types `line` and Enter without waiting.
    pub fn send(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\n").as_bytes())
            .expect("type into the console");
    }

    /// Runs `command` in the guest's shell and returns its output and exit status, waiting
    /// at most `secs`. The end is found by a marker the shell prints (and its echo of the
    /// typed line cannot match, the quotes split it).
    pub fn run(&mut self, command: &str, secs: u64) -> (String, i32) {
        self.marks += 1;
        let mark = format!("@@end{}@@", self.marks);
        let split = format!("@@\"\"end{}@@", self.marks);
        let start = self.text().len();
        self.send(&format!("{command}; echo \"{split} $?\""));
        let needle = format!("{mark} ");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let closed = self.closed();
            let text = self.text();
            if let Some(at) = text[start..].find(&needle) {
                let after = &text[start + at + needle.len()..];
                let status: String = after.chars().take_while(char::is_ascii_digit).collect();
                if !status.is_empty() && after.len() > status.len() {
                    let output = text[start..start + at].to_string();
                    // Drop the echoed command line(s): output starts after the typed marker.
                    let output = output
                        .rsplit_once(&format!("end{}@@ $?\"", self.marks))
                        .map(|(_, o)| o.to_string())
                        .unwrap_or(output);
                    let output: Vec<&str> = output
                        .split('\n')
                        .map(|l| l.trim_end_matches('\r'))
                        .map(|l| l.trim_start_matches(PROMPT))
                        .filter(|l| !l.is_empty())
                        .collect();
                    return (output.join("\n"), status.parse().unwrap_or(-1));
                }
            }
            assert!(
                !closed,
                "the console closed (the VM ended) before `{command}` finished; it showed:\n{}",
                &text[start..]
            );
            assert!(
                Instant::now() < deadline,
                "`{command}` did not finish within {secs} s; console so far:\n{}",
                &text[start..]
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Turns off the guest tty's echo and the shell's prompt, so command output is not mixed
    /// with the typed (and line-wrapped) command or a prompt. Needed after every boot.
    pub fn quiet(&mut self) {
        self.ok("stty -echo; PS1=''", 30);
    }

    /// Runs `command`, failing the scenario unless it exits 0; returns its output.
    pub fn ok(&mut self, command: &str, secs: u64) -> String {
        let (output, status) = self.run(command, secs);
        assert_eq!(
            status, 0,
            "`{command}` exited {status} in the guest:\n{output}"
        );
        output
    }
}

/// Waits for `check` to return true, at most `secs`, failing with `what`.
pub fn wait_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Names of the threads of process `pid` (`vcpu0`, `blk1`, ...).
pub fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The files process `pid` holds open.
pub fn open_files(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Pings `ip` three times from this host: with `ping` where iputils is installed, else with
/// busybox's (which scripts/test.sh installs).
pub fn host_ping(ip: &str) -> Output {
    let args = ["-c", "3", "-W", "5", ip];
    match Command::new("ping").args(args).output() {
        Ok(out) => out,
        Err(_) => Command::new("busybox")
            .arg("ping")
            .args(args)
            .output()
            .expect("run busybox ping"),
    }
}

/// Runs a host tool, failing the scenario unless it succeeds; returns stdout.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_output_gives_each_outcome_and_failure_output() {
        let log = "running 2 tests\ntest a ... ok\ntest b ... FAILED\n\nfailures:\n\n\
                   ---- b stdout ----\nboom at line 3\n\n\nfailures:\n    b\n";
        let outcomes = parse_libtest(log);
        assert!(matches!(outcomes.get("a"), Some(Outcome::Passed)));
        match outcomes.get("b") {
            Some(Outcome::Failed(details)) => assert!(details.contains("boom at line 3")),
            _ => panic!("b should have failed"),
        }
    }

    /// A stand-in for the test binary: scenario `flaky` triple-faults on its first run only,
    /// `broken` on every run, `stalled`'s guest does not finish its first boot, `plain` fails
    /// a check of its own, `fine` passes. Each run of a scenario is counted in `runs/NAME`.
    const FAKE_TESTS: &str = r#"#!/bin/sh
name=$2
echo x >> "$FAKE_DIR/runs/$name"
runs=$(wc -l < "$FAKE_DIR/runs/$name")
sleep 0.1
crash() {
    echo '2026-12-07T00:00:00Z INFO  vmux::vmd::boot: boot ended: Crashed("triple fault (lost)")' \
        > "$FAKE_DIR/run/scenarios/$name.log"
}
case "$name:$runs" in
    flaky:1 | broken:*) crash; echo "test $name ... FAILED"; exit 101 ;;
    stalled:1)
        echo "test $name ... FAILED"
        echo "no 'vmux-linux-guest: booted, 1 cpus' (#1) within 240 s; console so far:"
        exit 101 ;;
    plain:*)
        echo "test $name ... FAILED"
        echo "no 'acked 40' (#1) within 240 s; console so far:"
        exit 101 ;;
    *) echo "test $name ... ok" ;;
esac
"#;

    /// Runs `run-scenarios.sh` over the scenarios `todo` with [`FAKE_TESTS`] as the test
    /// binary, in L1 (`in_l1`: CLEAN_UP=1, with `pkill` stubbed so it kills nothing here) or
    /// on a host, as scripts/linux-tier.sh does: when the script stops L1 for a fresh one
    /// (`left-for-fresh-l1`), it runs again with that scenario first and the unfinished rest.
    /// Returns the scratch directory, how many L1s ran, whether the last run succeeded, and
    /// every run's output.
    fn run_fake_scenarios(todo: &[&str], in_l1: bool) -> (tempfile::TempDir, usize, bool, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |p: &str| dir.path().join(p);
        for sub in ["runs", "run/scenarios", "bin"] {
            std::fs::create_dir_all(path(sub)).expect("mkdir");
        }
        std::fs::write(path("tests"), FAKE_TESTS).expect("fake tests");
        std::fs::write(path("bin/pkill"), "#!/bin/sh\nexit 0\n").expect("stub pkill");
        for file in ["tests", "bin/pkill"] {
            let status = Command::new("chmod").arg("+x").arg(path(file)).status();
            assert!(status.expect("chmod").success());
        }
        // An earlier scenario's log that says its guest crashed, dated in the future (L1's
        // clock is not the host's): it must not count for the scenarios run now.
        let old = path("run/scenarios/earlier.log");
        std::fs::write(&old, "boot ended: Crashed(\"triple fault (lost)\")\n").expect("log");
        let later = std::time::SystemTime::now() + Duration::from_secs(3600);
        let file = std::fs::File::options()
            .write(true)
            .open(&old)
            .expect("open");
        file.set_modified(later).expect("date the log");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/linux-tier/run-scenarios.sh");
        let system_path = std::env::var("PATH").unwrap_or_default();
        let mut left: Vec<String> = todo.iter().map(|s| s.to_string()).collect();
        let (mut text, mut l1s, mut success) = (String::new(), 0, false);
        while !left.is_empty() && l1s < 10 {
            l1s += 1;
            std::fs::write(path("run/todo"), left.join("\n") + "\n").expect("todo");
            let out = Command::new("sh")
                .arg(&script)
                .arg(path("tests"))
                .arg(path("run"))
                .args(["60", if in_l1 { "1" } else { "0" }])
                .env("FAKE_DIR", dir.path())
                .env("PATH", format!("{}:{system_path}", path("bin").display()))
                .output()
                .expect("run run-scenarios.sh");
            text.push_str(&String::from_utf8_lossy(&out.stdout));
            success = out.status.success();
            let outcomes = parse_libtest(&text);
            left.retain(|name| !outcomes.contains_key(name));
            let Ok(again) = std::fs::read_to_string(path("run/left-for-fresh-l1")) else {
                break;
            };
            std::fs::remove_file(path("run/left-for-fresh-l1")).expect("rm");
            let again = again.trim().to_string();
            left.retain(|name| *name != again);
            left.insert(0, again);
        }
        (dir, l1s, success, text)
    }

    #[test]
    fn in_l1_a_scenario_whose_guest_crashed_or_stalled_runs_again_in_a_fresh_l1() {
        let todo = ["flaky", "broken", "stalled", "plain", "fine"];
        let (dir, l1s, success, text) = run_fake_scenarios(&todo, true);
        let path = |p: &str| dir.path().join(p);
        assert!(!success, "two scenarios failed: {text}");
        let runs = |name: &str| {
            std::fs::read_to_string(path(&format!("runs/{name}")))
                .map(|r| r.lines().count())
                .unwrap_or(0)
        };
        assert_eq!(todo.map(runs), [2, 2, 2, 1, 1], "{text}");
        // L1 stops after flaky's crash, broken's first crash and stalled's stall.
        assert_eq!(l1s, 4, "{text}");
        let outcomes = parse_libtest(&text);
        let passed = |name: &str| matches!(outcomes.get(name), Some(Outcome::Passed));
        let failed = |name: &str| matches!(outcomes.get(name), Some(Outcome::Failed(_)));
        assert!(
            passed("flaky") && passed("stalled") && passed("fine"),
            "{text}"
        );
        assert!(failed("broken") && failed("plain"), "{text}");
        // Each scenario's result appears once, and the retries are said and kept.
        assert_eq!(text.matches("test flaky ...").count(), 1, "{text}");
        assert!(
            text.contains("vmux-tier: flaky failed in L1 because its guest triple-faulted"),
            "{text}"
        );
        assert!(
            text.contains("stalled failed in L1 because its guest's boot never reached"),
            "{text}"
        );
        let retried = std::fs::read_to_string(path("run/guest-retried")).expect("guest-retried");
        let retried: Vec<&str> = retried
            .lines()
            .map(|l| l.split(':').next().unwrap_or(l))
            .collect();
        assert_eq!(retried, ["flaky", "broken", "stalled"], "{text}");
        assert!(path("run/retried-flaky.log").is_file());
        assert!(path("run/retried-flaky-flaky.log").is_file());
    }

    #[test]
    fn on_a_host_a_triple_fault_is_not_retried() {
        let (dir, l1s, success, text) = run_fake_scenarios(&["flaky"], false);
        assert!(!success && l1s == 1, "{text}");
        assert!(matches!(
            parse_libtest(&text).get("flaky"),
            Some(Outcome::Failed(_))
        ));
        assert!(!dir.path().join("run/guest-retried").exists(), "{text}");
    }
}
