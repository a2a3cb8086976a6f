//! Checks for hotplug changes, made on a copy of the definition before anything changes, and
//! shared by every [`super::Host`] so the real host and the fakes refuse the same things.

use super::{ChangeScope, ClientError};
use crate::config::VmConfig;

/// Checks setting `config`'s VM to `count` vCPUs in `scope`; `live_max` is the running VM's
/// `max_vcpus` for a live change (it may differ from the definition when that was edited after
/// the start). Returns the definition to save when `scope.config`.
pub fn check_vcpus(
    config: &VmConfig,
    count: u32,
    scope: ChangeScope,
    live_max: Option<u32>,
) -> Result<Option<VmConfig>, ClientError> {
    let name = &config.name;
    if !scope.live && !scope.config {
        return Err(ClientError::Invalid(
            "nothing to change: give --live, --config or both".into(),
        ));
    }
    if count == 0 {
        return Err(ClientError::Invalid(format!(
            "VM '{name}' needs at least 1 vCPU; give a count from 1 to {}",
            config.max_vcpus
        )));
    }
    if let Some(max) = live_max.filter(|&max| scope.live && count > max) {
        return Err(ClientError::Invalid(format!(
            "cannot run {count} vCPUs in VM '{name}': it was started with max_vcpus {max}; \
             give at most {max}, or raise max_vcpus with `vmux edit {name}` and restart it"
        )));
    }
    if !scope.config {
        return Ok(None);
    }
    if count > config.max_vcpus {
        return Err(ClientError::Invalid(format!(
            "cannot give VM '{name}' {count} vCPUs: its max_vcpus is {}; raise max_vcpus with \
             `vmux edit {name}` first",
            config.max_vcpus
        )));
    }
    let mut updated = config.clone();
    updated.vcpus = count;
    updated.validate().map_err(ClientError::Invalid)?;
    Ok(Some(updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;

    fn web(vcpus: u32, max_vcpus: u32) -> VmConfig {
        VmConfig {
            vcpus,
            max_vcpus,
            ..VmConfig::new("web", BootConfig::Demo)
        }
    }

    #[test]
    fn a_config_change_returns_the_updated_definition() {
        let updated = check_vcpus(&web(2, 8), 6, ChangeScope::CONFIG, None).expect("valid");
        assert_eq!(updated.map(|c| c.vcpus), Some(6));
    }

    #[test]
    fn a_live_only_change_leaves_the_definition_alone() {
        let updated = check_vcpus(&web(2, 8), 6, ChangeScope::LIVE, Some(8)).expect("valid");
        assert!(updated.is_none());
    }

    #[test]
    fn zero_vcpus_are_refused() {
        let err = check_vcpus(&web(2, 8), 0, ChangeScope::BOTH, Some(8)).expect_err("zero");
        assert!(err.to_string().contains("at least 1 vCPU"), "{err}");
    }

    #[test]
    fn more_than_the_running_max_is_refused_live() {
        let err = check_vcpus(&web(2, 16), 9, ChangeScope::LIVE, Some(8)).expect_err("max");
        assert!(err.to_string().contains("max_vcpus 8"), "{err}");
    }

    #[test]
    fn more_than_the_defined_max_is_refused_for_the_config() {
        let err = check_vcpus(&web(2, 4), 5, ChangeScope::CONFIG, None).expect_err("max");
        assert!(err.to_string().contains("max_vcpus is 4"), "{err}");
    }

    #[test]
    fn an_empty_scope_is_refused() {
        let scope = ChangeScope {
            live: false,
            config: false,
        };
        assert!(check_vcpus(&web(2, 4), 3, scope, None).is_err());
    }
}
