//! The UI state: everything the screens show, what the node last told us,
//! and where the cursor is. `view` reads it; only `update` changes it.

use std::collections::{BTreeMap, VecDeque};

use qward_core::api::{
    BlockSummary, ConsentInfo, KeyInfo, KeySessionInfo, LinkParams, LogLine, MemberInfo,
    MessageInfo, NodeStatus, PeerSummary, VerifyReport,
};
use qward_core::identity::Role;

use crate::forms::{ComposeForm, GrantForm};
use crate::theme::Theme;

/// How many log lines the UI keeps.
pub const MAX_LOG_LINES: usize = 500;
/// How many key sessions the UI keeps (the QBER chart shows these).
pub const MAX_SESSIONS: usize = 64;
/// How many recent blocks the Chain screen asks for.
pub const RECENT_BLOCKS: u64 = 20;

/// The seven screens, in number-key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    Overview,
    Peers,
    Keys,
    Messages,
    Chain,
    Consent,
    Logs,
}

impl Screen {
    pub const ALL: [Screen; 7] = [
        Screen::Overview,
        Screen::Peers,
        Screen::Keys,
        Screen::Messages,
        Screen::Chain,
        Screen::Consent,
        Screen::Logs,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Peers => "Peers",
            Screen::Keys => "Key agreement",
            Screen::Messages => "Messages",
            Screen::Chain => "Chain",
            Screen::Consent => "Consent",
            Screen::Logs => "Logs",
        }
    }

    /// A short title for the tab bar.
    pub fn tab(self) -> &'static str {
        match self {
            Screen::Keys => "Keys",
            other => other.title(),
        }
    }

    fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The number key (1–7) of the screen.
    pub fn number(self) -> usize {
        self.index() + 1
    }

    pub fn from_number(n: usize) -> Option<Screen> {
        n.checked_sub(1).and_then(|i| Screen::ALL.get(i).copied())
    }

    pub fn next(self) -> Screen {
        Screen::ALL[(self.index() + 1) % Screen::ALL.len()]
    }

    pub fn prev(self) -> Screen {
        Screen::ALL[(self.index() + Screen::ALL.len() - 1) % Screen::ALL.len()]
    }
}

/// The connection to the node as the UI knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not connected yet.
    Connecting,
    Up,
    /// Lost, with the reason; the bridge keeps retrying.
    Down(String),
}

/// Which mailbox the Messages screen's cursor is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mailbox {
    Inbox,
    Outbox,
}

/// Log levels, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Parses a level name; anything unknown counts as info.
    pub fn parse(s: &str) -> Level {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "warn" | "warning" => Level::Warn,
            "error" | "err" => Level::Error,
            _ => Level::Info,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The Logs screen's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    /// Show lines containing this text (case-insensitive); empty shows all.
    pub text: String,
    /// Show lines at this level or more severe.
    pub min_level: Level,
    /// The user is typing the text after `/`.
    pub editing: bool,
}

impl Default for LogFilter {
    fn default() -> Self {
        LogFilter {
            text: String::new(),
            min_level: Level::Trace,
            editing: false,
        }
    }
}

impl LogFilter {
    pub fn matches(&self, line: &LogLine) -> bool {
        Level::parse(&line.level) >= self.min_level
            && (self.text.is_empty()
                || line.line.to_lowercase().contains(&self.text.to_lowercase()))
    }
}

/// An eavesdropper was detected on a link.
#[derive(Debug, Clone, PartialEq)]
pub struct EveAlarm {
    pub session_id: String,
    pub peer: String,
    pub peer_name: Option<String>,
    pub qber: Option<f64>,
}

/// The screen lock (automatic logoff): after `after_ms` without a key press
/// the UI hides everything and asks for the secret again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lock {
    /// 0: never locks.
    pub after_ms: u64,
    /// What unlocks it, as the lock screen names it ("the node's passphrase").
    pub asks_for: String,
    pub last_input_ms: u64,
    /// `Some` while locked.
    pub screen: Option<LockScreen>,
}

/// What the lock screen holds while locked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LockScreen {
    /// What was typed so far (shown as dots, cleared once tried).
    pub typed: crate::effect::Secret,
    /// Why the last try failed.
    pub error: Option<String>,
    /// A try is being checked.
    pub checking: bool,
}

