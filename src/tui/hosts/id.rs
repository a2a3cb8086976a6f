//! [`HostId`]: which host a VM, an effect or a reply belongs to.

/// A host the TUI shows: the local one (no SSH) or a remote one by its name in the settings
/// file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum HostId {
    /// This machine.
    #[default]
    Local,
    /// A `[[hosts]]` entry, by name.
    Remote(String),
}

impl HostId {
    /// The name the HOST column and messages show (`local` for this machine).
    pub fn label(&self) -> &str {
        match self {
            HostId::Local => "local",
            HostId::Remote(name) => name,
        }
    }

    /// Whether this is a remote host.
    pub fn is_remote(&self) -> bool {
        matches!(self, HostId::Remote(_))
    }
}

impl std::fmt::Display for HostId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}
