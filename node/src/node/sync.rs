//! Block sync (`/qward/sync/1`): a node that is behind (an auditor, a restarted
//! validator, a new member) asks peers for their height and fetches block
//! ranges, which the driver verifies as `chain verify` does and imports.
//! It keeps each peer's latest height claim and publishes the network's
//! height as readiness may believe it (`super::ready::network_height`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use qward_core::chain::{ChainStore, CommittedBlock, Hash};
use qward_core::codec;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::context::Ctx;
use super::driver_input::DriverInput;
use super::ready::{self, HeightClaim};
use crate::metrics::Metrics;
use crate::net::{PeerId, RequestProtocol};

/// Blocks in one response, at most.
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 128;
/// Bytes of blocks in one response, at most (below the protocol's 16 MiB limit).
pub const MAX_RESPONSE_BYTES: usize = 12 * 1024 * 1024;
const MAX_REQUEST_BYTES: usize = 64;

/// A sync request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// What is your chain and height?
    Status,
    /// Committed blocks from `from` on, at most `max`.
    Blocks { from: u64, max: u32 },
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    Status { genesis: Hash, height: u64 },
    Blocks(Vec<CommittedBlock>),
    Error(String),
}

/// Answers one inbound sync request from the store. Never panics on bad input.
pub fn serve(ctx: &Ctx, data: &[u8]) -> Vec<u8> {
    let response = match codec::decode::<SyncRequest>(data, MAX_REQUEST_BYTES) {
        Err(e) => SyncResponse::Error(format!("malformed sync request: {e}")),
        Ok(SyncRequest::Status) => {
            let v = ctx.view();
            SyncResponse::Status {
                genesis: v.genesis.hash(),
                height: v.tip.height,
            }
        }
        Ok(SyncRequest::Blocks { from, max }) => {
            let chain = ChainStore::new(&*ctx.store);
            let mut blocks = Vec::new();
            let mut bytes = 0usize;
            let tip = ctx.view().tip.height;
            let last = from
                .saturating_add(u64::from(max.min(MAX_BLOCKS_PER_RESPONSE)))
                .min(tip.saturating_add(1));
            let mut h = from.max(1);
            while h < last {
                match chain.block(h) {
                    Ok(Some(b)) => {
                        bytes += b.encode().len();
                        if bytes > MAX_RESPONSE_BYTES && !blocks.is_empty() {
                            break;
                        }
                        blocks.push(b);
                    }
                    _ => break,
                }
                h += 1;
            }
            SyncResponse::Blocks(blocks)
        }
    };
    codec::encode(&response).unwrap_or_default()
}

/// Each peer's latest height claim, owned by the sync task.
#[derive(Debug, Default)]
pub struct PeerHeights {
    claims: HashMap<PeerId, HeightClaim>,
}

impl PeerHeights {
    /// `peer` says it is at `height`: this replaces what it said before,
    /// and is not backed by blocks until it delivers some.
    pub fn claim(&mut self, peer: PeerId, height: u64, now: Instant) {
        self.claims.insert(peer, HeightClaim::new(height, now));
    }

    /// Blocks from `peer` up to `last` imported: its current claim is
    /// backed. An answer short of a full response (`full` false) gave every
    /// block the peer had from where it was asked, so its own blocks show
    /// its height is `last`: a higher claim is cut to it. (Otherwise a
    /// member could serve this node the one block it lacks and claim
    /// `u64::MAX` with it, holding it unready until it is asked again.)
    pub fn delivered(&mut self, peer: &PeerId, last: u64, full: bool) {
        if let Some(claim) = self.claims.get_mut(peer) {
            claim.delivered = true;
            if !full {
                claim.height = claim.height.min(last);
            }
        }
    }

    /// Forgets expired claims, and publishes the believable network height
    /// and how many claims back it for readiness.
    pub fn publish(&mut self, metrics: &Metrics, own_height: u64, now: Instant) {
        self.claims.retain(|_, c| c.is_live(now));
        let (height, claims) = ready::network_height(self.claims.values(), own_height, now)
            .map_or((0, 0), |(h, n)| (h, n as u64));
        Metrics::set(&metrics.network_height, height);
        Metrics::set(&metrics.network_height_claims, claims);
    }
}

/// Asks `peer`; answers its response and the response's size in bytes.
async fn ask(ctx: &Ctx, peer: PeerId, req: &SyncRequest) -> anyhow::Result<(SyncResponse, usize)> {
    let bytes = ctx
        .net
        .request(RequestProtocol::Sync, peer, codec::encode(req)?)
        .await?;
    let response = codec::decode(&bytes, MAX_RESPONSE_BYTES + 1024 * 1024)?;
    Ok((response, bytes.len()))
}

