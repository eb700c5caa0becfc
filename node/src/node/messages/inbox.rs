//! Receiving: checks an envelope from a peer (sender is the authenticated
//! peer, addressed to this node, a key this node holds, authentic, fresh,
//! valid FHIR, consent where the rules need it), stores it once, and answers
//! with a signed receipt; refusals say why and are logged and counted. Also
//! reads stored records back, and checks the chain's anchors of them.

use anyhow::Context;
use qward_core::chain::{ChainStore, TxKind};
use qward_core::envelope::policy::{self, Delivery};
use qward_core::envelope::wire::{MsgRequest, MsgResponse, Retry, anchor_record_id};
use qward_core::envelope::{
    AtRestKey, Envelope, Receipt, ReplayCheck, ReplayPolicy, anchor_hash, open, open_at_rest,
    seal_at_rest,
};
use qward_core::identity::AccountId;
use qward_core::storage::{Column, Store, WriteBatch};

use super::Messaging;
use super::info::{emit, inbox_info};
use super::{AnchorCheck, InboxEntry, Index, ikey, inbox_entry};
use crate::metrics::Metrics;
use crate::net::{PeerId, account_from_peer_id};
use crate::node::clock::now_ms;
use crate::node::keys::RecordSlot;

fn refused(reason: String, retry: Retry) -> MsgResponse {
    MsgResponse::Refused { reason, retry }
}

/// Answers one `/qward/msg/1` request from `peer`.
pub fn serve(ctx: &Messaging, peer: PeerId, data: &[u8]) -> Vec<u8> {
    let who = account_from_peer_id(&peer);
    let label = who
        .map(|a| ctx.contacts.label(&a))
        .unwrap_or_else(|| peer.to_string());
    let response = match (who, MsgRequest::decode(data)) {
        (None, _) => refused("peer id is not an account".into(), Retry::Never),
        (_, Err(e)) => refused(format!("malformed message: {e}"), Retry::Never),
        (Some(sender), Ok(MsgRequest::Deliver { envelope })) => {
            match receive(ctx, sender, envelope) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("could not store a record from {label}: {e:#}");
                    refused("the recipient could not store it".into(), Retry::Later)
                }
            }
        }
    };
    if let MsgResponse::Refused { reason, .. } = &response {
        Metrics::inc(&ctx.metrics.messages_refused);
        tracing::warn!("refused an envelope from {label}: {reason}");
    }
    response.encode()
}

