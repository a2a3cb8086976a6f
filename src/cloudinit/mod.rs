//! cloud-init NoCloud seeds: the small FAT volume labelled `CIDATA` that distribution cloud
//! images read at first boot to create a user, install SSH keys, set passwords and the host
//! name, and configure the network (what `virt-install --cloud-init` and `cloud-localds` make).
//!
//! # API (for `vmux create --cloud-init ...`, the wizard and VM start)
//!
//! ```no_run
//! use vmux::cloudinit::{CloudInitOptions, SeedContext, build_seed};
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut opts = CloudInitOptions::parse("user=alice,ssh-key=~/.ssh/id_ed25519.pub,root-password=generate")?;
//! opts.seal("web1")?;                     // plain passwords → SHA-512 crypt; store `opts` now
//! let macs = ["52:54:00:12:34:56".parse().map_err(anyhow::Error::msg)?];
//! let ctx = SeedContext { vm_name: "web1", macs: &macs };
//! let info = build_seed(&opts, &ctx, "/var/lib/vmux/web1-seed.img".as_ref())?;
//! for p in &info.generated_passwords {
//!     println!("{} password: {}", p.user, p.password); // shown once, stored nowhere
//! }
//! # Ok(()) }
//! ```
//!
//! - [`CloudInitOptions::parse`] takes virt-install-style `key=value,...` options
//!   ([`options`] lists them) with clear errors; [`default_ssh_keys`] finds `~/.ssh/id_*.pub`
//!   for when no `ssh-key` is given.
//! - [`build_seed`] writes the seed atomically with mode 0600 and returns a [`SeedInfo`]:
//!   the `instance-id` (stable for the same VM and settings, new when any changes: the MACs,
//!   a key, a password, the content of a user-data file), the generated passwords, the files.
//!   [`instance_id`] computes the id without building, to tell whether a seed is current
//!   (rebuild only then: each new id makes cloud-init provision the guest again).
//! - Attach the seed read-only as an extra virtio-blk disk: for a defined VM, vmd calls
//!   [`vm_seed::ensure_seed`] at every start, which keeps the seed in the VM's state directory
//!   current (rebuilt only when its instance-id changes).
//! - Definitions store options after [`CloudInitOptions::sealed_for_storage`]: passwords to
//!   generate are generated then (shown once by the caller) and kept only as hashes, so every
//!   seed built later carries the same ones.
//!
//! Files: [`options`], [`password`], [`files`] (the user-data, meta-data and network-config
//! contents), [`yaml`] (the writer), [`fat`] (the volume), [`seed`], [`vm_seed`], [`error`].

pub mod error;
pub mod fat;
pub mod files;
pub mod options;
pub mod password;
pub mod seed;
pub mod vm_seed;
pub mod yaml;

pub use error::CloudInitError;
pub use files::{GeneratedPassword, SeedContext};
pub use options::{CloudInitOptions, Password, default_ssh_keys};
pub use seed::{SeedInfo, build_seed, instance_id};

#[cfg(test)]
mod tests;
