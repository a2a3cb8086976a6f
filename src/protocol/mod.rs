//! The vmd control protocol: the commands a client sends, the replies it gets back and the
//! events vmd pushes. Newline-delimited JSON over the VM's Unix socket; see
//! `docs/control-protocol.md` for the wire format with examples.
//!
//! Commands are imperative (`Pause`), events are facts (`StateChanged`). These types are shared
//! by the server (`src/vmd`) and every client (`src/client`, the CLI and the TUI); they depend on
//! nothing but serde, and the engine knows nothing of them: vmd translates between them and the
//! engine's own types. [`PROTOCOL_VERSION`] is reported by `info` and bumped on any incompatible
//! change.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Version of this protocol, reported by `info`; bump on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// One request line: `{"id": 7, "cmd": "pause"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the reply.
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

/// Everything a client can ask vmd to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Reply with [`VmInfo`].
    Info,
    /// Reply with the latest [`VmStats`] sample.
    Stats,
    /// Stop all vCPUs; the guest's clock stops with them.
    Pause,
    /// Continue after `pause`.
    Resume,
    /// Press the ACPI power button; the guest decides whether and when to power off.
    Shutdown,
    /// Stop the VM at once (like pulling the plug); vmd exits.
    Destroy,
    /// Graceful reboot: press the power button and boot again when the guest powers off.
    Reboot,
    /// Hard reset: restart the VM from its boot image at once.
    Reset,
    /// Hot-add or remove vCPUs so that `count` are plugged (`1..=max_vcpus`). Replies once the
    /// guest has been notified; the guest onlines added vCPUs and ejects removed ones itself,
    /// and each change of the online count is pushed as a `vcpus` event.
    SetVcpus {
        /// vCPUs wanted.
        count: u32,
    },
    /// Hot-add a disk: open the image (raw or qcow2) and plug it into a free PCI slot as a
    /// virtio-blk device; the guest is notified and drives it. Replies with the [`DiskInfo`].
    AttachDisk {
        /// Absolute path of the image.
        path: PathBuf,
        /// Guest device name (`vdb`); the first free one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// The guest cannot write; the image is opened read-only.
        #[serde(default)]
        read_only: bool,
        /// Serial number the guest reads (default `vmux-<target>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serial: Option<String>,
        /// The image's recorded format (`raw`, `qcow2`); never guessed from its content.
        /// Without it the file name's extension must say it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<crate::config::ImageFormat>,
        /// Backing files outside the storage pools that the image's chain may use (the disk's
        /// `allow_backing`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allow_backing: Vec<PathBuf>,
    },
    /// Ask the guest to eject disk `target`. Replies once the guest is notified; when it ejects
    /// the disk, the image is closed and a `disk_removed` event follows. With `force` the disk
    /// is taken away at once without asking (the guest loses it as if pulled out); the reply
    /// comes after the image is closed.
    DetachDisk {
        /// Guest device name (`vdb`).
        target: String,
        /// Remove it without the guest's consent.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// Live snapshot: carry on with each named disk on a new image whose backing chain holds
    /// the current one (a qcow2 overlay made by `snapshot-create`). The vCPUs are paused
    /// meanwhile; all disks switch or none does.
    SwitchDisks {
        /// The disks and their new images.
        disks: Vec<DiskSwitch>,
    },
    /// Save the VM to `path` (RAM and device state; disks are not copied) and end it, as
    /// `virsh save` does. Replies with [`SaveInfo`] once the file is complete; the VM then
    /// shuts off (an `exited` event with reason `saved`). A failed save leaves the VM running
    /// and no file behind.
    Save {
        /// Absolute path of the file to write (replaced atomically if it exists).
        path: PathBuf,
        /// State after a restore: `true` paused, `false` running; absent: the state now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paused: Option<bool>,
    },
    /// Ask the guest, through the memory balloon, to make do with `bytes` of memory (at most
    /// the VM's memory). Replies at once; the guest's driver gives memory back when it can
    /// (see `memory_stats`).
    SetMemory {
        /// Memory the guest should keep, bytes.
        bytes: u64,
    },
    /// Reply with [`MemoryStats`]: the balloon and the guest's own memory statistics.
    MemoryStats,
    /// Push events (`state`, `stats` each second, `exited`, ...) on this connection.
    Subscribe,
    /// Switch this connection to a raw console stream: after the `ok` reply every byte from
    /// vmd is guest serial output and every byte to vmd is guest input. With `history`, the
    /// ring buffer (up to 1 MiB of earlier output) is sent first.
    Console {
        /// Send the buffered earlier output before live output.
        #[serde(default)]
        history: bool,
    },
}

