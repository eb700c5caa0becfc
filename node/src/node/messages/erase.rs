//! Erasing a record (crypto-shredding, GDPR Art. 17): this node's copies of
//! it (the sent copy and the received one) lose their at-rest keys, their
//! sealed payloads and the sent envelope, in one synced batch that also marks
//! them erased; then RocksDB is made to drop the deleted values from its
//! files (`RocksStore::purge`), and the erasure goes on the chain as a fact
//! (record id, author, block time: no health data). The metadata stays, so
//! an erased record is listed as erased, and its anchor still proves it was
//! delivered.

use std::sync::Arc;

use anyhow::{Context, bail};
use qward_core::api::DeliveryState;
use qward_core::chain::{Hash, RecordErasure, TxKind};
use qward_core::envelope::RecordId;
use qward_core::envelope::wire::anchor_record_id;
use qward_core::identity::AccountId;
use qward_core::storage::{Column, Store, WriteBatch};

use super::{Messaging, find_inbox, ikey, inbox_entries, okey, outbox_entries, outbox_entry};
use crate::node::clock::now_ms;
use crate::node::keys::RecordSlot;

/// What was erased: the network-wide ids of the copies (the ids their
/// senders anchored), for the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub record: RecordId,
    pub sent: bool,
    pub received: bool,
    /// This node's forwards of the received copy, erased with it.
    pub forwards: Vec<RecordId>,
    pub chain_ids: Vec<Hash>,
}

/// Which of this node's copies under one record id to erase: a sent copy
/// and a received one may share an id (each has its own key slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// Whatever this node holds under the id (`qward records erase`).
    All,
    Sent,
    Received,
}

fn still_delivering(e: &super::OutboxEntry) -> bool {
    matches!(
        e.state,
        DeliveryState::Queued | DeliveryState::Sent | DeliveryState::Delivered
    )
}

/// Erases this node's copies of `record` from the store and its files:
/// the sent copy, the received copy and every forward made of the received
/// copy (a forward is the same health data under a new id). A sent copy or
/// forward still being delivered or anchored is refused (its delivery needs
/// it), and so is a record already erased.
pub fn erase_local(ctx: &Messaging, record: &RecordId, copies: Copies) -> anyhow::Result<Erased> {
    let (sent, received) = (
        outbox_entry(&ctx.store, record)?,
        find_inbox(&ctx.store, record)?,
    );
    if sent.is_none() && received.is_none() {
        bail!("no record {record} in this node's outbox or inbox");
    }
    let mut sent = sent
        .filter(|_| copies != Copies::Received)
        .filter(|e| e.state != DeliveryState::Erased);
    let mut received = received
        .filter(|_| copies != Copies::Sent)
        .filter(|e| e.erased_ms.is_none());
    if sent.is_none() && received.is_none() {
        bail!("record {record} is already erased");
    }
    let mut forwards = Vec::new();
    if received.is_some() {
        for e in outbox_entries(&ctx.store)? {
            if e.forwarded_from == Some(*record) && e.state != DeliveryState::Erased {
                forwards.push(e);
            }
        }
    }
    for e in sent.iter().chain(forwards.iter()) {
        if still_delivering(e) {
            bail!(
                "record {} is still being delivered or anchored ({:?}); erase it once it is anchored or has failed",
                e.record_id,
                e.state
            );
        }
    }
    let now = now_ms();
    let mut batch = WriteBatch::new();
    let mut purge_keys: Vec<Vec<u8>> = Vec::new();
    let mut purge_outbox: Vec<Vec<u8>> = Vec::new();
    let mut purge_inbox: Vec<Vec<u8>> = Vec::new();
    let mut chain_ids = Vec::new();
    let detail = format!(
        "erased {} UTC: its key is destroyed",
        qward_core::calendar::utc_minute(now)
    );
    for e in sent.iter_mut().chain(forwards.iter_mut()) {
        let id = e.record_id;
        let slot = RecordSlot::Sent(&id);
        batch.delete(Column::Keys, slot.key());
        purge_keys.push(slot.key());
        for tag in [b'p', b'v'] {
            batch.delete(Column::Outbox, okey(tag, &id));
            purge_outbox.push(okey(tag, &id));
        }
        e.state = DeliveryState::Erased;
        e.detail = Some(detail.clone());
        batch.put(
            Column::Outbox,
            okey(b'e', &id),
            qward_core::codec::encode_infallible(&*e),
        );
        chain_ids.push(anchor_record_id(&ctx.account, &id));
    }
    if let Some(e) = received.as_mut() {
        let slot = RecordSlot::Received {
            sender: &e.from,
            record,
        };
        batch.delete(Column::Keys, slot.key());
        purge_keys.push(slot.key());
        let payload = ikey(b'p', &e.from, record);
        batch.delete(Column::Inbox, payload.clone());
        purge_inbox.push(payload);
        e.erased_ms = Some(now);
        batch.put(
            Column::Inbox,
            ikey(b'm', &e.from, record),
            qward_core::codec::encode_infallible(&*e),
        );
        chain_ids.push(anchor_record_id(&e.from, record));
    }
    batch.set_sync(true);
    ctx.store
        .write(batch)
        .context("erasing the record's key and payload")?;
    for (column, keys) in [
        (Column::Keys, &purge_keys),
        (Column::Outbox, &purge_outbox),
        (Column::Inbox, &purge_inbox),
    ] {
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        ctx.store
            .purge(column, &keys)
            .context("forcing the erased bytes out of the database files")?;
    }
    for e in sent.iter().chain(forwards.iter()) {
        ctx.note_outbox(e);
        super::info::emit(ctx, &super::info::outbox_info(ctx, e));
    }
    if let Some(e) = &received {
        super::info::emit(ctx, &super::info::inbox_info(ctx, e));
    }
    Ok(Erased {
        record: *record,
        sent: sent.is_some(),
        received: received.is_some(),
        forwards: forwards.iter().map(|e| e.record_id).collect(),
        chain_ids,
    })
}

