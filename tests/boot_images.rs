//! Booting disk images from their own /boot: the images `scripts/make-test-images.sh` builds
//! (Debian, Ubuntu, Fedora and MBR layouts as raw and qcow2, plus broken ones) give the kernel,
//! initrd and command line their boot loader would, or an error naming what was found and what
//! would work; damaged and truncated copies never panic or hang.
//!
//! Needs e2fsprogs, gdisk, fdisk, dosfstools, mtools and qemu-utils (scripts/test.sh installs
//! them). Without them the tests skip, saying why, or fail under CI (tests/common/prereq.rs).

mod common;

use common::prereq::{Missing, settle};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use vmux::bootimg::{self, BootImageError, BootPlan, EntryKind, RawFile, ReadAt, StorageDisk};
use vmux::storage::format::{BackingTrust, Detect};

const ROOT_UUID: &str = "1b4e28ba-2fa1-4d2b-a3e6-0c4f7e2b9a11";
const BOOT_UUID: &str = "2c5f39cb-3eb2-4e3c-b4f7-1d5a8f3cab22";
const FEDROOT_UUID: &str = "3d6a4adc-4fc3-4f4d-85a8-2e6b9a4dbc33";
const MBR_UUID: &str = "4e7b5bed-50d4-4a5e-96b9-3f7cab5ecd44";

/// The image directory, built once per test run; `None` (the skip recorded) when it cannot be
/// built outside CI; under CI the test fails.
fn images() -> Option<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target/test-images");
        let run = Command::new("bash")
            .arg(root.join("scripts/make-test-images.sh"))
            .arg(&out)
            .output()
            .map_err(|e| format!("cannot run make-test-images.sh: {e}"))?;
        if !run.status.success() {
            return Err(String::from_utf8_lossy(&run.stderr).trim().to_string());
        }
        Ok(out)
    });
    match result {
        Ok(dir) => Some(dir),
        Err(reason) => {
            settle(vec![Missing::new(
                format!("the test images cannot be built: {reason}"),
                "apt-get install e2fsprogs gdisk fdisk dosfstools mtools qemu-utils",
            )]);
            None
        }
    }
}

fn raw(path: &Path) -> Arc<dyn ReadAt> {
    Arc::new(RawFile::new(std::fs::File::open(path).expect("open image")).expect("size"))
}

fn storage(path: &Path) -> Arc<dyn ReadAt> {
    // Backing files are followed only where trusted, as in a pool: here the image's own
    // directory and the built test images.
    let mut dirs = vec![path.parent().expect("in a directory").to_path_buf()];
    dirs.extend(images().map(Path::to_path_buf));
    let trust = BackingTrust::new(dirs, []);
    Arc::new(
        StorageDisk::open(path, Detect::ByName, &trust).expect("open through the storage layer"),
    )
}

fn plan_of(name: &str) -> Option<BootPlan> {
    let dir = images()?;
    Some(bootimg::inspect(raw(&dir.join(name))).expect("inspects"))
}

fn error_of(name: &str) -> Option<BootImageError> {
    let dir = images()?;
    Some(bootimg::inspect(raw(&dir.join(name))).expect_err("must fail"))
}

#[test]
fn debian_boots_grubs_default_entry_from_the_root_filesystem() {
    let Some(plan) = plan_of("debian.raw") else {
        return;
    };
    assert_eq!(plan.kind, EntryKind::Grub);
    assert_eq!(plan.title, "Debian GNU/Linux");
    assert_eq!(plan.entry_id, Some(format!("gnulinux-simple-{ROOT_UUID}")));
    assert_eq!(plan.kernel.partition, 1);
    assert_eq!(plan.kernel.path, "/boot/vmlinuz-6.1.0-28-amd64");
    assert_eq!(plan.initrds.len(), 1);
    assert_eq!(plan.initrds[0].path, "/boot/initrd.img-6.1.0-28-amd64");
    assert_eq!(
        plan.cmdline,
        format!(
            "root=UUID={ROOT_UUID} ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
        )
    );
    assert_eq!(
        plan.describe(),
        "/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')"
    );
}

#[test]
fn debian_extraction_returns_the_files_grub_would_load() {
    let Some(dir) = images() else { return };
    let disk = raw(&dir.join("debian.raw"));
    let plan = bootimg::inspect(Arc::clone(&disk)).expect("inspects");
    let files = bootimg::extract(disk, &plan).expect("extracts");
    assert_eq!(files.kernel.len(), 8192);
    assert_eq!(&files.kernel[0x202..0x206], b"HdrS");
    assert!(files.kernel[1024..].starts_with(b"vmux test kernel 6.1.0-28-amd64"));
    assert_eq!(
        files.initrd.as_deref(),
        Some(&b"vmux test initrd 6.1.0-28-amd64\n"[..])
    );
}

