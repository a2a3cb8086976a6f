//! The TUI's one form system: labelled fields (text, on/off, one-of choices, a checklist)
//! with a problem or a hint under each, checked as they are typed. The storage, network and
//! hot-add dialogs (`dialogs`) and every step of the creation wizard and the edit form
//! (`wizard`) are forms: the form holds the values, handles keys and focus, and is drawn by
//! `ui::form_view`; its owner says which fields there are and which are shown, what is wrong
//! with them, and what to do on Enter, Esc and Ctrl-O (a field that opens a file picker).

pub mod checklist;

use super::input::{Edit, LineInput};
use checklist::Checklist;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Names a field within one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKey {
    /// A volume or network name.
    Name,
    /// A size (`10G`, `+5G`).
    Size,
    /// raw or qcow2.
    Format,
    /// Allocate all space now.
    Preallocate,
    /// Allow shrinking.
    Shrink,
    /// Linked (qcow2 overlay) instead of full clone.
    Linked,
    /// An image file path.
    Path,
    /// nat, isolated or bridge.
    Mode,
    /// A bridge name.
    Bridge,
    /// An IPv4 subnet.
    Subnet,
    /// The gateway address.
    Gateway,
    /// The DHCP range.
    DhcpRange,
    /// Autostart flag.
    Autostart,
    /// Which volume (hot-add dialog).
    Volume,
    /// Use a new volume instead of an existing one.
    NewVolume,
    /// Which pool.
    Pool,
    /// Change the running VM.
    Live,
    /// Change the definition.
    Config,
    /// The guest cannot write it.
    ReadOnly,
    /// Remove without the guest's consent.
    Force,
    /// A remote host's address (`ssh://…`).
    Uri,
    /// Wizard: demo, kernel or disk image.
    Source,
    /// Wizard: the kernel's path.
    Kernel,
    /// Wizard: the initrd's path.
    Initrd,
    /// Wizard: the kernel command line.
    Cmdline,
    /// Wizard: vCPUs at boot.
    Vcpus,
    /// Wizard: most vCPUs (hot-add limit).
    MaxVcpus,
    /// Wizard: guest RAM.
    Memory,
    /// Wizard: start once created.
    StartNow,
    /// Wizard: attach the console once started.
    AttachNow,
    /// Wizard: existing volumes to attach.
    Volumes,
    /// Wizard: create a new volume for the VM.
    NewDisk,
    /// Wizard: the new volume's pool.
    DiskPool,
    /// Wizard: the new volume's name.
    DiskName,
    /// Wizard: the new volume's size.
    DiskSize,
    /// Wizard: the new volume's format.
    DiskFormat,
    /// Wizard: networks to attach.
    Networks,
    /// Wizard: start the chosen networks that are not started, before the VM (shown on the
    /// review only when one is needed).
    StartNetworks,
    /// Wizard: the disk image, a pool volume or a file.
    ImageFrom,
    /// Wizard: the image file's path.
    ImageFile,
    /// Wizard: linked overlay, copy, or the volume itself.
    ImageMode,
    /// Wizard, cloud-init: the user to create.
    CiUser,
    /// Wizard, cloud-init: the SSH public key file.
    CiKey,
    /// Wizard, cloud-init: no password, or a generated root password.
    CiPassword,
    /// Wizard, cloud-init: the guest's host name.
    CiHostname,
}

/// A field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Free text.
    Text(LineInput),
    /// On/off.
    Toggle(bool),
    /// One of `options` (Space or ←/→ cycles).
    Choice {
        /// The words shown.
        options: Vec<String>,
        /// The chosen one.
        index: usize,
    },
    /// Things to tick (Space ticks, ↑/↓ move within it and leave it at either end).
    Checklist(Checklist),
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// Which field.
    pub key: FieldKey,
    /// Label left of the value.
    pub label: &'static str,
    /// The value.
    pub value: FieldValue,
    /// What is wrong with it now.
    pub error: Option<String>,
    /// Advice shown under it while it is focused and fine.
    pub hint: String,
    /// Not shown (and not checked) now.
    pub hidden: bool,
    /// Ctrl-O opens a file picker that fills this (text) field.
    pub browse: bool,
    /// The hint is shown even while another field is focused (a fact always worth seeing).
    pub always_hint: bool,
    /// What a toggle says when on and when off, instead of "yes" and "no".
    pub toggle_words: Option<(String, String)>,
    /// A text field holding a whole number within these bounds (see [`Form::number`]).
    pub bounds: Option<(u32, u32)>,
}

