//! The configuration space of one PCI function: the type 0 header, BAR sizing and the
//! capability list, as a guest reads and writes it through 0xCF8/0xCFC or ECAM.
//!
//! The space is 4 KiB of little-endian dwords with a per-bit *writable* mask: a guest write
//! changes only the writable bits, so read-only identity fields, BAR type bits and the sizing
//! behaviour (writing all ones reads back `!(size - 1)`) all fall out of the masks. Devices
//! build their space once with [`PciConfiguration::new`], [`add_bar`](PciConfiguration::add_bar)
//! and [`add_capability`](PciConfiguration::add_capability), then forward guest accesses to
//! [`read`](PciConfiguration::read) and [`write`](PciConfiguration::write) and ask the result
//! ([`bar_regions`](PciConfiguration::bar_regions)) when deciding where their BARs decode.

use super::PciError;

/// Size of a PCI Express function's configuration space, bytes.
pub const CONFIG_SPACE_SIZE: usize = 4096;
/// Size of the legacy (PCI 3.0) part reachable through 0xCF8/0xCFC, bytes.
pub const LEGACY_CONFIG_SPACE_SIZE: usize = 256;
/// Number of BAR registers in a type 0 header.
pub const BAR_COUNT: usize = 6;

/// Command register: respond to memory space accesses (BARs decode).
pub const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
/// Command register: the function may master the bus (DMA, MSI writes).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;

const DWORDS: usize = CONFIG_SPACE_SIZE / 4;
const VENDOR_ID: usize = 0x00;
const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const REVISION: usize = 0x08;
const CACHE_LINE_SIZE: usize = 0x0c;
const HEADER_TYPE: usize = 0x0e;
const BAR0: usize = 0x10;
const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
const CAPABILITIES_POINTER: usize = 0x34;
const INTERRUPT_LINE: usize = 0x3c;
/// First byte after the type 0 header: capabilities go from here to the end of legacy space.
const FIRST_CAPABILITY: usize = 0x40;

/// Status register: the function has a capability list.
const STATUS_CAPABILITY_LIST: u16 = 1 << 4;
/// Command bits a guest may change: I/O and memory decode, bus master, INTx disable.
const COMMAND_WRITABLE: u16 = 0x0001 | COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER | (1 << 10);
/// BAR low bits: memory space, 64-bit type.
const BAR_MEMORY_64: u32 = 0b100;
/// BAR low bits: prefetchable.
const BAR_PREFETCHABLE: u32 = 0b1000;
/// The low four bits of a memory BAR are type bits, never address.
const BAR_MEMORY_ADDRESS_MASK: u32 = !0xf;

/// The identity of a function: what `lspci -n` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciHeader {
    /// Vendor id (0x1af4 for virtio).
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Revision id.
    pub revision: u8,
    /// Class code, subclass and programming interface, e.g. `[0x06, 0x00, 0x00]` for a host
    /// bridge.
    pub class: [u8; 3],
    /// Subsystem vendor id.
    pub subsystem_vendor_id: u16,
    /// Subsystem id.
    pub subsystem_id: u16,
}

/// A memory BAR as the device declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpec {
    /// Size in bytes: a power of two, at least 16.
    pub size: u64,
    /// Initial guest-physical address (as firmware would assign it); aligned to `size`.
    pub address: u64,
    /// A 64-bit BAR (uses this register and the next one).
    pub is_64bit: bool,
    /// Reads have no side effects (the guest may map it write-combined).
    pub prefetchable: bool,
}

/// Where one BAR decodes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRegion {
    /// BAR register index (0..6).
    pub index: u8,
    /// Guest-physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The 4 KiB configuration space of one function. Owned by its device; only touched on vCPU
