//! The `:` command palette: CLI verbs typed in the TUI (`:start web1`, `:destroy web1 web2`,
//! `:console web1`, `:theme light`, `:setvcpus web1 4 --live`). Verbs vmux does not support
//! yet are named as such; nothing pretends to work.

use crate::config::DiskConfig;

/// `--live` / `--config` as typed; with neither, a change applies to the running VM when it
/// runs and to the definition when it does not (as the CLI does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeFlags {
    /// `--live` given.
    pub live: bool,
    /// `--config` given.
    pub config: bool,
}

/// Lifecycle verbs that act on VMs, with their aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `start`
    Start,
    /// `shutdown`
    Shutdown,
    /// `destroy`, `force-off`
    Destroy,
    /// `reboot`
    Reboot,
    /// `reset`
    Reset,
    /// `suspend`, `pause`
    Suspend,
    /// `resume`
    Resume,
    /// `undefine`, `delete`
    Undefine,
}

/// A parsed palette line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaletteCommand {
    /// A lifecycle verb on these VMs (empty: the selected VM).
    Lifecycle(Verb, Vec<String>),
    /// `autostart [name] [--disable]`.
    Autostart(Option<String>, bool),
    /// `console name [name2]`: attach (two names: split view).
    Console(Vec<String>),
    /// `create`: the wizard.
    Create,
    /// `edit [name]`: the edit form.
    Edit(Option<String>),
    /// `theme name`: switch theme now.
    Theme(String),
    /// `filter text`.
    Filter(String),
    /// `list`: back to the VM list.
    List,
    /// `pool-list`, `vol-list [pool]`: the storage pane (with that pool selected).
    Storage(Option<String>),
    /// `vol-create [pool]`: the new-volume dialog.
    VolCreate(Option<String>),
    /// `net-list`: the networks pane.
    Networks,
    /// `hosts`, `host-list`: the hosts pane.
    Hosts,
    /// `net-define`: the new-network dialog.
    NetDefine,
    /// `net-start name`.
    NetStart(String),
    /// `net-destroy name`: stop a network (asks first).
    NetStop(String),
    /// `setvcpus [name] count [--live] [--config]`.
    SetVcpus {
        /// The VM (none: the selected one).
        vm: Option<String>,
        /// vCPUs wanted.
        count: u32,
        /// Where.
        flags: ScopeFlags,
    },
    /// `attach-disk name source [--target vdX] [--readonly] [--serial S] [--live] [--config]`.
    AttachDisk {
        /// The VM.
        vm: String,
        /// The disk.
        disk: Box<DiskConfig>,
        /// Where.
        flags: ScopeFlags,
    },
    /// `detach-disk name target [--live] [--config]`.
    DetachDisk {
        /// The VM.
        vm: String,
        /// Its guest device name.
        target: String,
        /// Where.
        flags: ScopeFlags,
    },
    /// `save [name] [FILE]` (no file: the managed save), `managedsave [name]`.
    Save {
        /// The VM (none: the selected one).
        vm: Option<String>,
        /// The file (none: the managed save).
        path: Option<std::path::PathBuf>,
    },
    /// `restore FILE`.
    Restore(std::path::PathBuf),
    /// `managedsave-remove [name]`.
    ManagedSaveRemove(Option<String>),
    /// `setmem [name] SIZE [--live] [--config]`.
    SetMemory {
        /// The VM (none: the selected one).
        vm: Option<String>,
        /// Memory the guest keeps, bytes.
        bytes: u64,
        /// Where.
        flags: ScopeFlags,
    },
    /// `dommemstat [name]`: the balloon and the guest's memory in the status line.
    MemoryStats(Option<String>),
    /// `help`.
    Help,
    /// `quit`.
    Quit,
    /// A verb that needs something vmux cannot do yet.
    Unsupported(String),
    /// Not a verb vmux knows, or wrong arguments; the message says what to type.
    Invalid(String),
}

/// virsh verbs users will try that vmux does not do yet.
const UNSUPPORTED: &[&str] = &[
    "setmaxmem",
    "attach-interface",
    "detach-interface",
    "blockresize",
    "snapshot-create",
    "snapshot-create-as",
    "snapshot-list",
    "snapshot-revert",
    "snapshot-delete",
    "clone",
    "migrate",
    "dumpxml",
    "domifaddr",
];