/// Runs the sync loop until shutdown: every second, at once after progress,
/// and at once when woken (consensus saw the network ahead of this node, or
/// a decided block failed to import), asks the next peer its height and
/// fetches what is missing.
pub async fn run(ctx: Ctx) {
    let mut shutdown = ctx.shutdown.subscribe();
    let mut turn = 0usize;
    let mut heights = PeerHeights::default();
    loop {
        let progressed = match step(&ctx, &mut turn, &mut heights).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::debug!("sync: {e}");
                false
            }
        };
        heights.publish(&ctx.metrics, ctx.view().tip.height, Instant::now());
        let pause = if progressed {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(1000)
        };
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            _ = tokio::time::sleep(pause) => {}
            _ = ctx.sync_wake.notified() => {}
        }
    }
}

async fn step(ctx: &Ctx, turn: &mut usize, heights: &mut PeerHeights) -> anyhow::Result<u64> {
    let peers = ctx.net.peers().await?;
    if peers.is_empty() {
        return Ok(0);
    }
    *turn = turn.wrapping_add(1);
    let Some(peer) = peers.get(*turn % peers.len()).map(|p| p.peer_id) else {
        return Ok(0);
    };
    let (genesis, height) = {
        let v = ctx.view();
        (v.genesis.hash(), v.tip.height)
    };
    let (
        SyncResponse::Status {
            genesis: theirs,
            height: their_height,
        },
        _,
    ) = ask(ctx, peer, &SyncRequest::Status).await?
    else {
        anyhow::bail!("peer {peer} answered status with something else");
    };
    if theirs != genesis {
        anyhow::bail!("peer {peer} is on another chain");
    }
    Metrics::inc(&ctx.metrics.peer_heights_heard);
    heights.claim(peer, their_height, Instant::now());
    // One block behind is behind: a validator that missed the messages of a
    // committed height never gets them again from consensus, so it must fetch
    // the block (waiting for two blocks stalled a lone laggard for good).
    if their_height <= height {
        return Ok(0);
    }
    let req = SyncRequest::Blocks {
        from: height + 1,
        max: MAX_BLOCKS_PER_RESPONSE,
    };
    let (SyncResponse::Blocks(blocks), response_bytes) = ask(ctx, peer, &req).await? else {
        anyhow::bail!("peer {peer} answered a block request with something else");
    };
    if blocks.is_empty() {
        return Ok(0);
    }
    let last = blocks.last().map_or(height, |b| b.block.header.height);
    // Fewer blocks than asked, and far from the byte limit: all it has.
    let full =
        blocks.len() >= MAX_BLOCKS_PER_RESPONSE as usize || response_bytes > MAX_RESPONSE_BYTES / 2;
    let (reply, answer) = oneshot::channel();
    ctx.driver
        .send(DriverInput::Synced { blocks, reply })
        .await
        .map_err(|_| anyhow::anyhow!("driver stopped"))?;
    match answer.await {
        Ok(Ok(n)) => {
            if n > 0 {
                heights.delivered(&peer, last, full);
                let now_at = ctx.view().tip.height;
                tracing::info!(
                    "synced {n} blocks from {peer}: now at {now_at} of {their_height} ({}%)",
                    now_at.saturating_mul(100) / their_height.max(1)
                );
            }
            Ok(n)
        }
        Ok(Err(e)) => anyhow::bail!("blocks from {peer} refused: {e}"),
        Err(_) => anyhow::bail!("driver stopped"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::node::testkit;
    use crate::node::view::ChainView;

    /// A node three blocks ahead serves them; the sync task of a node at
    /// genesis asks its height, fetches the blocks and hands them to the
    /// driver (a fake here, which imports them as the real one would).
    #[tokio::test]
    async fn a_node_behind_fetches_the_missing_blocks_and_hands_them_to_the_driver() {
        let mut ahead = testkit::hospital(1, 0);
        for _ in 0..3 {
            let block = ahead.chain.commit(Vec::new()).clone();
            ChainStore::new(&*ahead.ctx.store)
                .import(&block)
                .expect("the test chain's block imports");
        }
        let view = ChainView::load(&ahead.ctx.store).expect("a view");
        assert_eq!(view.tip.height, 3);
        let views = ahead.views.take().expect("the view sender");
        views.send_replace(Arc::new(view));

        let mut behind = testkit::hospital(1, 0);
        let _seen = behind.connect(vec![ahead.reachable()]);
        tokio::spawn(run(behind.ctx.clone()));
        let input = tokio::time::timeout(Duration::from_secs(30), behind.driver.recv())
            .await
            .expect("the sync task asks the driver in time")
            .expect("an input");
        let DriverInput::Synced { blocks, reply } = input else {
            panic!("sync hands over blocks");
        };
        let heights: Vec<u64> = blocks.iter().map(|b| b.block.header.height).collect();
        assert_eq!(heights, vec![1, 2, 3]);
        assert_eq!(blocks, ahead.chain.blocks, "the blocks as committed");
        let _ = reply.send(Ok(3));
        behind.ctx.request_shutdown();
        assert!(behind.ctx.metrics.peer_heights_heard.get() >= 1);
    }

    #[test]
    fn bad_sync_requests_get_an_error_answer() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _guard = runtime.enter();
        let node = testkit::hospital(1, 0);
        for bad in [vec![], vec![0xff; 8], vec![0; 100]] {
            let answer: SyncResponse =
                codec::decode(&serve(&node.ctx, &bad), MAX_RESPONSE_BYTES).expect("an answer");
            assert!(matches!(answer, SyncResponse::Error(_)), "{answer:?}");
        }
        // A range past the tip is empty, not an error.
        let ask = codec::encode(&SyncRequest::Blocks {
            from: 5,
            max: u32::MAX,
        })
        .expect("encodes");
        let answer: SyncResponse =
            codec::decode(&serve(&node.ctx, &ask), MAX_RESPONSE_BYTES).expect("an answer");
        assert_eq!(answer, SyncResponse::Blocks(Vec::new()));
    }

    fn published(m: &Metrics) -> (u64, u64) {
        (m.network_height.get(), m.network_height_claims.get())
    }

    #[test]
    fn a_peer_claiming_the_top_height_is_believed_only_while_its_blocks_import() {
        let metrics = Metrics::default();
        let (liar, honest) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let mut heights = PeerHeights::default();
        heights.claim(liar, u64::MAX, t0);
        heights.claim(honest, 10, t0);
        heights.publish(&metrics, 10, t0);
        assert_eq!(published(&metrics), (10, 1));
        // A claim one block ahead counts once that peer's blocks imported.
        heights.claim(honest, 11, t0);
        heights.publish(&metrics, 10, t0);
        assert_eq!(published(&metrics), (0, 0));
        heights.delivered(&honest, 11, false);
        heights.publish(&metrics, 10, t0);
        assert_eq!(published(&metrics), (11, 1));
        // Its blocks imported, a full answer: believed, until it claims again.
        heights.delivered(&liar, 138, true);
        heights.publish(&metrics, 10, t0);
        assert_eq!(published(&metrics), (u64::MAX, 2));
        heights.claim(liar, u64::MAX, t0 + Duration::from_secs(1));
        heights.publish(&metrics, 11, t0 + Duration::from_secs(1));
        assert_eq!(published(&metrics), (11, 1));
    }

    #[test]
    fn a_peer_serving_the_one_missing_block_cannot_vouch_for_a_height_it_lacks() {
        let metrics = Metrics::default();
        let liar = PeerId::random();
        let t0 = Instant::now();
        let mut heights = PeerHeights::default();
        heights.claim(liar, u64::MAX, t0);
        // It hands over block 11 only (all it has): its height is 11.
        heights.delivered(&liar, 11, false);
        heights.publish(&metrics, 11, t0);
        assert_eq!(published(&metrics), (11, 1));
        assert!(ready::decide(ready::ReadyInputs {
            height: 11,
            network_height: 11,
            heard_from_peers: true,
            peers: 1,
            other_members: 1,
        }));
    }

    #[test]
    fn claims_expire_and_are_forgotten() {
        let metrics = Metrics::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        let mut heights = PeerHeights::default();
        heights.claim(peer, 7, t0);
        heights.publish(&metrics, 10, t0);
        assert_eq!(published(&metrics), (7, 1));
        heights.publish(&metrics, 10, t0 + ready::CLAIM_TTL);
        assert_eq!(published(&metrics), (0, 0));
        assert!(heights.claims.is_empty());
        // A delivery from a peer with no claim changes nothing.
        heights.delivered(&peer, 8, false);
        assert!(heights.claims.is_empty());
    }
}
