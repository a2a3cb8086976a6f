//! grub.cfg evaluation against configurations shaped like the ones Debian, Ubuntu and Fedora
//! generate, and against hostile ones.

use super::eval::{FileArg, Host};
use super::*;

/// A disk with a root filesystem on gpt1 and a /boot on gpt2.
struct Disk;

impl Host for Disk {
    fn find_uuid(&self, uuid: &str) -> Option<String> {
        match uuid {
            "1111-root" => Some("hd0,gpt1".into()),
            "2222-boot" => Some("hd0,gpt2".into()),
            _ => None,
        }
    }
    fn find_label(&self, label: &str) -> Option<String> {
        (label == "BOOT").then(|| "hd0,gpt2".into())
    }
    fn find_file(&self, path: &str) -> Option<String> {
        (path == "/vmlinuz-6.8").then(|| "hd0,gpt2".into())
    }
    fn file_exists(&self, device: &str, path: &str) -> bool {
        device == "hd0,gpt1" && path == "/boot/grub/grubenv"
    }
}

fn entry(src: &str, env: &[(&str, &str)]) -> GrubChoice {
    let vars = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match choose(src, &vars, "hd0,gpt1", "/boot/grub", &Disk).expect("evaluates") {
        GrubOutcome::Entry(choice) => choice,
        GrubOutcome::NoEntry => panic!("no entry"),
    }
}

fn file(device: &str, path: &str) -> FileArg {
    FileArg {
        device: device.into(),
        path: path.into(),
    }
}

const DEBIAN: &str = r#"
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
export menuentry_id_option
function load_video {
  insmod all_video
}
set timeout=5
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-1111-root' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_gpt
	insmod ext2
	set root='hd0,gpt9'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,gpt1 --hint-efi=hd0,gpt1 --hint-baremetal=ahci0,gpt1  1111-root
	else
	  search --no-floppy --fs-uuid --set=root 1111-root
	fi
	echo	'Loading Linux 6.1.0-28-amd64 ...'
	linux	/boot/vmlinuz-6.1.0-28-amd64 root=UUID=1111-root ro  console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-6.1.0-28-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-1111-root' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-28-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-28-amd64-advanced-1111-root' {
		search --no-floppy --fs-uuid --set=root 1111-root
		linux	/boot/vmlinuz-6.1.0-28-amd64 root=UUID=1111-root ro single
		initrd	/boot/initrd.img-6.1.0-28-amd64
	}
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-27-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-27-amd64-advanced-1111-root' {
		search --no-floppy --fs-uuid --set=root 1111-root
		linux	/boot/vmlinuz-6.1.0-27-amd64 root=UUID=1111-root ro
		initrd	/boot/initrd.img-6.1.0-27-amd64
	}
}
"#;

#[test]
fn debian_default_is_the_first_entry_with_its_search_root() {
    let choice = entry(DEBIAN, &[]);
    assert_eq!(choice.title, "Debian GNU/Linux");
    assert_eq!(choice.id.as_deref(), Some("gnulinux-simple-1111-root"));
    let (kernel, args) = choice.commands.linux.expect("linux line");
    assert_eq!(kernel, file("hd0,gpt1", "/boot/vmlinuz-6.1.0-28-amd64"));
    assert_eq!(
        args.join(" "),
        "root=UUID=1111-root ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
    );
    assert_eq!(
        choice.commands.initrds,
        vec![file("hd0,gpt1", "/boot/initrd.img-6.1.0-28-amd64")]
    );
    assert!(choice.notes.is_empty(), "{:?}", choice.notes);
}

#[test]
fn next_entry_from_grubenv_picks_a_submenu_entry_by_id_path() {
    let choice = entry(
        DEBIAN,
        &[(
            "next_entry",
            "gnulinux-advanced-1111-root>gnulinux-6.1.0-27-amd64-advanced-1111-root",
        )],
    );
    assert_eq!(choice.title, "Debian GNU/Linux, with Linux 6.1.0-27-amd64");
    let (kernel, _) = choice.commands.linux.expect("linux line");
    assert_eq!(kernel.path, "/boot/vmlinuz-6.1.0-27-amd64");
}

#[test]
fn numeric_paths_and_titles_reach_into_submenus() {
    let by_index = entry(
        &DEBIAN.replace("set default=\"0\"", "set default=\"1>1\""),
        &[],
    );
    assert_eq!(
        by_index.title,
        "Debian GNU/Linux, with Linux 6.1.0-27-amd64"
    );
    let by_title = entry(
        &DEBIAN.replace(
            "set default=\"0\"",
            "set default='Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-28-amd64'",
        ),
        &[],
    );
    assert!(
        by_title
            .commands
            .linux
            .expect("linux")
            .1
            .contains(&"single".to_string())
    );
}

#[test]
fn an_unset_saved_entry_falls_back_to_the_first_entry_with_a_note() {
    let src = "set default=\"${saved_entry}\"\nmenuentry 'A' {\n linux /a\n}\nmenuentry 'B' {\n linux /b\n}\n";
    let choice = entry(src, &[]);
    assert_eq!(choice.title, "A");
    assert!(
        choice
            .notes
            .iter()
            .any(|n| n.contains("${saved_entry}") && n.contains("first entry")),
        "{:?}",
        choice.notes
    );
}

