//! Definition verbs: `create`, `define`, `dumpconfig`, `undefine`, `autostart`. They change
//! what is stored, never what runs (`create --start` hands over to `lifecycle::start`).

use super::cloud_init::PreparedCloudInit;
use super::images::PreparedImage;
use super::{CliError, CreateArgs, Io, lifecycle};
use crate::client::NetworkHost;
use crate::client::StorageHost;
use crate::client::host_facts::absolute;
use crate::client::{ClientError, Host, UndefineOptions};
use crate::config::{
    BootConfig, ConfigError, DEFAULT_MEMORY_BYTES, DiskConfig, MacAddr, VmConfig,
    default_max_vcpus, parse_definition, parse_size, validate_name,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `create --json` prints.
#[derive(Debug, Serialize)]
struct CreatedJson<'a> {
    name: &'a str,
    boot: &'a BootConfig,
    disks: &'a [crate::config::DiskConfig],
    /// For `--image`: what it boots now.
    #[serde(skip_serializing_if = "Option::is_none")]
    boot_image: Option<&'a crate::bootimg::BootPlan>,
    /// For `--image --linked`: the base image the new overlay reads through.
    #[serde(skip_serializing_if = "Option::is_none")]
    linked_base: Option<&'a str>,
    /// For `--cloud-init`: the instance-id of the first seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_init_instance_id: Option<&'a str>,
    /// Passwords generated for `generate` (shown once, stored nowhere).
    generated_passwords: Vec<super::cloud_init::PasswordJson<'a>>,
}

/// `vmux create`: builds a definition from options, checks it against the host, saves it.
/// With `--image` the image becomes disk vda (a new overlay on it with `--linked`, removed
/// again if the VM cannot be defined) and its /boot is inspected now, so an image vmux cannot
/// boot is refused with the reason.
pub fn create(
    host: &dyn Host,
    networks: &dyn NetworkHost,
    storage: &dyn StorageHost,
    args: CreateArgs,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let (start, json) = (args.start, args.json);
    validate_name(&args.name).map_err(CliError::Invalid)?;
    if host.status(&args.name).is_ok() {
        return Err(ClientError::Config(ConfigError::VmExists(args.name.clone())).into());
    }
    let image = match &args.image {
        Some(image) => Some(super::images::prepare(
            storage,
            &args.name,
            image,
            args.linked,
        )?),
        None => None,
    };
    let defined = define_new(host, networks, args, image.as_ref());
    let (cfg, cloud_init) = match defined {
        Ok(done) => done,
        Err(e) => {
            if let Some(image) = &image {
                super::images::discard(storage, image);
            }
            return Err(e);
        }
    };
    if json {
        let shape = CreatedJson {
            name: &cfg.name,
            boot: &cfg.boot,
            disks: &cfg.disks,
            boot_image: image.as_ref().map(|i| &i.plan),
            linked_base: image.as_ref().and_then(|i| i.base.as_deref()),
            cloud_init_instance_id: cloud_init.as_ref().map(|c| c.instance_id.as_str()),
            generated_passwords: cloud_init
                .iter()
                .flat_map(|c| &c.generated)
                .map(|g| super::cloud_init::PasswordJson {
                    user: &g.user,
                    password: &g.password,
                })
                .collect(),
        };
        writeln!(
            io.out,
            "{}",
            serde_json::to_string_pretty(&shape).map_err(std::io::Error::other)?
        )?;
    } else {
        writeln!(io.out, "VM '{}' defined", cfg.name)?;
        if let Some(image) = &image {
            if let Some(base) = &image.base {
                writeln!(
                    io.out,
                    "disk: {} (a new overlay on {base}, which stays unchanged)",
                    image.label
                )?;
            }
            writeln!(
                io.out,
                "boot: image {} \u{2192} {}",
                image.label,
                image.plan.describe()
            )?;
            for note in &image.plan.notes {
                writeln!(io.out, "note: {note}")?;
            }
        }
        if let Some(prepared) = &cloud_init {
            writeln!(
                io.out,
                "cloud-init: {}",
                super::cloud_init::summary(&prepared.options, &cfg.name)
            )?;
            for password in &prepared.generated {
                writeln!(
                    io.out,
                    "{} password: {} (shown once; vmux keeps only its hash)",
                    password.user, password.password
                )?;
            }
        }
    }
    if cloud_init.as_ref().is_some_and(|c| c.no_login) {
        writeln!(
            io.err,
            "warning: the cloud-init settings give no way to log in (no SSH key in ~/.ssh, no password); add ssh-key=FILE or root-password=generate"
        )?;
    }
    if start && json {
        // stdout holds one JSON document: what starting says goes to stderr.
        let mut said = Vec::new();
        let mut warnings = Vec::new();
        let started = lifecycle::start(
            host,
            &cfg.name,
            &mut Io {
                out: &mut said,
                err: &mut warnings,
            },
        );
        io.err.write_all(&said)?;
        io.err.write_all(&warnings)?;
        started?;
    } else if start {
        lifecycle::start(host, &cfg.name, io)?;
    }
    Ok(())
}

