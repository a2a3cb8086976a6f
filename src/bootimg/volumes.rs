//! The partitions of one disk under inspection, each probed once, with its ext filesystem
//! opened on first use and kept; and the GRUB device names (`hd0,gpt2`) that map to them. This
//! is what grub.cfg's `search` and `test -e` are answered from.

use super::error::BootImageError;
use super::ext::ExtFs;
use super::fsprobe::{self, FsInfo};
use super::grub::eval::Host;
use super::source::Window;
use super::table::{Partition, PartitionTable, Scheme};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// One probed partition.
#[derive(Debug)]
pub struct Volume {
    /// The partition.
    pub part: Partition,
    /// What it holds.
    pub info: FsInfo,
    /// Its bytes.
    pub window: Window,
}

/// Every partition of the disk, probed.
#[derive(Debug)]
pub struct Volumes {
    /// The table's scheme.
    pub scheme: Scheme,
    /// The partitions, in number order.
    pub list: Vec<Volume>,
    /// Remarks from the table.
    pub notes: Vec<String>,
    opened: RefCell<BTreeMap<u32, Rc<ExtFs>>>,
    /// Partitions whose ext filesystem could not be opened, and why.
    failures: RefCell<Vec<(u32, BootImageError)>>,
}

impl Volumes {
    /// Probes every partition of `table` on `disk`.
    pub fn probe(disk: &Window, table: PartitionTable) -> Result<Volumes, BootImageError> {
        let mut list = Vec::new();
        for part in table.partitions {
            let window = disk.sub(part.start, part.size);
            let info = fsprobe::probe(&window).map_err(|e| {
                if disk.budget().exhausted() {
                    BootImageError::Budget {
                        limit: disk.budget().describe(),
                    }
                } else {
                    BootImageError::read(format!("the start of partition {}", part.number), e)
                }
            })?;
            list.push(Volume { part, info, window });
        }
        Ok(Volumes {
            scheme: table.scheme,
            list,
            notes: table.notes,
            opened: RefCell::new(BTreeMap::new()),
            failures: RefCell::new(Vec::new()),
        })
    }

    /// The volume numbered `number`.
    pub fn get(&self, number: u32) -> Option<&Volume> {
        self.list.iter().find(|v| v.part.number == number)
    }

    /// The ext volumes: Linux extended boot partitions (XBOOTLDR) first, then in number order.
    pub fn ext_volumes(&self) -> Vec<&Volume> {
        let mut ext: Vec<&Volume> = self.list.iter().filter(|v| v.info.kind.is_ext()).collect();
        ext.sort_by_key(|v| (v.part.type_name != "Linux extended boot", v.part.number));
        ext
    }

    /// The opened ext filesystem of partition `number`; `Ok(None)` when it is not ext or
    /// could not be opened (the reason is kept for [`Volumes::take_failure`]). A spent read
    /// budget is an error at once.
    pub fn ext(&self, number: u32) -> Result<Option<Rc<ExtFs>>, BootImageError> {
        if let Some(fs) = self.opened.borrow().get(&number) {
            return Ok(Some(Rc::clone(fs)));
        }
        let Some(volume) = self.get(number).filter(|v| v.info.kind.is_ext()) else {
            return Ok(None);
        };
        if self.failures.borrow().iter().any(|(n, _)| *n == number) {
            return Ok(None);
        }
        match ExtFs::open(volume.window.clone(), number) {
            Ok(fs) => {
                let fs = Rc::new(fs);
                self.opened.borrow_mut().insert(number, Rc::clone(&fs));
                Ok(Some(fs))
            }
            Err(e @ BootImageError::Budget { .. }) => Err(e),
            Err(e) => {
                self.failures.borrow_mut().push((number, e));
                Ok(None)
            }
        }
    }

    /// Why the ext filesystem of partition `number` (or, for `None`, of the first partition
    /// that failed) could not be opened, if it could not. The reason is handed out once.
    pub fn take_failure(&self, number: Option<u32>) -> Option<BootImageError> {
        let mut failures = self.failures.borrow_mut();
        let index = failures
            .iter()
            .position(|(n, _)| number.is_none_or(|want| *n == want))?;
        Some(failures.remove(index).1)
    }

    /// GRUB's name for partition `number`.
    pub fn device(&self, number: u32) -> String {
        self.scheme.grub_device(number)
    }

    /// The partition a GRUB device names, or why it names none of this disk's.
    pub fn partition_of(&self, device: &str) -> Result<u32, String> {
        let device = device.trim();
        let (disk, part) = device.split_once(',').unwrap_or((device, ""));
        let Some(disk_no) = disk.strip_prefix("hd") else {
            return Err(format!(
                "vmux reads plain partitions of the image only, not {disk} (LVM, RAID and encrypted volumes are not supported)"
            ));
        };
        if disk_no != "0" {
            return Err(format!(
                "the image is the only disk vmux reads, and {disk} is another one"
            ));
        }
        if part.is_empty() {
            return match self.scheme {
                Scheme::None => Ok(0),
                _ => Err(
                    "it names the whole disk, which holds a partition table, not a filesystem"
                        .into(),
                ),
            };
        }
        let part = part.split(',').next().unwrap_or(part);
        let digits = part.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        let number: u32 = digits
            .parse()
            .map_err(|_| format!("'{part}' is not a partition name GRUB uses"))?;
        if self.get(number).is_none() {
            return Err(format!("the image has no partition {number}"));
        }
        Ok(number)
    }
}

impl Host for Volumes {
    fn find_uuid(&self, uuid: &str) -> Option<String> {
        self.list
            .iter()
            .find(|v| {
                v.info
                    .uuid
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
            })
            .map(|v| self.device(v.part.number))
    }

    fn find_label(&self, label: &str) -> Option<String> {
        self.list
            .iter()
            .find(|v| v.info.label.as_deref() == Some(label))
            .map(|v| self.device(v.part.number))
    }

    fn find_file(&self, path: &str) -> Option<String> {
        self.ext_volumes().into_iter().find_map(|v| {
            let fs = self.ext(v.part.number).ok()??;
            fs.exists(path).ok()?.then(|| self.device(v.part.number))
        })
    }

    fn file_exists(&self, device: &str, path: &str) -> bool {
        let Ok(number) = self.partition_of(device) else {
            return false;
        };
        matches!(self.ext(number), Ok(Some(fs)) if fs.exists(path).unwrap_or(false))
    }
}