/// Verbs offered by Tab completion.
pub const VERBS: &[&str] = &[
    "start",
    "shutdown",
    "destroy",
    "reboot",
    "reset",
    "suspend",
    "resume",
    "autostart",
    "undefine",
    "console",
    "create",
    "edit",
    "theme",
    "filter",
    "list",
    "pool-list",
    "vol-list",
    "vol-create",
    "net-list",
    "net-define",
    "net-start",
    "net-destroy",
    "hosts",
    "setvcpus",
    "attach-disk",
    "detach-disk",
    "save",
    "restore",
    "managedsave",
    "managedsave-remove",
    "setmem",
    "dommemstat",
    "help",
    "quit",
];

/// Parses one palette line.
pub fn parse(line: &str) -> PaletteCommand {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return PaletteCommand::Invalid("type a command, e.g. start web1; :help lists them".into());
    };
    let args: Vec<String> = words.map(str::to_string).collect();
    let lifecycle = |verb| PaletteCommand::Lifecycle(verb, args.clone());
    match verb {
        "start" => lifecycle(Verb::Start),
        "shutdown" => lifecycle(Verb::Shutdown),
        "destroy" | "force-off" | "poweroff" => lifecycle(Verb::Destroy),
        "reboot" => lifecycle(Verb::Reboot),
        "reset" => lifecycle(Verb::Reset),
        "suspend" | "pause" => lifecycle(Verb::Suspend),
        "resume" => lifecycle(Verb::Resume),
        "undefine" | "delete" => lifecycle(Verb::Undefine),
        "autostart" => {
            let disable = args.iter().any(|a| a == "--disable" || a == "off");
            let name = args
                .iter()
                .find(|a| !a.starts_with("--") && *a != "on" && *a != "off")
                .cloned();
            PaletteCommand::Autostart(name, !disable)
        }
        "console" | "attach" => match args.len() {
            0..=2 => PaletteCommand::Console(args),
            _ => PaletteCommand::Invalid(
                "console takes one VM, or two for a split view: console web1 web2".into(),
            ),
        },
        "create" | "new" => PaletteCommand::Create,
        "edit" => PaletteCommand::Edit(args.first().cloned()),
        "theme" => match args.first() {
            Some(name) => PaletteCommand::Theme(name.clone()),
            None => PaletteCommand::Invalid(
                "theme needs a name: dark, light, high-contrast or 16-colour".into(),
            ),
        },
        "filter" => PaletteCommand::Filter(args.join(" ")),
        "list" | "vms" => PaletteCommand::List,
        "pool-list" | "pools" | "storage" => PaletteCommand::Storage(None),
        "vol-list" => PaletteCommand::Storage(args.first().cloned()),
        "vol-create" | "vol-create-as" => PaletteCommand::VolCreate(args.first().cloned()),
        "net-list" | "networks" => PaletteCommand::Networks,
        "hosts" | "host-list" => PaletteCommand::Hosts,
        "net-define" | "net-define-as" => PaletteCommand::NetDefine,
        "net-start" | "net-destroy" => match args.first() {
            Some(name) if verb == "net-start" => PaletteCommand::NetStart(name.clone()),
            Some(name) => PaletteCommand::NetStop(name.clone()),
            None => PaletteCommand::Invalid(format!("{verb} needs a network name: {verb} default")),
        },
        "setvcpus" => parse_setvcpus(&args),
        "attach-disk" => parse_attach_disk(&args),
        "detach-disk" => parse_detach_disk(&args),
        "save" => match args.as_slice() {
            [] => PaletteCommand::Save {
                vm: None,
                path: None,
            },
            [one] if one.contains('/') => PaletteCommand::Save {
                vm: None,
                path: Some(one.into()),
            },
            [vm] => PaletteCommand::Save {
                vm: Some(vm.clone()),
                path: None,
            },
            [vm, file] => PaletteCommand::Save {
                vm: Some(vm.clone()),
                path: Some(file.into()),
            },
            _ => PaletteCommand::Invalid(
                "save takes a VM and a file: save web1 /srv/web1.save (no file: save to disk, \
                 start resumes it)"
                    .into(),
            ),
        },
        "managedsave" => PaletteCommand::Save {
            vm: args.first().cloned(),
            path: None,
        },
        "managedsave-remove" => PaletteCommand::ManagedSaveRemove(args.first().cloned()),
        "restore" => match args.as_slice() {
            [file] => PaletteCommand::Restore(file.into()),
            _ => {
                PaletteCommand::Invalid("restore takes a save file: restore /srv/web1.save".into())
            }
        },
        "setmem" => parse_setmem(&args),
        "dommemstat" => PaletteCommand::MemoryStats(args.first().cloned()),
        "help" | "?" => PaletteCommand::Help,
        "quit" | "exit" | "q" => PaletteCommand::Quit,
        other if UNSUPPORTED.contains(&other) => PaletteCommand::Unsupported(other.to_string()),
        other => PaletteCommand::Invalid(format!(
            "unknown command '{other}'; commands: {}",
            VERBS.join(", ")
        )),
    }
}