/// Builds, checks and saves the definition `create` asks for.
fn define_new(
    host: &dyn Host,
    networks: &dyn NetworkHost,
    args: CreateArgs,
    image: Option<&PreparedImage>,
) -> Result<(VmConfig, Option<PreparedCloudInit>), CliError> {
    let nics = (args.networks.clone(), args.macs.clone());
    let cloud_init_text = args.cloud_init.clone();
    let mut cfg = config_from_args(args, image.map(|i| i.disk.clone()))?;
    add_nics(&mut cfg, networks, &nics.0, &nics.1)?;
    let cloud_init = match cloud_init_text {
        Some(text) => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let prepared = super::cloud_init::prepare(&text, &cfg, home.as_deref())?;
            cfg.cloud_init = Some(prepared.options.clone());
            Some(prepared)
        }
        None => None,
    };
    cfg.validate().map_err(CliError::Invalid)?;
    host.define(&cfg)?;
    Ok((cfg, cloud_init))
}

/// Turns `create` options into a validated definition (no host checks); `image_disk` is the
/// `--image` disk, which comes first (vda).
fn config_from_args(
    args: CreateArgs,
    image_disk: Option<DiskConfig>,
) -> Result<VmConfig, CliError> {
    validate_name(&args.name).map_err(CliError::Invalid)?;
    let boot = match (args.kernel, image_disk.is_some()) {
        (Some(kernel), _) => BootConfig::Kernel {
            kernel: absolute(&kernel)?,
            initrd: args.initrd.as_deref().map(absolute).transpose()?,
            cmdline: args.cmdline.unwrap_or_default(),
        },
        (None, true) => BootConfig::Image {
            cmdline_extra: args.cmdline_extra.unwrap_or_default(),
        },
        (None, false) => BootConfig::Demo,
    };
    let memory = match &args.memory {
        Some(text) => parse_size(text).map_err(CliError::Invalid)?,
        None => DEFAULT_MEMORY_BYTES,
    };
    let mut disks: Vec<DiskConfig> = image_disk.into_iter().collect();
    disks.extend(args.disks);
    let cfg = VmConfig {
        vcpus: args.vcpus,
        max_vcpus: args
            .max_vcpus
            .unwrap_or_else(|| default_max_vcpus(args.vcpus)),
        memory,
        autostart: args.autostart,
        disks,
        ..VmConfig::new(&args.name, boot)
    };
    cfg.validate().map_err(CliError::Invalid)?;
    Ok(cfg)
}

