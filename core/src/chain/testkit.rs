//! Test helpers (feature `test-utils`): a chain built block by block with
//! known keys and real certificates, for store, verify, node and bench tests.

use std::collections::BTreeMap;

use crate::consensus::sim::{sim_genesis, test_identity};
use crate::consensus::{ConsensusParams, Vote, VoteStep};
use crate::identity::{AccountId, Identity};

use super::{
    Block, ChainState, ChainTip, CommitCertificate, CommitSig, CommittedBlock, Genesis, Hash,
    SignedTransaction, Transaction, TxError, TxKind, VoteTally, build_block, verify::tip_of,
};

/// Precommit signatures of `signers` for `block` in `round`, as a certificate.
pub fn certify(
    genesis: &Hash,
    chain_id: u64,
    block: &Block,
    round: u32,
    signers: &[&Identity],
) -> CommitCertificate {
    let hash = block.hash();
    let mut sigs: Vec<CommitSig> = signers
        .iter()
        .map(|id| {
            let sv = Vote {
                chain_id,
                height: block.header.height,
                round,
                step: VoteStep::Precommit,
                block_hash: Some(hash),
                validator: id.account(),
            }
            .sign(genesis, id);
            CommitSig {
                validator: id.account(),
                sig: sv.sig,
            }
        })
        .collect();
    sigs.sort_by_key(|s| s.validator);
    CommitCertificate {
        height: block.header.height,
        round,
        block_hash: hash,
        sigs,
    }
}

/// A chain with `n` hospitals (all validators at genesis) and one patient, all
/// with known keys, extended one certified block at a time.
#[derive(Debug)]
pub struct TestChain {
    pub genesis: Genesis,
    /// Hospital keys; index `n` onward are keys added with [`TestChain::add_key`].
    pub keys: Vec<Identity>,
    pub patient: Identity,
    pub state: ChainState,
    pub tip: ChainTip,
    pub blocks: Vec<CommittedBlock>,
    nonces: BTreeMap<AccountId, u64>,
}

impl TestChain {
    pub fn new(seed: u64, hospitals: usize) -> Self {
        let (genesis, keys, patient) = sim_genesis(seed, hospitals, ConsensusParams::default());
        let state = match genesis.initial_state() {
            Ok(s) => s,
            Err(e) => unreachable!("test genesis is valid: {e}"),
        };
        TestChain {
            tip: genesis.tip(),
            genesis,
            keys,
            patient,
            state,
            blocks: Vec::new(),
            nonces: BTreeMap::new(),
        }
    }

    /// Adds a fresh key (not yet a member) and returns its index.
    pub fn add_key(&mut self, seed: u64) -> usize {
        self.keys
            .push(test_identity(seed, 5000 + self.keys.len() as u64));
        self.keys.len() - 1
    }

    /// Signs a transaction by `author` with its next nonce.
    pub fn sign(&mut self, author: &Identity, kind: TxKind) -> SignedTransaction {
        let account = author.account();
        let nonce = self
            .nonces
            .entry(account)
            .or_insert_with(|| self.state.members.get(&account).map_or(0, |m| m.next_nonce));
        let tx = Transaction {
            chain_id: self.genesis.chain_id,
            author: account,
            nonce: *nonce,
            kind,
        };
        *nonce += 1;
        tx.sign(&self.state.genesis_hash, author)
    }

    /// Forgets locally counted nonces (after a transaction was rejected), so
    /// the next one is signed with the state's nonce.
    pub fn forget_pending(&mut self) {
        self.nonces.clear();
    }

    /// Applies `tx` to the state as the next block would (without making a
    /// block); on refusal forgets the locally counted nonces.
    pub fn apply_one(&mut self, tx: SignedTransaction) -> Result<Option<VoteTally>, TxError> {
        let h = self.tip.height + 1;
        let r = self.state.apply(&tx, h, self.tip.time_ms + 1);
        if r.is_err() {
            self.forget_pending();
        }
        r
    }

    /// Signs a transaction by hospital key `i`.
    pub fn sign_by(&mut self, i: usize, kind: TxKind) -> SignedTransaction {
        let key = Identity::from_secret_bytes(self.keys[i].secret_bytes().as_slice());
        match key {
            Ok(k) => self.sign(&k, kind),
            Err(e) => unreachable!("{e}"),
        }
    }

    /// Builds, certifies and appends a block holding exactly `txs`.
    /// Panics (a test bug) if one of them is invalid.
    pub fn commit(&mut self, txs: Vec<SignedTransaction>) -> &CommittedBlock {
        let count = txs.len();
        let (block, next) = build_block(
            &self.state,
            &self.tip,
            0,
            self.tip.time_ms + 1000,
            txs,
            usize::MAX,
        );
        assert_eq!(block.txs.len(), count, "a test transaction was invalid");
        let signers: Vec<&Identity> = self
            .keys
            .iter()
            .filter(|k| self.state.validators.contains(&k.account()))
            .collect();
        let cert = certify(
            &self.state.genesis_hash,
            self.genesis.chain_id,
            &block,
            0,
            &signers,
        );
        self.tip = tip_of(&block);
        self.state = next;
        self.nonces.clear();
        self.blocks.push(CommittedBlock { block, cert });
        self.blocks.last().unwrap_or_else(|| unreachable!())
    }
}
