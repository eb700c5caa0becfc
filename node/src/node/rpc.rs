//! The node's answers to the control API: the implementation of the typed
//! `QwardApiServer` trait (status, peers, transactions, chain queries,
//! verify, logs, keys, messaging, consent, shutdown, event subscriptions).

use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::server::PendingSubscriptionSink;
use jsonrpsee::types::ErrorObjectOwned;
use qward_core::api::{
    AccessEntryInfo, AuditVerifyReport, BlockSummary, ConsensusInfo, ConsentInfo, DeliveryProof,
    EmergencyInfo, ErasureInfo, Event, KeyInfo, KeySessionInfo, LinkParams, LogLine, MemberInfo,
    MessageInfo, NodeStatus, OutboxDetail, PeerSummary, Principal, RecordContent, RecordKindName,
    RpcError, Topic, TxRequest, TxStatus, TxSubmitted, TxSummary, UserCreated, UserInfo, UserRole,
    VerifyReport,
};
use qward_core::chain::{
    ChainStore, CommittedBlock, ConsentGrant, ConsentScope, EmergencyAccess, Hash,
    MAX_EMERGENCY_MS, TxKind,
};
use qward_core::envelope::{RecordId, RecordKind};
use qward_core::identity::AccountId;

use std::sync::Arc;

use jsonrpsee::Extensions;

use super::clock::now_ms;
use super::context::Ctx;
use super::guarded::{self, caller_of};
use super::messages::{self, outbox};
use crate::api::QwardApiServer;
use crate::api::auth::Auth;

/// The control-API handler of a running node.
#[derive(Debug)]
pub struct RpcHandler {
    ctx: Ctx,
    auth: Arc<Auth>,
    /// Held while a `chain_verify` runs: one at a time, so callers cannot
    /// stack whole-chain verifications on the node's cores.
    verifying: Arc<tokio::sync::Mutex<()>>,
}

impl RpcHandler {
    pub fn new(ctx: Ctx, auth: Arc<Auth>) -> Self {
        RpcHandler {
            ctx,
            auth,
            verifying: Arc::default(),
        }
    }
}

/// How often a running `chain_verify` reports its progress, at most.
const VERIFY_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A refusal or failure as the JSON-RPC error object it is sent as.
fn rpc(e: RpcError) -> ErrorObjectOwned {
    let code = i32::try_from(e.code).unwrap_or(RpcError::INTERNAL as i32);
    ErrorObjectOwned::owned(code, e.message, None::<()>)
}

/// A session that ran and found no key is a refusal; one that could not
/// run is a failure of this node's.
fn key_error(e: super::agree::KeyUnavailable) -> RpcError {
    match e {
        super::agree::KeyUnavailable::Aborted { .. } => RpcError::refused(e.to_string()),
        super::agree::KeyUnavailable::Failed { .. } => RpcError::unavailable(e.to_string()),
    }
}

fn stopping() -> ErrorObjectOwned {
    rpc(RpcError::unavailable("the node is stopping"))
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(e.to_string())
}

/// Rows in one `chain_blocks` answer, by default and at most.
const DEFAULT_LIMIT: u64 = 50;
const MAX_BLOCKS: u64 = 500;
/// Log lines in one `logs` answer, at most.
const MAX_LOG_LINES: u64 = 2000;

#[async_trait]
impl QwardApiServer for RpcHandler {
    async fn status(&self) -> RpcResult<NodeStatus> {
        Ok(status(&self.ctx))
    }

    async fn peers(&self) -> RpcResult<Vec<PeerSummary>> {
        peers(&self.ctx).await.map_err(rpc)
    }

    async fn tx_submit(&self, tx: TxRequest) -> RpcResult<TxSubmitted> {
        if matches!(tx, TxRequest::DeclareEmergency { .. }) {
            return Err(rpc(RpcError::invalid_params(
                "declare an emergency with emergency_declare, which writes it to the access log",
            )));
        }
        submit(&self.ctx, tx).await.map_err(rpc)
    }

