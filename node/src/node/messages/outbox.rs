//! Sending: `send` and `forward` queue a checked record in the outbox; the
//! delivery task gets a key (running a key agreement if none is fresh), seals
//! the envelope once, delivers it until a signed receipt arrives (backing off
//! between attempts, across restarts), then anchors `blake3(ciphertext)` on
//! the chain and watches for the anchor to become final.

use std::time::Duration;

use anyhow::Context;
use qward_core::api::DeliveryState;
use qward_core::chain::{Hash, RecordAnchor, TxKind};
use qward_core::envelope::policy::{self, Delivery, Refusal};
use qward_core::envelope::wire::{MsgRequest, MsgResponse, Retry, anchor_record_id};
use qward_core::envelope::{
    AtRestKey, Envelope, EnvelopeHeader, RecordId, RecordKind, anchor_hash, open_at_rest, seal,
    seal_at_rest,
};
use qward_core::identity::{AccountId, Role};
use qward_core::storage::{Column, Store, WriteBatch};

use super::{OutboxEntry, emit, okey, outbox_entry, outbox_info};
use crate::net::{RequestProtocol, peer_id_from_account};
use crate::node::context::{Ctx, now_ms};
use crate::node::keys::{KeyStore, RecordSlot};

/// Deliveries attempted at once.
const PARALLEL_DELIVERIES: usize = 8;

/// Why a record was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn role(ctx: &Ctx, a: &AccountId) -> Option<Role> {
    ctx.view().state.role_of(a)
}

fn label(ctx: &Ctx, a: &AccountId) -> String {
    crate::node::dispatch::account_label(ctx, a)
}

/// Whether the chain's messaging policy lets this node send `kind` about
/// `patient` to `to` now: the same rules the recipient applies, checked
/// before any key agreement or sealing.
pub fn permitted(
    ctx: &Ctx,
    kind: RecordKind,
    to: AccountId,
    patient: AccountId,
) -> Result<(), SendError> {
    let delivery = Delivery {
        kind,
        sender: ctx.account,
        recipient: to,
        patient,
    };
    let checked = policy::check(&ctx.view().state, &delivery, now_ms());
    checked.map_err(|refusal| {
        let why = refusal.explain(|a| label(ctx, a));
        match refusal {
            Refusal::ToSelf | Refusal::NotAPatient(_) => SendError::Invalid(why),
            _ => SendError::Refused(why),
        }
    })
}

/// Queues a record for `to`. The FHIR JSON is checked first; the answer is
/// the new outbox entry.
pub fn send(
    ctx: &Ctx,
    to: AccountId,
    kind: RecordKind,
    fhir_json: &[u8],
    patient: Option<AccountId>,
) -> Result<OutboxEntry, SendError> {
    qward_core::fhir::validate(kind, fhir_json)
        .map_err(|e| SendError::Invalid(format!("not a valid {kind} record: {e}")))?;
    let me = ctx.config.role;
    let patient = match (kind, patient) {
        (_, Some(p)) => p,
        (RecordKind::Phr, None) if me == Role::Patient => ctx.account,
        (RecordKind::Report, None) if role(ctx, &to) == Some(Role::Patient) => to,
        _ => {
            return Err(SendError::Invalid(
                "say which patient the record is about (--patient)".into(),
            ));
        }
    };
    permitted(ctx, kind, to, patient)?;
    queue(ctx, to, kind, patient, fhir_json, None)
}

/// Forwards a received PHR to a doctor, under the patient's consent.
pub fn forward(ctx: &Ctx, record: &RecordId, to: AccountId) -> Result<OutboxEntry, SendError> {
    if ctx.config.role != Role::Hospital {
        return Err(SendError::Refused("only hospitals forward records".into()));
    }
    let entry = super::find_inbox(&ctx.store, record)?
        .ok_or_else(|| SendError::Invalid(format!("no received record {record}")))?;
    if entry.kind != RecordKind::Phr {
        return Err(SendError::Invalid(format!(
            "record {record} is a {}, only PHRs are forwarded",
            entry.kind
        )));
    }
    if role(ctx, &to) != Some(Role::Doctor) {
        return Err(SendError::Invalid(format!(
            "{} is not a registered doctor",
            label(ctx, &to)
        )));
    }
    permitted(ctx, RecordKind::Phr, to, entry.patient).inspect_err(|e| {
        tracing::warn!("forward of {record} refused: {e}");
    })?;
    let plaintext = super::inbox::plaintext(ctx, &entry)?;
    queue(
        ctx,
        to,
        RecordKind::Phr,
        entry.patient,
        &plaintext,
        Some(*record),
    )
}

