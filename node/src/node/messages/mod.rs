//! Record messaging (`/qward/msg/1`): the persisted outbox and inbox, what
//! the API shows of them, and the index the delivery task works from.
//!
//! Layout: `Column::Outbox`: `e` + record id -> [`OutboxEntry`], `p` + record
//! id -> the payload sealed at rest, `v` + record id -> the envelope once
//! sealed for the network, `r` + record id -> the recipient's signed receipt,
//! `a` + record id -> the signed anchor transaction (stored before it is
//! gossiped, so a record is anchored exactly once). `Column::Inbox`: `m` + sender + record id ->
//! [`InboxEntry`], `p` + sender + record id -> the plaintext sealed at rest,
//! `i` + record id -> the sender (record ids are unique in an inbox, so a
//! person can name a record by its id alone). Every change of a message is
//! one synced `WriteBatch`, so a crash leaves the old state or the new one.

pub mod erase;
pub mod inbox;
pub mod info;
pub mod outbox;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use qward_core::api::{DeliveryState, Event, RecordKindName};
use qward_core::codec;
use qward_core::envelope::{RecordId, RecordKind};
use qward_core::identity::{AccountId, Identity, Role};
use qward_core::storage::{Column, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::agree::AgreeHandle;
use super::keys::KeyStore;
use super::pool::PoolHandle;
use super::view::{ChainView, ViewReceiver};
use crate::contacts::Contacts;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::NetworkClient;

/// The largest stored entry (metadata only; payloads are stored apart).
const MAX_ENTRY_BYTES: usize = 64 * 1024;

pub(crate) fn okey(tag: u8, record: &RecordId) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&record.0);
    k
}

pub(crate) fn ikey(tag: u8, sender: &AccountId, record: &RecordId) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(&sender.0);
    k.extend_from_slice(&record.0);
    k
}

/// A message this node sends, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub record_id: RecordId,
    pub kind: RecordKind,
    pub to: AccountId,
    /// The patient the record is about (consent is checked against them).
    pub patient: AccountId,
    pub created_ms: u64,
    pub bytes: u64,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    /// Why the last attempt failed, or what happened last.
    pub detail: Option<String>,
    /// `blake3(ciphertext)` once sealed.
    pub ciphertext_hash: Option<[u8; 32]>,
    /// The anchor transaction's id once submitted.
    pub anchor_tx: Option<[u8; 32]>,
    /// The inbox record this one forwards, if it is a forward.
    pub forwarded_from: Option<RecordId>,
}

/// Whether the chain's anchor of a received record matches what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnchorCheck {
    /// Not on the chain yet.
    Pending,
    /// On the chain with the hash of the ciphertext this node received.
    Verified,
    /// On the chain with another hash: the sender anchored something else.
    Mismatch,
}

/// A message this node received, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxEntry {
    pub record_id: RecordId,
    pub kind: RecordKind,
    pub from: AccountId,
    pub patient: AccountId,
    pub created_ms: u64,
    pub received_ms: u64,
    pub bytes: u64,
    pub ciphertext_hash: [u8; 32],
    pub anchor: AnchorCheck,
    pub anchor_tx: Option<[u8; 32]>,
    /// When this node erased its copy (its at-rest key and payload are gone).
    pub erased_ms: Option<u64>,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> anyhow::Result<T> {
    codec::decode(bytes, MAX_ENTRY_BYTES).with_context(|| format!("a stored {what}"))
}

pub(crate) fn kind_name(kind: RecordKind) -> RecordKindName {
    match kind {
        RecordKind::Phr => RecordKindName::Phr,
        RecordKind::Report => RecordKindName::Report,
    }
}

/// What the delivery task must look at, kept in memory so that it never
/// scans payloads. The delivery task alone holds it; the others tell it of
/// each change they stored with a [`Note`].
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Outbox records waiting to be delivered, by their next attempt time.
    pending: BTreeMap<RecordId, u64>,
    /// Delivered outbox records whose anchor is not final yet.
    unanchored: HashSet<RecordId>,
    /// Inbox records whose anchor is not checked yet (sender, record).
    unchecked: HashSet<(AccountId, RecordId)>,
}