    async fn chain_tx(&self, id: String) -> RpcResult<TxStatus> {
        let ctx = &self.ctx;
        let hash = Hash::from_hex(&id)
            .ok_or_else(|| rpc(RpcError::invalid_params("id must be 64 hex digits")))?;
        let found = ChainStore::new(&*ctx.store)
            .transaction(&hash)
            .map_err(|e| rpc(internal(e)))?;
        let pending = found.is_none() && ctx.pool.contains(hash).await;
        let proposal = found.as_ref().and_then(|(_, stx)| {
            let view = ctx.view();
            let action = view.state.governance_action(&stx.tx)?;
            Some(view.state.proposal_status(&action))
        });
        Ok(TxStatus {
            id,
            pending,
            height: found.map(|(loc, _)| loc.height),
            proposal,
        })
    }

    async fn chain_head(&self) -> RpcResult<Option<BlockSummary>> {
        let height = self.ctx.view().tip.height;
        block_summary(&self.ctx, height).map_err(rpc)
    }

    async fn chain_block(&self, height: u64) -> RpcResult<BlockSummary> {
        block_summary(&self.ctx, height)
            .map_err(rpc)?
            .ok_or_else(|| rpc(RpcError::refused(format!("no block at height {height}"))))
    }

    async fn chain_blocks(
        &self,
        from: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<BlockSummary>> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_BLOCKS);
        let tip = self.ctx.view().tip.height;
        let mut out = Vec::new();
        let mut h = from.unwrap_or(tip).min(tip);
        while h >= 1 && (out.len() as u64) < limit {
            if let Some(b) = block_summary(&self.ctx, h).map_err(rpc)? {
                out.push(b);
            }
            h -= 1;
        }
        Ok(out)
    }

    async fn chain_members(&self) -> RpcResult<Vec<MemberInfo>> {
        Ok(members(&self.ctx))
    }

    async fn chain_consent(&self) -> RpcResult<Vec<ConsentInfo>> {
        Ok(consents(&self.ctx))
    }

    async fn chain_verify(&self) -> RpcResult<VerifyReport> {
        let Ok(running) = self.verifying.clone().try_lock_owned() else {
            return Err(rpc(RpcError::refused(
                "a chain verify is already running on this node; its progress is on the blocks topic",
            )));
        };
        let store = self.ctx.store.clone();
        let events = self.ctx.events.clone();
        let report = tokio::task::spawn_blocking(move || {
            let _running = running;
            let mut last: Option<std::time::Instant> = None;
            ChainStore::new(&*store).verify_chain_with(&mut |verified, total| {
                if verified == total || last.is_none_or(|t| t.elapsed() >= VERIFY_PROGRESS_EVERY) {
                    last = Some(std::time::Instant::now());
                    let _ = events.send(Event::VerifyProgress { verified, total });
                }
            })
        })
        .await
        .map_err(|e| rpc(internal(e)))?;
        Ok(VerifyReport {
            ok: report.ok,
            height: report.height,
            blocks_verified: report.blocks_verified,
            txs_verified: report.txs_verified,
            failed_height: report.failed_height,
            reason: report.reason,
        })
    }

    async fn logs(&self, limit: Option<u64>) -> RpcResult<Vec<LogLine>> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LOG_LINES);
        Ok(crate::logging::buffer().recent(limit as usize))
    }

    async fn keys(&self) -> RpcResult<Vec<KeyInfo>> {
        Ok(keys(&self.ctx))
    }

    async fn key_sessions(&self) -> RpcResult<Vec<KeySessionInfo>> {
        Ok(self.ctx.agree.recent().await)
    }

    async fn key_agree(
        &self,
        peer: String,
        wait: Option<bool>,
    ) -> RpcResult<Option<KeySessionInfo>> {
        let ctx = &self.ctx;
        let peer = resolve(ctx, &peer).map_err(rpc)?;
        if ctx.view().state.role_of(&peer).is_none() {
            return Err(rpc(RpcError::refused("that account is not a member")));
        }
        if wait.unwrap_or(false) {
            let info = ctx.agree.agree(peer).await.map_err(|e| rpc(key_error(e)))?;
            Ok(Some(info))
        } else {
            let agree = ctx.agree.clone();
            tokio::spawn(async move {
                if let Err(e) = agree.agree(peer).await {
                    tracing::warn!("{e}");
                }
            });
            Ok(None)
        }
    }

    async fn link_get(&self, peer: String) -> RpcResult<LinkParams> {
        let account = resolve(&self.ctx, &peer).map_err(rpc)?;
        let link = self.ctx.agree.link(account).await.ok_or_else(stopping)?;
        Ok(super::agree::link_params(&link, peer))
    }

    async fn link_set(&self, link: LinkParams) -> RpcResult<LinkParams> {
        let account = resolve(&self.ctx, &link.peer).map_err(rpc)?;
        let shown = link.peer.clone();
        let set = self
            .ctx
            .agree
            .set_link(account, link)
            .await
            .map_err(|e| rpc(RpcError::invalid_params(e)))?;
        Ok(super::agree::link_params(&set, shown))
    }

    async fn send(
        &self,
        to: String,
        kind: RecordKindName,
        fhir_json: String,
        patient: Option<String>,
    ) -> RpcResult<MessageInfo> {
        let ctx = &self.ctx;
        let to = resolve(ctx, &to).map_err(rpc)?;
        let patient = patient
            .as_deref()
            .map(|p| resolve(ctx, p))
            .transpose()
            .map_err(rpc)?;
        let kind = match kind {
            RecordKindName::Phr => RecordKind::Phr,
            RecordKindName::Report => RecordKind::Report,
        };
        let m = ctx.messaging.clone();
        let entry = tokio::task::spawn_blocking(move || {
            outbox::send(&m, to, kind, fhir_json.as_bytes(), patient)
        })
        .await
        .map_err(|e| rpc(internal(e)))?
        .map_err(|e| rpc(send_error(e)))?;
        Ok(messages::info::outbox_info(&ctx.messaging, &entry))
    }

    async fn forward(
        &self,
        ext: &Extensions,
        record_id: String,
        to: String,
    ) -> RpcResult<MessageInfo> {
        let ctx = &self.ctx;
        let record = parse_record_id(&record_id).map_err(rpc)?;
        let to = resolve(ctx, &to).map_err(rpc)?;
        if messages::find_inbox(&ctx.store, &record)
            .map_err(|e| rpc(internal(format!("{e:#}"))))?
            .is_none()
        {
            return Err(rpc(RpcError::invalid_params(format!(
                "no received record {record}"
            ))));
        }
        guarded::log_access(
            ctx,
            ext,
            "forward",
            Some(record),
            format!("to {}", name(ctx, &to)),
        )
        .await
        .map_err(rpc)?;
        let entry = outbox::forward(&ctx.messaging, &record, to).map_err(|e| rpc(send_error(e)))?;
        Ok(messages::info::outbox_info(&ctx.messaging, &entry))
    }

    async fn inbox(&self) -> RpcResult<Vec<MessageInfo>> {
        let ctx = &self.ctx;
        let list = messages::inbox_entries(&ctx.store).map_err(|e| rpc(internal(e)))?;
        Ok(list
            .iter()
            .map(|e| messages::info::inbox_info(&ctx.messaging, e))
            .collect())
    }

    async fn outbox(&self) -> RpcResult<Vec<MessageInfo>> {
        let ctx = &self.ctx;
        let list = messages::outbox_entries(&ctx.store).map_err(|e| rpc(internal(e)))?;
        Ok(list
            .iter()
            .map(|e| messages::info::outbox_info(&ctx.messaging, e))
            .collect())
    }

    async fn outbox_show(&self, record_id: String) -> RpcResult<OutboxDetail> {
        let record = parse_record_id(&record_id).map_err(rpc)?;
        outbox_detail(&self.ctx, &record).map_err(rpc)
    }

    async fn record(
        &self,
        ext: &Extensions,
        record_id: String,
        purpose: Option<String>,
    ) -> RpcResult<RecordContent> {
        let record = parse_record_id(&record_id).map_err(rpc)?;
        let action = match purpose.as_deref() {
            None | Some("read") => "read",
            Some("export") => "export",
            Some(other) => {
                return Err(rpc(RpcError::invalid_params(format!(
                    "purpose '{other}': expected read or export"
                ))));
            }
        };
        if !guarded::holds(&self.ctx, &record).map_err(rpc)? {
            return Err(rpc(RpcError::refused(format!(
                "no record {record} in the inbox or outbox"
            ))));
        }
        guarded::log_access(&self.ctx, ext, action, Some(record), String::new())
            .await
            .map_err(rpc)?;
        record_content(&self.ctx, &record).map_err(rpc)
    }

    async fn record_erase(&self, ext: &Extensions, record_id: String) -> RpcResult<ErasureInfo> {
        let record = parse_record_id(&record_id).map_err(rpc)?;
        guarded::erase(&self.ctx, ext, record).await.map_err(rpc)
    }

    async fn record_erase_request(
        &self,
        ext: &Extensions,
        record_id: String,
        holder: String,
    ) -> RpcResult<TxSubmitted> {
        let record = parse_record_id(&record_id).map_err(rpc)?;
        let holder = resolve(&self.ctx, &holder).map_err(rpc)?;
        guarded::request_erasure(&self.ctx, ext, record, holder)
            .await
            .map_err(rpc)
    }

    async fn emergency_declare(
        &self,
        ext: &Extensions,
        patient: String,
        reason: String,
        duration_ms: u64,
    ) -> RpcResult<TxSubmitted> {
        let req = TxRequest::DeclareEmergency {
            patient,
            reason,
            duration_ms,
        };
        let kind = tx_kind(&self.ctx, req).map_err(rpc)?;
        guarded::declare_emergency(&self.ctx, ext, kind)
            .await
            .map_err(rpc)
    }

    async fn chain_emergencies(&self, all: Option<bool>) -> RpcResult<Vec<EmergencyInfo>> {
        if all.unwrap_or(false) {
            let ctx = self.ctx.clone();
            tokio::task::spawn_blocking(move || guarded::every_emergency(&ctx))
                .await
                .map_err(|e| rpc(internal(e)))?
                .map_err(rpc)
        } else {
            guarded::emergencies(&self.ctx).map_err(rpc)
        }
    }

    async fn audit_log(
        &self,
        from: Option<u64>,
        limit: Option<u64>,
    ) -> RpcResult<Vec<AccessEntryInfo>> {
        super::access::page(&self.ctx.store, from.unwrap_or(0), limit.unwrap_or(200))
            .map_err(|e| rpc(internal(format!("{e:#}"))))
    }

    async fn audit_verify(&self) -> RpcResult<AuditVerifyReport> {
        let store = self.ctx.store.clone();
        let account = self.ctx.account;
        tokio::task::spawn_blocking(move || super::access::verify(&store, &account))
            .await
            .map_err(|e| rpc(internal(e)))?
            .map_err(|e| rpc(internal(format!("{e:#}"))))
    }

    async fn user_add(
        &self,
        ext: &Extensions,
        name: String,
        role: UserRole,
    ) -> RpcResult<UserCreated> {
        let made = self
            .auth
            .add_user(&name, role, now_ms())
            .map_err(|e| rpc(RpcError::invalid_params(e.to_string())))?;
        tracing::info!(by = %caller_of(ext).user, "API user {name} added as {}", role.as_str());
        Ok(made)
    }

    async fn user_list(&self) -> RpcResult<Vec<UserInfo>> {
        Ok(self.auth.users())
    }

    async fn user_remove(&self, ext: &Extensions, name: String) -> RpcResult<bool> {
        self.auth
            .remove_user(&name)
            .map_err(|e| rpc(RpcError::refused(e.to_string())))?;
        tracing::info!(by = %caller_of(ext).user, "API user {name} removed");
        Ok(true)
    }

    async fn whoami(&self, ext: &Extensions) -> RpcResult<Principal> {
        Ok(caller_of(ext))
    }

    async fn kme_status(
        &self,
        caller: String,
        slave: String,
    ) -> RpcResult<qward_core::etsi014::Status> {
        super::kme::status(&self.ctx, &caller, &slave)
            .await
            .map_err(|e| rpc(RpcError::from_etsi(e)))
    }

    async fn kme_enc_keys(
        &self,
        caller: String,
        slave: String,
        number: u32,
        size: u32,
    ) -> RpcResult<qward_core::etsi014::KeyContainer> {
        super::kme::enc_keys(&self.ctx, &caller, &slave, number, size)
            .await
            .map_err(|e| rpc(RpcError::from_etsi(e)))
    }

    async fn kme_dec_keys(
        &self,
        caller: String,
        master: String,
        key_ids: Vec<String>,
    ) -> RpcResult<qward_core::etsi014::KeyContainer> {
        super::kme::dec_keys(&self.ctx, &caller, &master, &key_ids)
            .await
            .map_err(|e| rpc(RpcError::from_etsi(e)))
    }

    async fn consent_grant(
        &self,
        grantee: String,
        scope: String,
        expires_at_ms: Option<u64>,
    ) -> RpcResult<TxSubmitted> {
        let req = TxRequest::GrantConsent {
            grantee,
            scope,
            expires_at_ms,
        };
        submit(&self.ctx, req).await.map_err(rpc)
    }

    async fn consent_revoke(&self, grantee: String, scope: String) -> RpcResult<TxSubmitted> {
        submit(&self.ctx, TxRequest::RevokeConsent { grantee, scope })
            .await
            .map_err(rpc)
    }

    async fn shutdown(&self) -> RpcResult<bool> {
        self.ctx.request_shutdown();
        Ok(true)
    }

    async fn events(
        &self,
        pending: PendingSubscriptionSink,
        ext: &Extensions,
        topics: Vec<Topic>,
    ) -> SubscriptionResult {
        let session = ext
            .get::<crate::api::auth::Caller>()
            .and_then(|c| c.session);
        let auth = self.auth.clone();
        let open = move || session.is_none_or(|key| auth.is_open(&key, now_ms()));
        crate::api::pipe_events_while(pending, topics, self.ctx.events.subscribe(), open).await
    }
}

