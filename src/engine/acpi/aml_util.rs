//! Small helpers around the `acpi_tables` crate: serialising any table or AML object to bytes,
//! and carrying AML that is already encoded.
//!
//! The crate's AML objects borrow their children (`&dyn Aml`), so a device built inside one
//! function cannot be returned and nested by another. Each part of the DSDT is therefore
//! encoded where it is built and handed up as an [`Encoded`] blob.

use acpi_tables::{Aml, AmlSink};

/// AML (or table) bytes that are already encoded; emitted verbatim.
pub(super) struct Encoded(Vec<u8>);

impl Aml for Encoded {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

/// Serialises a table or AML object.
pub(super) fn encode(aml: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    aml.to_aml_bytes(&mut bytes);
    bytes
}

/// Encodes an AML object into an [`Encoded`] blob that can be nested in another object.
pub(super) fn encoded(aml: &dyn Aml) -> Encoded {
    Encoded(encode(aml))
}
