//! The consensus driver: runs the `core` consensus state machine with real
//! timers and the network, persists what the validator signs before it is
//! sent, imports committed blocks (one atomic batch each), and paces heights
//! by the configured block interval.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use qward_core::api::Event;
use qward_core::chain::{
    Block, ChainStore, CommittedBlock, SignedTransaction, Transaction, TxKind, build_block,
    validate_block,
};
use qward_core::consensus::{
    Consensus, ConsensusApp, ConsensusMessage, Output, Timeout, load_safety, save_safety,
};
use qward_core::identity::{AccountId, Identity, Role};
use tokio::sync::{mpsc, oneshot};

use super::context::{ChainView, Ctx, now_ms};
use crate::metrics::Metrics;

/// What the driver reacts to.
#[derive(Debug)]
pub enum DriverInput {
    /// A consensus message from the network, already signature-checked.
    Gossip(Box<ConsensusMessage>),
    /// A timeout the machine scheduled, now due.
    Timeout(Timeout),
    /// Time to start consensus on this height (after the block interval).
    StartNext(u64),
    /// Blocks fetched by sync, to verify and import in order. Answers how many were imported.
    Synced {
        blocks: Vec<CommittedBlock>,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

/// Blocks must not claim a time further ahead of this node's clock.
const MAX_CLOCK_DRIFT_MS: u64 = 30_000;

struct App {
    ctx: Ctx,
    /// The last proposal this node validated, with the state after it: when
    /// that exact block (its hash pins every byte, signatures included) is then committed,
    /// its import checks the certificate and reuses the validation instead of
    /// verifying every transaction signature and re-applying the block again.
    validated: Option<ValidatedBlock>,
}

struct ValidatedBlock {
    hash: qward_core::chain::Hash,
    parent: qward_core::chain::Hash,
    state: qward_core::chain::ChainState,
}

impl ConsensusApp for App {
    fn build_block(&mut self, _height: u64, round: u32) -> Block {
        let view = self.ctx.view();
        let max = view.genesis.params.max_block_txs as usize;
        let candidates = self.ctx.mempool().candidates(max.saturating_mul(2));
        let (block, state) = build_block(&view.state, &view.tip, round, now_ms(), candidates, max);
        self.validated = Some(ValidatedBlock {
            hash: block.hash(),
            parent: view.tip.hash,
            state,
        });
        block
    }

    fn validate_block(&mut self, block: &Block) -> bool {
        if block.header.time_ms > now_ms() + MAX_CLOCK_DRIFT_MS {
            tracing::warn!(
                height = block.header.height,
                "refused a proposal from the future"
            );
            return false;
        }
        let view = self.ctx.view();
        match validate_block(&view.state, &view.tip, block) {
            Ok(state) => {
                self.validated = Some(ValidatedBlock {
                    hash: block.hash(),
                    parent: view.tip.hash,
                    state,
                });
                true
            }
            Err(e) => {
                tracing::warn!(
                    height = block.header.height,
                    "refused an invalid proposal: {e}"
                );
                false
            }
        }
    }
}

struct Driver {
    ctx: Ctx,
    machine: Consensus,
    app: App,
    inputs: mpsc::Sender<DriverInput>,
    /// Peer ids of members already converted: turning an account into a
    /// peer id decompresses a curve point, too slow to redo for every member
    /// after every block.
    member_peers: HashMap<AccountId, crate::net::PeerId>,
    /// Test-only misbehaviour (`qward run --byzantine`).
    byzantine: Option<super::byzantine::Byzantine>,
    /// The machine's scheduled timeouts, waited on as one deadline.
    timers: super::timers::ConsensusTimers,
}

/// Runs the driver until shutdown.
pub async fn run(
    ctx: Ctx,
    mut inputs: mpsc::Receiver<DriverInput>,
    inputs_tx: mpsc::Sender<DriverInput>,
    byzantine: Option<super::byzantine::Strategy>,
) {
    let safety = match load_safety(&*ctx.store) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "cannot read the consensus signing record: {e}; not starting consensus"
            );
            return;
        }
    };
    let (chain_id, genesis_hash, params, validators, next_height) = {
        let v = ctx.view();
        (
            v.state.chain_id,
            v.state.genesis_hash,
            v.genesis.params.clone(),
            v.state.validators.clone(),
            v.tip.height + 1,
        )
    };
    let identity = if ctx.config.role == Role::Hospital {
        Identity::from_secret_bytes(ctx.identity.secret_bytes().as_slice()).ok()
    } else {
        None
    };
    let machine = Consensus::new(
        chain_id,
        genesis_hash,
        params,
        validators.clone(),
        identity,
        safety,
    );
    let mut driver = Driver {
        app: App {
            ctx: ctx.clone(),
            validated: None,
        },
        ctx: ctx.clone(),
        machine,
        inputs: inputs_tx,
        member_peers: HashMap::new(),
        byzantine: byzantine.and_then(|strategy| {
            tracing::warn!("BYZANTINE TEST MODE: this node attacks its network ({strategy:?})");
            Identity::from_secret_bytes(ctx.identity.secret_bytes().as_slice())
                .ok()
                .map(|id| super::byzantine::Byzantine::new(strategy, id))
        }),
        timers: super::timers::ConsensusTimers::default(),
    };
    driver.update_members().await;
    let out = driver
        .machine
        .start_height(next_height, validators, &mut driver.app);
    driver.handle(out).await;

    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        let deadline = driver.timers.next_deadline();
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            input = inputs.recv() => {
                let Some(input) = input else { break };
                driver.on_input(input).await;
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                for timeout in driver.timers.take_due(tokio::time::Instant::now()) {
                    driver.on_input(DriverInput::Timeout(timeout)).await;
                }
            }
        }
    }
}

