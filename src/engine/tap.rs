//! TAP devices: the raw `/dev/net/tun` ioctls behind a safe [`TapDevice`].
//!
//! A `TapDevice` is one non-persistent TAP interface with a virtio-net header on every frame
//! (`IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`) and a non-blocking fd. The kernel deletes the
//! interface when the fd closes, so a crashed vmd leaves no TAP behind. Naming, bridge
//! membership and bookkeeping live in `crate::network`; virtio-net reads and writes frames
//! through [`TapDevice::file`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// The clone device every TAP is created through.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// Size in bytes of the header in front of each frame: `struct virtio_net_hdr_v1` (with
/// `num_buffers`), what a virtio 1.0 device exchanges with the guest.
pub const VNET_HDR_SIZE: i32 = 12;

/// Offload flags for [`TapDevice::set_offloads`] (`TUN_F_*`): the kernel may hand over
/// frames with partial checksums or as large segments only when these are set, so virtio-net
/// sets exactly what the guest negotiated.
pub mod offload {
    /// The guest accepts frames with partial checksums.
    pub const CSUM: u32 = libc::TUN_F_CSUM;
    /// The guest accepts TCPv4 segments larger than the MTU.
    pub const TSO4: u32 = libc::TUN_F_TSO4;
    /// The guest accepts TCPv6 segments larger than the MTU.
    pub const TSO6: u32 = libc::TUN_F_TSO6;
    /// TSO with ECN.
    pub const TSO_ECN: u32 = libc::TUN_F_TSO_ECN;
    /// The guest accepts large UDP datagrams.
    pub const UFO: u32 = libc::TUN_F_UFO;
}

/// Errors creating or configuring a TAP device.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name does not fit an interface name.
    #[error("'{0}' is not a usable TAP name: it must be 1-15 bytes without NUL")]
    InvalidName(String),
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open {TUN_DEVICE}; load the tun module (`modprobe tun`) and run as root")]
    OpenTun(#[source] io::Error),
    /// `TUNSETIFF` failed (name taken by another kind of device, no CAP_NET_ADMIN).
    #[error("cannot create TAP device '{name}'")]
    Create {
        /// The requested name.
        name: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// `TUNSETVNETHDRSZ` failed.
    #[error("cannot set the virtio-net header size of TAP device '{name}'")]
    SetVnetHdrSize {
        /// The TAP.
        name: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// `TUNSETOFFLOAD` failed.
    #[error("cannot set offloads {flags:#x} on TAP device '{name}'")]
    SetOffloads {
        /// The TAP.
        name: String,
        /// The `TUN_F_*` flags asked for.
        flags: u32,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// One TAP interface, alive as long as this value. Frames read from and written to
/// [`TapDevice::file`] start with a [`VNET_HDR_SIZE`]-byte virtio-net header.
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
}

impl TapDevice {
    /// Creates TAP `name` (no offloads yet, header size [`VNET_HDR_SIZE`], non-blocking fd).
    /// Needs CAP_NET_ADMIN. The interface starts down and outside any bridge.
    pub fn create(name: &str) -> Result<TapDevice, TapError> {
        let mut request = ifreq_named(name)?;
        request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR)
            .try_into()
            .expect("the TAP flags fit a c_short");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(TUN_DEVICE)
            .map_err(TapError::OpenTun)?;
        // SAFETY: `file` is an open tun fd; TUNSETIFF reads and writes one `ifreq`, which
        // `request` is, valid and exclusively borrowed for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
        if rc < 0 {
            return Err(TapError::Create {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        let tap = TapDevice {
            file,
            name: name_of(&request),
        };
        tap.set_vnet_hdr_size(VNET_HDR_SIZE)?;
        tap.set_offloads(0)?;
        Ok(tap)
    }

    /// Another handle on the same interface (a duplicated fd): the interface lives until every
    /// handle is closed.
    pub fn try_clone(&self) -> io::Result<TapDevice> {
        Ok(TapDevice {
            file: self.file.try_clone()?,
            name: self.name.clone(),
        })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The non-blocking fd frames are read from and written to.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Tells the kernel which offloads (`offload::*` flags) the guest accepts.
    pub fn set_offloads(&self, flags: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value and touches no memory of ours.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if rc < 0 {
            return Err(TapError::SetOffloads {
                name: self.name.clone(),
                flags,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn set_vnet_hdr_size(&self, size: i32) -> Result<(), TapError> {
        let size: libc::c_int = size;
        // SAFETY: TUNSETVNETHDRSZ reads one c_int through the pointer, which points at `size`
        // for the whole call.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) };
        if rc < 0 {
            return Err(TapError::SetVnetHdrSize {
                name: self.name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

impl AsFd for TapDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for TapDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// An all-zero `ifreq` carrying `name`, or why `name` cannot be an interface name.
fn ifreq_named(name: &str) -> Result<libc::ifreq, TapError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(TapError::InvalidName(name.to_string()));
    }
    // SAFETY: `ifreq` is plain old data (a name array and a union of integers and pointers)
    // for which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(request)
}

/// The NUL-terminated name in an `ifreq`.
fn name_of(request: &libc::ifreq) -> String {
    let bytes: Vec<u8> = request
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_16_bytes_or_with_nul_are_refused() {
        assert!(matches!(
            ifreq_named("vm-0123456789abc"),
            Err(TapError::InvalidName(_))
        ));
        assert!(ifreq_named("").is_err());
        assert!(ifreq_named("a\0b").is_err());
    }

    #[test]
    fn a_15_byte_name_round_trips_through_ifreq() {
        let request = ifreq_named("vm-0123456789ab").expect("fits");
        assert_eq!(name_of(&request), "vm-0123456789ab");
    }
}
