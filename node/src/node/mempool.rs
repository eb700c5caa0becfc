//! The mempool: signed transactions waiting for a block, with replay
//! protection by nonce and transaction id, and quotas that keep one member
//! (or one hospital's puppet members) from crowding out everyone else.
//!
//! An author's transaction is *ready* when its nonce is the author's next
//! nonce on chain or directly follows the author's contiguous pending run; it
//! is *parked* when a nonce before it is missing. Only ready transactions are
//! block candidates. An author's nonces must lie in `next..next +`
//! [`MAX_PER_AUTHOR`] (its next nonce on chain onward), so it holds at most
//! that many; at most [`MAX_PARKED_PER_AUTHOR`] of them parked. Parked ones
//! expire [`PARKED_TTL_MS`] after arrival.
//!
//! A full pool makes room for a new ready transaction by evicting a parked
//! one (of the author holding the most parked), else the last transaction of
//! the author holding the most; it refuses only a newcomer whose author
//! already holds the most, and parked newcomers.
//!
//! Each author's summary (next nonce on chain, end of its ready run, counts)
//! is updated incrementally on insert (a gap filled promotes only the parked
//! run behind it) and recomputed from that author's at most
//! [`MAX_PER_AUTHOR`] entries when something is removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use qward_core::chain::{ChainState, Hash, SignedTransaction};
use qward_core::identity::AccountId;

/// Transactions held at most.
pub const MAX_TXS: usize = 20_000;
/// Transactions one author may hold at most: its nonces must lie in
/// `next..next + MAX_PER_AUTHOR`. Large enough for one busy hospital to fill
/// a block (docs/network.md's benchmark: four accounts, blocks of ~800
/// transactions); a parking attack is bounded by [`MAX_PARKED_PER_AUTHOR`],
/// [`PARKED_TTL_MS`] and eviction, not by this.
pub const MAX_PER_AUTHOR: usize = 256;
/// Parked transactions (behind a nonce gap) one author may hold at most.
pub const MAX_PARKED_PER_AUTHOR: usize = 16;
/// How long a parked transaction is kept, from its arrival.
pub const PARKED_TTL_MS: u64 = 60_000;

/// The bounds a [`Mempool`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Transactions held at most.
    pub max_txs: usize,
    /// Transactions one author may hold: its nonces lie in
    /// `next..next + max_per_author`.
    pub max_per_author: usize,
    /// Parked transactions one author may hold.
    pub max_parked_per_author: usize,
    /// How long a parked transaction is kept, from its arrival.
    pub parked_ttl_ms: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: MAX_TXS,
            max_per_author: MAX_PER_AUTHOR,
            max_parked_per_author: MAX_PARKED_PER_AUTHOR,
            parked_ttl_ms: PARKED_TTL_MS,
        }
    }
}

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("transaction {0} is already pending")]
    Duplicate(String),
    #[error("nonce {nonce} was already used (next is {next}): a replay")]
    Replay { nonce: u64, next: u64 },
    #[error(
        "another pending transaction of this author already carries nonce {nonce}: \
         wait for it to be included, then use the next nonce"
    )]
    NoncePending { nonce: u64 },
    #[error(
        "nonce {nonce} is too far ahead of the next nonce {next}: an author may have \
         nonces {next} to {last} pending; wait until some are included"
    )]
    NonceGap { nonce: u64, next: u64, last: u64 },
    #[error(
        "nonce {nonce} leaves a gap (nonce {missing} is not pending) and this author \
         already has {max} transactions waiting behind gaps: send nonce {missing} first"
    )]
    TooManyParked {
        nonce: u64,
        missing: u64,
        max: usize,
    },
    #[error("author {0} is not an active member")]
    NotMember(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("transaction is for chain {got}, this chain is {expected}")]
    WrongChain { got: u64, expected: u64 },
    #[error(
        "the mempool is full and nonce {nonce} leaves a gap (nonce {missing} is not \
         pending): send nonce {missing} first"
    )]
    ParkedWhenFull { nonce: u64, missing: u64 },
    #[error(
        "the mempool is full ({max_txs} transactions) and this author already holds as \
         many as any other: wait for a block"
    )]
    Full { max_txs: usize },
}

impl MempoolError {
    /// Whether the transaction itself is at fault (forged, for another chain,
    /// or by a non-member), so that a peer relaying it may be blamed. Every
    /// other refusal depends on this pool's contents or timing, and honest
    /// peers relay such transactions too.
    pub fn blames_sender(&self) -> bool {
        matches!(
            self,
            MempoolError::NotMember(_)
                | MempoolError::BadSignature
                | MempoolError::WrongChain { .. }
        )
    }
}

/// A pending transaction and what the pool knows about it.
#[derive(Debug)]
struct PendingTx {
    tx: SignedTransaction,
    /// When this node received it (its clock, unix milliseconds).
    arrival_ms: u64,
    /// Behind a nonce gap: not a block candidate, expires.
    parked: bool,
}