impl Index {
    /// Rebuilds the index from the store after a start or a crash.
    pub(crate) fn load(store: &RocksStore) -> anyhow::Result<Self> {
        let mut m = Index::default();
        for entry in outbox_entries(store)? {
            m.track_outbox(entry.record_id, entry.state, entry.next_attempt_ms);
        }
        for entry in inbox_entries(store)? {
            if entry.anchor == AnchorCheck::Pending {
                m.unchecked.insert((entry.from, entry.record_id));
            }
        }
        Ok(m)
    }

    pub(crate) fn track_outbox(&mut self, record: RecordId, state: DeliveryState, next_ms: u64) {
        match state {
            DeliveryState::Queued | DeliveryState::Sent => {
                self.pending.insert(record, next_ms);
                self.unanchored.remove(&record);
            }
            DeliveryState::Delivered => {
                self.pending.remove(&record);
                self.unanchored.insert(record);
            }
            _ => {
                self.pending.remove(&record);
                self.unanchored.remove(&record);
            }
        }
    }

    /// Outbox records due at `now_ms`, soonest first, at most `limit`, but
    /// none of `running` (an attempt of theirs is under way).
    pub(crate) fn due(
        &self,
        now_ms: u64,
        limit: usize,
        running: &HashSet<RecordId>,
    ) -> Vec<RecordId> {
        let mut due: Vec<(u64, RecordId)> = self
            .pending
            .iter()
            .filter(|(r, t)| **t <= now_ms && !running.contains(*r))
            .map(|(r, t)| (*t, *r))
            .collect();
        due.sort();
        due.into_iter().take(limit).map(|(_, r)| r).collect()
    }

    /// The earliest next attempt of a pending record not in `running`.
    pub(crate) fn next_due(&self, running: &HashSet<RecordId>) -> Option<u64> {
        self.pending
            .iter()
            .filter(|(r, _)| !running.contains(*r))
            .map(|(_, t)| *t)
            .min()
    }

    /// Puts off `record`'s next attempt to `until_ms` (an attempt failed
    /// before it could store what happened).
    pub(crate) fn defer(&mut self, record: &RecordId, until_ms: u64) {
        if let Some(t) = self.pending.get_mut(record) {
            *t = (*t).max(until_ms);
        }
    }

    pub(crate) fn unanchored(&self) -> Vec<RecordId> {
        self.unanchored.iter().copied().collect()
    }

    pub(crate) fn unchecked(&self) -> Vec<(AccountId, RecordId)> {
        self.unchecked.iter().copied().collect()
    }

    pub(crate) fn set_checked(&mut self, key: &(AccountId, RecordId), checked: bool) {
        if checked {
            self.unchecked.remove(key);
        } else {
            self.unchecked.insert(*key);
        }
    }
}

/// A change of the outbox or inbox, stored, told to the delivery task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Note {
    /// An outbox record is now in `state`, next tried at `next_ms`.
    Outbox {
        record: RecordId,
        state: DeliveryState,
        next_ms: u64,
    },
    /// A received record's anchor is to be checked (again).
    Received(AccountId, RecordId),
}

/// Messaging as the node's tasks see it: what sending, receiving and the
/// delivery task use (handles of other tasks and settings fixed at start),
/// and the way to tell the delivery task of a stored change.
pub struct Messaging {
    pub identity: Identity,
    pub account: AccountId,
    pub role: Role,
    /// This node's name, as shown in message views.
    pub name: String,
    pub store: Arc<RocksStore>,
    pub keys: Arc<KeyStore>,
    pub views: ViewReceiver,
    pub pool: PoolHandle,
    pub agree: AgreeHandle,
    pub net: NetworkClient,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub contacts: Contacts,
    notes: mpsc::UnboundedSender<Note>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").finish_non_exhaustive()
    }
}

