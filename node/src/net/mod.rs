//! The node's libp2p networking layer: one task owns the swarm, the rest of the node talks to it.
//!
//! [`Network::new`] builds the swarm (TCP + Noise + Yamux; identify, ping, gossipsub,
//! and three request-response protocols) from the node's ed25519 key and returns
//! the [`Network`] event loop, a cloneable [`NetworkClient`] and a receiver of
//! [`NetworkEvent`]s. Spawn [`Network::run`] on tokio; everything else goes
//! through the client (commands with a oneshot for the answer, after the libp2p
//! `file-sharing` example's EventLoop/Client).
//!
//! Payloads are opaque bytes: consensus, block sync, key agreement and messaging
//! encode their own messages (with `qward_core::codec`) and choose their topics.
//!
//! **Invariant:** only members (the set given by [`NetworkClient::set_members`],
//! from chain state) hold a connection; gossip authored or relayed by anyone else
//! is rejected. **Invariant:** nothing received from the network can panic the
//! node: every frame is size-limited and every failure is counted and logged.

mod behaviour;
mod bootstrap;
mod client;
mod codec;
mod commands;
mod config;
mod error;
mod event_loop;
mod identity;
mod metrics;
mod permission;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use client::Command;
pub use client::{
    GossipValidation, InboundRequestId, NetworkClient, NetworkEvent, PeerInfo, TopicPeers,
};
pub use config::{MessageLimits, NetworkConfig};
pub use error::NetError;
pub use event_loop::Network;
pub use identity::{
    account_from_peer_id, keypair_from_identity, keypair_from_seed, peer_id_from_account,
};
pub use metrics::NetworkMetrics;

pub use libp2p::gossipsub::MessageId;
pub use libp2p::{Multiaddr, PeerId};

/// The point-to-point request-response protocols. Each has its own size limit
/// (see [`MessageLimits`]) and its own libp2p protocol name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestProtocol {
    /// Block sync: `/qward/sync/1`.
    Sync,
    /// Key agreement (BB84 + X25519 + ML-KEM-768): `/qward/qkd/1`.
    Qkd,
    /// Encrypted health-record messaging: `/qward/msg/1`.
    Msg,
}

impl RequestProtocol {
    pub const ALL: [RequestProtocol; 3] = [
        RequestProtocol::Sync,
        RequestProtocol::Qkd,
        RequestProtocol::Msg,
    ];

    /// The libp2p protocol name negotiated on the stream.
    pub const fn name(self) -> &'static str {
        match self {
            RequestProtocol::Sync => "/qward/sync/1",
            RequestProtocol::Qkd => "/qward/qkd/1",
            RequestProtocol::Msg => "/qward/msg/1",
        }
    }
}

impl std::fmt::Display for RequestProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
