//! The seed's FAT volume: FAT12 (or FAT16 for large user-data), labelled `CIDATA` both in
//! the boot sector and as a volume-label entry in the root directory, because blkid (and so
//! cloud-init's `LABEL=cidata` lookup) reads the label from the root directory and keeps the
//! boot sector's only as `LABEL_FATBOOT` (`fatfs` writes both). Built in memory with the
//! `fatfs` crate; the caller writes it out.

use std::io::{self, Cursor, Write};

/// The label NoCloud looks for (cloud-init matches it case-insensitively).
pub const LABEL: &str = "CIDATA";
/// Smallest volume made, in bytes.
const MIN_SIZE: u64 = 1 << 20;
/// Volume sizes are rounded up to this.
const ROUND: u64 = 64 * 1024;

/// A FAT volume holding `files` (name, content) in its root directory. `volume_id` is the
/// serial blkid prints as the UUID.
pub fn build(files: &[(&str, Vec<u8>)], volume_id: u32) -> io::Result<Vec<u8>> {
    let content: u64 = files.iter().map(|(_, c)| c.len() as u64).sum();
    let size = (content + content / 4 + 256 * 1024)
        .max(MIN_SIZE)
        .div_ceil(ROUND)
        * ROUND;
    let mut label = [b' '; 11];
    label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
    let mut disk = Cursor::new(vec![0u8; size as usize]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new()
            .volume_label(label)
            .volume_id(volume_id),
    )?;
    disk.set_position(0);
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
        for (name, bytes) in files {
            let mut file = fs.root_dir().create_file(name)?;
            file.write_all(bytes)?;
            file.flush()?;
        }
        fs.unmount()?;
    }
    Ok(disk.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("meta-data", b"instance-id: \"x\"\n".to_vec()),
            ("user-data", b"#cloud-config\n".to_vec()),
        ]
    }

    #[test]
    fn the_label_is_in_the_root_directory_and_the_boot_sector() {
        let volume = build(&files(), 0x1234_5678).expect("builds");
        let fs =
            fatfs::FileSystem::new(Cursor::new(volume), fatfs::FsOptions::new()).expect("opens");
        assert_eq!(fs.volume_label(), "CIDATA");
        assert_eq!(
            fs.read_volume_label_from_root_dir()
                .expect("reads")
                .as_deref(),
            Some("CIDATA")
        );
        assert_eq!(fs.volume_id(), 0x1234_5678);
    }

    #[test]
    fn files_read_back_with_their_long_names() {
        let volume = build(&files(), 1).expect("builds");
        let fs =
            fatfs::FileSystem::new(Cursor::new(volume), fatfs::FsOptions::new()).expect("opens");
        let mut names: Vec<String> = fs
            .root_dir()
            .iter()
            .filter_map(Result::ok)
            .filter(|e| !e.attributes().contains(fatfs::FileAttributes::VOLUME_ID))
            .map(|e| e.file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["meta-data", "user-data"]);
        let mut content = String::new();
        std::io::Read::read_to_string(
            &mut fs.root_dir().open_file("user-data").expect("open"),
            &mut content,
        )
        .expect("read");
        assert_eq!(content, "#cloud-config\n");
    }

    #[test]
    fn large_user_data_gets_a_large_enough_volume() {
        let big = vec![("user-data", vec![b'x'; 6 << 20])];
        let volume = build(&big, 1).expect("builds");
        assert!(volume.len() as u64 > 6 << 20);
    }
}