/// threads through the device's lock.
pub struct PciConfiguration {
    registers: Box<[u32; DWORDS]>,
    writable: Box<[u32; DWORDS]>,
    bars: [Option<BarSpec>; BAR_COUNT],
    /// Offset of the last capability added (its next pointer is patched by the next one).
    last_capability: Option<usize>,
    /// Where the next capability goes.
    next_capability: usize,
}

impl PciConfiguration {
    /// A type 0 header with `header`'s identity, no BARs and no capabilities. The command
    /// register starts at zero: the guest enables decoding after it has looked at the BARs.
    pub fn new(header: &PciHeader) -> PciConfiguration {
        let mut config = PciConfiguration {
            registers: Box::new([0; DWORDS]),
            writable: Box::new([0; DWORDS]),
            bars: [None; BAR_COUNT],
            last_capability: None,
            next_capability: FIRST_CAPABILITY,
        };
        config.set_word(VENDOR_ID, header.vendor_id);
        config.set_word(VENDOR_ID + 2, header.device_id);
        config.set_byte(REVISION, header.revision);
        config.set_byte(REVISION + 1, header.class[2]);
        config.set_byte(REVISION + 2, header.class[1]);
        config.set_byte(REVISION + 3, header.class[0]);
        config.set_byte(HEADER_TYPE, 0);
        config.set_word(SUBSYSTEM_VENDOR_ID, header.subsystem_vendor_id);
        config.set_word(SUBSYSTEM_VENDOR_ID + 2, header.subsystem_id);
        config.set_writable(COMMAND, u32::from(COMMAND_WRITABLE));
        // Cache line size (byte 0x0c) and interrupt line (byte 0x3c) are plain scratch bytes
        // that firmware and OSes write; they mean nothing to a virtual device.
        config.set_writable(CACHE_LINE_SIZE, 0xff);
        config.set_writable(INTERRUPT_LINE, 0xff);
        config
    }

    /// Declares memory BAR `index` (and `index + 1` for a 64-bit BAR).
    pub fn add_bar(&mut self, index: usize, bar: BarSpec) -> Result<(), PciError> {
        let last = if bar.is_64bit { index + 1 } else { index };
        let valid_size = bar.size.is_power_of_two()
            && bar.size >= 16
            && (bar.is_64bit || bar.size <= 1 << 31)
            && bar.address.is_multiple_of(bar.size)
            && (bar.is_64bit || bar.address + bar.size <= 1 << 32);
        let taken = (index..=last).any(|i| i >= BAR_COUNT || self.bar_register_used(i));
        if !valid_size || taken {
            return Err(PciError::InvalidBar {
                index,
                size: bar.size,
            });
        }
        let mut low = (bar.address as u32) & BAR_MEMORY_ADDRESS_MASK;
        if bar.is_64bit {
            low |= BAR_MEMORY_64;
        }
        if bar.prefetchable {
            low |= BAR_PREFETCHABLE;
        }
        let register = BAR0 + 4 * index;
        self.set_dword(register, low);
        self.set_writable(register, !(bar.size as u32 - 1) & BAR_MEMORY_ADDRESS_MASK);
        if bar.is_64bit {
            self.set_dword(register + 4, (bar.address >> 32) as u32);
            self.set_writable(register + 4, !((bar.size - 1) >> 32) as u32);
        }
        self.bars[index] = Some(bar);
        Ok(())
    }

    /// Whether BAR register `index` belongs to a declared BAR (its own or a 64-bit BAR's upper
    /// half).
    fn bar_register_used(&self, index: usize) -> bool {
        self.bars[index].is_some()
            || (index > 0 && self.bars[index - 1].is_some_and(|bar| bar.is_64bit))
    }

