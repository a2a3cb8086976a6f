//! Shell completions and manual pages of the real `vmux` binary, in a private `VMUX_HOME`:
//! the scripts `vmux completions SHELL` prints are valid for their shell, and pressing Tab
//! (played through each shell's own completion entry point) offers verbs and the names of the
//! VMs, volumes and networks defined in that home. Without zsh or fish their tests skip,
//! saying so, or fail under CI (tests/common/prereq.rs; `apt-get install zsh fish` adds them).

mod common;

use common::prereq::{Missing, settle};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn vmux(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(args)
        .env("VMUX_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run vmux")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert!(out.status.success(), "vmux {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A home with VMs `web1` and `db`, volume `data.qcow2` and network `lab` defined.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "data.qcow2", "1M"]);
    ok(h, &["create", "web1", "--demo"]);
    ok(
        h,
        &["create", "db", "--demo", "--disk", "default/data.qcow2"],
    );
    std::fs::create_dir_all(h.join("config/networks")).expect("networks dir");
    std::fs::write(
        h.join("config/networks/lab.toml"),
        "name = \"lab\"\nmode = \"isolated\"\nbridge = \"vmux-lab\"\n\
         subnet = \"10.77.0.0/24\"\ngateway = \"10.77.0.1\"\n\
         dhcp_range = \"10.77.0.100-10.77.0.200\"\n",
    )
    .expect("a network definition");
    home
}

/// The path of `shell` when it is installed.
fn path_of(shell: &str) -> Option<String> {
    Command::new("sh")
        .args(["-c", &format!("command -v {shell}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The path of `shell`, which the test needs; `None` when it is missing (the test skips, or
/// fails under CI: tests/common/prereq.rs).
fn installed(shell: &str) -> Option<String> {
    let found = path_of(shell);
    if found.is_none() {
        settle(vec![Missing::new(
            format!("`{shell}` is not installed"),
            format!("apt-get install {shell}"),
        )]);
    }
    found
}

/// Writes `vmux completions SHELL` into the home and returns its path.
fn script(home: &Path, shell: &str) -> String {
    let text = ok(home, &["completions", shell]);
    let path = home.join(format!("vmux.{shell}"));
    std::fs::write(&path, text).expect("write script");
    path.display().to_string()
}

fn run_shell(home: &Path, shell: &str, args: &[&str]) -> Output {
    Command::new(shell)
        .args(args)
        .env("VMUX_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run the shell")
}

/// What bash offers for `line` (the words typed so far, the last one being completed).
fn bash_complete(home: &Path, words: &[&str]) -> Vec<String> {
    let script = script(home, "bash");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{script}'; COMP_WORDS=({}); COMP_CWORD={}; \
         _clap_complete_vmux vmux '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words.len() - 1,
        words.last().copied().unwrap_or_default(),
        words
            .get(words.len().saturating_sub(2))
            .copied()
            .unwrap_or_default(),
    );
    let out = run_shell(home, "bash", &["-c", &program]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_bash_script_is_valid_bash() {
    let home = home();
    let script = script(home.path(), "bash");
    let out = run_shell(home.path(), "bash", &["-n", &script]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_zsh_script_is_valid_zsh() {
    let Some(zsh) = installed("zsh") else {
        return;
    };
    let home = home();
    let script = script(home.path(), "zsh");
    let out = run_shell(home.path(), &zsh, &["-n", &script]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_fish_script_is_valid_fish() {
    let Some(fish) = installed("fish") else {
        return;
    };
    let home = home();
    let script = script(home.path(), "fish");
    let out = run_shell(home.path(), &fish, &["--no-execute", &script]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn bash_completes_verbs_and_flags() {
    let home = home();
    let verbs = bash_complete(home.path(), &["vmux", "vol-c"]);
    assert!(
        verbs.contains(&"vol-create-as".to_string()) && verbs.contains(&"vol-clone".to_string()),
        "{verbs:?}"
    );
    let flags = bash_complete(home.path(), &["vmux", "create", "x", "--max"]);
    assert_eq!(flags, ["--max-vcpus"]);
}

#[test]
fn bash_completes_the_defined_vms() {
    let home = home();
    let offered = bash_complete(home.path(), &["vmux", "start", ""]);
    assert!(
        offered.contains(&"web1".to_string()) && offered.contains(&"db".to_string()),
        "{offered:?}"
    );
    let offered = bash_complete(home.path(), &["vmux", "console", "w"]);
    assert_eq!(offered, ["web1"]);
}

#[test]
fn bash_completes_volumes_disks_and_networks() {
    let home = home();
    let volumes = bash_complete(home.path(), &["vmux", "vol-info", "default", ""]);
    assert!(volumes.contains(&"data.qcow2".to_string()), "{volumes:?}");
    let disks = bash_complete(home.path(), &["vmux", "create", "x", "--disk", "def"]);
    assert_eq!(disks, ["default/data.qcow2"]);
    let networks = bash_complete(home.path(), &["vmux", "net-start", ""]);
    assert!(
        networks.contains(&"lab".to_string()) && networks.contains(&"default".to_string()),
        "{networks:?}"
    );
}

#[test]
fn fish_completes_the_defined_vms() {
    let Some(fish) = installed("fish") else {
        return;
    };
    let home = home();
    let script = script(home.path(), "fish");
    let program = format!("source '{script}'; complete --do-complete 'vmux destroy '");
    let out = run_shell(home.path(), &fish, &["-c", &program]);
    let offered = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = offered
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default())
        .collect();
    assert!(
        names.contains(&"web1") && names.contains(&"db"),
        "{offered}"
    );
}

#[test]
fn zsh_completes_the_defined_vms() {
    if installed("zsh").is_none() {
        return;
    }
    let home = home();
    // What the zsh script's completer function runs for `vmux undefine <Tab>`.
    let out = Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(["--", "vmux", "undefine", ""])
        .env("VMUX_HOME", home.path())
        .env("COMPLETE", "zsh")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .env("_CLAP_IFS", "\n")
        .output()
        .expect("run vmux");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        offered.lines().any(|l| l == "web1") && offered.lines().any(|l| l == "db"),
        "{offered}"
    );
}

#[test]
fn a_verb_has_a_manual_page_from_the_same_definitions_as_its_help() {
    let home = tempfile::tempdir().expect("tempdir");
    let page = ok(home.path(), &["man", "attach-disk"]);
    assert!(page.contains(".TH vmux-attach-disk 1"), "{page}");
    let help = ok(home.path(), &["attach-disk", "--help"]);
    assert!(help.contains("--readonly") && page.contains("\\-\\-readonly"));
}

#[test]
fn man_dir_writes_one_page_per_verb() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("man1");
    let out = ok(home.path(), &["man", "--dir", dir.to_str().expect("utf-8")]);
    assert!(out.contains("manual pages written"), "{out}");
    for page in [
        "vmux.1",
        "vmux-create.1",
        "vmux-net-define-as.1",
        "vmux-completions.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} missing");
    }
    assert!(!dir.join("vmux-__vmd.1").exists());
}

#[test]
fn install_extras_puts_scripts_and_pages_where_the_shells_look() {
    let home = tempfile::tempdir().expect("tempdir");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-extras.sh");
    let out = Command::new(script)
        .args(["--user", env!("CARGO_BIN_EXE_vmux")])
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("run install-extras.sh");
    assert!(out.status.success(), "{out:?}");
    let data = home.path().join(".local/share");
    let bash = std::fs::read_to_string(data.join("bash-completion/completions/vmux"))
        .expect("bash script");
    assert!(bash.contains(env!("CARGO_BIN_EXE_vmux")), "{bash}");
    assert!(data.join("man/man1/vmux-create.1").is_file());
    if path_of("fish").is_some() {
        assert!(
            home.path()
                .join(".config/fish/completions/vmux.fish")
                .is_file()
        );
    }
    if path_of("zsh").is_some() {
        assert!(data.join("zsh/site-functions/_vmux").is_file());
    }
}
