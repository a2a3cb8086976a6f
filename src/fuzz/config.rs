//! Fuzz entry points for text a user or a file supplies: VM, pool and network definitions
//! (TOML), and `--cloud-init` options with the seed (YAML files on a FAT volume) they become.

use std::path::Path;

use crate::cloudinit::fat;
use crate::cloudinit::files::SeedInputs;
use crate::cloudinit::yaml::{Yaml, render};
use crate::cloudinit::{CloudInitOptions, SeedContext};
use crate::config::{MacAddr, NetworkConfig, PoolConfig, VmConfig, parse_named};

/// Byte 0 picks the kind (VM, pool, network); the rest is the definition's text. A definition
/// that loads must save (as the stores save it) and load back equal.
pub fn definitions(data: &[u8]) {
    let Some((&kind, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    match kind % 3 {
        0 => round_trip::<VmConfig>(&text, VmConfig::validate, |c| &c.name),
        1 => round_trip::<PoolConfig>(&text, PoolConfig::validate, |c| &c.name),
        _ => round_trip::<NetworkConfig>(&text, NetworkConfig::validate, |c| &c.name),
    }
}

fn round_trip<T>(text: &str, validate: fn(&T) -> Result<(), String>, name: fn(&T) -> &str)
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let path = Path::new("fuzz.toml");
    let Ok(definition) = parse_named::<T>(path, text, None, "", validate, name) else {
        return;
    };
    let saved = toml::to_string(&definition).expect("a loaded definition saves");
    let again = parse_named::<T>(path, &saved, None, "", validate, name)
        .expect("a saved definition loads again");
    assert_eq!(
        again, definition,
        "saving and loading changed the definition"
    );
}

/// Takes the input the way `--cloud-init` does: parses it, seals it for storage in a
/// definition (passwords generated or hashed, as the CLI does before anything is stored), which
/// must survive being stored and loaded; then, when it names no host files (those are read
/// from the host, which a fuzz run must not do), builds the seed's files and its FAT image in
/// memory. Last, writes the text as a YAML string the way the seed does, and a YAML parser
/// must read back exactly that string.
pub fn cloudinit(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(mut options) = CloudInitOptions::parse(&text)
        && options.sealed_for_storage("fuzz").is_ok()
    {
        let saved = toml::to_string(&options).expect("sealed options save");
        let again: CloudInitOptions = toml::from_str(&saved).expect("saved options load");
        assert_eq!(again, options, "storing the options changed them");
        if options.ssh_keys.is_empty()
            && options.user_data.is_none()
            && options.network_config.is_none()
        {
            build_seed_files(&options);
        }
    }
    let doc = render(&Yaml::map([("value", Yaml::str(text.as_ref()))]));
    let read: std::collections::BTreeMap<String, String> =
        serde_norway::from_str(&doc).expect("the seed's YAML parses");
    assert_eq!(read.get("value").map(String::as_str), Some(text.as_ref()));
}

/// The seed's files for `options` and a VM with one NIC, and the FAT volume holding them; its
/// user-data must be YAML.
fn build_seed_files(options: &CloudInitOptions) {
    let macs = [MacAddr([0x52, 0x54, 0, 0, 0, 1])];
    let ctx = SeedContext {
        vm_name: "fuzz",
        macs: &macs,
    };
    let Ok(inputs) = SeedInputs::read(options, &ctx) else {
        return;
    };
    let Ok((files, _)) = inputs.files() else {
        return;
    };
    for (name, bytes) in &files {
        if *name == "user-data" {
            let yaml = std::str::from_utf8(bytes).expect("user-data is UTF-8");
            serde_norway::from_str::<serde_norway::Value>(yaml).expect("user-data parses as YAML");
        }
    }
    fat::build(&files, 0x1234_5678).expect("the seed's files fit a FAT volume");
}
