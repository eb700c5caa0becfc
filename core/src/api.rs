//! Control-API types: method names, error codes, and the typed requests,
//! results and events that the node serves and the CLI and TUI use. The
//! JSON-RPC 2.0 envelopes and the typed trait over these live with the
//! server and client in the node crate.

use serde::{Deserialize, Serialize};
/// The largest request or response frame the API accepts (16 MiB: room for
/// an 8 MiB record, base64-encoded, in `send`).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// The HTTP header that carries the cookie (on a WebSocket handshake or an
/// HTTP request; `Authorization: Bearer` is accepted too).
pub const COOKIE_HEADER: &str = "x-qward-cookie";

/// Method names.
pub mod method {
    pub const STATUS: &str = "status";
    pub const PEERS: &str = "peers";
    pub const SUBSCRIBE: &str = "subscribe";
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// The notification method of subscribed events.
    pub const EVENT: &str = "event";
    pub const TX_SUBMIT: &str = "tx_submit";
    pub const CHAIN_HEAD: &str = "chain_head";
    pub const CHAIN_BLOCK: &str = "chain_block";
    pub const CHAIN_BLOCKS: &str = "chain_blocks";
    pub const CHAIN_MEMBERS: &str = "chain_members";
    pub const CHAIN_CONSENT: &str = "chain_consent";
    pub const CHAIN_VERIFY: &str = "chain_verify";
    pub const CHAIN_TX: &str = "chain_tx";
    pub const LOGS: &str = "logs";
    pub const KEYS: &str = "keys";
    pub const KEY_SESSIONS: &str = "key_sessions";
    pub const KEY_AGREE: &str = "key_agree";
    pub const LINK_GET: &str = "link_get";
    pub const LINK_SET: &str = "link_set";
    pub const SEND: &str = "send";
    pub const FORWARD: &str = "forward";
    pub const INBOX: &str = "inbox";
    pub const OUTBOX: &str = "outbox";
    pub const OUTBOX_SHOW: &str = "outbox_show";
    pub const RECORD: &str = "record";
    pub const CONSENT_GRANT: &str = "consent_grant";
    pub const CONSENT_REVOKE: &str = "consent_revoke";
    pub const SHUTDOWN: &str = "shutdown";
    pub const RECORD_ERASE: &str = "record_erase";
    pub const RECORD_ERASE_REQUEST: &str = "record_erase_request";
    pub const EMERGENCY_DECLARE: &str = "emergency_declare";
    pub const CHAIN_EMERGENCIES: &str = "chain_emergencies";
    pub const AUDIT_LOG: &str = "audit_log";
    pub const AUDIT_VERIFY: &str = "audit_verify";
    pub const USER_ADD: &str = "user_add";
    pub const USER_LIST: &str = "user_list";
    pub const USER_REMOVE: &str = "user_remove";
    pub const WHOAMI: &str = "whoami";
    pub const KME_STATUS: &str = "kme_status";
    pub const KME_ENC_KEYS: &str = "kme_enc_keys";
    pub const KME_DEC_KEYS: &str = "kme_dec_keys";
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub const PARSE: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    /// The node refused the request (a rule of the chain or of messaging).
    pub const REFUSED: i64 = -32000;
    /// The node is not able to do it now (not a validator, no peers, ...).
    pub const UNAVAILABLE: i64 = -32001;
    /// ETSI GS QKD 014 answers of the `kme_*` methods, one code per HTTP
    /// status `qward kme serve` answers with: 400, 401 and 503.
    pub const KME_BAD_REQUEST: i64 = -32040;
    pub const KME_UNAUTHORIZED: i64 = -32041;
    pub const KME_UNAVAILABLE: i64 = -32053;

    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_PARAMS, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Self::REFUSED, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Self::UNAVAILABLE, message)
    }

    /// An ETSI GS QKD 014 error as the `kme_*` methods answer it.
    pub fn from_etsi(e: crate::etsi014::EtsiError) -> Self {
        let code = match e.status {
            400 => Self::KME_BAD_REQUEST,
            401 => Self::KME_UNAUTHORIZED,
            _ => Self::KME_UNAVAILABLE,
        };
        Self::new(code, e.message)
    }

    /// The ETSI GS QKD 014 error a `kme_*` method's error stands for.
    pub fn to_etsi(&self) -> crate::etsi014::EtsiError {
        use crate::etsi014::EtsiError;
        match self.code {
            Self::KME_BAD_REQUEST | Self::INVALID_PARAMS => EtsiError::bad_request(&self.message),
            Self::KME_UNAUTHORIZED => EtsiError::unauthorized(&self.message),
            _ => EtsiError::unavailable(&self.message),
        }
    }
}

