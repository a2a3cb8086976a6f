//! The command line grammar (clap derive): global options and one variant per verb.
//!
//! `main.rs` parses [`Args`]; [`crate::cli::run`] executes them. Sizes and paths stay as the
//! user typed them here and are checked by the verbs, so every refusal names the fix.

use super::complete;
use crate::config::MacAddr;
use clap::{Args as ClapArgs, Parser, Subcommand};
use clap_complete::ArgValueCandidates;
use std::path::PathBuf;

/// `vmux`: with no subcommand, the full-screen interface; otherwise one virsh-like verb.
#[derive(Debug, Parser)]
#[command(
    name = "vmux",
    version,
    about = "virt-manager in a terminal: a TUI and virsh-like CLI over an embedded KVM engine",
    after_help = "Run `vmux` with no command for the full-screen interface.\n\
                  Files live under VMUX_HOME=<dir> when set (else XDG directories).\n\
                  Logging: VMUX_LOG=debug (error, warn, info, debug, trace) to stderr.\n\
                  Exit status: 0 success, 1 failure, 2 usage error.\n\
                  Every read command takes --json; docs/cli.md documents the shapes."
)]
pub struct Args {
    /// Colour theme of the full-screen interface (dark, light, high-contrast, 16-colour or
    /// a theme file's name); only for `vmux` without a command.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
    /// Manage the VMs, storage and networks of another host, reached with the system ssh
    /// (like `virsh -c`): ssh://[user@]host[:port]. That host needs the same vmux installed.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "URI",
        env = "VMUX_CONNECT"
    )]
    pub connect: Option<crate::remote::Target>,
    /// What to do; none starts the full-screen interface.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Define a new VM from options (and optionally start it).
    Create(CreateArgs),
    /// Define a new VM from a TOML definition file (the name comes from the file).
    Define {
        /// The definition file, as `vmux dumpconfig` writes it.
        file: PathBuf,
    },
    /// Print a VM's definition as TOML (or JSON).
    Dumpconfig {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Edit a VM's definition in $VISUAL / $EDITOR; it is checked before it is saved.
    Edit {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
    },
    /// Delete a VM's definition (the VM must be shut off).
    Undefine {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Also delete the VM's snapshot metadata (its disk images stay); without it a VM
        /// with snapshots is refused.
        #[arg(long)]
        snapshots_metadata: bool,
    },
    /// List running and paused VMs (all defined VMs with --all).
    List {
        /// Also list shut-off and crashed VMs.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a VM's definition and live state.
    Info {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a running VM's CPU, memory, exit and console counters.
    Stats {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a VM (resuming its managed save, if it has one).
    Start {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Attach to its console once it runs.
        #[arg(long)]
        console: bool,
        /// Discard the VM's managed save and boot it afresh.
        #[arg(long)]
        force_boot: bool,
    },
    /// Press the VM's power button and wait until the guest has shut off.
    Shutdown {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Seconds to wait for the guest before giving up.
        #[arg(long, value_name = "S", default_value_t = 60)]
        timeout: u64,
        /// Return right after pressing the power button.
        #[arg(long, conflicts_with = "timeout")]
        no_wait: bool,
    },
    /// Stop a VM at once, like pulling the plug.
    Destroy {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
    },
    /// Reboot a VM gracefully (power button, then boot again).
    Reboot {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
    },
    /// Reset a VM at once (hard reset, boots again).
    Reset {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
    },
    /// Pause a VM's vCPUs.
    Suspend {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
    },
    /// Resume a suspended VM.
    Resume {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
    },
    /// Mark a VM to start with `vmux autostart-all` (or clear the mark).
    Autostart {
        /// VM name.
        #[arg(add = ArgValueCandidates::new(complete::vm_names))]
        name: String,
        /// Clear the mark instead.
        #[arg(long)]
        disable: bool,
    },
    /// Start every autostart VM that is not running (for host boot).
    AutostartAll,
    /// Change a VM's vCPU count: live (the guest onlines or ejects them), in the definition,
    /// or both. Default: live when the VM runs, the definition when it does not.
    Setvcpus(SetvcpusArgs),
    /// Attach a disk (a pool volume or an image path): live (hot-add; the guest drives it), in
    /// the definition, or both. Default: live when the VM runs, the definition when not.
    AttachDisk(AttachDiskArgs),
    /// Detach a disk: live (the guest is asked to eject it; the image is closed once it has),
    /// from the definition, or both. Default: live when the VM runs, the definition when not.
    DetachDisk(DetachDiskArgs),
    /// Save a running VM's memory and device state to a file and stop it (as `virsh save`;
    /// disks are not copied). `vmux restore FILE` continues it.
    Save(SaveArgs),
    /// Start a VM from a save file, where it was saved.
    Restore(RestoreArgs),
    /// Save a running VM to its managed save and stop it; the next `vmux start` resumes it.
    Managedsave {
        /// VM name.
        name: String,
        /// Resume it running.
        #[arg(long, conflicts_with = "paused")]
        running: bool,
        /// Resume it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Discard a VM's managed save (its next start boots afresh).
    ManagedsaveRemove {
        /// VM name.
        name: String,
    },
    /// Change the memory a VM's guest keeps, through the memory balloon: live (the guest gives
    /// the rest back), in the definition (next start), or both. Never above the defined
    /// memory. Default: live when the VM runs, the definition when it does not.
    Setmem(SetmemArgs),
    /// Show a running VM's balloon and the guest's memory statistics (virsh's names, KiB).
    Dommemstat {
        /// VM name.
        name: String,
        /// Print JSON (bytes).
        #[arg(long)]
        json: bool,
    },
    /// Attach to a VM's serial console (Ctrl-] detaches; the VM keeps running).
    Console(ConsoleArgs),
    /// Boot a kernel in the foreground, console on stdin/stdout, like `qemu -kernel`
    /// (nothing is defined or saved; Ctrl-] stops the VM).
    #[command(
        after_help = "Exit status: 0 when the guest powers off (or on Ctrl-]); v when it \
                            writes v to the debug-exit port 0xf4 (255 for v > 255); 1 when the \
                            VM crashes (the reason on stderr) or cannot boot; 128+N on signal N."
    )]
    Run(RunArgs),
    /// Storage verbs (`pool-list`, `vol-create-as`, `snapshot-create`, ...).
    #[command(flatten)]
    Storage(super::storage::StorageCommand),
    /// Network verbs (`net-list`, `net-start`, `domifaddr`, ...).
    #[command(flatten)]
    Network(super::network::NetworkCommand),
    /// Print the shell completion script for bash, zsh or fish (verbs, flags, and the names of
    /// VMs, pools, volumes and networks as they are when you press Tab).
    #[command(
        after_help = "Load it for this shell: source <(vmux completions bash)\n\
                            Install it: scripts/setup.sh offers to, or write it where your shell \
                            looks (bash-completion: ~/.local/share/bash-completion/completions/vmux)."
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: complete::Shell,
    },
    /// Serve this host's VMs, storage and networks on stdin/stdout, for a vmux on another
    /// machine that connects with `--connect ssh://this-host` (ssh runs it; people rarely do).
    #[command(after_help = "The frames are JSON lines; docs/host-protocol.md describes them.")]
    Agent {
        /// Serve on stdin/stdout (the only transport).
        #[arg(long, required = true)]
        stdio: bool,
    },
    /// Print the manual page (roff) of vmux or of one verb, or write them all into a directory.
    #[command(after_help = "Read one: vmux man create | man -l -")]
    Man {
        /// The verb (default: vmux itself).
        verb: Option<String>,
        /// Write vmux.1 and vmux-VERB.1 for every verb into this directory instead.
        #[arg(long, value_name = "DIR", conflicts_with = "verb")]
        dir: Option<PathBuf>,
    },
}

/// The boot sources `vmux create` takes, as its "give a boot source" error lists them: the
/// `id`s of [`CreateArgs`]'s boot flags (the `boot` group) and how each is written. A new
/// source is one more line here and a flag in the group.
pub const BOOT_SOURCES: &[(&str, &str)] = &[
    ("demo", "--demo"),
    ("kernel", "--kernel PATH"),
    ("image", "--image POOL/VOL|PATH"),
];

/// `vmux create`.
#[derive(Debug, ClapArgs)]
#[command(group = clap::ArgGroup::new("boot").multiple(false))]
pub struct CreateArgs {
    /// VM name: 1-64 characters from A-Z a-z 0-9 . _ -
    pub name: String,
    /// Boot the built-in demo guest.
    #[arg(long, group = "boot")]
    pub demo: bool,
    /// Kernel to boot (bzImage, vmlinux or static ELF64).
    #[arg(long, value_name = "PATH", group = "boot")]
    pub kernel: Option<PathBuf>,
    /// Initramfs to load with the kernel.
    #[arg(
        long,
        value_name = "PATH",
        requires = "kernel",
        conflicts_with_all = ["demo", "image"]
    )]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(
        long,
        value_name = "STR",
        requires = "kernel",
        conflicts_with_all = ["demo", "image"]
    )]
    pub cmdline: Option<String>,
    /// A distribution disk image (POOL/VOLUME, or the path of a downloaded image, used in
    /// place as the VM's disk): it becomes disk vda, and vmux boots the kernel its own /boot
    /// names (grub.cfg's default entry, BLS entries, or /vmlinuz), found again at every start.
    #[arg(
        long,
        value_name = "POOL/VOL|PATH",
        group = "boot",
        add = ArgValueCandidates::new(complete::disk_sources)
    )]
    pub image: Option<String>,
    /// With --image: leave the image unchanged and give the VM a new qcow2 overlay on it
    /// (default/NAME.qcow2), so many VMs can share one base image.
    #[arg(long, requires = "image", conflicts_with_all = ["demo", "kernel"])]
    pub linked: bool,
    /// With --image: words to append to the boot entry's kernel command line.
    #[arg(
        long,
        value_name = "STR",
        requires = "image",
        conflicts_with_all = ["demo", "kernel"]
    )]
    pub cmdline_extra: Option<String>,
    /// With --image: configure the guest at first boot with cloud-init (a NoCloud seed disk):
    /// user=NAME, ssh-key=FILE (default: your ~/.ssh/id_*.pub), root-password=generate|PASS,
    /// user-password=generate|PASS, hostname=NAME, user-data=FILE, network-config=FILE.
    #[arg(
        long,
        value_name = "OPTS",
        requires = "image",
        conflicts_with_all = ["demo", "kernel"],
        num_args = 0..=1,
        default_missing_value = ""
    )]
    pub cloud_init: Option<String>,
    /// Guest memory (256M, 2G, ...); default 256M.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// vCPUs at boot.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: u32,
    /// Most vCPUs the VM can be hot-added up to; default twice --vcpus, at least 4.
    #[arg(long, value_name = "N")]
    pub max_vcpus: Option<u32>,
    /// Start with `vmux autostart-all`.
    #[arg(long)]
    pub autostart: bool,
    /// A disk: `POOL/VOLUME` or an absolute image path, with options
    /// `,readonly`, `,target=vdb`, `,serial=ID` (repeatable; first is vda).
    #[arg(long = "disk", value_name = "SPEC", add = ArgValueCandidates::new(complete::disk_sources))]
    pub disks: Vec<crate::config::DiskConfig>,
    /// Give the VM a NIC on this network (repeatable: one NIC each, in order).
    #[arg(long = "network", value_name = "NET", add = ArgValueCandidates::new(complete::network_names))]
    pub networks: Vec<String>,
    /// MAC address of the NIC of the --network in the same position (default: a generated
    /// 52:54:00 address).
    #[arg(long = "mac", value_name = "MAC", value_parser = parse_mac)]
    pub macs: Vec<MacAddr>,
    /// Start the VM right after defining it.
    #[arg(long)]
    pub start: bool,
    /// Print what was defined as JSON (generated passwords included: shown once).
    #[arg(long)]
    pub json: bool,
}