/// A ready transaction's place among block candidates: (round, arrival,
/// author, nonce), where round `r` is the author's `r`-th ready transaction.
/// Unique per transaction, so the order is total.
type CandidateOrder = (usize, u64, AccountId, u64);

/// One author's pending transactions, summarised.
#[derive(Debug, Clone, Copy, Default)]
struct AuthorQueue {
    /// The author's next nonce on chain, as of the last insert or prune.
    chain_next: u64,
    /// The first nonce from `chain_next` on that is not pending: nonces in
    /// `chain_next..ready_end` are ready, higher ones parked.
    ready_end: u64,
    held: usize,
    parked: usize,
}

/// Pending transactions, by id and by (author, nonce), with per-author
/// summaries and the indexes that expiry and eviction need.
#[derive(Debug, Default)]
pub struct Mempool {
    limits: MempoolLimits,
    by_id: HashMap<Hash, PendingTx>,
    by_author: BTreeMap<(AccountId, u64), Hash>,
    authors: HashMap<AccountId, AuthorQueue>,
    /// Parked transactions, oldest arrival first.
    parked_by_arrival: BTreeSet<(u64, Hash)>,
    /// Authors by transactions held (every author with one).
    by_held: BTreeSet<(usize, AccountId)>,
    /// Authors by parked transactions held (only authors with one).
    by_parked: BTreeSet<(usize, AccountId)>,
}

impl Mempool {
    /// An empty pool with the production limits.
    pub fn new() -> Self {
        Self::with_limits(MempoolLimits::default())
    }