/// What a client may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Blocks,
    Peers,
    Transactions,
    KeySessions,
    Messages,
    Logs,
}

/// An event pushed to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A block was finalized (committed) at `height`.
    Block {
        height: u64,
        hash: String,
        txs: usize,
        proposer: String,
        time_ms: u64,
    },
    PeerConnected {
        peer_id: String,
    },
    PeerDisconnected {
        peer_id: String,
    },
    /// A transaction entered the mempool (`accepted`) or was refused.
    Transaction {
        id: String,
        kind: String,
        accepted: bool,
        reason: Option<String>,
    },
    /// Progress or outcome of a key-agreement session.
    KeySession(KeySessionInfo),
    /// A sent or received record changed delivery state.
    Message(MessageInfo),
    /// A log line.
    Log {
        level: String,
        line: String,
    },
    /// A finalized block holds an emergency (break-glass) declaration.
    Emergency(EmergencyInfo),
    /// How far a `chain_verify` has come: `verified` of `total` blocks
    /// (a few times a second, and at the end).
    VerifyProgress {
        verified: u64,
        total: u64,
    },
}

impl Event {
    /// The topic this event belongs to.
    pub fn topic(&self) -> Topic {
        match self {
            Event::Block { .. } => Topic::Blocks,
            Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => Topic::Peers,
            Event::Transaction { .. } => Topic::Transactions,
            Event::KeySession(_) => Topic::KeySessions,
            Event::Message(_) => Topic::Messages,
            Event::Log { .. } => Topic::Logs,
            Event::Emergency(_) | Event::VerifyProgress { .. } => Topic::Blocks,
        }
    }
}

/// Result of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub peer_id: String,
    pub account: String,
    pub role: crate::identity::Role,
    pub chain_id: String,
    /// Height of the newest block this node has stored.
    pub height: u64,
    /// Height of the newest block with a commit certificate (final).
    pub finalized_height: u64,
    /// Number of connected peers.
    pub peers: usize,
    pub is_validator: bool,
    pub validators: usize,
    pub mempool: usize,
    pub listen: Vec<String>,
    pub uptime_ms: u64,
    pub version: String,
    /// Set when another process runs with this node's key: what was seen.
    /// While set, this node signs no consensus message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_twin: Option<String>,
    /// Where consensus is, to explain a stall (none before it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusInfo>,
}

/// Where this node's consensus is: the height it works on, its round and
/// step, the validators it has heard nothing from in this round (by name
/// where known), how old the newest block is, and the height it is
/// syncing to when the network is ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusInfo {
    pub height: u64,
    pub round: u32,
    /// `propose`, `prevote`, `precommit`, `decided`, or `idle` (nothing to
    /// commit: the next height waits for a transaction or the heartbeat).
    pub step: String,
    /// Validators silent for longer than this round's propose timeout plus
    /// 1 s (stopped, cut off, or far behind); empty while idle.
    pub waiting_for: Vec<String>,
    pub newest_block_age_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncing_to: Option<u64>,
    /// How long the current height has been running (or, when idle,
    /// since the previous one started).
    #[serde(default)]
    pub height_age_ms: u64,
    /// The chain's block timing, as of the newest block.
    #[serde(default)]
    pub block_time_ms: u64,
    #[serde(default)]
    pub empty_block_interval_ms: u64,
    /// When idle: how soon the heartbeat (an empty block) is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_in_ms: Option<u64>,
}

