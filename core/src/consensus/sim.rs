//! A deterministic in-memory network of validators for tests: seeded message
//! delay, reordering and loss, block sync for nodes that fall behind, and a
//! Byzantine validator that equivocates or proposes invalid blocks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::chain::{
    Block, ChainState, ChainStore, ChainTip, CommittedBlock, Genesis, GenesisMember, Hash,
    RecordAnchor, SignedTransaction, Transaction, TxKind, Validator, build_block, validate_block,
    verify_committed,
};
use crate::identity::{Identity, Role};
use crate::storage::MemStore;

use super::machine::{Consensus, ConsensusApp, Output};
use super::safety::SafetyState;
use super::timeouts::{ConsensusParams, Timeout};
use super::types::{ConsensusMessage, Evidence, Proposal, Vote};

/// How the Byzantine validator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Signs a conflicting second vote for every vote and a second, different
    /// (valid) block for every proposal, and sends each peer one, the other or both.
    Equivocate,
    /// Proposes blocks with a wrong state root.
    InvalidProposals,
}

/// A simulation run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub validators: usize,
    pub target_height: u64,
    /// Each message is delayed uniformly in 1..=max_delay_ms (so reordered).
    pub max_delay_ms: u64,
    /// Each message is lost with probability loss_per_mille / 1000.
    pub loss_per_mille: u64,
    /// Validator 0 misbehaves when set.
    pub byzantine: Option<Byzantine>,
    /// Anchor transactions offered to each block.
    pub txs_per_block: usize,
    /// Give up after this much simulated time.
    pub max_time_ms: u64,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            validators: 4,
            target_height: 20,
            max_delay_ms: 40,
            loss_per_mille: 50,
            byzantine: None,
            txs_per_block: 2,
            max_time_ms: 3_600_000,
        }
    }
}

/// What happened in a run.
#[derive(Debug)]
pub struct SimResult {
    /// Per node, the committed block hashes by height (index 0 is height 1).
    pub commits: Vec<Vec<Hash>>,
    /// Indexes of the honest nodes.
    pub honest: Vec<usize>,
    /// Evidence produced by honest nodes.
    pub evidence: Vec<Evidence>,
    /// Chain-store verification reports of honest nodes (all must be ok).
    pub verify_ok: Vec<bool>,
    /// Broken invariants seen during the run (must be empty).
    pub violations: Vec<String>,
    /// The final chain state of the first honest node.
    pub final_state: ChainState,
    pub chain_id: u64,
    pub sim_time_ms: u64,
    /// Per node: (height, round, step) at the end.
    pub debug: Vec<(u64, u32, String)>,
}

impl SimResult {
    /// Heights at which two honest nodes committed different blocks.
    pub fn conflicts(&self) -> Vec<u64> {
        let max = self.commits.iter().map(Vec::len).max().unwrap_or(0);
        (0..max)
            .filter(|&i| {
                let mut hashes: Vec<Hash> = self
                    .honest
                    .iter()
                    .filter_map(|&n| self.commits.get(n).and_then(|c| c.get(i)).copied())
                    .collect();
                hashes.sort();
                hashes.dedup();
                hashes.len() > 1
            })
            .map(|i| i as u64 + 1)
            .collect()
    }

    /// The lowest committed height among honest nodes.
    pub fn min_honest_height(&self) -> u64 {
        self.honest
            .iter()
            .map(|&n| self.commits.get(n).map_or(0, Vec::len) as u64)
            .min()
            .unwrap_or(0)
    }
}

/// SplitMix64: a small deterministic generator for the network's choices.
#[derive(Debug)]
struct SimRng(u64);

impl SimRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A deterministic identity for test index `i` under `seed`.
pub fn test_identity(seed: u64, i: u64) -> Identity {
    let h = Hash::digest(
        "qward/sim/key",
        &[seed.to_le_bytes(), i.to_le_bytes()].concat(),
    );
    match Identity::from_secret_bytes(&h.0) {
        Ok(id) => id,
        Err(e) => unreachable!("32 bytes is a valid seed: {e}"),
    }
}

