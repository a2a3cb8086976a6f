//! Fuzz entry points for text a user or a file supplies: VM, pool and network definitions
//! (TOML), and `--cloud-init` options with the YAML they end up in.

use std::path::Path;

use crate::cloudinit::CloudInitOptions;
use crate::cloudinit::yaml::{Yaml, render};
use crate::config::{NetworkConfig, PoolConfig, VmConfig, parse_named};

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

/// Parses the input as `--cloud-init` options; options that parse must survive being stored
/// in a definition. Then writes the text as a YAML string the way the seed does, and a YAML
/// parser must read back exactly that string.
pub fn cloudinit(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(options) = CloudInitOptions::parse(&text) {
        let saved = toml::to_string(&options).expect("parsed options save");
        let again: CloudInitOptions = toml::from_str(&saved).expect("saved options load");
        assert_eq!(again, options, "storing the options changed them");
    }
    let doc = render(&Yaml::map([("value", Yaml::str(text.as_ref()))]));
    let read: std::collections::BTreeMap<String, String> =
        serde_norway::from_str(&doc).expect("the seed's YAML parses");
    assert_eq!(read.get("value").map(String::as_str), Some(text.as_ref()));
}