/// A palette line's arguments sorted out: the scope flags, the positional words and the
/// other options with their values ("" for a flag).
struct Arguments<'a> {
    flags: ScopeFlags,
    positional: Vec<&'a str>,
    options: Vec<(&'a str, &'a str)>,
}

/// Splits `--live`, `--config` and the options (those in `with_values` take the next word)
/// off `args`.
fn scope_flags<'a>(args: &'a [String], with_values: &[&str]) -> Result<Arguments<'a>, String> {
    let mut flags = ScopeFlags::default();
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut words = args.iter().map(String::as_str);
    while let Some(word) = words.next() {
        match word {
            "--live" => flags.live = true,
            "--config" => flags.config = true,
            option if with_values.contains(&option) => {
                let value = words
                    .next()
                    .ok_or_else(|| format!("{option} needs a value"))?;
                options.push((option, value));
            }
            option if option.starts_with("--") => options.push((option, "")),
            word => positional.push(word),
        }
    }
    Ok(Arguments {
        flags,
        positional,
        options,
    })
}

fn parse_setvcpus(args: &[String]) -> PaletteCommand {
    let usage = "setvcpus takes a VM and a count: setvcpus web1 4 [--live] [--config]";
    let Ok(Arguments {
        flags,
        positional,
        options,
    }) = scope_flags(args, &[])
    else {
        return PaletteCommand::Invalid(usage.into());
    };
    if let Some((option, _)) = options.first() {
        return PaletteCommand::Invalid(format!("setvcpus has no option {option}; {usage}"));
    }
    let (vm, count) = match positional.as_slice() {
        [count] => (None, *count),
        [vm, count] => (Some(vm.to_string()), *count),
        _ => return PaletteCommand::Invalid(usage.into()),
    };
    match count.parse() {
        Ok(count) => PaletteCommand::SetVcpus { vm, count, flags },
        Err(_) => PaletteCommand::Invalid(format!("'{count}' is not a count; {usage}")),
    }
}

fn parse_setmem(args: &[String]) -> PaletteCommand {
    let usage = "setmem takes a VM and a size: setmem web1 512M [--live] [--config]";
    let Ok(Arguments {
        flags,
        positional,
        options,
    }) = scope_flags(args, &[])
    else {
        return PaletteCommand::Invalid(usage.into());
    };
    if let Some((option, _)) = options.first() {
        return PaletteCommand::Invalid(format!("setmem has no option {option}; {usage}"));
    }
    let (vm, size) = match positional.as_slice() {
        [size] => (None, *size),
        [vm, size] => (Some(vm.to_string()), *size),
        _ => return PaletteCommand::Invalid(usage.into()),
    };
    match crate::config::parse_size(size) {
        Ok(bytes) => PaletteCommand::SetMemory { vm, bytes, flags },
        Err(e) => PaletteCommand::Invalid(format!("{e}; {usage}")),
    }
}

