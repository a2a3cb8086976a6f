//! Read verbs: `list`, `info`, `stats`, each as a text table or `--json`. The JSON structs
//! here are the stable output shapes documented in docs/cli.md: add fields, never rename.

use super::images::vda_label;
use super::output::{Table, format_duration};
use super::{CliError, Io};
use crate::client::NetworkHost;
use crate::client::StorageHost;
use crate::client::{BrokenVm, ClientError, Host, VmStatus};
use crate::config::{BootConfig, ConfigError, VmConfig, format_size};
use crate::network::InterfaceAddress;
use crate::protocol::{BootImageInfo, DiskInfo, DiskStats, RunState, VmInfo, VmStats};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `vmux list --json`.
#[derive(Debug, Serialize)]
struct ListJson {
    vms: Vec<ListEntryJson>,
    errors: Vec<BrokenJson>,
}

/// One VM in `vmux list --json`. A VM whose definition is broken is listed too (with
/// `definition_error` set): its numbers come from its vmd while it runs and are `null` when
/// nothing can tell them.
#[derive(Debug, Serialize)]
struct ListEntryJson {
    name: String,
    state: RunState,
    pid: Option<u32>,
    vcpus: Option<u32>,
    max_vcpus: Option<u32>,
    memory_bytes: Option<u64>,
    autostart: Option<bool>,
    reason: Option<String>,
    /// One per NIC: network, MAC, TAP while running, leased (or ARP-seen) address.
    nics: Vec<InterfaceAddress>,
    /// Why the definition file cannot be used (`null` when it is fine).
    definition_error: Option<BrokenJson>,
}

/// One unusable definition file in `vmux list --json`.
#[derive(Debug, Clone, Serialize)]
struct BrokenJson {
    path: PathBuf,
    line: Option<usize>,
    reason: String,
    /// The command that repairs it.
    fix: String,
}

impl BrokenJson {
    fn of(broken: &BrokenVm) -> BrokenJson {
        BrokenJson {
            path: broken.error.path.clone(),
            line: broken.error.line,
            reason: broken.error.reason.clone(),
            fix: broken.fix(),
        }
    }
}

/// `vmux info --json`.
#[derive(Debug, Serialize)]
struct InfoJson<'a> {
    name: &'a str,
    state: RunState,
    reason: Option<&'a str>,
    pid: Option<u32>,
    uptime_s: Option<u64>,
    boots: Option<u32>,
    vcpus: Option<u32>,
    max_vcpus: Option<u32>,
    memory_bytes: Option<u64>,
    autostart: Option<bool>,
    boot: Option<&'a BootConfig>,
    /// For VMs booted from their disk image: what the running boot booted (from vmd), or what
    /// the next start would boot (inspected now).
    #[serde(skip_serializing_if = "Option::is_none")]
    boot_image: Option<BootImageInfo>,
    /// Why the image of a shut-off VM cannot be booted.
    #[serde(skip_serializing_if = "Option::is_none")]
    boot_image_error: Option<String>,
    /// The cloud-init seed, for VMs with cloud-init settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_init: Option<CloudInitJson>,
    /// The running VM's disks (hot-added ones included); absent when it does not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    disks: Option<&'a [DiskInfo]>,
    /// One per NIC, as in `list --json`.
    nics: Vec<InterfaceAddress>,
    /// Why the definition file cannot be used (`null` when it is fine).
    definition_error: Option<BrokenJson>,
}

/// The cloud-init part of `vmux info --json`.
#[derive(Debug, Serialize)]
struct CloudInitJson {
    /// What it configures, in words.
    summary: String,
    /// The seed image (built by vmd at the first start, rebuilt when the settings change).
    seed: PathBuf,
    /// The instance-id of the seed built last; absent before the first start.
    instance_id: Option<String>,
}

/// `vmux stats --json`: the VM's name and vmd's sample.
#[derive(Debug, Serialize)]
struct StatsJson<'a> {
    name: &'a str,
    #[serde(flatten)]
    stats: &'a VmStats,
}

