//! The command line vmux boots an image's kernel with: the entry's own, plus `console=ttyS0`
//! when it names no console, because vmux's console is the first serial port. `root=UUID=...`
//! and friends stay as they are: the guest's initramfs resolves them.

/// The console vmux adds.
pub const SERIAL_CONSOLE: &str = "console=ttyS0";

/// `args` joined with single spaces, with [`SERIAL_CONSOLE`] appended when no `console=` is
/// among them.
pub fn with_console<S: AsRef<str>>(args: &[S]) -> String {
    let mut words: Vec<&str> = args
        .iter()
        .flat_map(|a| a.as_ref().split_ascii_whitespace())
        .collect();
    if !words.iter().any(|w| w.starts_with("console=")) {
        words.push(SERIAL_CONSOLE);
    }
    words.join(" ")
}

/// The whole command line vmux boots `plan`'s kernel with: `BOOT_IMAGE=<kernel>` first (as
/// GRUB gives it), the entry's words (with the serial console), then the user's `extra` words.
pub fn for_plan(plan: &super::BootPlan, extra: &str) -> String {
    let boot_image = format!("BOOT_IMAGE={}", plan.kernel.path);
    with_console(&[boot_image.as_str(), plan.cmdline.as_str(), extra])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_is_added_only_when_missing() {
        assert_eq!(
            with_console(&["root=UUID=1", "ro", "quiet"]),
            "root=UUID=1 ro quiet console=ttyS0"
        );
        assert_eq!(
            with_console(&["ro console=tty0  console=ttyS0,115200"]),
            "ro console=tty0 console=ttyS0,115200"
        );
        assert_eq!(with_console::<&str>(&[]), "console=ttyS0");
    }
}
