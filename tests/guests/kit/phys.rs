//! Reading guest-physical memory (boot structures, ACPI tables) through the identity map.
//!
//! Both entry paths run on an identity map of 0..4 GiB (vmux's tables at 0x9000, or the kit's
//! own for PVH), so a physical address below 4 GiB is a valid pointer. Addresses are checked
//! against that limit because they come from tables another program wrote.

/// End (exclusive) of the identity-mapped range.
pub const MAPPED_END: u64 = 1 << 32;

/// `len` bytes at physical `addr`, or `None` when the range is not mapped (or is null).
pub fn bytes(addr: u64, len: usize) -> Option<&'static [u8]> {
    let end = addr.checked_add(len as u64)?;
    if addr == 0 || end > MAPPED_END {
        return None;
    }
    // SAFETY: the range is inside the identity map (checked above), and nothing in the kit
    // writes to boot structures or firmware tables while they are being read.
    Some(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len) })
}

/// Little-endian u8/u16/u32/u64 field readers over a byte slice; out of range reads as 0.
pub fn le(bytes: &[u8], offset: usize, size: usize) -> u64 {
    let mut value = 0u64;
    for i in (0..size).rev() {
        value = (value << 8) | u64::from(bytes.get(offset + i).copied().unwrap_or(0));
    }
    value
}

/// Reads a little-endian `u32` field (0 when out of range).
pub fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    le(bytes, offset, 4) as u32
}

/// Reads a little-endian `u64` field (0 when out of range).
pub fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    le(bytes, offset, 8)
}

/// Reads a byte field (0 when out of range).
pub fn u8_at(bytes: &[u8], offset: usize) -> u8 {
    bytes.get(offset).copied().unwrap_or(0)
}

/// The NUL-terminated string at physical `addr` (at most `max` bytes, NUL excluded).
pub fn c_string(addr: u64, max: usize) -> &'static [u8] {
    let Some(area) = bytes(addr, max).or_else(|| bytes(addr, 0)) else {
        return &[];
    };
    let len = area.iter().position(|&b| b == 0).unwrap_or(area.len());
    &area[..len]
}