/// `vmux setvcpus`.
#[derive(Debug, ClapArgs)]
pub struct SetvcpusArgs {
    /// VM name.
    #[arg(add = ArgValueCandidates::new(complete::vm_names))]
    pub name: String,
    /// vCPUs wanted (1 to the VM's max_vcpus).
    pub count: u32,
    /// Change the running VM (hot-add or remove).
    #[arg(long)]
    pub live: bool,
    /// Change the definition (takes effect at the next start).
    #[arg(long)]
    pub config: bool,
}

/// `vmux attach-disk`.
#[derive(Debug, ClapArgs)]
pub struct AttachDiskArgs {
    /// VM name.
    #[arg(add = ArgValueCandidates::new(complete::vm_names))]
    pub name: String,
    /// The image: <pool>/<volume> (like default/data.qcow2) or an absolute path.
    #[arg(add = ArgValueCandidates::new(complete::disk_sources))]
    pub source: String,
    /// Guest device name (vda..vdz); default: the first free one.
    #[arg(long, value_name = "vdX")]
    pub target: Option<String>,
    /// The guest cannot write the disk; the image is opened read-only.
    #[arg(long)]
    pub readonly: bool,
    /// Serial number the guest reads (at most 20 characters).
    #[arg(long, value_name = "TEXT")]
    pub serial: Option<String>,
    /// The image's format, raw or qcow2 (default: the pool's record, else the file name's
    /// extension; never guessed from the content).
    #[arg(long, value_name = "FORMAT", value_parser = parse_image_format)]
    pub format: Option<crate::config::ImageFormat>,
    /// Let the image use this backing file outside the storage pools (repeatable).
    #[arg(long = "allow-backing", value_name = "PATH")]
    pub allow_backing: Vec<PathBuf>,
    /// Hot-add to the running VM.
    #[arg(long)]
    pub live: bool,
    /// Add to the definition (takes effect at the next start).
    #[arg(long)]
    pub config: bool,
}

