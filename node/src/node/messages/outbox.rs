//! Sending: `send` and `forward` queue a checked record in the outbox; the
//! delivery task gets a key (running a key agreement if none is fresh), seals
//! the envelope once, delivers it until a signed receipt arrives (backing off
//! between attempts, across restarts), then anchors `blake3(ciphertext)` on
//! the chain and watches for the anchor to become final.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use qward_core::api::DeliveryState;
use qward_core::chain::{ChainStore, Hash, RecordAnchor, SignedTransaction, TxKind};
use qward_core::envelope::lifecycle::{self, Happened};
use qward_core::envelope::policy::{self, Delivery, Refusal};
use qward_core::envelope::wire::{MsgRequest, MsgResponse, anchor_record_id};
use qward_core::envelope::{
    AtRestKey, Envelope, EnvelopeHeader, RecordId, RecordKind, anchor_hash, open_at_rest, seal,
    seal_at_rest,
};
use qward_core::identity::{AccountId, Role};
use qward_core::storage::{Column, Store, WriteBatch};
use tokio::sync::{mpsc, watch};

use super::info::{emit, outbox_info};
use super::{Index, Messaging, Note, OutboxEntry, okey, outbox_entry};
use crate::net::{RequestProtocol, peer_id_from_account};
use crate::node::clock::now_ms;
use crate::node::keys::RecordSlot;

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

fn role(ctx: &Messaging, a: &AccountId) -> Option<Role> {
    ctx.view().state.role_of(a)
}

fn label(ctx: &Messaging, a: &AccountId) -> String {
    ctx.contacts.label(a)
}

