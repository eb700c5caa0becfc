//! `NetError`: the one error type at the networking boundary, with messages a person can act on.

use libp2p::{Multiaddr, PeerId};

use super::RequestProtocol;

/// Why a networking operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("the node key is not a valid ed25519 secret seed (32 bytes expected)")]
    InvalidKey,
    #[error("account {0} is not a valid ed25519 public key, so it cannot be a network peer")]
    InvalidAccount(String),
    #[error("invalid network configuration: {0}")]
    Config(String),
    #[error("cannot build the libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason} (is the address valid and the port free?)")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("peer {0} is not a member of the network; register it on the chain first")]
    NotMember(PeerId),
    #[error("{protocol} request of {len} bytes exceeds the {limit}-byte limit")]
    RequestTooLarge {
        protocol: RequestProtocol,
        len: usize,
        limit: usize,
    },
    #[error("{protocol} response of {len} bytes exceeds the {limit}-byte limit")]
    ResponseTooLarge {
        protocol: RequestProtocol,
        len: usize,
        limit: usize,
    },
    #[error("{protocol} request to {peer} failed: {reason}")]
    RequestFailed {
        protocol: RequestProtocol,
        peer: PeerId,
        reason: String,
    },
    #[error(
        "the inbound request was already answered, or it expired (request timeout or closed connection)"
    )]
    UnknownRequest,
    #[error("gossip message of {len} bytes exceeds the {limit}-byte limit")]
    GossipTooLarge { len: usize, limit: usize },
    #[error("no connected peer is subscribed to topic '{0}'; the message was not sent")]
    NoGossipPeers(String),
    #[error(
        "an identical message was already published (gossip message ids are the blake3 of the data)"
    )]
    DuplicateGossip,
    #[error("cannot publish on topic '{topic}': {reason}")]
    Publish { topic: String, reason: String },
    #[error("cannot subscribe to topic '{topic}': {reason}")]
    Subscribe { topic: String, reason: String },
    #[error("the network task has stopped; restart the node")]
    Stopped,
}