/// One disk of a [`Command::SwitchDisks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSwitch {
    /// Guest device name (`vda`).
    pub target: String,
    /// Absolute path of the new top image.
    pub path: PathBuf,
}

/// One reply line: `{"id": 7, "ok": true, "result": {...}}` or
/// `{"id": 7, "ok": false, "error": {"kind": "not_running", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id.
    pub id: u64,
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's result, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ReplyResult>,
    /// Why the command failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProtocolError>,
}

/// Results of the commands that return data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplyResult {
    /// Reply to `info`.
    Info(Box<VmInfo>),
    /// Reply to `stats`.
    Stats(Box<VmStats>),
    /// Reply to `attach_disk`.
    Disk(Box<DiskInfo>),
    /// Reply to `save`.
    Saved(Box<SaveInfo>),
    /// Reply to `memory_stats`.
    Memory(Box<MemoryStats>),
}

/// What a `save` wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaveInfo {
    /// The save file.
    pub path: PathBuf,
    /// Its size, bytes.
    pub file_bytes: u64,
    /// Guest memory in it (the pages the guest touched that hold data), bytes.
    pub saved_memory_bytes: u64,
    /// Milliseconds from the request to the complete file.
    pub save_ms: u64,
    /// Whether a restore leaves the VM paused.
    pub paused_after_restore: bool,
}

/// The memory balloon as vmd sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalloonStatus {
    /// Memory the host asks the guest to give back, bytes.
    pub target_bytes: u64,
    /// Memory the guest has given back, bytes.
    pub actual_bytes: u64,
    /// Memory released on the host since boot (given back and reported free), bytes.
    pub released_bytes: u64,
    /// Whether the guest's balloon driver runs.
    pub driver_ready: bool,
}

/// Reply to `memory_stats` (`vmux dommemstat`): the balloon, the guest's statistics (each
/// absent until the guest reports it) and vmd's resident memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Guest RAM the VM was defined with, bytes.
    pub memory_bytes: u64,
    /// Memory the guest has now (RAM less what the balloon holds), bytes.
    pub current_bytes: u64,
    /// The balloon, absent when the VM has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon: Option<BalloonStatus>,
    /// Free memory the guest reports, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// Available memory the guest reports (free plus reclaimable), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// Total memory the guest reports, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Disk caches, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_caches_bytes: Option<u64>,
    /// Bytes swapped in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_in_bytes: Option<u64>,
    /// Bytes swapped out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_out_bytes: Option<u64>,
    /// Major page faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_faults: Option<u64>,
    /// Minor page faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_faults: Option<u64>,
    /// When the guest last reported, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
    /// vmd's resident set size, bytes.
    pub rss_bytes: u64,
}

/// A command that failed, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolError {
    /// Machine-readable class.
    pub kind: ErrorKind,
    /// Sentence-case explanation naming the problem and the fix.
    pub message: String,
}

/// Classes of command failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line was not a valid request.
    BadRequest,
    /// The VM is in a state where the command makes no sense (e.g. `resume` while running).
    InvalidState,
    /// The command's arguments cannot be applied to this VM (e.g. more vCPUs than
    /// `max_vcpus`).
    InvalidArgument,
    /// The engine failed to carry the command out.
    Engine,
}

/// A line vmd sends without being asked, on connections that sent `subscribe`:
/// `{"event": "state", "state": "paused"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The VM changed state.
    State {
        /// The new state.
        state: RunState,
        /// For `crashed`, why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A stats sample, pushed once per second.
    Stats(Box<VmStats>),
    /// The number of online vCPUs changed: the guest brought a hot-added vCPU up (INIT/SIPI)
    /// or ejected a removed one.
    Vcpus {
        /// vCPUs online now.
        vcpus: u32,
    },
    /// A disk was hot-added (`attach_disk`).
    DiskAdded(Box<DiskInfo>),
    /// The guest ejected a disk after `detach_disk` (or the VM rebooted before it did); its
    /// image is closed.
    DiskRemoved {
        /// Guest device name.
        target: String,
    },
    /// The guest did something wrong that vmd survived (bad register write, malformed
    /// descriptor chain); informational.
    GuestError {
        /// What happened.
        message: String,
    },
    /// The VM is over and vmd is about to exit.
    Exited {
        /// Why it ended.
        reason: ExitReason,
    },
}

