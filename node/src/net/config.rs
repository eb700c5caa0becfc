//! `NetworkConfig`: listen and bootstrap addresses, the initial member set, size limits, timers.

use std::collections::HashSet;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use super::{NetError, RequestProtocol};

const MIB: usize = 1024 * 1024;

/// Hard per-protocol maxima on one message body, in bytes. Anything larger is
/// refused before it is sent and rejected (stream reset, counted) when received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// One `/qward/sync/1` request or response (a batch of blocks).
    pub sync_bytes: usize,
    /// One `/qward/qkd/1` request or response (a block of qubits or sifting data).
    pub qkd_bytes: usize,
    /// One `/qward/msg/1` request or response (an encrypted record envelope).
    pub msg_bytes: usize,
    /// The data of one gossip message (a consensus vote, a proposal, a transaction).
    pub gossip_bytes: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            sync_bytes: 16 * MIB,
            qkd_bytes: 8 * MIB,
            msg_bytes: qward_core::envelope::wire::MAX_REQUEST_BYTES,
            gossip_bytes: 4 * MIB,
        }
    }
}

impl MessageLimits {
    /// The limit for one request or response body on `protocol`.
    pub const fn for_protocol(&self, protocol: RequestProtocol) -> usize {
        match protocol {
            RequestProtocol::Sync => self.sync_bytes,
            RequestProtocol::Qkd => self.qkd_bytes,
            RequestProtocol::Msg => self.msg_bytes,
        }
    }
}

/// Everything the network layer needs besides the node key.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/7400` (`tcp/0` picks a free port).
    pub listen_addrs: Vec<Multiaddr>,
    /// Addresses others reach this node at (a host name behind NAT or in a
    /// container network), announced to members and told by identify in
    /// place of guesses; empty: the listen addresses.
    pub external_addrs: Vec<Multiaddr>,
    /// Peers to keep connected to, redialled with bounded backoff while disconnected.
    /// Include `/p2p/<peer id>` when known.
    pub bootstrap: Vec<Multiaddr>,
    /// The members allowed to connect at start (from genesis or chain state);
    /// replaced later with [`super::NetworkClient::set_members`].
    pub members: HashSet<PeerId>,
    /// Message size limits per protocol and for gossip.
    pub limits: MessageLimits,
    /// How long an outbound request waits for its response (and an inbound one
    /// for the node's answer) before failing.
    pub request_timeout: Duration,
    /// Concurrent inbound plus outbound streams per connection and protocol.
    pub max_concurrent_streams: usize,
    /// Inbound requests awaiting the node's answer; beyond this, new ones are dropped.
    pub max_pending_inbound_requests: usize,
    /// Established inbound connections in total.
    pub max_established_incoming: u32,
    /// Inbound connections still in the handshake.
    pub max_pending_incoming: u32,
    /// Established connections per peer (2 allows a simultaneous dial both ways).
    pub max_established_per_peer: u32,
    /// How long a connection with no active stream stays open.
    pub idle_connection_timeout: Duration,
    /// How often round-trip times are measured.
    pub ping_interval: Duration,
    /// The gossipsub heartbeat (mesh maintenance and gossip emission).
    pub gossip_heartbeat: Duration,
    /// First delay before redialling a disconnected bootstrap peer; doubles on each failure.
    pub redial_initial: Duration,
    /// Ceiling of the bootstrap redial backoff.
    pub redial_max: Duration,
    /// Capacity of the event queue to the node. When it is full, new events are
    /// dropped (and counted) rather than stalling the swarm.
    pub event_queue_len: usize,
    /// Sent in identify, e.g. `qward/0.1.0`.
    pub agent_version: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen_addrs: Vec::new(),
            external_addrs: Vec::new(),
            bootstrap: Vec::new(),
            members: HashSet::new(),
            limits: MessageLimits::default(),
            request_timeout: Duration::from_secs(30),
            max_concurrent_streams: 32,
            max_pending_inbound_requests: 1024,
            max_established_incoming: 256,
            max_pending_incoming: 64,
            max_established_per_peer: 2,
            idle_connection_timeout: Duration::from_secs(120),
            ping_interval: Duration::from_secs(15),
            gossip_heartbeat: Duration::from_millis(700),
            redial_initial: Duration::from_secs(1),
            redial_max: Duration::from_secs(60),
            event_queue_len: 4096,
            agent_version: concat!("qward/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The largest body any protocol may carry: the frame length prefix is a u32,
/// and `qward_core::codec` refuses anything above 64 MiB anyway.
pub const MAX_ANY_MESSAGE_BYTES: usize = 64 * MIB;

impl NetworkConfig {
    /// Checks the values that would otherwise fail deep inside libp2p.
    pub fn validate(&self) -> Result<(), NetError> {
        let l = &self.limits;
        for (name, v) in [
            ("sync_bytes", l.sync_bytes),
            ("qkd_bytes", l.qkd_bytes),
            ("msg_bytes", l.msg_bytes),
            ("gossip_bytes", l.gossip_bytes),
        ] {
            if v == 0 || v > MAX_ANY_MESSAGE_BYTES {
                return Err(NetError::Config(format!(
                    "limits.{name} = {v}: must be between 1 and {MAX_ANY_MESSAGE_BYTES} bytes"
                )));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(NetError::Config("request_timeout must be positive".into()));
        }
        if self.gossip_heartbeat.is_zero() || self.ping_interval.is_zero() {
            return Err(NetError::Config(
                "gossip_heartbeat and ping_interval must be positive".into(),
            ));
        }
        if self.redial_initial.is_zero() || self.redial_max < self.redial_initial {
            return Err(NetError::Config(
                "redial_initial must be positive and at most redial_max".into(),
            ));
        }
        if self.event_queue_len == 0 || self.max_concurrent_streams == 0 {
            return Err(NetError::Config(
                "event_queue_len and max_concurrent_streams must be positive".into(),
            ));
        }
        if self.max_established_per_peer == 0 {
            return Err(NetError::Config(
                "max_established_per_peer must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_limits_match_protocols() {
        let c = NetworkConfig::default();
        c.validate().expect("default config is valid");
        assert_eq!(c.limits.for_protocol(RequestProtocol::Sync), 16 * MIB);
        assert_eq!(c.limits.for_protocol(RequestProtocol::Qkd), 8 * MIB);
        // A request carrying the largest record the sender accepts fits.
        assert_eq!(
            c.limits.for_protocol(RequestProtocol::Msg),
            qward_core::envelope::wire::MAX_REQUEST_BYTES
        );
        assert!(c.limits.for_protocol(RequestProtocol::Msg) > 12 * MIB);
    }

    #[test]
    fn rejects_zero_and_oversized_limits() {
        let mut c = NetworkConfig::default();
        c.limits.gossip_bytes = 0;
        assert!(matches!(c.validate(), Err(NetError::Config(_))));
        let mut c = NetworkConfig::default();
        c.limits.sync_bytes = MAX_ANY_MESSAGE_BYTES + 1;
        assert!(matches!(c.validate(), Err(NetError::Config(_))));
        let mut c = NetworkConfig::default();
        c.redial_max = Duration::from_millis(1);
        assert!(matches!(c.validate(), Err(NetError::Config(_))));
    }
}