/// One connected peer, from `peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub peer_id: String,
    pub account: Option<String>,
    pub name: Option<String>,
    pub role: Option<crate::identity::Role>,
    pub addrs: Vec<String>,
    pub rtt_ms: Option<u64>,
    /// Its gossipsub score as this node sees it (negative after it delivered
    /// messages this node rejected; below -80 its gossip is ignored).
    #[serde(default)]
    pub gossip_score: Option<f64>,
}

/// A block, summarised for people (`chain_head`, `chain_blocks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSummary {
    pub height: u64,
    pub hash: String,
    pub parent: String,
    pub time_ms: u64,
    pub proposer: String,
    pub round: u32,
    /// Validators whose precommit signatures are in the commit certificate.
    pub signers: Vec<String>,
    pub txs: Vec<TxSummary>,
}

/// A transaction, summarised for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxSummary {
    pub id: String,
    /// register_member, revoke_member, validator_vote, grant_consent, revoke_consent, record_anchor, key_session_audit, evidence
    pub kind: String,
    pub author: String,
    /// A one-line description ("grant consent to dr-okafor for phr until ...").
    pub detail: String,
}

/// A registered member (`chain_members`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub account: String,
    pub peer_id: String,
    pub name: String,
    pub role: crate::identity::Role,
    pub is_validator: bool,
}

/// A consent record on the chain (`chain_consent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentInfo {
    /// The patient's account (hex).
    pub patient: String,
    /// The patient's name in the node's contacts, if it has one.
    #[serde(default)]
    pub patient_name: Option<String>,
    /// The grantee's account (hex).
    pub grantee: String,
    pub grantee_name: Option<String>,
    pub scope: String,
    pub expires_at_ms: Option<u64>,
    pub active: bool,
}

/// An emergency (break-glass) declaration on the chain (`chain_emergencies`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmergencyInfo {
    pub patient: String,
    pub patient_name: Option<String>,
    /// The doctor or hospital that declared it (and may now receive the
    /// patient's records without consent).
    pub declarer: String,
    pub declarer_name: Option<String>,
    pub reason: String,
    /// The block that holds the declaration.
    pub height: u64,
    pub expires_at_ms: u64,
    /// Not expired at the node's clock.
    pub active: bool,
}

/// Result of `record_erase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureInfo {
    pub record_id: String,
    /// Whether this node's sent copy was erased.
    pub sent: bool,
    /// Whether this node's received copy was erased.
    pub received: bool,
    /// This node's forwards of the received copy, erased with it.
    #[serde(default)]
    pub forwards: Vec<String>,
    /// The erasure facts submitted to the chain (transaction ids).
    pub txs: Vec<String>,
}

/// One entry of the node's access log (`audit_log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntryInfo {
    pub seq: u64,
    pub time_ms: u64,
    /// Who: a user's name, or `owner` for the node's own cookie.
    pub user: String,
    /// What: e.g. `read`, `export`, `forward`, `erase`, `emergency`,
    /// `refused-credential`.
    pub action: String,
    pub record_id: Option<String>,
    pub detail: String,
    /// This entry's hash (hex), which the next entry chains to.
    pub hash: String,
}

/// Result of `audit_verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerifyReport {
    pub ok: bool,
    pub entries: u64,
    /// Entries covered by the latest anchor found on the chain.
    pub anchored_entries: u64,
    /// The first entry that fails, and why.
    pub failed_seq: Option<u64>,
    pub reason: Option<String>,
}

/// A person's role on a shared node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Everything, users included.
    Admin,
    /// Reads, sends, forwards, erases and declares emergencies.
    Clinician,
    /// Reads only.
    ReadOnly,
}