/// One NIC per `--network`, each with the `--mac` in the same position or a generated one.
fn add_nics(
    cfg: &mut VmConfig,
    networks: &dyn NetworkHost,
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

/// `vmux define FILE`: saves a definition written by hand or by `dumpconfig`. An image-booted
/// definition is refused when its disk vda cannot be booted.
pub fn define_file(
    host: &dyn Host,
    storage: &dyn StorageHost,
    file: &Path,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|source| CliError::ReadFile {
        path: file.to_path_buf(),
        source,
    })?;
    let cfg = parse_definition(file, &text, None)?;
    let plan = super::images::check_boot(storage, &cfg)?;
    host.define(&cfg)?;
    writeln!(io.out, "VM '{}' defined from {}", cfg.name, file.display())?;
    if let Some(plan) = plan {
        writeln!(
            io.out,
            "boot: image {} \u{2192} {}",
            super::images::vda_label(&cfg),
            plan.describe()
        )?;
    }
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
    use crate::cli::test_support::{capture, config, exists, host_with_vm, run_state};
    use crate::client::FakeStorage;
    use crate::client::fake::FakeHost;

    /// Storage holding the images the tests boot (each boots Debian's grub entry).
    fn images() -> FakeStorage {
        let storage = FakeStorage::new();
        for volume in ["debian.qcow2", "empty.qcow2"] {
            storage.add_volume("default", volume, 2 << 30, 400 << 20);
        }
        storage
    }
    use crate::client::FakeNetworks;
    use crate::protocol::RunState;

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
            image: None,
            linked: false,
            cmdline_extra: None,
            cloud_init: None,
            json: false,
        }
    }

    #[test]
    fn create_defaults_max_vcpus_above_vcpus() {
        let cfg = config_from_args(
            CreateArgs {
                vcpus: 3,
                ..args("a")
            },
            None,
        )
        .expect("valid");
        assert_eq!(cfg.max_vcpus, default_max_vcpus(3));
        assert!(cfg.max_vcpus > 3);
    }

    #[test]
    fn create_refuses_vcpus_above_max_vcpus() {
        let err = config_from_args(
            CreateArgs {
                vcpus: 4,
                max_vcpus: Some(2),
                ..args("a")
            },
            None,
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("max_vcpus (2)"), "{err}");
    }

    #[test]
    fn create_refuses_an_invalid_name() {
        let err = config_from_args(args("a/b"), None).expect_err("must fail");
        assert!(err.to_string().contains("not a valid name"), "{err}");
    }

    #[test]
    fn create_refuses_a_bad_size_with_a_hint() {
        let err = config_from_args(
            CreateArgs {
                memory: Some("lots".into()),
                ..args("a")
            },
            None,
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("512M"), "{err}");
    }

    #[test]
    fn create_makes_kernel_paths_absolute() {
        let cfg = config_from_args(
            CreateArgs {
                demo: false,
                kernel: Some("vmlinuz".into()),
                initrd: Some("initrd.img".into()),
                ..args("a")
            },
            None,
        )
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
            capture(|io| create(&host, &FakeNetworks::default(), &images(), args("web"), io));
        result.expect("create");
        assert!(out.contains("VM 'web' defined"), "{out}");
        assert_eq!(config(&host, "web").memory, DEFAULT_MEMORY_BYTES);
    }

    #[test]
    fn create_with_start_starts_it() {
        let host = FakeHost::default();
        let (result, _, _) = capture(|io| {
            create(
                &host,
                &FakeNetworks::default(),
                &images(),
                CreateArgs {
                    start: true,
                    ..args("web")
                },
                io,
            )
        });
        result.expect("create");
        assert_eq!(run_state(&host, "web"), RunState::Running);
    }

    #[test]
    fn undefine_of_a_vm_with_snapshots_is_refused_with_both_ways_out() {
        let host = host_with_vm("web", RunState::ShutOff);
        host.add_snapshot("web", "before-upgrade");

        let (result, _, _) = capture(|io| undefine(&host, "web", UndefineOptions::default(), io));

        let err = result.expect_err("must fail").to_string();
        assert!(err.contains("before-upgrade"), "{err}");
        assert!(err.contains("vmux snapshot-delete web"), "{err}");
        assert!(err.contains("--snapshots-metadata"), "{err}");
        assert!(exists(&host, "web"));
    }

    #[test]
    fn undefine_with_snapshots_metadata_removes_a_vm_with_snapshots() {
        let host = host_with_vm("web", RunState::ShutOff);
        host.add_snapshot("web", "s1");
        let options = UndefineOptions {
            snapshots_metadata: true,
        };

        let (result, out, _) = capture(|io| undefine(&host, "web", options, io));

        result.expect("undefine");
        assert!(!exists(&host, "web"));
        assert!(out.contains("disk images stay"), "{out}");
    }

    #[test]
    fn create_gives_one_nic_per_network_with_the_mac_in_its_position() {
        let host = FakeHost::default();
        let networks = FakeNetworks::with_default();
        networks.add(
            crate::config::NetworkConfig {
                name: "lab".into(),
                ..crate::config::NetworkConfig::default_network()
            },
            false,
        );
        let mac: MacAddr = "52:54:00:aa:bb:cc".parse().expect("mac");
        let args = CreateArgs {
            networks: vec!["lab".into(), "default".into()],
            macs: vec![mac],
            ..args("web")
        };

        let (result, _, _) = capture(|io| create(&host, &networks, &images(), args, io));

        result.expect("create");
        let nics = config(&host, "web").nics;
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

        let (result, _, _) =
            capture(|io| create(&host, &FakeNetworks::default(), &images(), args, io));

        let err = result.expect_err("unknown network");
        assert!(err.to_string().contains("net-list --all"), "{err}");
        assert!(!exists(&host, "web"));
    }

    #[test]
    fn create_refuses_more_macs_than_networks() {
        let host = FakeHost::default();
        let args = CreateArgs {
            macs: vec!["52:54:00:00:00:01".parse().expect("mac")],
            ..args("web")
        };

        let (result, _, _) =
            capture(|io| create(&host, &FakeNetworks::default(), &images(), args, io));

        assert!(matches!(result, Err(CliError::Invalid(_))));
    }

    #[test]
    fn undefine_of_a_running_vm_is_refused() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| undefine(&host, "web", UndefineOptions::default(), io));
        let err = result.expect_err("must fail");
        assert!(err.to_string().contains("vmux shutdown web"), "{err}");
        assert!(exists(&host, "web"));
    }

    #[test]
    fn dumpconfig_toml_parses_back_to_the_same_definition() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, out, _) = capture(|io| dumpconfig(&host, "web", false, io));
        result.expect("dumpconfig");
        let back = parse_definition(Path::new("web.toml"), &out, Some("web")).expect("parse");
        assert_eq!(back, config(&host, "web"));
    }

    #[test]
    fn autostart_sets_the_flag() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| autostart(&host, "web", true, io));
        result.expect("autostart");
        assert!(config(&host, "web").autostart);
    }

    fn image_args(name: &str, image: &str) -> CreateArgs {
        CreateArgs {
            demo: false,
            image: Some(image.into()),
            ..args(name)
        }
    }

    #[test]
    fn create_with_an_image_makes_it_vda_and_says_what_it_boots() {
        let host = FakeHost::default();
        let args = CreateArgs {
            cmdline_extra: Some("quiet".into()),
            disks: vec!["default/data.raw".parse().expect("disk")],
            ..image_args("web1", "default/debian.qcow2")
        };

        let (result, out, _) =
            capture(|io| create(&host, &FakeNetworks::default(), &images(), args, io));

        result.expect("create");
        let cfg = config(&host, "web1");
        assert_eq!(
            cfg.boot,
            BootConfig::Image {
                cmdline_extra: "quiet".into()
            }
        );
        assert_eq!(cfg.disks[0].source.to_string(), "default/debian.qcow2");
        assert_eq!(cfg.disks[1].source.to_string(), "default/data.raw");
        assert!(
            out.contains(
                "boot: image default/debian.qcow2 \u{2192} /boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')"
            ),
            "{out}"
        );
    }

    #[test]
    fn create_with_an_image_that_cannot_boot_defines_nothing() {
        let host = FakeHost::default();
        let images = images();
        images.set_unbootable(Some("no kernel found in the disk image"));

        let (result, _, _) = capture(|io| {
            create(
                &host,
                &FakeNetworks::default(),
                &images,
                image_args("web1", "default/empty.qcow2"),
                io,
            )
        });

        let err = result.expect_err("cannot boot").to_string();
        assert!(err.contains("no kernel found"), "{err}");
        assert!(!exists(&host, "web1"));
    }

    #[test]
    fn a_linked_overlay_is_removed_when_the_vm_cannot_be_defined() {
        let host = FakeHost::default();
        let images = images();
        let args = CreateArgs {
            linked: true,
            networks: vec!["nowhere".into()],
            ..image_args("web1", "default/debian.qcow2")
        };

        let (result, _, _) =
            capture(|io| create(&host, &FakeNetworks::default(), &images, args, io));

        assert!(result.is_err());
        assert!(images.volume("default", "web1.qcow2").is_none());
        assert!(images.volume("default", "debian.qcow2").is_some());
        assert!(!exists(&host, "web1"));
    }

    #[test]
    fn create_with_a_generated_root_password_prints_it_once_and_stores_a_hash() {
        let host = FakeHost::default();
        let args = CreateArgs {
            cloud_init: Some("root-password=generate,hostname=www".into()),
            ..image_args("web1", "default/debian.qcow2")
        };

        let (result, out, _) =
            capture(|io| create(&host, &FakeNetworks::default(), &images(), args, io));

        result.expect("create");
        let line = out
            .lines()
            .find(|l| l.starts_with("root password: "))
            .unwrap_or_else(|| panic!("no password line in {out}"));
        let password = line
            .trim_start_matches("root password: ")
            .split_whitespace()
            .next()
            .expect("a password");
        let stored = toml::to_string(&config(&host, "web1")).expect("toml");
        assert!(!stored.contains(password), "{stored}");
        assert!(stored.contains("$6$"), "{stored}");
        assert!(out.contains("hostname www"), "{out}");
    }

    #[test]
    fn create_json_gives_the_boot_plan_and_the_generated_password() {
        let host = FakeHost::default();
        let args = CreateArgs {
            cloud_init: Some("root-password=generate".into()),
            json: true,
            ..image_args("web1", "default/debian.qcow2")
        };

        let (result, out, _) =
            capture(|io| create(&host, &FakeNetworks::default(), &images(), args, io));

        result.expect("create");
        let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(doc["boot"]["source"], "image");
        assert_eq!(
            doc["boot_image"]["kernel"]["path"],
            "/boot/vmlinuz-6.1.0-28-amd64"
        );
        assert_eq!(doc["generated_passwords"][0]["user"], "root");
        assert_eq!(
            doc["generated_passwords"][0]["password"]
                .as_str()
                .map(str::len),
            Some(20)
        );
    }
}
