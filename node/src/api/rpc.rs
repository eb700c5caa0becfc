//! The control API as one typed trait: the node implements the generated
//! `QwardApiServer`, and the CLI, the TUI's bridge, the tests and the
//! benchmarks call it through the generated `QwardApiClient` (implemented for
//! [`super::ApiClient`]). Method names, parameters and results are checked by
//! the compiler on both ends; the wire stays JSON-RPC 2.0, so `curl` and any
//! other client speak it too.
//!
//! Parameters may be sent by position (`"params": [5]`) or by name
//! (`"params": {"height": 5}`); optional ones may be left out.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use qward_core::api::{
    AccessEntryInfo, AuditVerifyReport, BlockSummary, ConsentInfo, EmergencyInfo, ErasureInfo,
    Event, KeyInfo, KeySessionInfo, LinkParams, LogLine, MemberInfo, MessageInfo, NodeStatus,
    OutboxDetail, PeerSummary, Principal, RecordContent, RecordKindName, Topic, TxRequest,
    TxStatus, TxSubmitted, UserCreated, UserInfo, UserRole, VerifyReport,
};

/// Every method of a node's control API.
#[rpc(server, client)]
pub trait QwardApi {
    /// The node at a glance.
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<NodeStatus>;

    /// The connected peers.
    #[method(name = "peers")]
    async fn peers(&self) -> RpcResult<Vec<PeerSummary>>;

    /// Signs a chain transaction with this node's key and next nonce, and
    /// submits it.
    #[method(name = "tx_submit")]
    async fn tx_submit(&self, tx: TxRequest) -> RpcResult<TxSubmitted>;

    /// Where a transaction is (pending, final at a height, or unknown).
    #[method(name = "chain_tx")]
    async fn chain_tx(&self, id: String) -> RpcResult<TxStatus>;

    /// The newest block (none before the first).
    #[method(name = "chain_head")]
    async fn chain_head(&self) -> RpcResult<Option<BlockSummary>>;

    /// The block at `height`.
    #[method(name = "chain_block")]
    async fn chain_block(&self, height: u64) -> RpcResult<BlockSummary>;