    /// An empty pool enforcing `limits`.
    pub fn with_limits(limits: MempoolLimits) -> Self {
        Mempool {
            limits,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> MempoolLimits {
        self.limits
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Transactions held behind a nonce gap.
    pub fn parked_len(&self) -> usize {
        self.parked_by_arrival.len()
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.by_id.contains_key(id)
    }

    /// Checks `tx` against `state` and the quotas and adds it, received at
    /// `now_ms` (this node's clock). The signature is verified here, before a
    /// full pool evicts anything for it. Parked transactions that expired by
    /// `now_ms` are dropped first.
    pub fn insert(
        &mut self,
        tx: SignedTransaction,
        state: &ChainState,
        now_ms: u64,
    ) -> Result<Hash, MempoolError> {
        self.expire(now_ms);
        let id = tx.id();
        if self.by_id.contains_key(&id) {
            return Err(MempoolError::Duplicate(id.to_hex()));
        }
        if tx.tx.chain_id != state.chain_id {
            return Err(MempoolError::WrongChain {
                got: tx.tx.chain_id,
                expected: state.chain_id,
            });
        }
        let author = tx.tx.author;
        let nonce = tx.tx.nonce;
        let member = state.members.get(&author).filter(|m| m.active);
        let Some(member) = member else {
            return Err(MempoolError::NotMember(author.short()));
        };
        let next = member.next_nonce;
        if nonce < next {
            return Err(MempoolError::Replay { nonce, next });
        }
        // The window bounds how many one author holds: one per nonce in it.
        let window = self.limits.max_per_author as u64;
        if nonce.saturating_sub(next) >= window {
            return Err(MempoolError::NonceGap {
                nonce,
                next,
                last: (next + window).saturating_sub(1),
            });
        }
        if self.by_author.contains_key(&(author, nonce)) {
            return Err(MempoolError::NoncePending { nonce });
        }
        if self
            .authors
            .get(&author)
            .is_some_and(|q| q.chain_next != next)
        {
            // `state` is newer than the last prune: forget the used nonces.
            self.settle_author(author, next);
        }
        let queue = self.authors.get(&author).copied().unwrap_or(AuthorQueue {
            chain_next: next,
            ready_end: next,
            held: 0,
            parked: 0,
        });
        let ready = nonce == queue.ready_end;
        if !ready && queue.parked >= self.limits.max_parked_per_author {
            return Err(MempoolError::TooManyParked {
                nonce,
                missing: queue.ready_end,
                max: self.limits.max_parked_per_author,
            });
        }
        let victim = if self.by_id.len() >= self.limits.max_txs {
            if !ready {
                return Err(MempoolError::ParkedWhenFull {
                    nonce,
                    missing: queue.ready_end,
                });
            }
            let victim = self.eviction_victim(&author, queue.held);
            if victim.is_none() {
                return Err(MempoolError::Full {
                    max_txs: self.limits.max_txs,
                });
            }
            victim
        } else {
            None
        };
        tx.verify_signature(&state.genesis_hash)
            .map_err(|_| MempoolError::BadSignature)?;
        if let Some((victim, victim_nonce)) = victim {
            self.remove_entry(&victim, victim_nonce);
            self.reclassify(victim);
        }
        // The victim is never one of `author`'s, so `queue` still holds.
        self.by_author.insert((author, nonce), id);
        self.by_id.insert(
            id,
            PendingTx {
                tx,
                arrival_ms: now_ms,
                parked: !ready,
            },
        );
        let mut new = AuthorQueue {
            held: queue.held + 1,
            ..queue
        };
        if ready {
            new.ready_end += 1;
            // Promote the parked run the gap was holding back.
            while let Some(next_id) = self.by_author.get(&(author, new.ready_end)).copied() {
                if let Some(p) = self.by_id.get_mut(&next_id)
                    && p.parked
                {
                    p.parked = false;
                    self.parked_by_arrival.remove(&(p.arrival_ms, next_id));
                    new.parked = new.parked.saturating_sub(1);
                }
                new.ready_end += 1;
            }
        } else {
            self.parked_by_arrival.insert((now_ms, id));
            new.parked += 1;
        }
        self.set_queue(author, queue, new);
        Ok(id)
    }

    /// The next nonce `author` should use, counting its pending transactions.
    pub fn next_nonce(&self, author: &AccountId, state: &ChainState) -> u64 {
        let base = state.members.get(author).map(|m| m.next_nonce).unwrap_or(0);
        let mut n = base;
        while self.by_author.contains_key(&(*author, n)) {
            n += 1;
        }
        n
    }

    /// Up to `max` ready transactions for a block: round-robin across authors
    /// (every author's first before anyone's second, each round oldest
    /// arrival first), each author's in nonce order. Parked ones never.
    pub fn candidates(&self, max: usize) -> Vec<SignedTransaction> {
        let mut ready: Vec<(CandidateOrder, &PendingTx)> = Vec::new();
        for (author, q) in &self.authors {
            let run = self
                .by_author
                .range((*author, q.chain_next)..(*author, q.ready_end));
            for (round, ((_, nonce), id)) in run.enumerate() {
                if let Some(p) = self.by_id.get(id) {
                    ready.push(((round, p.arrival_ms, *author, *nonce), p));
                }
            }
        }
        if ready.len() > max {
            if max == 0 {
                return Vec::new();
            }
            ready.select_nth_unstable_by_key(max - 1, |(key, _)| *key);
            ready.truncate(max);
        }
        ready.sort_unstable_by_key(|(key, _)| *key);
        ready.into_iter().map(|(_, p)| p.tx.clone()).collect()
    }

    /// Drops what a new block made stale: included transactions, any whose
    /// nonce is now used, those of authors no longer active members, each
    /// author's next transaction if the chain's rules refuse it (it could
    /// never be included, and would block the author's later ones), and
    /// parked transactions older than the TTL at `time_ms` (the time the next
    /// block may carry, within the allowed clock drift of this node's).
    ///
    /// Returns the arrival times of the transactions whose nonce the chain
    /// used (included, or another of the author's with that nonce).
    pub fn prune(&mut self, state: &ChainState, next_height: u64, time_ms: u64) -> Vec<u64> {
        let mut settled = Vec::new();
        let authors: Vec<AccountId> = self.authors.keys().copied().collect();
        for author in authors {
            match state.members.get(&author).filter(|m| m.active) {
                Some(m) => settled.extend(self.settle_author(author, m.next_nonce)),
                None => {
                    let nonces: Vec<u64> = self.nonces_of(&author).collect();
                    for nonce in nonces {
                        self.remove_entry(&author, nonce);
                    }
                    self.reclassify(author);
                }
            }
        }
        let heads: Vec<(AccountId, u64)> = self
            .authors
            .iter()
            .map(|(a, q)| (*a, q.chain_next))
            .filter(|key| self.by_author.contains_key(key))
            .collect();
        for (author, nonce) in heads {
            let refused = self
                .by_author
                .get(&(author, nonce))
                .and_then(|id| self.by_id.get(id))
                .is_some_and(|p| head_refused(state, &p.tx, next_height, time_ms));
            if refused {
                self.remove_entry(&author, nonce);
                self.reclassify(author);
            }
        }
        self.expire(time_ms);
        settled
    }

    /// Drops parked transactions that arrived `parked_ttl_ms` or more before
    /// `now_ms`; returns how many. Cheap when none expired.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut touched = BTreeSet::new();
        let mut dropped = 0;
        while let Some(&(arrival_ms, id)) = self.parked_by_arrival.first() {
            if now_ms.saturating_sub(arrival_ms) < self.limits.parked_ttl_ms {
                break;
            }
            let key = self.by_id.get(&id).map(|p| (p.tx.tx.author, p.tx.tx.nonce));
            match key {
                Some((author, nonce)) => {
                    self.remove_entry(&author, nonce);
                    touched.insert(author);
                    dropped += 1;
                }
                // Unreachable by construction; never loop on a stale entry.
                None => {
                    self.parked_by_arrival.remove(&(arrival_ms, id));
                }
            }
        }
        // Dropping parked transactions leaves the ready runs as they were.
        for author in touched {
            self.reclassify(author);
        }
        dropped
    }

    /// What a full pool evicts for a ready transaction of `author`, who holds
    /// `held`: the oldest parked transaction of the (other) author holding the
    /// most parked; else the last transaction of the author holding the most,
    /// if that is more than `author` holds. Never one of `author`'s own.
    fn eviction_victim(&self, author: &AccountId, held: usize) -> Option<(AccountId, u64)> {
        if let Some((_, hog)) = self.by_parked.iter().rev().find(|(_, a)| a != author) {
            return self
                .nonces_of(hog)
                .filter_map(|nonce| {
                    let p = self.by_id.get(self.by_author.get(&(*hog, nonce))?)?;
                    p.parked.then_some((p.arrival_ms, nonce))
                })
                .min()
                .map(|(_, nonce)| (*hog, nonce));
        }
        let (hog_held, hog) = self.by_held.iter().rev().find(|(_, a)| a != author)?;
        if *hog_held <= held {
            return None;
        }
        self.nonces_of(hog).next_back().map(|nonce| (*hog, nonce))
    }

    /// `author`'s pending nonces, ascending.
    fn nonces_of(&self, author: &AccountId) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.by_author
            .range((*author, 0)..=(*author, u64::MAX))
            .map(|((_, nonce), _)| *nonce)
    }

    /// Records `author`'s next nonce on chain as `chain_next`, drops its
    /// transactions below it and reclassifies the rest.
    fn settle_author(&mut self, author: AccountId, chain_next: u64) -> Vec<u64> {
        let used: Vec<u64> = self
            .nonces_of(&author)
            .take_while(|n| *n < chain_next)
            .collect();
        let arrivals = used
            .into_iter()
            .filter_map(|nonce| self.remove_entry(&author, nonce))
            .collect();
        if let Some(q) = self.authors.get_mut(&author) {
            q.chain_next = chain_next;
        }
        self.reclassify(author);
        arrivals
    }

    /// Removes one transaction from the maps and the expiry index; the
    /// caller reclassifies its author.
    /// Returns the removed transaction's arrival time.
    fn remove_entry(&mut self, author: &AccountId, nonce: u64) -> Option<u64> {
        let id = self.by_author.remove(&(*author, nonce))?;
        let p = self.by_id.remove(&id)?;
        if p.parked {
            self.parked_by_arrival.remove(&(p.arrival_ms, id));
        }
        Some(p.arrival_ms)
    }

    /// Recomputes which of `author`'s transactions are ready and parked, and
    /// its place in the eviction indexes. O(its pending count).
    fn reclassify(&mut self, author: AccountId) {
        let Some(old) = self.authors.get(&author).copied() else {
            return;
        };
        let run: Vec<(u64, Hash)> = self
            .by_author
            .range((author, 0)..=(author, u64::MAX))
            .map(|((_, nonce), id)| (*nonce, *id))
            .collect();
        let mut new = AuthorQueue {
            chain_next: old.chain_next,
            ready_end: old.chain_next,
            held: run.len(),
            parked: 0,
        };
        for (nonce, id) in run {
            let parked = if nonce == new.ready_end {
                new.ready_end += 1;
                false
            } else {
                new.parked += 1;
                true
            };
            if let Some(p) = self.by_id.get_mut(&id)
                && p.parked != parked
            {
                p.parked = parked;
                if parked {
                    self.parked_by_arrival.insert((p.arrival_ms, id));
                } else {
                    self.parked_by_arrival.remove(&(p.arrival_ms, id));
                }
            }
        }
        self.set_queue(author, old, new);
    }

    /// Replaces `author`'s summary `old` (all zero if it had none) by `new`,
    /// and its place in the eviction indexes.
    fn set_queue(&mut self, author: AccountId, old: AuthorQueue, new: AuthorQueue) {
        self.by_held.remove(&(old.held, author));
        self.by_parked.remove(&(old.parked, author));
        if new.held == 0 {
            self.authors.remove(&author);
            return;
        }
        self.by_held.insert((new.held, author));
        if new.parked > 0 {
            self.by_parked.insert((new.parked, author));
        }
        self.authors.insert(author, new);
    }
}

/// Whether the chain's rules refuse `tx` as the next block's transaction
/// (checked without changing or copying the state).
fn head_refused(
    state: &ChainState,
    tx: &SignedTransaction,
    next_height: u64,
    time_ms: u64,
) -> bool {
    state.check(tx, next_height, time_ms).is_err()
}

#[cfg(test)]
mod tests {
    use qward_core::chain::Transaction;
    use qward_core::chain::testkit::TestChain;
    use qward_core::chain::{ConsentGrant, ConsentScope, RecordAnchor, TxKind};
    use qward_core::identity::{Identity, Role};