fn parse_image_format(text: &str) -> Result<crate::config::ImageFormat, String> {
    text.parse()
}

/// `vmux detach-disk`.
#[derive(Debug, ClapArgs)]
pub struct DetachDiskArgs {
    /// VM name.
    #[arg(add = ArgValueCandidates::new(complete::vm_names))]
    pub name: String,
    /// The disk's guest device name (vdb).
    pub target: String,
    /// Remove from the running VM (the guest ejects it).
    #[arg(long)]
    pub live: bool,
    /// Remove from the definition (takes effect at the next start).
    #[arg(long)]
    pub config: bool,
    /// Take it from the running VM at once, without asking the guest (for a guest that does
    /// not answer): what the guest has not written to it is lost.
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for the guest to eject the disk before returning.
    #[arg(long, value_name = "S", default_value_t = 10, conflicts_with = "force")]
    pub timeout: u64,
}

/// `vmux save`.
#[derive(Debug, ClapArgs)]
pub struct SaveArgs {
    /// VM name.
    pub name: String,
    /// The file to write (replaced if it exists; holds the guest's memory, mode 0600).
    pub file: PathBuf,
    /// Restore it running.
    #[arg(long, conflicts_with = "paused")]
    pub running: bool,
    /// Restore it paused.
    #[arg(long)]
    pub paused: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `vmux restore`.
#[derive(Debug, ClapArgs)]
pub struct RestoreArgs {
    /// The save file.
    pub file: PathBuf,
    /// Start it running (whatever it was when saved).
    #[arg(long, conflicts_with = "paused")]
    pub running: bool,
    /// Start it paused.
    #[arg(long)]
    pub paused: bool,
    /// Restore even though a disk image changed since the save (the guest's file systems may
    /// not survive it).
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `vmux setmem`.
#[derive(Debug, ClapArgs)]
pub struct SetmemArgs {
    /// VM name.
    pub name: String,
    /// Memory the guest keeps (512M, 1G, ...), at most the VM's memory.
    pub size: String,
    /// Change the running VM (the balloon).
    #[arg(long)]
    pub live: bool,
    /// Change the definition (the memory it starts with).
    #[arg(long)]
    pub config: bool,
}

/// `vmux run`.
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    /// Kernel to boot (bzImage, vmlinux or static ELF64).
    #[arg(long, value_name = "PATH")]
    pub kernel: PathBuf,
    /// Initramfs to load with the kernel.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, value_name = "STR", default_value = "")]
    pub cmdline: String,
    /// Guest memory (256M, 2G, ...).
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    pub memory: String,
    /// vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: u32,
}

impl Args {
    /// Parses the command line like [`Parser::parse`], then checks what clap's attributes
    /// cannot say well: `create` without a boot source gets a usage error naming every
    /// source. Exits (status 2, with the usage) on a usage error, like `parse`.
    pub fn parse_checked() -> Args {
        match Args::try_parse().and_then(Args::check) {
            Ok(args) => args,
            Err(e) => e.exit(),
        }
    }

