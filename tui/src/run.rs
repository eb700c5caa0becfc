//! The UI loop: sets up the terminal (and restores it on exit, error or
//! panic), turns keys, resizes, ticks and bridge traffic into messages,
//! performs the effects `update` returns, and redraws when something changed.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossterm::event::{self, Event as TermEvent};
use ratatui::Terminal;
use ratatui::backend::Backend;

use crate::bridge::{Bridge, Incoming, Request};
use crate::effect::Effect;
use crate::message::Message;
use crate::state::State;
use crate::theme::Theme;
use crate::update::update;
use crate::view::view;

/// The largest record file the compose form reads (the API's frame limit
/// leaves room for 8 MiB).
pub const MAX_RECORD_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// How many entries the file picker lists at most.
pub const MAX_PICKER_FILES: usize = 500;

/// Checks a secret typed on the lock screen (the node's passphrase): `Ok`
/// unlocks, `Err` says why not.
#[derive(Clone)]
pub struct Unlocker(pub std::sync::Arc<UnlockCheck>);

/// What checks a typed secret.
pub type UnlockCheck = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for Unlocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unlocker(..)")
    }
}

/// How the UI runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub theme: Theme,
    /// How often a tick refreshes clocks and polls the node.
    pub tick: Duration,
    /// Lock after this long without a key press (zero: never), and what
    /// unlocks it.
    pub lock_after: Duration,
    pub unlock: Option<(String, Unlocker)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            theme: Theme::from_env(),
            tick: Duration::from_secs(1),
            lock_after: Duration::ZERO,
            unlock: None,
        }
    }
}

