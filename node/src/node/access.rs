//! The access-log task: the one writer of the node's access log
//! (`qward_core::access_log`), in `Column::Access`. Every read of health
//! data waits for its entry to be stored (synced) before the data is
//! answered. The task anchors the log's head on the chain [`ANCHOR_AFTER`]
//! after the first entry not yet anchored: at most one anchor a minute
//! however fast entries come, so a flood of accesses cannot flood the chain
//! (or this node's own transaction slots) with anchors.
//!
//! Layout of `Column::Access`: `e` + seq (big-endian) -> entry; `h` -> the
//! head.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use qward_core::access_log::{AccessEntry, Head};
use qward_core::api::{AccessEntryInfo, AuditVerifyReport};
use qward_core::chain::{AccessLogAnchor, ChainStore, TxKind};
use qward_core::codec;
use qward_core::envelope::RecordId;
use qward_core::identity::AccountId;
use qward_core::storage::{Column, Store, WriteBatch};
use tokio::sync::{mpsc, oneshot, watch};

use super::clock::now_ms;
use super::pool::PoolHandle;
use crate::db::RocksStore;

/// How long new entries wait for an anchor, at most; also the least time
/// between two anchors.
pub const ANCHOR_AFTER: Duration = Duration::from_secs(60);
/// Entries one `audit_log` answer holds, at most.
pub const MAX_PAGE: u64 = 5000;

const HEAD_KEY: &[u8] = b"h";

fn entry_key(seq: u64) -> Vec<u8> {
    let mut k = vec![b'e'];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The stored head (empty log when absent).
pub fn head(store: &RocksStore) -> anyhow::Result<Head> {
    match store.get(Column::Access, HEAD_KEY)? {
        None => Ok(Head::EMPTY),
        Some(b) => codec::decode(&b, 64).context("the access log's head"),
    }
}

/// One access to record.
#[derive(Debug, Clone)]
pub struct Access {
    pub user: String,
    pub action: &'static str,
    pub record: Option<RecordId>,
    pub detail: String,
}

struct Append {
    access: Access,
    reply: oneshot::Sender<anyhow::Result<u64>>,
}

/// The access log's handle.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Append>,
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append").finish_non_exhaustive()
    }
}

impl AccessLog {
    /// Stores an entry (synced) and answers its sequence number; fails when
    /// it could not be stored, and then the access must not happen.
    pub async fn record(&self, access: Access) -> anyhow::Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Append { access, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the access log is stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the access log is stopped"))?
    }

    /// Records without waiting (refusals in the API gate): the entry is
    /// stored in order with the others, or lost only if the node stops.
    pub fn record_later(&self, access: Access) {
        let (reply, _) = oneshot::channel();
        if self.tx.try_send(Append { access, reply }).is_err() {
            tracing::warn!("the access log is full or stopped; an access went unrecorded");
        }
    }
}

/// Starts the access-log task.
pub fn spawn(
    store: Arc<RocksStore>,
    pool: PoolHandle,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(AccessLog, tokio::task::JoinHandle<()>)> {
    let head = head(&store)?;
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(run(store, pool, head, rx, shutdown));
    Ok((AccessLog { tx }, task))
}

async fn run(
    store: Arc<RocksStore>,
    pool: PoolHandle,
    mut head: Head,
    mut rx: mpsc::Receiver<Append>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Entries up to `anchored` were anchored (or sent to be) by this
    // process. What an earlier process logged is anchored again soon after
    // a start (it may have stopped before anchoring; once more is harmless).
    let mut anchored = 0;
    let mut first_unanchored = (head.entries > 0).then(tokio::time::Instant::now);
    loop {
        let deadline = first_unanchored.map(|t| t + ANCHOR_AFTER);
        let cmd = tokio::select! {
            c = rx.recv() => match c { Some(c) => Some(c), None => break },
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => None,
            changed = shutdown.changed() => match changed {
                Ok(()) if !*shutdown.borrow() => continue,
                _ => break,
            },
        };
        if let Some(Append { access, reply }) = cmd {
            let result = append(&store, &mut head, access);
            let _ = reply.send(result);
            if first_unanchored.is_none() && head.entries > anchored {
                first_unanchored = Some(tokio::time::Instant::now());
            }
            continue;
        }
        // The deadline: anchor what is new; a failed anchor is tried again
        // after the next interval.
        first_unanchored = None;
        if head.entries > anchored {
            if anchor(&pool, head).await {
                anchored = head.entries;
            } else {
                first_unanchored = Some(tokio::time::Instant::now());
            }
        }
    }
}

fn append(store: &RocksStore, head: &mut Head, a: Access) -> anyhow::Result<u64> {
    let entry = AccessEntry::next(
        head,
        now_ms(),
        a.user,
        a.action.to_string(),
        a.record,
        a.detail,
    );
    let next = Head::after(&entry);
    let mut batch = WriteBatch::new();
    batch.put(Column::Access, entry_key(entry.seq), entry.to_bytes());
    batch.put(Column::Access, HEAD_KEY, codec::encode_infallible(&next));
    batch.set_sync(true);
    store.write(batch).context("storing an access-log entry")?;
    *head = next;
    Ok(entry.seq)
}

/// Submits an anchor of `head`; whether it was accepted.
async fn anchor(pool: &PoolHandle, head: Head) -> bool {
    let kind = TxKind::AnchorAccessLog(AccessLogAnchor {
        entries: head.entries,
        head: head.hash,
    });
    match pool.submit(kind).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                "could not anchor the access log at {} entries: {e}",
                head.entries
            );
            false
        }
    }
}

