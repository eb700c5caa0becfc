//! The node's answers to control-API methods (status, peers, transactions,
//! chain queries, verify, logs, shutdown).

use qward_core::api::{
    BlockSummary, ConsentInfo, ConsentParams, DeliveryProof, ForwardParams, KeyAgreeParams,
    KeyInfo, LinkParams, MemberInfo, NodeStatus, OutboxDetail, PeerSummary, RecordContent,
    RecordKindName, RpcError, SendParams, TxRequest, TxStatus, TxSubmitted, TxSummary,
    VerifyReport, method,
};
use qward_core::chain::{ChainStore, CommittedBlock, ConsentGrant, ConsentScope, Hash, TxKind};
use qward_core::envelope::{RecordId, RecordKind};
use qward_core::identity::AccountId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::context::{Ctx, now_ms};
use super::driver::submit_own_with_nonce;
use super::messages::{self, outbox};
use crate::api::{Handler, HandlerFuture};

/// The control-API handler of a running node.
#[derive(Debug)]
pub struct RpcHandler {
    ctx: Ctx,
}

impl RpcHandler {
    pub fn new(ctx: Ctx) -> Self {
        RpcHandler { ctx }
    }
}

fn params<T: DeserializeOwned>(v: Value) -> Result<T, RpcError> {
    serde_json::from_value(v).map_err(|e| RpcError::invalid_params(e.to_string()))
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::internal(e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

#[derive(Deserialize)]
struct HeightParam {
    height: u64,
}

#[derive(Deserialize)]
struct RangeParam {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default = "default_limit")]
    limit: u64,
}

#[derive(Deserialize)]
struct IdParam {
    id: String,
}

#[derive(Deserialize)]
struct PeerParam {
    peer: String,
}

#[derive(Deserialize)]
struct RecordParam {
    record_id: String,
}

#[derive(Deserialize)]
struct LimitParam {
    #[serde(default = "default_limit")]
    limit: u64,
}

fn default_limit() -> u64 {
    50
}

