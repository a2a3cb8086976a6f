//! Where a hot change applies (`client::ChangeScope`: now, at the next boot, or both): in
//! words for the status line and dialogs, and by default for the keys. A leaf.

use crate::client::ChangeScope;

/// Where a change applies, in words.
pub fn scope_words(scope: ChangeScope) -> &'static str {
    match (scope.live, scope.config) {
        (true, true) => "now and at the next boot",
        (true, false) => "now only (the definition is unchanged)",
        (false, true) => "saved for the next boot",
        (false, false) => "nowhere",
    }
}

/// Where the keys and dialogs apply a change by default: a running VM now and at its next
/// boot, a stopped one at its next boot.
pub fn default_scope(live: bool) -> ChangeScope {
    if live {
        ChangeScope::BOTH
    } else {
        ChangeScope::CONFIG
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_said_in_words() {
        assert_eq!(scope_words(ChangeScope::BOTH), "now and at the next boot");
        assert!(scope_words(ChangeScope::LIVE).contains("unchanged"));
        assert_eq!(default_scope(false), ChangeScope::CONFIG);
    }
}
