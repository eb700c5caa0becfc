//! A deterministic in-memory network of validators for tests: seeded message
//! delay, reordering and loss until a global stabilisation time (GST), block
//! sync for nodes that fall behind (when the machine's `sync_target` says so),
//! and Byzantine validators with one of several strategies each.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::chain::{
    Block, ChainState, ChainStore, ChainTip, CommittedBlock, Genesis, GenesisMember, Hash,
    RecordAnchor, SignedTransaction, Transaction, TxKind, Validator, build_block, validate_block,
    verify_committed,
};
use crate::identity::{Identity, Role};
use crate::storage::MemStore;

use super::machine::{Consensus, ConsensusApp, MAX_ROUNDS_AHEAD, Output};
use super::safety::SafetyState;
use super::timeouts::{ConsensusParams, Timeout};
use super::types::{ConsensusMessage, Evidence, Proposal, SignedProposal, Vote, VoteStep};

/// How a Byzantine validator misbehaves. It runs the honest state machine
/// with its own key; the strategy changes what it sends (and builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Signs a conflicting second vote for every vote and a second, different
    /// (valid) block for every proposal, and sends each peer one, the other or
    /// both (after GST the other one follows by gossip, see `Network::relay`).
    Equivocate,
    /// Proposes blocks with a wrong state root.
    InvalidProposals,
    /// Sends every vote with one signature byte flipped; sends half its peers
    /// its proposals with one byte of a transaction signature flipped
    /// (re-signed by itself); and relays every honest proposal it receives to
    /// everyone altered under the proposer's signature: a re-proposal with
    /// its polka cut short, any other with one transaction-signature byte
    /// flipped (the header hash unchanged). Such copies must not verify.
    CorruptBytes,
    /// At even heights sends nothing; at odd heights signs everything but
    /// never sends its precommits.
    Withhold,
    /// Sends with every message a burst of votes for random hashes, rounds up
    /// to past [`super::machine::MAX_ROUNDS_AHEAD`] and later heights.
    Flood,
    /// Sends each message to a random subset of its peers only (after GST
    /// the others get it one gossip hop later, see `Network::relay`).
    SelectiveDelivery,
    /// One of the strategies above, drawn per height.
    Mixed,
}

impl Byzantine {
    /// Every strategy, [`Byzantine::Mixed`] last.
    pub const ALL: [Byzantine; 7] = [
        Byzantine::Equivocate,
        Byzantine::InvalidProposals,
        Byzantine::CorruptBytes,
        Byzantine::Withhold,
        Byzantine::Flood,
        Byzantine::SelectiveDelivery,
        Byzantine::Mixed,
    ];

    /// The concrete strategy at `height` (for `Mixed`, drawn from the seed,
    /// the node and the height).
    fn at(self, seed: u64, node: usize, height: u64) -> Byzantine {
        if self != Byzantine::Mixed {
            return self;
        }
        let mut rng = SimRng(seed ^ (node as u64).wrapping_mul(0x1000_0001) ^ height << 20);
        let concrete = &Byzantine::ALL[..Byzantine::ALL.len() - 1];
        concrete
            .get(rng.below(concrete.len() as u64) as usize)
            .copied()
            .unwrap_or(Byzantine::Equivocate)
    }
}

/// Forged votes a flooding validator sends with each message.
const FLOOD_VOTES_PER_MESSAGE: usize = 12;

/// A simulation run's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub validators: usize,
    pub target_height: u64,
    /// Before GST each message is delayed uniformly in 1..=max_delay_ms (so reordered).
    pub max_delay_ms: u64,
    /// Before GST each message is lost with probability loss_per_mille / 1000.
    pub loss_per_mille: u64,
    /// Global stabilisation time, in ms after the start: from then on no
    /// message is lost and each is delayed at most `max_delay_after_gst_ms`.
    /// `u64::MAX`: never.
    pub gst_ms: u64,
    pub max_delay_after_gst_ms: u64,
    /// The misbehaving validators (by index) and how they misbehave.
    pub byzantine: Vec<(usize, Byzantine)>,
    /// Anchor transactions offered to each block.
    pub txs_per_block: usize,
    /// Give up after this much simulated time.
    pub max_time_ms: u64,
    /// Every message of this height sent to this node is lost: a node that
    /// misses one whole height and must catch up by sync.
    pub deaf: Option<(usize, u64)>,
}

