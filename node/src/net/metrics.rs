//! Network counters: plain atomics updated by the event loop, read as a `NetworkMetrics` snapshot.
//!
//! The node exports them (Prometheus text) without asking the swarm task: the
//! client holds the same `Arc` and reads it directly.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// The live counters, shared between the event loop and every client.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A snapshot of the network counters (monotonic since start, except
        /// `peers_connected`, which is a gauge).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct NetworkMetrics {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> NetworkMetrics {
                NetworkMetrics {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }

        impl NetworkMetrics {
            /// Each counter's name, its doc line and its value.
            pub fn rows(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), concat!($($doc,)*).trim(), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Gossip messages this node published.
    gossip_published,
    /// Gossip messages received and handed to the node for validation.
    gossip_received,
    /// Gossip messages the node reported as valid (forwarded to the mesh).
    gossip_accepted,
    /// Gossip messages rejected, by the node or by the network layer (the sender is penalised).
    gossip_rejected,
    /// Gossip messages the node chose to ignore (not forwarded, no penalty).
    gossip_ignored,
    /// Of the rejected: authored or relayed by a peer that is not a member.
    gossip_rejected_non_member,
    /// Requests this node sent.
    requests_out,
    /// Requests this node sent that failed (timeout, closed connection, refused, too large).
    requests_out_failed,
    /// Requests received and handed to the node.
    requests_in,
    /// Inbound request streams rejected: malformed or oversized frames, timeouts, queue full.
    requests_in_rejected,
    /// Responses this node sent.
    responses_sent,
    /// Payload bytes received (gossip data, request and response bodies).
    bytes_in,
    /// Payload bytes sent (gossip data, request and response bodies).
    bytes_out,
    /// Connections refused or closed because the peer is not a member or a limit was hit.
    connections_denied,
    /// Events dropped because the node's event queue was full.
    events_dropped,
    /// Peers currently connected (gauge).
    peers_connected,
}

/// Renders the network's counters at every scrape, under `qward_net_`.
#[derive(Debug)]
pub(crate) struct CountersCollector(pub(crate) std::sync::Arc<Counters>);

impl prometheus_client::collector::Collector for CountersCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        for (name, help, value) in self.0.snapshot().rows() {
            if name == "peers_connected" {
                let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
                let m = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(m)?;
            } else {
                let counter = ConstCounter::new(value);
                let m = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
                counter.encode(m)?;
            }
        }
        Ok(())
    }
}

impl Counters {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn set(counter: &AtomicU64, n: usize) {
        counter.store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_updates() {
        let c = Counters::default();
        Counters::inc(&c.gossip_accepted);
        Counters::inc(&c.gossip_accepted);
        Counters::add(&c.bytes_in, 300);
        Counters::set(&c.peers_connected, 3);
        Counters::set(&c.peers_connected, 2);
        let s = c.snapshot();
        assert_eq!(s.gossip_accepted, 2);
        assert_eq!(s.bytes_in, 300);
        assert_eq!(s.peers_connected, 2);
        assert_eq!(s.gossip_rejected, 0);
    }
}