fn queue(
    ctx: &Ctx,
    to: AccountId,
    kind: RecordKind,
    patient: AccountId,
    payload: &[u8],
    forwarded_from: Option<RecordId>,
) -> Result<OutboxEntry, SendError> {
    let (record_id, at_rest, sealed) = {
        let mut rng = rand::rng();
        let record_id = RecordId::random(&mut rng);
        let at_rest = AtRestKey::random(&mut rng);
        let sealed = seal_at_rest(&at_rest, &record_id, payload, &mut rng)
            .map_err(|e| SendError::Invalid(e.to_string()))?;
        (record_id, at_rest, sealed)
    };
    let entry = OutboxEntry {
        record_id,
        kind,
        to,
        patient,
        created_ms: now_ms(),
        bytes: payload.len() as u64,
        state: DeliveryState::Queued,
        attempts: 0,
        next_attempt_ms: 0,
        detail: Some("queued".into()),
        ciphertext_hash: None,
        anchor_tx: None,
        forwarded_from,
    };
    let mut batch = WriteBatch::new();
    KeyStore::put_at_rest(&mut batch, RecordSlot::Sent(&record_id), &at_rest);
    batch.put(Column::Outbox, okey(b'p', &record_id), sealed);
    batch.put(
        Column::Outbox,
        okey(b'e', &record_id),
        qward_core::codec::encode_infallible(&entry),
    );
    batch.set_sync(true);
    ctx.store.write(batch).context("storing the outbox entry")?;
    ctx.messages.track_outbox(&entry);
    ctx.messages.wake.notify_one();
    tracing::info!(
        "{kind} {record_id} queued for {} ({} bytes)",
        label(ctx, &to),
        entry.bytes
    );
    emit(ctx, &outbox_info(ctx, &entry));
    Ok(entry)
}

fn save(ctx: &Ctx, entry: &OutboxEntry, mut batch: WriteBatch) -> anyhow::Result<()> {
    batch.put(
        Column::Outbox,
        okey(b'e', &entry.record_id),
        qward_core::codec::encode_infallible(entry),
    );
    batch.set_sync(true);
    ctx.store.write(batch)?;
    ctx.messages.track_outbox(entry);
    emit(ctx, &outbox_info(ctx, entry));
    Ok(())
}

