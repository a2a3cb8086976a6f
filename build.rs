//! Builds the guest-kit programs (tests/guests/*.rs) and the demo guest (assets/demo/demo.rs)
//! into `$OUT_DIR/guests/<name>.elf`, and tells the crate where they are
//! (`VMUX_GUEST_DIR`, read with `env!` by src/assets.rs and the integration tests).
//!
//! Each program is one `#![no_std]` `#![no_main]` crate compiled by the host `rustc` for the
//! host target, with no SSE, no red zone, static and non-PIE, linked at 1 MiB by
//! tests/guests/link.ld (DESIGN.md §6, tests/guests/README.md). The programs are compiled in
//! parallel; a failure fails the build with rustc's output. rustc's warnings about the
//! `-sse`/`soft-float` target features (the host target's ABI assumes SSE, but the guests pass
//! no floats) are expected and dropped; any other warning is passed on as a cargo warning.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;

/// Where the guest sources live, relative to the package root.
const GUEST_DIR: &str = "tests/guests";
/// The demo guest embedded in the vmux binary (src/assets.rs).
const DEMO_SOURCE: &str = "assets/demo/demo.rs";
/// Directory watched for the demo guest.
const DEMO_DIR: &str = "assets/demo";

fn main() {
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("guests");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let linker_script = root.join(GUEST_DIR).join("link.ld");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={GUEST_DIR}");
    println!("cargo:rerun-if-changed={DEMO_DIR}");
    println!("cargo:rustc-env=VMUX_GUEST_DIR={}", out_dir.display());

    if let Err(e) = fs::create_dir_all(&out_dir) {
        fail(&format!("cannot create {}: {e}", out_dir.display()));
    }
    let mut sources = guest_sources(&root.join(GUEST_DIR));
    sources.push(root.join(DEMO_SOURCE));

    let builds: Vec<_> = sources
        .into_iter()
        .map(|source| {
            let name = source
                .file_stem()
                .expect("sources are *.rs files")
                .to_string_lossy()
                .into_owned();
            let mut command = Command::new(&rustc);
            command
                .args([
                    "--edition",
                    "2024",
                    "--crate-type",
                    "bin",
                    "--crate-name",
                    &name,
                ])
                .args(["-O", "-C", "panic=abort", "-C", "relocation-model=static"])
                .args([
                    "-C",
                    "target-feature=-sse,-sse2,-mmx,+soft-float",
                    "-C",
                    "no-redzone=yes",
                ])
                .args([
                    "-C",
                    "codegen-units=1",
                    "-C",
                    "debuginfo=0",
                    "-C",
                    "strip=debuginfo",
                ])
                .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-static"])
                .args([
                    "-C",
                    "link-arg=-no-pie",
                    "-C",
                    "link-arg=-Wl,--build-id=none",
                ])
                .arg("-C")
                .arg(format!("link-arg=-Wl,-T,{}", linker_script.display()))
                // Panic locations name files relative to the package, not this checkout.
                .arg("--remap-path-prefix")
                .arg(format!("{}=vmux", root.display()))
                .arg("-o")
                .arg(out_dir.join(format!("{name}.elf")))
                .arg(&source)
                // Cargo's flags for vmux itself are not meant for the guests.
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("RUSTFLAGS");
            (name, thread::spawn(move || command.output()))
        })
        .collect();

    let mut failed = Vec::new();
    for (name, build) in builds {
        match build.join().expect("the thread only runs rustc") {
            Ok(output) if output.status.success() => report_warnings(&name, &output),
            Ok(output) => failed.push(format!(
                "guest program `{name}` failed to build ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )),
            Err(e) => failed.push(format!(
                "cannot run {} for `{name}`: {e}",
                Path::new(&rustc).display()
            )),
        }
    }
    if !failed.is_empty() {
        fail(&failed.join("\n"));
    }
}

/// Every `*.rs` file directly in `dir` is a program (kit/ holds the shared code).
fn guest_sources(dir: &Path) -> Vec<PathBuf> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => fail(&format!("cannot list {}: {e}", dir.display())),
    };
    let mut sources: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    sources.sort();
    sources
}

/// Passes rustc's warnings on, except the expected target-feature ones.
fn report_warnings(name: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    for diagnostic in stderr.split("\n\n") {
        let expected = diagnostic.contains("target feature")
            || diagnostic.contains("-Ctarget-feature")
            || diagnostic.trim_start().starts_with("warning: ")
                && diagnostic.contains("warnings emitted")
            || diagnostic.trim().is_empty();
        if !expected {
            for line in diagnostic.lines() {
                println!("cargo:warning=guest {name}: {line}");
            }
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1)
}