    use super::*;

    /// Small limits, so that a test fills the pool with a few transactions.
    const SMALL: MempoolLimits = MempoolLimits {
        max_txs: 6,
        max_per_author: 4,
        max_parked_per_author: 2,
        parked_ttl_ms: 1_000,
    };

    fn register(chain: &mut TestChain, by: usize, seed: u64) -> SignedTransaction {
        let k = chain.add_key(seed);
        let account = chain.keys[k].account();
        chain.sign_by(
            by,
            TxKind::RegisterMember {
                account,
                role: Role::Doctor,
            },
        )
    }

    /// A record anchor by `by` with `nonce`, valid under the chain's rules.
    fn anchor(chain: &TestChain, by: &Identity, nonce: u64) -> SignedTransaction {
        let author = by.account();
        let mut seed = author.0.to_vec();
        seed.extend_from_slice(&nonce.to_le_bytes());
        Transaction {
            chain_id: chain.genesis.chain_id,
            author,
            nonce,
            kind: TxKind::AnchorRecord(RecordAnchor {
                record_id: Hash::digest("qward/test/record", &seed),
                ciphertext_hash: Hash::ZERO,
                recipient: chain.patient.account(),
            }),
        }
        .sign(&chain.state.genesis_hash, by)
    }

    fn copy(identity: &Identity) -> Identity {
        Identity::from_secret_bytes(identity.secret_bytes().as_slice()).unwrap()
    }