/// Signs and submits a transaction of this node's own; answers its id and nonce.
async fn submit(ctx: &Ctx, req: TxRequest) -> Result<TxSubmitted, RpcError> {
    guarded::submit_kind(ctx, tx_kind(ctx, req)?).await
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
        peers: ctx.metrics.peers.get() as usize,
        is_validator: v.state.validators.contains(&ctx.account),
        validators: v.state.validators.len(),
        mempool: ctx.metrics.mempool_size.get() as usize,
        listen: ctx
            .listen
            .borrow()
            .iter()
            .map(ToString::to_string)
            .collect(),
        uptime_ms: ctx.started.elapsed().as_millis() as u64,
        version: env!("CARGO_PKG_VERSION").to_string(),
        key_twin: ctx.twin.reason(),
        consensus: consensus_info(ctx, &v),
    }
}

/// Where consensus is and, in a stall, whom it waits for.
fn consensus_info(ctx: &Ctx, v: &super::view::ChainView) -> Option<ConsensusInfo> {
    let p = ctx.consensus.borrow().clone();
    p.step?;
    let now = now_ms();
    let silent = |a: &AccountId| p.is_silent(a, now);
    let waiting_for = if p.idle_until_ms.is_some() {
        Vec::new()
    } else {
        v.state
            .validators
            .validators()
            .iter()
            .map(|val| val.account)
            .filter(|a| *a != ctx.account && silent(a))
            .map(|a| ctx.contacts.label(&a))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    Some(ConsensusInfo {
        height: p.height,
        round: p.round,
        step: p.step_name().to_string(),
        waiting_for,
        newest_block_age_ms: now_ms().saturating_sub(v.tip.time_ms),
        syncing_to: p.sync_target,
        height_age_ms: now_ms().saturating_sub(p.height_started_ms),
        block_time_ms: v.state.block_timing.block_time_ms,
        empty_block_interval_ms: v.state.block_timing.empty_block_interval_ms,
        heartbeat_in_ms: p.idle_until_ms.map(|t| t.saturating_sub(now_ms())),
    })
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
        "records" => Ok(ConsentScope::Records),
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
        TxRequest::DeclareEmergency {
            patient,
            reason,
            duration_ms,
        } => {
            if duration_ms == 0 || duration_ms > MAX_EMERGENCY_MS {
                return Err(RpcError::invalid_params(format!(
                    "an emergency lasts 1 ms to {} hours",
                    MAX_EMERGENCY_MS / 3_600_000
                )));
            }
            TxKind::DeclareEmergency(EmergencyAccess {
                patient: resolve(ctx, &patient)?,
                reason,
                expires_at_ms: now_ms().saturating_add(duration_ms),
            })
        }
        TxRequest::SetBlockTiming {
            block_time_ms,
            empty_block_interval_ms,
        } => {
            let timing = qward_core::consensus::BlockTiming {
                block_time_ms,
                empty_block_interval_ms,
            };
            timing.validate().map_err(RpcError::invalid_params)?;
            TxKind::SetBlockTiming(timing)
        }
    })
}