    /// Appends a capability: `id`, then the body (`body[0]` lands at offset 2, after the id and
    /// next pointer). `writable` masks which body bits the guest may change (same length as
    /// `body`, or empty for read-only). Returns the capability's offset.
    pub fn add_capability(
        &mut self,
        id: u8,
        body: &[u8],
        writable: &[u8],
    ) -> Result<usize, PciError> {
        let offset = self.next_capability;
        let len = 2 + body.len();
        let end = offset + len;
        if end > LEGACY_CONFIG_SPACE_SIZE || !(writable.is_empty() || writable.len() == body.len())
        {
            return Err(PciError::CapabilitySpace { id, len });
        }
        self.set_byte(offset, id);
        self.set_byte(offset + 1, 0);
        for (i, byte) in body.iter().enumerate() {
            self.set_byte(offset + 2 + i, *byte);
        }
        for (i, mask) in writable.iter().enumerate() {
            self.set_writable_byte(offset + 2 + i, *mask);
        }
        match self.last_capability {
            Some(previous) => self.set_byte(previous + 1, offset as u8),
            None => {
                self.set_byte(CAPABILITIES_POINTER, offset as u8);
                let status = self.word(STATUS) | STATUS_CAPABILITY_LIST;
                self.set_word(STATUS, status);
            }
        }
        self.last_capability = Some(offset);
        // Capabilities start on dword boundaries (PCI 3.0 §6.7).
        self.next_capability = end.next_multiple_of(4);
        Ok(offset)
    }

