//! Network events to the node: validates every gossip message before it is
//! forwarded (rejecting and penalising invalid ones), feeds consensus messages
//! to the driver and transactions to the mempool, and answers requests.

use qward_core::api::Event;
use qward_core::chain::SignedTransaction;
use qward_core::consensus::ConsensusMessage;
use tokio::sync::{mpsc, watch};

use super::context::Ctx;
use super::driver_input::DriverInput;
use super::pool::OfferError;
use super::sync;
use crate::metrics::Metrics;
use crate::net::{GossipValidation, Multiaddr, NetworkEvent, RequestProtocol};

/// Handles network events until the network stops or the node shuts down.
/// `listen` receives the addresses the network reports it listens on.
pub async fn run(
    ctx: Ctx,
    mut events: mpsc::Receiver<NetworkEvent>,
    listen: watch::Sender<Vec<Multiaddr>>,
) {
    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            event = events.recv() => {
                let Some(event) = event else { break };
                if let NetworkEvent::ListenAddr(addr) = event {
                    tracing::info!("listening on {addr}");
                    listen.send_modify(|l| l.push(addr));
                } else {
                    handle(&ctx, event).await;
                }
            }
        }
    }
}

async fn handle(ctx: &Ctx, event: NetworkEvent) {
    match event {
        NetworkEvent::PeerConnected(peer) => {
            tracing::info!("peer connected: {}", ctx.contacts.label_peer(&peer));
            Metrics::inc_gauge(&ctx.metrics.peers);
            ctx.emit(Event::PeerConnected {
                peer_id: peer.to_string(),
            });
        }
        NetworkEvent::PeerDisconnected(peer) => {
            tracing::info!("peer disconnected: {}", ctx.contacts.label_peer(&peer));
            Metrics::dec_gauge(&ctx.metrics.peers);
            ctx.emit(Event::PeerDisconnected {
                peer_id: peer.to_string(),
            });
        }
        NetworkEvent::ListenAddr(_) => {}
        NetworkEvent::Gossip {
            topic,
            source,
            propagation_source,
            message_id,
            data,
        } => {
            let verdict = if topic == ctx.consensus_topic() {
                consensus_gossip(ctx, &data).await
            } else if topic == ctx.tx_topic() {
                tx_gossip(ctx, &data).await
            } else if topic == ctx.addrs_topic() {
                super::addrs::on_gossip(ctx, source, &data).await
            } else {
                Err(format!("unknown topic {topic}"))
            };
            let validation = match verdict {
                Ok(v) => v,
                Err(reason) => {
                    tracing::warn!(
                        "rejected gossip from {}: {reason}",
                        ctx.contacts.label_peer(&source)
                    );
                    GossipValidation::Reject
                }
            };
            match validation {
                GossipValidation::Accept => Metrics::inc(&ctx.metrics.gossip_accepted),
                GossipValidation::Reject => Metrics::inc(&ctx.metrics.gossip_rejected),
                GossipValidation::Ignore => Metrics::inc(&ctx.metrics.gossip_ignored),
            }
            let _ = ctx
                .net
                .report_validation(message_id, propagation_source, validation)
                .await;
        }
        NetworkEvent::InboundRequest {
            id,
            protocol,
            peer,
            data,
        } => {
            if protocol == RequestProtocol::Sync {
                let response = sync::serve(ctx, &data);
                if let Err(e) = ctx.net.respond(id, response).await {
                    tracing::debug!("could not answer {protocol} request from {peer}: {e}");
                }
                return;
            }
            // Key agreement and messaging may take a while (BB84 steps, an
            // 8 MiB record): answered off the event path.
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let response = crate::node::peer_protocols::serve(&ctx, protocol, peer, data).await;
                if let Err(e) = ctx.net.respond(id, response).await {
                    tracing::debug!("could not answer {protocol} request from {peer}: {e}");
                }
            });
        }
    }
}

async fn consensus_gossip(ctx: &Ctx, data: &[u8]) -> Result<GossipValidation, String> {
    let msg =
        ConsensusMessage::decode(data).map_err(|e| format!("malformed consensus message: {e}"))?;
    let (chain_id, genesis, tip, is_validator) = {
        let v = ctx.view();
        (
            v.state.chain_id,
            v.state.genesis_hash,
            v.tip.height,
            v.state.validators.contains(&msg.signer()),
        )
    };
    if msg.chain_id() != chain_id {
        return Err(format!("consensus message for chain {}", msg.chain_id()));
    }
    msg.verify(&genesis)
        .map_err(|e| format!("consensus message refused: {e}"))?;
    if msg.height() <= tip {
        return Ok(GossipValidation::Ignore);
    }
    if !is_validator {
        // A validator of a set this node has not reached yet is not an offence.
        return if msg.height() > tip + 1 {
            Ok(GossipValidation::Ignore)
        } else {
            Err("signer is not a validator".into())
        };
    }
    match ctx.driver.try_send(DriverInput::Gossip(Box::new(msg))) {
        Ok(()) => Ok(GossipValidation::Accept),
        Err(_) => Ok(GossipValidation::Ignore),
    }
}

async fn tx_gossip(ctx: &Ctx, data: &[u8]) -> Result<GossipValidation, String> {
    let tx = SignedTransaction::decode(data).map_err(|e| format!("malformed transaction: {e}"))?;
    match ctx.pool.offer(tx).await {
        Ok(_) => Ok(GossipValidation::Accept),
        Err(OfferError::Stopped) => Ok(GossipValidation::Ignore),
        Err(OfferError::Pool(e)) if !e.blames_sender() => {
            // Honest peers send these too (a transaction that raced its block,
            // or met this pool's quotas): dropped without penalty, counted,
            // logged for debugging.
            Metrics::inc(&ctx.metrics.txs_ignored);
            tracing::debug!("gossiped transaction ignored: {e}");
            Ok(GossipValidation::Ignore)
        }
        Err(OfferError::Pool(e)) => {
            Metrics::inc(&ctx.metrics.txs_rejected);
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