impl FormField {
    /// A text field holding `text`.
    pub fn text(key: FieldKey, label: &'static str, text: &str) -> FormField {
        FormField::new(key, label, FieldValue::Text(LineInput::new(text)))
    }

    /// An on/off field.
    pub fn toggle(key: FieldKey, label: &'static str, on: bool) -> FormField {
        FormField::new(key, label, FieldValue::Toggle(on))
    }

    /// A choice among `options`, the first chosen.
    pub fn choice(key: FieldKey, label: &'static str, options: Vec<String>) -> FormField {
        FormField::new(key, label, FieldValue::Choice { options, index: 0 })
    }

    /// A text field holding the whole number `value`, which must stay within `min..=max`.
    pub fn number(key: FieldKey, label: &'static str, value: u32, min: u32, max: u32) -> FormField {
        let mut field = FormField::text(key, label, &value.to_string());
        field.bounds = Some((min, max));
        field
    }

    /// A checklist field over `list`.
    pub fn checklist(key: FieldKey, label: &'static str, list: Checklist) -> FormField {
        FormField::new(key, label, FieldValue::Checklist(list))
    }

    /// This field, with Ctrl-O opening a file picker for it.
    pub fn browsing(mut self) -> FormField {
        self.browse = true;
        self
    }

    /// This field, with its hint shown while other fields are focused too.
    pub fn hint_always(mut self) -> FormField {
        self.always_hint = true;
        self
    }

    fn new(key: FieldKey, label: &'static str, value: FieldValue) -> FormField {
        FormField {
            key,
            label,
            value,
            error: None,
            hint: String::new(),
            hidden: false,
            browse: false,
            always_hint: false,
            toggle_words: None,
            bounds: None,
        }
    }
}

/// What a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKey {
    /// Moved or nothing.
    Moved,
    /// A value changed (re-check the fields).
    Changed,
    /// Enter: submit.
    Submit,
    /// Esc: close.
    Cancel,
    /// Ctrl-O: open a file picker (for the focused field, when it [browses](FormField::browse)).
    Browse,
}

/// The fields and focus of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// Fields in order (hidden ones included).
    pub fields: Vec<FormField>,
    /// Index into `fields` of the focused one (always a shown field).
    pub focus: usize,
    /// ↑ on the first shown field goes to the last (else it stays).
    pub wrap_up: bool,
}

impl Form {
    /// A form over `fields`, the first shown one focused; ↑ wraps.
    pub fn new(fields: Vec<FormField>) -> Form {
        let mut form = Form {
            fields,
            focus: 0,
            wrap_up: true,
        };
        form.fix_focus();
        form
    }

    /// The shown fields, in order.
    pub fn shown(&self) -> impl Iterator<Item = &FormField> {
        self.fields.iter().filter(|f| !f.hidden)
    }

    /// Focuses field `key` when it is shown; says whether it is.
    pub fn focus_on(&mut self, key: FieldKey) -> bool {
        match self.fields.iter().position(|f| f.key == key && !f.hidden) {
            Some(i) => {
                self.focus = i;
                true
            }
            None => false,
        }
    }

    /// Focuses the first shown field.
    pub fn focus_first(&mut self) {
        self.focus = self.fields.iter().position(|f| !f.hidden).unwrap_or(0);
    }

    /// The index of the chosen option of choice `key` (0 for other kinds).
    pub fn choice_index(&self, key: FieldKey) -> usize {
        match self.field(key).map(|f| &f.value) {
            Some(FieldValue::Choice { index, .. }) => *index,
            _ => 0,
        }
    }

    /// Chooses option `index` of choice `key` (the last one when there are fewer).
    pub fn set_choice_index(&mut self, key: FieldKey, index: usize) {
        if let Some(FieldValue::Choice { options, index: i }) =
            self.field_mut(key).map(|f| &mut f.value)
        {
            *i = index.min(options.len().saturating_sub(1));
        }
    }

