//! The VM list's feature: what its keys do to the selected VMs beyond the lifecycle verbs
//! (`commands` maps the keys): hot-adding and removing vCPUs and disks with the dialogs and
//! the watch for the guest's answer (`hotplug`), save, restore and the balloon (`memory`),
//! and the list's selection and the console panes it opens (`selection`). Like the other
//! feature folders, the files here change `App` and queue effects; none calls another
//! feature's handlers.

pub mod hotplug;
pub(crate) mod memory;
pub(crate) mod selection;
