//! A form field holding a list of things to tick (the wizard's existing volumes and
//! networks): the items, each with a note and, when choosing it would fail, a problem, and a
//! cursor that the form's ↑/↓ move and leave at either end. Fresh items keep the ticks.

/// One line of a checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckItem {
    /// Stable identity (`pool/volume`, or the network name).
    pub key: String,
    /// What is shown.
    pub label: String,
    /// Facts shown after the label.
    pub note: String,
    /// Why choosing it would fail (shown in the error colour); choosing it is refused.
    pub problem: Option<String>,
    /// Ticked.
    pub checked: bool,
}

/// A list of things to tick, with a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checklist {
    /// The items.
    pub items: Vec<CheckItem>,
    /// The highlighted item.
    pub cursor: usize,
    /// The line over the items (the field's label names it in problems).
    pub heading: String,
    /// What is shown instead of the items when there are none, and what to do.
    pub empty: String,
}

impl Checklist {
    /// An empty list drawn under `heading`, showing `empty` while it has no items.
    pub fn new(heading: &str, empty: &str) -> Checklist {
        Checklist {
            heading: heading.to_string(),
            empty: empty.to_string(),
            ..Checklist::default()
        }
    }

    /// Replaces the items, keeping ticks and the cursor on items that are still there.
    pub fn replace(&mut self, mut items: Vec<CheckItem>) {
        let current = self.items.get(self.cursor).map(|i| i.key.clone());
        for item in &mut items {
            item.checked = self
                .items
                .iter()
                .any(|old| old.key == item.key && old.checked);
        }
        self.cursor = current
            .and_then(|key| items.iter().position(|i| i.key == key))
            .unwrap_or(0);
        self.items = items;
    }

    /// Ticks or unticks the highlighted item; says whether anything changed.
    pub fn toggle(&mut self) -> bool {
        match self.items.get_mut(self.cursor) {
            Some(item) => {
                item.checked = !item.checked;
                true
            }
            None => false,
        }
    }

    /// Moves the cursor by `delta`; says whether it moved (false at either end).
    pub fn move_cursor(&mut self, delta: isize) -> bool {
        let target = self.cursor.saturating_add_signed(delta);
        if self.items.is_empty() || target >= self.items.len() || (delta < 0 && self.cursor == 0) {
            return false;
        }
        self.cursor = target;
        true
    }

    /// The keys of the ticked items, in list order.
    pub fn checked(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| i.checked)
            .map(|i| i.key.as_str())
            .collect()
    }

    /// The first ticked item that cannot be used, with why.
    pub fn problem(&self) -> Option<String> {
        self.items
            .iter()
            .filter(|i| i.checked)
            .find_map(|i| i.problem.as_ref().map(|p| format!("{}: {p}", i.label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str) -> CheckItem {
        CheckItem {
            key: key.into(),
            label: key.into(),
            note: String::new(),
            problem: None,
            checked: false,
        }
    }

    #[test]
    fn replacing_items_keeps_ticks_and_cursor() {
        let mut list = Checklist::default();
        list.replace(vec![item("a"), item("b")]);
        list.move_cursor(1);
        list.toggle();
        list.replace(vec![item("new"), item("a"), item("b")]);
        assert_eq!(list.checked(), ["b"]);
        assert_eq!(list.cursor, 2);
    }

    #[test]
    fn the_cursor_reports_the_ends() {
        let mut list = Checklist::default();
        list.replace(vec![item("a"), item("b")]);
        assert!(!list.move_cursor(-1));
        assert!(list.move_cursor(1));
        assert!(!list.move_cursor(1));
    }
}
