//! Prometheus metrics: counters and gauges kept as atomics, served as text on
//! `127.0.0.1:<metrics_port>/metrics` when the node is started with metrics on.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The node's metrics. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    pub height: AtomicU64,
    pub finalized_height: AtomicU64,
    pub blocks_finalized: AtomicU64,
    pub txs_finalized: AtomicU64,
    pub txs_submitted: AtomicU64,
    pub txs_rejected: AtomicU64,
    pub mempool_size: AtomicU64,
    pub peers: AtomicU64,
    /// The network's height as readiness believes it: the highest live
    /// claim of a peer that is not above this node's or is backed by blocks
    /// that imported (0 when none).
    pub network_height: AtomicU64,
    /// The live, credible height claims behind `network_height`.
    pub network_height_claims: AtomicU64,
    /// Height answers received from peers by sync.
    pub peer_heights_heard: AtomicU64,
    pub gossip_accepted: AtomicU64,
    pub gossip_rejected: AtomicU64,
    pub gossip_ignored: AtomicU64,
    pub txs_ignored: AtomicU64,
    pub blocks_synced: AtomicU64,
    pub sync_wakeups: AtomicU64,
    pub consensus_rounds: AtomicU64,
    pub key_sessions_completed: AtomicU64,
    pub key_sessions_aborted: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_refused: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    pub fn inc_gauge(gauge: &AtomicU64) {
        gauge.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec_gauge(gauge: &AtomicU64) {
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 23] = [
            (
                "qward_chain_height",
                "gauge",
                "Height of the newest stored block.",
                &self.height,
            ),
            (
                "qward_chain_finalized_height",
                "gauge",
                "Height of the newest final block.",
                &self.finalized_height,
            ),
            (
                "qward_blocks_finalized_total",
                "counter",
                "Blocks finalized by this node.",
                &self.blocks_finalized,
            ),
            (
                "qward_txs_finalized_total",
                "counter",
                "Transactions in finalized blocks.",
                &self.txs_finalized,
            ),
            (
                "qward_txs_submitted_total",
                "counter",
                "Transactions accepted into the mempool.",
                &self.txs_submitted,
            ),
            (
                "qward_txs_rejected_total",
                "counter",
                "Transactions refused.",
                &self.txs_rejected,
            ),
            (
                "qward_mempool_size",
                "gauge",
                "Transactions waiting in the mempool.",
                &self.mempool_size,
            ),
            ("qward_peers", "gauge", "Connected peers.", &self.peers),
            (
                "qward_network_height",
                "gauge",
                "Highest live, credible block height peers have reported.",
                &self.network_height,
            ),
            (
                "qward_network_height_claims",
                "gauge",
                "Live, credible height claims of peers.",
                &self.network_height_claims,
            ),
            (
                "qward_peer_heights_heard_total",
                "counter",
                "Height answers received from peers.",
                &self.peer_heights_heard,
            ),
            (
                "qward_gossip_accepted_total",
                "counter",
                "Gossip messages accepted.",
                &self.gossip_accepted,
            ),
            (
                "qward_gossip_rejected_total",
                "counter",
                "Gossip messages rejected as invalid.",
                &self.gossip_rejected,
            ),
            (
                "qward_gossip_ignored_total",
                "counter",
                "Gossip messages dropped without penalty (stale, duplicate).",
                &self.gossip_ignored,
            ),
            (
                "qward_txs_ignored_total",
                "counter",
                "Gossiped transactions dropped as pending duplicates, replays of used nonces, too far ahead, or with the mempool full.",
                &self.txs_ignored,
            ),
            (
                "qward_blocks_synced_total",
                "counter",
                "Blocks imported by block sync.",
                &self.blocks_synced,
            ),
            (
                "qward_sync_wakeups_total",
                "counter",
                "Times consensus showed the network past this node and woke block sync.",
                &self.sync_wakeups,
            ),
            (
                "qward_consensus_rounds_total",
                "counter",
                "Consensus rounds started.",
                &self.consensus_rounds,
            ),
            (
                "qward_key_sessions_completed_total",
                "counter",
                "Key agreements that produced a key.",
                &self.key_sessions_completed,
            ),
            (
                "qward_key_sessions_aborted_total",
                "counter",
                "Key agreements aborted.",
                &self.key_sessions_aborted,
            ),
            (
                "qward_messages_sent_total",
                "counter",
                "Records delivered to a peer.",
                &self.messages_sent,
            ),
            (
                "qward_messages_received_total",
                "counter",
                "Records received.",
                &self.messages_received,
            ),
            (
                "qward_messages_refused_total",
                "counter",
                "Records or envelopes refused.",
                &self.messages_refused,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Serves `/metrics` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break },
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let (status, body) = if request.starts_with("GET /metrics") {
                        ("200 OK", metrics.render())
                    } else {
                        ("404 Not Found", "try /metrics\n".to_string())
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_prometheus_text() {
        let m = Metrics::new();
        Metrics::set(&m.height, 42);
        Metrics::inc(&m.gossip_rejected);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        tokio::spawn(serve(listener, m.clone(), rx));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains("\nqward_chain_height 42\n"), "{body}");
        assert!(body.contains("\nqward_gossip_rejected_total 1\n"), "{body}");
        assert!(body.contains("# TYPE qward_peers gauge"));
        stop.send(true).unwrap();
    }
}