/// Whether the chain's messaging policy lets this node send `kind` about
/// `patient` to `to` now: the same rules the recipient applies, checked
/// before any key agreement or sealing.
pub fn permitted(
    ctx: &Messaging,
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
    ctx: &Messaging,
    to: AccountId,
    kind: RecordKind,
    fhir_json: &[u8],
    patient: Option<AccountId>,
) -> Result<OutboxEntry, SendError> {
    qward_core::fhir::validate(kind, fhir_json)
        .map_err(|e| SendError::Invalid(format!("not a valid {kind} record: {e}")))?;
    let me = ctx.role;
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
pub fn forward(
    ctx: &Messaging,
    record: &RecordId,
    to: AccountId,
) -> Result<OutboxEntry, SendError> {
    if ctx.role != Role::Hospital {
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
    ctx: &Messaging,
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
    ctx.keys
        .put_at_rest(&mut batch, RecordSlot::Sent(&record_id), &at_rest);
    batch.put(Column::Outbox, okey(b'p', &record_id), sealed);
    batch.put(
        Column::Outbox,
        okey(b'e', &record_id),
        qward_core::codec::encode_infallible(&entry),
    );
    batch.set_sync(true);
    ctx.store.write(batch).context("storing the outbox entry")?;
    ctx.note_outbox(&entry);
    tracing::info!(
        "{kind} {record_id} queued for {} ({} bytes)",
        label(ctx, &to),
        entry.bytes
    );
    emit(ctx, &outbox_info(ctx, &entry));
    Ok(entry)
}

fn save(ctx: &Messaging, entry: &OutboxEntry, mut batch: WriteBatch) -> anyhow::Result<()> {
    batch.put(
        Column::Outbox,
        okey(b'e', &entry.record_id),
        qward_core::codec::encode_infallible(entry),
    );
    batch.set_sync(true);
    ctx.store.write(batch)?;
    ctx.note_outbox(entry);
    emit(ctx, &outbox_info(ctx, entry));
    Ok(())
}

/// The delivery task: holds the index of what is due, runs deliveries (a
/// few at once), anchors delivered records and checks received ones when a
/// block lands, and erases retired keys; runs until shutdown.
pub(crate) async fn run(
    ctx: Arc<Messaging>,
    mut index: Index,
    mut notes: mpsc::UnboundedReceiver<Note>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut join = tokio::task::JoinSet::new();
    // The record of each attempt under way, by task (a panicking attempt
    // is known only by its task id).
    let mut running_tasks = std::collections::HashMap::new();
    let mut running = std::collections::HashSet::new();
    // Every anchor is checked when a block lands (and once at start), not
    // polled; a record just delivered is anchored at once, alone.
    let mut views = ctx.views.clone();
    let mut anchors_due = true;
    let mut delivered = Vec::new();
    let mut last_key_expiry = std::time::Instant::now();
    loop {
        // What attempts stored, before the index is read: an attempt notes
        // its change before its task ends, so a finished attempt's record
        // is never taken for due at its old time.
        while let Ok(note) = notes.try_recv() {
            delivered.extend(apply(&mut index, note));
        }
        while let Some(done) = join.try_join_next_with_id() {
            finished(done, &mut running_tasks, &mut running, &mut index);
        }
        let now = now_ms();
        for record in index.due(now, PARALLEL_DELIVERIES, &running) {
            if join.len() >= PARALLEL_DELIVERIES {
                break;
            }
            running.insert(record);
            let ctx = ctx.clone();
            let task = join.spawn(async move {
                let ok = match attempt(&ctx, &record).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("delivery of {record}: {e:#}");
                        false
                    }
                };
                (record, ok)
            });
            running_tasks.insert(task.id(), record);
        }
        if std::mem::take(&mut anchors_due) {
            delivered.clear();
            check_anchors(&ctx, &index.unanchored()).await;
            super::inbox::check_anchors(&ctx, &mut index);
        } else if !delivered.is_empty() {
            check_anchors(&ctx, &std::mem::take(&mut delivered)).await;
        }
        if last_key_expiry.elapsed() >= Duration::from_secs(1) {
            last_key_expiry = std::time::Instant::now();
            match ctx.keys.expire(&ctx.store, now_ms()) {
                Ok(0) => {}
                Ok(n) => tracing::info!("{n} retired key(s) erased"),
                Err(e) => tracing::warn!("retired keys not erased: {e:#}"),
            }
        }
        let wait = index
            .next_due(&running)
            .map(|t| t.saturating_sub(now_ms()))
            .unwrap_or(1000)
            .clamp(20, 1000);
        tokio::select! {
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { break },
            Some(note) = notes.recv() => {
                delivered.extend(apply(&mut index, note));
            }
            Some(done) = join.join_next_with_id(), if !join.is_empty() => {
                finished(done, &mut running_tasks, &mut running, &mut index);
            }
            changed = views.changed() => {
                if changed.is_err() { break }
                views.borrow_and_update();
                anchors_due = true;
            }
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
    join.abort_all();
}

type Finished = Result<(tokio::task::Id, (RecordId, bool)), tokio::task::JoinError>;

/// Frees an attempt's record; one that failed before storing what happened
/// (or panicked) is put off as a failed attempt would be, not retried at once.
fn finished(
    done: Finished,
    tasks: &mut std::collections::HashMap<tokio::task::Id, RecordId>,
    running: &mut std::collections::HashSet<RecordId>,
    index: &mut Index,
) {
    let (id, ok) = match done {
        Ok((id, (_, ok))) => (id, ok),
        Err(e) => (e.id(), false),
    };
    let Some(record) = tasks.remove(&id) else {
        return;
    };
    running.remove(&record);
    if !ok {
        index.defer(&record, now_ms() + policy::MAX_RETRY_MS);
    }
}

/// Applies a stored change to the index; answers the record to anchor now
/// if one was just delivered. (A received record's anchor cannot be on the
/// chain before its receipt left: it is checked when the next block lands.)
pub(crate) fn apply(index: &mut Index, note: Note) -> Option<RecordId> {
    match note {
        Note::Outbox {
            record,
            state,
            next_ms,
        } => {
            index.track_outbox(record, state, next_ms);
            (state == DeliveryState::Delivered).then_some(record)
        }
        Note::Received(sender, record) => {
            index.set_checked(&(sender, record), false);
            None
        }
    }
}

/// Marks delivered `records` anchored once their anchor is final, and keeps
/// each one's anchor transaction in flight (see [`anchor_step`]). Only the
/// delivery task runs this, one record at a time, so no two steps for one
/// record overlap.
async fn check_anchors(ctx: &Messaging, records: &[RecordId]) {
    for record in records {
        if let Err(e) = anchor_step(ctx, record).await {
            tracing::debug!("anchor of {record} not submitted yet: {e:#}");
        }
    }
}

/// Anchors a delivered record exactly once. The signed anchor transaction is
/// stored (synced) before it leaves the node; until the chain shows the
/// anchor, that same transaction is offered and gossiped again, never a new
/// one, so a block landing between two checks or a restart before sync
/// cannot make a second anchor. Only when its nonce was used by another
/// transaction (it can then never be included) is a new one signed.
async fn anchor_step(ctx: &Messaging, record: &RecordId) -> anyhow::Result<()> {
    // The view first, the store after: the store is never behind the view,
    // so a nonce the view shows used is in a block the store has.
    let view = ctx.view();
    let Some(mut entry) = outbox_entry(&ctx.store, record)? else {
        return Ok(());
    };
    let Some(ciphertext_hash) = entry.ciphertext_hash else {
        return Ok(());
    };
    if entry.state != DeliveryState::Delivered {
        return Ok(());
    }
    let id = anchor_record_id(&ctx.account, record);
    if let Some(tx) = ChainStore::new(&*ctx.store).anchor_tx(&ctx.account, &id)? {
        entry.anchor_tx = Some(tx.0);
        advance(ctx, &mut entry, Happened::Anchored)?;
        tracing::info!("record {record} anchored in transaction {}", tx.short());
        return Ok(());
    }
    let next_nonce = view
        .state
        .members
        .get(&ctx.account)
        .map_or(0, |m| m.next_nonce);
    match stored_anchor(&ctx.store, record)? {
        Some(signed) if signed.tx.nonce >= next_nonce => {
            // Next in line, it must still pass the chain's rules (a
            // recipient revoked since, say): else it would be offered,
            // pruned and offered again forever, holding back every later
            // transaction of this node.
            if signed.tx.nonce == next_nonce
                && let Err(e) = view.state.check(
                    &signed,
                    view.tip.height + 1,
                    now_ms().max(view.tip.time_ms + 1),
                )
            {
                tracing::warn!("the chain refuses the anchor of {record}: {e}");
                let mut batch = WriteBatch::new();
                batch.delete(Column::Outbox, okey(b'a', record));
                let why = e.to_string();
                return advance_with(ctx, &mut entry, Happened::AnchorRefused(&why), batch);
            }
            if !ctx.pool.contains(signed.id()).await {
                // Not in this node's pool (a restart, or pruned): the same
                // transaction again, gossiped only if this node's own pool
                // takes it (one that refuses it holds a newer view, and the
                // next block's check decides again).
                match ctx.pool.offer(signed.clone()).await {
                    Ok(_) => ctx.pool.publish(&signed).await,
                    Err(e) => tracing::debug!("anchor of {record} not pooled again: {e}"),
                }
            }
            return Ok(());
        }
        Some(signed) => tracing::warn!(
            "the anchor transaction {} of {record} can never be included (another \
             transaction used its nonce {}): signing a new one",
            signed.id().short(),
            signed.tx.nonce
        ),
        None => {}
    }
    let kind = TxKind::AnchorRecord(RecordAnchor {
        record_id: id,
        ciphertext_hash: Hash(ciphertext_hash),
        recipient: entry.to,
    });
    let signed = ctx.pool.prepare(kind).await?;
    entry.anchor_tx = Some(signed.id().0);
    let mut batch = WriteBatch::new();
    batch.put(Column::Outbox, okey(b'a', record), signed.encode());
    save(ctx, &entry, batch)?;
    ctx.pool.publish(&signed).await;
    Ok(())
}

/// The anchor transaction stored for `record`, if one was signed.
fn stored_anchor(
    store: &crate::db::RocksStore,
    record: &RecordId,
) -> anyhow::Result<Option<SignedTransaction>> {
    store
        .get(Column::Outbox, &okey(b'a', record))?
        .map(|b| SignedTransaction::decode(&b).context("a stored anchor transaction"))
        .transpose()
}

/// Applies what `happened` to `entry` (the core lifecycle decides what
/// follows), in one synced write.
fn advance(ctx: &Messaging, entry: &mut OutboxEntry, happened: Happened<'_>) -> anyhow::Result<()> {
    advance_with(ctx, entry, happened, WriteBatch::new())
}

/// [`advance`], with `batch`'s changes in the same write.
fn advance_with(
    ctx: &Messaging,
    entry: &mut OutboxEntry,
    happened: Happened<'_>,
    mut batch: WriteBatch,
) -> anyhow::Result<()> {
    let step = lifecycle::step(
        entry.state,
        entry.attempts,
        happened,
        now_ms(),
        rand::random(),
    )?;
    let record = entry.record_id;
    if step.erase_keys {
        ctx.keys.erase_peer(&ctx.store, &entry.to)?;
    }
    if step.drop_envelope {
        batch.delete(Column::Outbox, okey(b'v', &record));
        entry.ciphertext_hash = None;
    }
    entry.state = step.state;
    if let Some(t) = step.next_attempt_ms {
        entry.next_attempt_ms = t;
    }
    entry.detail = Some(step.detail);
    save(ctx, entry, batch)
}

/// One delivery attempt of `record`.
async fn attempt(ctx: &Messaging, record: &RecordId) -> anyhow::Result<()> {
    let Some(mut entry) = outbox_entry(&ctx.store, record)? else {
        return Ok(());
    };
    if !matches!(entry.state, DeliveryState::Queued | DeliveryState::Sent) {
        ctx.note_outbox(&entry);
        return Ok(());
    }
    entry.attempts = entry.attempts.saturating_add(1);
    // The policy is checked again before every attempt: a revoked consent
    // or membership stops a queued record at once.
    if let Err(why) = permitted(ctx, entry.kind, entry.to, entry.patient) {
        tracing::warn!("{record} to {}: {why}", label(ctx, &entry.to));
        let why = why.to_string();
        return advance(ctx, &mut entry, Happened::PolicyRefused(&why));
    }
    let envelope = match ctx.store.get(Column::Outbox, &okey(b'v', record))? {
        Some(bytes) => Envelope::from_bytes(&bytes).context("a stored envelope")?,
        None => {
            // Nothing sealed yet is queued, whatever an older version stored.
            entry.state = DeliveryState::Queued;
            if let Err(e) = ctx.agree.ensure_key(entry.to).await {
                let why = format!("waiting for a key: {e}");
                return advance(ctx, &mut entry, Happened::NotSealed(&why));
            }
            match seal_now(ctx, &mut entry) {
                Ok(env) => env,
                Err(e) => {
                    let why = format!("{e:#}");
                    return advance(ctx, &mut entry, Happened::NotSealed(&why));
                }
            }
        }
    };
    let peer = peer_id_from_account(&entry.to)?;
    // Encoded, then taken back for the receipt check: no copy of the envelope.
    let message = MsgRequest::Deliver { envelope };
    let request = message.encode();
    let MsgRequest::Deliver { envelope } = message;
    let answer = ctx.net.request(RequestProtocol::Msg, peer, request).await;
    let response = match answer.map(|bytes| MsgResponse::decode(&bytes)) {
        Ok(Ok(r)) => r,
        Err(e) => {
            let why = format!("recipient not reached: {e}");
            return advance(ctx, &mut entry, Happened::NoReceipt(&why));
        }
        Ok(Err(e)) => {
            let why = format!("unreadable answer: {e}");
            return advance(ctx, &mut entry, Happened::NoReceipt(&why));
        }
    };
    match response {
        MsgResponse::Receipt { receipt } => {
            if let Err(e) = receipt.verify(&envelope) {
                tracing::warn!("receipt for {record} refused: {e}");
                let why = format!("bad receipt: {e}");
                return advance(ctx, &mut entry, Happened::NoReceipt(&why));
            }
            // The receipt is the proof of delivery: kept with the entry.
            let mut batch = WriteBatch::new();
            batch.put(
                Column::Outbox,
                okey(b'r', record),
                qward_core::codec::encode_infallible(&receipt),
            );
            advance_with(ctx, &mut entry, Happened::Receipt, batch)?;
            crate::metrics::Metrics::inc(&ctx.metrics.messages_sent);
            crate::metrics::Metrics::observe_ms(
                &ctx.metrics.delivery_seconds,
                now_ms().saturating_sub(entry.created_ms),
            );
            tracing::info!(
                "{} {record} delivered to {}",
                entry.kind,
                label(ctx, &entry.to)
            );
            // The note of this change wakes the delivery task, which anchors.
            Ok(())
        }
        MsgResponse::Refused { reason, retry } => {
            tracing::warn!("{} refused {record}: {reason}", label(ctx, &entry.to));
            let happened = Happened::Refused {
                reason: &reason,
                retry,
            };
            advance(ctx, &mut entry, happened)
        }
    }
}

/// The FHIR JSON of a sent record, decrypted from the store.
pub fn plaintext(
    ctx: &Messaging,
    entry: &OutboxEntry,
) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let record = entry.record_id;
    let at_rest = ctx
        .keys
        .at_rest(&ctx.store, RecordSlot::Sent(&record))?
        .with_context(|| format!("record {record}'s key was erased: the record is gone"))?;
    let sealed = ctx
        .store
        .get(Column::Outbox, &okey(b'p', &record))?
        .with_context(|| format!("record {record} has no payload"))?;
    Ok(open_at_rest(&at_rest, &record, &sealed)?)
}

/// Seals the record under the current key for its recipient and stores the
/// envelope with the key's use count, in one batch.
fn seal_now(ctx: &Messaging, entry: &mut OutboxEntry) -> anyhow::Result<Envelope> {
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
    let sealed = format!("sealed under key {}", envelope.key_id);
    advance_with(ctx, entry, Happened::Sealed(&sealed), batch)?;
    Ok(envelope)
}
