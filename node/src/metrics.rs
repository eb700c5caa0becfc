//! Prometheus metrics: the node's counters, gauges and histograms in one
//! `prometheus-client` registry (with the network's counters and libp2p's
//! own metrics), served in the OpenMetrics text format on `/metrics`, with
//! `/health` and `/ready` beside it, when the node runs with `--metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Whether the node is ready (the control API's rule, handed in by the node).
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// A gauge of a count that is never negative.
pub type CountGauge = Gauge<u64, AtomicU64>;

/// The content type of the OpenMetrics text format, which Prometheus asks for.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapers served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 16;
/// How long one connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's metrics. Cheap to update from any task: every metric is an
/// atomic shared with the registry that renders it.
#[derive(Debug)]
pub struct Metrics {
    pub height: CountGauge,
    pub finalized_height: CountGauge,
    pub blocks_finalized: Counter,
    pub txs_finalized: Counter,
    pub txs_submitted: Counter,
    pub txs_rejected: Counter,
    pub mempool_size: CountGauge,
    pub peers: CountGauge,
    /// The network's height as readiness believes it: the highest live
    /// claim of a peer that is not above this node's or is backed by blocks
    /// that imported (0 when none).
    pub network_height: CountGauge,
    /// The live, credible height claims behind `network_height`.
    pub network_height_claims: CountGauge,
    /// Height answers received from peers by sync.
    pub peer_heights_heard: Counter,
    pub gossip_accepted: Counter,
    pub gossip_rejected: Counter,
    pub gossip_ignored: Counter,
    pub txs_ignored: Counter,
    pub blocks_synced: Counter,
    pub sync_wakeups: Counter,
    pub consensus_rounds: Counter,
    pub key_sessions_completed: Counter,
    pub key_sessions_aborted: Counter,
    pub messages_sent: Counter,
    pub messages_received: Counter,
    pub messages_refused: Counter,
    /// Seconds from a transaction's arrival in this node's mempool to the
    /// final block that used its nonce.
    pub finality_seconds: Histogram,
    /// Seconds a key agreement took, from its start to a confirmed key.
    pub key_agreement_seconds: Histogram,
    /// The quantum bit error rate each key agreement measured (a fraction).
    pub key_agreement_qber: Histogram,
    /// Seconds from queueing a record to the recipient's signed receipt.
    pub delivery_seconds: Histogram,
    /// The registry that renders all of the above, and what the network and
    /// libp2p register beside them.
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    /// Every metric at zero, registered under `qward_`.
    fn default() -> Self {
        let latency =
            || Histogram::new([0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0]);
        let mut m = Metrics {
            height: CountGauge::default(),
            finalized_height: CountGauge::default(),
            blocks_finalized: Counter::default(),
            txs_finalized: Counter::default(),
            txs_submitted: Counter::default(),
            txs_rejected: Counter::default(),
            mempool_size: CountGauge::default(),
            peers: CountGauge::default(),
            network_height: CountGauge::default(),
            network_height_claims: CountGauge::default(),
            peer_heights_heard: Counter::default(),
            gossip_accepted: Counter::default(),
            gossip_rejected: Counter::default(),
            gossip_ignored: Counter::default(),
            txs_ignored: Counter::default(),
            blocks_synced: Counter::default(),
            sync_wakeups: Counter::default(),
            consensus_rounds: Counter::default(),
            key_sessions_completed: Counter::default(),
            key_sessions_aborted: Counter::default(),
            messages_sent: Counter::default(),
            messages_received: Counter::default(),
            messages_refused: Counter::default(),
            finality_seconds: latency(),
            key_agreement_seconds: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            key_agreement_qber: Histogram::new([
                0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.11, 0.15, 0.2, 0.25, 0.5,
            ]),
            delivery_seconds: latency(),
            registry: Mutex::new(Registry::default()),
        };
        let mut root = Registry::default();
        m.register(root.sub_registry_with_prefix("qward"));
        m.registry = Mutex::new(root);
        m
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn register(&self, r: &mut Registry) {
        let gauges: [(&str, &str, &CountGauge); 6] = [
            (
                "chain_height",
                "Height of the newest stored block.",
                &self.height,
            ),
            (
                "chain_finalized_height",
                "Height of the newest final block.",
                &self.finalized_height,
            ),
            (
                "mempool_size",
                "Transactions waiting in the mempool.",
                &self.mempool_size,
            ),
            ("peers", "Connected peers.", &self.peers),
            (
                "network_height",
                "Highest live, credible block height peers have reported.",
                &self.network_height,
            ),
            (
                "network_height_claims",
                "Live, credible height claims of peers.",
                &self.network_height_claims,
            ),
        ];
        for (name, help, gauge) in gauges {
            r.register(name, help, gauge.clone());
        }
        let counters: [(&str, &str, &Counter); 17] = [
            (
                "blocks_finalized",
                "Blocks finalized by this node.",
                &self.blocks_finalized,
            ),
            (
                "txs_finalized",
                "Transactions in finalized blocks.",
                &self.txs_finalized,
            ),
            (
                "txs_submitted",
                "Transactions accepted into the mempool.",
                &self.txs_submitted,
            ),
            ("txs_rejected", "Transactions refused.", &self.txs_rejected),
            (
                "peer_heights_heard",
                "Height answers received from peers.",
                &self.peer_heights_heard,
            ),
            (
                "gossip_accepted",
                "Gossip messages accepted.",
                &self.gossip_accepted,
            ),
            (
                "gossip_rejected",
                "Gossip messages rejected as invalid.",
                &self.gossip_rejected,
            ),
            (
                "gossip_ignored",
                "Gossip messages dropped without penalty (stale, duplicate).",
                &self.gossip_ignored,
            ),
            (
                "txs_ignored",
                "Gossiped transactions dropped as pending duplicates, replays of used nonces, too far ahead, or with the mempool full.",
                &self.txs_ignored,
            ),
            (
                "blocks_synced",
                "Blocks imported by block sync.",
                &self.blocks_synced,
            ),
            (
                "sync_wakeups",
                "Times consensus showed the network past this node and woke block sync.",
                &self.sync_wakeups,
            ),
            (
                "consensus_rounds",
                "Consensus rounds started.",
                &self.consensus_rounds,
            ),
            (
                "key_sessions_completed",
                "Key agreements that produced a key.",
                &self.key_sessions_completed,
            ),
            (
                "key_sessions_aborted",
                "Key agreements aborted.",
                &self.key_sessions_aborted,
            ),
            (
                "messages_sent",
                "Records delivered to a peer.",
                &self.messages_sent,
            ),
            (
                "messages_received",
                "Records received.",
                &self.messages_received,
            ),
            (
                "messages_refused",
                "Records or envelopes refused.",
                &self.messages_refused,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        let histograms: [(&str, &str, Option<Unit>, &Histogram); 4] = [
            (
                "finality",
                "From a transaction's arrival in this node's mempool to the final block that used its nonce.",
                Some(Unit::Seconds),
                &self.finality_seconds,
            ),
            (
                "key_agreement",
                "Time from the start of a key agreement to a confirmed key.",
                Some(Unit::Seconds),
                &self.key_agreement_seconds,
            ),
            (
                "key_agreement_qber",
                "Quantum bit error rate measured by each key agreement (a fraction, 0 to 1).",
                None,
                &self.key_agreement_qber,
            ),
            (
                "delivery",
                "From queueing a record to the recipient's signed receipt.",
                Some(Unit::Seconds),
                &self.delivery_seconds,
            ),
        ];
        for (name, help, unit, histogram) in histograms {
            match unit {
                Some(unit) => r.register_with_unit(name, help, unit, histogram.clone()),
                None => r.register(name, help, histogram.clone()),
            }
        }
    }

    /// Lets another part of the node (the network, libp2p) add its own
    /// metrics to the registry this endpoint renders.
    pub fn with_registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut registry)
    }

    pub fn inc(counter: &Counter) {
        counter.inc();
    }

    pub fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    pub fn set(gauge: &CountGauge, value: u64) {
        gauge.set(value);
    }

    pub fn inc_gauge(gauge: &CountGauge) {
        gauge.inc();
    }

    pub fn dec_gauge(gauge: &CountGauge) {
        let _ = gauge.inner().fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |v| Some(v.saturating_sub(1)),
        );
    }

