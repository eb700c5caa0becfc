//! Keys for the compose form (with its file picker), the consent grant form
//! and the log filter line, and the outcomes of the file reads they ask for.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};
use qward_core::api::{Call, ConsentParams, RecordKindName, SendParams};

use super::keys::move_sel;
use crate::effect::Effect;
use crate::fhir_view;
use crate::forms::{ComposeField, DAY_MS, FilePicker, GrantField, parse_expiry_days, picker_dir};
use crate::state::State;

/// Cycles an index through `len` choices by Left/Right.
fn cycle(idx: &mut usize, len: usize, forward: bool) {
    if len == 0 {
        *idx = 0;
    } else if forward {
        *idx = (*idx + 1) % len;
    } else {
        *idx = (*idx + len - 1) % len;
    }
}

pub(super) fn compose_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    let recipients = state.other_members().len();
    let Some(form) = state.compose.as_mut() else {
        return Vec::new();
    };
    if let Some(picker) = form.picker.as_mut() {
        let len = picker
            .files
            .as_ref()
            .and_then(|f| f.as_ref().ok())
            .map_or(0, Vec::len);
        if move_sel(&mut picker.sel, len, key.code) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Esc => form.picker = None,
            KeyCode::Enter => {
                let chosen = picker
                    .files
                    .as_ref()
                    .and_then(|f| f.as_ref().ok())
                    .and_then(|f| f.get(picker.sel));
                if let Some(name) = chosen {
                    form.path = picker.dir.join(name).display().to_string();
                    form.picker = None;
                    form.field = ComposeField::File;
                }
            }
            _ => {}
        }
        return Vec::new();
    }
    if form.sending_to.is_some() {
        if key.code == KeyCode::Esc {
            state.compose = None;
        }
        return Vec::new();
    }
    match (form.field, key.code) {
        (_, KeyCode::Esc) => state.compose = None,
        (_, KeyCode::Up | KeyCode::BackTab) => form.field = form.field.prev(),
        (_, KeyCode::Down | KeyCode::Tab) => form.field = form.field.next(),
        (ComposeField::Kind, KeyCode::Left | KeyCode::Right | KeyCode::Char(' ')) => {
            form.kind = match form.kind {
                RecordKindName::Phr => RecordKindName::Report,
                RecordKindName::Report => RecordKindName::Phr,
            }
        }
        (ComposeField::Recipient, KeyCode::Left) => cycle(&mut form.recipient, recipients, false),
        (ComposeField::Recipient, KeyCode::Right | KeyCode::Char(' ')) => {
            cycle(&mut form.recipient, recipients, true)
        }
        (ComposeField::Kind | ComposeField::Recipient, KeyCode::Enter) => {
            form.field = form.field.next()
        }
        (ComposeField::File, KeyCode::Char(c)) => {
            form.path.push(c);
            form.error = None;
        }
        (ComposeField::File, KeyCode::Backspace) => {
            form.path.pop();
        }
        (ComposeField::File, KeyCode::Enter) => {
            if !form.path.trim().to_ascii_lowercase().ends_with(".json") {
                let dir = picker_dir(&form.path);
                form.picker = Some(FilePicker {
                    dir: dir.clone(),
                    files: None,
                    sel: 0,
                });
                return vec![Effect::ListDir { dir }];
            }
            return submit_compose(state);
        }
        _ => {}
    }
    Vec::new()
}

fn submit_compose(state: &mut State) -> Vec<Effect> {
    let to = {
        let Some(form) = state.compose.as_ref() else {
            return Vec::new();
        };
        state
            .other_members()
            .get(form.recipient)
            .map(|m| m.account.clone())
    };
    let Some(form) = state.compose.as_mut() else {
        return Vec::new();
    };
    match to {
        None => {
            form.error =
                Some("no recipient: the member list is empty (is the node connected?)".into());
            Vec::new()
        }
        Some(account) => {
            form.error = None;
            form.sending_to = Some(account);
            vec![Effect::ReadFile {
                path: PathBuf::from(form.path.trim()),
            }]
        }
    }
}