    /// Replaces the options of choice `key`, keeping the chosen index where it still exists.
    pub fn set_options(&mut self, key: FieldKey, options: Vec<String>) {
        if let Some(FieldValue::Choice { options: o, index }) =
            self.field_mut(key).map(|f| &mut f.value)
        {
            *index = (*index).min(options.len().saturating_sub(1));
            *o = options;
        }
    }

    /// The options of choice `key`.
    pub fn options(&self, key: FieldKey) -> &[String] {
        match self.field(key).map(|f| &f.value) {
            Some(FieldValue::Choice { options, .. }) => options,
            _ => &[],
        }
    }

    /// Checklist `key`.
    pub fn checklist(&self, key: FieldKey) -> Option<&Checklist> {
        match self.field(key).map(|f| &f.value) {
            Some(FieldValue::Checklist(list)) => Some(list),
            _ => None,
        }
    }

    /// Checklist `key`, mutably.
    pub fn checklist_mut(&mut self, key: FieldKey) -> Option<&mut Checklist> {
        match self.field_mut(key).map(|f| &mut f.value) {
            Some(FieldValue::Checklist(list)) => Some(list),
            _ => None,
        }
    }

    /// Sets toggle `key`.
    pub fn set_flag(&mut self, key: FieldKey, on: bool) {
        if let Some(FieldValue::Toggle(value)) = self.field_mut(key).map(|f| &mut f.value) {
            *value = on;
        }
    }

    /// The field `key`.
    pub fn field(&self, key: FieldKey) -> Option<&FormField> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The field `key`, mutably.
    pub fn field_mut(&mut self, key: FieldKey) -> Option<&mut FormField> {
        self.fields.iter_mut().find(|f| f.key == key)
    }

    /// The trimmed text of field `key` ("" for other kinds).
    pub fn text(&self, key: FieldKey) -> &str {
        match self.field(key).map(|f| &f.value) {
            Some(FieldValue::Text(input)) => input.text().trim(),
            _ => "",
        }
    }

    /// Replaces the text of field `key`.
    pub fn set_text(&mut self, key: FieldKey, text: &str) {
        if let Some(FieldValue::Text(input)) = self.field_mut(key).map(|f| &mut f.value) {
            input.set(text);
        }
    }