    /// Observes a duration in seconds.
    pub fn observe_ms(histogram: &Histogram, ms: u64) {
        histogram.observe(ms as f64 / 1000.0);
    }

    /// The OpenMetrics text exposition of every metric, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Binds the metrics endpoint, saying which setting to change when it cannot.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot open the metrics endpoint on {addr} (metrics_bind and metrics_port in config.toml, or --metrics-bind/--metrics-port)")
    })
}

/// Serves `/metrics`, `/health` (the process is up) and `/ready` (synced
/// and connected: the control API's rule, `ready`) until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: ReadyCheck,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break } else { continue },
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => if *shutdown.borrow() { break } else { continue },
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, ready) = (metrics.clone(), ready.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let answer = answer(&metrics, &ready, &req);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn answer(metrics: &Metrics, ready: &ReadyCheck, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, metrics.render()),
        "/health" => reply(
            StatusCode::OK,
            "application/json",
            r#"{"status":"alive"}"#.into(),
        ),
        "/ready" => {
            if ready() {
                reply(
                    StatusCode::OK,
                    "application/json",
                    r#"{"ready":true}"#.into(),
                )
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    r#"{"ready":false}"#.into(),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /health or /ready\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    }

    #[tokio::test]
    async fn serves_openmetrics_text_with_histograms_health_and_readiness() {
        let m = Metrics::new();
        Metrics::set(&m.height, 42);
        Metrics::inc(&m.gossip_rejected);
        Metrics::observe_ms(&m.finality_seconds, 400);
        Metrics::observe_ms(&m.finality_seconds, 1200);
        m.key_agreement_qber.observe(0.03);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ready.clone();
        let check: ReadyCheck = Arc::new(move || flag.load(std::sync::atomic::Ordering::Relaxed));
        tokio::spawn(serve(listener, m.clone(), check, rx));

        let body = get(addr, "/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(body.contains(OPENMETRICS_CONTENT_TYPE), "{body}");
        assert!(body.contains("\nqward_chain_height 42\n"), "{body}");
        assert!(body.contains("\nqward_gossip_rejected_total 1\n"), "{body}");
        assert!(body.contains("# TYPE qward_peers gauge"), "{body}");
        assert!(
            body.contains("# TYPE qward_finality_seconds histogram"),
            "{body}"
        );
        assert!(
            body.contains("qward_finality_seconds_bucket{le=\"0.5\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("qward_finality_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{body}"
        );
        assert!(body.contains("qward_finality_seconds_count 2\n"), "{body}");
        assert!(
            body.contains("qward_key_agreement_qber_bucket{le=\"0.03\"} 1\n"),
            "{body}"
        );
        assert!(body.trim_end().ends_with("# EOF"), "{body}");

        assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200 OK"));
        assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 503"));
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 200 OK"));
        assert!(get(addr, "/nothing").await.starts_with("HTTP/1.1 404"));
        stop.send(true).unwrap();
    }

    #[test]
    fn a_gauge_never_goes_below_zero() {
        let m = Metrics::new();
        Metrics::dec_gauge(&m.peers);
        assert_eq!(m.peers.get(), 0);
        Metrics::inc_gauge(&m.peers);
        Metrics::inc_gauge(&m.peers);
        Metrics::dec_gauge(&m.peers);
        assert_eq!(m.peers.get(), 1);
    }
}