/// The outcome of `chain_verify`.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyState {
    /// Asked for; `verified` of `total` blocks so far, as the node reports.
    Running {
        verified: u64,
        total: u64,
    },
    Done(VerifyReport),
    Failed(String),
}

/// A record opened from the inbox or outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPane {
    pub record_id: String,
    /// `None` while loading; then the decrypted FHIR JSON or an error.
    pub content: Option<Result<(MessageInfo, String), String>>,
    /// Show the raw JSON instead of the person-readable view.
    pub raw: bool,
    pub scroll: u16,
}

/// A short message in the status line: what just happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// Everything the UI shows.
#[derive(Debug, Clone)]
pub struct State {
    pub theme: Theme,
    pub screen: Screen,
    pub show_help: bool,
    pub connection: Connection,
    pub now_ms: u64,
    /// The zone times are shown in: the system's (TZ, /etc/localtime) in
    /// a terminal, UTC in tests.
    pub zone: jiff::tz::TimeZone,
    /// Last time status and peers were refreshed by the tick.
    pub last_poll_ms: u64,
    pub size: (u16, u16),

    pub status: Option<NodeStatus>,
    pub peers: Vec<PeerSummary>,
    pub members: Vec<MemberInfo>,
    /// Newest first.
    pub sessions: Vec<KeySessionInfo>,
    pub keys: Vec<KeyInfo>,
    pub links: BTreeMap<String, LinkParams>,
    pub inbox: Vec<MessageInfo>,
    pub outbox: Vec<MessageInfo>,
    /// Newest first.
    pub blocks: Vec<BlockSummary>,
    pub consents: Vec<ConsentInfo>,
    /// Emergency (break-glass) declarations on the chain, newest first.
    pub emergencies: Vec<qward_core::api::EmergencyInfo>,
    pub lock: Lock,
    /// A record whose erasure waits for `y` (any other key cancels).
    pub confirm_erase: Option<String>,
    pub verify: Option<VerifyState>,
    pub logs: VecDeque<LogLine>,
    pub eve_alarm: Option<EveAlarm>,
    /// The last error of each method that failed (cleared by its next success).
    pub call_errors: BTreeMap<String, String>,
    pub notice: Option<Notice>,

    pub peers_sel: usize,
    pub sessions_sel: usize,
    pub mailbox: Mailbox,
    pub inbox_sel: usize,
    pub outbox_sel: usize,
    pub blocks_sel: usize,
    pub consent_sel: usize,
    /// Lines scrolled up from the newest log line.
    pub logs_scroll: usize,
    pub log_filter: LogFilter,
    pub compose: Option<ComposeForm>,
    pub grant: Option<GrantForm>,
    pub record: Option<RecordPane>,
    /// A link whose Eve setting is being toggled: waiting for `link_get`.
    pub pending_eve_toggle: Option<String>,
}

impl State {
    /// Emergencies declared about this node's own patient account that have
    /// not expired by the UI's clock.
    pub fn emergencies_about_me(&self) -> Vec<&qward_core::api::EmergencyInfo> {
        let Some(me) = self.my_account() else {
            return Vec::new();
        };
        self.emergencies
            .iter()
            .filter(|e| e.patient == me && e.expires_at_ms > self.now_ms)
            .collect()
    }

    pub fn new(theme: Theme) -> State {
        State {
            theme,
            screen: Screen::Overview,
            show_help: false,
            connection: Connection::Connecting,
            now_ms: 0,
            zone: jiff::tz::TimeZone::UTC,
            last_poll_ms: 0,
            size: (80, 24),
            status: None,
            peers: Vec::new(),
            members: Vec::new(),
            sessions: Vec::new(),
            keys: Vec::new(),
            links: BTreeMap::new(),
            inbox: Vec::new(),
            outbox: Vec::new(),
            blocks: Vec::new(),
            consents: Vec::new(),
            verify: None,
            logs: VecDeque::new(),
            eve_alarm: None,
            emergencies: Vec::new(),
            lock: Lock::default(),
            confirm_erase: None,
            call_errors: BTreeMap::new(),
            notice: None,
            peers_sel: 0,
            sessions_sel: 0,
            mailbox: Mailbox::Inbox,
            inbox_sel: 0,
            outbox_sel: 0,
            blocks_sel: 0,
            consent_sel: 0,
            logs_scroll: 0,
            log_filter: LogFilter::default(),
            compose: None,
            grant: None,
            record: None,
            pending_eve_toggle: None,
        }
    }

