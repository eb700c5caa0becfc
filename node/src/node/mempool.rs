//! The mempool: signed transactions waiting for a block, bounded in count and
//! per author, with replay protection by nonce and transaction id.

use std::collections::{BTreeMap, HashMap};

use qward_core::chain::{ChainState, Hash, SignedTransaction};
use qward_core::identity::AccountId;

/// Transactions held at most.
pub const MAX_TXS: usize = 20_000;
/// How far ahead of an author's next nonce a transaction may be.
pub const MAX_NONCE_GAP: u64 = 256;

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("transaction {0} is already pending")]
    Duplicate(String),
    #[error("nonce {nonce} was already used (next is {next}): a replay")]
    Replay { nonce: u64, next: u64 },
    #[error("nonce {nonce} is too far ahead of the next nonce {next}")]
    NonceGap { nonce: u64, next: u64 },
    #[error("author {0} is not an active member")]
    NotMember(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("transaction is for chain {got}, this chain is {expected}")]
    WrongChain { got: u64, expected: u64 },
    #[error("the mempool is full ({MAX_TXS} transactions)")]
    Full,
}

/// Pending transactions, by id and by (author, nonce).
#[derive(Debug, Default)]
pub struct Mempool {
    by_id: HashMap<Hash, SignedTransaction>,
    by_author: BTreeMap<(AccountId, u64), Hash>,
}