impl Handler for RpcHandler {
    fn call<'a>(&'a self, m: &'a str, p: Value) -> HandlerFuture<'a> {
        Box::pin(async move {
            let ctx = &self.ctx;
            match m {
                method::STATUS => to_value(status(ctx)),
                method::PEERS => to_value(peers(ctx).await?),
                method::TX_SUBMIT => submit(ctx, params(p)?).await,
                method::CHAIN_TX => {
                    let IdParam { id } = params(p)?;
                    let hash = Hash::from_hex(&id)
                        .ok_or_else(|| RpcError::invalid_params("id must be 64 hex digits"))?;
                    let found = ChainStore::new(&*ctx.store)
                        .transaction(&hash)
                        .map_err(internal)?;
                    let pending = found.is_none() && ctx.mempool().contains(&hash);
                    let proposal = found.as_ref().and_then(|(_, stx)| {
                        let view = ctx.view();
                        let action = view.state.governance_action(&stx.tx)?;
                        Some(view.state.proposal_status(&action))
                    });
                    to_value(TxStatus {
                        id,
                        pending,
                        height: found.map(|(loc, _)| loc.height),
                        proposal,
                    })
                }
                method::CHAIN_HEAD => {
                    let height = ctx.view().tip.height;
                    to_value(block_summary(ctx, height)?)
                }
                method::CHAIN_BLOCK => {
                    let HeightParam { height } = params(p)?;
                    match block_summary(ctx, height)? {
                        Some(b) => to_value(b),
                        None => Err(RpcError::refused(format!("no block at height {height}"))),
                    }
                }
                method::CHAIN_BLOCKS => {
                    let RangeParam { from, limit } =
                        params(if p.is_null() { json!({}) } else { p })?;
                    let tip = ctx.view().tip.height;
                    let top = from.unwrap_or(tip).min(tip);
                    let mut out = Vec::new();
                    let mut h = top;
                    while h >= 1 && (out.len() as u64) < limit.min(500) {
                        if let Some(b) = block_summary(ctx, h)? {
                            out.push(b);
                        }
                        h -= 1;
                    }
                    to_value(out)
                }
                method::CHAIN_MEMBERS => to_value(members(ctx)),
                method::CHAIN_CONSENT => to_value(consents(ctx)),
                method::CHAIN_VERIFY => {
                    let store = ctx.store.clone();
                    let report = tokio::task::spawn_blocking(move || {
                        ChainStore::new(&*store).verify_chain()
                    })
                    .await
                    .map_err(internal)?;
                    to_value(VerifyReport {
                        ok: report.ok,
                        height: report.height,
                        blocks_verified: report.blocks_verified,
                        txs_verified: report.txs_verified,
                        failed_height: report.failed_height,
                        reason: report.reason,
                    })
                }
                method::LOGS => {
                    let LimitParam { limit } = params(if p.is_null() { json!({}) } else { p })?;
                    to_value(crate::logging::buffer().recent(limit.min(2000) as usize))
                }
                method::SHUTDOWN => {
                    ctx.request_shutdown();
                    Ok(Value::Bool(true))
                }
                method::CONSENT_GRANT | method::CONSENT_REVOKE => {
                    let c: ConsentParams = params(p)?;
                    let req = if m == method::CONSENT_GRANT {
                        TxRequest::GrantConsent {
                            grantee: c.grantee,
                            scope: c.scope,
                            expires_at_ms: c.expires_at_ms,
                        }
                    } else {
                        TxRequest::RevokeConsent {
                            grantee: c.grantee,
                            scope: c.scope,
                        }
                    };
                    submit(ctx, req).await
                }
                method::KEYS => to_value(keys(ctx)),
                method::KEY_SESSIONS => to_value(ctx.agree.recent()),
                method::KEY_AGREE => {
                    let KeyAgreeParams { peer, wait } = params(p)?;
                    let peer = resolve(ctx, &peer)?;
                    if ctx.view().state.role_of(&peer).is_none() {
                        return Err(RpcError::refused("that account is not a member"));
                    }
                    if wait {
                        let info = super::agree::agree(ctx, peer)
                            .await
                            .map_err(|e| RpcError::refused(e.to_string()))?;
                        to_value(info)
                    } else {
                        let ctx = ctx.clone();
                        tokio::spawn(async move {
                            if let Err(e) = super::agree::agree(&ctx, peer).await {
                                tracing::warn!("{e}");
                            }
                        });
                        Ok(json!({ "started": true }))
                    }
                }
                method::LINK_GET => {
                    let PeerParam { peer } = params(p)?;
                    let account = resolve(ctx, &peer)?;
                    to_value(super::agree::link_params(ctx, &account, peer))
                }
                method::LINK_SET => {
                    let link: LinkParams = params(p)?;
                    let account = resolve(ctx, &link.peer)?;
                    super::agree::set_link(ctx, account, &link)
                        .map_err(RpcError::invalid_params)?;
                    to_value(super::agree::link_params(ctx, &account, link.peer))
                }
                method::SEND => {
                    let s: SendParams = params(p)?;
                    let to = resolve(ctx, &s.to)?;
                    let patient = s.patient.as_deref().map(|p| resolve(ctx, p)).transpose()?;
                    let kind = match s.kind {
                        RecordKindName::Phr => RecordKind::Phr,
                        RecordKindName::Report => RecordKind::Report,
                    };
                    let ctx2 = ctx.clone();
                    let entry = tokio::task::spawn_blocking(move || {
                        outbox::send(&ctx2, to, kind, s.fhir_json.as_bytes(), patient)
                    })
                    .await
                    .map_err(internal)?
                    .map_err(send_error)?;
                    to_value(messages::outbox_info(ctx, &entry))
                }
                method::FORWARD => {
                    let f: ForwardParams = params(p)?;
                    let record = record_id(&f.record_id)?;
                    let to = resolve(ctx, &f.to)?;
                    let entry = outbox::forward(ctx, &record, to).map_err(send_error)?;
                    to_value(messages::outbox_info(ctx, &entry))
                }
                method::INBOX => {
                    let list = messages::inbox_entries(&ctx.store).map_err(internal)?;
                    to_value(
                        list.iter()
                            .map(|e| messages::inbox_info(ctx, e))
                            .collect::<Vec<_>>(),
                    )
                }
                method::OUTBOX => {
                    let list = messages::outbox_entries(&ctx.store).map_err(internal)?;
                    to_value(
                        list.iter()
                            .map(|e| messages::outbox_info(ctx, e))
                            .collect::<Vec<_>>(),
                    )
                }
                method::OUTBOX_SHOW => {
                    let RecordParam { record_id: id } = params(p)?;
                    to_value(outbox_detail(ctx, &record_id(&id)?)?)
                }
                method::RECORD => {
                    let RecordParam { record_id: id } = params(p)?;
                    let record = record_id(&id)?;
                    to_value(record_content(ctx, &record)?)
                }
                other => Err(RpcError::new(
                    RpcError::METHOD_NOT_FOUND,
                    format!("unknown method '{other}'"),
                )),
            }
        })
    }
}