    pub fn connected(&self) -> bool {
        self.connection == Connection::Up
    }

    /// This node's account, once `status` has answered.
    pub fn my_account(&self) -> Option<&str> {
        self.status.as_ref().map(|s| s.account.as_str())
    }

    pub fn my_role(&self) -> Option<Role> {
        self.status.as_ref().map(|s| s.role)
    }

    /// Members other than this node: who records and consent can go to.
    pub fn other_members(&self) -> Vec<&MemberInfo> {
        let me = self.my_account();
        self.members
            .iter()
            .filter(|m| Some(m.account.as_str()) != me)
            .collect()
    }

    /// A person-readable name for an account, a peer id, or a name the node
    /// already gave (block summaries name people).
    pub fn name_of(&self, who: &str) -> String {
        self.members
            .iter()
            .find(|m| m.account == who || m.peer_id == who || m.name == who)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| short(who))
    }

    /// Consent records this node granted (all of them if we are not a patient
    /// or do not know who we are yet).
    pub fn own_consents(&self) -> Vec<&ConsentInfo> {
        match (self.my_role(), self.my_account()) {
            (Some(Role::Patient), Some(me)) => {
                self.consents.iter().filter(|c| c.patient == me).collect()
            }
            _ => self.consents.iter().collect(),
        }
    }

    /// Log lines that pass the filter, oldest first.
    pub fn filtered_logs(&self) -> Vec<&LogLine> {
        self.logs
            .iter()
            .filter(|l| self.log_filter.matches(l))
            .collect()
    }

    /// The peer the Key agreement screen acts on: the selected session's
    /// peer, else the peer selected on the Peers screen.
    pub fn selected_link_peer(&self) -> Option<String> {
        self.sessions
            .get(self.sessions_sel)
            .map(|s| s.peer.clone())
            .or_else(|| self.peers.get(self.peers_sel).map(|p| p.peer_id.clone()))
    }

    /// Outbox messages whose delivery failed.
    pub fn failed_deliveries(&self) -> usize {
        self.outbox
            .iter()
            .filter(|m| m.state == qward_core::api::DeliveryState::Failed)
            .count()
    }
}

/// The first 8 characters of an id, for tables.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screens_cycle_and_map_to_number_keys() {
        assert_eq!(Screen::from_number(1), Some(Screen::Overview));
        assert_eq!(Screen::from_number(7), Some(Screen::Logs));
        assert_eq!(Screen::from_number(0), None);
        assert_eq!(Screen::from_number(8), None);
        assert_eq!(Screen::Logs.next(), Screen::Overview);
        assert_eq!(Screen::Overview.prev(), Screen::Logs);
        for s in Screen::ALL {
            assert_eq!(Screen::from_number(s.number()), Some(s));
        }
    }

    #[test]
    fn names_come_from_accounts_peer_ids_or_names_the_node_gave() {
        let s = crate::fixtures::full_state();
        assert_eq!(s.name_of(crate::fixtures::DOCTOR), "dr-okafor");
        assert_eq!(s.name_of("12D3Koodr-okafor"), "dr-okafor");
        // Block summaries and transactions name people already.
        assert_eq!(s.name_of("dr-okafor"), "dr-okafor");
        assert_eq!(s.name_of("0123456789abcdef"), "01234567");
    }

    #[test]
    fn a_patient_sees_the_grants_it_made() {
        let s = crate::fixtures::full_state();
        assert_eq!(s.own_consents().len(), 2);
    }

    #[test]
    fn log_filter_applies_level_and_text() {
        let line = |level: &str, text: &str| LogLine {
            time_ms: 0,
            level: level.into(),
            line: text.into(),
        };
        let mut f = LogFilter {
            min_level: Level::Warn,
            ..LogFilter::default()
        };
        assert!(f.matches(&line("ERROR", "disk full")));
        assert!(!f.matches(&line("info", "block 3")));
        f.text = "DISK".into();
        assert!(f.matches(&line("warn", "disk slow")));
        assert!(!f.matches(&line("warn", "peer gone")));
    }
}