/// Anything vmd writes on a control connection: a reply or an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerMessage {
    /// Answer to a request.
    Reply(Reply),
    /// Pushed fact.
    Event(Event),
}

/// Lifecycle state of a VM as users see it (`vmux list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// vmd is up, the guest is executing.
    Running,
    /// vCPUs are stopped by `pause`.
    Paused,
    /// Powered off; no vmd process.
    ShutOff,
    /// The guest faulted or vmd died; see the reason.
    Crashed,
    /// Shut off with a managed save (`vmux managedsave`): the next start resumes it.
    Saved,
}

impl RunState {
    /// The words `vmux list` prints, matching virsh.
    pub fn label(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::ShutOff => "shut off",
            RunState::Crashed => "crashed",
            RunState::Saved => "saved",
        }
    }
}

/// Why a VM ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExitReason {
    /// The guest powered off (ACPI S5).
    PowerOff,
    /// `destroy` was requested.
    Destroyed,
    /// The guest wrote to the debug-exit port; `code` is the value it wrote.
    DebugExit {
        /// Value written to port 0xf4.
        code: u32,
    },
    /// The guest (or the engine) failed; `reason` names RIP and instruction bytes when known.
    Crashed {
        /// Human-readable cause.
        reason: String,
    },
    /// `save` wrote the VM to `path`; restoring that file continues it.
    Saved {
        /// The save file.
        path: PathBuf,
    },
}

/// Reply to `info`: what a running VM is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmInfo {
    /// VM name.
    pub name: String,
    /// Current state (`running` or `paused` while vmd answers).
    pub state: RunState,
    /// vmd's process id.
    pub pid: u32,
    /// vCPUs online now (present at boot or hot-added and started by the guest, less those
    /// it ejected).
    pub vcpus: u32,
    /// Largest vCPU count this boot can grow to.
    pub max_vcpus: u32,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// Seconds since the Unix epoch when this boot started.
    pub started_at: u64,
    /// Boots in this vmd (1 + reboots and resets).
    pub boots: u32,
    /// `info`'s protocol version, [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The disks plugged now, boot disks first.
    #[serde(default)]
    pub disks: Vec<DiskInfo>,
    /// What the current boot booted from its disk image's own /boot (VMs defined with
    /// `--image`); absent for other VMs and from older vmds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_image: Option<Box<BootImageInfo>>,
}

/// The kernel a VM booted from its disk image: which entry, which files inside the image, and
/// the command line it was started with (read again at every boot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootImageInfo {
    /// The image on the host (disk `vda`) the files were read from.
    pub image: PathBuf,
    /// Where the entry came from: `grub`, `bls` or `links`.
    pub entry: String,
    /// The entry's title (`Debian GNU/Linux`).
    pub title: String,
    /// The grub menuentry id or BLS entry id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
    /// Partition holding the kernel (0: a disk without a partition table).
    pub partition: u32,
    /// The kernel's path inside that filesystem, symlinks resolved (`/boot/vmlinuz-6.1.0-28-amd64`).
    pub kernel: String,
    /// The initrds' paths, in load order.
    pub initrds: Vec<String>,
    /// The whole command line the kernel got.
    pub cmdline: String,
    /// Kernel size in bytes.
    pub kernel_bytes: u64,
    /// All initrds together, in bytes.
    pub initrd_bytes: u64,
    /// Remarks (a fallback taken, a damaged primary GPT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl BootImageInfo {
    /// `/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')`, as `vmux info` shows it.
    pub fn describe(&self) -> String {
        if self.entry == "links" {
            format!("{} (the /vmlinuz link)", self.kernel)
        } else {
            let kind = if self.entry == "bls" {
                "BLS"
            } else {
                &self.entry
            };
            format!("{} ({kind} entry '{}')", self.kernel, self.title)
        }
    }
}

/// One disk of a running VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Guest device name (`vda`, `vdb`, ...).
    pub target: String,
    /// The image on the host.
    pub path: PathBuf,
    /// The guest cannot write it.
    pub read_only: bool,
    /// PCI slot (device number on bus 0) it is plugged into.
    pub slot: u8,
    /// `detach_disk` was asked and the guest has not ejected it yet.
    pub removing: bool,
    /// When the guest was asked to eject it (Unix seconds, the host's clock), while
    /// `removing`: clients show how long the guest has been silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_requested_at: Option<u64>,
}