impl SimConfig {
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            validators: 4,
            target_height: 20,
            max_delay_ms: 40,
            loss_per_mille: 50,
            gst_ms: u64::MAX,
            max_delay_after_gst_ms: 20,
            byzantine: Vec::new(),
            txs_per_block: 2,
            max_time_ms: 3_600_000,
            deaf: None,
        }
    }

    fn strategy(&self, node: usize, height: u64) -> Option<Byzantine> {
        self.byzantine
            .iter()
            .find(|(i, _)| *i == node)
            .map(|(_, b)| b.at(self.seed, node, height))
    }
}

/// One block as a node committed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRecord {
    pub hash: Hash,
    /// The round of its commit certificate.
    pub round: u32,
    /// When the node started this height (ms after the start).
    pub started_ms: u64,
    /// Whether the node got the block by sync rather than its own consensus.
    pub synced: bool,
}

/// What happened in a run.
#[derive(Debug)]
pub struct SimResult {
    /// Per node, the committed block hashes by height (index 0 is height 1).
    pub commits: Vec<Vec<Hash>>,
    /// Per node, the same commits with their round and timing.
    pub records: Vec<Vec<CommitRecord>>,
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
    pub genesis_hash: Hash,
    pub gst_ms: u64,
    pub sim_time_ms: u64,
    /// Per node: (height, round, step) at the end.
    pub debug: Vec<(u64, u32, String)>,
    /// The most votes any honest node held for one height at any time.
    pub max_stored_votes: usize,
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

    /// Per height (index 0 is height 1), the highest certificate round of
    /// the blocks honest nodes committed there.
    pub fn max_round_per_height(&self) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for &n in &self.honest {
            for (i, rec) in self.records.get(n).into_iter().flatten().enumerate() {
                match out.get_mut(i) {
                    Some(r) => *r = (*r).max(rec.round),
                    None => out.push(rec.round),
                }
            }
        }
        out
    }

    /// The highest certificate round among the heights honest nodes started
    /// after GST: how many rounds past the first (round 0) a height needed
    /// once the network was synchronous. `None` if no height started after GST.
    pub fn max_rounds_after_gst(&self) -> Option<u32> {
        self.honest
            .iter()
            .flat_map(|&n| self.records.get(n).into_iter().flatten())
            .filter(|rec| rec.started_ms >= self.gst_ms)
            .map(|rec| rec.round)
            .max()
    }

    /// Blocks honest node `n` imported by sync.
    pub fn synced_blocks(&self, n: usize) -> usize {
        self.records
            .get(n)
            .map_or(0, |r| r.iter().filter(|c| c.synced).count())
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
    /// Set for a Byzantine node: (strategy, seed, index) to draw `Mixed` from.
    byzantine: Option<(Byzantine, u64, usize)>,
}

