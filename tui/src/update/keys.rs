//! Key handling: global keys (screens, help, quit, refresh), then what each
//! screen does with its own keys. Open forms and the filter line take the
//! keys first; Ctrl-C always quits.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use qward_core::api::{Call, RecordKindName};

use super::{data, forms, refresh_all};
use crate::effect::Effect;
use crate::forms::{ComposeForm, GrantForm};
use crate::state::{Level, Mailbox, Notice, Screen, State, VerifyState};

/// A key on the lock screen: typing, Backspace, Esc (clear), Enter
/// (check). Nothing else, Ctrl-C included: quitting and starting the UI
/// again would be a way around the lock.
pub(super) fn on_lock_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if key.kind == KeyEventKind::Release || key.modifiers.contains(KeyModifiers::CONTROL) {
        return Vec::new();
    }
    let Some(screen) = state.lock.screen.as_mut() else {
        return Vec::new();
    };
    if screen.checking {
        return Vec::new();
    }
    match key.code {
        KeyCode::Char(c) if screen.typed.len() < 1024 => {
            screen.typed.push(c);
            screen.error = None;
        }
        KeyCode::Backspace => {
            screen.typed.pop();
        }
        KeyCode::Esc => screen.typed.clear(),
        KeyCode::Enter if !screen.typed.is_empty() => {
            screen.checking = true;
            let typed = std::mem::take(&mut screen.typed);
            return vec![Effect::Unlock(typed)];
        }
        _ => {}
    }
    Vec::new()
}

pub(super) fn on_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return vec![Effect::Quit];
    }
    if state.show_help {
        match key.code {
            KeyCode::Char('q') => return vec![Effect::Quit],
            KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => state.show_help = false,
            _ => {}
        }
        return Vec::new();
    }
    if state.compose.is_some() {
        return forms::compose_key(state, key);
    }
    if state.grant.is_some() {
        return forms::grant_key(state, key);
    }
    if state.log_filter.editing {
        forms::filter_key(state, key);
        return Vec::new();
    }
    if state.record.is_some() {
        return record_key(state, key);
    }
    match key.code {
        KeyCode::Char('q') => return vec![Effect::Quit],
        KeyCode::Char('?') => {
            state.show_help = true;
            return Vec::new();
        }
        KeyCode::Char(c @ '1'..='7') => {
            if let Some(s) = c.to_digit(10).and_then(|d| Screen::from_number(d as usize)) {
                state.screen = s;
            }
            return Vec::new();
        }
        KeyCode::Tab => {
            state.screen = state.screen.next();
            return Vec::new();
        }
        KeyCode::BackTab => {
            state.screen = state.screen.prev();
            return Vec::new();
        }
        KeyCode::Char('R') => {
            state.notice = Some(Notice {
                text: "refreshing…".into(),
                is_error: false,
            });
            return refresh_all();
        }
        KeyCode::Esc => {
            state.notice = None;
            return Vec::new();
        }
        _ => {}
    }
    match state.screen {
        Screen::Overview => Vec::new(),
        Screen::Peers => peers_key(state, key),
        Screen::Keys => keys_key(state, key),
        Screen::Messages => messages_key(state, key),
        Screen::Chain => chain_key(state, key),
        Screen::Consent => consent_key(state, key),
        Screen::Logs => logs_key(state, key),
    }
}

/// Moves a selection by Up/Down/j/k/Home/End within `len` rows; true if the
/// key was a movement key.
pub(super) fn move_sel(sel: &mut usize, len: usize, code: KeyCode) -> bool {
    let last = len.saturating_sub(1);
    match code {
        KeyCode::Up | KeyCode::Char('k') => *sel = sel.saturating_sub(1).min(last),
        KeyCode::Down | KeyCode::Char('j') => *sel = (*sel + 1).min(last),
        KeyCode::PageUp => *sel = sel.saturating_sub(10),
        KeyCode::PageDown => *sel = (*sel + 10).min(last),
        KeyCode::Home => *sel = 0,
        KeyCode::End => *sel = last,
        _ => return false,
    }
    true
}

fn record_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    let Some(pane) = state.record.as_mut() else {
        return Vec::new();
    };
    match key.code {
        KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace => state.record = None,
        KeyCode::Char('q') => return vec![Effect::Quit],
        KeyCode::Char('r') => pane.raw = !pane.raw,
        KeyCode::Up | KeyCode::Char('k') => pane.scroll = pane.scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => pane.scroll = pane.scroll.saturating_add(1),
        KeyCode::PageUp => pane.scroll = pane.scroll.saturating_sub(10),
        KeyCode::PageDown => pane.scroll = pane.scroll.saturating_add(10),
        KeyCode::Home => pane.scroll = 0,
        _ => {}
    }
    Vec::new()
}

fn agree_with(state: &mut State, peer: String) -> Vec<Effect> {
    let name = state.name_of(&peer);
    state.notice = Some(Notice {
        text: format!("starting key agreement with {name}…"),
        is_error: false,
    });
    vec![Effect::Call(Call::KeyAgree { peer })]
}