fn name(ctx: &Ctx, a: &AccountId) -> String {
    ctx.contacts.label(a)
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
            qward_core::calendar::utc_date(g.expires_at_ms)
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
        TxKind::DeclareEmergency(e) => format!(
            "EMERGENCY access to {}'s records until {} UTC: {}",
            name(ctx, &e.patient),
            qward_core::calendar::utc_minute(e.expires_at_ms),
            e.reason
        ),
        TxKind::EraseRecord(e) => format!("erased its copy of record {}", e.record_id.short()),
        TxKind::RequestErasure(r) => format!(
            "asks {} to erase its copy of record {}",
            name(ctx, &r.holder),
            r.record_id.short()
        ),
        TxKind::AnchorAccessLog(a) => format!(
            "access log anchored at {} entries ({})",
            a.entries,
            a.head.short()
        ),
        TxKind::SetBlockTiming(t) => format!(
            "vote to set the block time to {} ms and the empty-block interval to {} ms",
            t.block_time_ms, t.empty_block_interval_ms
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
        message: messages::info::outbox_info(&ctx.messaging, &entry),
        receipt,
    })
}

fn parse_record_id(s: &str) -> Result<RecordId, RpcError> {
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
        let bytes = messages::inbox::plaintext(&ctx.messaging, &entry)
            .map_err(|e| RpcError::refused(format!("{e:#}")))?;
        return Ok(RecordContent {
            info: messages::info::inbox_info(&ctx.messaging, &entry),
            fhir_json: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    if let Some(entry) = messages::outbox_entry(&ctx.store, record).map_err(internal)? {
        let bytes = messages::outbox::plaintext(&ctx.messaging, &entry)
            .map_err(|e| RpcError::refused(format!("{e:#}")))?;
        return Ok(RecordContent {
            info: messages::info::outbox_info(&ctx.messaging, &entry),
            fhir_json: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Err(RpcError::refused(format!(
        "no record {record} in the inbox or outbox"
    )))
}