#[test]
fn qcow2_images_give_the_same_plans_and_bytes_as_raw() {
    let Some(dir) = images() else { return };
    for name in ["debian", "ubuntu", "fedora", "mbr", "links"] {
        let raw_disk = raw(&dir.join(format!("{name}.raw")));
        let qcow2_disk = storage(&dir.join(format!("{name}.qcow2")));
        let from_raw = bootimg::inspect(Arc::clone(&raw_disk)).expect("raw inspects");
        let from_qcow2 = bootimg::inspect(Arc::clone(&qcow2_disk)).expect("qcow2 inspects");
        assert_eq!(from_raw, from_qcow2, "{name}");
        assert_eq!(
            bootimg::extract(raw_disk, &from_raw).expect("raw extracts"),
            bootimg::extract(qcow2_disk, &from_qcow2).expect("qcow2 extracts"),
            "{name}"
        );
    }
}

#[test]
fn a_qcow2_overlay_is_read_through_its_backing_chain() {
    let Some(dir) = images() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let overlay = tmp.path().join("web1.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(dir.join("debian.qcow2"))
        .arg(&overlay)
        .status()
        .expect("qemu-img runs");
    assert!(status.success());
    let plan = bootimg::inspect(storage(&overlay)).expect("inspects the overlay");
    assert_eq!(plan.kernel.path, "/boot/vmlinuz-6.1.0-28-amd64");
}

#[test]
fn ubuntu_boots_from_its_separate_boot_partition() {
    let Some(plan) = plan_of("ubuntu.raw") else {
        return;
    };
    assert_eq!(plan.kind, EntryKind::Grub);
    assert_eq!(plan.kernel.partition, 16);
    assert_eq!(plan.kernel.path, "/vmlinuz-6.8.0-45-generic");
    assert_eq!(plan.initrds[0].path, "/initrd.img-6.8.0-45-generic");
    assert_eq!(
        plan.cmdline,
        "root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0 vt.handoff=7"
    );
    assert_eq!(plan.volumes[0].uuid, BOOT_UUID);
}

#[test]
fn fedora_boots_the_newest_bls_entry_of_its_boot_partition() {
    let Some(plan) = plan_of("fedora.raw") else {
        return;
    };
    assert_eq!(plan.kind, EntryKind::Bls);
    assert_eq!(
        plan.title,
        "Fedora Linux (6.11.4-301.fc41.x86_64) 41 (Cloud Edition)"
    );
    assert_eq!(plan.kernel.partition, 2);
    assert_eq!(plan.kernel.path, "/vmlinuz-6.11.4-301.fc41.x86_64");
    assert_eq!(
        plan.initrds[0].path,
        "/initramfs-6.11.4-301.fc41.x86_64.img"
    );
    assert_eq!(
        plan.cmdline,
        format!(
            "root=UUID={FEDROOT_UUID} ro rootflags=subvol=root no_timer_check console=tty1 console=ttyS0,115200n8"
        )
    );
    assert_eq!(
        plan.entry_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef-6.11.4-301.fc41.x86_64")
    );
}

#[test]
fn an_mbr_disk_boots_its_grub_entry_and_gets_a_serial_console() {
    let Some(plan) = plan_of("mbr.raw") else {
        return;
    };
    assert_eq!(plan.kind, EntryKind::Grub);
    assert_eq!(plan.kernel.partition, 1);
    assert_eq!(
        plan.cmdline,
        format!("root=UUID={MBR_UUID} ro quiet console=ttyS0")
    );
}

#[test]
fn without_a_boot_loader_the_vmlinuz_links_are_followed() {
    let Some(plan) = plan_of("links.raw") else {
        return;
    };
    assert_eq!(plan.kind, EntryKind::Links);
    assert_eq!(plan.kernel.path, "/vmlinuz");
    assert_eq!(plan.kernel.resolved, "/boot/vmlinuz-6.1.0-28-amd64");
    assert_eq!(plan.initrds[0].resolved, "/boot/initrd.img-6.1.0-28-amd64");
    assert_eq!(
        plan.cmdline,
        format!("root=UUID={ROOT_UUID} ro console=ttyS0")
    );
}

#[test]
fn an_image_without_a_kernel_says_where_it_looked() {
    let Some(err) = error_of("nokernel.raw") else {
        return;
    };
    let text = err.to_string();
    assert!(matches!(err, BootImageError::NoKernel { .. }), "{text}");
    assert!(
        text.contains("partition 1 (ext4)") && text.contains("--kernel/--initrd"),
        "{text}"
    );
}

#[test]
fn an_xfs_boot_partition_is_named_with_the_way_out() {
    let Some(err) = error_of("xfsboot.raw") else {
        return;
    };
    assert_eq!(
        err.to_string(),
        "the /boot filesystem (partition 2) is XFS, which vmux cannot read; boot this image with --kernel/--initrd extracted by hand, or convert /boot to ext4"
    );
}

#[test]
fn a_truncated_partition_table_is_reported_as_damaged() {
    let Some(err) = error_of("truncated.raw") else {
        return;
    };
    let text = err.to_string();
    assert!(matches!(err, BootImageError::GptDamaged { .. }), "{text}");
    assert!(text.contains("truncated (it is 10240 bytes)"), "{text}");
}

#[test]
fn a_grub_entry_naming_a_missing_kernel_is_refused() {
    let Some(err) = error_of("missing.raw") else {
        return;
    };
    let text = err.to_string();
    assert!(
        text.starts_with("grub entry 'Debian GNU/Linux' loads /boot/vmlinuz-9.9.9-missing from partition 1, which does not exist there"),
        "{text}"
    );
}

#[test]
fn a_symlink_loop_is_refused_not_followed_forever() {
    let Some(err) = error_of("loop.raw") else {
        return;
    };
    let text = err.to_string();
    assert!(matches!(err, BootImageError::SymlinkLoop { .. }), "{text}");
    assert!(text.contains("/vmlinuz on partition 1"), "{text}");
}

#[test]
fn a_compressed_kernel_is_refused_with_the_fix() {
    let Some(err) = error_of("gzkernel.raw") else {
        return;
    };
    let text = err.to_string();
    assert!(
        text.contains("/boot/vmlinuz-6.1.0-28-amd64 is gzip-compressed"),
        "{text}"
    );
    assert!(text.contains("decompress it"), "{text}");
}

/// A disk that reads as `base` with some bytes replaced and its end cut at `len`.
struct Damaged {
    base: Arc<Vec<u8>>,
    patches: Vec<(u64, u8)>,
    len: u64,
}

impl ReadAt for Damaged {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end")
            })?;
        buf.copy_from_slice(&self.base[offset as usize..end as usize]);
        for (at, byte) in &self.patches {
            if (offset..end).contains(at) {
                buf[(at - offset) as usize] = *byte;
            }
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len
    }
}