/// Erases `record` (see [`erase_local`]) and submits one erasure fact per
/// copy to the chain; returns what was erased and the transactions' ids.
pub async fn erase(
    ctx: &Arc<Messaging>,
    record: &RecordId,
    copies: Copies,
) -> anyhow::Result<(Erased, Vec<Hash>)> {
    let erased = {
        let m = ctx.clone();
        let record = *record;
        tokio::task::spawn_blocking(move || erase_local(&m, &record, copies))
            .await
            .context("the erasure task")??
    };
    let mut txs = Vec::new();
    for id in &erased.chain_ids {
        let submitted = ctx
            .pool
            .submit(TxKind::EraseRecord(RecordErasure { record_id: *id }))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "the record is erased here, but its erasure did not reach the chain: {e}"
                )
            })?;
        txs.push(submitted.id);
    }
    Ok((erased, txs))
}

/// This node's copy whose network-wide id (as its sender anchors it) is
/// `id`: its local id, the patient it is about, and which copy it is;
/// `None` if it holds none.
pub fn find_by_network_id(
    ctx: &Messaging,
    id: &Hash,
) -> anyhow::Result<Option<(RecordId, AccountId, Copies)>> {
    for e in outbox_entries(&ctx.store)? {
        if anchor_record_id(&ctx.account, &e.record_id) == *id {
            return Ok(Some((e.record_id, e.patient, Copies::Sent)));
        }
    }
    for e in inbox_entries(&ctx.store)? {
        if anchor_record_id(&e.from, &e.record_id) == *id {
            return Ok(Some((e.record_id, e.patient, Copies::Received)));
        }
    }
    Ok(None)
}

/// A patient's request (a final `RequestErasure` naming this node): erases
/// this node's copy of the record when the requester is the patient it is
/// about and `honour` is on, logging either way. Runs off the consensus
/// task (erasure compacts files).
pub async fn on_request(
    ctx: Arc<Messaging>,
    access: crate::node::access::AccessLog,
    patient: AccountId,
    id: Hash,
    honour: bool,
) {
    let who = ctx.contacts.label(&patient);
    let m = ctx.clone();
    let found = tokio::task::spawn_blocking(move || find_by_network_id(&m, &id)).await;
    let (record, about, copy) = match found {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            tracing::info!(
                "{who} asked for the erasure of record {}, which this node does not hold",
                id.short()
            );
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!("cannot look up the record {who} asked to erase: {e:#}");
            return;
        }
        Err(e) => {
            tracing::warn!("the erasure lookup failed: {e}");
            return;
        }
    };
    if about != patient {
        tracing::warn!(
            "{who} asked for the erasure of record {record}, which is about someone else: refused"
        );
        return;
    }
    let user = format!("patient-request:{who}");
    if !honour {
        tracing::warn!(
            "{who} asks this node to erase record {record} (GDPR Art. 17); erase_on_patient_request is off, so a person must decide: `qward records erase {record}`"
        );
        let _ = access
            .record(crate::node::access::Access {
                user,
                action: "erasure-requested",
                record: Some(record),
                detail: "left for a person to decide (erase_on_patient_request = false)".into(),
            })
            .await;
        return;
    }
    let logged = access
        .record(crate::node::access::Access {
            user,
            action: "erase",
            record: Some(record),
            detail: "at the patient's request".into(),
        })
        .await;
    if let Err(e) = logged {
        tracing::warn!("not erasing record {record}: the access log cannot record it: {e:#}");
        return;
    }
    match erase(&ctx, &record, copy).await {
        Ok(_) => tracing::info!("erased record {record} at the request of {who}"),
        Err(e) => tracing::warn!("could not erase record {record} at the request of {who}: {e:#}"),
    }
}