    /// Reads `data.len()` bytes at `offset`. Bytes past the end of the space read as ones.
    pub fn read(&self, offset: usize, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = offset
                .checked_add(i)
                .filter(|o| *o < CONFIG_SPACE_SIZE)
                .map_or(0xff, |o| self.byte(o));
        }
    }

    /// The guest writes `data` at `offset`: only writable bits change; bytes past the end are
    /// ignored.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        for (i, new) in data.iter().enumerate() {
            let Some(o) = offset.checked_add(i).filter(|o| *o < CONFIG_SPACE_SIZE) else {
                return;
            };
            let mask = self.writable_byte(o);
            let old = self.byte(o);
            self.set_byte(o, (old & !mask) | (new & mask));
        }
    }

    /// Every dword with guest-writable bits, as (offset, value): what a save records.
    pub fn writable_dwords(&self) -> Vec<(u16, u32)> {
        (0..DWORDS)
            .filter(|&i| self.writable[i] != 0)
            .map(|i| ((i * 4) as u16, self.registers[i]))
            .collect()
    }

    /// Puts saved guest-written bits back (see [`writable_dwords`](Self::writable_dwords)):
    /// only writable bits change, so the device's identity, BAR sizes and capability layout
    /// stay as this vmux builds them. Offsets outside the space are ignored.
    pub fn restore_writable_dwords(&mut self, saved: &[(u16, u32)]) {
        for &(offset, value) in saved {
            let index = usize::from(offset) / 4;
            if let (Some(register), Some(&mask)) =
                (self.registers.get_mut(index), self.writable.get(index))
            {
                *register = (*register & !mask) | (value & mask);
            }
        }
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.word(COMMAND)
    }

    /// The current (guest-programmed) address of BAR `index`, if it is declared.
    pub fn bar_address(&self, index: usize) -> Option<u64> {
        let bar = self.bars.get(index).copied().flatten()?;
        let register = BAR0 + 4 * index;
        let low = u64::from(self.dword(register) & BAR_MEMORY_ADDRESS_MASK);
        let high = if bar.is_64bit {
            u64::from(self.dword(register + 4)) << 32
        } else {
            0
        };
        Some(high | low)
    }

    /// The BARs that decode now: memory decoding is on and the BAR is not being sized (an
    /// address that is all ones in its writable bits is the sizing pattern, not a location).
    pub fn bar_regions(&self) -> Vec<BarRegion> {
        if self.command() & COMMAND_MEMORY_SPACE == 0 {
            return Vec::new();
        }
        (0..BAR_COUNT)
            .filter_map(|index| {
                let bar = self.bars[index]?;
                let base = self.bar_address(index)?;
                let all_ones = if bar.is_64bit { u64::MAX } else { 0xffff_ffff };
                let sizing = base == !(bar.size - 1) & all_ones & !0xf;
                base.checked_add(bar.size)?;
                (!sizing && base != 0).then_some(BarRegion {
                    index: index as u8,
                    base,
                    size: bar.size,
                })
            })
            .collect()
    }

    fn dword(&self, offset: usize) -> u32 {
        self.registers[offset / 4]
    }

    fn set_dword(&mut self, offset: usize, value: u32) {
        self.registers[offset / 4] = value;
    }

    fn byte(&self, offset: usize) -> u8 {
        (self.registers[offset / 4] >> (8 * (offset % 4))) as u8
    }

    fn set_byte(&mut self, offset: usize, value: u8) {
        let shift = 8 * (offset % 4);
        let register = &mut self.registers[offset / 4];
        *register = (*register & !(0xff << shift)) | (u32::from(value) << shift);
    }

    /// Reads the 16-bit register at `offset` (which must be even).
    pub fn word(&self, offset: usize) -> u16 {
        u16::from(self.byte(offset)) | (u16::from(self.byte(offset + 1)) << 8)
    }

    /// Sets the 16-bit register at `offset` regardless of the writable mask (device side).
    pub fn set_word(&mut self, offset: usize, value: u16) {
        self.set_byte(offset, value as u8);
        self.set_byte(offset + 1, (value >> 8) as u8);
    }

    fn writable_byte(&self, offset: usize) -> u8 {
        (self.writable[offset / 4] >> (8 * (offset % 4))) as u8
    }

    fn set_writable_byte(&mut self, offset: usize, mask: u8) {
        let shift = 8 * (offset % 4);
        let register = &mut self.writable[offset / 4];
        *register = (*register & !(0xff << shift)) | (u32::from(mask) << shift);
    }

    /// Sets the writable mask of the register starting at `offset`, `mask` taken from its low
    /// bytes up to the next dword boundary.
    fn set_writable(&mut self, offset: usize, mask: u32) {
        for i in 0..(4 - offset % 4) {
            self.set_writable_byte(offset + i, (mask >> (8 * i)) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: PciHeader = PciHeader {
        vendor_id: 0x1af4,
        device_id: 0x1042,
        revision: 1,
        class: [0x01, 0x80, 0x00],
        subsystem_vendor_id: 0x1af4,
        subsystem_id: 0x1100,
    };

    fn read32(config: &PciConfiguration, offset: usize) -> u32 {
        let mut data = [0u8; 4];
        config.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn write32(config: &mut PciConfiguration, offset: usize, value: u32) {
        config.write(offset, &value.to_le_bytes());
    }

    fn with_64bit_bar() -> PciConfiguration {
        let mut config = PciConfiguration::new(&HEADER);
        config
            .add_bar(
                0,
                BarSpec {
                    size: 0x8000,
                    address: 0xc000_8000,
                    is_64bit: true,
                    prefetchable: false,
                },
            )
            .unwrap();
        config
    }

    #[test]
    fn identity_fields_read_back_and_ignore_writes() {
        let mut config = PciConfiguration::new(&HEADER);

        write32(&mut config, 0, 0xdead_beef);
        write32(&mut config, 8, 0xdead_beef);

        assert_eq!(read32(&config, 0), 0x1042_1af4);
        assert_eq!(read32(&config, 8), 0x0180_0001);
        assert_eq!(read32(&config, 0x2c), 0x1100_1af4);
    }

    #[test]
    fn command_register_keeps_only_writable_bits() {
        let mut config = PciConfiguration::new(&HEADER);

        config.write(COMMAND, &[0xff, 0xff]);

        assert_eq!(config.command(), COMMAND_WRITABLE);
    }

    #[test]
    fn bar_sizing_reads_back_the_size_mask_and_type_bits() {
        let mut config = with_64bit_bar();

        write32(&mut config, BAR0, u32::MAX);
        write32(&mut config, BAR0 + 4, u32::MAX);

        assert_eq!(read32(&config, BAR0), 0xffff_8000 | BAR_MEMORY_64);
        assert_eq!(read32(&config, BAR0 + 4), u32::MAX);
    }

    #[test]
    fn bar_being_sized_does_not_decode() {
        let mut config = with_64bit_bar();
        config.write(COMMAND, &[COMMAND_MEMORY_SPACE as u8, 0]);

        write32(&mut config, BAR0, u32::MAX);
        write32(&mut config, BAR0 + 4, u32::MAX);

        assert!(config.bar_regions().is_empty());
    }

    #[test]
    fn reprogrammed_64bit_bar_decodes_at_the_new_address() {
        let mut config = with_64bit_bar();

        write32(&mut config, BAR0, 0xd000_0000);
        write32(&mut config, BAR0 + 4, 0x1);
        config.write(COMMAND, &[COMMAND_MEMORY_SPACE as u8, 0]);

        assert_eq!(
            config.bar_regions(),
            [BarRegion {
                index: 0,
                base: 0x1_d000_0000,
                size: 0x8000
            }]
        );
    }

    #[test]
    fn bars_do_not_decode_with_memory_space_disabled() {
        let config = with_64bit_bar();

        assert!(config.bar_regions().is_empty());
        assert_eq!(config.bar_address(0), Some(0xc000_8000));
    }

    #[test]
    fn unaligned_or_overlapping_bars_are_refused() {
        let mut config = with_64bit_bar();
        let bar = BarSpec {
            size: 0x1000,
            address: 0xc000_0800,
            is_64bit: false,
            prefetchable: false,
        };

        assert!(config.add_bar(2, bar).is_err(), "unaligned");
        let aligned = BarSpec {
            address: 0xc000_0000,
            ..bar
        };
        assert!(config.add_bar(1, aligned).is_err(), "upper half of BAR 0");
        assert!(config.add_bar(6, aligned).is_err(), "no BAR 6");
        assert!(config.add_bar(2, aligned).is_ok());
    }

    #[test]
    fn capabilities_form_a_linked_list_from_0x34() {
        let mut config = PciConfiguration::new(&HEADER);

        let first = config.add_capability(0x11, &[1, 2, 3], &[]).unwrap();
        let second = config.add_capability(0x09, &[4; 14], &[]).unwrap();

        assert_eq!(config.byte(CAPABILITIES_POINTER) as usize, first);
        assert_eq!(
            (config.byte(first), config.byte(first + 1) as usize),
            (0x11, second)
        );
        assert_eq!((config.byte(second), config.byte(second + 1)), (0x09, 0));
        assert_eq!(second % 4, 0);
        assert_ne!(config.word(STATUS) & STATUS_CAPABILITY_LIST, 0);
    }

    #[test]
    fn capability_body_changes_only_where_writable() {
        let mut config = PciConfiguration::new(&HEADER);
        let cap = config
            .add_capability(0x11, &[0x00, 0x00], &[0x00, 0xc0])
            .unwrap();

        config.write(cap + 2, &[0xff, 0xff]);

        assert_eq!(config.word(cap + 2), 0xc000);
    }

    #[test]
    fn capabilities_past_legacy_space_are_refused() {
        let mut config = PciConfiguration::new(&HEADER);

        let err = config.add_capability(0x09, &[0; 250], &[]).unwrap_err();

        assert!(
            matches!(err, PciError::CapabilitySpace { id: 0x09, .. }),
            "{err}"
        );
    }

    #[test]
    fn accesses_past_the_end_read_ones_and_are_ignored() {
        let mut config = PciConfiguration::new(&HEADER);

        config.write(CONFIG_SPACE_SIZE - 2, &[1, 2, 3, 4]);
        let mut data = [0u8; 4];
        config.read(CONFIG_SPACE_SIZE - 2, &mut data);

        assert_eq!(data, [0, 0, 0xff, 0xff]);
    }
}
