//! `QwardBehaviour`: the composed libp2p behaviour (gating, limits, identify, ping, gossipsub, request-response).
//!
//! Order matters for gating: the allow-list and the connection limits come
//! first, so a refused connection never reaches the protocol behaviours.

use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, allow_block_list, connection_limits, identify, ping};

use super::codec::FrameCodec;
use super::metrics::Counters;
use super::{NetError, NetworkConfig, RequestProtocol};

/// The identify protocol version: peers of other networks are told apart by it.
pub const IDENTIFY_PROTOCOL: &str = "/qward/id/1";

/// Bytes of gossipsub framing allowed on top of the message data (signature,
/// public key, topic, sequence number, protobuf tags).
const GOSSIP_ENVELOPE_BYTES: usize = 4096;

/// Everything the swarm runs, composed.
#[derive(NetworkBehaviour)]
pub struct QwardBehaviour {
    pub allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<FrameCodec>,
    pub qkd: request_response::Behaviour<FrameCodec>,
    pub msg: request_response::Behaviour<FrameCodec>,
}

impl std::fmt::Debug for QwardBehaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QwardBehaviour").finish_non_exhaustive()
    }
}

impl QwardBehaviour {
    pub fn new(
        keypair: &Keypair,
        config: &NetworkConfig,
        counters: &Arc<Counters>,
        registry: Option<&mut prometheus_client::registry::Registry>,
    ) -> Result<Self, NetError> {
        let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
        for peer in &config.members {
            allow.allow_peer(*peer);
        }

        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established_incoming(Some(config.max_established_incoming))
                .with_max_pending_incoming(Some(config.max_pending_incoming))
                .with_max_established_per_peer(Some(config.max_established_per_peer)),
        );

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), keypair.public())
                .with_agent_version(config.agent_version.clone()),
        );

        let ping = ping::Behaviour::new(ping::Config::new().with_interval(config.ping_interval));

        let mut gossipsub = gossip(keypair, config)?;
        if let Some(registry) = registry {
            // Mesh sizes, scores and message counts per topic (a handful of
            // topics per chain; the default caps them).
            gossipsub = gossipsub.with_metrics(
                registry.sub_registry_with_prefix("libp2p_gossipsub"),
                gossipsub::MetricsConfig::default(),
            );
        }

        let rr = |protocol: RequestProtocol| {
            request_response::Behaviour::with_codec(
                FrameCodec::new(config.limits.for_protocol(protocol), counters.clone()),
                [(StreamProtocol::new(protocol.name()), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(config.request_timeout)
                    .with_max_concurrent_streams(config.max_concurrent_streams),
            )
        };

        Ok(QwardBehaviour {
            allow,
            limits,
            identify,
            ping,
            gossipsub,
            sync: rr(RequestProtocol::Sync),
            qkd: rr(RequestProtocol::Qkd),
            msg: rr(RequestProtocol::Msg),
        })
    }

    /// The request-response behaviour of `protocol`.
    pub fn request_response(
        &mut self,
        protocol: RequestProtocol,
    ) -> &mut request_response::Behaviour<FrameCodec> {
        match protocol {
            RequestProtocol::Sync => &mut self.sync,
            RequestProtocol::Qkd => &mut self.qkd,
            RequestProtocol::Msg => &mut self.msg,
        }
    }
}

/// The gossip message id: blake3 of the data, so the same payload is delivered once.
pub fn gossip_message_id(data: &[u8]) -> MessageId {
    MessageId::new(blake3::hash(data).as_bytes())
}

fn gossip(keypair: &Keypair, config: &NetworkConfig) -> Result<gossipsub::Behaviour, NetError> {
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| gossip_message_id(&m.data))
        .max_transmit_size(config.limits.gossip_bytes + GOSSIP_ENVELOPE_BYTES)
        .heartbeat_interval(config.gossip_heartbeat)
        // Form the mesh one heartbeat after start, not after the default 5 s.
        .heartbeat_initial_delay(config.gossip_heartbeat)
        .build()
        .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
    let mut behaviour =
        gossipsub::Behaviour::new(MessageAuthenticity::Signed(keypair.clone()), gossip_config)
            .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
    behaviour
        .with_peer_score(
            peer_score_params(),
            gossipsub::PeerScoreThresholds::default(),
        )
        .map_err(|e| NetError::Config(format!("gossipsub peer score: {e}")))?;
    Ok(behaviour)
}

/// Peer scoring for a small permissioned network: no IP-colocation penalty (a
/// devnet runs every node on 127.0.0.1), the default behaviour penalty, and
/// per-topic parameters from [`topic_score_params`] set on subscription.
pub fn peer_score_params() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    }
}

/// Per-topic scoring. The penalty that matters is P4: each message the node
/// rejects costs its deliverer `-10 x count^2`, decaying over about a minute,
/// so three rejected messages push a peer below the graylist threshold (-80).
/// Mesh-delivery-rate penalties (P3, P3b) are off: consensus and transaction
/// topics are quiet for long stretches, and silence is not misbehaviour.
pub fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(60)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_parameters_are_accepted_by_gossipsub() {
        peer_score_params().validate().expect("peer score params");
        topic_score_params().validate().expect("topic score params");
        let keypair = super::super::keypair_from_seed(&[9; 32]).expect("seed");
        QwardBehaviour::new(&keypair, &NetworkConfig::default(), &Arc::default(), None)
            .expect("behaviour builds");
    }

    #[test]
    fn message_id_is_blake3_of_data() {
        assert_eq!(
            gossip_message_id(b"vote").0,
            blake3::hash(b"vote").as_bytes().to_vec()
        );
        assert_ne!(gossip_message_id(b"a"), gossip_message_id(b"b"));
    }
}
