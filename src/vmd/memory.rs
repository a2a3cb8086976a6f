//! Memory in vmd: `set_memory` (`vmux setmem --live`) sets the balloon's target so the guest
//! keeps the memory asked for, and `memory_stats` (`vmux dommemstat`) reports the balloon, the
//! statistics the guest sends through it, and vmd's resident memory.

use super::boot::error_chain;
use super::stats::{HostReadings, balloon_status};
use super::supervisor::{Supervisor, protocol_error};
use crate::config::format_size;
use crate::protocol::{ErrorKind, MemoryStats, ProtocolError};

impl Supervisor {
    /// `set_memory`: asks the guest to make do with `bytes` (at most the VM's memory).
    pub(super) fn set_memory(&self, bytes: u64) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let (control, _) = self.current()?;
        let memory = self.base_spec.memory_bytes;
        if bytes > memory {
            return Err(protocol_error(
                ErrorKind::InvalidArgument,
                format!(
                    "VM '{}' has {} of memory; it cannot be given {} (setmem never goes above \
                     the defined memory; change the definition and restart for more)",
                    self.name,
                    format_size(memory),
                    format_size(bytes)
                ),
            ));
        }
        if bytes == 0 {
            return Err(protocol_error(
                ErrorKind::InvalidArgument,
                "a guest cannot run with no memory; give a size such as 128M",
            ));
        }
        if control.balloon().is_none() {
            return Err(protocol_error(
                ErrorKind::InvalidState,
                format!(
                    "VM '{}' has no memory balloon; set balloon = true in its definition \
                     (`vmux edit {}`) and restart it",
                    self.name, self.name
                ),
            ));
        }
        control
            .set_balloon_target(memory - bytes)
            .map_err(|e| protocol_error(ErrorKind::InvalidArgument, error_chain(e.as_ref())))
    }

    /// `memory_stats`: the balloon and the guest's memory statistics now.
    pub(super) fn memory_stats(&self) -> Result<MemoryStats, ProtocolError> {
        let (control, _) = self.current()?;
        let memory = self.base_spec.memory_bytes;
        let balloon = control.balloon();
        let stats = balloon
            .as_ref()
            .map(|b| b.stats.clone())
            .unwrap_or_default();
        Ok(MemoryStats {
            memory_bytes: memory,
            current_bytes: memory - balloon.as_ref().map_or(0, |b| b.actual_bytes.min(memory)),
            balloon: balloon.as_ref().map(balloon_status),
            free_bytes: stats.free,
            available_bytes: stats.available,
            total_bytes: stats.total,
            disk_caches_bytes: stats.disk_caches,
            swap_in_bytes: stats.swap_in,
            swap_out_bytes: stats.swap_out,
            major_faults: stats.major_faults,
            minor_faults: stats.minor_faults,
            updated_at: stats.updated_at,
            rss_bytes: HostReadings::read(std::iter::empty()).rss_bytes,
        })
    }
}
