//! The chain store over the [`Store`] trait: genesis initialisation, block
//! import as one atomic [`WriteBatch`], reads by height, hash and transaction
//! id, and the auditor's full re-verification from genesis.
//!
//! Layout: `Meta` holds `chain/genesis` (canonical genesis) and `chain/tip`;
//! `State` holds the state after the tip entry by entry (`state_entries.rs`:
//! a small meta record, then one entry per member, proposal, consent,
//! evidence slot and anchor; an import writes only the entries its block
//! touched); `Blocks` maps a
//! big-endian height to a [`CommittedBlock`]; `BlockIndex` maps `b`+hash to a
//! height, `t`+tx id to (height, index) and `r`+anchor key (author and
//! record id, [`RecordAnchor::key`]) to a tx id. Every import is written
//! with `sync`: a node acts on an imported block (votes on the next height,
//! answers receipts) only once the block is on disk.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::identity::AccountId;
use crate::storage::{Column, Store, WriteBatch};

use super::block::CommittedBlock;
use super::error::{BlockError, ChainStoreError};
use super::genesis::Genesis;
use super::hash::Hash;
use super::state::{ChainState, Member, OpenProposal};
use super::state_entries::{self, MAX_ENTRY_BYTES, MAX_META_BYTES, META_KEY, StateMeta};
use super::tx::{RecordAnchor, SignedTransaction, TxKind};
use super::verify::{self, ChainTip};

const GENESIS_KEY: &[u8] = b"chain/genesis";
const TIP_KEY: &[u8] = b"chain/tip";
/// State entries read from the store per page when loading.
const STATE_PAGE: usize = 4096;

/// Where a transaction sits in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// Whether [`ChainStore::init`] wrote the genesis or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    Initialised,
    AlreadyInitialised,
}

/// The outcome of re-verifying a stored chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// The stored tip height.
    pub height: u64,
    pub blocks_verified: u64,
    pub txs_verified: u64,
    /// The height of the first bad block, on failure.
    pub failed_height: Option<u64>,
    /// Why it failed.
    pub reason: Option<String>,
    pub genesis_hash: Option<String>,
}

/// Chain storage over any [`Store`].
#[derive(Clone, Copy)]
pub struct ChainStore<'a> {
    store: &'a dyn Store,
}

impl std::fmt::Debug for ChainStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore").finish_non_exhaustive()
    }
}

fn decode_err(what: impl Into<String>) -> impl FnOnce(CodecError) -> ChainStoreError {
    let what = what.into();
    move |source| ChainStoreError::Decode { what, source }
}

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn prefixed(prefix: u8, hash: &Hash) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(prefix);
    k.extend_from_slice(&hash.0);
    k
}

/// Puts one stored state entry into `state`; a malformed one is a decode error.
fn load_entry(state: &mut ChainState, key: &[u8], value: &[u8]) -> Result<(), ChainStoreError> {
    let bad = |what: &str| ChainStoreError::Decode {
        what: format!("chain state entry ({what})"),
        source: CodecError::Malformed(format!("key {}", hex::encode(key))),
    };
    let account = |bytes: &[u8]| -> Option<AccountId> { bytes.try_into().ok().map(AccountId) };
    let (kind, rest) = key.split_first().ok_or_else(|| bad("empty key"))?;
    match kind {
        b'S' if rest.is_empty() => {}
        b'm' => {
            let a = account(rest).ok_or_else(|| bad("member key"))?;
            let m: Member =
                codec::decode(value, MAX_ENTRY_BYTES).map_err(decode_err("member entry"))?;
            state.members.insert(a, m);
        }
        b'p' => {
            let action =
                codec::decode(rest, MAX_ENTRY_BYTES).map_err(decode_err("proposal key"))?;
            let open: OpenProposal =
                codec::decode(value, MAX_ENTRY_BYTES).map_err(decode_err("proposal entry"))?;
            state.proposals.insert(action, open);
        }
        b'c' if rest.len() == 65 => {
            let (p, g) = (account(&rest[..32]), account(&rest[32..64]));
            let scope = state_entries::scope_from_byte(rest[64]);
            let exp: [u8; 8] = value.try_into().map_err(|_| bad("consent expiry"))?;
            match (p, g, scope) {
                (Some(p), Some(g), Some(s)) => {
                    state.consents.insert((p, g, s), u64::from_le_bytes(exp));
                }
                _ => return Err(bad("consent key")),
            }
        }
        b'x' if rest.len() == 64 => {
            let (p, d) = (account(&rest[..32]), account(&rest[32..]));
            let e = codec::decode(value, MAX_ENTRY_BYTES).map_err(decode_err("emergency entry"))?;
            match (p, d) {
                (Some(p), Some(d)) => {
                    state.emergencies.insert((p, d), e);
                }
                _ => return Err(bad("emergency key")),
            }
        }
        b'e' => {
            let k = codec::decode(rest, MAX_ENTRY_BYTES).map_err(decode_err("evidence key"))?;
            state.evidence.insert(k);
        }
        b'a' => {
            let k: [u8; 32] = rest.try_into().map_err(|_| bad("anchor key"))?;
            state.anchored.insert(Hash(k));
        }
        _ => return Err(bad("unknown kind")),
    }
    Ok(())
}