    /// Blocks from `from` (default: the newest) downwards, at most `limit`
    /// (default 50, at most 500).
    #[method(name = "chain_blocks")]
    async fn chain_blocks(
        &self,
        from: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<BlockSummary>>;

    /// The active members.
    #[method(name = "chain_members")]
    async fn chain_members(&self) -> RpcResult<Vec<MemberInfo>>;

    /// Every consent on the chain.
    #[method(name = "chain_consent")]
    async fn chain_consent(&self) -> RpcResult<Vec<ConsentInfo>>;

    /// Verifies this node's chain from genesis, as an auditor does.
    #[method(name = "chain_verify")]
    async fn chain_verify(&self) -> RpcResult<VerifyReport>;

    /// The newest log lines, at most `limit` (default 50, at most 2,000).
    #[method(name = "logs")]
    async fn logs(&self, limit: Option<u64>) -> RpcResult<Vec<LogLine>>;

    /// The agreed keys (never their bytes).
    #[method(name = "keys")]
    async fn keys(&self) -> RpcResult<Vec<KeyInfo>>;

    /// Recent key-agreement sessions.
    #[method(name = "key_sessions")]
    async fn key_sessions(&self) -> RpcResult<Vec<KeySessionInfo>>;

    /// Starts a key agreement with `peer`; with `wait`, answers its outcome
    /// when it is over, otherwise none at once.
    #[method(name = "key_agree")]
    async fn key_agree(
        &self,
        peer: String,
        wait: Option<bool>,
    ) -> RpcResult<Option<KeySessionInfo>>;

    /// The simulated quantum channel to `peer`.
    #[method(name = "link_get")]
    async fn link_get(&self, peer: String) -> RpcResult<LinkParams>;

    /// Changes the simulated quantum channel to `link.peer`; answers it as set.
    #[method(name = "link_set")]
    async fn link_set(&self, link: LinkParams) -> RpcResult<LinkParams>;

    /// Queues a FHIR record for `to`; `patient` when the record is about
    /// someone else than the sender or the recipient.
    #[method(name = "send")]
    async fn send(
        &self,
        to: String,
        kind: RecordKindName,
        fhir_json: String,
        patient: Option<String>,
    ) -> RpcResult<MessageInfo>;

    /// Forwards a received PHR to a doctor.
    #[method(name = "forward", with_extensions)]
    async fn forward(&self, record_id: String, to: String) -> RpcResult<MessageInfo>;

    /// Received records.
    #[method(name = "inbox")]
    async fn inbox(&self) -> RpcResult<Vec<MessageInfo>>;

    /// Sent records and their delivery state.
    #[method(name = "outbox")]
    async fn outbox(&self) -> RpcResult<Vec<MessageInfo>>;

    /// A sent record with its recipient's signed receipt, checked again.
    #[method(name = "outbox_show")]
    async fn outbox_show(&self, record_id: String) -> RpcResult<OutboxDetail>;

    /// A stored record, decrypted (received or sent). Leaves an entry naming
    /// the caller in the access log; `purpose` (`read`, the default, or
    /// `export`) says what the caller does with it.
    #[method(name = "record", with_extensions)]
    async fn record(&self, record_id: String, purpose: Option<String>) -> RpcResult<RecordContent>;

    /// Erases this node's copies of a record (crypto-shredding: its key is
    /// destroyed and forced out of the database files) and puts the erasure
    /// on the chain.
    #[method(name = "record_erase", with_extensions)]
    async fn record_erase(&self, record_id: String) -> RpcResult<ErasureInfo>;

    /// A patient asks `holder` (a member's name or account) to erase its
    /// copy of the record `record_id` of this node's (one it sent or
    /// received): a `request-erasure` on the chain, which the holder's node
    /// acts on.
    #[method(name = "record_erase_request", with_extensions)]
    async fn record_erase_request(
        &self,
        record_id: String,
        holder: String,
    ) -> RpcResult<TxSubmitted>;

    /// Break-glass: declares on the chain an emergency that lets this node
    /// (a doctor or hospital) receive `patient`'s records without consent
    /// for `duration_ms` (at most a day); answers once the declaration is
    /// submitted (it counts from the block that holds it).
    #[method(name = "emergency_declare", with_extensions)]
    async fn emergency_declare(
        &self,
        patient: String,
        reason: String,
        duration_ms: u64,
    ) -> RpcResult<TxSubmitted>;

    /// The emergency declarations on the chain, newest first: the latest
    /// per patient and declarer, or with `all` every one ever made (read
    /// from every block).
    #[method(name = "chain_emergencies")]
    async fn chain_emergencies(&self, all: Option<bool>) -> RpcResult<Vec<EmergencyInfo>>;

    /// The access log, oldest first from entry `from` (default 0), at most
    /// `limit` entries (default 200, at most 5000).
    #[method(name = "audit_log")]
    async fn audit_log(
        &self,
        from: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<AccessEntryInfo>>;

    /// Re-checks the whole access log: each entry's hash, the chain of
    /// hashes, the sequence, the head, and the latest anchor on the chain.
    #[method(name = "audit_verify")]
    async fn audit_verify(&self) -> RpcResult<AuditVerifyReport>;

    /// Adds a user with `role` (admin, clinician or read_only); the answer
    /// holds the credential, shown this once.
    #[method(name = "user_add", with_extensions)]
    async fn user_add(&self, name: String, role: UserRole) -> RpcResult<UserCreated>;

    /// The node's users (never their credentials).
    #[method(name = "user_list")]
    async fn user_list(&self) -> RpcResult<Vec<UserInfo>>;

    /// Removes a user; their sessions end at once.
    #[method(name = "user_remove", with_extensions)]
    async fn user_remove(&self, name: String) -> RpcResult<bool>;

    /// Who the caller is to this node.
    #[method(name = "whoami", with_extensions)]
    async fn whoami(&self) -> RpcResult<Principal>;

    /// Grants `grantee` consent for `scope` (records, reports or all) until
    /// `expires_at_ms` (default: a year).
    #[method(name = "consent_grant")]
    async fn consent_grant(
        &self,
        grantee: String,
        scope: String,
        expires_at_ms: Option<u64>,
    ) -> RpcResult<TxSubmitted>;

    /// Revokes a consent.
    #[method(name = "consent_revoke")]
    async fn consent_revoke(&self, grantee: String, scope: String) -> RpcResult<TxSubmitted>;

    /// Stops the node.
    #[method(name = "shutdown")]
    async fn shutdown(&self) -> RpcResult<bool>;

    /// The node's events of these topics, as `event` notifications until
    /// `unsubscribe` or the connection closes (WebSocket only). (`events` in
    /// Rust: `subscribe` is the client library's own method.)
    #[subscription(name = "subscribe" => "event", unsubscribe = "unsubscribe", item = Event, with_extensions)]
    async fn events(&self, topics: Vec<Topic>) -> SubscriptionResult;

    /// ETSI GS QKD 014 `status` for `qward kme serve`: the key stream
    /// between `caller` (an SAE of this node's KME) and `slave`.
    #[method(name = "kme_status")]
    async fn kme_status(
        &self,
        caller: String,
        slave: String,
    ) -> RpcResult<qward_core::etsi014::Status>;

    /// ETSI GS QKD 014 `enc_keys`: runs a key agreement with the node of
    /// `slave` and answers `number` keys of `size` bits for `caller`.
    #[method(name = "kme_enc_keys")]
    async fn kme_enc_keys(
        &self,
        caller: String,
        slave: String,
        number: u32,
        size: u32,
    ) -> RpcResult<qward_core::etsi014::KeyContainer>;

    /// ETSI GS QKD 014 `dec_keys`: the keys `master` was given under
    /// `key_ids`, for `caller` (the slave), all or none, each once.
    #[method(name = "kme_dec_keys")]
    async fn kme_dec_keys(
        &self,
        caller: String,
        master: String,
        key_ids: Vec<String>,
    ) -> RpcResult<qward_core::etsi014::KeyContainer>;
}
