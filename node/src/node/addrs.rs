//! Where members listen: each node announces its listen addresses on the
//! gossip topic `qward/<chain>/addrs` (signed by its key, as all gossip is),
//! and every node hands the addresses it hears to its swarm, so that a
//! doctor can reach a patient it was never configured to dial. Hospitals,
//! always online, carry the announcements between members.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::context::Ctx;
use crate::net::{GossipValidation, Multiaddr, PeerId};

/// How often a node announces its addresses.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(15);
/// Addresses per announcement.
const MAX_ADDRS: usize = 8;
/// The largest announcement accepted.
const MAX_ANNOUNCE_BYTES: usize = 4096;

/// One node's announcement.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddressAnnouncement {
    pub addrs: Vec<String>,
    pub time_ms: u64,
}

/// Validates an announcement from `source` and hands its addresses to the swarm.
pub async fn on_gossip(ctx: &Ctx, source: PeerId, data: &[u8]) -> Result<GossipValidation, String> {
    let a: AddressAnnouncement = qward_core::codec::decode(data, MAX_ANNOUNCE_BYTES)
        .map_err(|e| format!("malformed address announcement: {e}"))?;
    if a.addrs.is_empty() || a.addrs.len() > MAX_ADDRS {
        return Err(format!(
            "{} addresses announced (1 to {MAX_ADDRS})",
            a.addrs.len()
        ));
    }
    let addrs = a
        .addrs
        .iter()
        .map(|s| {
            s.parse::<Multiaddr>()
                .map_err(|e| format!("bad address {s:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if source == ctx.peer_id {
        return Ok(GossipValidation::Ignore);
    }
    let _ = ctx.net.add_peer_addresses(source, addrs).await;
    Ok(GossipValidation::Accept)
}

/// Announces this node's addresses now and then, until shutdown.
pub async fn run(ctx: Ctx) {
    let mut shutdown = ctx.shutdown.subscribe();
    let mut sent = 0u32;
    loop {
        // Often at first, while the gossip mesh forms, then every ANNOUNCE_EVERY.
        let pause = if sent < 8 {
            Duration::from_secs(2)
        } else {
            ANNOUNCE_EVERY
        };
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            _ = tokio::time::sleep(pause) => {
                let addrs: Vec<String> = ctx
                    .listen
                    .read()
                    .map(|l| l.iter().take(MAX_ADDRS).map(ToString::to_string).collect())
                    .unwrap_or_default();
                if addrs.is_empty() {
                    continue;
                }
                let a = AddressAnnouncement { addrs, time_ms: super::clock::now_ms() };
                let topic = ctx.addrs_topic();
                match ctx.net.publish(&topic, qward_core::codec::encode_infallible(&a)).await {
                    Ok(_) => sent += 1,
                    Err(e) => tracing::debug!("address announcement not published: {e}"),
                }
            }
        }
    }
}