/// Runs the UI until the user quits. The terminal is restored on every way
/// out: normal return, error, and panic (ratatui's `try_init` installs a
/// hook that restores the terminal, then calls the previous hook).
pub fn run(bridge: Bridge, options: Options) -> io::Result<()> {
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            let _ = ratatui::try_restore();
            return Err(e);
        }
    };
    // Clicks and the wheel come as events; the terminal's own selection
    // then needs Shift held (as in most terminal programs).
    let _ = crossterm::execute!(io::stdout(), crossterm::event::EnableMouseCapture);
    let result = event_loop(&mut terminal, bridge, options);
    let _ = crossterm::execute!(io::stdout(), crossterm::event::DisableMouseCapture);
    let restored = ratatui::try_restore();
    result.and(restored)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    bridge: Bridge,
    options: Options,
) -> io::Result<()>
where
    B::Error: Into<io::Error>,
{
    let mut state = State::new(options.theme);
    state.zone = jiff::tz::TimeZone::system();
    if let Ok(size) = terminal.size() {
        state.size = (size.width, size.height);
    }
    let mut runner = Runner::new(bridge);
    if let Some((asks_for, unlocker)) = options.unlock {
        state.lock.after_ms = options.lock_after.as_millis() as u64;
        state.lock.asks_for = asks_for;
        runner.unlocker = Some(unlocker);
    }
    let mut queue: VecDeque<Message> = VecDeque::from([Message::Tick { now_ms: now_ms() }]);
    let mut last_tick = Instant::now();
    let mut dirty = true;
    loop {
        while let Some(msg) = queue.pop_front() {
            dirty = true;
            for effect in update(&mut state, msg) {
                match runner.perform(effect) {
                    Performed::Quit => return Ok(()),
                    Performed::Then(Some(next)) => queue.push_back(next),
                    Performed::Then(None) => {}
                }
            }
        }
        if dirty {
            terminal.draw(|f| view(&state, f)).map_err(Into::into)?;
            dirty = false;
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                TermEvent::Key(key) => queue.push_back(Message::Key(key)),
                TermEvent::Resize(width, height) => {
                    queue.push_back(Message::Resize { width, height })
                }
                TermEvent::Mouse(m) => {
                    use crossterm::event::{MouseButton, MouseEventKind};
                    match m.kind {
                        MouseEventKind::Down(MouseButton::Left) => {
                            queue.push_back(Message::Click {
                                column: m.column,
                                row: m.row,
                            })
                        }
                        MouseEventKind::ScrollUp => queue.push_back(Message::Scroll { up: true }),
                        MouseEventKind::ScrollDown => {
                            queue.push_back(Message::Scroll { up: false })
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        queue.extend(runner.drain());
        if last_tick.elapsed() >= options.tick {
            last_tick = Instant::now();
            queue.push_back(Message::Tick { now_ms: now_ms() });
        }
    }
}

/// What performing an effect led to.
#[derive(Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one lives for a step of the loop, on the stack; a node's answer inside is moved on at once"
)]
pub(crate) enum Performed {
    Quit,
    /// Maybe a message to feed back to `update` at once.
    Then(Option<Message>),
}

/// Performs effects and matches answers to the calls that asked for them.
#[derive(Debug)]
pub(crate) struct Runner {
    bridge: Bridge,
    /// Checks the lock screen's secret.
    pub(crate) unlocker: Option<Unlocker>,
    next_id: u64,
    /// Request id → method, for calls not answered yet.
    pending: HashMap<u64, &'static str>,
}

impl Runner {
    pub(crate) fn new(bridge: Bridge) -> Runner {
        Runner {
            bridge,
            unlocker: None,
            next_id: 1,
            pending: HashMap::new(),
        }
    }

    pub(crate) fn perform(&mut self, effect: Effect) -> Performed {
        match effect {
            Effect::Quit => Performed::Quit,
            Effect::Call(call) => {
                let id = self.next_id;
                self.next_id += 1;
                let method = call.method();
                let request = Request { id, call };
                if self.bridge.requests.send(request).is_err() {
                    let result = Err("the connection task has stopped".to_string());
                    return Performed::Then(Some(Message::Response { method, result }));
                }
                self.pending.insert(id, method);
                Performed::Then(None)
            }
            Effect::ReadFile { path } => {
                let result = read_record_file(&path);
                Performed::Then(Some(Message::FileRead { path, result }))
            }
            Effect::ListDir { dir } => {
                let result = list_json_files(&dir);
                Performed::Then(Some(Message::DirListed { dir, result }))
            }
            Effect::Unlock(secret) => {
                let result = match &self.unlocker {
                    Some(u) => (u.0)(secret.expose()),
                    None => Err("nothing can unlock this screen".into()),
                };
                Performed::Then(Some(Message::Unlocked(result)))
            }
        }
    }

    /// Everything the bridge has delivered so far, as messages; never blocks.
    pub(crate) fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            match self.bridge.incoming.try_recv() {
                Ok(Incoming::Response { id, result }) => {
                    if let Some(method) = self.pending.remove(&id) {
                        out.push(Message::Response { method, result });
                    }
                }
                Ok(Incoming::Event(e)) => out.push(Message::Event(e)),
                Ok(Incoming::UnreadableEvent { kind, reason }) => {
                    out.push(Message::UnreadableEvent { kind, reason })
                }
                Ok(Incoming::EventsLost) => out.push(Message::EventsLost),
                Ok(Incoming::Connected) => out.push(Message::Connected),
                Ok(Incoming::Disconnected(reason)) => {
                    // Calls in flight will not be answered: fail them now.
                    let mut lost: Vec<(u64, &'static str)> = self.pending.drain().collect();
                    lost.sort();
                    for (_, method) in lost {
                        let result = Err("the connection to the node was lost".to_string());
                        out.push(Message::Response { method, result });
                    }
                    out.push(Message::Disconnected(reason));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.pending.is_empty() || out.is_empty() {
                        self.pending.clear();
                    }
                    out.push(Message::Disconnected(
                        "the connection task has stopped".into(),
                    ));
                    break;
                }
            }
        }
        out
    }
}

/// Reads a record file, refusing files too large to send.
pub fn read_record_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len > MAX_RECORD_FILE_BYTES {
        return Err(format!(
            "the file is {len} bytes; records are limited to {MAX_RECORD_FILE_BYTES}"
        ));
    }
    let mut text = String::new();
    file.take(MAX_RECORD_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

/// The `.json` files of a directory, sorted by name.
pub fn list_json_files(dir: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.to_ascii_lowercase().ends_with(".json"))
        .take(MAX_PICKER_FILES)
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use qward_core::api::{Call, Reply};

    use super::*;

    #[test]
    fn calls_go_out_with_ids_and_answers_come_back_by_method() {
        let (bridge, remote) = Bridge::pair();
        let mut runner = Runner::new(bridge);
        assert_eq!(
            runner.perform(Effect::Call(Call::Status)),
            Performed::Then(None)
        );
        assert_eq!(
            runner.perform(Effect::Call(Call::Peers)),
            Performed::Then(None)
        );
        let a = remote.requests.recv().expect("first request");
        let b = remote.requests.recv().expect("second request");
        assert_ne!(a.id, b.id);
        remote
            .incoming
            .send(Incoming::Response {
                id: b.id,
                result: Ok(Reply::Peers(Vec::new())),
            })
            .expect("send");
        remote
            .incoming
            .send(Incoming::Response {
                id: 999,
                result: Ok(Reply::Keys(Vec::new())),
            })
            .expect("send");
        let msgs = runner.drain();
        assert_eq!(
            msgs,
            vec![Message::Response {
                method: "peers",
                result: Ok(Reply::Peers(Vec::new()))
            }]
        );
        // Losing the node fails the call still in flight, then reports the loss.
        remote
            .incoming
            .send(Incoming::Disconnected("refused".into()))
            .expect("send");
        let msgs = runner.drain();
        assert_eq!(msgs.len(), 2);
        assert!(
            matches!(&msgs[0], Message::Response { method, result: Err(_) } if *method == "status")
        );
        assert_eq!(msgs[1], Message::Disconnected("refused".into()));
        drop(remote);
        assert!(matches!(
            runner.drain().last(),
            Some(Message::Disconnected(_))
        ));
        assert!(matches!(
            runner.perform(Effect::Call(Call::Status)),
            Performed::Then(Some(Message::Response { .. }))
        ));
        assert_eq!(runner.perform(Effect::Quit), Performed::Quit);
    }

    #[test]
    fn files_are_read_and_listed_for_the_compose_form() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("b.json"), "{}").expect("write");
        std::fs::write(dir.path().join("a.JSON"), "[]").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "x").expect("write");
        std::fs::create_dir(dir.path().join("sub.json")).expect("mkdir");
        assert_eq!(
            list_json_files(dir.path()),
            Ok(vec!["a.JSON".to_string(), "b.json".to_string()])
        );
        assert!(
            list_json_files(&dir.path().join("missing"))
                .expect_err("an error")
                .contains("cannot list")
        );
        assert_eq!(
            read_record_file(&dir.path().join("b.json")),
            Ok("{}".to_string())
        );
        assert!(read_record_file(&dir.path().join("nope.json")).is_err());
    }

    #[test]
    fn unreadable_and_lost_events_reach_update() {
        let (bridge, remote) = Bridge::pair();
        let mut runner = Runner::new(bridge);
        remote
            .incoming
            .send(Incoming::UnreadableEvent {
                kind: Some("message".into()),
                reason: "bad".into(),
            })
            .expect("send");
        remote.incoming.send(Incoming::EventsLost).expect("send");
        assert_eq!(
            runner.drain(),
            vec![
                Message::UnreadableEvent {
                    kind: Some("message".into()),
                    reason: "bad".into()
                },
                Message::EventsLost
            ]
        );
    }
}