fn receive(ctx: &Messaging, sender: AccountId, envelope: Envelope) -> anyhow::Result<MsgResponse> {
    let h = &envelope.header;
    if envelope.sender != sender || h.sender != sender {
        return Ok(refused(
            format!(
                "envelope claims sender {} but came from {}",
                envelope.sender.short(),
                sender.short()
            ),
            Retry::Never,
        ));
    }
    if envelope.recipient != ctx.account || h.recipient != ctx.account {
        return Ok(refused(
            format!(
                "envelope is for {}, not this node",
                envelope.recipient.short()
            ),
            Retry::Never,
        ));
    }
    // Authenticate first: nothing unauthenticated reaches the store.
    let opened = ctx.keys.with_opening_key(&sender, &envelope.key_id, |key| {
        open(key, &envelope, &ctx.account)
    });
    let plaintext = match opened {
        Err(e) => return Ok(refused(format!("{e}"), Retry::Reseal)),
        Ok(Err(e)) => return Ok(refused(format!("{e}"), Retry::Never)),
        Ok(Ok(p)) => p,
    };
    let hash = anchor_hash(&envelope);
    if let Some(existing) = inbox_entry(&ctx.store, &sender, &h.record_id)? {
        if existing.ciphertext_hash != hash {
            return reseal(ctx, &envelope, &plaintext, existing);
        }
        tracing::info!(
            "envelope {} from {} is a replay of a record already received: not stored again, receipt re-sent",
            h.record_id,
            ctx.contacts.label(&sender)
        );
        let receipt = Receipt::issue(&ctx.identity, &envelope, existing.received_ms)?;
        return Ok(MsgResponse::Receipt { receipt });
    }
    if super::find_inbox(&ctx.store, &h.record_id)?.is_some() {
        // The same id from another sender (the same sender was answered above).
        return Ok(refused(
            format!("record id {} is already taken in this inbox", h.record_id),
            Retry::Never,
        ));
    }
    let now = now_ms();
    // The inbox itself is the seen-set: a (sender, record id) already stored
    // was answered above, stricter than the replay key (which also covers the
    // nonce), and kept as long as the record. What is left to check is age.
    match ReplayPolicy::default().check(&envelope, now, |_| false) {
        ReplayCheck::Fresh { .. } | ReplayCheck::Duplicate { .. } => {}
        ReplayCheck::TooOld { age_ms, max_age_ms } => {
            return Ok(refused(
                format!("envelope is {age_ms} ms old, older than {max_age_ms} ms"),
                Retry::Never,
            ));
        }
        ReplayCheck::FromTheFuture {
            ahead_ms,
            max_skew_ms,
        } => {
            return Ok(refused(
                format!("envelope is {ahead_ms} ms in the future (skew limit {max_skew_ms} ms)"),
                Retry::Later,
            ));
        }
    }
    if let Err(e) = qward_core::fhir::validate(h.kind, &plaintext) {
        return Ok(refused(
            format!("not a valid {} record: {e}", h.kind),
            Retry::Never,
        ));
    }
    if let Some((reason, retry)) = rule_refusal(ctx, &envelope) {
        return Ok(refused(reason, retry));
    }
    let (at_rest, sealed) = {
        let mut rng = rand::rng();
        let k = AtRestKey::random(&mut rng);
        let sealed = seal_at_rest(&k, &h.record_id, &plaintext, &mut rng)?;
        (k, sealed)
    };
    let entry = InboxEntry {
        record_id: h.record_id,
        kind: h.kind,
        from: sender,
        patient: h.patient,
        created_ms: h.created_at_ms,
        received_ms: now,
        bytes: plaintext.len() as u64,
        ciphertext_hash: hash,
        anchor: AnchorCheck::Pending,
        anchor_tx: None,
        erased_ms: None,
    };
    let mut batch = WriteBatch::new();
    ctx.keys.put_at_rest(
        &mut batch,
        RecordSlot::Received {
            sender: &h.sender,
            record: &h.record_id,
        },
        &at_rest,
    );
    batch.put(Column::Inbox, ikey(b'p', &sender, &h.record_id), sealed);
    batch.put(
        Column::Inbox,
        ikey(b'm', &sender, &h.record_id),
        qward_core::codec::encode_infallible(&entry),
    );
    batch.put(
        Column::Inbox,
        super::okey(b'i', &h.record_id),
        sender.0.to_vec(),
    );
    batch.set_sync(true);
    ctx.store
        .write(batch)
        .context("storing a received record")?;
    ctx.note_received(sender, h.record_id);
    Metrics::inc(&ctx.metrics.messages_received);
    tracing::info!(
        "{} {} received from {} ({} bytes)",
        h.kind,
        h.record_id,
        ctx.contacts.label(&sender),
        entry.bytes
    );
    emit(ctx, &inbox_info(ctx, &entry));
    let receipt = Receipt::issue(&ctx.identity, &envelope, now)?;
    Ok(MsgResponse::Receipt { receipt })
}

/// The chain's messaging policy for this envelope (the rules the sender
/// checked too); `Some` refuses, with what the sender should do.
fn rule_refusal(ctx: &Messaging, envelope: &Envelope) -> Option<(String, Retry)> {
    let h = &envelope.header;
    let delivery = Delivery {
        kind: h.kind,
        sender: h.sender,
        recipient: ctx.account,
        patient: h.patient,
    };
    let checked = policy::check(&ctx.view().state, &delivery, now_ms());
    checked.err().map(|refusal| {
        let why = refusal.explain(|a| ctx.contacts.label(a));
        (why, refusal.retry())
    })
}