    fn ids(txs: &[SignedTransaction]) -> Vec<Hash> {
        txs.iter().map(SignedTransaction::id).collect()
    }

    #[test]
    fn duplicates_and_replays_of_committed_transactions_are_refused() {
        let mut chain = TestChain::new(1, 4);
        let mut pool = Mempool::new();
        let now = chain.tip.time_ms;
        let tx = register(&mut chain, 0, 10);
        pool.insert(tx.clone(), &chain.state, now).unwrap();
        assert!(matches!(
            pool.insert(tx.clone(), &chain.state, now),
            Err(MempoolError::Duplicate(_))
        ));
        chain.commit(vec![tx.clone()]);
        pool.prune(&chain.state, chain.tip.height + 1, chain.tip.time_ms + 1);
        assert!(pool.is_empty(), "a committed transaction stayed pending");
        assert_eq!(
            pool.insert(tx, &chain.state, now),
            Err(MempoolError::Replay { nonce: 0, next: 1 })
        );
    }

    #[test]
    fn forged_foreign_and_far_future_transactions_are_refused() {
        let mut chain = TestChain::new(2, 4);
        let mut pool = Mempool::new();
        let now = chain.tip.time_ms;
        let mut forged = register(&mut chain, 0, 11);
        forged.sig.0[0] ^= 1;
        assert_eq!(
            pool.insert(forged, &chain.state, now),
            Err(MempoolError::BadSignature)
        );

        let outsider = chain.add_key(12);
        let key = copy(&chain.keys[outsider]);
        let by_outsider = chain.sign(
            &key,
            TxKind::RevokeMember {
                account: key.account(),
            },
        );
        assert!(matches!(
            pool.insert(by_outsider, &chain.state, now),
            Err(MempoolError::NotMember(_))
        ));

        let mut other_chain = register(&mut chain, 1, 13);
        other_chain.tx.chain_id += 1;
        let other_chain = other_chain
            .tx
            .sign(&chain.state.genesis_hash, &chain.keys[1]);
        assert!(matches!(
            pool.insert(other_chain, &chain.state, now),
            Err(MempoolError::WrongChain { .. })
        ));

        let far = anchor(&chain, &chain.keys[2], MAX_PER_AUTHOR as u64);
        assert_eq!(
            pool.insert(far, &chain.state, now),
            Err(MempoolError::NonceGap {
                nonce: MAX_PER_AUTHOR as u64,
                next: 0,
                last: MAX_PER_AUTHOR as u64 - 1,
            })
        );
        assert!(pool.is_empty());
    }

    #[test]
    fn a_transaction_the_rules_refuse_is_evicted_and_unblocks_its_author() {
        let mut chain = TestChain::new(3, 4);
        let mut pool = Mempool::new();
        // A hospital revoking an unknown account: signed and well-formed, refused by the rules.
        let stranger = chain.add_key(14);
        let account = chain.keys[stranger].account();
        let bad = chain.sign_by(0, TxKind::RevokeMember { account });
        pool.insert(bad, &chain.state, chain.tip.time_ms).unwrap();
        assert_eq!(pool.next_nonce(&chain.keys[0].account(), &chain.state), 1);
        pool.prune(&chain.state, chain.tip.height + 1, chain.tip.time_ms + 1);
        assert!(
            pool.is_empty(),
            "a transaction the chain refuses stayed in the mempool"
        );
        assert_eq!(pool.next_nonce(&chain.keys[0].account(), &chain.state), 0);
    }

    #[test]
    fn candidates_keep_each_authors_nonce_order() {
        let mut chain = TestChain::new(4, 4);
        let mut pool = Mempool::new();
        let now = chain.tip.time_ms;
        let a = register(&mut chain, 0, 20);
        let b = register(&mut chain, 0, 21);
        let c = register(&mut chain, 1, 22);
        for t in [b.clone(), c, a.clone()] {
            pool.insert(t, &chain.state, now).unwrap();
        }
        let picked = pool.candidates(10);
        let pos = |t: &SignedTransaction| picked.iter().position(|p| p.id() == t.id()).unwrap();
        assert!(pos(&a) < pos(&b));
        assert_eq!(picked.len(), 3);
    }