/// Entries from `from`, at most `limit`, as the API shows them.
pub fn page(store: &RocksStore, from: u64, limit: u64) -> anyhow::Result<Vec<AccessEntryInfo>> {
    let limit = limit.min(MAX_PAGE) as usize;
    let rows = store.range(
        Column::Access,
        &entry_key(from),
        Some(b"f".as_slice()),
        limit,
    )?;
    rows.into_iter()
        .map(|(_, v)| {
            let e = AccessEntry::from_bytes(&v).context("an access-log entry")?;
            Ok(AccessEntryInfo {
                seq: e.seq,
                time_ms: e.time_ms,
                hash: e.hash().to_hex(),
                user: e.user,
                action: e.action,
                record_id: e.record.map(|r| r.to_hex()),
                detail: e.detail,
            })
        })
        .collect()
}

/// The anchors of `account`'s access log on the chain, oldest first.
fn anchors_on_chain(store: &RocksStore, account: &AccountId) -> anyhow::Result<Vec<Head>> {
    let chain = ChainStore::new(store);
    let tip = chain.tip().context("the chain's tip")?;
    let mut out = Vec::new();
    for h in 1..=tip.height {
        let Some(block) = chain.block(h)? else {
            continue;
        };
        for stx in &block.block.txs {
            if let TxKind::AnchorAccessLog(a) = &stx.tx.kind
                && stx.tx.author == *account
            {
                out.push(Head {
                    entries: a.entries,
                    hash: a.head,
                });
            }
        }
    }
    Ok(out)
}

/// The log's entries in order, up to `upto`, read page by page (so a long
/// log is never held whole).
fn entries_upto(
    store: &RocksStore,
    upto: u64,
) -> impl Iterator<Item = Result<AccessEntry, String>> + '_ {
    const PAGE: usize = 1024;
    let mut next = 0u64;
    let mut page: std::vec::IntoIter<Result<AccessEntry, String>> = Vec::new().into_iter();
    let mut done = false;
    std::iter::from_fn(move || {
        loop {
            if let Some(item) = page.next() {
                return Some(item);
            }
            if done || next >= upto {
                return None;
            }
            let want = PAGE.min((upto - next) as usize);
            match store.range(
                Column::Access,
                &entry_key(next),
                Some(b"f".as_slice()),
                want,
            ) {
                Ok(rows) => {
                    if rows.len() < want {
                        done = true;
                    }
                    next = next.saturating_add(rows.len() as u64);
                    page = rows
                        .into_iter()
                        .map(|(_, v)| AccessEntry::from_bytes(&v).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                        .into_iter();
                    if page.len() == 0 {
                        return None;
                    }
                }
                Err(e) => {
                    done = true;
                    return Some(Err(format!("the store: {e}")));
                }
            }
        }
    })
}

/// Verifies the log, up to the head read first (entries appended while it
/// runs are the next verification's), against that head and every anchor of
/// it on the chain (which this reads block by block).
pub fn verify(store: &RocksStore, account: &AccountId) -> anyhow::Result<AuditVerifyReport> {
    let head = head(store)?;
    let anchors = anchors_on_chain(store, account)?;
    let anchored_entries = anchors.iter().map(|a| a.entries).max().unwrap_or(0);
    // Entries past the head are there only if someone added them: they
    // fail the check as they should (the iterator stops at the head, so
    // look for one more; an append running now moves the head too, and is
    // no addition).
    let extra = store
        .get(Column::Access, &entry_key(head.entries))?
        .is_some()
        && self::head(store)? == head;
    let result = qward_core::access_log::verify(entries_upto(store, head.entries), head, &anchors)
        .map_err(|(at, b)| (at, b.to_string()));
    let result = match result {
        Ok(v) if extra => Err((
            v.entries,
            format!(
                "an entry {} follows the head: an entry was added",
                v.entries
            ),
        )),
        other => other.map(|v| v.entries),
    };
    Ok(match result {
        Ok(entries) => AuditVerifyReport {
            ok: true,
            entries,
            anchored_entries,
            failed_seq: None,
            reason: None,
        },
        Err((at, reason)) => AuditVerifyReport {
            ok: false,
            entries: head.entries,
            anchored_entries,
            failed_seq: Some(at),
            reason: Some(reason),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(user: &str, action: &'static str) -> Access {
        Access {
            user: user.into(),
            action,
            record: Some(RecordId([3; 16])),
            detail: String::new(),
        }
    }

    #[test]
    fn entries_are_stored_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::create(&dir.path().join("db")).unwrap();
        let mut h = head(&store).unwrap();
        for i in 0..5 {
            let seq = append(&store, &mut h, access(&format!("u{i}"), "read")).unwrap();
            assert_eq!(seq, i);
        }
        drop(store);
        let store = RocksStore::open(&dir.path().join("db")).unwrap();
        assert_eq!(head(&store).unwrap(), h);
        let rows = page(&store, 2, 10).unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(rows[0].user, "u2");
    }
}
