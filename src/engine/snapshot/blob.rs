//! Opaque byte blobs in the state section: KVM's structures (`kvm_regs`, `kvm_lapic_state`,
//! `kvm_xsave`, ...) kept as the exact bytes KVM hands out, written as lower-case hex strings so
//! the JSON state stays compact and readable.
//!
//! A blob is converted back only into a structure of exactly its size: a save written by a
//! kernel whose structure had another size is refused with both sizes named, never padded or
//! truncated.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Bytes of a KVM structure (or any other opaque state), hex in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

/// A blob whose size does not match the structure it should become.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the saved {what} holds {found} bytes where this vmux expects {expected}")]
pub struct BlobSizeError {
    /// Which structure.
    pub what: &'static str,
    /// Bytes in the save.
    pub found: usize,
    /// Bytes of the structure here.
    pub expected: usize,
}

impl Blob {
    /// The bytes of `value`.
    pub fn of<T: IntoBytes + Immutable>(value: &T) -> Blob {
        Blob(value.as_bytes().to_vec())
    }

    /// The structure these bytes encode, if the sizes agree.
    pub fn to<T: FromBytes>(&self, what: &'static str) -> Result<T, BlobSizeError> {
        T::read_from_bytes(&self.0).map_err(|_| BlobSizeError {
            what,
            found: self.0.len(),
            expected: std::mem::size_of::<T>(),
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

/// The bytes of a hex string (either case), or `None` when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        let text = String::deserialize(deserializer)?;
        from_hex(&text)
            .map(Blob)
            .ok_or_else(|| serde::de::Error::custom("expected a string of hex digit pairs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_regs;

    #[test]
    fn a_kvm_structure_survives_the_round_trip() {
        let regs = kvm_regs {
            rip: 0x10_0000,
            rflags: 0x246,
            rax: u64::MAX,
            ..Default::default()
        };
        let json = serde_json::to_string(&Blob::of(&regs)).expect("serialize");
        let back: Blob = serde_json::from_str(&json).expect("parse");
        let regs_back: kvm_regs = back.to("registers").expect("same size");
        assert_eq!(
            (regs_back.rip, regs_back.rflags, regs_back.rax),
            (0x10_0000, 0x246, u64::MAX)
        );
    }

    #[test]
    fn a_blob_of_another_size_is_refused_naming_both_sizes() {
        let err = Blob(vec![0; 7])
            .to::<kvm_regs>("registers")
            .expect_err("wrong size");
        assert_eq!(
            err.to_string(),
            "the saved registers holds 7 bytes where this vmux expects 144"
        );
    }

    #[test]
    fn text_that_is_not_hex_is_refused() {
        assert!(serde_json::from_str::<Blob>("\"0g\"").is_err());
        assert!(serde_json::from_str::<Blob>("\"abc\"").is_err());
        assert_eq!(from_hex("00FFa1"), Some(vec![0, 0xff, 0xa1]));
    }
}