impl Mempool {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.by_id.contains_key(id)
    }

    /// Checks `tx` against `state` and adds it. The signature is verified here.
    pub fn insert(
        &mut self,
        tx: SignedTransaction,
        state: &ChainState,
    ) -> Result<Hash, MempoolError> {
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
        let member = state.members.get(&author).filter(|m| m.active);
        let Some(member) = member else {
            return Err(MempoolError::NotMember(author.short()));
        };
        let next = member.next_nonce;
        if tx.tx.nonce < next {
            return Err(MempoolError::Replay {
                nonce: tx.tx.nonce,
                next,
            });
        }
        if tx.tx.nonce >= next + MAX_NONCE_GAP {
            return Err(MempoolError::NonceGap {
                nonce: tx.tx.nonce,
                next,
            });
        }
        if self.by_author.contains_key(&(author, tx.tx.nonce)) {
            return Err(MempoolError::Replay {
                nonce: tx.tx.nonce,
                next,
            });
        }
        if self.by_id.len() >= MAX_TXS {
            return Err(MempoolError::Full);
        }
        tx.verify_signature(&state.genesis_hash)
            .map_err(|_| MempoolError::BadSignature)?;
        self.by_author.insert((author, tx.tx.nonce), id);
        self.by_id.insert(id, tx);
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

    /// Up to `max` candidates for a block, each author's in nonce order.
    pub fn candidates(&self, max: usize) -> Vec<SignedTransaction> {
        let mut txs: Vec<&SignedTransaction> = self.by_id.values().collect();
        txs.sort_by_key(|t| (t.tx.nonce, t.tx.author));
        txs.into_iter().take(max).cloned().collect()
    }

    /// Drops what a new block made stale: included transactions, any whose
    /// nonce is now used, and each author's next transaction if the chain's
    /// rules refuse it (it could never be included, and would block the
    /// author's later ones).
    pub fn prune(&mut self, state: &ChainState, next_height: u64, time_ms: u64) {
        self.prune_used(state);
        let heads: Vec<(AccountId, u64)> = state
            .members
            .iter()
            .filter(|(a, m)| self.by_author.contains_key(&(**a, m.next_nonce)))
            .map(|(a, m)| (*a, m.next_nonce))
            .collect();
        for key in heads {
            let refused = self
                .by_author
                .get(&key)
                .and_then(|id| self.by_id.get(id))
                .is_some_and(|t| state.check(t, next_height, time_ms).is_err());
            if refused && let Some(id) = self.by_author.remove(&key) {
                self.by_id.remove(&id);
            }
        }
    }

    fn prune_used(&mut self, state: &ChainState) {
        let stale: Vec<(AccountId, u64)> = self
            .by_author
            .keys()
            .filter(|(author, nonce)| {
                state
                    .members
                    .get(author)
                    .filter(|m| m.active)
                    .is_none_or(|m| *nonce < m.next_nonce)
            })
            .copied()
            .collect();
        for key in stale {
            if let Some(id) = self.by_author.remove(&key) {
                self.by_id.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use qward_core::chain::TxKind;
    use qward_core::chain::testkit::TestChain;
    use qward_core::identity::Role;

    use super::*;

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

    #[test]
    fn duplicates_and_replays_of_committed_transactions_are_refused() {
        let mut chain = TestChain::new(1, 4);
        let mut pool = Mempool::new();
        let tx = register(&mut chain, 0, 10);
        pool.insert(tx.clone(), &chain.state).unwrap();
        assert!(matches!(
            pool.insert(tx.clone(), &chain.state),
            Err(MempoolError::Duplicate(_))
        ));
        chain.commit(vec![tx.clone()]);
        pool.prune(&chain.state, chain.tip.height + 1, chain.tip.time_ms + 1);
        assert!(pool.is_empty(), "a committed transaction stayed pending");
        assert_eq!(
            pool.insert(tx, &chain.state),
            Err(MempoolError::Replay { nonce: 0, next: 1 })
        );
    }

    #[test]
    fn forged_foreign_and_far_future_transactions_are_refused() {
        let mut chain = TestChain::new(2, 4);
        let mut pool = Mempool::new();
        let mut forged = register(&mut chain, 0, 11);
        forged.sig.0[0] ^= 1;
        assert_eq!(
            pool.insert(forged, &chain.state),
            Err(MempoolError::BadSignature)
        );

        let outsider = chain.add_key(12);
        let key = qward_core::identity::Identity::from_secret_bytes(
            chain.keys[outsider].secret_bytes().as_slice(),
        )
        .unwrap();
        let by_outsider = chain.sign(
            &key,
            TxKind::RevokeMember {
                account: key.account(),
            },
        );
        assert!(matches!(
            pool.insert(by_outsider, &chain.state),
            Err(MempoolError::NotMember(_))
        ));

        let mut other_chain = register(&mut chain, 1, 13);
        other_chain.tx.chain_id += 1;
        let other_chain = other_chain.tx.sign(
            &qward_core::identity::Identity::from_secret_bytes(
                chain.keys[1].secret_bytes().as_slice(),
            )
            .unwrap(),
        );
        assert!(matches!(
            pool.insert(other_chain, &chain.state),
            Err(MempoolError::WrongChain { .. })
        ));

        let author = chain.keys[2].account();
        let far = qward_core::chain::Transaction {
            chain_id: chain.genesis.chain_id,
            author,
            nonce: MAX_NONCE_GAP + 5,
            kind: TxKind::RevokeMember { account: author },
        }
        .sign(
            &qward_core::identity::Identity::from_secret_bytes(
                chain.keys[2].secret_bytes().as_slice(),
            )
            .unwrap(),
        );
        assert!(matches!(
            pool.insert(far, &chain.state),
            Err(MempoolError::NonceGap { .. })
        ));
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
        pool.insert(bad, &chain.state).unwrap();
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
        let a = register(&mut chain, 0, 20);
        let b = register(&mut chain, 0, 21);
        let c = register(&mut chain, 1, 22);
        for t in [b.clone(), c, a.clone()] {
            pool.insert(t, &chain.state).unwrap();
        }
        let picked = pool.candidates(10);
        let pos = |t: &SignedTransaction| picked.iter().position(|p| p.id() == t.id()).unwrap();
        assert!(pos(&a) < pos(&b));
        assert_eq!(picked.len(), 3);
    }
}