impl Driver {
    async fn on_input(&mut self, input: DriverInput) {
        match input {
            DriverInput::Gossip(msg) => {
                if let Some(copy) = self.byzantine.as_mut().and_then(|b| b.relay(&msg)) {
                    self.publish(copy).await;
                }
                // The gossip validator checked the signature (and a
                // proposal's body) against the same genesis: not again.
                let out = self.machine.on_verified_message(*msg, &mut self.app);
                self.handle(out).await;
                self.wake_sync_if_behind();
            }
            DriverInput::Timeout(t) => {
                let out = self.machine.on_timeout(t, &mut self.app);
                self.handle(out).await;
            }
            DriverInput::StartNext(height) => self.start_if_due(height).await,
            DriverInput::Synced { blocks, reply } => {
                let result = self.import_synced(blocks).await;
                let _ = reply.send(result);
            }
        }
    }

    /// Starts `height` if the chain is at `height - 1` and the machine is idle there.
    async fn start_if_due(&mut self, height: u64) {
        let (tip, validators) = {
            let v = self.ctx.view();
            (v.tip.height, v.state.validators.clone())
        };
        if tip + 1 != height || (self.machine.height() == height && !self.machine.is_decided()) {
            return;
        }
        Metrics::inc(&self.ctx.metrics.consensus_rounds);
        let out = self.machine.start_height(height, validators, &mut self.app);
        self.handle(out).await;
    }

    async fn handle(&mut self, outputs: Vec<Output>) {
        let mut persisted = true;
        for output in outputs {
            match output {
                Output::PersistSafety(state) => {
                    if let Err(e) = save_safety(&*self.ctx.store, &state) {
                        tracing::error!(
                            "cannot persist the signing record, withholding votes: {e}"
                        );
                        persisted = false;
                    }
                }
                Output::Broadcast(msg) => {
                    if !persisted {
                        continue;
                    }
                    match self.byzantine.as_mut() {
                        None => self.publish(msg).await,
                        Some(b) => {
                            let sent = {
                                let view = self.ctx.view();
                                b.outgoing(msg, &view)
                            };
                            for m in sent {
                                self.publish(m).await;
                            }
                        }
                    }
                }
                Output::ScheduleTimeout { timeout, after_ms } => {
                    let at = tokio::time::Instant::now() + Duration::from_millis(after_ms);
                    let current = (self.machine.height(), self.machine.round());
                    self.timers.schedule(at, timeout, current);
                }
                Output::Commit { block, cert } => {
                    self.commit(CommittedBlock { block, cert }).await;
                }
                Output::Evidence(evidence) => {
                    tracing::warn!(offender = %evidence.offender().short(), height = evidence.height(), "equivocation detected");
                    let kind = TxKind::SubmitEvidence(Box::new(evidence));
                    if let Err(e) = submit_own(&self.ctx, kind).await {
                        tracing::warn!("evidence not submitted: {e}");
                    }
                }
            }
        }
    }

