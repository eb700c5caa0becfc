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
                let addrs = announced(&ctx.config.external_addresses, &ctx.listen.borrow());
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

/// What a node announces: where others reach it, its external addresses
/// if it has any (a listen address inside a container or behind NAT is no
/// use to them), else where it listens; at most [`MAX_ADDRS`].
fn announced(external: &[String], listen: &[Multiaddr]) -> Vec<String> {
    if external.is_empty() {
        listen
            .iter()
            .take(MAX_ADDRS)
            .map(ToString::to_string)
            .collect()
    } else {
        external.iter().take(MAX_ADDRS).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use crate::node::testkit::{self, Seen};

    async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("the node asks the network in time")
            .expect("the fake network runs")
    }

    #[test]
    fn external_addresses_are_announced_in_place_of_listen_addresses() {
        let listen: Vec<Multiaddr> = vec!["/ip4/172.17.0.2/tcp/7400".parse().unwrap()];
        assert_eq!(announced(&[], &listen), vec!["/ip4/172.17.0.2/tcp/7400"]);
        let external = vec!["/dns4/st-marys.example/tcp/7400".to_string()];
        assert_eq!(announced(&external, &listen), external);
        let many: Vec<String> = (0..MAX_ADDRS + 3)
            .map(|i| format!("/dns4/h{i}.example/tcp/7400"))
            .collect();
        assert_eq!(announced(&many, &listen).len(), MAX_ADDRS);
    }

    #[tokio::test]
    async fn the_task_announces_where_the_node_listens() {
        let mut node = testkit::hospital(1, 0);
        let mut seen = node.capture_network();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("an address");
        node.listen.send_replace(vec![addr.clone()]);
        tokio::spawn(run(node.ctx.clone()));
        let Seen::Published(topic, data) = next(&mut seen).await else {
            panic!("an announcement is published");
        };
        assert_eq!(topic, node.ctx.addrs_topic());
        let a: AddressAnnouncement =
            qward_core::codec::decode(&data, MAX_ANNOUNCE_BYTES).expect("a valid announcement");
        assert_eq!(a.addrs, vec![addr.to_string()]);
        node.ctx.request_shutdown();
    }

    #[tokio::test]
    async fn announcements_are_bounded_and_only_others_reach_the_swarm() {
        let mut node = testkit::hospital(1, 0);
        let mut seen = node.capture_network();
        let other = PeerId::random();
        let announce = |addrs: Vec<String>| {
            qward_core::codec::encode_infallible(&AddressAnnouncement { addrs, time_ms: 0 })
        };
        let good = announce(vec!["/ip4/10.0.0.7/tcp/4001".into()]);
        assert_eq!(
            on_gossip(&node.ctx, other, &good).await,
            Ok(GossipValidation::Accept)
        );
        let Seen::Addresses(peer, addrs) = next(&mut seen).await else {
            panic!("the addresses reach the swarm");
        };
        assert_eq!((peer, addrs.len()), (other, 1));
        // This node's own announcement, relayed back: not an offence, not used.
        assert_eq!(
            on_gossip(&node.ctx, node.ctx.peer_id, &good).await,
            Ok(GossipValidation::Ignore)
        );
        let refused = [
            announce(Vec::new()),
            announce(vec!["/ip4/10.0.0.7/tcp/4001".into(); MAX_ADDRS + 1]),
            announce(vec!["not an address".into()]),
            vec![0xff; MAX_ANNOUNCE_BYTES + 1],
        ];
        for bad in refused {
            assert!(on_gossip(&node.ctx, other, &bad).await.is_err());
        }
        assert!(seen.try_recv().is_err(), "nothing more reached the swarm");
    }
}