/// One vCPU's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VcpuStats {
    /// vCPU index (= APIC id).
    pub index: u32,
    /// Host thread id of `vcpuN`.
    pub tid: u32,
    /// Host CPU time consumed by the thread, nanoseconds.
    pub cpu_time_ns: u64,
    /// CPU use over the last sample interval, percent of one host CPU.
    pub cpu_percent: f64,
    /// VM exits handled by this vCPU since boot.
    pub exits: u64,
}

/// A stats sample (vmd samples once per second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmStats {
    /// Milliseconds since this boot started.
    pub uptime_ms: u64,
    /// Per-vCPU counters.
    pub vcpus: Vec<VcpuStats>,
    /// Sum of the vCPUs' CPU use, percent of one host CPU.
    pub cpu_percent: f64,
    /// Guest RAM size in bytes.
    pub memory_bytes: u64,
    /// Guest RAM pages the guest has touched (resident), in bytes.
    pub memory_touched_bytes: u64,
    /// vmd's resident set size, in bytes (includes touched guest RAM).
    pub rss_bytes: u64,
    /// VM exits since boot, all vCPUs.
    pub exits: u64,
    /// VM exits per second over the last sample interval.
    pub exits_per_sec: f64,
    /// Bytes the guest wrote to its serial console since boot.
    pub serial_out_bytes: u64,
    /// Per-disk counters and rates, in the definition's disk order (absent from vmds older
    /// than this field: empty).
    #[serde(default)]
    pub disks: Vec<DiskStats>,
    /// One entry per NIC, in the definition's order (absent from older vmds: empty).
    #[serde(default)]
    pub nics: Vec<NicStats>,
    /// The memory balloon (absent without one, and from older vmds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balloon: Option<BalloonStatus>,
    /// Free memory the guest reports through the balloon, bytes (absent until it does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_free_bytes: Option<u64>,
}

/// One virtio-blk disk's counters since boot and its rates over the last sample interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskStats {
    /// Guest device name (`vda`, `vdb`, ...), as in the VM definition.
    pub target: String,
    /// Read requests completed successfully since boot.
    pub read_ops: u64,
    /// Bytes they read.
    pub read_bytes: u64,
    /// Write requests completed successfully since boot (write-zeroes and discard included).
    pub write_ops: u64,
    /// Bytes they wrote (write-zeroes and discard count their range).
    pub write_bytes: u64,
    /// Flush requests completed successfully since boot.
    pub flushes: u64,
    /// Requests that failed or were malformed since boot.
    pub errors: u64,
    /// Mean time from taking a request off the queue to completing it, since boot,
    /// nanoseconds (0 before the first request).
    pub average_latency_ns: u64,
    /// Bytes read per second over the last sample interval.
    pub read_bytes_per_sec: f64,
    /// Bytes written per second over the last sample interval.
    pub write_bytes_per_sec: f64,
    /// Read requests per second over the last sample interval.
    pub read_ops_per_sec: f64,
    /// Write requests per second over the last sample interval.
    pub write_ops_per_sec: f64,
}

