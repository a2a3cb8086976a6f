//! Moving one frame between a descriptor chain and a flat buffer (virtio 1.x §5.1.6).
//!
//! Every frame on the wire between device and driver starts with the 12-byte
//! `struct virtio_net_hdr_v1`; the same header sits in front of every frame read from or
//! written to the TAP (`IFF_VNET_HDR`, header size 12). No offload features are negotiated, so
//! the only valid header is "no checksum, no segmentation": the device writes exactly that in
//! both directions ([`clean_header`]) instead of passing on fields the other side never agreed
//! to (a guest cannot make the host build GSO packets; the host's `DATA_VALID` hint does not
//! reach a guest that did not negotiate `GUEST_CSUM`).
//!
//! A transmit chain is device-readable buffers only; a receive chain device-writable only.
//! A chain of the wrong kind, one that never ends, one that lies outside guest RAM, or one of
//! the wrong size is [`BadChain`]: the frame is dropped and counted, the chain handed back.

use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestMemory};

/// Size of `struct virtio_net_hdr_v1`, bytes (`num_buffers` included: VERSION_1).
pub const VNET_HDR_LEN: usize = 12;
/// An Ethernet header: destination, source, EtherType.
pub const ETH_HLEN: usize = 14;
/// Largest frame (Ethernet header and payload) carried either way, bytes: what a TAP takes.
pub const MAX_FRAME_LEN: usize = 65535;
/// Size of the flat buffers frames pass through: header plus the largest frame.
pub const FRAME_BUFFER_LEN: usize = VNET_HDR_LEN + MAX_FRAME_LEN;
/// Offset of `num_buffers` in the header.
const NUM_BUFFERS_OFFSET: usize = 10;

/// Why a chain could not carry a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadChain {
    /// The chain has no descriptors, or its descriptor table could not be read.
    #[error("descriptor chain is empty or unreadable")]
    Empty,
    /// It never ends: a loop, a `next` index out of range, or more descriptors than the queue.
    #[error("descriptor chain does not terminate")]
    Unterminated,
    /// A transmit chain with a device-writable buffer, or a receive chain with a readable one.
    #[error("descriptor chain has a buffer in the wrong direction")]
    WrongDirection,
    /// A transmit chain shorter than a header and an Ethernet header, or longer than the
    /// largest frame.
    #[error("transmitted frame of {0} bytes (virtio header included) is out of range")]
    BadLength(u64),
    /// A receive chain too small for the frame.
    #[error("receive buffer of {have} bytes cannot hold a {need}-byte frame")]
    TooSmall {
        /// Bytes the chain holds.
        have: u64,
        /// Bytes the frame needs, header included.
        need: usize,
    },
    /// A buffer lies (partly) outside guest RAM.
    #[error("descriptor chain points outside guest memory")]
    OutOfRange,
}

/// Overwrites the first [`VNET_HDR_LEN`] bytes of `frame` with the only header valid without
/// offload features: no flags, no GSO, `num_buffers` 1 (what a device without
/// `MRG_RXBUF` reports; ignored on transmit).
pub fn clean_header(frame: &mut [u8]) {
    if let Some(header) = frame.get_mut(..VNET_HDR_LEN) {
        header.fill(0);
        header[NUM_BUFFERS_OFFSET..].copy_from_slice(&1u16.to_le_bytes());
    }
}

/// The descriptors of a chain, checked to end properly and to point one way.
fn collect(
    descriptors: impl Iterator<Item = Descriptor>,
    writable: bool,
) -> Result<Vec<Descriptor>, BadChain> {
    let collected: Vec<Descriptor> = descriptors.collect();
    let last = collected.last().ok_or(BadChain::Empty)?;
    if last.has_next() {
        // virtio-queue stops yielding when the chain loops, runs past the queue size or
        // names a descriptor it cannot read: the last one it gave still has NEXT.
        return Err(BadChain::Unterminated);
    }
    if collected.iter().any(|d| d.is_write_only() != writable) {
        return Err(BadChain::WrongDirection);
    }
    Ok(collected)
}

/// Copies a transmit chain (header and frame) into `buffer`; returns its length in bytes.
pub fn read_chain<M: GuestMemory>(
    mem: &M,
    descriptors: impl Iterator<Item = Descriptor>,
    buffer: &mut [u8],
) -> Result<usize, BadChain> {
    let descriptors = collect(descriptors, false)?;
    let total: u64 = descriptors.iter().map(|d| u64::from(d.len())).sum();
    let len = usize::try_from(total)
        .ok()
        .filter(|len| (VNET_HDR_LEN + ETH_HLEN..=buffer.len()).contains(len))
        .ok_or(BadChain::BadLength(total))?;
    let mut at = 0;
    for desc in &descriptors {
        let piece = &mut buffer[at..at + desc.len() as usize];
        mem.read_slice(piece, desc.addr())
            .map_err(|_| BadChain::OutOfRange)?;
        at += piece.len();
    }
    Ok(len)
}