#[derive(Debug)]
struct SimApp {
    state: ChainState,
    tip: ChainTip,
    now_ms: u64,
    pool: Vec<SignedTransaction>,
    max_txs: usize,
    corrupt: bool,
}

impl ConsensusApp for SimApp {
    fn build_block(&mut self, _height: u64, round: u32) -> Block {
        let (mut block, _) = build_block(
            &self.state,
            &self.tip,
            round,
            self.now_ms,
            self.pool.iter().cloned(),
            self.max_txs,
        );
        if self.corrupt {
            block.header.state_root.0[0] ^= 0xff;
        }
        block
    }

    fn validate_block(&mut self, block: &Block) -> bool {
        validate_block(&self.state, &self.tip, block).is_ok()
    }
}

#[derive(Debug)]
struct SimNode {
    consensus: Consensus,
    app: SimApp,
    store: MemStore,
    commits: Vec<Hash>,
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        msg: Box<ConsensusMessage>,
    },
    Timeout {
        node: usize,
        timeout: Timeout,
    },
    SyncTick {
        node: usize,
    },
}

/// A genesis with `n` hospital validators and one patient, and their keys.
pub fn sim_genesis(
    seed: u64,
    n: usize,
    params: ConsensusParams,
) -> (Genesis, Vec<Identity>, Identity) {
    let ids: Vec<Identity> = (0..n as u64).map(|i| test_identity(seed, i)).collect();
    let patient = test_identity(seed, 1000);
    let mut members: Vec<GenesisMember> = ids
        .iter()
        .map(|id| GenesisMember {
            account: id.account(),
            role: Role::Hospital,
        })
        .collect();
    members.push(GenesisMember {
        account: patient.account(),
        role: Role::Patient,
    });
    let genesis = Genesis {
        network: "sim".into(),
        chain_id: 42,
        genesis_time_ms: 1_700_000_000_000,
        params,
        validators: ids
            .iter()
            .map(|id| Validator {
                account: id.account(),
                power: 1,
            })
            .collect(),
        members,
    };
    (genesis, ids, patient)
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> SimResult {
    let mut rng = SimRng(cfg.seed);
    let params = ConsensusParams {
        timeout_propose_ms: 200,
        timeout_prevote_ms: 100,
        timeout_precommit_ms: 100,
        timeout_delta_ms: 50,
        max_block_txs: 50,
        ..ConsensusParams::default()
    };
    let (genesis, ids, patient) = sim_genesis(cfg.seed, cfg.validators, params.clone());
    let mut violations = Vec::new();
    let state0 = match genesis.initial_state() {
        Ok(s) => s,
        Err(e) => unreachable!("sim genesis is valid: {e}"),
    };
    // The patient anchors records; every node's mempool holds all of them.
    let total_txs = cfg.txs_per_block as u64 * (cfg.target_height + 10);
    let pool: Vec<SignedTransaction> = (0..total_txs)
        .map(|nonce| {
            Transaction {
                chain_id: genesis.chain_id,
                author: patient.account(),
                nonce,
                kind: TxKind::AnchorRecord(RecordAnchor {
                    record_id: Hash::digest("sim/record", &nonce.to_le_bytes()),
                    ciphertext_hash: Hash::digest("sim/ct", &nonce.to_le_bytes()),
                    recipient: ids[0].account(),
                }),
            }
            .sign(&genesis.hash(), &patient)
        })
        .collect();
    let byz_key = test_identity(cfg.seed, 0);
    let mut nodes: Vec<SimNode> = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let store = MemStore::new();
            if let Err(e) = ChainStore::new(&store).init(&genesis) {
                unreachable!("init of a fresh store: {e}");
            }
            SimNode {
                consensus: Consensus::new(
                    genesis.chain_id,
                    genesis.hash(),
                    params.clone(),
                    state0.validators.clone(),
                    Some(id),
                    SafetyState::default(),
                ),
                app: SimApp {
                    state: state0.clone(),
                    tip: genesis.tip(),
                    now_ms: genesis.genesis_time_ms,
                    pool: pool.clone(),
                    max_txs: cfg.txs_per_block,
                    corrupt: i == 0 && cfg.byzantine == Some(Byzantine::InvalidProposals),
                },
                store,
                commits: Vec::new(),
            }
        })
        .collect();
    let honest: Vec<usize> = (0..nodes.len())
        .filter(|&i| !(i == 0 && cfg.byzantine.is_some()))
        .collect();
    let mut evidence = Vec::new();
    let mut queue: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut events: BTreeMap<u64, Event> = BTreeMap::new();
    let mut seq = 0u64;
    let mut push = |queue: &mut BinaryHeap<Reverse<(u64, u64)>>,
                    events: &mut BTreeMap<u64, Event>,
                    at: u64,
                    ev: Event| {
        seq += 1;
        queue.push(Reverse((at, seq)));
        events.insert(seq, ev);
    };
    let mut now = genesis.genesis_time_ms;
    let start = now;
    let mut pending: Vec<(usize, Vec<Output>)> = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        let validators = node.app.state.validators.clone();
        let out = node.consensus.start_height(1, validators, &mut node.app);
        pending.push((i, out));
        push(
            &mut queue,
            &mut events,
            now + 200,
            Event::SyncTick { node: i },
        );
    }
    loop {
        // Handle outputs (which may start new heights and produce more outputs).
        while let Some((i, outputs)) = pending.pop() {
            for output in outputs {
                match output {
                    Output::PersistSafety(_) => {}
                    Output::ScheduleTimeout { timeout, after_ms } => {
                        push(
                            &mut queue,
                            &mut events,
                            now + after_ms,
                            Event::Timeout { node: i, timeout },
                        );
                    }
                    Output::Evidence(ev) => {
                        if honest.contains(&i) {
                            evidence.push(ev);
                        }
                    }
                    Output::Broadcast(msg) => {
                        let copies = byzantine_copies(cfg, i, msg, &byz_key, &nodes[0].app);
                        for to in 0..nodes.len() {
                            if to == i {
                                continue;
                            }
                            for m in pick(cfg, &mut rng, &copies) {
                                if rng.below(1000) < cfg.loss_per_mille {
                                    continue;
                                }
                                let at = now + 1 + rng.below(cfg.max_delay_ms);
                                push(
                                    &mut queue,
                                    &mut events,
                                    at,
                                    Event::Deliver {
                                        to,
                                        msg: Box::new(m),
                                    },
                                );
                            }
                        }
                    }
                    Output::Commit { block, cert } => {
                        let node = &mut nodes[i];
                        let committed = CommittedBlock { block, cert };
                        match verify_committed(&node.app.state, &node.app.tip, &committed) {
                            Ok(next) => {
                                let out = import(node, committed, next, &mut violations);
                                pending.push((i, out));
                            }
                            Err(e) => violations
                                .push(format!("node {i} committed an unverifiable block: {e}")),
                        }
                    }
                }
            }
        }
        let done = honest
            .iter()
            .all(|&i| nodes[i].commits.len() as u64 >= cfg.target_height);
        if done || now - start > cfg.max_time_ms {
            break;
        }
        let Some(Reverse((at, id))) = queue.pop() else {
            break;
        };
        let Some(event) = events.remove(&id) else {
            continue;
        };
        now = at;
        match event {
            Event::Deliver { to, msg } => {
                let node = &mut nodes[to];
                node.app.now_ms = now;
                let out = node.consensus.on_message(*msg, &mut node.app);
                pending.push((to, out));
            }
            Event::Timeout { node: i, timeout } => {
                let node = &mut nodes[i];
                node.app.now_ms = now;
                let out = node.consensus.on_timeout(timeout, &mut node.app);
                pending.push((i, out));
            }
            Event::SyncTick { node: i } => {
                push(
                    &mut queue,
                    &mut events,
                    now + 200,
                    Event::SyncTick { node: i },
                );
                let my_height = nodes[i].app.tip.height;
                if nodes[i].consensus.highest_seen_height() <= my_height {
                    continue;
                }
                let peer = rng.below(nodes.len() as u64) as usize;
                let fetched = ChainStore::new(&nodes[peer].store).block(my_height + 1);
                if let Ok(Some(committed)) = fetched {
                    let node = &mut nodes[i];
                    if let Ok(next) = verify_committed(&node.app.state, &node.app.tip, &committed) {
                        node.app.now_ms = now;
                        let out = import(node, committed, next, &mut violations);
                        pending.push((i, out));
                    }
                }
            }
        }
    }
    let verify_ok = honest
        .iter()
        .map(|&i| ChainStore::new(&nodes[i].store).verify_chain().ok)
        .collect();
    let first = honest.first().copied().unwrap_or(0);
    SimResult {
        commits: nodes.iter().map(|n| n.commits.clone()).collect(),
        honest,
        evidence,
        verify_ok,
        violations,
        final_state: nodes[first].app.state.clone(),
        chain_id: genesis.chain_id,
        sim_time_ms: now - start,
        debug: nodes
            .iter()
            .map(|n| {
                (
                    n.consensus.height(),
                    n.consensus.round(),
                    format!(
                        "{:?} decided={} seen={}",
                        n.consensus.step(),
                        n.consensus.is_decided(),
                        n.consensus.highest_seen_height()
                    ),
                )
            })
            .collect(),
    }
}