/// Inspects (and, when that works, extracts from) a damaged disk; it may fail, but must
/// return, quickly.
fn survive(disk: Damaged) {
    let disk: Arc<dyn ReadAt> = Arc::new(disk);
    let start = Instant::now();
    if let Ok(plan) = bootimg::inspect(Arc::clone(&disk)) {
        let _ = bootimg::extract(disk, &plan);
    }
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "one inspection took {:?}",
        start.elapsed()
    );
}

#[test]
fn truncation_at_every_metadata_boundary_never_panics() {
    let Some(dir) = images() else { return };
    let base = Arc::new(std::fs::read(dir.join("debian.raw")).expect("read"));
    let root = 20480 * 512u64;
    let mut cuts: Vec<u64> = (0..24).map(|i| i * 512).collect();
    cuts.extend((0..64).map(|i| root + i * 4096));
    cuts.extend([root + (1 << 20), root + (8 << 20), base.len() as u64 - 512]);
    for len in cuts {
        survive(Damaged {
            base: Arc::clone(&base),
            patches: Vec::new(),
            len,
        });
    }
}

#[test]
fn random_damage_to_filesystem_metadata_never_panics_or_hangs() {
    let Some(dir) = images() else { return };
    let base = Arc::new(std::fs::read(dir.join("debian.raw")).expect("read"));
    let root = 20480 * 512u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..150 {
        // Damage the superblock, group descriptors, bitmaps and inode tables: the first
        // 2 MiB of the root filesystem, and the GPT.
        let patches = (0..(next() % 24 + 1))
            .map(|_| {
                let at = if next() % 8 == 0 {
                    next() % (34 * 512)
                } else {
                    root + next() % (2 << 20)
                };
                (at, next() as u8)
            })
            .collect();
        survive(Damaged {
            base: Arc::clone(&base),
            patches,
            len: base.len() as u64,
        });
    }
}

/// `VMUX_BOOT_IMAGE=PATH` (raw, or qcow2 by name): inspects and extracts a real image, e.g. a
/// downloaded cloud image or one built with `make-test-images.sh --kernel ... --initrd ...`,
/// and prints the plan. Run on demand only: without an image there is nothing to check.
#[test]
#[ignore = "on demand: VMUX_BOOT_IMAGE=PATH cargo test --test boot_images -- --ignored an_image_named"]
fn an_image_named_by_vmux_boot_image_boots_its_default_entry() {
    let path = std::env::var_os("VMUX_BOOT_IMAGE")
        .expect("set VMUX_BOOT_IMAGE=PATH to the image to inspect");
    let disk = storage(Path::new(&path));
    let plan = bootimg::inspect(Arc::clone(&disk)).expect("inspects");
    eprintln!("{}", serde_json::to_string_pretty(&plan).expect("json"));
    let files = bootimg::extract(disk, &plan).expect("extracts");
    assert_eq!(files.kernel.len() as u64, plan.kernel.size);
    let initrd_total: u64 = plan.initrds.iter().map(|f| f.size).sum();
    assert!(files.initrd.as_ref().map_or(0, |i| i.len() as u64) >= initrd_total);
}