impl Messaging {
    /// Messaging for the node, and the receiver of its notes for the
    /// delivery task ([`outbox::run`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        identity: Identity,
        role: Role,
        name: String,
        store: Arc<RocksStore>,
        keys: Arc<KeyStore>,
        views: ViewReceiver,
        pool: PoolHandle,
        agree: AgreeHandle,
        net: NetworkClient,
        events: broadcast::Sender<Event>,
        metrics: Arc<Metrics>,
        contacts: Contacts,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Note>) {
        let (notes, rx) = mpsc::unbounded_channel();
        let m = Messaging {
            account: identity.account(),
            identity,
            role,
            name,
            store,
            keys,
            views,
            pool,
            agree,
            net,
            events,
            metrics,
            contacts,
            notes,
        };
        (Arc::new(m), rx)
    }

    /// The chain as of the last import.
    pub fn view(&self) -> Arc<ChainView> {
        self.views.borrow().clone()
    }

    /// Sends an event to API subscribers (none listening is fine).
    pub fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Tells the delivery task an outbox entry changed (after it is stored).
    pub(crate) fn note_outbox(&self, e: &OutboxEntry) {
        let _ = self.notes.send(Note::Outbox {
            record: e.record_id,
            state: e.state,
            next_ms: e.next_attempt_ms,
        });
    }

    /// Tells the delivery task a received record's anchor is to be checked.
    pub(crate) fn note_received(&self, sender: AccountId, record: RecordId) {
        let _ = self.notes.send(Note::Received(sender, record));
    }
}

/// The recipient's receipt of a sent record, kept as proof of delivery.
pub fn outbox_receipt(
    store: &RocksStore,
    record: &RecordId,
) -> anyhow::Result<Option<qward_core::envelope::Receipt>> {
    store
        .get(Column::Outbox, &okey(b'r', record))?
        .map(|b| decode(&b, "receipt"))
        .transpose()
}

/// A sent record's envelope, as sealed (kept after delivery, so the receipt
/// can be checked against it).
pub fn outbox_envelope(
    store: &RocksStore,
    record: &RecordId,
) -> anyhow::Result<Option<qward_core::envelope::Envelope>> {
    store
        .get(Column::Outbox, &okey(b'v', record))?
        .map(|b| qward_core::envelope::Envelope::from_bytes(&b).context("a stored envelope"))
        .transpose()
}

/// One outbox entry.
pub fn outbox_entry(store: &RocksStore, record: &RecordId) -> anyhow::Result<Option<OutboxEntry>> {
    store
        .get(Column::Outbox, &okey(b'e', record))?
        .map(|b| decode(&b, "outbox entry"))
        .transpose()
}

/// Every outbox entry.
pub fn outbox_entries(store: &RocksStore) -> anyhow::Result<Vec<OutboxEntry>> {
    store
        .prefix(Column::Outbox, b"e", usize::MAX)?
        .into_iter()
        .map(|(_, v)| decode(&v, "outbox entry"))
        .collect()
}

/// One inbox entry.
pub fn inbox_entry(
    store: &RocksStore,
    sender: &AccountId,
    record: &RecordId,
) -> anyhow::Result<Option<InboxEntry>> {
    store
        .get(Column::Inbox, &ikey(b'm', sender, record))?
        .map(|b| decode(&b, "inbox entry"))
        .transpose()
}

/// Every inbox entry.
pub fn inbox_entries(store: &RocksStore) -> anyhow::Result<Vec<InboxEntry>> {
    store
        .prefix(Column::Inbox, b"m", usize::MAX)?
        .into_iter()
        .map(|(_, v)| decode(&v, "inbox entry"))
        .collect()
}

/// The inbox entry with `record` from any sender (through the `i` index).
pub fn find_inbox(store: &RocksStore, record: &RecordId) -> anyhow::Result<Option<InboxEntry>> {
    let Some(sender) = store.get(Column::Inbox, &okey(b'i', record))? else {
        return Ok(None);
    };
    let sender: [u8; 32] = sender
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("inbox index of record {record} is not an account"))?;
    inbox_entry(store, &AccountId(sender), record)
}

#[cfg(test)]
mod tests;