/// Signs and submits a transaction of this node's own; answers its id and nonce.
async fn submit(ctx: &Ctx, req: TxRequest) -> Result<Value, RpcError> {
    let kind = tx_kind(ctx, req)?;
    let (id, nonce) = submit_own_with_nonce(ctx, kind)
        .await
        .map_err(|e| RpcError::refused(e.to_string()))?;
    to_value(TxSubmitted {
        id: id.to_hex(),
        nonce,
    })
}

fn status(ctx: &Ctx) -> NodeStatus {
    let v = ctx.view();
    NodeStatus {
        name: ctx.config.name.clone(),
        peer_id: ctx.peer_id.to_string(),
        account: ctx.account.to_hex(),
        role: ctx.config.role,
        chain_id: format!("{} ({})", v.genesis.network, v.state.chain_id),
        height: v.tip.height,
        finalized_height: v.tip.height,
        peers: ctx.metrics.peers.load(std::sync::atomic::Ordering::Relaxed) as usize,
        is_validator: v.state.validators.contains(&ctx.account),
        validators: v.state.validators.len(),
        mempool: ctx.mempool().len(),
        listen: ctx
            .listen
            .read()
            .map(|l| l.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        uptime_ms: ctx.started.elapsed().as_millis() as u64,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

async fn peers(ctx: &Ctx) -> Result<Vec<PeerSummary>, RpcError> {
    let peers = ctx.net.peers().await.map_err(internal)?;
    let state_roles = {
        let v = ctx.view();
        peers
            .iter()
            .map(|p| {
                crate::net::account_from_peer_id(&p.peer_id)
                    .and_then(|a| v.state.role_of(&a).map(|r| (a, r)))
            })
            .collect::<Vec<_>>()
    };
    Ok(peers
        .into_iter()
        .zip(state_roles)
        .map(|(p, acct)| PeerSummary {
            peer_id: p.peer_id.to_string(),
            account: acct.map(|(a, _)| a.to_hex()),
            name: acct.and_then(|(a, _)| ctx.contacts.name_of(&a).map(str::to_string)),
            role: acct.map(|(_, r)| r),
            addrs: p.addrs.iter().map(ToString::to_string).collect(),
            rtt_ms: p.rtt_ms,
            gossip_score: p.gossip_score,
        })
        .collect())
}

fn resolve(ctx: &Ctx, who: &str) -> Result<AccountId, RpcError> {
    ctx.contacts
        .resolve(who)
        .map_err(|e| RpcError::invalid_params(e.to_string()))
}

fn scope(s: &str) -> Result<ConsentScope, RpcError> {
    match s.to_ascii_lowercase().as_str() {
        "records" | "phr" => Ok(ConsentScope::Records),
        "reports" | "report" => Ok(ConsentScope::Reports),
        "all" => Ok(ConsentScope::All),
        other => Err(RpcError::invalid_params(format!(
            "scope '{other}': expected records, reports or all"
        ))),
    }
}

/// Turns a request into the transaction body, resolving names.
pub fn tx_kind(ctx: &Ctx, req: TxRequest) -> Result<TxKind, RpcError> {
    Ok(match req {
        TxRequest::RegisterMember { member, role } => TxKind::RegisterMember {
            account: resolve(ctx, &member)?,
            role,
        },
        TxRequest::RevokeMember { member } => TxKind::RevokeMember {
            account: resolve(ctx, &member)?,
        },
        TxRequest::AddValidator { member, power } => TxKind::AddValidator {
            account: resolve(ctx, &member)?,
            power,
        },
        TxRequest::RemoveValidator { member } => TxKind::RemoveValidator {
            account: resolve(ctx, &member)?,
        },
        TxRequest::GrantConsent {
            grantee,
            scope: s,
            expires_at_ms,
        } => TxKind::GrantConsent(ConsentGrant {
            grantee: resolve(ctx, &grantee)?,
            scope: scope(&s)?,
            expires_at_ms: expires_at_ms.unwrap_or(now_ms() + 365 * 24 * 3600 * 1000),
        }),
        TxRequest::RevokeConsent { grantee, scope: s } => TxKind::RevokeConsent {
            grantee: resolve(ctx, &grantee)?,
            scope: scope(&s)?,
        },
    })
}

fn name(ctx: &Ctx, a: &AccountId) -> String {
    super::dispatch::account_label(ctx, a)
}

/// A one-line description of a transaction for people.
pub fn describe(ctx: &Ctx, kind: &TxKind) -> String {
    match kind {
        TxKind::RegisterMember { account, role } => {
            format!("register {} as {role}", name(ctx, account))
        }
        TxKind::RevokeMember { account } => format!("revoke member {}", name(ctx, account)),
        TxKind::AddValidator { account, power } => format!(
            "vote to add validator {} (power {power})",
            name(ctx, account)
        ),
        TxKind::RemoveValidator { account } => {
            format!("vote to remove validator {}", name(ctx, account))
        }
        TxKind::GrantConsent(g) => format!(
            "grant {} consent for {} until {} UTC",
            name(ctx, &g.grantee),
            g.scope.as_str(),
            qward_tui::view::widgets::date(g.expires_at_ms)
        ),
        TxKind::RevokeConsent { grantee, scope } => format!(
            "revoke {}'s consent for {}",
            name(ctx, grantee),
            scope.as_str()
        ),
        TxKind::AnchorRecord(a) => format!(
            "anchor record {} delivered to {}",
            a.record_id.short(),
            name(ctx, &a.recipient)
        ),
        TxKind::AuditKeySession(a) => format!(
            "key session {} between {} and {}: {:?}, QBER {:.2}%, {} key bits",
            a.session_id.short(),
            name(ctx, &a.peer_a),
            name(ctx, &a.peer_b),
            a.outcome,
            f64::from(a.qber_ppm) / 10_000.0,
            a.key_length_bits
        ),
        TxKind::SubmitEvidence(e) => format!(
            "evidence: {} equivocated at height {}",
            name(ctx, &e.offender()),
            e.height()
        ),
    }
}

fn block_summary(ctx: &Ctx, height: u64) -> Result<Option<BlockSummary>, RpcError> {
    if height == 0 {
        return Ok(None);
    }
    let Some(CommittedBlock { block, cert }) = ChainStore::new(&*ctx.store)
        .block(height)
        .map_err(internal)?
    else {
        return Ok(None);
    };
    Ok(Some(BlockSummary {
        height,
        hash: block.hash().to_hex(),
        parent: block.header.parent_hash.to_hex(),
        time_ms: block.header.time_ms,
        proposer: name(ctx, &block.header.proposer),
        round: block.header.round,
        signers: cert.sigs.iter().map(|s| name(ctx, &s.validator)).collect(),
        txs: block
            .txs
            .iter()
            .map(|t| TxSummary {
                id: t.id().to_hex(),
                kind: t.tx.kind.name().to_string(),
                author: name(ctx, &t.tx.author),
                detail: describe(ctx, &t.tx.kind),
            })
            .collect(),
    }))
}

fn members(ctx: &Ctx) -> Vec<MemberInfo> {
    let v = ctx.view();
    v.state
        .members
        .iter()
        .filter(|(_, m)| m.active)
        .map(|(a, m)| MemberInfo {
            account: a.to_hex(),
            peer_id: crate::net::peer_id_from_account(a)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            name: name(ctx, a),
            role: m.role,
            is_validator: v.state.validators.contains(a),
        })
        .collect()
}

fn consents(ctx: &Ctx) -> Vec<ConsentInfo> {
    let v = ctx.view();
    let now = now_ms();
    v.state
        .consents
        .iter()
        .map(|((patient, grantee, scope), exp)| ConsentInfo {
            patient: patient.to_hex(),
            patient_name: ctx.contacts.name_of(patient).map(str::to_string),
            grantee: grantee.to_hex(),
            grantee_name: ctx.contacts.name_of(grantee).map(str::to_string),
            scope: scope.as_str().to_string(),
            expires_at_ms: Some(*exp),
            active: *exp > now,
        })
        .collect()
}

/// A sent record and its receipt, checked again against the stored envelope.
fn outbox_detail(ctx: &Ctx, record: &RecordId) -> Result<OutboxDetail, RpcError> {
    let entry = messages::outbox_entry(&ctx.store, record)
        .map_err(internal)?
        .ok_or_else(|| RpcError::invalid_params(format!("no sent record {record}")))?;
    let receipt = messages::outbox_receipt(&ctx.store, record).map_err(internal)?;
    let envelope = messages::outbox_envelope(&ctx.store, record).map_err(internal)?;
    let receipt = receipt.map(|r| {
        let checked = match &envelope {
            Some(env) => r.verify(env),
            None => r.verify_signature(),
        };
        DeliveryProof {
            recipient: r.recipient.to_hex(),
            recipient_name: ctx.contacts.name_of(&r.recipient).map(str::to_string),
            received_at_ms: r.received_at_ms,
            envelope_hash: hex::encode(r.envelope_hash),
            signature: hex::encode(r.signature.0),
            verified: checked.is_ok(),
            verify_error: checked.err().map(|e| e.to_string()),
        }
    });
    Ok(OutboxDetail {
        message: messages::outbox_info(ctx, &entry),
        receipt,
    })
}

fn record_id(s: &str) -> Result<RecordId, RpcError> {
    RecordId::from_hex(s.trim()).ok_or_else(|| {
        RpcError::invalid_params(format!("'{s}' is not a record id (32 hex digits)"))
    })
}

fn send_error(e: outbox::SendError) -> RpcError {
    match e {
        outbox::SendError::Invalid(m) => RpcError::invalid_params(m),
        outbox::SendError::Refused(m) => RpcError::refused(m),
        outbox::SendError::Internal(e) => RpcError::internal(format!("{e:#}")),
    }
}

fn keys(ctx: &Ctx) -> Vec<KeyInfo> {
    let policy = ctx.config.key_agreement.rotation();
    let now = now_ms();
    let mut out: Vec<KeyInfo> = ctx
        .keys
        .records()
        .into_iter()
        .map(|r| KeyInfo {
            key_id: r.key_id.to_hex(),
            peer: r.peer.to_hex(),
            peer_name: ctx.contacts.name_of(&r.peer).map(str::to_string),
            created_ms: r.created_at_ms,
            qber: r.qber,
            bits: u64::from(r.key_bits),
            uses: r.uses,
            retired: !policy.is_fresh(&r, now),
        })
        .collect();
    out.sort_by_key(|k| std::cmp::Reverse(k.created_ms));
    out
}

/// A stored record, decrypted: received (inbox) or sent (outbox).
fn record_content(ctx: &Ctx, record: &RecordId) -> Result<RecordContent, RpcError> {
    if let Some(entry) = messages::find_inbox(&ctx.store, record).map_err(internal)? {
        let bytes = messages::inbox::plaintext(ctx, &entry)
            .map_err(|e| RpcError::refused(format!("{e:#}")))?;
        return Ok(RecordContent {
            info: messages::inbox_info(ctx, &entry),
            fhir_json: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    if let Some(entry) = messages::outbox_entry(&ctx.store, record).map_err(internal)? {
        let bytes = messages::outbox::plaintext(ctx, &entry)
            .map_err(|e| RpcError::refused(format!("{e:#}")))?;
        return Ok(RecordContent {
            info: messages::outbox_info(ctx, &entry),
            fhir_json: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Err(RpcError::refused(format!(
        "no record {record} in the inbox or outbox"
    )))
}