fn parse_attach_disk(args: &[String]) -> PaletteCommand {
    let usage = "attach-disk takes a VM and a disk: attach-disk web1 default/data.qcow2 [--target vdb] [--readonly] [--live] [--config]";
    let Arguments {
        flags,
        positional,
        options,
    } = match scope_flags(args, &["--target", "--serial"]) {
        Ok(parsed) => parsed,
        Err(e) => return PaletteCommand::Invalid(format!("{e}; {usage}")),
    };
    let [vm, source] = positional.as_slice() else {
        return PaletteCommand::Invalid(usage.into());
    };
    let mut disk: DiskConfig = match source.parse() {
        Ok(disk) => disk,
        Err(e) => return PaletteCommand::Invalid(e),
    };
    for (option, value) in options {
        match option {
            "--target" => disk.target = Some(value.to_string()),
            "--serial" => disk.serial = Some(value.to_string()),
            "--readonly" => disk.readonly = true,
            other => {
                return PaletteCommand::Invalid(format!(
                    "attach-disk has no option {other}; {usage}"
                ));
            }
        }
    }
    if let Err(e) = disk.validate() {
        return PaletteCommand::Invalid(e);
    }
    PaletteCommand::AttachDisk {
        vm: vm.to_string(),
        disk: Box::new(disk),
        flags,
    }
}

fn parse_detach_disk(args: &[String]) -> PaletteCommand {
    let usage =
        "detach-disk takes a VM and a disk's device name: detach-disk web1 vdb [--live] [--config]";
    match scope_flags(args, &[]) {
        Ok(parsed) if parsed.options.is_empty() => match parsed.positional.as_slice() {
            [vm, target] => PaletteCommand::DetachDisk {
                vm: vm.to_string(),
                target: target.to_string(),
                flags: parsed.flags,
            },
            _ => PaletteCommand::Invalid(usage.into()),
        },
        _ => PaletteCommand::Invalid(usage.into()),
    }
}

/// Completes the word under the cursor (the last word): verbs first, then VM names.
/// Returns the completed line, or `None` when nothing (or nothing unique) matches.
pub fn complete(line: &str, names: &[&str]) -> Option<String> {
    let (head, word) = match line.rfind(' ') {
        Some(i) => (&line[..=i], &line[i + 1..]),
        None => ("", line),
    };
    // A name already on the line is not offered again.
    let typed: Vec<&str> = head.split_whitespace().collect();
    let pool: Vec<&str> = if head.trim().is_empty() {
        VERBS.to_vec()
    } else {
        names
            .iter()
            .copied()
            .filter(|n| !typed.contains(n))
            .collect()
    };
    let matches: Vec<&str> = pool.into_iter().filter(|c| c.starts_with(word)).collect();
    match matches.as_slice() {
        [only] => Some(format!("{head}{only} ")),
        [] => None,
        several => {
            // Extend to the longest common prefix.
            let first = several[0];
            let common = (word.len()..=first.len())
                .rev()
                .find(|&n| several.iter().all(|m| m.starts_with(&first[..n])))?;
            (common > word.len()).then(|| format!("{head}{}", &first[..common]))
        }
    }
}

