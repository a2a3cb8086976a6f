//! A small virtio 1.x driver core: the modern virtio-pci transport (virtio 1.x §4.1) and one
//! split virtqueue in static memory, the way Linux's virtio_pci_modern drives a device.
//!
//! [`Device::probe`] finds the structures through the vendor capabilities and MSI-X table;
//! [`Device::bring_up`] runs the whole initialisation (reset, ACKNOWLEDGE, DRIVER, features,
//! FEATURES_OK, MSI-X vectors, queue 0, DRIVER_OK); [`Device::bring_up_queues`] does the same
//! for queues `0..n` (at most [`MAX_QUEUES`], each in its own static ring page). Programs then build descriptor chains with
//! [`Queue::set_desc`], hand them over with [`Queue::publish`] and [`Queue::notify`], and wait
//! with [`Queue::wait`]. Interrupts stay off (the kit's rule); completion is polled and the MSI
//! is awaited in the local APIC's IRR ([`await_interrupt`]) and taken.

use crate::kit::apic;
use crate::kit::cpu;
use crate::kit::pci::{CAP_MSIX, CAP_VENDOR, Config};
use crate::kit::time::Deadline;
use core::sync::atomic::{Ordering, compiler_fence, fence};

/// PCI vendor id of virtio devices.
pub const VENDOR_ID: u16 = 0x1af4;
/// PCI device id of a modern virtio-blk device (0x1040 + type 2).
pub const DEVICE_ID_BLK: u16 = 0x1042;
/// PCI device id of a modern virtio-net device (0x1040 + type 1).
pub const DEVICE_ID_NET: u16 = 0x1041;
/// PCI device id of a modern virtio-balloon device (0x1040 + type 5).
pub const DEVICE_ID_BALLOON: u16 = 0x1045;
/// Most queues one program drives ([`Queue::for_index`]).
pub const MAX_QUEUES: usize = 4;
/// Feature: virtio 1.x.
pub const F_VERSION_1: u64 = 1 << 32;
/// Status bits.
pub const STATUS_ACKNOWLEDGE: u8 = 1;
/// The driver knows the device.
pub const STATUS_DRIVER: u8 = 2;
/// The driver is ready.
pub const STATUS_DRIVER_OK: u8 = 4;
/// Features are negotiated.
pub const STATUS_FEATURES_OK: u8 = 8;
/// The device asks for a reset.
pub const STATUS_NEEDS_RESET: u8 = 0x40;
/// Descriptor flag: `next` is valid.
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub const DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device does not need notifications now.
const USED_F_NO_NOTIFY: u16 = 1;
/// Available-ring flag: the driver does not want interrupts for this queue.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Size the program's queue is set to (the device may offer more).
pub const QUEUE_SIZE: u16 = 16;
/// CPU vector of configuration-change interrupts (MSI-X entry 0).
pub const VECTOR_CONFIG: u8 = 0x40;
/// CPU vector of queue 0's interrupts (MSI-X entry 1); queue `n` uses `VECTOR_QUEUE + n`
/// (MSI-X entry `n + 1`).
pub const VECTOR_QUEUE: u8 = 0x41;
/// "No MSI-X vector".
const NO_VECTOR: u16 = 0xffff;

const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

// Common configuration registers (virtio 1.x §4.1.4.3).
const DEVICE_FEATURE_SELECT: u64 = 0x00;
const DEVICE_FEATURE: u64 = 0x04;
const DRIVER_FEATURE_SELECT: u64 = 0x08;
const DRIVER_FEATURE: u64 = 0x0c;
const CONFIG_MSIX_VECTOR: u64 = 0x10;
const DEVICE_STATUS: u64 = 0x14;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_SIZE_REG: u64 = 0x18;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
const QUEUE_ENABLE: u64 = 0x1c;
const QUEUE_NOTIFY_OFF: u64 = 0x1e;
const QUEUE_DESC: u64 = 0x20;
const QUEUE_DRIVER: u64 = 0x28;
const QUEUE_DEVICE: u64 = 0x30;

