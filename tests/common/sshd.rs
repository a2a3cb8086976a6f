//! A test sshd on loopback: Debian's openssh-server on a free port of 127.0.0.1, with its own
//! host key and a client key made here, whose logins run `vmux agent --stdio` (this build) with
//! their own `VMUX_HOME`, the "remote" host's. Tests reach it through an `ssh` wrapper first on
//! PATH that adds a config file naming it `vmux-test-remote`, so `vmux --connect
//! ssh://vmux-test-remote` goes through the system ssh exactly as users' connections do.
//!
//! Other names in that config, for the ways a connection fails: `vmux-test-closed` (a port
//! nothing listens on), `vmux-test-stranger` (a key the server does not accept),
//! `vmux-test-novmux` (a login whose shell cannot find vmux) and `vmux-test-future` (an agent
//! that says it speaks another protocol version).
//!
//! Nothing here is host-global: the port comes from the kernel, every file is in a temp dir.

use super::prereq::{Need, met};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The prerequisites: the ssh client and server and ssh-keygen.
pub const NEEDS: &[Need] = &[
    Need::program("sshd", "openssh-server"),
    Need::program("ssh", "openssh-client"),
    Need::program("ssh-keygen", "openssh-client"),
];

/// A running test sshd and the client side's files.
pub struct TestSshd {
    /// Holds every file.
    pub dir: tempfile::TempDir,
    /// The remote host's `VMUX_HOME`.
    pub remote_home: PathBuf,
    /// Put first on PATH: holds the `ssh` wrapper.
    pub bin: PathBuf,
    /// The port sshd listens on.
    pub port: u16,
    child: Child,
}

/// The address tests connect to.
pub const URI: &str = "ssh://vmux-test-remote";

impl TestSshd {
    /// Starts one; `None` (skipped, or failed under CI) when the prerequisites are missing.
    pub fn start() -> Option<TestSshd> {
        if !met(NEEDS) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let remote_home = d.join("remote-home");
        std::fs::create_dir_all(&remote_home).expect("remote home");
        for key in ["host_key", "client_key", "stranger_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-C")
                .arg(key)
                .arg("-f")
                .arg(d.join(key)));
        }
        let vmux = env!("CARGO_BIN_EXE_vmux");
        let client_pub = read(&d.join("client_key.pub"));
        let future_hello =
            r#"{\"t\":\"hello\",\"protocol\":999,\"vmux\":\"99.0.0\",\"host\":\"future\"}"#;
        // Each login picks its behaviour from the key's forced command; the "novmux" login runs
        // what the client asked (`<VMUX_REMOTE_VMUX> agent --stdio`) in a shell without vmux.
        let keys = format!(
            "command=\"if [ \\\"$SSH_ORIGINAL_COMMAND\\\" = 'vmux-future agent --stdio' ]; then echo '{future_hello}'; sleep 5; elif [ \\\"$SSH_ORIGINAL_COMMAND\\\" != 'vmux agent --stdio' ]; then PATH=/usr/bin:/bin; eval \\\"$SSH_ORIGINAL_COMMAND\\\"; else VMUX_HOME={home} exec {vmux} agent --stdio; fi\",no-pty,no-port-forwarding,no-agent-forwarding {client_pub}",
            home = remote_home.display(),
        );
        std::fs::write(d.join("authorized_keys"), keys).expect("authorized_keys");
        let user = user_name();
        for attempt in 0.. {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\n\
                     StrictModes no\nUsePAM no\nPrintMotd no\nPrintLastLog no\nAllowUsers {user}\n",
                    d = d.display()
                ),
            )
            .expect("sshd_config");
            if nix_is_root() {
                // sshd's privilege-separation directory (Debian's unit makes it at boot).
                let _ = std::fs::create_dir_all("/run/sshd");
            }
            let sshd = which("sshd").expect("sshd is on PATH (checked above)");
            let log = std::fs::File::create(d.join("sshd.log")).expect("sshd log");
            let mut child = Command::new(sshd)
                .args(["-D", "-e", "-f"])
                .arg(d.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start sshd");
            if wait_for_port(port, &mut child) {
                let known = format!("vmux-test-remote {}", read(&d.join("host_key.pub")));
                std::fs::write(d.join("known_hosts"), known).expect("known_hosts");
                let bin = d.join("bin");
                write_client_config(d, port, &user);
                return Some(TestSshd {
                    remote_home,
                    bin,
                    port,
                    child,
                    dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                attempt < 3,
                "sshd did not start: {}",
                read(&d.join("sshd.log"))
            );
        }
        unreachable!("the loop returns or fails")
    }

    /// PATH with the ssh wrapper first.
    pub fn path(&self) -> String {
        format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// A `vmux` command with the wrapper on PATH and `VMUX_HOME` set to a local home.
    pub fn vmux(&self, local_home: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmux"));
        command
            .env("PATH", self.path())
            .env("VMUX_HOME", local_home)
            .env_remove("VMUX_CONNECT")
            .env_remove("VMUX_REMOTE_VMUX");
        command
    }

    /// sshd's log so far (for failure messages).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("sshd.log"))
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ssh config and wrapper that name the test hosts.
fn write_client_config(d: &Path, port: u16, user: &str) {
    let closed = free_port();
    let common = format!(
        "  HostName 127.0.0.1\n  User {user}\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
         StrictHostKeyChecking yes\n  HostKeyAlias vmux-test-remote\n  IdentitiesOnly yes\n  LogLevel ERROR\n",
        d = d.display()
    );
    let config = format!(
        "Host vmux-test-remote vmux-test-novmux vmux-test-future\n  Port {port}\n  IdentityFile {d}/client_key\n{common}\
         Host vmux-test-stranger\n  Port {port}\n  IdentityFile {d}/stranger_key\n{common}\
         Host vmux-test-closed\n  Port {closed}\n  IdentityFile {d}/client_key\n{common}",
        d = d.display()
    );
    std::fs::write(d.join("ssh_config"), config).expect("ssh_config");
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let ssh = which("ssh").expect("ssh is on PATH (checked above)");
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} -F {}/ssh_config \"$@\"\n",
            ssh.display(),
            d.display()
        ),
    )
    .expect("ssh wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .expect("wrapper mode");
}

fn run(command: &mut Command) {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for_port(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&format!("{path}:/usr/sbin:/sbin"))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nix_is_root() -> bool {
    user_name() == "root"
}
