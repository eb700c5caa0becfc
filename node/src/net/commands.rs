//! The event loop's side of `NetworkClient`: executing each `Command` against the swarm.

use std::time::Instant;

use libp2p::gossipsub::{IdentTopic, MessageAcceptance, PublishError};

use super::NetError;
use super::behaviour::topic_score_params;
use super::client::{Command, GossipValidation, PeerInfo, TopicPeers};
use super::event_loop::Network;
use super::metrics::Counters;

impl Network {
    pub(crate) fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenOn(addr, reply) => {
                let result =
                    self.swarm
                        .listen_on(addr.clone())
                        .map(|_| ())
                        .map_err(|e| NetError::Listen {
                            addr,
                            reason: e.to_string(),
                        });
                let _ = reply.send(result);
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial(addr, reply) => {
                let result = self.dial_addr(addr.clone()).map_err(|e| NetError::Dial {
                    addr,
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::Subscribe(topic, reply) => {
                let ident = IdentTopic::new(topic.clone());
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                let result = gossipsub
                    .subscribe(&ident)
                    .map_err(|e| NetError::Subscribe {
                        topic: topic.clone(),
                        reason: e.to_string(),
                    });
                let scored = match result {
                    Ok(_) => gossipsub.set_topic_params(ident, topic_score_params()),
                    Err(_) => Ok(()),
                };
                if let Err(e) = scored {
                    tracing::warn!(%topic, error = e, "cannot set topic score parameters");
                }
                let _ = reply.send(result);
            }
            Command::Unsubscribe(topic, reply) => {
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                let _ = reply.send(gossipsub.unsubscribe(&IdentTopic::new(topic)));
            }
            Command::Publish(topic, data, reply) => {
                let _ = reply.send(self.publish(topic, data));
            }
            Command::ReportValidation(message_id, source, verdict, reply) => {
                let acceptance = match verdict {
                    GossipValidation::Accept => MessageAcceptance::Accept,
                    GossipValidation::Reject => MessageAcceptance::Reject,
                    GossipValidation::Ignore => MessageAcceptance::Ignore,
                };
                let pending = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, acceptance);
                if pending {
                    let counter = match verdict {
                        GossipValidation::Accept => &self.counters.gossip_accepted,
                        GossipValidation::Reject => &self.counters.gossip_rejected,
                        GossipValidation::Ignore => &self.counters.gossip_ignored,
                    };
                    Counters::inc(counter);
                }
                let _ = reply.send(pending);
            }
            Command::Request(protocol, peer, data, reply) => {
                if !self.members.contains(&peer) {
                    Counters::inc(&self.counters.requests_out_failed);
                    let _ = reply.send(Err(NetError::NotMember(peer)));
                    return;
                }
                let limit = self.config.limits.for_protocol(protocol);
                if data.len() > limit {
                    Counters::inc(&self.counters.requests_out_failed);
                    let _ = reply.send(Err(NetError::RequestTooLarge {
                        protocol,
                        len: data.len(),
                        limit,
                    }));
                    return;
                }
                Counters::inc(&self.counters.requests_out);
                Counters::add(&self.counters.bytes_out, data.len());
                let id = self
                    .swarm
                    .behaviour_mut()
                    .request_response(protocol)
                    .send_request(&peer, data);
                self.pending_out.insert((protocol, id), reply);
            }
            Command::Respond(id, data, reply) => {
                let Some(channel) = self.pending_in.remove(&id) else {
                    let _ = reply.send(Err(NetError::UnknownRequest));
                    return;
                };
                let limit = self.config.limits.for_protocol(id.protocol);
                if data.len() > limit {
                    // Keep the request open: the node may still answer within the limit.
                    self.pending_in.insert(id, channel);
                    let _ = reply.send(Err(NetError::ResponseTooLarge {
                        protocol: id.protocol,
                        len: data.len(),
                        limit,
                    }));
                    return;
                }
                let len = data.len();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .request_response(id.protocol)
                    .send_response(channel, data)
                    .map_err(|_| NetError::UnknownRequest);
                if result.is_ok() {
                    Counters::inc(&self.counters.responses_sent);
                    Counters::add(&self.counters.bytes_out, len);
                }
                let _ = reply.send(result);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_infos());
            }
            Command::TopicPeers(topic, reply) => {
                let hash = IdentTopic::new(topic).hash();
                let gossipsub = &self.swarm.behaviour().gossipsub;
                let mut subscribed: Vec<_> = gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(peer, _)| *peer)
                    .collect();
                let mut mesh: Vec<_> = gossipsub.mesh_peers(&hash).copied().collect();
                subscribed.sort();
                mesh.sort();
                let _ = reply.send(TopicPeers { subscribed, mesh });
            }
            Command::SetMembers(members, reply) => {
                let change = self.members.apply(members, self.swarm.behaviour_mut());
                let now = Instant::now();
                for peer in &change.added {
                    self.bootstrap.reset(peer, now);
                }
                if change.added.is_empty() && change.removed.is_empty() {
                    tracing::debug!(members = self.members.len(), "member set unchanged");
                } else {
                    tracing::info!(
                        added = change.added.len(),
                        removed = change.removed.len(),
                        members = self.members.len(),
                        "member set updated"
                    );
                }
                let _ = reply.send(());
            }
            Command::AddPeerAddresses(peer, addrs, reply) => {
                if self.members.contains(&peer) && peer != *self.swarm.local_peer_id() {
                    for addr in addrs
                        .into_iter()
                        .take(super::event_loop::MAX_ADDRS_PER_PEER)
                    {
                        self.swarm.add_peer_address(peer, addr);
                    }
                }
                let _ = reply.send(());
            }
            // Handled by the loop itself, which stops.
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn publish(
        &mut self,
        topic: String,
        data: Vec<u8>,
    ) -> Result<libp2p::gossipsub::MessageId, NetError> {
        let limit = self.config.limits.gossip_bytes;
        let len = data.len();
        if len > limit {
            return Err(NetError::GossipTooLarge { len, limit });
        }
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        match gossipsub.publish(IdentTopic::new(topic.clone()), data) {
            Ok(id) => {
                Counters::inc(&self.counters.gossip_published);
                Counters::add(&self.counters.bytes_out, len);
                Ok(id)
            }
            Err(PublishError::NoPeersSubscribedToTopic) => Err(NetError::NoGossipPeers(topic)),
            Err(PublishError::Duplicate) => Err(NetError::DuplicateGossip),
            Err(PublishError::MessageTooLarge) => Err(NetError::GossipTooLarge { len, limit }),
            Err(e) => Err(NetError::Publish {
                topic,
                reason: e.to_string(),
            }),
        }
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(peer, state)| {
                let mut addrs = state.connected_addrs.clone();
                for a in &state.announced_addrs {
                    if !addrs.contains(a) {
                        addrs.push(a.clone());
                    }
                }
                PeerInfo {
                    peer_id: *peer,
                    addrs,
                    rtt_ms: state
                        .rtt
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    gossip_score: gossipsub.peer_score(peer),
                }
            })
            .collect();
        out.sort_by_key(|p| p.peer_id);
        out
    }
}
