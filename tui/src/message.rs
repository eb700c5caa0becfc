//! Messages: everything that can happen to the UI (keys, answers from the
//! node, pushed events, ticks, connection changes, file reads, resizes).

use std::path::PathBuf;

use crossterm::event::KeyEvent;
use qward_core::api::{Event, Reply};

/// An input to `update`.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A key was pressed.
    Key(KeyEvent),
    /// The node answered a call of `method`.
    Response {
        method: &'static str,
        result: Result<Reply, String>,
    },
    /// The node pushed an event.
    Event(Event),
    /// The node pushed an event that did not decode (its `type` if known).
    UnreadableEvent {
        kind: Option<String>,
        reason: String,
    },
    /// Events were lost; the subscription is back.
    EventsLost,
    /// Time passed; `now_ms` is the wall clock in Unix milliseconds.
    Tick { now_ms: u64 },
    /// The connection to the node is up.
    Connected,
    /// The connection to the node is down, with the reason.
    Disconnected(String),
    /// The terminal was resized.
    Resize { width: u16, height: u16 },
    /// The left mouse button was pressed at a cell (0-based).
    Click { column: u16, row: u16 },
    /// The mouse wheel turned: up (towards the top of a list) or down.
    Scroll { up: bool },
    /// A file asked for by the compose form was read (or not).
    FileRead {
        path: PathBuf,
        result: Result<String, String>,
    },
    /// The secret typed on the lock screen was checked: `Ok` unlocks.
    Unlocked(Result<(), String>),
    /// A directory asked for by the file picker was listed (or not).
    DirListed {
        dir: PathBuf,
        result: Result<Vec<String>, String>,
    },
}