impl<'a> ChainStore<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        ChainStore { store }
    }

    /// Writes the genesis, its state and tip, once. Idempotent for the same
    /// genesis; refuses a different one.
    pub fn init(&self, genesis: &Genesis) -> Result<InitOutcome, ChainStoreError> {
        let state = genesis
            .initial_state()
            .map_err(|e| ChainStoreError::InvalidGenesis(e.to_string()))?;
        if let Some(stored) = self.genesis_opt()? {
            let (s, g) = (stored.hash(), genesis.hash());
            if s != g {
                return Err(ChainStoreError::GenesisMismatch {
                    stored: s,
                    given: g,
                });
            }
            return Ok(InitOutcome::AlreadyInitialised);
        }
        let mut batch = WriteBatch::new();
        batch.put(Column::Meta, GENESIS_KEY, genesis.encode());
        batch.put(
            Column::Meta,
            TIP_KEY,
            codec::encode_infallible(&genesis.tip()),
        );
        batch.put(
            Column::State,
            META_KEY,
            codec::encode_infallible(&state.meta()),
        );
        for key in state.all_keys() {
            if let Some(value) = state.entry_value(&key) {
                batch.put(Column::State, key.store_key(), value);
            }
        }
        batch.set_sync(true);
        self.store.write(batch)?;
        Ok(InitOutcome::Initialised)
    }

    fn genesis_opt(&self) -> Result<Option<Genesis>, ChainStoreError> {
        match self.store.get(Column::Meta, GENESIS_KEY)? {
            None => Ok(None),
            Some(b) => Genesis::decode(&b).map(Some).map_err(decode_err("genesis")),
        }
    }

    pub fn genesis(&self) -> Result<Genesis, ChainStoreError> {
        self.genesis_opt()?.ok_or(ChainStoreError::NotInitialised)
    }

    pub fn tip(&self) -> Result<ChainTip, ChainStoreError> {
        let b = self
            .store
            .get(Column::Meta, TIP_KEY)?
            .ok_or(ChainStoreError::NotInitialised)?;
        codec::decode(&b, 64).map_err(decode_err("chain tip"))
    }

    /// The state after the tip, read entry by entry.
    pub fn state(&self) -> Result<ChainState, ChainStoreError> {
        let b = self
            .store
            .get(Column::State, META_KEY)?
            .ok_or(ChainStoreError::NotInitialised)?;
        let meta: StateMeta =
            codec::decode(&b, MAX_META_BYTES).map_err(decode_err("chain state meta"))?;
        let mut state = ChainState::new(meta.chain_id, meta.genesis_hash, meta.validators);
        state.proposal_ttl_blocks = meta.proposal_ttl_blocks;
        state.block_timing = meta.block_timing;
        state.anchors = meta.anchors;
        state.audits = meta.audits;
        state.log_hash = meta.log_hash;
        let mut start: Vec<u8> = Vec::new();
        loop {
            let page = self.store.range(Column::State, &start, None, STATE_PAGE)?;
            let full = page.len() == STATE_PAGE;
            for (key, value) in &page {
                load_entry(&mut state, key, value)?;
            }
            match page.last() {
                Some((key, _)) if full => {
                    start = key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        state.rehash_entries();
        Ok(state)
    }

    /// Verifies `committed` against the stored tip and state, then imports it.
    pub fn import(&self, committed: &CommittedBlock) -> Result<ChainState, ChainStoreError> {
        let (state, tip) = (self.state()?, self.tip()?);
        let next = verify::verify_committed(&state, &tip, committed).map_err(|source| {
            ChainStoreError::InvalidBlock {
                height: committed.block.header.height,
                source,
            }
        })?;
        self.import_verified(committed, &next)?;
        Ok(next)
    }

    /// Imports a block the caller has verified, with the state after it, as
    /// one atomic batch.
    pub fn import_verified(
        &self,
        committed: &CommittedBlock,
        next_state: &ChainState,
    ) -> Result<(), ChainStoreError> {
        self.store
            .write(Self::import_batch(committed, next_state))?;
        Ok(())
    }

    /// The one batch that imports a block: the block, its indexes, the new
    /// state and the new tip. Public so crash tests can replay part of it.
    pub fn import_batch(committed: &CommittedBlock, next_state: &ChainState) -> WriteBatch {
        let block = &committed.block;
        let height = block.header.height;
        let hash = block.hash();
        let mut batch = WriteBatch::new();
        batch.put(Column::Blocks, height_key(height), committed.encode());
        batch.put(
            Column::BlockIndex,
            prefixed(b'b', &hash),
            height_key(height),
        );
        for (i, t) in block.txs.iter().enumerate() {
            let id = t.id();
            let loc = TxLocation {
                height,
                index: i as u32,
            };
            batch.put(
                Column::BlockIndex,
                prefixed(b't', &id),
                codec::encode_infallible(&loc),
            );
            if let TxKind::AnchorRecord(a) = &t.tx.kind {
                let key = RecordAnchor::key(&t.tx.author, &a.record_id);
                batch.put(Column::BlockIndex, prefixed(b'r', &key), id.0);
            }
        }
        batch.put(
            Column::State,
            META_KEY,
            codec::encode_infallible(&next_state.meta()),
        );
        for key in next_state.touched() {
            match next_state.entry_value(key) {
                Some(value) => batch.put(Column::State, key.store_key(), value),
                None => batch.delete(Column::State, key.store_key()),
            }
        }
        batch.put(
            Column::Meta,
            TIP_KEY,
            codec::encode_infallible(&verify::tip_of(block)),
        );
        batch.set_sync(true);
        batch
    }

    /// The committed block at `height`, if stored.
    pub fn block(&self, height: u64) -> Result<Option<CommittedBlock>, ChainStoreError> {
        match self.store.get(Column::Blocks, &height_key(height))? {
            None => Ok(None),
            Some(b) => CommittedBlock::decode(&b)
                .map(Some)
                .map_err(decode_err(format!("block {height}"))),
        }
    }

    /// The height of the block with `hash`.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, ChainStoreError> {
        match self.store.get(Column::BlockIndex, &prefixed(b'b', hash))? {
            None => Ok(None),
            Some(b) => {
                let arr: [u8; 8] =
                    b.as_slice()
                        .try_into()
                        .map_err(|_| ChainStoreError::Decode {
                            what: "block index".into(),
                            source: CodecError::Malformed("height is not 8 bytes".into()),
                        })?;
                Ok(Some(u64::from_be_bytes(arr)))
            }
        }
    }

    /// A transaction and where it is, by id.
    pub fn transaction(
        &self,
        id: &Hash,
    ) -> Result<Option<(TxLocation, SignedTransaction)>, ChainStoreError> {
        let Some(b) = self.store.get(Column::BlockIndex, &prefixed(b't', id))? else {
            return Ok(None);
        };
        let loc: TxLocation = codec::decode(&b, 16).map_err(decode_err("transaction index"))?;
        let block = self
            .block(loc.height)?
            .ok_or(ChainStoreError::MissingBlock { height: loc.height })?;
        Ok(block
            .block
            .txs
            .get(loc.index as usize)
            .cloned()
            .map(|t| (loc, t)))
    }

    /// The id of the transaction in which `author` anchored `record_id`.
    pub fn anchor_tx(
        &self,
        author: &AccountId,
        record_id: &Hash,
    ) -> Result<Option<Hash>, ChainStoreError> {
        let key = RecordAnchor::key(author, record_id);
        Ok(self
            .store
            .get(Column::BlockIndex, &prefixed(b'r', &key))?
            .and_then(|b| b.try_into().ok().map(Hash)))
    }

    /// Re-verifies the whole chain from genesis: every block's encoding,
    /// hashes, certificate, proposer, validator set, transactions and roots,
    /// then the stored state against the recomputed one.
    pub fn verify_chain(&self) -> VerifyReport {
        self.verify_chain_with(&mut |_, _| {})
    }

    /// [`ChainStore::verify_chain`], telling `progress` (height verified,
    /// stored height) after every block, for a progress bar.
    pub fn verify_chain_with(&self, progress: &mut dyn FnMut(u64, u64)) -> VerifyReport {
        let mut report = VerifyReport {
            ok: false,
            height: 0,
            blocks_verified: 0,
            txs_verified: 0,
            failed_height: None,
            reason: None,
            genesis_hash: None,
        };
        let fail = |mut r: VerifyReport, height: u64, reason: String| {
            r.failed_height = Some(height);
            r.reason = Some(reason);
            r
        };
        let genesis = match self.genesis() {
            Ok(g) => g,
            Err(e) => return fail(report, 0, e.to_string()),
        };
        report.genesis_hash = Some(genesis.hash().to_hex());
        let mut state = match genesis.initial_state() {
            Ok(s) => s,
            Err(e) => return fail(report, 0, format!("genesis is invalid: {e}")),
        };
        let stored_tip = match self.tip() {
            Ok(t) => t,
            Err(e) => return fail(report, 0, e.to_string()),
        };
        report.height = stored_tip.height;
        let mut tip = genesis.tip();
        for height in 1..=stored_tip.height {
            let committed = match self.block(height) {
                Ok(Some(b)) => b,
                Ok(None) => return fail(report, height, format!("block {height} is missing")),
                Err(e) => return fail(report, height, e.to_string()),
            };
            if committed.block.header.height != height {
                let e = BlockError::WrongHeight {
                    expected: height,
                    found: committed.block.header.height,
                };
                return fail(report, height, e.to_string());
            }
            match verify::verify_committed(&state, &tip, &committed) {
                Ok(next) => state = next,
                Err(e) => return fail(report, height, e.to_string()),
            }
            tip = verify::tip_of(&committed.block);
            match self.height_of(&tip.hash) {
                Ok(Some(h)) if h == height => {}
                _ => {
                    return fail(
                        report,
                        height,
                        format!("block {height} is missing from the hash index"),
                    );
                }
            }
            report.blocks_verified += 1;
            report.txs_verified += committed.block.txs.len() as u64;
            progress(height, stored_tip.height);
        }
        if tip != stored_tip {
            return fail(
                report,
                stored_tip.height,
                "stored tip does not match the last block".into(),
            );
        }
        match self.state() {
            Ok(s) if s == state => {}
            Ok(_) => {
                return fail(
                    report,
                    stored_tip.height,
                    "stored state differs from the state recomputed from the blocks".into(),
                );
            }
            Err(e) => return fail(report, stored_tip.height, e.to_string()),
        }
        // A block stored past the tip means a torn or tampered import.
        match self.block(stored_tip.height + 1) {
            Ok(None) => {}
            _ => {
                return fail(
                    report,
                    stored_tip.height + 1,
                    "a block is stored beyond the tip".into(),
                );
            }
        }
        report.ok = true;
        report
    }
}