/// One NIC's counters since boot and rates over the last sample interval. Directions are the
/// guest's: `rx` is host → guest, `tx` is guest → host. Bytes are Ethernet frame bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicStats {
    /// NIC index (0-based, the definition's order).
    pub index: u32,
    /// The host interface (TAP) it is connected to.
    pub tap: String,
    /// The guest's MAC address, `52:54:00:12:34:56`.
    pub mac: String,
    /// Bytes delivered to the guest.
    pub rx_bytes: u64,
    /// Frames delivered to the guest.
    pub rx_packets: u64,
    /// Frames for the guest the device dropped (no fitting buffer, malformed chain).
    pub rx_dropped: u64,
    /// Bytes the guest sent that reached the host.
    pub tx_bytes: u64,
    /// Frames the guest sent that reached the host.
    pub tx_packets: u64,
    /// Frames from the guest the device dropped (malformed chain, refused by the host).
    pub tx_dropped: u64,
    /// Receive rate, bytes per second.
    pub rx_bytes_per_sec: f64,
    /// Transmit rate, bytes per second.
    pub tx_bytes_per_sec: f64,
    /// Receive rate, frames per second.
    pub rx_packets_per_sec: f64,
    /// Transmit rate, frames per second.
    pub tx_packets_per_sec: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format_is_flat() {
        let req = Request {
            id: 7,
            command: Command::Console { history: true },
        };
        let line = serde_json::to_string(&req).expect("serialize");
        assert_eq!(line, r#"{"id":7,"cmd":"console","history":true}"#);
        let back: Request = serde_json::from_str(r#"{"id":1,"cmd":"pause"}"#).expect("parse");
        assert_eq!(back.command, Command::Pause);
    }

    #[test]
    fn set_vcpus_carries_its_count() {
        let req: Request =
            serde_json::from_str(r#"{"id":4,"cmd":"set_vcpus","count":3}"#).expect("parse");
        assert_eq!(req.command, Command::SetVcpus { count: 3 });
    }

    #[test]
    fn attach_disk_fills_in_its_defaults() {
        let req: Request =
            serde_json::from_str(r#"{"id":5,"cmd":"attach_disk","path":"/srv/data.qcow2"}"#)
                .expect("parse");
        assert_eq!(
            req.command,
            Command::AttachDisk {
                path: "/srv/data.qcow2".into(),
                target: None,
                read_only: false,
                serial: None,
                format: None,
                allow_backing: Vec::new(),
            }
        );
    }

    #[test]
    fn a_disk_reply_is_not_taken_for_info_or_stats() {
        let disk = DiskInfo {
            target: "vdb".into(),
            path: "/srv/data.qcow2".into(),
            read_only: true,
            slot: 2,
            removing: false,
            removal_requested_at: None,
        };
        let line =
            serde_json::to_string(&ReplyResult::Disk(Box::new(disk.clone()))).expect("serialize");
        let back: ReplyResult = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, ReplyResult::Disk(Box::new(disk)));
    }

    #[test]
    fn save_and_memory_replies_are_told_apart_from_the_others() {
        let saved = ReplyResult::Saved(Box::new(SaveInfo {
            path: "/srv/web.save".into(),
            file_bytes: 10,
            saved_memory_bytes: 4096,
            save_ms: 3,
            paused_after_restore: false,
        }));
        let memory = ReplyResult::Memory(Box::new(MemoryStats {
            memory_bytes: 1 << 30,
            current_bytes: 1 << 29,
            balloon: None,
            free_bytes: Some(7),
            available_bytes: None,
            total_bytes: None,
            disk_caches_bytes: None,
            swap_in_bytes: None,
            swap_out_bytes: None,
            major_faults: None,
            minor_faults: None,
            updated_at: None,
            rss_bytes: 5,
        }));
        for reply in [saved, memory] {
            let line = serde_json::to_string(&reply).expect("serialize");
            assert_eq!(
                serde_json::from_str::<ReplyResult>(&line).expect("parse"),
                reply
            );
        }
    }

    #[test]
    fn save_takes_a_path_and_an_optional_state() {
        let req: Request =
            serde_json::from_str(r#"{"id":9,"cmd":"save","path":"/s/web.save","paused":true}"#)
                .expect("parse");
        assert_eq!(
            req.command,
            Command::Save {
                path: "/s/web.save".into(),
                paused: Some(true)
            }
        );
    }

    #[test]
    fn stats_without_disks_parse_as_no_disks() {
        let line = r#"{"uptime_ms":1,"vcpus":[],"cpu_percent":0.0,"memory_bytes":0,"memory_touched_bytes":0,"rss_bytes":0,"exits":0,"exits_per_sec":0.0,"serial_out_bytes":0}"#;

        let stats: VmStats = serde_json::from_str(line).expect("parse");

        assert!(stats.disks.is_empty());
    }

    #[test]
    fn events_and_replies_are_told_apart() {
        let ev = r#"{"event":"state","state":"paused"}"#;
        let msg: ServerMessage = serde_json::from_str(ev).expect("parse event");
        assert!(matches!(
            msg,
            ServerMessage::Event(Event::State {
                state: RunState::Paused,
                ..
            })
        ));
        let reply = r#"{"id":3,"ok":false,"error":{"kind":"invalid_state","message":"x"}}"#;
        let msg: ServerMessage = serde_json::from_str(reply).expect("parse reply");
        assert!(matches!(
            msg,
            ServerMessage::Reply(Reply {
                id: 3,
                ok: false,
                ..
            })
        ));
    }
}
