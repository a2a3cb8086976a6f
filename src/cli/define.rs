//! Definition verbs: `create`, `define`, `dumpconfig`, `undefine`, `autostart`. They change
//! what is stored, never what runs (`create --start` hands over to `lifecycle::start`).

use super::checks::check_definition;
use super::nics::Networks;
use super::{CliError, CreateArgs, Io, lifecycle};
use crate::client::{ClientError, Host, UndefineOptions};
use crate::config::{
    BootConfig, DEFAULT_MEMORY_BYTES, MacAddr, VmConfig, default_max_vcpus, parse_definition,
    parse_size, validate_name,
};
use std::path::{Path, PathBuf};

/// `vmux create`: builds a definition from options, checks it against the host, saves it.
pub fn create(
    host: &dyn Host,
    networks: &dyn Networks,
    args: CreateArgs,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let start = args.start;
    let nics = (args.networks.clone(), args.macs.clone());
    let mut cfg = config_from_args(args)?;
    add_nics(&mut cfg, networks, &nics.0, &nics.1)?;
    check_definition(&cfg)?;
    host.define(&cfg)?;
    writeln!(io.out, "VM '{}' defined", cfg.name)?;
    if start {
        lifecycle::start(host, &cfg.name, io)?;
    }
    Ok(())
}

/// Turns `create` options into a validated definition (no host checks).
fn config_from_args(args: CreateArgs) -> Result<VmConfig, CliError> {
    validate_name(&args.name).map_err(CliError::Invalid)?;
    let boot = match args.kernel {
        None => BootConfig::Demo,
        Some(kernel) => BootConfig::Kernel {
            kernel: absolute(&kernel)?,
            initrd: args.initrd.as_deref().map(absolute).transpose()?,
            cmdline: args.cmdline.unwrap_or_default(),
        },
    };
    let memory = match &args.memory {
        Some(text) => parse_size(text).map_err(CliError::Invalid)?,
        None => DEFAULT_MEMORY_BYTES,
    };
    let cfg = VmConfig {
        vcpus: args.vcpus,
        max_vcpus: args
            .max_vcpus
            .unwrap_or_else(|| default_max_vcpus(args.vcpus)),
        memory,
        autostart: args.autostart,
        disks: args.disks,
        ..VmConfig::new(&args.name, boot)
    };
    cfg.validate().map_err(CliError::Invalid)?;
    Ok(cfg)
}

/// One NIC per `--network`, each with the `--mac` in the same position or a generated one.
fn add_nics(
    cfg: &mut VmConfig,
    networks: &dyn Networks,
    names: &[String],
    macs: &[MacAddr],
) -> Result<(), CliError> {
    if macs.len() > names.len() {
        return Err(CliError::Invalid(format!(
            "{} --mac given for {} --network; each --mac goes with the --network in the same position",
            macs.len(),
            names.len()
        )));
    }
    for (index, network) in names.iter().enumerate() {
        let nic = networks.new_nic(cfg, network, macs.get(index).copied())?;
        cfg.nics.push(nic);
    }
    Ok(())
}

/// Makes a path the user typed absolute against the current directory.
fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|source| CliError::BootFile {
        what: "file",
        path: path.to_path_buf(),
        source,
    })
}

/// `vmux define FILE`: saves a definition written by hand or by `dumpconfig`.
pub fn define_file(host: &dyn Host, file: &Path, io: &mut Io<'_>) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|source| CliError::ReadFile {
        path: file.to_path_buf(),
        source,
    })?;
    let cfg = parse_definition(file, &text, None)?;
    check_definition(&cfg)?;
    host.define(&cfg)?;
    writeln!(io.out, "VM '{}' defined from {}", cfg.name, file.display())?;
    Ok(())
}

/// `vmux dumpconfig`: the stored definition as TOML (what `define` reads) or JSON.
pub fn dumpconfig(
    host: &dyn Host,
    name: &str,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let cfg = host.status(name)?.config;
    // Serializing a validated definition cannot fail in practice; if it ever does, it is
    // reported as an output failure rather than a panic.
    let text = if json {
        serde_json::to_string_pretty(&cfg).map_err(std::io::Error::other)? + "\n"
    } else {
        toml::to_string(&cfg).map_err(std::io::Error::other)?
    };
    io.out.write_all(text.as_bytes())?;
    Ok(())
}