fn import(
    node: &mut SimNode,
    committed: CommittedBlock,
    next: ChainState,
    violations: &mut Vec<String>,
) -> Vec<Output> {
    let height = committed.block.header.height;
    if let Err(e) = ChainStore::new(&node.store).import_verified(&committed, &next) {
        violations.push(format!("import of block {height} failed: {e}"));
    }
    let ids: Vec<Hash> = committed
        .block
        .txs
        .iter()
        .map(SignedTransaction::id)
        .collect();
    node.app.pool.retain(|t| !ids.contains(&t.id()));
    node.commits.push(committed.block.hash());
    node.app.tip = crate::chain::verify::tip_of(&committed.block);
    node.app.state = next;
    let validators = node.app.state.validators.clone();
    node.consensus
        .start_height(height + 1, validators, &mut node.app)
}

/// The messages the sender emits for one broadcast: the message, plus a
/// conflicting twin when the Byzantine validator equivocates.
fn byzantine_copies(
    cfg: &SimConfig,
    sender: usize,
    msg: ConsensusMessage,
    key: &Identity,
    app: &SimApp,
) -> Vec<ConsensusMessage> {
    if sender != 0 || cfg.byzantine != Some(Byzantine::Equivocate) {
        return vec![msg];
    }
    let twin = match &msg {
        ConsensusMessage::Vote(sv) => {
            let other = match sv.vote.block_hash {
                Some(_) => None,
                None => Some(Hash::digest("sim/bogus", &sv.vote.round.to_le_bytes())),
            };
            ConsensusMessage::Vote(
                Vote {
                    block_hash: other,
                    ..sv.vote.clone()
                }
                .sign(&app.state.genesis_hash, key),
            )
        }
        ConsensusMessage::Proposal(sp) => {
            // A second valid block: same parent, one millisecond later.
            let (block, _) = build_block(
                &app.state,
                &app.tip,
                sp.proposal.round,
                sp.proposal.block.header.time_ms + 1,
                std::iter::empty(),
                0,
            );
            ConsensusMessage::Proposal(
                Proposal {
                    block,
                    ..sp.proposal.clone()
                }
                .sign(&app.state.genesis_hash, key),
            )
        }
    };
    vec![msg, twin]
}

/// Which of the copies one peer receives: the only copy, or for an
/// equivocation the first, the second or both.
fn pick(cfg: &SimConfig, rng: &mut SimRng, copies: &[ConsensusMessage]) -> Vec<ConsensusMessage> {
    let _ = cfg;
    match copies {
        [one] => vec![one.clone()],
        [a, b] => match rng.below(4) {
            0 => vec![a.clone()],
            1 => vec![b.clone()],
            2 => vec![a.clone(), b.clone()],
            _ => vec![b.clone(), a.clone()],
        },
        _ => copies.to_vec(),
    }
}