/// The delivery task: runs until shutdown.
pub async fn run(ctx: Ctx) {
    let mut shutdown = ctx.shutdown.subscribe();
    let mut join = tokio::task::JoinSet::new();
    let mut running = std::collections::HashSet::new();
    // Anchors are checked when a block lands (and once at start), not polled.
    let mut blocks = ctx.events.subscribe();
    let mut anchors_due = true;
    let mut last_key_expiry = std::time::Instant::now();
    loop {
        while let Some(done) = join.try_join_next() {
            if let Ok(record) = done {
                running.remove(&record);
            }
        }
        let now = now_ms();
        for record in ctx.messages.due(now, PARALLEL_DELIVERIES * 4) {
            if join.len() >= PARALLEL_DELIVERIES {
                break;
            }
            if running.insert(record) {
                let ctx = ctx.clone();
                join.spawn(async move {
                    if let Err(e) = attempt(&ctx, &record).await {
                        tracing::warn!("delivery of {record}: {e:#}");
                    }
                    record
                });
            }
        }
        if std::mem::take(&mut anchors_due) {
            check_anchors(&ctx);
            super::inbox::check_anchors(&ctx);
        }
        if last_key_expiry.elapsed() >= Duration::from_secs(1) {
            last_key_expiry = std::time::Instant::now();
            match ctx.keys.expire(&ctx.store, now_ms()) {
                Ok(0) => {}
                Ok(n) => tracing::info!("{n} retired key(s) erased"),
                Err(e) => tracing::warn!("retired keys not erased: {e:#}"),
            }
        }
        let wait = ctx
            .messages
            .next_due()
            .map(|t| t.saturating_sub(now_ms()))
            .unwrap_or(1000)
            .clamp(20, 1000);
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            _ = ctx.messages.wake.notified() => {}
            Some(done) = join.join_next(), if !join.is_empty() => {
                if let Ok(record) = done { running.remove(&record); }
            }
            event = blocks.recv() => match event {
                Ok(qward_core::api::Event::Block { .. })
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => anchors_due = true,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
    join.abort_all();
}

/// Marks delivered records anchored once their anchor is final, and
/// resubmits an anchor that fell out of the mempool.
fn check_anchors(ctx: &Ctx) {
    for record in ctx.messages.unanchored() {
        let Ok(Some(mut entry)) = outbox_entry(&ctx.store, &record) else {
            continue;
        };
        let id = anchor_record_id(&ctx.account, &record);
        match qward_core::chain::ChainStore::new(&*ctx.store).anchor_tx(&ctx.account, &id) {
            Ok(Some(tx)) => {
                entry.state = DeliveryState::Anchored;
                entry.anchor_tx = Some(tx.0);
                entry.detail = Some("delivered; anchored on the chain".into());
                if let Err(e) = save(ctx, &entry, WriteBatch::new()) {
                    tracing::warn!("outbox entry {record} not updated: {e:#}");
                } else {
                    tracing::info!("record {record} anchored in transaction {}", tx.short());
                }
            }
            Ok(None) => {
                let pending = entry
                    .anchor_tx
                    .is_some_and(|t| ctx.mempool().contains(&Hash(t)));
                if !pending && entry.ciphertext_hash.is_some() {
                    anchor(ctx, entry);
                }
            }
            Err(e) => tracing::warn!("anchor lookup for {record}: {e}"),
        }
    }
}

/// Submits the anchor transaction of a delivered record.
fn anchor(ctx: &Ctx, entry: OutboxEntry) {
    let Some(hash) = entry.ciphertext_hash else {
        return;
    };
    let kind = TxKind::AnchorRecord(RecordAnchor {
        record_id: anchor_record_id(&ctx.account, &entry.record_id),
        ciphertext_hash: Hash(hash),
        recipient: entry.to,
    });
    if !ctx.messages.start_anchoring(&entry.record_id) {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        match crate::node::driver::submit_own(&ctx, kind).await {
            Ok(tx) => {
                // The entry may have moved on (anchored) meanwhile: update a fresh copy.
                if let Ok(Some(mut fresh)) = outbox_entry(&ctx.store, &entry.record_id)
                    && fresh.state == DeliveryState::Delivered
                {
                    fresh.anchor_tx = Some(tx.0);
                    if let Err(e) = save(&ctx, &fresh, WriteBatch::new()) {
                        tracing::warn!("outbox entry {} not updated: {e:#}", entry.record_id);
                    }
                }
            }
            Err(e) => tracing::debug!("anchor of {} not submitted yet: {e:#}", entry.record_id),
        }
        ctx.messages.end_anchoring(&entry.record_id);
    });
}

/// One delivery attempt of `record`.
async fn attempt(ctx: &Ctx, record: &RecordId) -> anyhow::Result<()> {
    let Some(mut entry) = outbox_entry(&ctx.store, record)? else {
        return Ok(());
    };
    if !matches!(entry.state, DeliveryState::Queued | DeliveryState::Sent) {
        ctx.messages.track_outbox(&entry);
        return Ok(());
    }
    entry.attempts = entry.attempts.saturating_add(1);
    let retry_later = |mut entry: OutboxEntry, why: String| -> anyhow::Result<()> {
        entry.next_attempt_ms = now_ms() + policy::retry_delay_ms(entry.attempts, rand::random());
        entry.detail = Some(why);
        save(ctx, &entry, WriteBatch::new())
    };
    // The policy is checked again before every attempt: a revoked consent
    // or membership stops a queued record at once.
    if let Err(why) = permitted(ctx, entry.kind, entry.to, entry.patient) {
        tracing::warn!("{record} to {}: {why}", label(ctx, &entry.to));
        entry.state = DeliveryState::Failed;
        entry.detail = Some(why.to_string());
        let mut batch = WriteBatch::new();
        batch.delete(Column::Outbox, okey(b'v', record));
        return save(ctx, &entry, batch);
    }
    let envelope = match ctx.store.get(Column::Outbox, &okey(b'v', record))? {
        Some(bytes) => Envelope::from_bytes(&bytes).context("a stored envelope")?,
        None => {
            if let Err(e) = crate::node::agree::ensure_key(ctx, entry.to).await {
                return retry_later(entry, format!("waiting for a key: {e}"));
            }
            match seal_now(ctx, &mut entry) {
                Ok(env) => env,
                Err(e) => return retry_later(entry, format!("not sealed yet: {e:#}")),
            }
        }
    };
    let peer = peer_id_from_account(&entry.to)?;
    // Encoded, then taken back for the receipt check: no copy of the envelope.
    let message = MsgRequest::Deliver { envelope };
    let request = message.encode();
    let MsgRequest::Deliver { envelope } = message;
    let answer = ctx.net.request(RequestProtocol::Msg, peer, request).await;
    let response = match answer {
        Err(e) => return retry_later(entry, format!("recipient not reached: {e}")),
        Ok(bytes) => match MsgResponse::decode(&bytes) {
            Ok(r) => r,
            Err(e) => return retry_later(entry, format!("unreadable answer: {e}")),
        },
    };
    match response {
        MsgResponse::Receipt { receipt } => {
            if let Err(e) = receipt.verify(&envelope) {
                tracing::warn!("receipt for {record} refused: {e}");
                return retry_later(entry, format!("bad receipt: {e}"));
            }
            entry.state = DeliveryState::Delivered;
            entry.detail = Some("delivered; signed receipt received".into());
            // The receipt is the proof of delivery: kept with the entry.
            let mut batch = WriteBatch::new();
            batch.put(
                Column::Outbox,
                okey(b'r', record),
                qward_core::codec::encode_infallible(&receipt),
            );
            save(ctx, &entry, batch)?;
            crate::metrics::Metrics::inc(&ctx.metrics.messages_sent);
            tracing::info!(
                "{} {record} delivered to {}",
                entry.kind,
                label(ctx, &entry.to)
            );
            anchor(ctx, entry);
            Ok(())
        }
        MsgResponse::Refused { reason, retry } => {
            tracing::warn!("{} refused {record}: {reason}", label(ctx, &entry.to));
            match retry {
                Retry::Later => retry_later(entry, format!("refused for now: {reason}")),
                Retry::Reseal => {
                    ctx.keys.erase_peer(&ctx.store, &entry.to)?;
                    let mut batch = WriteBatch::new();
                    batch.delete(Column::Outbox, okey(b'v', record));
                    entry.ciphertext_hash = None;
                    entry.next_attempt_ms = now_ms();
                    entry.detail = Some(format!("sealing again: {reason}"));
                    save(ctx, &entry, batch)
                }
                Retry::Never => {
                    entry.state = DeliveryState::Failed;
                    entry.detail = Some(format!("refused by the recipient: {reason}"));
                    save(ctx, &entry, WriteBatch::new())
                }
            }
        }
    }
}

/// The FHIR JSON of a sent record, decrypted from the store.
pub fn plaintext(ctx: &Ctx, entry: &OutboxEntry) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let record = entry.record_id;
    let at_rest = KeyStore::at_rest(&ctx.store, RecordSlot::Sent(&record))?
        .with_context(|| format!("record {record}'s key was erased: the record is gone"))?;
    let sealed = ctx
        .store
        .get(Column::Outbox, &okey(b'p', &record))?
        .with_context(|| format!("record {record} has no payload"))?;
    Ok(open_at_rest(&at_rest, &record, &sealed)?)
}

/// Seals the record under the current key for its recipient and stores the
/// envelope with the key's use count, in one batch.
fn seal_now(ctx: &Ctx, entry: &mut OutboxEntry) -> anyhow::Result<Envelope> {
    let record = entry.record_id;
    let payload = plaintext(ctx, entry)?;
    let header = EnvelopeHeader {
        kind: entry.kind,
        record_id: record,
        created_at_ms: now_ms(),
        sender: ctx.account,
        recipient: entry.to,
        patient: entry.patient,
    };
    let mut batch = WriteBatch::new();
    let envelope = ctx
        .keys
        .with_sealing_key(&entry.to, now_ms(), &mut batch, |key| {
            seal(key, header, &payload, &mut rand::rng())
        })??;
    batch.put(Column::Outbox, okey(b'v', &record), envelope.to_bytes());
    entry.ciphertext_hash = Some(anchor_hash(&envelope));
    entry.state = DeliveryState::Sent;
    entry.detail = Some(format!("sealed under key {}", envelope.key_id));
    save(ctx, entry, batch)?;
    Ok(envelope)
}