impl ConsensusApp for SimApp {
    fn build_block(&mut self, height: u64, round: u32) -> Block {
        let (mut block, _) = build_block(
            &self.state,
            &self.tip,
            round,
            self.now_ms,
            self.pool.iter().cloned(),
            self.max_txs,
        );
        let strategy = self.byzantine.map(|(b, seed, i)| b.at(seed, i, height));
        if strategy == Some(Byzantine::InvalidProposals) {
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
    records: Vec<CommitRecord>,
    /// When this node started its current height.
    started_ms: u64,
    /// (height, round) of the proposals a `CorruptBytes` node already
    /// relayed corrupted: once each, or two such nodes would relay each
    /// other's copies (flipping the byte back and forth) forever.
    relayed: BTreeSet<(u64, u32)>,
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

/// The simulated network: a time-ordered event queue with seeded delay and
/// loss (none after GST).
#[derive(Debug)]
struct Network {
    rng: SimRng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    now: u64,
    start: u64,
}

impl Network {
    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn after_gst(&self, cfg: &SimConfig) -> bool {
        self.now - self.start >= cfg.gst_ms
    }

    /// Sends `msg` to `to` through the lossy (before GST) network.
    fn send(&mut self, cfg: &SimConfig, to: usize, msg: ConsensusMessage) {
        if cfg.deaf == Some((to, msg.height())) {
            return;
        }
        let delay = if self.after_gst(cfg) {
            1 + self.rng.below(cfg.max_delay_after_gst_ms)
        } else {
            if self.rng.below(1000) < cfg.loss_per_mille {
                return;
            }
            1 + self.rng.below(cfg.max_delay_ms)
        };
        let at = self.now + delay;
        self.schedule(
            at,
            Event::Deliver {
                to,
                msg: Box::new(msg),
            },
        );
    }
}

impl Network {
    /// After GST, the copy of `msg` that reaches `to` through the honest
    /// validators that received it (gossip relays every valid message it
    /// has not seen: libp2p gossipsub in the node): one hop later than a
    /// direct send. Before GST relays are lost like anything else, so
    /// nothing is scheduled. This is what keeps a Byzantine sender from
    /// showing different honest validators different messages once the
    /// network is synchronous (the gossip assumption of Tendermint's
    /// liveness argument).
    fn relay(&mut self, cfg: &SimConfig, to: usize, msg: ConsensusMessage) {
        if !self.after_gst(cfg) || cfg.deaf == Some((to, msg.height())) {
            return;
        }
        let hop = cfg.max_delay_after_gst_ms.max(1);
        let at = self.now + hop + 1 + self.rng.below(hop);
        self.schedule(
            at,
            Event::Deliver {
                to,
                msg: Box::new(msg),
            },
        );
    }
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
    let params = ConsensusParams {
        timeout_propose_ms: 200,
        timeout_prevote_ms: 100,
        timeout_precommit_ms: 100,
        timeout_delta_ms: 50,
        max_block_txs: 50,
        ..ConsensusParams::default()
    };
    let (genesis, ids, patient) = sim_genesis(cfg.seed, cfg.validators, params.clone());
    let genesis_hash = genesis.hash();
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
            .sign(&genesis_hash, &patient)
        })
        .collect();
    // The Byzantine nodes' own copies of their keys, to forge with.
    let keys: Vec<Identity> = (0..cfg.validators as u64)
        .map(|i| test_identity(cfg.seed, i))
        .collect();
    let is_byzantine = |i: usize| cfg.byzantine.iter().any(|(b, _)| *b == i);
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
                    genesis_hash,
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
                    byzantine: cfg
                        .byzantine
                        .iter()
                        .find(|(b, _)| *b == i)
                        .map(|(_, s)| (*s, cfg.seed, i)),
                },
                store,
                records: Vec::new(),
                started_ms: 0,
                relayed: BTreeSet::new(),
            }
        })
        .collect();
    let n = nodes.len();
    let honest: Vec<usize> = (0..n).filter(|&i| !is_byzantine(i)).collect();
    let mut evidence = Vec::new();
    let mut net = Network {
        rng: SimRng(cfg.seed),
        queue: BinaryHeap::new(),
        events: BTreeMap::new(),
        seq: 0,
        now: genesis.genesis_time_ms,
        start: genesis.genesis_time_ms,
    };
    let mut max_stored_votes = 0;
    let mut pending: Vec<(usize, Vec<Output>)> = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        let validators = node.app.state.validators.clone();
        let out = node.consensus.start_height(1, validators, &mut node.app);
        pending.push((i, out));
        net.schedule(net.now + 200, Event::SyncTick { node: i });
    }
    loop {
        // Handle outputs (which may start new heights and produce more outputs).
        while let Some((i, outputs)) = pending.pop() {
            for output in outputs {
                match output {
                    Output::PersistSafety(_) => {}
                    Output::ScheduleTimeout { timeout, after_ms } => {
                        net.schedule(net.now + after_ms, Event::Timeout { node: i, timeout });
                    }
                    Output::Evidence(ev) => {
                        if !is_byzantine(i) {
                            evidence.push(ev);
                        }
                    }
                    Output::Broadcast(msg) => {
                        let strategy = cfg.strategy(i, msg.height());
                        let Some(key) = keys.get(i) else { continue };
                        let node = &nodes[i];
                        let ctx = Sender {
                            cfg,
                            index: i,
                            nodes: n,
                            key,
                            genesis_hash: &genesis_hash,
                            app: &node.app,
                            round: node.consensus.round(),
                        };
                        match strategy {
                            None | Some(Byzantine::InvalidProposals) | Some(Byzantine::Mixed) => {
                                ctx.to_all(&mut net, &msg);
                            }
                            Some(b) => byzantine_send(b, &ctx, &mut net, msg),
                        }
                    }
                    Output::Commit { block, cert } => {
                        let node = &mut nodes[i];
                        let committed = CommittedBlock { block, cert };
                        match verify_committed(&node.app.state, &node.app.tip, &committed) {
                            Ok(next) => {
                                let out = import(
                                    node,
                                    committed,
                                    next,
                                    net.now - net.start,
                                    false,
                                    &mut violations,
                                );
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
            .all(|&i| nodes[i].records.len() as u64 >= cfg.target_height);
        if done || net.now - net.start > cfg.max_time_ms {
            break;
        }
        let Some(Reverse((at, id))) = net.queue.pop() else {
            break;
        };
        let Some(event) = net.events.remove(&id) else {
            continue;
        };
        net.now = at;
        let now = at;
        match event {
            Event::Deliver { to, msg } => {
                if cfg.strategy(to, msg.height()) == Some(Byzantine::CorruptBytes)
                    && let ConsensusMessage::Proposal(sp) = msg.as_ref()
                    && nodes[to]
                        .relayed
                        .insert((sp.proposal.height, sp.proposal.round))
                    && let Some(copy) = corrupted_relay(sp)
                {
                    for peer in (0..n).filter(|&p| p != to) {
                        net.send(cfg, peer, copy.clone());
                    }
                }
                let node = &mut nodes[to];
                node.app.now_ms = now;
                let out = node.consensus.on_message(*msg, &mut node.app);
                if !is_byzantine(to) {
                    max_stored_votes = max_stored_votes.max(node.consensus.stored_votes());
                }
                pending.push((to, out));
            }
            Event::Timeout { node: i, timeout } => {
                let node = &mut nodes[i];
                node.app.now_ms = now;
                let out = node.consensus.on_timeout(timeout, &mut node.app);
                pending.push((i, out));
            }
            Event::SyncTick { node: i } => {
                net.schedule(now + 200, Event::SyncTick { node: i });
                // Sync only when the machine says this node is behind.
                if nodes[i].consensus.sync_target().is_none() {
                    continue;
                }
                let my_height = nodes[i].app.tip.height;
                let peer = (i + 1 + net.rng.below(n as u64 - 1) as usize) % n;
                let fetched = ChainStore::new(&nodes[peer].store).block(my_height + 1);
                if let Ok(Some(committed)) = fetched {
                    let node = &mut nodes[i];
                    if let Ok(next) = verify_committed(&node.app.state, &node.app.tip, &committed) {
                        node.app.now_ms = now;
                        let out = import(
                            node,
                            committed,
                            next,
                            now - net.start,
                            true,
                            &mut violations,
                        );
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
        commits: nodes
            .iter()
            .map(|n| n.records.iter().map(|r| r.hash).collect())
            .collect(),
        records: nodes.iter().map(|n| n.records.clone()).collect(),
        honest,
        evidence,
        verify_ok,
        violations,
        final_state: nodes[first].app.state.clone(),
        chain_id: genesis.chain_id,
        genesis_hash,
        gst_ms: cfg.gst_ms,
        sim_time_ms: net.now - net.start,
        debug: nodes
            .iter()
            .map(|n| {
                (
                    n.consensus.height(),
                    n.consensus.round(),
                    format!(
                        "{:?} decided={} sync_target={:?}",
                        n.consensus.step(),
                        n.consensus.is_decided(),
                        n.consensus.sync_target()
                    ),
                )
            })
            .collect(),
        max_stored_votes,
    }
}

fn import(
    node: &mut SimNode,
    committed: CommittedBlock,
    next: ChainState,
    now_ms: u64,
    synced: bool,
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
    node.records.push(CommitRecord {
        hash: committed.block.hash(),
        round: committed.cert.round,
        started_ms: node.started_ms,
        synced,
    });
    node.started_ms = now_ms;
    node.app.tip = crate::chain::verify::tip_of(&committed.block);
    node.app.state = next;
    let validators = node.app.state.validators.clone();
    node.consensus
        .start_height(height + 1, validators, &mut node.app)
}

/// What a sending node's strategy may use.
struct Sender<'a> {
    cfg: &'a SimConfig,
    index: usize,
    nodes: usize,
    key: &'a Identity,
    genesis_hash: &'a Hash,
    app: &'a SimApp,
    round: u32,
}

impl Sender<'_> {
    fn peers(&self) -> impl Iterator<Item = usize> + use<> {
        let me = self.index;
        (0..self.nodes).filter(move |&p| p != me)
    }

    fn to_all(&self, net: &mut Network, msg: &ConsensusMessage) {
        for to in self.peers() {
            net.send(self.cfg, to, msg.clone());
        }
    }
}

/// Sends one broadcast of a Byzantine node under concrete strategy `b`.
fn byzantine_send(b: Byzantine, ctx: &Sender<'_>, net: &mut Network, msg: ConsensusMessage) {
    match b {
        Byzantine::Equivocate => {
            let copies = [msg.clone(), equivocating_twin(ctx, &msg)];
            // One peer, picked at random, always gets both twins: an
            // equivocation no honest node ever sees both halves of is no
            // equivocation anyone could prove, and with relay only after
            // GST a run could otherwise end without one (seed
            // 9276564960405384988 did).
            let peers: Vec<usize> = ctx.peers().collect();
            let witness = peers
                .get(net.rng.below(peers.len() as u64) as usize)
                .copied();
            for to in peers {
                let [a, b] = &copies;
                let choice = if Some(to) == witness {
                    2 + net.rng.below(2)
                } else {
                    net.rng.below(4)
                };
                let picked: Vec<&ConsensusMessage> = match choice {
                    0 => vec![a],
                    1 => vec![b],
                    2 => vec![a, b],
                    _ => vec![b, a],
                };
                for m in &picked {
                    net.send(ctx.cfg, to, (*m).clone());
                }
                for m in [a, b] {
                    if !picked.contains(&m) {
                        net.relay(ctx.cfg, to, m.clone());
                    }
                }
            }
        }
        Byzantine::CorruptBytes => match msg {
            ConsensusMessage::Vote(mut sv) => {
                sv.sig.0[(net.rng.below(64)) as usize] ^= 1 << net.rng.below(8);
                ctx.to_all(net, &ConsensusMessage::Vote(sv));
            }
            ConsensusMessage::Proposal(sp) => {
                let corrupted = flip_tx_sig(&sp.proposal.block).map(|block| {
                    ConsensusMessage::Proposal(Box::new(
                        Proposal {
                            block,
                            ..sp.proposal.clone()
                        }
                        .sign(ctx.genesis_hash, ctx.key),
                    ))
                });
                let original = ConsensusMessage::Proposal(sp);
                for to in ctx.peers() {
                    let m = match &corrupted {
                        Some(c) if net.rng.below(2) == 0 => c,
                        _ => &original,
                    };
                    net.send(ctx.cfg, to, m.clone());
                }
            }
        },
        Byzantine::Withhold => {
            let precommit =
                matches!(&msg, ConsensusMessage::Vote(sv) if sv.vote.step == VoteStep::Precommit);
            if msg.height() % 2 == 1 && !precommit {
                ctx.to_all(net, &msg);
            }
        }
        Byzantine::Flood => {
            ctx.to_all(net, &msg);
            let height = msg.height();
            for _ in 0..FLOOD_VOTES_PER_MESSAGE {
                let h = match net.rng.below(4) {
                    0 | 1 => height,
                    2 => height + 1,
                    _ => height + 1 + net.rng.below(1000),
                };
                let round = ctx
                    .round
                    .saturating_add(net.rng.below(u64::from(MAX_ROUNDS_AHEAD) + 16) as u32);
                let step = if net.rng.below(2) == 0 {
                    VoteStep::Prevote
                } else {
                    VoteStep::Precommit
                };
                let hash = Hash::digest("sim/flood", &net.rng.next().to_le_bytes());
                let forged = Vote {
                    chain_id: ctx.app.state.chain_id,
                    height: h,
                    round,
                    step,
                    block_hash: Some(hash),
                    validator: ctx.key.account(),
                }
                .sign(ctx.genesis_hash, ctx.key);
                ctx.to_all(net, &ConsensusMessage::Vote(forged));
            }
        }
        Byzantine::SelectiveDelivery => {
            for to in ctx.peers() {
                if net.rng.below(2) == 0 {
                    net.send(ctx.cfg, to, msg.clone());
                } else {
                    net.relay(ctx.cfg, to, msg.clone());
                }
            }
        }
        Byzantine::InvalidProposals | Byzantine::Mixed => ctx.to_all(net, &msg),
    }
}

/// A conflicting message for the same slot: the other vote (nil for a block,
/// a bogus block for nil), or a second valid block for a proposal.
fn equivocating_twin(ctx: &Sender<'_>, msg: &ConsensusMessage) -> ConsensusMessage {
    match msg {
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
                .sign(ctx.genesis_hash, ctx.key),
            )
        }
        ConsensusMessage::Proposal(sp) => {
            // A second valid block: same parent and round, one millisecond later.
            let (block, _) = build_block(
                &ctx.app.state,
                &ctx.app.tip,
                sp.proposal.block.header.round,
                sp.proposal.block.header.time_ms + 1,
                std::iter::empty(),
                0,
            );
            ConsensusMessage::Proposal(Box::new(
                Proposal {
                    block,
                    ..sp.proposal.clone()
                }
                .sign(ctx.genesis_hash, ctx.key),
            ))
        }
    }
}

/// An honest proposal as a corrupting relay forwards it, under the
/// proposer's own signature: a re-proposal with the last entry of its polka
/// cut, any other with one transaction-signature byte flipped. `None` for a
/// new block without transactions.
fn corrupted_relay(sp: &SignedProposal) -> Option<ConsensusMessage> {
    let mut copy = sp.clone();
    if copy.polka.pop().is_none() {
        copy.proposal.block = flip_tx_sig(&sp.proposal.block)?;
    }
    Some(ConsensusMessage::Proposal(Box::new(copy)))
}

/// `block` with one byte of its first transaction's signature flipped (and
/// its header unchanged); `None` for a block without transactions.
fn flip_tx_sig(block: &Block) -> Option<Block> {
    let mut copy = block.clone();
    let tx = copy.txs.first_mut()?;
    tx.sig.0[0] ^= 0x01;
    Some(copy)
}