/// `vmux undefine [--snapshots-metadata]`: deletes a shut-off VM's definition (and with the
/// flag its snapshot metadata; a VM with snapshots is refused without it, as virsh does).
pub fn undefine(
    host: &dyn Host,
    name: &str,
    options: UndefineOptions,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    if host.state(name)?.is_active() {
        return Err(ClientError::AlreadyRunning(name.to_string()).into());
    }
    host.undefine_with(name, options)?;
    if options.snapshots_metadata {
        writeln!(
            io.out,
            "VM '{name}' undefined; its snapshot metadata is gone, its disk images stay"
        )?;
    } else {
        writeln!(io.out, "VM '{name}' undefined")?;
    }
    Ok(())
}

/// `vmux autostart [--disable]`.
pub fn autostart(
    host: &dyn Host,
    name: &str,
    enabled: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    host.set_autostart(name, enabled)?;
    if enabled {
        writeln!(
            io.out,
            "VM '{name}' will start with `vmux autostart-all` (at host boot)"
        )?;
    } else {
        writeln!(io.out, "VM '{name}' will no longer start automatically")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake::{FakeHost, capture};
    use crate::cli::nics::fake::FakeNetworks;
    use crate::engine::control::RunState;

    fn args(name: &str) -> CreateArgs {
        CreateArgs {
            name: name.into(),
            demo: true,
            kernel: None,
            initrd: None,
            cmdline: None,
            memory: None,
            vcpus: 1,
            max_vcpus: None,
            autostart: false,
            disks: Vec::new(),
            networks: Vec::new(),
            macs: Vec::new(),
            start: false,
        }
    }

    #[test]
    fn create_defaults_max_vcpus_above_vcpus() {
        let cfg = config_from_args(CreateArgs {
            vcpus: 3,
            ..args("a")
        })
        .expect("valid");
        assert_eq!(cfg.max_vcpus, default_max_vcpus(3));
        assert!(cfg.max_vcpus > 3);
    }

    #[test]
    fn create_refuses_vcpus_above_max_vcpus() {
        let err = config_from_args(CreateArgs {
            vcpus: 4,
            max_vcpus: Some(2),
            ..args("a")
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("max_vcpus (2)"), "{err}");
    }

    #[test]
    fn create_refuses_an_invalid_name() {
        let err = config_from_args(args("a/b")).expect_err("must fail");
        assert!(err.to_string().contains("not a valid name"), "{err}");
    }

    #[test]
    fn create_refuses_a_bad_size_with_a_hint() {
        let err = config_from_args(CreateArgs {
            memory: Some("lots".into()),
            ..args("a")
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("512M"), "{err}");
    }

    #[test]
    fn create_makes_kernel_paths_absolute() {
        let cfg = config_from_args(CreateArgs {
            demo: false,
            kernel: Some("vmlinuz".into()),
            initrd: Some("initrd.img".into()),
            ..args("a")
        })
        .expect("valid");
        let BootConfig::Kernel { kernel, initrd, .. } = cfg.boot else {
            panic!("kernel boot expected");
        };
        assert!(kernel.is_absolute() && kernel.ends_with("vmlinuz"));
        assert!(initrd.is_some_and(|p| p.is_absolute()));
    }

    #[test]
    fn create_stores_the_definition() {
        let host = FakeHost::default();
        let (result, out, _) =
            capture(|io| create(&host, &FakeNetworks::default(), args("web"), io));
        result.expect("create");
        assert!(out.contains("VM 'web' defined"), "{out}");
        assert_eq!(host.config("web").memory, DEFAULT_MEMORY_BYTES);
    }

    #[test]
    fn create_with_start_starts_it() {
        let host = FakeHost::default();
        let (result, _, _) = capture(|io| {
            create(
                &host,
                &FakeNetworks::default(),
                CreateArgs {
                    start: true,
                    ..args("web")
                },
                io,
            )
        });
        result.expect("create");
        assert_eq!(host.run_state("web"), RunState::Running);
    }

    #[test]
    fn undefine_of_a_vm_with_snapshots_is_refused_with_both_ways_out() {
        let host = FakeHost::with_vm("web", RunState::ShutOff);
        host.add_snapshot("web", "before-upgrade");

        let (result, _, _) = capture(|io| undefine(&host, "web", UndefineOptions::default(), io));

        let err = result.expect_err("must fail").to_string();
        assert!(err.contains("before-upgrade"), "{err}");
        assert!(err.contains("vmux snapshot-delete web"), "{err}");
        assert!(err.contains("--snapshots-metadata"), "{err}");
        assert!(host.exists("web"));
    }

    #[test]
    fn undefine_with_snapshots_metadata_removes_a_vm_with_snapshots() {
        let host = FakeHost::with_vm("web", RunState::ShutOff);
        host.add_snapshot("web", "s1");
        let options = UndefineOptions {
            snapshots_metadata: true,
        };

        let (result, out, _) = capture(|io| undefine(&host, "web", options, io));

        result.expect("undefine");
        assert!(!host.exists("web"));
        assert!(out.contains("disk images stay"), "{out}");
    }

    #[test]
    fn create_gives_one_nic_per_network_with_the_mac_in_its_position() {
        let host = FakeHost::default();
        let networks = FakeNetworks {
            defined: vec!["default".into(), "lab".into()],
            ..FakeNetworks::default()
        };
        let mac: MacAddr = "52:54:00:aa:bb:cc".parse().expect("mac");
        let args = CreateArgs {
            networks: vec!["lab".into(), "default".into()],
            macs: vec![mac],
            ..args("web")
        };

        let (result, _, _) = capture(|io| create(&host, &networks, args, io));

        result.expect("create");
        let nics = host.config("web").nics;
        assert_eq!(nics.len(), 2);
        assert_eq!((nics[0].network.as_str(), nics[0].mac), ("lab", mac));
        assert_eq!(nics[1].network, "default");
        assert_ne!(nics[1].mac, mac);
    }

    #[test]
    fn create_on_an_undefined_network_names_the_fix_and_defines_nothing() {
        let host = FakeHost::default();
        let args = CreateArgs {
            networks: vec!["nowhere".into()],
            ..args("web")
        };

        let (result, _, _) = capture(|io| create(&host, &FakeNetworks::default(), args, io));

        let err = result.expect_err("unknown network");
        assert!(err.to_string().contains("net-list --all"), "{err}");
        assert!(!host.exists("web"));
    }

    #[test]
    fn create_refuses_more_macs_than_networks() {
        let host = FakeHost::default();
        let args = CreateArgs {
            macs: vec!["52:54:00:00:00:01".parse().expect("mac")],
            ..args("web")
        };

        let (result, _, _) = capture(|io| create(&host, &FakeNetworks::default(), args, io));

        assert!(matches!(result, Err(CliError::Invalid(_))));
    }

    #[test]
    fn undefine_of_a_running_vm_is_refused() {
        let host = FakeHost::with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| undefine(&host, "web", UndefineOptions::default(), io));
        let err = result.expect_err("must fail");
        assert!(err.to_string().contains("vmux shutdown web"), "{err}");
        assert!(host.exists("web"));
    }

    #[test]
    fn dumpconfig_toml_parses_back_to_the_same_definition() {
        let host = FakeHost::with_vm("web", RunState::ShutOff);
        let (result, out, _) = capture(|io| dumpconfig(&host, "web", false, io));
        result.expect("dumpconfig");
        let back = parse_definition(Path::new("web.toml"), &out, Some("web")).expect("parse");
        assert_eq!(back, host.config("web"));
    }

    #[test]
    fn autostart_sets_the_flag() {
        let host = FakeHost::with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| autostart(&host, "web", true, io));
        result.expect("autostart");
        assert!(host.config("web").autostart);
    }
}