impl UserRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            UserRole::Admin => "admin",
            UserRole::Clinician => "clinician",
            UserRole::ReadOnly => "read_only",
        }
    }
}

impl std::str::FromStr for UserRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "admin" => Ok(UserRole::Admin),
            "clinician" => Ok(UserRole::Clinician),
            "read_only" | "readonly" => Ok(UserRole::ReadOnly),
            other => Err(format!(
                "role '{other}': expected admin, clinician or read-only"
            )),
        }
    }
}

/// A user of a shared node (`user_list`); never the credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub role: UserRole,
    pub created_ms: u64,
}

/// Result of `user_add`: the credential, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    pub name: String,
    pub role: UserRole,
    /// `<name>:<secret>`: what the person presents to log in.
    pub credential: String,
}

/// Result of `whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// A user's name, or `owner` for the node's cookie.
    pub user: String,
    pub role: UserRole,
    /// Seconds of inactivity after which a user's session locks (none for
    /// the cookie).
    pub idle_logoff_s: Option<u64>,
}

/// Result of `chain_verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub height: u64,
    pub blocks_verified: u64,
    pub txs_verified: u64,
    pub failed_height: Option<u64>,
    pub reason: Option<String>,
}

/// The phase of a key-agreement session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionPhase {
    Handshake,
    Transmitting,
    Sifting,
    Estimating,
    Correcting,
    Verifying,
    Amplifying,
    Done,
    Aborted,
}

/// A key-agreement session, live or finished (`key_sessions`, and
/// `Event::KeySession` details).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySessionInfo {
    pub session_id: String,
    pub peer: String,
    pub peer_name: Option<String>,
    pub started_ms: u64,
    pub phase: SessionPhase,
    pub qubits_sent: u64,
    pub sifted: u64,
    pub qber: Option<f64>,
    pub qber_upper_bound: Option<f64>,
    pub abort_threshold: f64,
    pub final_key_bits: u64,
    pub eve_detected: bool,
    pub abort_reason: Option<String>,
}

/// A key in the key store (`keys`); never the key material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub peer: String,
    pub peer_name: Option<String>,
    pub created_ms: u64,
    pub qber: f64,
    pub bits: u64,
    pub uses: u64,
    pub retired: bool,
}

/// The simulated quantum channel of a link (`link_get`, `link_set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkParams {
    pub peer: String,
    pub distance_km: f64,
    pub loss_db_per_km: f64,
    pub detector_efficiency: f64,
    pub dark_count_prob: f64,
    pub misalignment: f64,
    /// Fraction of qubits an intercept-resend eavesdropper attacks (0 = none).
    pub eve_fraction: f64,
}

/// Record kinds carried by messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKindName {
    Phr,
    Report,
}

/// Delivery state of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for a key or for the peer.
    Queued,
    /// Sent, waiting for a signed receipt.
    Sent,
    /// Receipt received.
    Delivered,
    /// Delivered and its hash anchored on the chain.
    Anchored,
    /// Refused by the recipient or by a rule (reason given).
    Failed,
    /// Received (inbox).
    Received,
    /// Erased by this node: its key is destroyed, the content is gone.
    Erased,
}

/// A message in the inbox or outbox (`inbox`, `outbox`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageInfo {
    pub record_id: String,
    pub kind: RecordKindName,
    pub from: String,
    pub from_name: Option<String>,
    pub to: String,
    pub to_name: Option<String>,
    pub created_ms: u64,
    pub state: DeliveryState,
    pub bytes: u64,
    pub anchor: Option<String>,
    pub detail: Option<String>,
}

/// A sent record and its proof of delivery (`outbox_show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxDetail {
    pub message: MessageInfo,
    /// The recipient's signed receipt, once delivered.
    pub receipt: Option<DeliveryProof>,
}