    /// The attack: a malicious hospital registers puppet members and
    /// fills every mempool with transactions parked behind nonce gaps. Before
    /// quotas, eviction and expiry, the patient's revocation got `Full`.
    #[test]
    fn parking_attack_cannot_block_an_honest_transaction() {
        let limits = MempoolLimits {
            max_txs: 12,
            max_per_author: 4,
            max_parked_per_author: 3,
            parked_ttl_ms: 60_000,
        };
        let mut chain = TestChain::new(5, 4);
        let patient = copy(&chain.patient);
        let grantee = chain.keys[1].account();
        let grant = chain.sign(
            &patient,
            TxKind::GrantConsent(ConsentGrant {
                grantee,
                scope: ConsentScope::Records,
                expires_at_ms: chain.tip.time_ms + 10_000_000,
            }),
        );
        let puppets = limits.max_txs / limits.max_parked_per_author;
        let mut registrations = vec![grant];
        let mut puppet_keys = Vec::new();
        for i in 0..puppets {
            let k = chain.add_key(100 + i as u64);
            puppet_keys.push(k);
            let account = chain.keys[k].account();
            registrations.push(chain.sign_by(
                0,
                TxKind::RegisterMember {
                    account,
                    role: Role::Doctor,
                },
            ));
        }
        chain.commit(registrations);

        let mut pool = Mempool::with_limits(limits);
        let t0 = chain.tip.time_ms;
        for &k in &puppet_keys {
            // Nonce 0 is never sent: everything after it is parked for good.
            for nonce in 1..=limits.max_parked_per_author as u64 {
                let tx = anchor(&chain, &chain.keys[k], nonce);
                pool.insert(tx, &chain.state, t0).unwrap();
            }
        }
        assert_eq!(pool.len(), limits.max_txs);
        assert_eq!(pool.parked_len(), limits.max_txs);
        assert!(pool.candidates(100).is_empty());

        let revoke = chain.sign(
            &patient,
            TxKind::RevokeConsent {
                grantee,
                scope: ConsentScope::Records,
            },
        );
        let id = pool
            .insert(revoke.clone(), &chain.state, t0 + 1)
            .expect("a full pool of parked transactions refused a patient's revocation");
        assert_eq!(pool.len(), limits.max_txs);
        assert_eq!(pool.parked_len(), limits.max_txs - 1);
        assert_eq!(ids(&pool.candidates(100)), vec![id]);

        // A block later, after the TTL, the parked transactions are gone.
        chain.commit(pool.candidates(100));
        pool.prune(
            &chain.state,
            chain.tip.height + 1,
            t0 + limits.parked_ttl_ms,
        );
        assert!(pool.is_empty(), "{} transactions stayed", pool.len());
        assert!(!chain.state.consent_allows(
            &patient.account(),
            &grantee,
            ConsentScope::Records,
            chain.tip.time_ms
        ));
    }

    #[test]
    fn each_author_is_held_to_its_quotas() {
        let limits = MempoolLimits {
            max_txs: 100,
            ..SMALL
        };
        let chain = TestChain::new(6, 4);
        let mut pool = Mempool::with_limits(limits);
        let now = chain.tip.time_ms;
        let (h0, h1) = (&chain.keys[0], &chain.keys[1]);

        // Ready: the nonce window is the quota.
        for nonce in 0..4 {
            pool.insert(anchor(&chain, h0, nonce), &chain.state, now)
                .unwrap();
        }
        let refused = pool.insert(anchor(&chain, h0, 4), &chain.state, now);
        assert_eq!(
            refused,
            Err(MempoolError::NonceGap {
                nonce: 4,
                next: 0,
                last: 3
            })
        );
        // Clients (and the network benchmark) retry on this wording.
        assert!(refused.unwrap_err().to_string().contains("too far ahead"));
        let other_kind = Transaction {
            chain_id: chain.genesis.chain_id,
            author: h0.account(),
            nonce: 0,
            kind: TxKind::RevokeMember {
                account: h0.account(),
            },
        }
        .sign(&chain.state.genesis_hash, h0);
        assert_eq!(
            pool.insert(other_kind, &chain.state, now),
            Err(MempoolError::NoncePending { nonce: 0 })
        );
        assert_eq!(pool.len(), 4);

        // Parked: at most two behind the gap at nonce 0.
        for nonce in [3, 2] {
            pool.insert(anchor(&chain, h1, nonce), &chain.state, now)
                .unwrap();
        }
        assert_eq!(pool.parked_len(), 2);
        let refused = pool.insert(anchor(&chain, h1, 1), &chain.state, now);
        assert_eq!(
            refused,
            Err(MempoolError::TooManyParked {
                nonce: 1,
                missing: 0,
                max: 2
            })
        );
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("send nonce 0 first")
        );
        assert!(matches!(
            pool.insert(anchor(&chain, h1, 4), &chain.state, now),
            Err(MempoolError::NonceGap { .. })
        ));

        // Filling the gap makes the parked ones ready, in nonce order.
        pool.insert(anchor(&chain, h1, 0), &chain.state, now)
            .unwrap();
        assert_eq!(pool.parked_len(), 2, "nonce 1 is still missing");
        pool.insert(anchor(&chain, h1, 1), &chain.state, now)
            .unwrap();
        assert_eq!(pool.parked_len(), 0);
        let picked: Vec<u64> = pool
            .candidates(100)
            .iter()
            .filter(|t| t.tx.author == h1.account())
            .map(|t| t.tx.nonce)
            .collect();
        assert_eq!(picked, vec![0, 1, 2, 3]);
        assert_eq!(pool.len(), 8);
    }

