//! Over `--connect`, the paths a verb takes name files on the other host (`save FILE`, a
//! kernel, `vol-upload FILE`, `--allow-backing`, …). A relative path or `~` would be resolved
//! against this machine's directories and then looked for there, which is never what was
//! meant, so such a path is refused before anything is sent, naming the fix. `define FILE` and
//! `--cloud-init` files are read here, on the user's side, and are not checked.

use super::storage::StorageCommand;
use super::{CliError, Command};
use std::path::Path;

/// Refuses the first host-side path in `command` that is not absolute; `host` names the
/// other host.
pub fn require_absolute(command: &Command, host: &str) -> Result<(), CliError> {
    for (what, path) in host_paths(command) {
        if !path.is_absolute() {
            return Err(CliError::Invalid(format!(
                "{what} {} is not an absolute path: over --connect it names a file on {host}, so give its absolute path there (a relative path or ~ would mean a directory of this machine)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// `POOL/VOLUME` or an image file: only a file needs an absolute path. A name without a
/// slash, or starting `.` or `~`, is a file; `a/b` may be a volume (the host decides).
fn image_path<'a>(what: &'static str, image: &'a str) -> Option<(&'static str, &'a Path)> {
    let path = Path::new(image);
    let maybe_volume = image.contains('/') && !image.starts_with(['.', '~', '/']);
    (!maybe_volume).then_some((what, path))
}

/// The host-side paths of `command`, each with the option that names it.
fn host_paths(command: &Command) -> Vec<(&'static str, &Path)> {
    let mut paths: Vec<(&'static str, &Path)> = Vec::new();
    match command {
        Command::Create(args) => {
            paths.extend(args.kernel.as_deref().map(|p| ("--kernel", p)));
            paths.extend(args.initrd.as_deref().map(|p| ("--initrd", p)));
            paths.extend(args.image.as_deref().and_then(|i| image_path("--image", i)));
        }
        Command::AttachDisk(args) => {
            paths.extend(image_path("the image", &args.source));
            paths.extend(
                args.allow_backing
                    .iter()
                    .map(|p| ("--allow-backing", p.as_path())),
            );
        }
        Command::Save(args) => paths.push(("the save file", &args.file)),
        Command::Restore(args) => paths.push(("the save file", &args.file)),
        Command::Storage(verb) => storage_paths(verb, &mut paths),
        _ => {}
    }
    paths
}

fn storage_paths<'a>(verb: &'a StorageCommand, paths: &mut Vec<(&'static str, &'a Path)>) {
    match verb {
        StorageCommand::PoolDefineAs { target, .. } => paths.push(("--target", target)),
        StorageCommand::VolUpload { file, .. } => paths.push(("the image file", file)),
        StorageCommand::VolImport { file, .. } => paths.push(("the image file", file)),
        StorageCommand::VolDownload { file, .. } => paths.push(("the file to write", file)),
        _ => {}
    }
    paths.extend(
        verb.allowed_backing_paths()
            .iter()
            .map(|p| ("--allow-backing", p.as_path())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(line: &[&str]) -> Result<(), CliError> {
        let mut argv = vec!["vmux"];
        argv.extend_from_slice(line);
        let args = super::super::Args::try_parse_from(argv).expect("parses");
        require_absolute(&args.command.expect("a verb"), "host2")
    }

    #[test]
    fn relative_host_side_paths_are_refused_naming_the_host() {
        for line in [
            &["save", "web", "web.save"][..],
            &["restore", "./web.save"],
            &["create", "web", "--kernel", "vmlinuz"],
            &["create", "web", "--image", "~/debian.qcow2"],
            &["create", "web", "--image", "debian.qcow2"],
            &["attach-disk", "web", "data.raw"],
            &["vol-upload", "default", "a.qcow2", "a.qcow2"],
            &["pool-define-as", "fast", "--target", "pools/fast"],
        ] {
            let error = check(line).expect_err(&line.join(" ")).to_string();
            assert!(error.contains("names a file on host2"), "{error}");
        }
    }

    #[test]
    fn absolute_paths_volumes_and_local_files_pass() {
        for line in [
            &["save", "web", "/srv/web.save"][..],
            &["create", "web", "--image", "default/debian.qcow2"],
            &["create", "web", "--image", "/srv/debian.qcow2"],
            &["attach-disk", "web", "default/data.qcow2"],
            &["define", "web.toml"],
            &["list"],
        ] {
            check(line).unwrap_or_else(|e| panic!("{}: {e}", line.join(" ")));
        }
    }
}