/// The compose form's file was read: check it looks like the chosen kind and
/// send it.
pub(super) fn on_file_read(
    state: &mut State,
    path: PathBuf,
    result: Result<String, String>,
) -> Vec<Effect> {
    let Some(form) = state.compose.as_mut() else {
        return Vec::new();
    };
    if path != std::path::Path::new(form.path.trim()) {
        return Vec::new();
    }
    let Some(to) = form.sending_to.clone() else {
        return Vec::new();
    };
    let fail = |form: &mut crate::forms::ComposeForm, e: String| {
        form.sending_to = None;
        form.error = Some(e);
        Vec::new()
    };
    let json = match result {
        Ok(json) => json,
        Err(e) => return fail(form, format!("cannot read {}: {e}", path.display())),
    };
    let expected = match form.kind {
        RecordKindName::Phr => "Bundle",
        RecordKindName::Report => "DiagnosticReport",
    };
    match fhir_view::summarize(&json) {
        Err(e) => fail(form, format!("{}: {e}", path.display())),
        Ok(s) if s.resource_type != expected => fail(
            form,
            format!(
                "{} is a FHIR {}, but a {} must be a {expected}",
                path.display(),
                s.resource_type,
                kind_name(form.kind)
            ),
        ),
        Ok(_) => vec![Effect::Call(Call::Send(SendParams {
            to,
            kind: form.kind,
            fhir_json: json,
            patient: None,
        }))],
    }
}

/// "PHR" or "report", as the UI shows record kinds.
pub fn kind_name(kind: RecordKindName) -> &'static str {
    match kind {
        RecordKindName::Phr => "PHR",
        RecordKindName::Report => "report",
    }
}

pub(super) fn on_dir_listed(
    state: &mut State,
    dir: PathBuf,
    result: Result<Vec<String>, String>,
) -> Vec<Effect> {
    if let Some(picker) = state.compose.as_mut().and_then(|f| f.picker.as_mut())
        && picker.dir == dir
    {
        picker.files = Some(result);
        picker.sel = 0;
    }
    Vec::new()
}

pub(super) fn grant_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    let recipients = state.other_members().len();
    let Some(form) = state.grant.as_mut() else {
        return Vec::new();
    };
    match (form.field, key.code) {
        (_, KeyCode::Esc) => state.grant = None,
        (_, KeyCode::Up | KeyCode::BackTab) => form.field = form.field.prev(),
        (_, KeyCode::Down | KeyCode::Tab) => form.field = form.field.next(),
        (_, KeyCode::Enter) => return submit_grant(state),
        (GrantField::Grantee, KeyCode::Left) => cycle(&mut form.grantee, recipients, false),
        (GrantField::Grantee, KeyCode::Right | KeyCode::Char(' ')) => {
            cycle(&mut form.grantee, recipients, true)
        }
        (GrantField::Scope, KeyCode::Char(c)) => form.scope.push(c),
        (GrantField::Scope, KeyCode::Backspace) => {
            form.scope.pop();
        }
        (GrantField::ExpiresDays, KeyCode::Char(c)) if c.is_ascii_digit() => {
            form.expires_days.push(c)
        }
        (GrantField::ExpiresDays, KeyCode::Backspace) => {
            form.expires_days.pop();
        }
        _ => {}
    }
    Vec::new()
}

fn submit_grant(state: &mut State) -> Vec<Effect> {
    let now_ms = state.now_ms;
    let grantee = {
        let Some(form) = state.grant.as_ref() else {
            return Vec::new();
        };
        state
            .other_members()
            .get(form.grantee)
            .map(|m| m.account.clone())
    };
    let Some(form) = state.grant.as_mut() else {
        return Vec::new();
    };
    let Some(grantee) = grantee else {
        form.error = Some("no grantee: the member list is empty (is the node connected?)".into());
        return Vec::new();
    };
    let scope = form.scope.trim().to_string();
    if scope.is_empty() {
        form.error = Some("the scope is empty (records, reports or all)".into());
        return Vec::new();
    }
    let days = match parse_expiry_days(&form.expires_days) {
        Ok(d) => d,
        Err(e) => {
            form.error = Some(e);
            return Vec::new();
        }
    };
    form.error = None;
    let expires_at_ms = days.map(|d| now_ms.saturating_add(d.saturating_mul(DAY_MS)));
    vec![Effect::Call(Call::ConsentGrant(ConsentParams {
        grantee,
        scope,
        expires_at_ms,
    }))]
}

pub(super) fn filter_key(state: &mut State, key: KeyEvent) {
    let f = &mut state.log_filter;
    match key.code {
        KeyCode::Enter => f.editing = false,
        KeyCode::Esc => {
            f.editing = false;
            f.text.clear();
        }
        KeyCode::Backspace => {
            f.text.pop();
        }
        KeyCode::Char(c) => f.text.push(c),
        _ => {}
    }
    state.logs_scroll = 0;
}