    #[test]
    fn parked_transactions_expire_and_ready_ones_stay() {
        let chain = TestChain::new(7, 4);
        let mut pool = Mempool::with_limits(SMALL);
        let t0 = chain.tip.time_ms;
        let ready = pool
            .insert(anchor(&chain, &chain.keys[0], 0), &chain.state, t0)
            .unwrap();
        let early = pool
            .insert(anchor(&chain, &chain.keys[1], 1), &chain.state, t0)
            .unwrap();
        let late = pool
            .insert(anchor(&chain, &chain.keys[2], 1), &chain.state, t0 + 500)
            .unwrap();
        assert_eq!(pool.parked_len(), 2);

        assert_eq!(pool.expire(t0 + SMALL.parked_ttl_ms - 1), 0);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.expire(t0 + SMALL.parked_ttl_ms), 1);
        assert!(!pool.contains(&early) && pool.contains(&late));

        // The block prune expires too; the ready one stays however old it is.
        pool.prune(
            &chain.state,
            chain.tip.height + 1,
            t0 + 10 * SMALL.parked_ttl_ms,
        );
        assert!(!pool.contains(&late));
        assert!(pool.contains(&ready));
        assert_eq!(pool.len(), 1);

        // An insert expires what is due, without waiting for a block.
        let parked = pool
            .insert(anchor(&chain, &chain.keys[3], 1), &chain.state, t0)
            .unwrap();
        pool.insert(
            anchor(&chain, &chain.keys[3], 3),
            &chain.state,
            t0 + SMALL.parked_ttl_ms,
        )
        .unwrap();
        assert!(!pool.contains(&parked));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn a_full_pool_evicts_parked_first_then_the_largest_holders_last() {
        let chain = TestChain::new(8, 4);
        let mut pool = Mempool::with_limits(SMALL);
        let t = chain.tip.time_ms;
        let (h0, h1, h2) = (&chain.keys[0], &chain.keys[1], &chain.keys[2]);
        for nonce in 0..4 {
            pool.insert(anchor(&chain, h0, nonce), &chain.state, t)
                .unwrap();
        }
        // h1's nonce 3 arrives before its nonce 2: the older is evicted first.
        let h1_older = pool
            .insert(anchor(&chain, h1, 3), &chain.state, t + 1)
            .unwrap();
        let h1_newer = pool
            .insert(anchor(&chain, h1, 2), &chain.state, t + 2)
            .unwrap();
        assert_eq!(pool.len(), SMALL.max_txs);

        assert_eq!(
            pool.insert(anchor(&chain, h2, 1), &chain.state, t + 3),
            Err(MempoolError::ParkedWhenFull {
                nonce: 1,
                missing: 0
            }),
            "a parked newcomer evicted something"
        );
        pool.insert(anchor(&chain, h2, 0), &chain.state, t + 3)
            .unwrap();
        assert!(!pool.contains(&h1_older) && pool.contains(&h1_newer));
        pool.insert(anchor(&chain, h2, 1), &chain.state, t + 4)
            .unwrap();
        assert!(!pool.contains(&h1_newer));
        assert_eq!(pool.parked_len(), 0);

        // No parked left: the author holding the most loses its last nonce.
        pool.insert(anchor(&chain, h2, 2), &chain.state, t + 5)
            .unwrap();
        assert_eq!(pool.next_nonce(&h0.account(), &chain.state), 3);
        assert_eq!(pool.len(), SMALL.max_txs);
        // h2 now holds as many as h0: nothing to evict for it.
        assert_eq!(
            pool.insert(anchor(&chain, h2, 3), &chain.state, t + 6),
            Err(MempoolError::Full {
                max_txs: SMALL.max_txs
            })
        );
        // Every author's run is still contiguous from its next nonce.
        let mut picked = pool.candidates(100);
        picked.sort_by_key(|t| (t.tx.author, t.tx.nonce));
        let runs: Vec<(AccountId, u64)> =
            picked.iter().map(|t| (t.tx.author, t.tx.nonce)).collect();
        let mut expected = vec![(h0.account(), 0), (h0.account(), 1), (h0.account(), 2)];
        expected.extend([(h2.account(), 0), (h2.account(), 1), (h2.account(), 2)]);
        expected.sort();
        assert_eq!(runs, expected);
    }

