//! Readiness, as `GET /ready` reports it: the node has heard how far the
//! network is, is not far behind it, and has a peer (unless it is the only
//! member).

use std::sync::atomic::Ordering;

use super::context::NodeContext;

/// Blocks a node may be behind the highest height a peer reported and still
/// be ready (one block is in flight at any moment).
pub const MAX_BLOCKS_BEHIND: u64 = 2;

/// What readiness is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyInputs {
    pub height: u64,
    /// The highest height a peer reported, and whether any peer has.
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
pub fn is_ready(ctx: &NodeContext) -> bool {
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
        network_height: m.network_height.load(Ordering::Relaxed),
        heard_from_peers: m.peer_heights_heard.load(Ordering::Relaxed) > 0,
        peers: m.peers.load(Ordering::Relaxed),
        other_members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