#[test]
fn a_saved_entry_that_names_nothing_falls_back_with_a_note() {
    let src = "set default=\"${saved_entry}\"\nmenuentry 'A' {\n linux /a\n}\n";
    let choice = entry(src, &[("saved_entry", "gone")]);
    assert_eq!(choice.title, "A");
    assert!(
        choice.notes.iter().any(|n| n.contains("'gone'")),
        "{:?}",
        choice.notes
    );
}

#[test]
fn ubuntu_boot_partition_paths_are_on_the_searched_device() {
    let src = r#"
set default="0"
if [ "$linux_gfx_mode" != "text" ]; then set vt_handoff=vt.handoff=7; else set vt_handoff=; fi
menuentry 'Ubuntu' --class ubuntu {
	recordfail
	search --no-floppy --fs-uuid --set=root 2222-boot
	linux	/vmlinuz-6.8.0-45-generic root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0 $vt_handoff
	initrd	/initrd.img-6.8.0-45-generic
}
"#;
    let choice = entry(src, &[]);
    let (kernel, args) = choice.commands.linux.expect("linux line");
    assert_eq!(kernel, file("hd0,gpt2", "/vmlinuz-6.8.0-45-generic"));
    assert_eq!(args.last().map(String::as_str), Some("vt.handoff=7"));
}

#[test]
fn explicit_devices_and_root_variables_in_paths_are_kept_apart() {
    let src = "menuentry 'x' {\n set root=(hd0,gpt2)\n search.fs_label BOOT bootdev\n linux ($bootdev)/vmlinuz-6.8 quiet\n initrd (hd0,msdos1)/a.img /b.img\n}\n";
    let choice = entry(src, &[]);
    assert_eq!(
        choice.commands.linux.expect("linux").0,
        file("hd0,gpt2", "/vmlinuz-6.8")
    );
    assert_eq!(
        choice.commands.initrds,
        vec![file("hd0,msdos1", "/a.img"), file("hd0,gpt2", "/b.img")]
    );
}

#[test]
fn linux16_and_search_by_file_work_like_linux() {
    let src = "menuentry 'x' {\n search --file --set /vmlinuz-6.8\n linux16 /vmlinuz-6.8\n initrd16 /i\n}\n";
    let choice = entry(src, &[]);
    assert_eq!(
        choice.commands.linux.expect("linux").0,
        file("hd0,gpt2", "/vmlinuz-6.8")
    );
}

#[test]
fn a_chainloader_entry_is_reported_as_not_linux() {
    let choice = entry("menuentry 'Windows' {\n chainloader +1\n}\n", &[]);
    assert!(choice.commands.linux.is_none());
    assert_eq!(
        choice.commands.other.as_deref(),
        Some("it runs `chainloader`")
    );
}

#[test]
fn a_config_without_entries_says_so() {
    let out = choose(
        "set timeout=5\n",
        &BTreeMap::new(),
        "hd0,gpt1",
        "/boot/grub",
        &Disk,
    )
    .expect("evaluates");
    assert_eq!(out, GrubOutcome::NoEntry);
}

#[test]
fn a_failed_search_keeps_the_previous_root_and_notes_it() {
    let src =
        "menuentry 'x' {\n set root='hd0,gpt2'\n search --fs-uuid --set=root 9999\n linux /k\n}\n";
    let vars = BTreeMap::new();
    let GrubOutcome::Entry(choice) =
        choose(src, &vars, "hd0,gpt1", "/boot/grub", &Disk).expect("evaluates")
    else {
        panic!("entry expected");
    };
    assert_eq!(choice.commands.linux.expect("linux").0.device, "hd0,gpt2");
}

#[test]
fn file_tests_ask_the_disk() {
    let src = "if [ -s $prefix/grubenv ]; then set default=1; fi\nmenuentry a {\n linux /a\n}\nmenuentry b {\n linux /b\n}\n";
    assert_eq!(entry(src, &[]).title, "b");
}

#[test]
fn exponential_variable_growth_is_stopped() {
    let mut src = String::from("set a=xxxxxxxxxxxxxxxx\n");
    for _ in 0..40 {
        src.push_str("set a=$a$a\n");
    }
    src.push_str("menuentry x {\n linux /k\n}\n");
    let (_, reason) =
        choose(&src, &BTreeMap::new(), "hd0,gpt1", "/boot/grub", &Disk).expect_err("too long");
    assert!(reason.contains("grows past"), "{reason}");
}

#[test]
fn too_many_entries_are_refused() {
    let src = "menuentry x {\n linux /k\n}\n".repeat(eval::MAX_ITEMS + 1);
    let (_, reason) =
        choose(&src, &BTreeMap::new(), "hd0,gpt1", "/boot/grub", &Disk).expect_err("too many");
    assert!(reason.contains("menu entries"), "{reason}");
}

#[test]
fn syntax_errors_carry_their_line() {
    let (line, _) = choose(
        "set a=1\n\nif [ x ]; then\n",
        &BTreeMap::new(),
        "hd0,gpt1",
        "/boot/grub",
        &Disk,
    )
    .expect_err("bad");
    assert_eq!(line, 3);
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x1234_5678_u64;
    let alphabet = b"{}$\"'\\;\n #abcif then fi menuentry submenu set=[]()>0";
    for _ in 0..300 {
        let mut src = String::new();
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            src.push(alphabet[(seed % alphabet.len() as u64) as usize] as char);
        }
        let _ = choose(&src, &BTreeMap::new(), "hd0,gpt1", "/boot/grub", &Disk);
    }
}