/// A recipient's signed receipt of a sent record, kept by the sender as
/// proof of delivery: the recipient's ed25519 signature over the record id,
/// the ciphertext's hash, both accounts and the time it stored the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryProof {
    pub recipient: String,
    pub recipient_name: Option<String>,
    pub received_at_ms: u64,
    /// `blake3(ciphertext)` in hex: the value the sender anchors on the chain.
    pub envelope_hash: String,
    /// The signature, hex.
    pub signature: String,
    /// Whether the signature verifies against the stored envelope now.
    pub verified: bool,
    /// Why it does not, if it does not.
    pub verify_error: Option<String>,
}

/// Parameters of `send`: the FHIR JSON itself, not a path (the node may run
/// elsewhere than the client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendParams {
    /// A member name, account (hex) or peer id.
    pub to: String,
    pub kind: RecordKindName,
    pub fhir_json: String,
    /// The patient the record is about, when it is not the sender (their own
    /// PHR) or the recipient (a report to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

/// Result of `record`: a stored record, decrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordContent {
    pub info: MessageInfo,
    pub fhir_json: String,
}

/// Parameters of `consent_grant` / `consent_revoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentParams {
    /// A member name, account (hex) or peer id.
    pub grantee: String,
    pub scope: String,
    pub expires_at_ms: Option<u64>,
}

/// Parameters of `tx_submit`: a chain transaction the node signs with its
/// own key and next nonce. Members are named by name, account or peer id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TxRequest {
    RegisterMember {
        member: String,
        role: crate::identity::Role,
    },
    RevokeMember {
        member: String,
    },
    AddValidator {
        member: String,
        power: u64,
    },
    RemoveValidator {
        member: String,
    },
    GrantConsent {
        grantee: String,
        scope: String,
        expires_at_ms: Option<u64>,
    },
    RevokeConsent {
        grantee: String,
        scope: String,
    },
    /// Break-glass: this node (a doctor or hospital) may receive the
    /// patient's records without consent for `duration_ms`.
    DeclareEmergency {
        patient: String,
        reason: String,
        duration_ms: u64,
    },
    /// A validator's vote to change the chain's block timing.
    SetBlockTiming {
        block_time_ms: u64,
        empty_block_interval_ms: u64,
    },
}

/// Result of `tx_submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSubmitted {
    pub id: String,
    pub nonce: u64,
}

/// Result of `chain_tx`: where a transaction is, if final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    pub id: String,
    pub pending: bool,
    pub height: Option<u64>,
    /// For a final governance vote: where its proposal stands now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalStatus>,
}

/// Where a governance proposal stands (admit a hospital, change a validator,
/// revoke a member another hospital registered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalStatus {
    /// What it does, for people.
    pub action: String,
    /// "pending", "passed" or "expired".
    pub state: String,
    /// Voting power of the validators that voted for it (while pending).
    pub voting_power: u64,
    /// The validators' total power; it passes above 2/3 of it.
    pub total_power: u64,
    /// The last height at which it can still pass (while pending).
    pub open_until_height: Option<u64>,
}

/// One log line kept by the node for `logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub time_ms: u64,
    pub level: String,
    pub line: String,
}

/// A call as data, for a client that makes its calls through a channel
/// (the TUI's `update` returns them; its bridge makes them). It serializes
/// as the JSON-RPC request it is, `{"method": .., "params": {..}}`, with the
/// parameters by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Call {
    Status,
    Peers,
    ChainMembers,
    ChainConsent,
    ChainVerify,
    ChainBlocks {
        from: Option<u64>,
        limit: Option<u64>,
    },
    KeySessions,
    Keys,
    KeyAgree {
        peer: String,
    },
    LinkGet {
        peer: String,
    },
    LinkSet {
        link: LinkParams,
    },
    Inbox,
    Outbox,
    Record {
        record_id: String,
    },
    Send(SendParams),
    ConsentGrant(ConsentParams),
    ConsentRevoke {
        grantee: String,
        scope: String,
    },
    Logs {
        limit: Option<u64>,
    },
    ChainEmergencies,
    RecordErase {
        record_id: String,
    },
}