/// `vmux list`: live VMs (all with `all`), whether or not their definitions parse; a broken
/// definition is also reported on stderr with the command that repairs it.
pub fn list(
    host: &dyn Host,
    networks: &dyn NetworkHost,
    all: bool,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let mut shown = Vec::new();
    let mut errors = Vec::new();
    for entry in host.list() {
        match entry {
            Ok(status) if all || is_live(status.state) => shown.push(Ok(status)),
            Ok(_) => {}
            Err(broken) => {
                writeln!(
                    io.err,
                    "error: {}; repair it with `{}`",
                    broken.error,
                    broken.fix()
                )?;
                errors.push(BrokenJson::of(&broken));
                if all || broken.live.is_active() {
                    shown.push(Err(broken));
                }
            }
        }
    }
    // A running VM with a broken definition: vmd knows its size.
    let live_info = |broken: &BrokenVm| {
        broken
            .live
            .is_active()
            .then(|| host.info(&broken.name).ok())
            .flatten()
    };
    if json {
        let vms = shown
            .iter()
            .map(|entry| match entry {
                Ok(status) => list_entry(status, networks),
                Err(broken) => broken_entry(broken, live_info(broken).as_ref()),
            })
            .collect();
        return write_json(io, &ListJson { vms, errors });
    }
    let mut table = Table::new(&["Id", "Name", "State", "vCPUs", "Memory", "Autostart"]);
    for entry in &shown {
        match entry {
            Ok(status) => {
                let cfg = &status.config;
                table.row(vec![
                    status.pid.map_or("-".into(), |p| p.to_string()),
                    cfg.name.clone(),
                    status.state.label().into(),
                    format!("{}/{}", status.vcpus.unwrap_or(cfg.vcpus), cfg.max_vcpus),
                    format_size(cfg.memory),
                    yes_no(cfg.autostart).into(),
                ]);
            }
            Err(broken) => {
                let info = live_info(broken);
                table.row(vec![
                    broken.live.pid.map_or("-".into(), |p| p.to_string()),
                    broken.name.clone(),
                    format!("{}, definition broken", broken.live.state.label()),
                    info.as_ref()
                        .map_or("-".into(), |i| format!("{}/{}", i.vcpus, i.max_vcpus)),
                    info.as_ref()
                        .map_or("-".into(), |i| format_size(i.memory_bytes)),
                    "-".into(),
                ]);
            }
        }
    }
    io.out.write_all(table.render().as_bytes())?;
    Ok(())
}

/// The VM's NICs with their addresses; without network access, what the definition says.
fn nic_addresses(cfg: &VmConfig, networks: &dyn NetworkHost) -> Vec<InterfaceAddress> {
    if cfg.nics.is_empty() {
        return Vec::new();
    }
    let found = networks.addresses(&cfg.name).unwrap_or_else(|e| {
        log::debug!("no addresses for VM '{}': {e}", cfg.name);
        Vec::new()
    });
    if found.len() == cfg.nics.len() {
        return found;
    }
    cfg.nics
        .iter()
        .map(|nic| InterfaceAddress {
            network: nic.network.clone(),
            mac: nic.mac,
            tap: None,
            ip: None,
            prefix: None,
            source: None,
        })
        .collect()
}

fn list_entry(status: &VmStatus, networks: &dyn NetworkHost) -> ListEntryJson {
    let cfg = &status.config;
    ListEntryJson {
        name: cfg.name.clone(),
        state: status.state,
        pid: status.pid,
        vcpus: Some(status.vcpus.unwrap_or(cfg.vcpus)),
        max_vcpus: Some(cfg.max_vcpus),
        memory_bytes: Some(cfg.memory),
        autostart: Some(cfg.autostart),
        reason: status.reason.clone(),
        nics: nic_addresses(cfg, networks),
        definition_error: None,
    }
}

fn broken_entry(broken: &BrokenVm, info: Option<&VmInfo>) -> ListEntryJson {
    ListEntryJson {
        name: broken.name.clone(),
        state: broken.live.state,
        pid: broken.live.pid,
        vcpus: info.map(|i| i.vcpus).or(broken.live.vcpus),
        max_vcpus: info.map(|i| i.max_vcpus),
        memory_bytes: info.map(|i| i.memory_bytes),
        autostart: None,
        reason: broken.live.reason.clone(),
        nics: Vec::new(),
        definition_error: Some(BrokenJson::of(broken)),
    }
}

