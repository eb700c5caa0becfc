//! The API's guarded actions on health data, each written to the access log
//! under the caller's name before it happens (a read whose entry cannot be
//! stored does not happen): reading and exporting a record, forwarding,
//! erasure, and break-glass emergency declarations; and the list of
//! emergencies on the chain.

use jsonrpsee::Extensions;
use qward_core::api::{EmergencyInfo, ErasureInfo, Principal, RpcError, TxSubmitted, UserRole};
use qward_core::chain::{ChainStore, TxKind};
use qward_core::envelope::RecordId;

use super::access::Access;
use super::clock::now_ms;
use super::context::Ctx;
use crate::api::auth::{Caller, OWNER};

/// Who made a call. The gate lets nothing in without a caller; a call that
/// reaches a method some other way (an in-process test) is the owner's.
pub fn caller_of(ext: &Extensions) -> Principal {
    ext.get::<Caller>()
        .map(|c| c.principal.clone())
        .unwrap_or(Principal {
            user: OWNER.into(),
            role: UserRole::Admin,
            idle_logoff_s: None,
        })
}

/// Signs and submits a transaction of this node's own; answers its id and
/// nonce.
pub async fn submit_kind(ctx: &Ctx, kind: TxKind) -> Result<TxSubmitted, RpcError> {
    let submitted = ctx
        .pool
        .submit(kind)
        .await
        .map_err(|e| RpcError::refused(e.to_string()))?;
    Ok(TxSubmitted {
        id: submitted.id.to_hex(),
        nonce: submitted.nonce,
    })
}

/// Whether this node holds `record` (sent or received): a read is logged
/// only for a record that exists, so reading random ids fills no log.
pub fn holds(ctx: &Ctx, record: &RecordId) -> Result<bool, RpcError> {
    let internal = |e: anyhow::Error| RpcError::internal(format!("{e:#}"));
    Ok(super::messages::find_inbox(&ctx.store, record)
        .map_err(internal)?
        .is_some()
        || super::messages::outbox_entry(&ctx.store, record)
            .map_err(internal)?
            .is_some())
}

/// Writes an access-log entry for `action` by the caller; the action must
/// not go on if this fails.
pub async fn log_access(
    ctx: &Ctx,
    ext: &Extensions,
    action: &'static str,
    record: Option<RecordId>,
    detail: String,
) -> Result<u64, RpcError> {
    let who = caller_of(ext);
    tracing::info!(user = %who.user, action, record = ?record.map(|r| r.to_hex()), "health-data access");
    ctx.access
        .record(Access {
            user: who.user,
            action,
            record,
            detail,
        })
        .await
        .map_err(|e| RpcError::unavailable(format!("the access log cannot record this: {e:#}")))
}

/// Erases this node's copies of `record` and submits the erasure facts.
pub async fn erase(ctx: &Ctx, ext: &Extensions, record: RecordId) -> Result<ErasureInfo, RpcError> {
    if !holds(ctx, &record)? {
        return Err(RpcError::refused(format!(
            "no record {record} in this node's outbox or inbox"
        )));
    }
    log_access(ctx, ext, "erase", Some(record), String::new()).await?;
    let (erased, txs) =
        super::messages::erase::erase(&ctx.messaging, &record, super::messages::erase::Copies::All)
            .await
            .map_err(|e| RpcError::refused(format!("{e:#}")))?;
    Ok(ErasureInfo {
        record_id: record.to_hex(),
        sent: erased.sent,
        received: erased.received,
        forwards: erased.forwards.iter().map(|r| r.to_hex()).collect(),
        txs: txs.iter().map(|t| t.to_hex()).collect(),
    })
}