    #[test]
    fn eviction_never_takes_the_newcomers_own_transactions() {
        let chain = TestChain::new(9, 4);
        let mut pool = Mempool::with_limits(SMALL);
        let t = chain.tip.time_ms;
        let (h0, h1) = (&chain.keys[0], &chain.keys[1]);
        for nonce in 0..4 {
            pool.insert(anchor(&chain, h0, nonce), &chain.state, t)
                .unwrap();
        }
        let parked: Vec<Hash> = [2, 3]
            .into_iter()
            .map(|n| pool.insert(anchor(&chain, h1, n), &chain.state, t).unwrap())
            .collect();
        // h1 holds the most parked, but its own nonce 0 evicts h0's last instead.
        pool.insert(anchor(&chain, h1, 0), &chain.state, t + 1)
            .unwrap();
        assert!(parked.iter().all(|id| pool.contains(id)));
        assert_eq!(pool.next_nonce(&h0.account(), &chain.state), 3);
        // Now h1 holds as many as h0: its nonce 1 is refused rather than
        // taking from h0, and nothing of h1's was given up for it.
        assert_eq!(
            pool.insert(anchor(&chain, h1, 1), &chain.state, t + 2),
            Err(MempoolError::Full {
                max_txs: SMALL.max_txs
            })
        );
        assert!(parked.iter().all(|id| pool.contains(id)));
        assert_eq!(pool.next_nonce(&h1.account(), &chain.state), 1);
    }

    #[test]
    fn candidates_take_turns_across_authors_in_nonce_order() {
        let chain = TestChain::new(10, 4);
        let mut pool = Mempool::new();
        let t = chain.tip.time_ms;
        let (h0, h1, h2) = (&chain.keys[0], &chain.keys[1], &chain.keys[2]);
        let mut insert = |by: &Identity, nonce: u64, at: u64| {
            let tx = anchor(&chain, by, nonce);
            pool.insert(tx.clone(), &chain.state, at).unwrap();
            tx
        };
        let h1_0 = insert(h1, 0, t);
        let h1_1 = insert(h1, 1, t + 1);
        // h0's arrive in reverse nonce order.
        let h0_2 = insert(h0, 2, t + 2);
        let h0_1 = insert(h0, 1, t + 3);
        let h0_0 = insert(h0, 0, t + 4);
        let h2_0 = insert(h2, 0, t + 5);
        let h2_parked = insert(h2, 5, t + 5);

        let all = [h1_0, h0_0, h2_0, h1_1, h0_1, h0_2];
        assert_eq!(ids(&pool.candidates(100)), ids(&all));
        assert_eq!(ids(&pool.candidates(3)), ids(&all[..3]));
        assert!(pool.candidates(0).is_empty());
        assert!(!ids(&pool.candidates(100)).contains(&h2_parked.id()));
    }

    #[test]
    fn a_block_that_fills_a_gap_makes_parked_transactions_ready() {
        let mut chain = TestChain::new(11, 4);
        let mut pool = Mempool::new();
        let h0 = copy(&chain.keys[0]);
        let gap = anchor(&chain, &h0, 0);
        let after = anchor(&chain, &h0, 1);
        pool.insert(after.clone(), &chain.state, chain.tip.time_ms)
            .unwrap();
        assert_eq!(pool.parked_len(), 1);
        assert!(pool.candidates(10).is_empty());
        // Nonce 0 reached the chain through another node's pool.
        chain.commit(vec![gap]);
        pool.prune(&chain.state, chain.tip.height + 1, chain.tip.time_ms + 1);
        assert_eq!(pool.parked_len(), 0);
        assert_eq!(ids(&pool.candidates(10)), vec![after.id()]);
    }

    #[test]
    fn a_revoked_members_transactions_are_dropped() {
        let mut chain = TestChain::new(12, 4);
        let registration = register(&mut chain, 0, 30);
        chain.commit(vec![registration]);
        let doctor = copy(&chain.keys[chain.keys.len() - 1]);
        let account = doctor.account();
        let mut pool = Mempool::new();
        for nonce in [0, 1, 3] {
            pool.insert(
                anchor(&chain, &doctor, nonce),
                &chain.state,
                chain.tip.time_ms,
            )
            .unwrap();
        }
        let revoke = chain.sign_by(0, TxKind::RevokeMember { account });
        chain.commit(vec![revoke]);
        pool.prune(&chain.state, chain.tip.height + 1, chain.tip.time_ms + 1);
        assert!(pool.is_empty());
        assert_eq!(pool.parked_len(), 0);
        assert!(pool.candidates(10).is_empty());
    }

    #[test]
    fn only_a_faulty_transaction_blames_the_peer_that_relayed_it() {
        let pool_state = [
            MempoolError::Duplicate(String::new()),
            MempoolError::Replay { nonce: 0, next: 1 },
            MempoolError::NoncePending { nonce: 0 },
            MempoolError::NonceGap {
                nonce: 300,
                next: 0,
                last: 255,
            },
            MempoolError::TooManyParked {
                nonce: 3,
                missing: 1,
                max: 16,
            },
            MempoolError::ParkedWhenFull {
                nonce: 3,
                missing: 1,
            },
            MempoolError::Full { max_txs: MAX_TXS },
        ];
        assert!(pool_state.iter().all(|e| !e.blames_sender()));
        let faulty = [
            MempoolError::NotMember(String::new()),
            MempoolError::BadSignature,
            MempoolError::WrongChain {
                got: 1,
                expected: 2,
            },
        ];
        assert!(faulty.iter().all(MempoolError::blames_sender));
    }
}