/// `vmux info`: the definition, plus vmd's live facts while it runs. A broken definition is
/// shown as broken (with the fix) beside what vmd says.
pub fn info(
    host: &dyn Host,
    networks: &dyn NetworkHost,
    storage: &dyn StorageHost,
    name: &str,
    json: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let state = host.state(name)?;
    let (config, broken) = match host.status(name) {
        Ok(status) => (Some(status.config), None),
        Err(ClientError::Config(ConfigError::BrokenVm { source, .. })) => {
            let broken = BrokenVm {
                name: name.to_string(),
                error: Box::new(source),
                live: state.clone(),
            };
            (None, Some(broken))
        }
        Err(e) => return Err(e.into()),
    };
    let live = if state.is_active() {
        Some(host.info(name)?)
    } else {
        None
    };
    let cfg = config.as_ref();
    let uptime = live.as_ref().map(uptime);
    let nics = cfg.map(|c| nic_addresses(c, networks)).unwrap_or_default();
    let vcpus = live.as_ref().map(|l| l.vcpus).or(cfg.map(|c| c.vcpus));
    let max_vcpus = live
        .as_ref()
        .map(|l| l.max_vcpus)
        .or(cfg.map(|c| c.max_vcpus));
    let memory = live
        .as_ref()
        .map(|l| l.memory_bytes)
        .or(cfg.map(|c| c.memory));
    let (boot_image, boot_image_error) = cfg
        .map(|c| boot_image(c, live.as_ref(), storage))
        .unwrap_or_default();
    let cloud_init = cfg.and_then(|c| {
        let options = c.cloud_init.as_ref()?;
        let (seed, instance_id) = storage.cloud_init_seed(&c.name);
        Some(CloudInitJson {
            summary: super::cloud_init::summary(options, &c.name),
            seed,
            instance_id,
        })
    });
    if json {
        let shape = InfoJson {
            name,
            state: live.as_ref().map_or(state.state, |l| l.state),
            reason: state.reason.as_deref(),
            pid: live.as_ref().map(|l| l.pid).or(state.pid),
            uptime_s: uptime.map(|u| u.as_secs()),
            boots: live.as_ref().map(|l| l.boots),
            vcpus,
            max_vcpus,
            memory_bytes: memory,
            autostart: cfg.map(|c| c.autostart),
            boot: cfg.map(|c| &c.boot),
            boot_image,
            boot_image_error,
            cloud_init,
            disks: live.as_ref().map(|l| l.disks.as_slice()),
            nics,
            definition_error: broken.as_ref().map(BrokenJson::of),
        };
        return write_json(io, &shape);
    }
    let mut lines: Vec<(&str, String)> = vec![
        ("Name", name.to_string()),
        (
            "State",
            live.as_ref()
                .map_or(state.state, |l| l.state)
                .label()
                .into(),
        ),
    ];
    if let Some(broken) = &broken {
        lines.push((
            "Definition",
            format!(
                "broken: {}; repair it with `{}`",
                broken.error,
                broken.fix()
            ),
        ));
    }
    if let Some(reason) = &state.reason {
        lines.push(("Reason", reason.clone()));
    }
    if let Some(live) = &live {
        lines.push(("Pid", live.pid.to_string()));
        lines.push(("Uptime", uptime.map(format_duration).unwrap_or_default()));
        lines.push(("Boots", live.boots.to_string()));
    }
    if let (Some(vcpus), Some(max_vcpus)) = (vcpus, max_vcpus) {
        lines.push(("vCPUs", format!("{vcpus} (max {max_vcpus})")));
    }
    if let Some(memory) = memory {
        lines.push(("Memory", format_size(memory)));
    }
    if let Some(cfg) = cfg {
        lines.extend(boot_lines(&cfg.boot));
        if matches!(cfg.boot, BootConfig::Image { .. }) {
            lines.extend(image_lines(
                cfg,
                boot_image.as_ref(),
                boot_image_error.as_deref(),
            ));
        }
    }
    if let Some(cloud_init) = &cloud_init {
        lines.push(("Cloud-init", cloud_init.summary.clone()));
        let seed = match &cloud_init.instance_id {
            Some(id) => format!("{} (instance-id {id})", cloud_init.seed.display()),
            None => format!("{} (built at the first start)", cloud_init.seed.display()),
        };
        lines.push(("Seed", seed));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for disk in live.iter().flat_map(|l| &l.disks) {
        lines.push(("Disk", disk_line(name, disk, now)));
    }
    if let Some(cfg) = cfg {
        lines.push(("Autostart", yes_no(cfg.autostart).into()));
    }
    for (key, value) in lines {
        writeln!(io.out, "{:<11} {value}", format!("{key}:"))?;
    }
    for (index, nic) in nics.iter().enumerate() {
        let address = match (nic.ip, nic.prefix) {
            (Some(ip), Some(prefix)) => format!("{ip}/{prefix}"),
            (Some(ip), None) => ip.to_string(),
            (None, _) => "no address yet".into(),
        };
        let tap = nic
            .tap
            .as_deref()
            .map_or(String::new(), |t| format!(" ({t})"));
        writeln!(
            io.out,
            "{:<11} {} on {}{tap}: {address}",
            format!("NIC {index}:"),
            nic.mac,
            nic.network
        )?;
    }
    Ok(())
}

/// `info`'s lines for an image-booted VM: what it boots, or why it cannot.
fn image_lines(
    cfg: &VmConfig,
    booted: Option<&BootImageInfo>,
    error: Option<&str>,
) -> Vec<(&'static str, String)> {
    let image = vda_label(cfg);
    match (booted, error) {
        (Some(booted), _) => {
            let initrds = if booted.initrds.is_empty() {
                "(none)".to_string()
            } else {
                booted.initrds.join(" ")
            };
            vec![
                (
                    "Boot",
                    format!("image {image} \u{2192} {}", booted.describe()),
                ),
                ("Initrd", initrds),
                ("Cmdline", booted.cmdline.clone()),
            ]
        }
        (None, Some(error)) => vec![("Boot", format!("image {image} (cannot boot: {error})"))],
        (None, None) => vec![("Boot", format!("image {image}"))],
    }
}

/// What an image-booted VM boots: the running boot's choice from vmd, or what its image holds
/// now; the error when a shut-off VM's image cannot be booted.
fn boot_image(
    cfg: &VmConfig,
    live: Option<&VmInfo>,
    storage: &dyn StorageHost,
) -> (Option<BootImageInfo>, Option<String>) {
    let BootConfig::Image { cmdline_extra } = &cfg.boot else {
        return (None, None);
    };
    if let Some(booted) = live.and_then(|l| l.boot_image.as_deref().cloned()) {
        return (Some(booted), None);
    }
    match super::images::plan(storage, cfg) {
        Ok(plan) => {
            let path = super::images::vda_path(storage, cfg).unwrap_or_default();
            (Some(plan.boot_info(&path, cmdline_extra)), None)
        }
        Err(e) => (None, Some(super::output::error_chain(&e))),
    }
}

/// One disk of VM `vm` for `info`: target, image, and a removal still in progress with how
/// long the guest has been asked (`now` in Unix seconds) and the way to force it.
fn disk_line(vm: &str, disk: &DiskInfo, now: u64) -> String {
    let mut text = format!("{} {}", disk.target, disk.path.display());
    if disk.read_only {
        text.push_str(" (read-only)");
    }
    if disk.removing {
        let waited = disk
            .removal_requested_at
            .map(|asked| {
                format!(
                    " for {}",
                    format_duration(Duration::from_secs(now.saturating_sub(asked)))
                )
            })
            .unwrap_or_default();
        text.push_str(&format!(
            " (being removed{waited}: waiting for the guest to eject it; `vmux detach-disk {vm} {} --force` takes it now)",
            disk.target
        ));
    }
    text
}

fn boot_lines(boot: &BootConfig) -> Vec<(&'static str, String)> {
    match boot {
        BootConfig::Demo => vec![("Boot", "demo guest (built in)".into())],
        BootConfig::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            let mut lines = vec![("Kernel", kernel.display().to_string())];
            if let Some(initrd) = initrd {
                lines.push(("Initrd", initrd.display().to_string()));
            }
            let cmdline = if cmdline.is_empty() {
                "(none)"
            } else {
                cmdline
            };
            lines.push(("Cmdline", cmdline.to_string()));
            lines
        }
        BootConfig::Image { .. } => Vec::new(),
    }
}