    /// The whole number in field `key`, or what is wrong with it, naming the field: not a
    /// whole number, or outside the field's [bounds](FormField::bounds).
    pub fn number(&self, key: FieldKey) -> Result<u32, String> {
        let text = self.text(key);
        let (min, max) = self
            .field(key)
            .and_then(|f| f.bounds)
            .unwrap_or((0, u32::MAX));
        let what = self.field(key).map_or_else(String::new, |f| noun(f.label));
        match text.parse::<u32>() {
            Ok(n) if n < min => Err(format!("{what} must be at least {min}")),
            Ok(n) if n > max => Err(format!("{what} can be at most {max}")),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("'{text}' is not a whole number")),
        }
    }

    /// Whether toggle `key` is on.
    pub fn flag(&self, key: FieldKey) -> bool {
        matches!(
            self.field(key).map(|f| &f.value),
            Some(FieldValue::Toggle(true))
        )
    }

    /// The chosen option of choice `key`.
    pub fn choice(&self, key: FieldKey) -> Option<&str> {
        match self.field(key).map(|f| &f.value) {
            Some(FieldValue::Choice { options, index }) => options.get(*index).map(String::as_str),
            _ => None,
        }
    }

    /// Shows or hides field `key`.
    pub fn set_hidden(&mut self, key: FieldKey, hidden: bool) {
        if let Some(field) = self.field_mut(key) {
            field.hidden = hidden;
        }
        self.fix_focus();
    }

    /// The focused field.
    pub fn focused(&self) -> Option<&FormField> {
        self.fields.get(self.focus).filter(|f| !f.hidden)
    }

    /// Whether any shown field has a problem.
    pub fn has_errors(&self) -> bool {
        self.fields.iter().any(|f| !f.hidden && f.error.is_some())
    }

    /// Focuses the first shown field with a problem; says whether there was one.
    pub fn focus_first_error(&mut self) -> bool {
        match self
            .fields
            .iter()
            .position(|f| !f.hidden && f.error.is_some())
        {
            Some(i) => {
                self.focus = i;
                true
            }
            None => false,
        }
    }

    fn fix_focus(&mut self) {
        if self.fields.get(self.focus).is_some_and(|f| !f.hidden) {
            return;
        }
        self.focus = self.fields.iter().position(|f| !f.hidden).unwrap_or(0);
    }

    fn step_focus(&mut self, forward: bool) {
        let count = self.fields.len();
        for step in 1..=count {
            let i = if forward {
                (self.focus + step) % count
            } else {
                (self.focus + count - step) % count
            };
            if !self.fields[i].hidden {
                self.focus = i;
                return;
            }
        }
    }

    fn first_shown(&self) -> bool {
        self.fields.iter().position(|f| !f.hidden) == Some(self.focus)
    }

    /// Applies a key: Tab/↑/↓ move (within a checklist first), Enter submits, Esc cancels,
    /// Ctrl-O asks for a file picker, the rest edits the focused field.
    pub fn handle_key(&mut self, key: &KeyEvent) -> FormKey {
        let shift_tab = key.code == KeyCode::BackTab
            || (key.code == KeyCode::Tab && key.modifiers.contains(KeyModifiers::SHIFT));
        let delta = match key.code {
            KeyCode::Up => -1,
            KeyCode::Down => 1,
            _ => 0,
        };
        if delta != 0
            && let Some(FieldValue::Checklist(list)) =
                self.fields.get_mut(self.focus).map(|f| &mut f.value)
            && list.move_cursor(delta)
        {
            return FormKey::Moved;
        }
        match key.code {
            KeyCode::Esc => return FormKey::Cancel,
            KeyCode::Enter => return FormKey::Submit,
            KeyCode::Char('o') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return FormKey::Browse;
            }
            _ if shift_tab => self.step_focus(false),
            KeyCode::Up if !self.wrap_up && self.first_shown() => {}
            KeyCode::Up => self.step_focus(false),
            KeyCode::Tab | KeyCode::Down => self.step_focus(true),
            _ => return self.edit(key),
        }
        FormKey::Moved
    }

    /// Pasted text goes into the focused text field.
    pub fn paste(&mut self, text: &str) -> FormKey {
        match self.fields.get_mut(self.focus).map(|f| &mut f.value) {
            Some(FieldValue::Text(input)) => {
                if input.insert_str(text) == Edit::Changed {
                    FormKey::Changed
                } else {
                    FormKey::Moved
                }
            }
            _ => FormKey::Moved,
        }
    }

    fn edit(&mut self, key: &KeyEvent) -> FormKey {
        let Some(field) = self.fields.get_mut(self.focus) else {
            return FormKey::Moved;
        };
        let cycle = matches!(
            key.code,
            KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right
        );
        let changed = match &mut field.value {
            FieldValue::Text(input) => input.handle(key) == Edit::Changed,
            FieldValue::Toggle(on) if cycle => {
                *on = !*on;
                true
            }
            FieldValue::Choice { options, index } if cycle && !options.is_empty() => {
                *index = if key.code == KeyCode::Left {
                    (*index + options.len() - 1) % options.len()
                } else {
                    (*index + 1) % options.len()
                };
                true
            }
            FieldValue::Checklist(list) if key.code == KeyCode::Char(' ') => list.toggle(),
            _ => false,
        };
        if changed {
            FormKey::Changed
        } else {
            FormKey::Moved
        }
    }
}