/// Why a device could not be driven.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A structure's BAR is not a memory BAR inside the identity map.
    BarOutOfReach,
    /// A required capability is missing.
    MissingCapability(&'static str),
    /// Status did not read back 0 after a reset.
    ResetTimeout,
    /// The device does not offer VIRTIO_F_VERSION_1.
    NoVersion1,
    /// FEATURES_OK did not stick.
    FeaturesRefused,
    /// Queue 0 does not exist.
    QueueUnavailable,
    /// The device refused an MSI-X vector mapping.
    VectorRefused,
    /// DRIVER_OK did not stick (the device needs a reset or failed).
    NotLive,
}

impl Error {
    /// A short description for the serial report.
    pub fn text(self) -> &'static str {
        match self {
            Error::BarOutOfReach => "a BAR is outside the identity map",
            Error::MissingCapability(which) => which,
            Error::ResetTimeout => "device did not reset",
            Error::NoVersion1 => "device does not offer VIRTIO_F_VERSION_1",
            Error::FeaturesRefused => "device refused FEATURES_OK",
            Error::QueueUnavailable => "queue 0 is unavailable",
            Error::VectorRefused => "device refused an MSI-X vector",
            Error::NotLive => "device did not accept DRIVER_OK",
        }
    }
}

fn read8(addr: u64) -> u8 {
    // SAFETY: every address passed here is inside a device BAR or the program's own static
    // ring memory, both identity mapped; neither aliases Rust-visible data.
    unsafe { (addr as usize as *const u8).read_volatile() }
}
fn read16(addr: u64) -> u16 {
    // SAFETY: as in read8.
    unsafe { (addr as usize as *const u16).read_volatile() }
}
fn read32(addr: u64) -> u32 {
    // SAFETY: as in read8.
    unsafe { (addr as usize as *const u32).read_volatile() }
}
fn write8(addr: u64, value: u8) {
    // SAFETY: as in read8.
    unsafe { (addr as usize as *mut u8).write_volatile(value) }
}
fn write16(addr: u64, value: u16) {
    // SAFETY: as in read8.
    unsafe { (addr as usize as *mut u16).write_volatile(value) }
}
fn write32(addr: u64, value: u32) {
    // SAFETY: as in read8.
    unsafe { (addr as usize as *mut u32).write_volatile(value) }
}
/// 64-bit registers are written as two dwords, low first, as Linux does.
fn write64(addr: u64, value: u64) {
    write32(addr, value as u32);
    write32(addr + 4, (value >> 32) as u32);
}

/// One virtio PCI function.
pub struct Device {
    /// Slot on bus 0.
    pub slot: u8,
    config: Config,
    common: u64,
    isr: u64,
    device_cfg: u64,
    notify: u64,
    notify_multiplier: u32,
    msix_cap: u16,
    msix_table: u64,
    msix_vectors: u16,
}

/// An address inside the identity map (`None` for BAR-less or high addresses).
fn reachable(base: Option<u64>, offset: u64) -> Option<u64> {
    let addr = base?.checked_add(offset)?;
    (base? != 0 && addr < crate::kit::phys::MAPPED_END).then_some(addr)
}

