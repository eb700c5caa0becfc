//! Block sync (`/qward/sync/1`): a node that is behind (an auditor, a restarted
//! validator, a new member) asks peers for their height and fetches block
//! ranges, which the driver verifies as `chain verify` does and imports.

use std::time::Duration;

use qward_core::chain::{ChainStore, CommittedBlock, Hash};
use qward_core::codec;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::context::Ctx;
use super::driver::DriverInput;
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

async fn ask(ctx: &Ctx, peer: PeerId, req: &SyncRequest) -> anyhow::Result<SyncResponse> {
    let bytes = ctx
        .net
        .request(RequestProtocol::Sync, peer, codec::encode(req)?)
        .await?;
    Ok(codec::decode(&bytes, MAX_RESPONSE_BYTES + 1024 * 1024)?)
}

/// Runs the sync loop until shutdown: every second, at once after progress,
/// and at once when woken (consensus saw the network ahead of this node, or
/// a decided block failed to import), asks the next peer its height and
/// fetches what is missing.
pub async fn run(ctx: Ctx) {
    let mut shutdown = ctx.shutdown.subscribe();
    let mut turn = 0usize;
    loop {
        let progressed = match step(&ctx, &mut turn).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::debug!("sync: {e}");
                false
            }
        };
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

async fn step(ctx: &Ctx, turn: &mut usize) -> anyhow::Result<u64> {
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
    let SyncResponse::Status {
        genesis: theirs,
        height: their_height,
    } = ask(ctx, peer, &SyncRequest::Status).await?
    else {
        anyhow::bail!("peer {peer} answered status with something else");
    };
    if theirs != genesis {
        anyhow::bail!("peer {peer} is on another chain");
    }
    Metrics::inc(&ctx.metrics.peer_heights_heard);
    ctx.metrics
        .network_height
        .fetch_max(their_height, std::sync::atomic::Ordering::Relaxed);
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
    let SyncResponse::Blocks(blocks) = ask(ctx, peer, &req).await? else {
        anyhow::bail!("peer {peer} answered a block request with something else");
    };
    if blocks.is_empty() {
        return Ok(0);
    }
    let (reply, answer) = oneshot::channel();
    ctx.driver
        .send(DriverInput::Synced { blocks, reply })
        .await
        .map_err(|_| anyhow::anyhow!("driver stopped"))?;
    match answer.await {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(
                    "synced {n} blocks from {peer}, now at {}",
                    ctx.view().tip.height
                );
            }
            Ok(n)
        }
        Ok(Err(e)) => anyhow::bail!("blocks from {peer} refused: {e}"),
        Err(_) => anyhow::bail!("driver stopped"),
    }
}
