//! The consensus driver: runs the `core` consensus state machine with real
//! timers and the network, persists what the validator signs before it is
//! sent, imports committed blocks (one atomic batch each), and paces heights
//! by the configured block interval.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use qward_core::api::Event;
use std::sync::Arc;

use qward_core::chain::{
    Block, ChainStore, CommittedBlock, SignedTransaction, TxKind, build_block, validate_block,
};
use qward_core::consensus::{
    Consensus, ConsensusApp, ConsensusMessage, Output, load_safety, save_safety,
};
use qward_core::identity::{AccountId, Identity, Role};
use tokio::sync::{mpsc, watch};

use super::clock::now_ms;
use super::context::Ctx;
pub use super::driver_input::DriverInput;
use super::view::ChainView;
use crate::metrics::Metrics;

/// Blocks must not claim a time further ahead of this node's clock.
const MAX_CLOCK_DRIFT_MS: u64 = 30_000;

struct App {
    /// The chain as of the last import (this driver publishes it).
    view: Arc<ChainView>,
    /// What the next block this node proposes is built from: fetched from
    /// the pool task before a height starts or a round times out, when this
    /// node may propose (the machine asks for a block synchronously).
    candidates: Vec<SignedTransaction>,
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
        let view = self.view.clone();
        let max = view.genesis.params.max_block_txs as usize;
        let candidates = std::mem::take(&mut self.candidates);
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
        let view = &self.view;
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
    /// The one sender of chain views: every import publishes one.
    views: watch::Sender<Arc<ChainView>>,
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
    /// Where the machine is, for `status`.
    progress: watch::Sender<super::progress::ConsensusProgress>,
    /// The first height this process ran consensus on: only blocks from
    /// there on can prove another signer of this key (older certificates
    /// and evidence may be this key's own past, replayed by anyone).
    started_height: u64,
    /// The next height and when its heartbeat is due, while this node holds
    /// it back because there is nothing to commit (the chain's empty-block
    /// interval).
    idle: Option<(u64, u64)>,
    /// When the machine's current height started (unix ms), for `status`.
    height_started_ms: u64,
    /// When each validator's newest consensus message arrived, for `status`.
    last_heard: std::collections::BTreeMap<AccountId, u64>,
    /// Silence of validators counts from here (see `ConsensusProgress`).
    counting_since_ms: u64,
}

/// Runs the driver until shutdown.
pub async fn run(
    ctx: Ctx,
    views: watch::Sender<Arc<ChainView>>,
    progress: watch::Sender<super::progress::ConsensusProgress>,
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
    let view = views.borrow().clone();
    let (chain_id, genesis_hash, params, validators, next_height) = {
        let v = &view;
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
    let machine = Consensus::new(chain_id, genesis_hash, params, validators, identity, safety);
    let mut driver = Driver {
        app: App {
            view,
            candidates: Vec::new(),
            validated: None,
        },
        ctx: ctx.clone(),
        views,
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
        progress,
        started_height: next_height,
        idle: None,
        height_started_ms: now_ms(),
        last_heard: std::collections::BTreeMap::new(),
        counting_since_ms: now_ms(),
    };
    driver.update_members().await;
    driver.start_if_due(next_height).await;
    driver.publish_progress();

    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        let deadline = driver.timers.next_deadline();
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            input = inputs.recv() => {
                let Some(input) = input else { break };
                driver.on_input(input).await;
                driver.publish_progress();
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                for timeout in driver.timers.take_due(tokio::time::Instant::now()) {
                    driver.on_input(DriverInput::Timeout(timeout)).await;
                }
                driver.publish_progress();
            }
            _ = ctx.tx_ready.notified(), if driver.idle.is_some() => {
                if let Some((height, _)) = driver.idle {
                    driver.start_if_due(height).await;
                    driver.publish_progress();
                }
            }
        }
    }
}

impl Driver {
    /// Publishes where the machine is (only when that changed).
    fn publish_progress(&self) {
        let m = &self.machine;
        let now = super::progress::ConsensusProgress {
            height: self.idle.map_or(m.height(), |(h, _)| h),
            round: m.round(),
            step: Some(m.step()),
            decided: m.is_decided(),
            last_heard: self.last_heard.iter().map(|(a, t)| (*a, *t)).collect(),
            quiet_after_ms: self
                .app
                .view
                .genesis
                .params
                .timeout_ms(qward_core::consensus::TimeoutStep::Propose, m.round())
                .saturating_add(1_000),
            counting_since_ms: self.counting_since_ms,
            sync_target: m.sync_target(),
            idle_until_ms: self.idle.map(|(_, heartbeat)| heartbeat),
            height_started_ms: self.height_started_ms,
        };
        self.progress.send_if_modified(|p| {
            let changed = *p != now;
            if changed {
                *p = now;
            }
            changed
        });
    }