impl Device {
    /// Enables the function and locates its virtio structures and MSI-X table.
    pub fn probe(config: Config, slot: u8) -> Result<Device, Error> {
        config.enable(slot);
        let (mut common, mut isr, mut device_cfg, mut notify) = (None, None, None, None);
        let mut notify_multiplier = 0;
        let mut msix = None;
        for (cap, id) in config.capabilities(slot) {
            let cap = u16::from(cap);
            if id == CAP_MSIX {
                msix.get_or_insert(cap);
                continue;
            }
            if id != CAP_VENDOR {
                continue;
            }
            let cfg_type = config.read8(slot, cap + 3);
            let bar = config.read8(slot, cap + 4);
            let offset = u64::from(config.read32(slot, cap + 8));
            let addr = reachable(config.bar(slot, bar), offset);
            let slot_for = match cfg_type {
                CFG_COMMON => &mut common,
                CFG_ISR => &mut isr,
                CFG_DEVICE => &mut device_cfg,
                CFG_NOTIFY => {
                    if notify.is_none() {
                        notify_multiplier = config.read32(slot, cap + 16);
                    }
                    &mut notify
                }
                _ => continue,
            };
            if slot_for.is_none() {
                *slot_for = Some(addr.ok_or(Error::BarOutOfReach)?);
            }
        }
        let msix_cap = msix.ok_or(Error::MissingCapability("no MSI-X capability"))?;
        let control = config.read16(slot, msix_cap + 2);
        let table = config.read32(slot, msix_cap + 4);
        let msix_table = reachable(config.bar(slot, (table & 7) as u8), u64::from(table & !7))
            .ok_or(Error::BarOutOfReach)?;
        Ok(Device {
            slot,
            config,
            common: common.ok_or(Error::MissingCapability("no common configuration"))?,
            isr: isr.ok_or(Error::MissingCapability("no ISR capability"))?,
            device_cfg: device_cfg.ok_or(Error::MissingCapability("no device configuration"))?,
            notify: notify.ok_or(Error::MissingCapability("no notify capability"))?,
            notify_multiplier,
            msix_cap,
            msix_table,
            msix_vectors: (control & 0x7ff) + 1,
        })
    }