/// Time since this boot started, by the host clock (zero if the clock went backwards).
fn uptime(info: &VmInfo) -> Duration {
    let started = UNIX_EPOCH + Duration::from_secs(info.started_at);
    SystemTime::now()
        .duration_since(started)
        .unwrap_or(Duration::ZERO)
}

/// `vmux stats`: vmd's latest sample.
pub fn stats(host: &dyn Host, name: &str, json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    if !host.state(name)?.is_active() {
        return Err(ClientError::NotRunning(name.to_string()).into());
    }
    let stats = host.stats(name)?;
    if json {
        return write_json(
            io,
            &StatsJson {
                name,
                stats: &stats,
            },
        );
    }
    let out = &mut io.out;
    writeln!(
        out,
        "Uptime:          {}",
        format_duration(Duration::from_millis(stats.uptime_ms))
    )?;
    writeln!(out, "CPU:             {:.1}%", stats.cpu_percent)?;
    for vcpu in &stats.vcpus {
        writeln!(
            out,
            "  vcpu{:<3}        {:.1}%  ({} exits, tid {})",
            vcpu.index, vcpu.cpu_percent, vcpu.exits, vcpu.tid
        )?;
    }
    writeln!(
        out,
        "Memory touched:  {} of {}",
        format_size(stats.memory_touched_bytes),
        format_size(stats.memory_bytes)
    )?;
    writeln!(out, "RSS (vmd):       {}", format_size(stats.rss_bytes))?;
    writeln!(
        out,
        "Exits/s:         {:.1}  ({} total)",
        stats.exits_per_sec, stats.exits
    )?;
    writeln!(out, "Serial out:      {} bytes", stats.serial_out_bytes)?;
    if !stats.disks.is_empty() {
        writeln!(out, "Disks:")?;
        out.write_all(disk_table(&stats.disks).as_bytes())?;
    }
    for nic in &stats.nics {
        writeln!(
            out,
            "NIC {} ({}):  rx {:.0} frames/s {}/s, tx {:.0} frames/s {}/s  ({} rx / {} tx frames, {} / {} dropped)",
            nic.index,
            nic.tap,
            nic.rx_packets_per_sec,
            format_size(nic.rx_bytes_per_sec as u64),
            nic.tx_packets_per_sec,
            format_size(nic.tx_bytes_per_sec as u64),
            nic.rx_packets,
            nic.tx_packets,
            nic.rx_dropped,
            nic.tx_dropped,
        )?;
    }
    Ok(())
}