    async fn on_input(&mut self, input: DriverInput) {
        match input {
            DriverInput::Gossip(msg) => {
                let signer = msg.signer();
                if self.app.view.state.validators.contains(&signer) {
                    self.last_heard.insert(signer, now_ms());
                }
                if self.byzantine.is_none()
                    && msg.signer() == self.ctx.account
                    && self.machine.safety().is_foreign(&msg)
                {
                    self.ctx.twin.raise(format!(
                        "a consensus message at height {} round {} signed with this node's \
                         key that this process did not sign",
                        msg.height(),
                        msg.round()
                    ));
                }
                if let Some(copy) = self.byzantine.as_mut().and_then(|b| b.relay(&msg)) {
                    self.publish(copy).await;
                }
                // The gossip validator checked the signature (and a
                // proposal's body) against the same genesis: not again.
                let out = self.machine.on_verified_message(*msg, &mut self.app);
                self.handle(out).await;
                self.wake_sync_if_behind();
                if let Some((height, _)) = self.idle
                    && self.machine.started_elsewhere(height)
                {
                    self.start_if_due(height).await;
                }
            }
            DriverInput::Timeout(t) => {
                // A timeout may move the machine to the next round, which
                // this node may propose.
                self.refresh_candidates(t.height, t.round.saturating_add(1))
                    .await;
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
        let (tip, validators) = (
            self.app.view.tip.height,
            self.app.view.state.validators.clone(),
        );
        if tip + 1 != height || (self.machine.height() == height && !self.machine.is_decided()) {
            return;
        }
        if self.holds_back(height).await {
            return;
        }
        if self.idle.take().is_some() {
            self.counting_since_ms = now_ms();
        }
        self.height_started_ms = now_ms();
        Metrics::inc(&self.ctx.metrics.consensus_rounds);
        self.refresh_candidates(height, 0).await;
        let out = self.machine.start_height(height, validators, &mut self.app);
        self.handle(out).await;
    }

    /// Whether `height` waits because there is nothing to commit: the
    /// chain skips empty blocks (its empty-block interval is longer than
    /// its block time), the heartbeat is not due, no transaction is ready
    /// here, and validators with more than a third of the power have not
    /// started it. The wait ends at the heartbeat (a timer), when the pool
    /// admits a transaction (`tx_ready`), or on others' messages for it.
    async fn holds_back(&mut self, height: u64) -> bool {
        let timing = self.app.view.state.block_timing;
        if !timing.skips_empty_blocks() || self.machine.started_elsewhere(height) {
            return false;
        }
        let heartbeat = self
            .app
            .view
            .tip
            .time_ms
            .saturating_add(timing.empty_block_interval_ms);
        let now = now_ms();
        if now >= heartbeat || !self.ctx.pool.candidates(1).await.is_empty() {
            return false;
        }
        if self.idle.map(|(h, _)| h) != Some(height) {
            self.idle = Some((height, heartbeat));
            let inputs = self.inputs.clone();
            let wait = Duration::from_millis(heartbeat - now);
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = inputs.send(DriverInput::StartNext(height)).await;
            });
        }
        true
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
                    if self.ctx.twin.is_raised() {
                        // Another process signs with this key: nothing more
                        // from this one (see twin.rs).
                        tracing::warn!(
                            height = msg.height(),
                            round = msg.round(),
                            "withholding a consensus message: this node's key runs twice"
                        );
                        continue;
                    }
                    match self.byzantine.as_mut() {
                        None => self.publish(msg).await,
                        Some(b) => {
                            let sent = b.outgoing(msg, &self.app.view);
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
                    if let Err(e) = self.ctx.pool.submit(kind).await {
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

    /// Fetches block candidates from the pool when this node is the
    /// proposer of `height` at `round`.
    async fn refresh_candidates(&mut self, height: u64, round: u32) {
        let view = &self.app.view;
        if view.tip.height + 1 != height
            || view.state.validators.proposer(height, round) != self.ctx.account
        {
            return;
        }
        let max = view.genesis.params.max_block_txs as usize;
        self.app.candidates = self.ctx.pool.candidates(max.saturating_mul(2)).await;
    }

    async fn publish(&self, msg: ConsensusMessage) {
        let topic = self.app.view.consensus_topic();
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
        let parent = self.app.view.tip.hash;
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
                    let view = &self.app.view;
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
        self.check_key_twin(committed);
        let block = &committed.block;
        let tip = qward_core::chain::verify::tip_of(block);
        let view = Arc::new(ChainView {
            genesis: self.app.view.genesis.clone(),
            state,
            tip,
        });
        // Readers (the pool first: it prunes before it answers again) see
        // the new view from here on.
        self.app.view = view.clone();
        self.views.send_replace(view);
        let m = &self.ctx.metrics;
        Metrics::set(&m.height, tip.height);
        Metrics::set(&m.finalized_height, tip.height);
        Metrics::inc(&m.blocks_finalized);
        Metrics::add(&m.txs_finalized, block.txs.len() as u64);
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
        for t in &block.txs {
            if let TxKind::RequestErasure(r) = &t.tx.kind
                && r.holder == self.ctx.account
            {
                tokio::spawn(super::messages::erase::on_request(
                    self.ctx.messaging.clone(),
                    self.ctx.access.clone(),
                    t.tx.author,
                    r.record_id,
                    self.ctx.config.erase_on_patient_request,
                ));
            }
            if let TxKind::DeclareEmergency(e) = &t.tx.kind {
                if e.patient == self.ctx.account {
                    tracing::warn!(
                        "EMERGENCY: {} declared break-glass access to this patient's records until {} UTC: {}",
                        self.ctx.contacts.label(&t.tx.author),
                        qward_core::calendar::utc_date(e.expires_at_ms),
                        e.reason
                    );
                }
                self.ctx.emit(Event::Emergency(super::guarded::info(
                    &self.ctx,
                    &e.patient,
                    &t.tx.author,
                    e.reason.clone(),
                    tip.height,
                    e.expires_at_ms,
                    super::clock::now_ms(),
                )));
            }
        }
        Ok(())
    }

    /// Raises the key-twin alarm when an imported block proves another
    /// process signs with this node's key: its certificate carries a
    /// precommit of this key that this node's signing record never made, or
    /// it holds evidence of a double vote by this key (this node never signs
    /// twice at one height, round and step, so one of the two is another's).
    fn check_key_twin(&mut self, committed: &CommittedBlock) {
        if self.byzantine.is_some() {
            return;
        }
        let me = self.ctx.account;
        let cert = &committed.cert;
        let height = cert.height;
        if height >= self.started_height
            && cert.sigs.iter().any(|s| s.validator == me)
            && self
                .machine
                .safety()
                .is_foreign_precommit(height, cert.round, &cert.block_hash)
        {
            self.ctx.twin.raise(format!(
                "block {height} carries a precommit signed with this node's key \
                 that this process did not sign"
            ));
        }
        let since = self.started_height;
        let evidence_against_me = committed.block.txs.iter().any(|t| {
            matches!(&t.tx.kind, TxKind::SubmitEvidence(e) if e.offender() == me && e.height() >= since)
        });
        if evidence_against_me {
            self.ctx.twin.raise(format!(
                "block {height} holds evidence of two conflicting votes signed with this \
                 node's key"
            ));
        }
        if self.ctx.twin.is_raised() && self.machine.is_signing() {
            self.machine.stop_signing();
            tracing::warn!("consensus: this node signs nothing from now on (its key runs twice)");
        }
    }

    async fn after_import(&mut self) {
        self.update_members().await;
    }

    /// Tells the network who may connect: the chain's active members.
    async fn update_members(&mut self) {
        let members: HashSet<crate::net::PeerId> = {
            let v = &self.app.view;
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

    /// Starts `height` one block time (the chain's) after the last block.
    fn schedule_next(&self, height: u64, last_block_time_ms: u64) {
        let interval = self.app.view.state.block_timing.block_time_ms;
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
            let tip = self.app.view.tip.height;
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
            let next = self.app.view.tip.height + 1;
            if self.machine.height() < next {
                if self.idle.take().is_some() {
                    self.counting_since_ms = now_ms();
                }
                self.height_started_ms = now_ms();
                let validators = self.app.view.state.validators.clone();
                self.refresh_candidates(next, 0).await;
                let out = self.machine.start_height(next, validators, &mut self.app);
                self.handle(out).await;
            }
        }
        Ok(imported)
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
