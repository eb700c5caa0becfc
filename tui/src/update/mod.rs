//! `update`: the one place the state changes. Pure: it takes a message,
//! changes the state and returns the effects (calls to the node, file reads,
//! quitting) for the run loop to perform.

mod data;
mod forms;
mod keys;

pub use forms::kind_name;

use crossterm::event::{KeyCode, KeyEvent};
use qward_core::api::Call;

use crate::effect::Effect;
use crate::message::Message;
use crate::state::{Connection, Notice, State};

/// How often status and peers are polled while connected (they also follow
/// events; the poll keeps round-trip times and the mempool fresh).
pub const POLL_INTERVAL_MS: u64 = 3_000;
/// How many log lines to fetch on (re)connect.
pub const LOG_FETCH_LIMIT: u64 = 200;

/// Applies a message to the state; returns what the run loop must do.
pub fn update(state: &mut State, msg: Message) -> Vec<Effect> {
    match msg {
        Message::Key(key) => {
            if state.lock.screen.is_some() {
                return keys::on_lock_key(state, key);
            }
            state.lock.last_input_ms = state.now_ms;
            keys::on_key(state, key)
        }
        // The mouse does what its keys do: the wheel moves the selection
        // as the arrow keys do, a click on a tab presses its number. A
        // locked UI takes no mouse input.
        Message::Scroll { up } if state.lock.screen.is_none() => {
            let code = if up { KeyCode::Up } else { KeyCode::Down };
            update(state, Message::Key(KeyEvent::from(code)))
        }
        Message::Click { column, row } if state.lock.screen.is_none() => {
            match crate::view::tab_at(column, row) {
                Some(screen) if state.grant.is_none() && state.compose.is_none() => {
                    let digit = char::from_digit(screen.number() as u32, 10).unwrap_or('1');
                    update(state, Message::Key(KeyEvent::from(KeyCode::Char(digit))))
                }
                _ => {
                    state.lock.last_input_ms = state.now_ms;
                    Vec::new()
                }
            }
        }
        Message::Scroll { .. } | Message::Click { .. } => Vec::new(),
        Message::Unlocked(result) => match result {
            Ok(()) => {
                state.lock.screen = None;
                state.lock.last_input_ms = state.now_ms;
                state.notice = Some(Notice {
                    text: "unlocked".into(),
                    is_error: false,
                });
                refresh_all()
            }
            Err(why) => {
                if let Some(screen) = state.lock.screen.as_mut() {
                    screen.checking = false;
                    screen.error = Some(why);
                }
                Vec::new()
            }
        },
        Message::Response { method, result } => data::on_response(state, method, result),
        Message::Event(event) => data::on_event(state, event),
        Message::UnreadableEvent { kind, reason } => {
            data::on_unreadable_event(state, kind.as_deref(), &reason)
        }
        Message::EventsLost => {
            state.notice = Some(Notice {
                text: "fell behind the node's events: refreshed everything".into(),
                is_error: false,
            });
            refresh_all()
        }
        Message::Tick { now_ms } => {
            state.now_ms = now_ms;
            if state.lock.last_input_ms == 0 {
                state.lock.last_input_ms = now_ms;
            }
            if state.lock.after_ms > 0
                && state.lock.screen.is_none()
                && now_ms.saturating_sub(state.lock.last_input_ms) >= state.lock.after_ms
            {
                lock(state);
                return Vec::new();
            }
            if state.connected() && now_ms.saturating_sub(state.last_poll_ms) >= POLL_INTERVAL_MS {
                state.last_poll_ms = now_ms;
                vec![Effect::Call(Call::Status), Effect::Call(Call::Peers)]
            } else {
                Vec::new()
            }
        }
        Message::Connected => {
            let again = matches!(state.connection, Connection::Down(_));
            state.connection = Connection::Up;
            state.last_poll_ms = state.now_ms;
            // Link settings are the node's run-time state: a restarted node
            // has forgotten them, so ask again (`e` does) rather than show stale ones.
            state.links.clear();
            if again {
                state.notice = Some(Notice {
                    text: "reconnected to the node".into(),
                    is_error: false,
                });
            }
            refresh_all()
        }
        Message::Disconnected(reason) => {
            state.connection = Connection::Down(reason);
            state.pending_eve_toggle = None;
            if matches!(
                state.verify,
                Some(crate::state::VerifyState::Running { .. })
            ) {
                state.verify = None;
            }
            Vec::new()
        }
        Message::Resize { width, height } => {
            state.size = (width, height);
            Vec::new()
        }
        Message::FileRead { path, result } => forms::on_file_read(state, path, result),
        Message::DirListed { dir, result } => forms::on_dir_listed(state, dir, result),
    }
}

/// Locks the screen: open panes that hold health data (a record, a
/// compose form with a file's content) are closed, and nothing but the lock
/// screen is drawn until the secret is typed again.
pub fn lock(state: &mut State) {
    state.record = None;
    state.compose = None;
    state.grant = None;
    state.show_help = false;
    state.notice = None;
    state.lock.screen = Some(crate::state::LockScreen::default());
}

/// Everything the UI shows, asked for again (on connect and reconnect, and
/// on `R`). Recent blocks follow once `status` gives the height.
pub fn refresh_all() -> Vec<Effect> {
    vec![
        Effect::Call(Call::Status),
        Effect::Call(Call::Peers),
        Effect::Call(Call::ChainMembers),
        Effect::Call(Call::KeySessions),
        Effect::Call(Call::Keys),
        Effect::Call(Call::Inbox),
        Effect::Call(Call::Outbox),
        Effect::Call(Call::ChainConsent),
        Effect::Call(Call::ChainEmergencies),
        Effect::Call(Call::Logs {
            limit: Some(LOG_FETCH_LIMIT),
        }),
    ]
}

#[cfg(test)]
mod tests;