/// One row per disk: totals since boot, rates over the last sample interval, errors and the
/// mean request latency.
fn disk_table(disks: &[DiskStats]) -> String {
    let mut table = Table::new(&[
        "Disk", "Read", "Written", "Read/s", "Write/s", "Reads", "Writes", "Flushes", "Errors",
        "Latency",
    ]);
    for disk in disks {
        table.row(vec![
            disk.target.clone(),
            format_size(disk.read_bytes),
            format_size(disk.write_bytes),
            format_rate(disk.read_bytes_per_sec),
            format_rate(disk.write_bytes_per_sec),
            disk.read_ops.to_string(),
            disk.write_ops.to_string(),
            disk.flushes.to_string(),
            disk.errors.to_string(),
            format_latency(disk.average_latency_ns),
        ]);
    }
    table.render()
}

/// Bytes per second as `1.5M/s` (rounded down to whole bytes; negative or NaN as `0B/s`).
fn format_rate(bytes_per_sec: f64) -> String {
    let bytes = if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 {
        bytes_per_sec as u64
    } else {
        0
    };
    format!("{}/s", format_size(bytes))
}

/// A latency in the unit that keeps it readable: `850ns`, `125us`, `3.2ms`, `-` before any
/// request.
fn format_latency(ns: u64) -> String {
    match ns {
        0 => "-".into(),
        1..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}us", ns / 1_000),
        _ => format!("{:.1}ms", ns as f64 / 1e6),
    }
}

pub(super) fn write_json(io: &mut Io<'_>, value: &impl Serialize) -> Result<(), CliError> {
    // `From` keeps a closed pipe an I/O error (so it is recognised as one).
    serde_json::to_writer_pretty(&mut io.out, value).map_err(std::io::Error::from)?;
    writeln!(io.out)?;
    Ok(())
}