/// A record already stored, arriving again under another ciphertext: the
/// sender sealed it again (it lost the receipt, then the key changed). The
/// same record is acknowledged and its entry takes the new ciphertext's
/// hash, the one the sender anchors once it holds this receipt; but only
/// while no anchor of it is on the chain (after that the stored hash is the
/// evidence and stays), only under the freshness and messaging rules of any
/// new envelope, and only for the same kind, patient and content.
fn reseal(
    ctx: &Messaging,
    envelope: &Envelope,
    plaintext: &[u8],
    mut existing: InboxEntry,
) -> anyhow::Result<MsgResponse> {
    let h = &envelope.header;
    let other_content = || {
        refused(
            format!(
                "record {} was received before with other content",
                h.record_id
            ),
            Retry::Never,
        )
    };
    let anchored = ChainStore::new(&*ctx.store)
        .anchor_tx(&h.sender, &anchor_record_id(&h.sender, &h.record_id))?
        .is_some();
    if existing.anchor != AnchorCheck::Pending || anchored {
        return Ok(other_content());
    }
    let now = now_ms();
    match ReplayPolicy::default().check(envelope, now, |_| false) {
        ReplayCheck::Fresh { .. } | ReplayCheck::Duplicate { .. } => {}
        ReplayCheck::TooOld { .. } | ReplayCheck::FromTheFuture { .. } => {
            return Ok(refused(
                format!("record {} sealed again, but not fresh", h.record_id),
                Retry::Never,
            ));
        }
    }
    if let Some((reason, retry)) = rule_refusal(ctx, envelope) {
        return Ok(refused(reason, retry));
    }
    let same = existing.kind == h.kind
        && existing.patient == h.patient
        && self::plaintext(ctx, &existing)?.as_slice() == plaintext;
    if !same {
        return Ok(other_content());
    }
    existing.ciphertext_hash = anchor_hash(envelope);
    existing.anchor_tx = None;
    ctx.store.write(entry_batch(&existing))?;
    ctx.note_received(h.sender, h.record_id);
    tracing::info!(
        "record {} from {} arrived again sealed under another key: not stored again, receipt sent",
        h.record_id,
        ctx.contacts.label(&h.sender)
    );
    let receipt = Receipt::issue(&ctx.identity, envelope, existing.received_ms)?;
    Ok(MsgResponse::Receipt { receipt })
}

/// A synced batch that stores `entry` (its metadata only).
fn entry_batch(entry: &InboxEntry) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(
        Column::Inbox,
        ikey(b'm', &entry.from, &entry.record_id),
        qward_core::codec::encode_infallible(entry),
    );
    batch.set_sync(true);
    batch
}

/// The decrypted FHIR JSON of a received record.
pub fn plaintext(
    ctx: &Messaging,
    entry: &InboxEntry,
) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let key = ctx
        .keys
        .at_rest(
            &ctx.store,
            RecordSlot::Received {
                sender: &entry.from,
                record: &entry.record_id,
            },
        )?
        .with_context(|| {
            format!(
                "record {}'s key was erased: the record is gone",
                entry.record_id
            )
        })?;
    let sealed = ctx
        .store
        .get(Column::Inbox, &ikey(b'p', &entry.from, &entry.record_id))?
        .with_context(|| format!("record {} has no stored payload", entry.record_id))?;
    Ok(open_at_rest(&key, &entry.record_id, &sealed)?)
}

/// Checks received records against the chain's anchors.
pub(crate) fn check_anchors(ctx: &Messaging, index: &mut Index) {
    let chain = ChainStore::new(&*ctx.store);
    for key in index.unchecked() {
        let (sender, record) = key;
        let Ok(Some(mut entry)) = inbox_entry(&ctx.store, &sender, &record) else {
            index.set_checked(&key, true);
            continue;
        };
        let id = anchor_record_id(&sender, &record);
        let Ok(Some(tx_id)) = chain.anchor_tx(&sender, &id) else {
            continue;
        };
        let Ok(Some((_, tx))) = chain.transaction(&tx_id) else {
            continue;
        };
        let TxKind::AnchorRecord(a) = &tx.tx.kind else {
            continue;
        };
        let matches = a.ciphertext_hash.0 == entry.ciphertext_hash
            && a.recipient == ctx.account
            && tx.tx.author == sender;
        entry.anchor = if matches {
            AnchorCheck::Verified
        } else {
            tracing::warn!(
                "anchor of record {record} from {} does not match what was received",
                ctx.contacts.label(&sender)
            );
            AnchorCheck::Mismatch
        };
        entry.anchor_tx = Some(tx_id.0);
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Inbox,
            ikey(b'm', &sender, &record),
            qward_core::codec::encode_infallible(&entry),
        );
        if ctx.store.write(batch).is_ok() {
            index.set_checked(&key, true);
            emit(ctx, &inbox_info(ctx, &entry));
        }
    }
}