/// Copies `frame` (header and frame) into a receive chain; returns the bytes written.
pub fn write_chain<M: GuestMemory>(
    mem: &M,
    descriptors: impl Iterator<Item = Descriptor>,
    frame: &[u8],
) -> Result<u32, BadChain> {
    let descriptors = collect(descriptors, true)?;
    let have: u64 = descriptors.iter().map(|d| u64::from(d.len())).sum();
    if have < frame.len() as u64 {
        return Err(BadChain::TooSmall {
            have,
            need: frame.len(),
        });
    }
    let mut rest = frame;
    for desc in &descriptors {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at((desc.len() as usize).min(rest.len()));
        mem.write_slice(piece, desc.addr())
            .map_err(|_| BadChain::OutOfRange)?;
        rest = after;
    }
    // FRAME_BUFFER_LEN fits a u32 by far.
    Ok(frame.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::GuestRam;
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use vm_memory::GuestAddress;

    const WRITE: u16 = VRING_DESC_F_WRITE as u16;
    const NEXT: u16 = VRING_DESC_F_NEXT as u16;

    fn mem() -> GuestRam {
        crate::engine::memory::test_ram(0, 0x1_0000)
    }

    fn desc(addr: u64, len: u32, flags: u16) -> Descriptor {
        Descriptor::new(addr, len, flags, 0)
    }

    #[test]
    fn a_frame_split_over_descriptors_is_gathered_in_order() {
        let mem = mem();
        mem.write_slice(&[1; 12], GuestAddress(0x1000)).unwrap();
        mem.write_slice(&[2; 20], GuestAddress(0x2000)).unwrap();
        let mut buffer = vec![0; FRAME_BUFFER_LEN];

        let len = read_chain(
            &mem,
            [desc(0x1000, 12, NEXT), desc(0x2000, 20, 0)].into_iter(),
            &mut buffer,
        )
        .unwrap();

        assert_eq!(len, 32);
        assert_eq!(&buffer[..12], &[1; 12]);
        assert_eq!(&buffer[12..32], &[2; 20]);
    }

    #[test]
    fn a_transmit_chain_with_a_writable_buffer_is_refused() {
        let mut buffer = vec![0; FRAME_BUFFER_LEN];

        let err = read_chain(
            &mem(),
            [desc(0x1000, 12, NEXT), desc(0x2000, 60, WRITE)].into_iter(),
            &mut buffer,
        );

        assert_eq!(err, Err(BadChain::WrongDirection));
    }

    #[test]
    fn a_transmit_chain_shorter_than_two_headers_is_refused() {
        let mut buffer = vec![0; FRAME_BUFFER_LEN];

        let err = read_chain(&mem(), [desc(0x1000, 20, 0)].into_iter(), &mut buffer);

        assert_eq!(err, Err(BadChain::BadLength(20)));
    }

    #[test]
    fn a_transmit_chain_longer_than_the_largest_frame_is_refused() {
        let mut buffer = vec![0; FRAME_BUFFER_LEN];
        let huge = [desc(0x1000, u32::MAX, NEXT), desc(0x1000, u32::MAX, 0)];

        let err = read_chain(&mem(), huge.into_iter(), &mut buffer);

        assert!(matches!(err, Err(BadChain::BadLength(_))), "{err:?}");
    }

    #[test]
    fn a_transmit_buffer_outside_guest_memory_is_refused() {
        let mut buffer = vec![0; FRAME_BUFFER_LEN];

        let err = read_chain(&mem(), [desc(0xff00, 0x200, 0)].into_iter(), &mut buffer);

        assert_eq!(err, Err(BadChain::OutOfRange));
    }

    #[test]
    fn an_unterminated_chain_is_refused() {
        let mut buffer = vec![0; FRAME_BUFFER_LEN];

        let err = read_chain(&mem(), [desc(0x1000, 64, NEXT)].into_iter(), &mut buffer);

        assert_eq!(err, Err(BadChain::Unterminated));
    }

    #[test]
    fn a_frame_is_scattered_over_receive_descriptors() {
        let mem = mem();
        let frame: Vec<u8> = (0..40).collect();

        let written = write_chain(
            &mem,
            [desc(0x1000, 16, WRITE | NEXT), desc(0x2000, 100, WRITE)].into_iter(),
            &frame,
        )
        .unwrap();

        assert_eq!(written, 40);
        let mut first = [0u8; 16];
        mem.read_slice(&mut first, GuestAddress(0x1000)).unwrap();
        let mut second = [0u8; 24];
        mem.read_slice(&mut second, GuestAddress(0x2000)).unwrap();
        assert_eq!(&first[..], &frame[..16]);
        assert_eq!(&second[..], &frame[16..]);
    }

    #[test]
    fn a_receive_chain_too_small_for_the_frame_is_refused_untouched() {
        let mem = mem();

        let err = write_chain(&mem, [desc(0x1000, 30, WRITE)].into_iter(), &[7; 40]);

        assert_eq!(err, Err(BadChain::TooSmall { have: 30, need: 40 }));
        let mut untouched = [0u8; 30];
        mem.read_slice(&mut untouched, GuestAddress(0x1000))
            .unwrap();
        assert_eq!(untouched, [0; 30]);
    }

    #[test]
    fn a_receive_chain_with_a_readable_buffer_is_refused() {
        let err = write_chain(&mem(), [desc(0x1000, 2048, 0)].into_iter(), &[0; 60]);

        assert_eq!(err, Err(BadChain::WrongDirection));
    }

    #[test]
    fn a_clean_header_has_no_offloads_and_one_buffer() {
        let mut frame = [0xffu8; 20];

        clean_header(&mut frame);

        assert_eq!(&frame[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(&frame[12..], &[0xff; 8]);
    }
}