fn peers_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if move_sel(&mut state.peers_sel, state.peers.len(), key.code) {
        return Vec::new();
    }
    match key.code {
        KeyCode::Enter | KeyCode::Char('a') => match state.peers.get(state.peers_sel) {
            Some(p) => {
                let peer = p.peer_id.clone();
                agree_with(state, peer)
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn keys_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if move_sel(&mut state.sessions_sel, state.sessions.len(), key.code) {
        return Vec::new();
    }
    match key.code {
        KeyCode::Char('e') => match state.selected_link_peer() {
            Some(peer) => {
                state.pending_eve_toggle = Some(peer.clone());
                vec![Effect::Call(Call::LinkGet { peer })]
            }
            None => {
                state.notice = Some(Notice {
                    text: "no link to toggle: no session or peer yet".into(),
                    is_error: true,
                });
                Vec::new()
            }
        },
        KeyCode::Char('a') | KeyCode::Enter => match state.selected_link_peer() {
            Some(peer) => agree_with(state, peer),
            None => Vec::new(),
        },
        KeyCode::Char('x') => {
            state.eve_alarm = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn messages_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if let Some(record_id) = state.confirm_erase.take() {
        if key.code == KeyCode::Char('y') {
            state.notice = Some(Notice {
                text: format!("erasing record {}…", crate::state::short(&record_id)),
                is_error: false,
            });
            return vec![Effect::Call(Call::RecordErase { record_id })];
        }
        state.notice = Some(Notice {
            text: "erasure cancelled".into(),
            is_error: false,
        });
        return Vec::new();
    }
    let moved = match state.mailbox {
        Mailbox::Inbox => move_sel(&mut state.inbox_sel, state.inbox.len(), key.code),
        Mailbox::Outbox => move_sel(&mut state.outbox_sel, state.outbox.len(), key.code),
    };
    if moved {
        return Vec::new();
    }
    match key.code {
        KeyCode::Left | KeyCode::Char('i') => state.mailbox = Mailbox::Inbox,
        KeyCode::Right | KeyCode::Char('o') => state.mailbox = Mailbox::Outbox,
        KeyCode::Char('c') => state.compose = Some(ComposeForm::new(RecordKindName::Phr)),
        KeyCode::Char('x') => {
            let selected = match state.mailbox {
                Mailbox::Inbox => state.inbox.get(state.inbox_sel),
                Mailbox::Outbox => state.outbox.get(state.outbox_sel),
            };
            if let Some(m) = selected {
                state.notice = Some(Notice {
                    text: format!(
                        "erase record {} for good (its key is destroyed, the erasure goes on the chain)? y / any key",
                        crate::state::short(&m.record_id)
                    ),
                    is_error: true,
                });
                state.confirm_erase = Some(m.record_id.clone());
            }
        }
        KeyCode::Enter => {
            let selected = match state.mailbox {
                Mailbox::Inbox => state.inbox.get(state.inbox_sel),
                Mailbox::Outbox => state.outbox.get(state.outbox_sel),
            };
            if let Some(m) = selected {
                let id = m.record_id.clone();
                return data::open_record(state, id);
            }
        }
        _ => {}
    }
    Vec::new()
}

fn chain_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    if move_sel(&mut state.blocks_sel, state.blocks.len(), key.code) {
        return Vec::new();
    }
    match key.code {
        KeyCode::Char('v') => {
            if matches!(state.verify, Some(VerifyState::Running { .. })) {
                return Vec::new();
            }
            state.verify = Some(VerifyState::Running {
                verified: 0,
                total: 0,
            });
            vec![Effect::Call(Call::ChainVerify)]
        }
        _ => Vec::new(),
    }
}

fn consent_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    let len = state.own_consents().len();
    if move_sel(&mut state.consent_sel, len, key.code) {
        return Vec::new();
    }
    match key.code {
        KeyCode::Char('g') | KeyCode::Char('n') => {
            state.grant = Some(GrantForm::default());
            Vec::new()
        }
        KeyCode::Char('r') | KeyCode::Delete => {
            let Some(c) = state
                .own_consents()
                .get(state.consent_sel)
                .map(|c| (*c).clone())
            else {
                return Vec::new();
            };
            if !c.active {
                state.notice = Some(Notice {
                    text: "that consent is no longer active".into(),
                    is_error: true,
                });
                return Vec::new();
            }
            let who = c
                .grantee_name
                .clone()
                .unwrap_or_else(|| state.name_of(&c.grantee));
            state.notice = Some(Notice {
                text: format!("revoking {} consent of {who}…", c.scope),
                is_error: false,
            });
            vec![Effect::Call(Call::ConsentRevoke {
                grantee: c.grantee,
                scope: c.scope,
            })]
        }
        _ => Vec::new(),
    }
}

fn logs_key(state: &mut State, key: KeyEvent) -> Vec<Effect> {
    let len = state.filtered_logs().len();
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => {
            state.logs_scroll = (state.logs_scroll + 1).min(len.saturating_sub(1))
        }
        KeyCode::Down | KeyCode::Char('j') => {
            state.logs_scroll = state.logs_scroll.saturating_sub(1)
        }
        KeyCode::PageUp => state.logs_scroll = (state.logs_scroll + 10).min(len.saturating_sub(1)),
        KeyCode::PageDown => state.logs_scroll = state.logs_scroll.saturating_sub(10),
        KeyCode::End | KeyCode::Char('G') => state.logs_scroll = 0,
        KeyCode::Char('/') => state.log_filter.editing = true,
        KeyCode::Char('e') => state.log_filter.min_level = Level::Error,
        KeyCode::Char('w') => state.log_filter.min_level = Level::Warn,
        KeyCode::Char('i') => state.log_filter.min_level = Level::Info,
        KeyCode::Char('d') => state.log_filter.min_level = Level::Debug,
        KeyCode::Char('a') => state.log_filter.min_level = Level::Trace,
        KeyCode::Char('x') => state.log_filter.text.clear(),
        _ => {}
    }
    Vec::new()
}