    /// The checks of [`Args::parse_checked`] on parsed arguments.
    pub fn check(self) -> Result<Args, clap::Error> {
        if let Some(Command::Create(create)) = &self.command
            && !create.demo
            && create.kernel.is_none()
            && create.image.is_none()
        {
            let sources: Vec<&str> = BOOT_SOURCES.iter().map(|(_, words)| *words).collect();
            let mut command = <Args as clap::CommandFactory>::command();
            // Built, the subcommand knows its full name for the usage line (`vmux create`).
            command.build();
            let create = command.find_subcommand_mut("create").cloned();
            let mut create = create.unwrap_or(command);
            return Err(create.error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!("give a boot source: {}", sources.join(", ")),
            ));
        }
        Ok(self)
    }
}

fn parse_mac(text: &str) -> Result<MacAddr, String> {
    text.parse()
}

/// `vmux console`.
#[derive(Debug, ClapArgs)]
pub struct ConsoleArgs {
    /// VM name.
    #[arg(add = ArgValueCandidates::new(complete::vm_names))]
    pub name: String,
    /// Print the buffered earlier output and exit.
    #[arg(long, conflicts_with_all = ["no_history", "until", "timeout"])]
    pub history: bool,
    /// Show live output only, not the buffered earlier output.
    #[arg(long)]
    pub no_history: bool,
    /// Exit 0 as soon as the output so far matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub until: Option<String>,
    /// Exit 1 when this many seconds pass first.
    #[arg(long, value_name = "S")]
    pub timeout: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("vmux").chain(line.iter().copied()))
    }

    #[test]
    fn grammar_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn create_needs_a_boot_source() {
        assert!(parse(&["create", "a"]).and_then(Args::check).is_err());
        assert!(
            parse(&["create", "a", "--demo"])
                .and_then(Args::check)
                .is_ok()
        );
        assert!(
            parse(&["create", "a", "--kernel", "/k"])
                .and_then(Args::check)
                .is_ok()
        );
    }

    #[test]
    fn create_without_a_boot_source_names_every_source() {
        let err = parse(&["create", "k0"])
            .and_then(Args::check)
            .expect_err("no boot source");
        let text = err.to_string();
        assert!(
            text.contains("give a boot source: --demo, --kernel PATH, --image POOL/VOL|PATH"),
            "{text}"
        );
        assert!(text.contains("Usage: vmux create"), "{text}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn every_boot_source_is_a_flag_of_the_boot_group() {
        let mut command = Args::command();
        command.build();
        let create = command.find_subcommand("create").expect("create");
        let group = create
            .get_groups()
            .find(|g| g.get_id() == "boot")
            .expect("boot group");
        let members: Vec<&str> = group.get_args().map(|a| a.as_str()).collect();
        let sources: Vec<&str> = BOOT_SOURCES.iter().map(|(id, _)| *id).collect();
        assert_eq!(members, sources);
    }

    #[test]
    fn theme_is_an_option_of_the_full_screen_interface_only() {
        let mut command = Args::command();
        let create = command
            .find_subcommand_mut("create")
            .expect("create")
            .render_help()
            .to_string();
        assert!(!create.contains("--theme"), "{create}");
        assert!(parse(&["list", "--theme", "light"]).is_err());
    }

    #[test]
    fn create_refuses_demo_with_kernel() {
        assert!(parse(&["create", "a", "--demo", "--kernel", "/k"]).is_err());
    }

    #[test]
    fn create_takes_an_image_with_its_options_and_lists_it_as_a_boot_source() {
        let args = parse(&[
            "create",
            "web1",
            "--image",
            "default/debian.qcow2",
            "--linked",
            "--cmdline-extra",
            "quiet",
            "--cloud-init",
            "user=me",
        ])
        .expect("parse");
        let Some(Command::Create(create)) = args.command else {
            panic!("not create");
        };
        assert_eq!(create.image.as_deref(), Some("default/debian.qcow2"));
        assert!(create.linked);
        assert_eq!(create.cloud_init.as_deref(), Some("user=me"));
        let bare = parse(&["create", "web1", "--image", "x.qcow2", "--cloud-init"]).expect("parse");
        let Some(Command::Create(bare)) = bare.command else {
            panic!("not create");
        };
        assert_eq!(bare.cloud_init.as_deref(), Some(""));
        let missing = parse(&["create", "web1"])
            .and_then(Args::check)
            .expect_err("no boot source");
        assert!(missing.to_string().contains("--image"), "{missing}");
        assert!(parse(&["create", "a", "--demo", "--image", "x.qcow2"]).is_err());
        assert!(parse(&["create", "a", "--demo", "--linked"]).is_err());
        assert!(parse(&["create", "a", "--kernel", "/k", "--cloud-init", "user=me"]).is_err());
    }

    #[test]
    fn initrd_needs_a_kernel() {
        assert!(parse(&["create", "a", "--demo", "--initrd", "/i"]).is_err());
    }

    #[test]
    fn create_takes_one_nic_per_network_and_checks_macs() {
        let args = parse(&[
            "create",
            "a",
            "--demo",
            "--network",
            "default",
            "--network",
            "lab",
            "--mac",
            "52:54:00:00:00:01",
        ])
        .expect("parse");
        let Some(Command::Create(create)) = args.command else {
            panic!("not create");
        };
        assert_eq!(create.networks, ["default", "lab"]);
        assert_eq!(create.macs.len(), 1);
        assert!(parse(&["create", "a", "--demo", "--network", "x", "--mac", "zz"]).is_err());
    }

    #[test]
    fn console_history_excludes_live_options() {
        assert!(parse(&["console", "a", "--history", "--no-history"]).is_err());
        assert!(parse(&["console", "a", "--history", "--until", "x"]).is_err());
        assert!(parse(&["console", "a", "--until", "x", "--timeout", "2"]).is_ok());
    }

    #[test]
    fn setvcpus_takes_a_count_and_both_scopes() {
        let args = parse(&["setvcpus", "web", "4", "--live", "--config"]).expect("parse");
        let Some(Command::Setvcpus(set)) = args.command else {
            panic!("not setvcpus: {args:?}");
        };
        assert_eq!((set.count, set.live, set.config), (4, true, true));
        assert!(parse(&["setvcpus", "web", "many"]).is_err());
    }

    #[test]
    fn attach_disk_takes_a_source_and_options() {
        let args = parse(&[
            "attach-disk",
            "web",
            "default/data.qcow2",
            "--target",
            "vdb",
            "--readonly",
            "--live",
        ])
        .expect("parse");
        let Some(Command::AttachDisk(attach)) = args.command else {
            panic!("not attach-disk: {args:?}");
        };
        assert_eq!(attach.source, "default/data.qcow2");
        assert_eq!(attach.target.as_deref(), Some("vdb"));
        assert!(attach.readonly && attach.live && !attach.config);
        assert!(parse(&["detach-disk", "web", "vdb", "--config"]).is_ok());
    }

    #[test]
    fn save_restore_and_setmem_parse_their_options() {
        let args = parse(&["save", "web", "/tmp/web.save", "--paused"]).expect("save");
        let Some(Command::Save(save)) = args.command else {
            panic!("not save: {args:?}");
        };
        assert!(save.paused && !save.running);
        assert!(parse(&["save", "web", "f", "--paused", "--running"]).is_err());
        assert!(parse(&["restore", "/tmp/web.save", "--force", "--running"]).is_ok());
        assert!(parse(&["managedsave", "web"]).is_ok());
        assert!(parse(&["managedsave-remove", "web"]).is_ok());
        assert!(parse(&["setmem", "web", "512M", "--live", "--config"]).is_ok());
        assert!(parse(&["dommemstat", "web", "--json"]).is_ok());
        assert!(parse(&["start", "web", "--force-boot"]).is_ok());
    }

    #[test]
    fn run_needs_a_kernel() {
        assert!(parse(&["run"]).is_err());
        assert!(parse(&["run", "--kernel", "/k", "--memory", "64M", "--vcpus", "2"]).is_ok());
    }

    #[test]
    fn no_subcommand_means_the_tui() {
        let args = parse(&["--theme", "light"]).expect("parse");
        assert!(args.command.is_none());
        assert_eq!(args.theme.as_deref(), Some("light"));
    }
}