    /// Wakes the sync task when consensus shows the network past this node
    /// (more than 1/3 of the power at a later height, or a quorum of
    /// precommits for a block it lacks): it cannot catch up by voting.
    fn wake_sync_if_behind(&self) {
        if self.machine.sync_target().is_some() {
            Metrics::inc(&self.ctx.metrics.sync_wakeups);
            self.ctx.sync_wake.notify_one();
        }
    }

    async fn publish(&self, msg: ConsensusMessage) {
        let topic = self.ctx.consensus_topic();
        if let Err(e) = self.ctx.net.publish(&topic, msg.encode()).await {
            tracing::debug!("consensus message not published: {e}");
        }
    }

    async fn commit(&mut self, committed: CommittedBlock) {
        let height = committed.block.header.height;
        if let Err(e) = self.import(&committed) {
            // The machine is decided at this height with no block: fetch the
            // committed block from peers (sync verifies it as `chain verify`
            // does, and restarts consensus on the next height).
            tracing::error!(
                height,
                "cannot import a committed block, fetching it from peers: {e}"
            );
            self.ctx.sync_wake.notify_one();
            return;
        }
        self.after_import().await;
        self.schedule_next(height + 1, committed.block.header.time_ms);
    }

    /// Verifies and imports one block as one atomic batch, then updates the view.
    fn import(&mut self, committed: &CommittedBlock) -> anyhow::Result<()> {
        let chain = ChainStore::new(&*self.ctx.store);
        let parent = self.ctx.view().tip.hash;
        // The block hash covers the header and every transaction byte, so an
        // equal hash is the same block with the same parent; the tip check
        // makes sure the view has not moved since.
        let reuse = self
            .app
            .validated
            .take()
            .filter(|v| v.parent == parent && v.hash == committed.block.hash());
        let state = match reuse {
            Some(v) => {
                {
                    let view = self.ctx.view();
                    committed.cert.verify(
                        &view.state.genesis_hash,
                        view.state.chain_id,
                        committed.block.header.height,
                        &committed.block.hash(),
                        &view.state.validators,
                    )?;
                }
                chain.import_verified(committed, &v.state)?;
                v.state
            }
            None => chain.import(committed)?,
        };
        let block = &committed.block;
        let tip = qward_core::chain::verify::tip_of(block);
        let genesis = self.ctx.view().genesis.clone();
        self.ctx.advance_view(ChainView {
            genesis,
            state,
            tip,
        });
        let m = &self.ctx.metrics;
        Metrics::set(&m.height, tip.height);
        Metrics::set(&m.finalized_height, tip.height);
        Metrics::inc(&m.blocks_finalized);
        m.txs_finalized
            .fetch_add(block.txs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Metrics::set(&m.mempool_size, self.ctx.mempool().len() as u64);
        let hash = block.hash();
        tracing::info!(
            "finalized block {} {} txs={} round={} signers={}",
            tip.height,
            hash.short(),
            block.txs.len(),
            block.header.round,
            committed.cert.sigs.len()
        );
        self.ctx.emit(Event::Block {
            height: tip.height,
            hash: hash.to_hex(),
            txs: block.txs.len(),
            proposer: block.header.proposer.to_hex(),
            time_ms: block.header.time_ms,
        });
        Ok(())
    }

    async fn after_import(&mut self) {
        self.update_members().await;
    }

    /// Tells the network who may connect: the chain's active members.
    async fn update_members(&mut self) {
        let members: HashSet<crate::net::PeerId> = {
            let v = self.ctx.view();
            let known = &mut self.member_peers;
            v.state
                .members
                .iter()
                .filter(|(_, m)| m.active)
                .filter_map(|(a, _)| match known.get(a) {
                    Some(peer) => Some(*peer),
                    None => {
                        let peer = crate::net::peer_id_from_account(a).ok()?;
                        known.insert(*a, peer);
                        Some(peer)
                    }
                })
                .collect()
        };
        if let Err(e) = self.ctx.net.set_members(members).await {
            tracing::debug!("membership not updated: {e}");
        }
    }

    fn schedule_next(&self, height: u64, last_block_time_ms: u64) {
        let interval = self.ctx.config.block_interval_ms;
        let elapsed = now_ms().saturating_sub(last_block_time_ms);
        let wait = interval.saturating_sub(elapsed).min(interval);
        let tx = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let _ = tx.send(DriverInput::StartNext(height)).await;
        });
    }

    async fn import_synced(&mut self, blocks: Vec<CommittedBlock>) -> Result<u64, String> {
        let mut imported = 0;
        for committed in blocks {
            let height = committed.block.header.height;
            let tip = self.ctx.view().tip.height;
            if height <= tip {
                continue;
            }
            if height != tip + 1 {
                return Err(format!(
                    "sync sent block {height} while the chain is at {tip}"
                ));
            }
            self.import(&committed)
                .map_err(|e| format!("block {height}: {e}"))?;
            Metrics::inc(&self.ctx.metrics.blocks_synced);
            imported += 1;
        }
        if imported > 0 {
            self.after_import().await;
            let next = self.ctx.view().tip.height + 1;
            if self.machine.height() < next {
                let validators = self.ctx.view().state.validators.clone();
                let out = self.machine.start_height(next, validators, &mut self.app);
                self.handle(out).await;
            }
        }
        Ok(imported)
    }
}