/// Whether a typed space is one too many: the palette splits words on spaces, so a space
/// right after another (often the one Tab completion added) only doubles it.
pub fn redundant_space(line: &str, cursor: usize, typed: char) -> bool {
    typed == ' '
        && line
            .chars()
            .nth(cursor.wrapping_sub(1))
            .is_some_and(|c| c == ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_space_after_a_completed_word_is_not_doubled() {
        let done = complete("sta", &[]).expect("completes");
        assert_eq!(done, "start ");
        assert!(redundant_space(&done, done.chars().count(), ' '));
        assert!(!redundant_space("start", 5, ' '));
    }

    #[test]
    fn a_name_on_the_line_is_not_offered_again() {
        assert_eq!(complete("start web1 ", &["web1"]), None);
        assert_eq!(
            complete("start web1 d", &["web1", "db"]).as_deref(),
            Some("start web1 db ")
        );
    }

    #[test]
    fn lifecycle_verbs_take_several_names() {
        assert_eq!(
            parse("destroy a b"),
            PaletteCommand::Lifecycle(Verb::Destroy, vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn setmaxmem_is_reported_as_unsupported() {
        assert_eq!(
            parse("setmaxmem web1 2G"),
            PaletteCommand::Unsupported("setmaxmem".into())
        );
    }

    #[test]
    fn setmem_takes_an_optional_vm_a_size_and_scope_flags() {
        assert_eq!(
            parse("setmem web1 512M --live"),
            PaletteCommand::SetMemory {
                vm: Some("web1".into()),
                bytes: 512 << 20,
                flags: ScopeFlags {
                    live: true,
                    config: false
                },
            }
        );
        assert!(matches!(parse("setmem lots"), PaletteCommand::Invalid(_)));
    }

    #[test]
    fn save_tells_a_file_from_a_vm_name() {
        assert_eq!(
            parse("save /srv/a.save"),
            PaletteCommand::Save {
                vm: None,
                path: Some("/srv/a.save".into())
            }
        );
        assert_eq!(
            parse("save web1"),
            PaletteCommand::Save {
                vm: Some("web1".into()),
                path: None
            }
        );
        assert_eq!(
            parse("restore /srv/a.save"),
            PaletteCommand::Restore("/srv/a.save".into())
        );
        assert!(matches!(parse("restore"), PaletteCommand::Invalid(_)));
    }

    #[test]
    fn setvcpus_takes_an_optional_vm_and_scope_flags() {
        assert_eq!(
            parse("setvcpus web1 4 --live"),
            PaletteCommand::SetVcpus {
                vm: Some("web1".into()),
                count: 4,
                flags: ScopeFlags {
                    live: true,
                    config: false
                },
            }
        );
        assert!(matches!(
            parse("setvcpus 2"),
            PaletteCommand::SetVcpus {
                vm: None,
                count: 2,
                ..
            }
        ));
        assert!(matches!(
            parse("setvcpus web1 many"),
            PaletteCommand::Invalid(_)
        ));
    }

    #[test]
    fn attach_disk_understands_target_and_readonly() {
        match parse("attach-disk web1 default/d.raw --target vdc --readonly --config") {
            PaletteCommand::AttachDisk { vm, disk, flags } => {
                assert_eq!(vm, "web1");
                assert_eq!(disk.target.as_deref(), Some("vdc"));
                assert!(disk.readonly && flags.config && !flags.live);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("attach-disk web1 default/d.raw --target"),
            PaletteCommand::Invalid(_)
        ));
    }

    #[test]
    fn detach_disk_needs_a_target() {
        assert!(matches!(
            parse("detach-disk web1"),
            PaletteCommand::Invalid(_)
        ));
        assert!(matches!(
            parse("detach-disk web1 vdb --live"),
            PaletteCommand::DetachDisk { .. }
        ));
    }

    #[test]
    fn unknown_verb_lists_the_known_ones() {
        match parse("frobnicate") {
            PaletteCommand::Invalid(message) => assert!(message.contains("start")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn autostart_disable_flag_is_understood() {
        assert_eq!(
            parse("autostart web1 --disable"),
            PaletteCommand::Autostart(Some("web1".into()), false)
        );
    }

    #[test]
    fn storage_and_network_verbs_are_understood() {
        assert_eq!(
            parse("vol-list scratch"),
            PaletteCommand::Storage(Some("scratch".into()))
        );
        assert_eq!(
            parse("net-start lab"),
            PaletteCommand::NetStart("lab".into())
        );
        assert!(matches!(parse("net-destroy"), PaletteCommand::Invalid(_)));
    }

    #[test]
    fn hosts_opens_the_hosts_pane() {
        assert_eq!(parse("hosts"), PaletteCommand::Hosts);
        assert_eq!(parse("host-list"), PaletteCommand::Hosts);
    }

    #[test]
    fn completion_finishes_verbs_and_names() {
        assert_eq!(complete("sta", &[]), Some("start ".into()));
        assert_eq!(
            complete("start w", &["web1", "db"]),
            Some("start web1 ".into())
        );
        assert_eq!(complete("start web", &["web1", "web2"]), None);
        assert_eq!(complete("s", &[]), None);
        assert_eq!(
            complete("start w", &["web10", "web11"]),
            Some("start web1".into())
        );
    }
}