impl Call {
    /// The JSON-RPC method it calls.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Status => method::STATUS,
            Call::Peers => method::PEERS,
            Call::ChainMembers => method::CHAIN_MEMBERS,
            Call::ChainConsent => method::CHAIN_CONSENT,
            Call::ChainVerify => method::CHAIN_VERIFY,
            Call::ChainBlocks { .. } => method::CHAIN_BLOCKS,
            Call::KeySessions => method::KEY_SESSIONS,
            Call::Keys => method::KEYS,
            Call::KeyAgree { .. } => method::KEY_AGREE,
            Call::LinkGet { .. } => method::LINK_GET,
            Call::LinkSet { .. } => method::LINK_SET,
            Call::Inbox => method::INBOX,
            Call::Outbox => method::OUTBOX,
            Call::Record { .. } => method::RECORD,
            Call::Send(_) => method::SEND,
            Call::ConsentGrant(_) => method::CONSENT_GRANT,
            Call::ConsentRevoke { .. } => method::CONSENT_REVOKE,
            Call::Logs { .. } => method::LOGS,
            Call::ChainEmergencies => method::CHAIN_EMERGENCIES,
            Call::RecordErase { .. } => method::RECORD_ERASE,
        }
    }
}

/// The typed answer to a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(NodeStatus),
    Peers(Vec<PeerSummary>),
    Members(Vec<MemberInfo>),
    Consents(Vec<ConsentInfo>),
    Verify(VerifyReport),
    Blocks(Vec<BlockSummary>),
    KeySessions(Vec<KeySessionInfo>),
    Keys(Vec<KeyInfo>),
    /// `key_agree` without waiting: started, no session yet.
    KeyAgree(Option<KeySessionInfo>),
    LinkGot(LinkParams),
    LinkSet(LinkParams),
    Inbox(Vec<MessageInfo>),
    Outbox(Vec<MessageInfo>),
    Record(RecordContent),
    Sent(MessageInfo),
    ConsentGranted(TxSubmitted),
    ConsentRevoked(TxSubmitted),
    Logs(Vec<LogLine>),
    Emergencies(Vec<EmergencyInfo>),
    Erased(ErasureInfo),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_serializes_as_its_json_rpc_request_with_named_params() {
        let c = Call::ChainBlocks {
            from: Some(9),
            limit: None,
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"method": "chain_blocks", "params": {"from": 9, "limit": null}})
        );
        assert_eq!(c.method(), method::CHAIN_BLOCKS);
        assert_eq!(
            serde_json::to_value(Call::Status).unwrap(),
            serde_json::json!({"method": "status"})
        );
        let link = serde_json::to_value(Call::LinkGet { peer: "p".into() }).unwrap();
        assert_eq!(
            link["method"].as_str(),
            Some(Call::LinkGet { peer: "p".into() }.method())
        );
    }

    #[test]
    fn events_are_tagged_and_know_their_topic() {
        let e = Event::Block {
            height: 3,
            hash: "ab".into(),
            txs: 1,
            proposer: "p".into(),
            time_ms: 9,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "block");
        assert_eq!(e.topic(), Topic::Blocks);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let m = Event::Message(MessageInfo {
            record_id: "r".into(),
            kind: RecordKindName::Phr,
            from: "a".into(),
            from_name: None,
            to: "b".into(),
            to_name: Some("bob".into()),
            created_ms: 1,
            state: DeliveryState::Delivered,
            bytes: 10,
            anchor: None,
            detail: None,
        });
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["state"].as_str()),
            (Some("message"), Some("delivered"))
        );
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), m);
        assert_eq!(m.topic(), Topic::Messages);
        let t: Topic = serde_json::from_str("\"key_sessions\"").unwrap();
        assert_eq!(t, Topic::KeySessions);
    }
}