/// Asks `holder` on the chain to erase its copy of `record`, a record this
/// node sent or received (its network id is the one its sender anchors).
pub async fn request_erasure(
    ctx: &Ctx,
    ext: &Extensions,
    record: RecordId,
    holder: qward_core::identity::AccountId,
) -> Result<TxSubmitted, RpcError> {
    use qward_core::envelope::wire::anchor_record_id;
    let store = &ctx.store;
    let internal = |e: anyhow::Error| RpcError::internal(format!("{e:#}"));
    let id = if super::messages::outbox_entry(store, &record)
        .map_err(internal)?
        .is_some()
    {
        anchor_record_id(&ctx.account, &record)
    } else if let Some(e) = super::messages::find_inbox(store, &record).map_err(internal)? {
        anchor_record_id(&e.from, &record)
    } else {
        return Err(RpcError::refused(format!(
            "no record {record} in this node's outbox or inbox"
        )));
    };
    log_access(
        ctx,
        ext,
        "erasure-request",
        Some(record),
        format!("asks {}", ctx.contacts.label(&holder)),
    )
    .await?;
    let kind = TxKind::RequestErasure(qward_core::chain::ErasureRequest {
        holder,
        record_id: id,
    });
    submit_kind(ctx, kind).await
}

/// Submits a break-glass declaration (already checked as a request).
pub async fn declare_emergency(
    ctx: &Ctx,
    ext: &Extensions,
    kind: TxKind,
) -> Result<TxSubmitted, RpcError> {
    let TxKind::DeclareEmergency(e) = &kind else {
        return Err(RpcError::invalid_params("not an emergency declaration"));
    };
    let detail = format!(
        "patient {}, until {} ms: {}",
        ctx.contacts.label(&e.patient),
        e.expires_at_ms,
        e.reason
    );
    log_access(ctx, ext, "emergency", None, detail).await?;
    submit_kind(ctx, kind).await
}

/// The emergency declarations in the chain's state, newest first, with
/// their reasons from the blocks that hold them.
pub fn emergencies(ctx: &Ctx) -> Result<Vec<EmergencyInfo>, RpcError> {
    let view = ctx.view();
    let chain = ChainStore::new(&*ctx.store);
    let now = now_ms();
    let mut out = Vec::new();
    for ((patient, declarer), entry) in &view.state.emergencies {
        let block = chain
            .block(entry.height)
            .map_err(|e| RpcError::internal(e.to_string()))?;
        let reason = block
            .iter()
            .flat_map(|b| b.block.txs.iter())
            .rev()
            .find_map(|t| match &t.tx.kind {
                TxKind::DeclareEmergency(e)
                    if t.tx.author == *declarer && e.patient == *patient =>
                {
                    Some(e.reason.clone())
                }
                _ => None,
            })
            .unwrap_or_default();
        out.push(info(
            ctx,
            patient,
            declarer,
            reason,
            entry.height,
            entry.expires_at_ms,
            now,
        ));
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.height));
    Ok(out)
}

/// Every emergency declaration in the chain's blocks, newest first (what an
/// auditor lists; it reads every block).
pub fn every_emergency(ctx: &Ctx) -> Result<Vec<EmergencyInfo>, RpcError> {
    let chain = ChainStore::new(&*ctx.store);
    let tip = ctx.view().tip.height;
    let now = now_ms();
    let mut out = Vec::new();
    for h in (1..=tip).rev() {
        let Some(block) = chain
            .block(h)
            .map_err(|e| RpcError::internal(e.to_string()))?
        else {
            continue;
        };
        for t in block.block.txs.iter().rev() {
            if let TxKind::DeclareEmergency(e) = &t.tx.kind {
                out.push(info(
                    ctx,
                    &e.patient,
                    &t.tx.author,
                    e.reason.clone(),
                    h,
                    e.expires_at_ms,
                    now,
                ));
            }
        }
    }
    Ok(out)
}

/// One declaration as the API shows it.
pub fn info(
    ctx: &Ctx,
    patient: &qward_core::identity::AccountId,
    declarer: &qward_core::identity::AccountId,
    reason: String,
    height: u64,
    expires_at_ms: u64,
    now_ms: u64,
) -> EmergencyInfo {
    EmergencyInfo {
        patient: patient.to_hex(),
        patient_name: ctx.contacts.name_of(patient).map(str::to_string),
        declarer: declarer.to_hex(),
        declarer_name: ctx.contacts.name_of(declarer).map(str::to_string),
        reason,
        height,
        expires_at_ms,
        active: expires_at_ms > now_ms,
    }
}
