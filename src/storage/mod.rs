//! Storage: pools (directories of images), volumes (raw and qcow2 image files), and the image
//! layer under them.

pub mod copy;
pub mod create;
pub mod format;
pub mod image;
pub mod qcow2;
mod qcow2_header;
pub mod raw;
pub mod staging;