    /// The device status byte.
    pub fn status(&self) -> u8 {
        read8(self.common + DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) {
        write8(self.common + DEVICE_STATUS, status);
    }

    /// Reads and clears the ISR status (bit 0 queue, bit 1 configuration).
    pub fn isr(&self) -> u8 {
        read8(self.isr)
    }

    /// Resets the device and waits until it reads back status 0.
    pub fn reset(&self) -> Result<(), Error> {
        self.set_status(0);
        let deadline = Deadline::after_us(1_000_000);
        while self.status() != 0 {
            if deadline.passed() {
                return Err(Error::ResetTimeout);
            }
            cpu::pause();
        }
        Ok(())
    }

    /// The features the device offers.
    pub fn device_features(&self) -> u64 {
        write32(self.common + DEVICE_FEATURE_SELECT, 0);
        let low = read32(self.common + DEVICE_FEATURE);
        write32(self.common + DEVICE_FEATURE_SELECT, 1);
        let high = read32(self.common + DEVICE_FEATURE);
        u64::from(low) | (u64::from(high) << 32)
    }

    /// Resets the device and initialises it with queue 0 in `queue`, accepting the offered
    /// features among `wanted` (plus VIRTIO_F_VERSION_1). Returns the offered features.
    pub fn bring_up(&self, queue: &mut Queue, wanted: u64) -> Result<u64, Error> {
        self.bring_up_queues(&mut [queue], wanted)
    }

    /// Like [`bring_up`](Self::bring_up) for queues `0..queues.len()`: `queues[n]` becomes
    /// queue `n`, interrupting on `VECTOR_QUEUE + n`.
    pub fn bring_up_queues(&self, queues: &mut [&mut Queue], wanted: u64) -> Result<u64, Error> {
        self.reset()?;
        self.set_status(STATUS_ACKNOWLEDGE);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let offered = self.device_features();
        if offered & F_VERSION_1 == 0 {
            return Err(Error::NoVersion1);
        }
        let accepted = offered & (wanted | F_VERSION_1);
        write32(self.common + DRIVER_FEATURE_SELECT, 0);
        write32(self.common + DRIVER_FEATURE, accepted as u32);
        write32(self.common + DRIVER_FEATURE_SELECT, 1);
        write32(self.common + DRIVER_FEATURE, (accepted >> 32) as u32);
        let negotiating = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        self.set_status(negotiating);
        if self.status() & STATUS_FEATURES_OK == 0 {
            return Err(Error::FeaturesRefused);
        }
        self.setup_msix(queues.len())?;
        for (index, queue) in queues.iter_mut().enumerate() {
            self.setup_queue(index as u16, queue)?;
        }
        self.set_status(negotiating | STATUS_DRIVER_OK);
        if self.status() != negotiating | STATUS_DRIVER_OK {
            return Err(Error::NotLive);
        }
        Ok(offered)
    }

    /// Points MSI-X entry 0 (configuration changes) and entries `1..=queues` (the queues) at
    /// this CPU and enables MSI-X.
    fn setup_msix(&self, queues: usize) -> Result<(), Error> {
        if usize::from(self.msix_vectors) < queues + 1 || queues > MAX_QUEUES {
            return Err(Error::VectorRefused);
        }
        let address = apic::LAPIC_BASE | (u64::from(apic::lapic_id()) << 12);
        for entry in 0..=queues as u64 {
            let vector = if entry == 0 {
                VECTOR_CONFIG
            } else {
                VECTOR_QUEUE + (entry - 1) as u8
            };
            let at = self.msix_table + 16 * entry;
            write32(at, address as u32);
            write32(at + 4, (address >> 32) as u32);
            write32(at + 8, u32::from(vector));
            write32(at + 12, 0);
        }
        let control = self.config.read16(self.slot, self.msix_cap + 2);
        self.config
            .write16(self.slot, self.msix_cap + 2, (control | 0x8000) & !0x4000);
        write16(self.common + CONFIG_MSIX_VECTOR, 0);
        if read16(self.common + CONFIG_MSIX_VECTOR) == NO_VECTOR {
            return Err(Error::VectorRefused);
        }
        Ok(())
    }

    fn setup_queue(&self, index: u16, queue: &mut Queue) -> Result<(), Error> {
        write16(self.common + QUEUE_SELECT, index);
        let max = read16(self.common + QUEUE_SIZE_REG);
        if max == 0 {
            return Err(Error::QueueUnavailable);
        }
        queue.reset(max.min(QUEUE_SIZE));
        write16(self.common + QUEUE_SIZE_REG, queue.size);
        write16(self.common + QUEUE_MSIX_VECTOR, index + 1);
        if read16(self.common + QUEUE_MSIX_VECTOR) == NO_VECTOR {
            return Err(Error::VectorRefused);
        }
        let (desc, driver, device) = queue.told_rings.unwrap_or((
            queue.desc_table(),
            queue.avail_ring(),
            queue.used_ring(),
        ));
        write64(self.common + QUEUE_DESC, desc);
        write64(self.common + QUEUE_DRIVER, driver);
        write64(self.common + QUEUE_DEVICE, device);
        let notify_off = u64::from(read16(self.common + QUEUE_NOTIFY_OFF));
        queue.notify = self.notify + notify_off * u64::from(self.notify_multiplier);
        queue.index = index;
        write16(self.common + QUEUE_ENABLE, 1);
        Ok(())
    }

    /// Reads a byte from the device configuration space.
    pub fn config_u8(&self, offset: u64) -> u8 {
        read8(self.device_cfg + offset)
    }

    /// Reads a little-endian u16 from the device configuration space.
    pub fn config_u16(&self, offset: u64) -> u16 {
        read16(self.device_cfg + offset)
    }

    /// Reads a little-endian u32 from the device configuration space.
    pub fn config_u32(&self, offset: u64) -> u32 {
        read32(self.device_cfg + offset)
    }

    /// Writes a little-endian u32 to the device configuration space.
    pub fn write_config_u32(&self, offset: u64, value: u32) {
        write32(self.device_cfg + offset, value);
    }

    /// Reads a little-endian u64 from the device configuration space (two dwords; the caller
    /// trusts the value not to change between them, as for a disk's capacity at boot).
    pub fn config_u64(&self, offset: u64) -> u64 {
        u64::from(read32(self.device_cfg + offset))
            | (u64::from(read32(self.device_cfg + offset + 4)) << 32)
    }
}

/// One queue's ring page: descriptor table at +0, available ring at +0x100, used ring at
/// +0x200 (alignment 16 / 2 / 4 as the split ring needs).
#[repr(C, align(4096))]
struct RingPage([u8; 4096]);

/// The program's ring pages, one per queue it drives.
static mut RING_PAGES: [RingPage; MAX_QUEUES] = [const { RingPage([0; 4096]) }; MAX_QUEUES];

/// What waiting for a chain ended with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The device returned descriptor `head` with `len` bytes written.
    Used {
        /// Head descriptor index.
        head: u32,
        /// Bytes the device wrote.
        len: u32,
    },
    /// The device set DEVICE_NEEDS_RESET (and returned nothing more).
    NeedsReset,
    /// Nothing happened within the timeout.
    Timeout,
}