/// Signs a transaction of this node's own with its next nonce, adds it to the
/// mempool and gossips it. Returns the transaction id.
pub async fn submit_own(ctx: &Ctx, kind: TxKind) -> anyhow::Result<qward_core::chain::Hash> {
    Ok(submit_own_with_nonce(ctx, kind).await?.0)
}

/// [`submit_own`], also returning the nonce the transaction was signed with.
pub async fn submit_own_with_nonce(
    ctx: &Ctx,
    kind: TxKind,
) -> anyhow::Result<(qward_core::chain::Hash, u64)> {
    let (signed, id) = {
        let view = ctx.view();
        let mut pool = ctx.mempool();
        let nonce = pool.next_nonce(&ctx.account, &view.state);
        let tx = Transaction {
            chain_id: view.state.chain_id,
            author: ctx.account,
            nonce,
            kind,
        };
        let signed: SignedTransaction = tx.sign(&view.state.genesis_hash, &ctx.identity);
        // Refuse at once what the chain's rules would refuse, rather than
        // leave it in the mempool (checked when no earlier one of ours is pending).
        let next = view.state.members.get(&ctx.account).map(|m| m.next_nonce);
        if next == Some(nonce) {
            view.state
                .check(
                    &signed,
                    view.tip.height + 1,
                    now_ms().max(view.tip.time_ms + 1),
                )
                .map_err(|e| anyhow::anyhow!("the chain would refuse this transaction: {e}"))?;
        }
        let id = pool.insert(signed.clone(), &view.state, now_ms())?;
        (signed, id)
    };
    Metrics::inc(&ctx.metrics.txs_submitted);
    Metrics::set(&ctx.metrics.mempool_size, ctx.mempool().len() as u64);
    let topic = ctx.tx_topic();
    if let Err(e) = ctx.net.publish(&topic, signed.encode()).await {
        tracing::debug!("transaction {} not gossiped yet: {e}", id.short());
    }
    ctx.emit(Event::Transaction {
        id: id.to_hex(),
        kind: signed.tx.kind.name().to_string(),
        accepted: true,
        reason: None,
    });
    Ok((id, signed.tx.nonce))
}
