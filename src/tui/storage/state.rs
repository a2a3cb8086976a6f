//! The storage pane's state: the last [`StorageSnapshot`], which pool and volume are
//! selected and which list has the keys. `App` holds it; `pane` changes it.

use crate::client::{PoolView, StorageSnapshot, VolumeView};

/// Which list of the pane the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFocus {
    /// The pools.
    Pools,
    /// The selected pool's volumes.
    Volumes,
}

/// The storage pane's state. Owned by the UI thread.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageState {
    /// The last pools and volumes read.
    pub snapshot: StorageSnapshot,
    /// A snapshot has arrived (until then nothing is known).
    pub loaded: bool,
    /// Why the last read failed.
    pub error: Option<String>,
    /// A read is in flight.
    pub loading: bool,
    /// Read again when the one in flight arrives (something changed meanwhile).
    pub stale: bool,
    /// Tick of the last read asked for.
    pub last_load: Option<u64>,
    /// The selected pool's name.
    pub pool: Option<String>,
    /// The selected volume's name (in the selected pool).
    pub volume: Option<String>,
    /// Which list has the arrow keys.
    pub focus: StorageFocus,
    /// Open the new-volume dialog once the pools are read (asked for before they were).
    pub open_new_volume: bool,
}

impl Default for StorageState {
    fn default() -> StorageState {
        StorageState {
            snapshot: StorageSnapshot::default(),
            loaded: false,
            error: None,
            loading: false,
            stale: false,
            last_load: None,
            pool: None,
            volume: None,
            focus: StorageFocus::Pools,
            open_new_volume: false,
        }
    }
}

impl StorageState {
    /// The selected pool.
    pub fn selected_pool(&self) -> Option<&PoolView> {
        let name = self.pool.as_deref()?;
        self.snapshot.pools.iter().find(|p| p.name() == name)
    }

    /// The selected volume's row.
    pub fn selected_volume(&self) -> Option<&VolumeView> {
        let name = self.volume.as_deref()?;
        self.selected_pool()?
            .volumes
            .iter()
            .find(|v| v.name == name)
    }

    /// Position of the selected pool.
    pub fn pool_row(&self) -> Option<usize> {
        let name = self.pool.as_deref()?;
        self.snapshot.pools.iter().position(|p| p.name() == name)
    }

    /// Position of the selected volume in its pool.
    pub fn volume_row(&self) -> Option<usize> {
        let name = self.volume.as_deref()?;
        self.selected_pool()?
            .volumes
            .iter()
            .position(|v| v.name == name)
    }

    /// Keeps the selection on things that exist: the first pool and volume when the old ones
    /// went away.
    pub fn fix_selection(&mut self) {
        if self.selected_pool().is_none() {
            self.pool = self.snapshot.pools.first().map(|p| p.name().to_string());
            self.volume = None;
        }
        if self.selected_volume().is_none() {
            self.volume = self
                .selected_pool()
                .and_then(|p| p.volumes.first())
                .map(|v| v.name.clone());
        }
    }

    /// Moves the selection of the focused list by `delta` rows (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        match self.focus {
            StorageFocus::Pools => {
                let pools = &self.snapshot.pools;
                if pools.is_empty() {
                    return;
                }
                let row = self.pool_row().unwrap_or(0);
                let target = row.saturating_add_signed(delta).min(pools.len() - 1);
                if target != row || self.pool.is_none() {
                    self.pool = Some(pools[target].name().to_string());
                    self.volume = None;
                    self.fix_selection();
                }
            }
            StorageFocus::Volumes => {
                let Some(pool) = self.selected_pool() else {
                    return;
                };
                if pool.volumes.is_empty() {
                    return;
                }
                let row = self.volume_row().unwrap_or(0);
                let target = row.saturating_add_signed(delta).min(pool.volumes.len() - 1);
                self.volume = Some(pool.volumes[target].name.clone());
            }
        }
    }
}