/// Queue 0 of the device, in the program's static ring page.
pub struct Queue {
    /// Which of the ring pages.
    page: usize,
    /// Queue index on the device (what a notify names).
    index: u16,
    size: u16,
    next_avail: u16,
    last_used: u16,
    notify: u64,
    /// Ring addresses to give the device instead of the real ones (hostile drivers).
    told_rings: Option<(u64, u64, u64)>,
}

impl Queue {
    /// A queue over the first static ring page (not yet given to a device).
    pub fn new() -> Queue {
        Queue::for_index(0)
    }

    /// A queue over ring page `page` (`0..MAX_QUEUES`; larger values use the last page).
    pub fn for_index(page: usize) -> Queue {
        Queue {
            page: page.min(MAX_QUEUES - 1),
            index: 0,
            size: QUEUE_SIZE,
            next_avail: 0,
            last_used: 0,
            notify: 0,
            told_rings: None,
        }
    }

    /// Makes the next bring-up tell the device these descriptor table, driver (available) and
    /// device (used) ring addresses instead of the queue's own (a hostile driver's wild DMA
    /// addresses); the program itself still writes its own pages.
    pub fn tell_rings_at(&mut self, desc: u64, driver: u64, device: u64) {
        self.told_rings = Some((desc, driver, device));
    }

    fn base(&self) -> u64 {
        (&raw const RING_PAGES) as u64 + 4096 * self.page as u64
    }

    fn desc_table(&self) -> u64 {
        self.base()
    }

    fn avail_ring(&self) -> u64 {
        self.base() + 0x100
    }

    fn used_ring(&self) -> u64 {
        self.base() + 0x200
    }

    /// Zeroes the rings for a device that starts (again) at index 0.
    fn reset(&mut self, size: u16) {
        for offset in (0..4096).step_by(4) {
            write32(self.base() + offset, 0);
        }
        // Rounded down to a power of two, which `wrap` relies on.
        self.size = 1 << (15 - size.max(1).leading_zeros());
        self.next_avail = 0;
        self.last_used = 0;
    }

    /// `index` modulo the queue size, which is a power of two (the device's maximum is one
    /// and so is [`QUEUE_SIZE`]); a mask rather than `%`, which would link in a panic path.
    fn wrap(&self, index: u16) -> u16 {
        index & self.size.wrapping_sub(1)
    }

