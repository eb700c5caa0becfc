//! `MemberSet`: who may connect. Applies chain membership to the allow-list and gossipsub.
//!
//! The rule: a peer holds a connection only while its peer id is in the member
//! set. `libp2p::allow_block_list` (in `AllowedPeers` mode) refuses every
//! connection, inbound or outbound, from a peer outside the set, and closes the
//! connections of a peer that leaves it. Gossipsub additionally blacklists
//! removed members so nothing they authored is accepted on a relayed path, and
//! the event loop rejects gossip whose author or relayer is not a member.

use std::collections::HashSet;

use libp2p::PeerId;

use super::behaviour::QwardBehaviour;

/// What changed when the member set was replaced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MembershipChange {
    pub added: Vec<PeerId>,
    pub removed: Vec<PeerId>,
}

/// The current members, as last set from chain state.
#[derive(Debug, Default)]
pub struct MemberSet {
    members: HashSet<PeerId>,
}

impl MemberSet {
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.members.contains(peer)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Replaces the set and reports the difference (sorted, for determinism).
    pub fn replace(&mut self, next: HashSet<PeerId>) -> MembershipChange {
        let mut added: Vec<PeerId> = next.difference(&self.members).copied().collect();
        let mut removed: Vec<PeerId> = self.members.difference(&next).copied().collect();
        added.sort();
        removed.sort();
        self.members = next;
        MembershipChange { added, removed }
    }

    /// Replaces the set and applies it to the swarm: new members are allowed
    /// (and may connect at once), removed ones are disconnected, refused from
    /// now on and blacklisted in gossipsub.
    pub fn apply(
        &mut self,
        next: HashSet<PeerId>,
        behaviour: &mut QwardBehaviour,
    ) -> MembershipChange {
        let change = self.replace(next);
        for peer in &change.added {
            behaviour.allow.allow_peer(*peer);
            behaviour.gossipsub.remove_blacklisted_peer(peer);
        }
        for peer in &change.removed {
            // Closes every connection to the peer and refuses new ones.
            behaviour.allow.disallow_peer(*peer);
            behaviour.gossipsub.blacklist_peer(peer);
        }
        change
    }
}

impl From<HashSet<PeerId>> for MemberSet {
    fn from(members: HashSet<PeerId>) -> Self {
        MemberSet { members }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u8) -> PeerId {
        super::super::keypair_from_seed(&[i; 32])
            .expect("seed")
            .public()
            .to_peer_id()
    }

    #[test]
    fn replace_reports_added_and_removed() {
        let mut set = MemberSet::default();
        let first = set.replace([peer(1), peer(2)].into_iter().collect());
        let mut expected = vec![peer(1), peer(2)];
        expected.sort();
        assert_eq!(first.added, expected);
        assert!(first.removed.is_empty());

        let second = set.replace([peer(2), peer(3)].into_iter().collect());
        assert_eq!(second.added, vec![peer(3)]);
        assert_eq!(second.removed, vec![peer(1)]);
        assert!(set.contains(&peer(2)) && set.contains(&peer(3)) && !set.contains(&peer(1)));
        assert_eq!(set.len(), 2);

        assert_eq!(
            set.replace([peer(2), peer(3)].into_iter().collect()),
            MembershipChange::default()
        );
    }
}