/// A label as a sentence names it inside: its first letter in lower case ("Max vCPUs" →
/// "max vCPUs").
fn noun(label: &str) -> String {
    let mut chars = label.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(form: &mut Form, code: KeyCode) -> FormKey {
        form.handle_key(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn sample() -> Form {
        let mut hidden = FormField::text(FieldKey::Bridge, "Bridge", "");
        hidden.hidden = true;
        Form::new(vec![
            FormField::text(FieldKey::Name, "Name", "a"),
            hidden,
            FormField::choice(
                FieldKey::Format,
                "Format",
                vec!["qcow2".into(), "raw".into()],
            ),
        ])
    }

    #[test]
    fn focus_skips_hidden_fields() {
        let mut form = sample();
        press(&mut form, KeyCode::Down);
        assert_eq!(form.focused().map(|f| f.key), Some(FieldKey::Format));
        press(&mut form, KeyCode::Up);
        assert_eq!(form.focused().map(|f| f.key), Some(FieldKey::Name));
    }

    #[test]
    fn space_and_arrows_cycle_a_choice_both_ways() {
        let mut form = sample();
        press(&mut form, KeyCode::Tab);
        assert_eq!(press(&mut form, KeyCode::Char(' ')), FormKey::Changed);
        assert_eq!(form.choice(FieldKey::Format), Some("raw"));
        press(&mut form, KeyCode::Left);
        assert_eq!(form.choice(FieldKey::Format), Some("qcow2"));
    }

    #[test]
    fn typing_edits_the_focused_text() {
        let mut form = sample();
        press(&mut form, KeyCode::Char('b'));
        assert_eq!(form.text(FieldKey::Name), "ab");
    }

    fn item(key: &str) -> checklist::CheckItem {
        checklist::CheckItem {
            key: key.into(),
            label: key.into(),
            note: String::new(),
            problem: None,
            checked: false,
        }
    }

    /// A checklist of `a`, `b` over a text field.
    fn with_checklist() -> Form {
        let mut list = Checklist::new("Things", "(none)");
        list.replace(vec![item("a"), item("b")]);
        Form::new(vec![
            FormField::checklist(FieldKey::Volumes, "Volumes", list),
            FormField::text(FieldKey::Name, "Name", ""),
        ])
    }

    #[test]
    fn arrows_move_within_a_checklist_and_leave_it_at_the_end() {
        let mut form = with_checklist();
        press(&mut form, KeyCode::Down);
        assert_eq!(form.checklist(FieldKey::Volumes).map(|l| l.cursor), Some(1));
        assert_eq!(form.focused().map(|f| f.key), Some(FieldKey::Volumes));
        press(&mut form, KeyCode::Down);
        assert_eq!(form.focused().map(|f| f.key), Some(FieldKey::Name));
    }

    #[test]
    fn space_ticks_the_checklist_item_under_the_cursor() {
        let mut form = with_checklist();
        press(&mut form, KeyCode::Down);
        assert_eq!(press(&mut form, KeyCode::Char(' ')), FormKey::Changed);
        let list = form.checklist(FieldKey::Volumes).expect("checklist");
        assert_eq!(list.checked(), ["b"]);
    }

    #[test]
    fn up_on_the_first_field_wraps_only_when_asked() {
        let mut form = sample();
        press(&mut form, KeyCode::Up);
        assert_eq!(form.focused().map(|f| f.key), Some(FieldKey::Format));
        form.wrap_up = false;
        form.focus_first();
        press(&mut form, KeyCode::Up);
        assert_eq!(form.focused().map(|f| f.key), Some(FieldKey::Name));
    }

    #[test]
    fn ctrl_o_asks_for_a_file_picker_without_editing() {
        let mut form = sample();
        let key = KeyEvent::new(KeyCode::Char('o'), KeyModifiers::CONTROL);
        assert_eq!(form.handle_key(&key), FormKey::Browse);
        assert_eq!(form.text(FieldKey::Name), "a");
    }

    #[test]
    fn new_options_keep_the_choice_where_it_still_exists() {
        let mut form = sample();
        form.set_choice_index(FieldKey::Format, 1);
        form.set_options(FieldKey::Format, vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(form.choice(FieldKey::Format), Some("b"));
        form.set_options(FieldKey::Format, vec!["only".into()]);
        assert_eq!(form.choice(FieldKey::Format), Some("only"));
    }

    #[test]
    fn a_number_field_names_itself_when_out_of_bounds() {
        let mut form = Form::new(vec![FormField::number(
            FieldKey::MaxVcpus,
            "Max vCPUs",
            4,
            1,
            8,
        )]);
        assert_eq!(form.number(FieldKey::MaxVcpus), Ok(4));
        form.set_text(FieldKey::MaxVcpus, "0");
        assert_eq!(
            form.number(FieldKey::MaxVcpus),
            Err("max vCPUs must be at least 1".to_string())
        );
        form.set_text(FieldKey::MaxVcpus, "9");
        assert_eq!(
            form.number(FieldKey::MaxVcpus),
            Err("max vCPUs can be at most 8".to_string())
        );
        form.set_text(FieldKey::MaxVcpus, "four");
        assert_eq!(
            form.number(FieldKey::MaxVcpus),
            Err("'four' is not a whole number".to_string())
        );
    }
}