fn is_live(state: RunState) -> bool {
    matches!(state, RunState::Running | RunState::Paused)
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{add_vm, capture, host_with_vm};
    use crate::client::FakeStorage;
    use crate::client::fake::FakeHost;

    /// Storage holding the image VMs' disks (each boots Debian's grub entry).
    fn images() -> FakeStorage {
        let storage = FakeStorage::new();
        storage.add_volume("default", "web1.qcow2", 2 << 30, 400 << 20);
        storage
    }
    use crate::client::FakeNetworks;
    use crate::config::{DefinitionError, NicConfig};
    use crate::protocol::VcpuStats;

    fn no_networks() -> FakeNetworks {
        FakeNetworks::default()
    }

    /// A host with VM `on` running (its vmd is pid 4242, one stats sample scripted) and VM
    /// `off` shut off.
    fn host() -> FakeHost {
        let host = host_with_vm("on", RunState::Running);
        host.set_pid("on", 4242);
        host.set_stats("on", sample_stats());
        add_vm(
            &host,
            VmConfig::new("off", BootConfig::Demo),
            RunState::ShutOff,
        );
        host
    }

    /// One stats sample of a 256M guest with one vCPU and one disk.
    fn sample_stats() -> VmStats {
        VmStats {
            uptime_ms: 61_000,
            vcpus: vec![VcpuStats {
                index: 0,
                tid: 4243,
                cpu_time_ns: 2_000_000_000,
                cpu_percent: 12.5,
                exits: 1000,
            }],
            cpu_percent: 12.5,
            memory_bytes: 256 << 20,
            memory_touched_bytes: 8 << 20,
            rss_bytes: 20 << 20,
            exits: 1000,
            exits_per_sec: 42.0,
            serial_out_bytes: 77,
            disks: vec![DiskStats {
                target: "vda".into(),
                read_ops: 300,
                read_bytes: 3 << 20,
                write_ops: 40,
                write_bytes: 160 << 10,
                flushes: 7,
                errors: 0,
                average_latency_ns: 125_000,
                read_bytes_per_sec: 1536.0 * 1024.0,
                write_bytes_per_sec: 0.0,
                read_ops_per_sec: 150.0,
                write_ops_per_sec: 0.0,
            }],
            nics: Vec::new(),
            balloon: None,
            guest_free_bytes: None,
        }
    }

    /// The text of a definition file a hand edit broke.
    const BROKEN_TEXT: &str = "name = \"on\"\nvcpus = \"two\"\n";

    #[test]
    fn list_shows_only_live_vms_by_default() {
        let (result, out, _) = capture(|io| list(&host(), &no_networks(), false, false, io));
        result.expect("list");
        assert!(out.contains(" on "), "{out}");
        assert!(!out.contains("off"), "{out}");
    }

    #[test]
    fn list_all_shows_shut_off_vms_with_vcpus_now_and_max() {
        let (result, out, _) = capture(|io| list(&host(), &no_networks(), true, false, io));
        result.expect("list");
        let row = out.lines().find(|l| l.contains("off")).expect("row");
        assert!(row.contains("shut off") && row.contains("1/4"), "{row}");
    }

    #[test]
    fn list_reports_broken_files_and_still_lists_the_rest() {
        let host = host();
        host.add_broken_definition(DefinitionError {
            path: "/x/bad.toml".into(),
            line: Some(2),
            reason: "invalid type".into(),
        });
        let (result, out, err) = capture(|io| list(&host, &no_networks(), true, false, io));
        result.expect("list");
        assert!(err.contains("/x/bad.toml:2: invalid type"), "{err}");
        assert!(out.contains("on") && out.contains("off"), "{out}");
    }

    #[test]
    fn list_json_has_vms_and_errors() {
        let (result, out, _) = capture(|io| list(&host(), &no_networks(), true, true, io));
        result.expect("list");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["vms"][1]["state"], "running");
        assert_eq!(value["vms"][0]["state"], "shut_off");
        assert_eq!(value["vms"][0]["memory_bytes"], 256u64 << 20);
        assert!(value["errors"].as_array().is_some_and(Vec::is_empty));
    }

    fn broken_error() -> DefinitionError {
        DefinitionError {
            path: "/x/on.toml".into(),
            line: Some(2),
            reason: "invalid type: string \"two\", expected u32".into(),
        }
    }

    #[test]
    fn list_shows_a_running_vm_whose_definition_is_broken_with_the_fix() {
        let host = host();
        host.break_definition_with("on", broken_error(), BROKEN_TEXT);
        let (result, out, err) = capture(|io| list(&host, &no_networks(), false, false, io));
        result.expect("list");
        let row = out.lines().find(|l| l.contains(" on ")).expect("listed");
        assert!(row.contains("running, definition broken"), "{row}");
        assert!(row.contains("4242") && row.contains("1/4"), "{row}");
        assert!(err.contains("vmux edit on"), "{err}");
    }

    #[test]
    fn list_all_shows_a_stopped_vm_whose_definition_is_broken() {
        let host = host();
        host.break_definition_with("off", broken_error(), BROKEN_TEXT);
        let (result, out, _) = capture(|io| list(&host, &no_networks(), true, false, io));
        result.expect("list");
        let row = out.lines().find(|l| l.contains(" off ")).expect("listed");
        assert!(row.contains("shut off, definition broken"), "{row}");
    }

    #[test]
    fn list_json_marks_a_broken_definition_on_its_vm() {
        let host = host();
        host.break_definition_with("on", broken_error(), BROKEN_TEXT);
        let (result, out, _) = capture(|io| list(&host, &no_networks(), false, true, io));
        result.expect("list");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        let vm = &value["vms"][0];
        assert_eq!(vm["name"], "on");
        assert_eq!(vm["state"], "running");
        assert_eq!(vm["memory_bytes"], 256u64 << 20);
        assert_eq!(vm["definition_error"]["fix"], "vmux edit on");
        assert_eq!(value["errors"][0]["line"], 2);
    }

    #[test]
    fn info_of_a_running_vm_with_a_broken_definition_shows_vmd_and_the_fix() {
        let host = host();
        host.break_definition_with("on", broken_error(), BROKEN_TEXT);
        let (result, out, _) =
            capture(|io| info(&host, &no_networks(), &images(), "on", false, io));
        result.expect("info");
        assert!(out.contains("State:      running"), "{out}");
        assert!(out.contains("Pid:        4242"), "{out}");
        assert!(out.contains("Definition: broken: /x/on.toml:2"), "{out}");
        assert!(out.contains("`vmux edit on`"), "{out}");
    }

    #[test]
    fn a_pending_removal_shows_how_long_the_guest_has_been_asked_and_the_way_out() {
        let disk = DiskInfo {
            target: "vdb".into(),
            path: "/images/data.qcow2".into(),
            read_only: false,
            slot: 2,
            removing: true,
            removal_requested_at: Some(1_000),
        };
        let line = disk_line("web", &disk, 1_083);
        assert!(line.contains("being removed for 1m 23s"), "{line}");
        assert!(line.contains("vmux detach-disk web vdb --force"), "{line}");
    }

    #[test]
    fn info_of_a_running_vm_shows_pid_and_uptime() {
        let (result, out, _) =
            capture(|io| info(&host(), &no_networks(), &images(), "on", false, io));
        result.expect("info");
        assert!(out.contains("Pid:        4242"), "{out}");
        assert!(out.contains("Uptime:"), "{out}");
    }

    #[test]
    fn info_json_of_a_shut_off_vm_has_no_pid() {
        let (result, out, _) =
            capture(|io| info(&host(), &no_networks(), &images(), "off", true, io));
        result.expect("info");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["state"], "shut_off");
        assert!(value["pid"].is_null());
        assert_eq!(value["boot"]["source"], "demo");
    }

    fn host_with_nic() -> FakeHost {
        let host = FakeHost::default();
        let mut cfg = VmConfig::new("web", BootConfig::Demo);
        cfg.nics.push(NicConfig {
            network: "default".into(),
            mac: crate::config::MacAddr::with_vmux_prefix(1),
        });
        add_vm(&host, cfg, RunState::Running);
        host
    }

    #[test]
    fn list_json_shows_each_nic_with_its_address() {
        let networks = FakeNetworks::with_default();
        networks.attach(
            "default",
            "web",
            crate::config::MacAddr::with_vmux_prefix(1),
            Some(std::net::Ipv4Addr::new(192, 168, 123, 10)),
            true,
        );

        let (result, out, _) = capture(|io| list(&host_with_nic(), &networks, false, true, io));

        result.expect("list");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        let nic = &value["vms"][0]["nics"][0];
        assert_eq!(nic["ip"], "192.168.123.10");
        assert_eq!(nic["network"], "default");
        assert_eq!(nic["tap"], "vmux-web-0");
    }

    #[test]
    fn info_shows_a_nic_without_a_lease_as_waiting_for_one() {
        let (result, out, _) = capture(|io| {
            info(
                &host_with_nic(),
                &no_networks(),
                &images(),
                "web",
                false,
                io,
            )
        });

        result.expect("info");
        let line = out
            .lines()
            .find(|l| l.starts_with("NIC 0:"))
            .expect("NIC line");
        assert!(
            line.contains("52:54:00:00:00:01 on default: no address yet"),
            "{line}"
        );
    }

    fn image_vm_host() -> FakeHost {
        let host = FakeHost::default();
        let mut cfg = VmConfig::new(
            "web1",
            BootConfig::Image {
                cmdline_extra: "quiet".into(),
            },
        );
        cfg.disks = vec!["default/web1.qcow2".parse().expect("disk")];
        cfg.cloud_init =
            Some(crate::cloudinit::CloudInitOptions::parse("user=me").expect("options"));
        add_vm(&host, cfg, RunState::ShutOff);
        host
    }

    #[test]
    fn info_of_a_shut_off_image_vm_says_what_the_next_start_boots() {
        let (result, out, _) = capture(|io| {
            info(
                &image_vm_host(),
                &no_networks(),
                &images(),
                "web1",
                false,
                io,
            )
        });

        result.expect("info");
        assert!(
            out.contains(
                "Boot:       image default/web1.qcow2 \u{2192} /boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "Cmdline:    BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=UUID=1 ro console=ttyS0 quiet"
            ),
            "{out}"
        );
        assert!(out.contains("Cloud-init: user me"), "{out}");
        assert!(out.contains("(built at the first start)"), "{out}");
    }

    #[test]
    fn info_json_of_an_image_vm_that_cannot_boot_gives_the_reason() {
        let images = images();
        images.set_unbootable(Some("no kernel found in the disk image"));
        let (result, out, _) =
            capture(|io| info(&image_vm_host(), &no_networks(), &images, "web1", true, io));

        result.expect("info");
        let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert!(doc["boot_image"].is_null(), "{doc}");
        assert_eq!(doc["boot_image_error"], "no kernel found in the disk image");
        assert_eq!(doc["cloud_init"]["seed"], "/state/web1/cidata.img");
    }

    #[test]
    fn stats_of_a_shut_off_vm_says_how_to_start_it() {
        let (result, _, _) = capture(|io| stats(&host(), "off", false, io));
        let err = result.expect_err("must fail");
        assert!(err.to_string().contains("vmux start off"), "{err}");
    }

    #[test]
    fn stats_shows_cpu_per_vcpu_and_memory() {
        let (result, out, _) = capture(|io| stats(&host(), "on", false, io));
        result.expect("stats");
        assert!(out.contains("12.5%"), "{out}");
        assert!(out.contains("vcpu0"), "{out}");
        assert!(out.contains("8M of 256M"), "{out}");
    }

    #[test]
    fn stats_json_flattens_the_sample_beside_the_name() {
        let (result, out, _) = capture(|io| stats(&host(), "on", true, io));
        result.expect("stats");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["name"], "on");
        assert_eq!(value["serial_out_bytes"], 77);
    }

    #[test]
    fn stats_shows_a_row_per_disk_with_totals_rates_and_latency() {
        let (result, out, _) = capture(|io| stats(&host(), "on", false, io));
        result.expect("stats");
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with("vda"))
            .expect("a vda row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "vda", "3M", "160K", "1.5M/s", "0B/s", "300", "40", "7", "0", "125us"
            ],
            "{out}"
        );
    }

    #[test]
    fn stats_json_lists_the_disks() {
        let (result, out, _) = capture(|io| stats(&host(), "on", true, io));
        result.expect("stats");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        let vda = &value["disks"][0];
        assert_eq!(vda["target"], "vda");
        assert_eq!(vda["read_bytes"], 3u64 << 20);
        assert_eq!(vda["flushes"], 7);
        assert_eq!(vda["read_bytes_per_sec"], 1536.0 * 1024.0);
    }

    #[test]
    fn latencies_print_in_a_readable_unit() {
        assert_eq!(format_latency(0), "-");
        assert_eq!(format_latency(850), "850ns");
        assert_eq!(format_latency(125_400), "125us");
        assert_eq!(format_latency(3_240_000), "3.2ms");
    }

    #[test]
    fn rates_round_down_and_never_go_negative() {
        assert_eq!(format_rate(1536.7 * 1024.0), "1.5M/s");
        assert_eq!(format_rate(-5.0), "0B/s");
        assert_eq!(format_rate(f64::NAN), "0B/s");
    }
}
