//! Readiness, as `GET /ready` reports it: the node has heard how far the
//! network is, is not far behind it, and has a peer (unless it is the only
//! member). How far the network is comes from peers' claims, which are not
//! proofs: a claim above this node's height counts only once that peer has
//! delivered blocks that imported, and every claim expires.

use std::time::{Duration, Instant};

use super::context::NodeHandles;

/// Blocks a node may be behind the highest height a peer reported and still
/// be ready (one block is in flight at any moment).
pub const MAX_BLOCKS_BEHIND: u64 = 2;

/// How long a peer's height claim counts after it was heard.
pub const CLAIM_TTL: Duration = Duration::from_secs(30);

/// What one peer last said its height was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeightClaim {
    pub height: u64,
    pub heard_at: Instant,
    /// Blocks from this peer imported since it made this claim.
    pub delivered: bool,
}

impl HeightClaim {
    pub fn new(height: u64, heard_at: Instant) -> Self {
        HeightClaim {
            height,
            heard_at,
            delivered: false,
        }
    }

    /// Heard within [`CLAIM_TTL`] of `now`.
    pub fn is_live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.heard_at) < CLAIM_TTL
    }

    /// Believable for a node at `own_height`: not above it, or backed by
    /// blocks that imported. A peer claiming `u64::MAX` proves nothing until
    /// it hands over blocks this node accepts.
    pub fn is_credible(&self, own_height: u64) -> bool {
        self.height <= own_height || self.delivered
    }
}

/// The network's height as this node can believe it: the highest of the
/// live, credible claims, with how many there are (`None` when none).
pub fn network_height<'a>(
    claims: impl IntoIterator<Item = &'a HeightClaim>,
    own_height: u64,
    now: Instant,
) -> Option<(u64, usize)> {
    claims
        .into_iter()
        .filter(|c| c.is_live(now) && c.is_credible(own_height))
        .fold(None, |acc, c| match acc {
            None => Some((c.height, 1)),
            Some((h, n)) => Some((h.max(c.height), n + 1)),
        })
}

/// What readiness is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyInputs {
    pub height: u64,
    /// The network's height as [`network_height`] believes it, and whether
    /// any live, credible claim was heard.
    pub network_height: u64,
    pub heard_from_peers: bool,
    pub peers: u64,
    /// Active members other than this node.
    pub other_members: usize,
}

/// Ready: the only member, or connected, told the network's height by a
/// peer, and within [`MAX_BLOCKS_BEHIND`] of it.
pub fn decide(i: ReadyInputs) -> bool {
    if i.other_members == 0 {
        return true;
    }
    i.peers >= 1
        && i.heard_from_peers
        && i.network_height <= i.height.saturating_add(MAX_BLOCKS_BEHIND)
}

/// The running node's readiness now.
pub fn is_ready(ctx: &NodeHandles) -> bool {
    let (height, other_members) = {
        let v = ctx.view();
        let others = v
            .state
            .members
            .iter()
            .filter(|(a, m)| m.active && **a != ctx.account)
            .count();
        (v.tip.height, others)
    };
    let m = &ctx.metrics;
    decide(ReadyInputs {
        height,
        network_height: m.network_height.get(),
        heard_from_peers: m.network_height_claims.get() > 0,
        peers: m.peers.get(),
        other_members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_claiming_the_top_height_does_not_hold_readiness_forever() {
        let t0 = Instant::now();
        let honest = HeightClaim::new(10, t0);
        let liar = HeightClaim::new(u64::MAX, t0);
        // Only the honest peer's claim is believed: the liar never delivered.
        let (height, n) = network_height([&honest, &liar], 10, t0).expect("a claim");
        assert_eq!((height, n), (10, 1));
        assert!(decide(ReadyInputs {
            network_height: height,
            ..SYNCED
        }));
        // Alone, the liar is no claim at all: not ready, but not forever
        // behind either; an honest claim at or below this height makes it ready.
        assert_eq!(network_height([&liar], 10, t0), None);
        let behind = HeightClaim::new(9, t0);
        assert_eq!(network_height([&liar, &behind], 10, t0), Some((9, 1)));
    }

    #[test]
    fn a_claim_above_this_node_counts_once_its_peer_delivered() {
        let t0 = Instant::now();
        let mut ahead = HeightClaim::new(500, t0);
        assert_eq!(network_height([&ahead], 10, t0), None);
        ahead.delivered = true;
        assert_eq!(network_height([&ahead], 10, t0), Some((500, 1)));
        // Believed, it keeps a node 490 blocks behind from looking ready.
        assert!(!decide(ReadyInputs {
            height: 10,
            network_height: 500,
            ..SYNCED
        }));
    }

    #[test]
    fn claims_expire() {
        let t0 = Instant::now();
        let mut ahead = HeightClaim::new(500, t0);
        ahead.delivered = true;
        let later = t0 + CLAIM_TTL - Duration::from_millis(1);
        assert_eq!(network_height([&ahead], 10, later), Some((500, 1)));
        assert_eq!(network_height([&ahead], 10, t0 + CLAIM_TTL), None);
        let fresh = HeightClaim::new(12, t0 + CLAIM_TTL);
        assert_eq!(
            network_height([&ahead, &fresh], 12, t0 + CLAIM_TTL),
            Some((12, 1))
        );
    }

    const SYNCED: ReadyInputs = ReadyInputs {
        height: 10,
        network_height: 11,
        heard_from_peers: true,
        peers: 2,
        other_members: 4,
    };

    #[test]
    fn synced_and_connected_is_ready() {
        assert!(decide(SYNCED));
        assert!(decide(ReadyInputs {
            network_height: 12,
            ..SYNCED
        }));
    }

    #[test]
    fn behind_alone_or_unheard_is_not_ready() {
        assert!(!decide(ReadyInputs {
            network_height: 13,
            ..SYNCED
        }));
        assert!(!decide(ReadyInputs { peers: 0, ..SYNCED }));
        assert!(!decide(ReadyInputs {
            heard_from_peers: false,
            network_height: 0,
            ..SYNCED
        }));
    }

    #[test]
    fn the_only_member_is_ready_without_peers() {
        assert!(decide(ReadyInputs {
            peers: 0,
            heard_from_peers: false,
            network_height: 0,
            other_members: 0,
            ..SYNCED
        }));
    }
}