    /// Number of descriptors.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Writes descriptor `index` (taken modulo the queue size).
    pub fn set_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.desc_table() + 16 * u64::from(self.wrap(index));
        write32(at, addr as u32);
        write32(at + 4, (addr >> 32) as u32);
        write32(at + 8, len);
        write16(at + 12, flags);
        write16(at + 14, next);
    }

    /// Makes the chain starting at `head` available.
    pub fn publish(&mut self, head: u16) {
        let slot = self.avail_ring() + 4 + 2 * u64::from(self.wrap(self.next_avail));
        write16(slot, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        compiler_fence(Ordering::SeqCst);
        write16(self.avail_ring() + 2, self.next_avail);
        compiler_fence(Ordering::SeqCst);
    }

    /// Writes the available index directly (to claim entries that were never written).
    pub fn set_avail_index(&mut self, index: u16) {
        write16(self.avail_ring() + 2, index);
        compiler_fence(Ordering::SeqCst);
    }

    /// Tells the device to look at the queue.
    pub fn notify(&self) {
        write16(self.notify, self.index);
    }

    /// Notifies the device unless it said it does not need it (`VRING_USED_F_NO_NOTIFY`, set
    /// while it is working through the queue and will look again before it stops), as Linux
    /// does. The fence orders the caller's `publish` before the flag is read: otherwise the
    /// device could stop just as the driver skipped the notify.
    pub fn kick(&self) {
        fence(Ordering::SeqCst);
        if read16(self.used_ring()) & USED_F_NO_NOTIFY == 0 {
            self.notify();
        }
    }

    /// Asks the device not to interrupt for this queue (`VRING_AVAIL_F_NO_INTERRUPT`): for a
    /// queue the program polls, such as a transmit queue it reclaims when it sends.
    pub fn suppress_interrupts(&self) {
        write16(self.avail_ring(), AVAIL_F_NO_INTERRUPT);
        compiler_fence(Ordering::SeqCst);
    }

    /// The next used entry, (head, bytes written), if the device returned one.
    pub fn take_used(&mut self) -> Option<(u32, u32)> {
        compiler_fence(Ordering::SeqCst);
        if self.used_index() == self.last_used {
            return None;
        }
        let entry = self.used_ring() + 4 + 8 * u64::from(self.wrap(self.last_used));
        self.last_used = self.last_used.wrapping_add(1);
        Some((read32(entry), read32(entry + 4)))
    }

    /// The device's used index.
    pub fn used_index(&self) -> u16 {
        read16(self.used_ring() + 2)
    }

    /// Waits up to `timeout_us` for the next used entry or DEVICE_NEEDS_RESET.
    pub fn wait(&mut self, device: &Device, timeout_us: u64) -> Wait {
        let deadline = Deadline::after_us(timeout_us);
        loop {
            if let Some((head, len)) = self.take_used() {
                return Wait::Used { head, len };
            }
            if device.status() & STATUS_NEEDS_RESET != 0 {
                return Wait::NeedsReset;
            }
            if deadline.passed() {
                return Wait::Timeout;
            }
            cpu::pause();
        }
    }

    /// Puts `buffers` (address, length, device-writable) in descriptors 0.. as one chain,
    /// publishes and notifies it, and waits up to `timeout_us`.
    pub fn submit(&mut self, device: &Device, buffers: &[(u64, u32, bool)], timeout_us: u64) -> Wait {
        for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
            let mut flags = if writable { DESC_F_WRITE } else { 0 };
            if i + 1 < buffers.len() {
                flags |= DESC_F_NEXT;
            }
            self.set_desc(i as u16, addr, len, flags, i as u16 + 1);
        }
        self.publish(0);
        self.notify();
        self.wait(device, timeout_us)
    }
}

/// Whether `vector` is pending in this CPU's local APIC (interrupts are off, so an MSI that
/// arrived waits in the IRR).
pub fn interrupt_pending(vector: u8) -> bool {
    let register = apic::LAPIC_BASE + 0x200 + 0x10 * u64::from(vector / 32);
    read32(register) & (1 << (vector % 32)) != 0
}

/// Takes `vector` if it is pending (the kit's handler sends the EOI); says whether it was.
pub fn take_interrupt(vector: u8) -> bool {
    if !interrupt_pending(vector) {
        return false;
    }
    cpu::wait_for_interrupt();
    true
}

/// Takes whatever the device's two vectors left pending (before a request whose own
/// interrupt is to be checked).
pub fn drain_interrupts() {
    take_interrupt(VECTOR_CONFIG);
    take_interrupt(VECTOR_QUEUE);
}

/// Waits up to `timeout_us` for `vector` to become pending and takes it. A device writes the
/// used ring before it interrupts, so a driver that saw a completion may still have to wait
/// a moment for the MSI.
pub fn await_interrupt(vector: u8, timeout_us: u64) -> bool {
    let deadline = Deadline::after_us(timeout_us);
    while !interrupt_pending(vector) {
        if deadline.passed() {
            return false;
        }
        cpu::pause();
    }
    take_interrupt(vector)
}
