//! The API server: jsonrpsee serving JSON-RPC 2.0 over HTTP and WebSocket on
//! one 127.0.0.1 port, behind the [`super::gate`] (credential, no browser
//! pages, `/health`, `/ready`, bounded TCP connections) and the
//! [`super::calls`] middleware (calls in flight per connection, structured
//! params, notifications that run), with bounded connections, batches,
//! bodies and subscriptions; and the one loop that carries the node's events
//! to a subscriber.

use std::collections::HashSet;

use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{
    BatchRequestConfig, Methods, PendingSubscriptionSink, Server, ServerConfig, TrySendError,
};
use qward_core::api::{self, Event, Topic};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use std::sync::Arc;

use super::auth::Auth;
use super::calls::CallGuard;
use super::gate::{GateLayer, ReadyCheck};

/// Connections served at once (the CLI, a TUI or two, scripts).
pub const MAX_CONNECTIONS: u32 = 64;
/// Calls in one batch.
pub const MAX_BATCH: u32 = 64;
/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 8;
/// Messages queued for one WebSocket connection before the server stops
/// reading its requests.
const MESSAGE_BUFFER: u32 = 1024;

/// Serves the API on `listener` until `shutdown` turns true; refused
/// credentials go to `access` too.
pub async fn serve(
    listener: TcpListener,
    auth: Arc<Auth>,
    access: Option<crate::node::access::AccessLog>,
    methods: impl Into<Methods>,
    ready: ReadyCheck,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let gate = GateLayer::new(auth.clone(), access, ready);
    serve_with_gate(listener, gate, auth, methods, shutdown).await
}

/// Serves the API behind `gate` on `listener` until `shutdown` turns true.
pub async fn serve_with_gate(
    listener: TcpListener,
    gate: GateLayer,
    auth: Arc<Auth>,
    methods: impl Into<Methods>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let frame = api::MAX_FRAME_BYTES as u32;
    let config = ServerConfig::builder()
        .max_request_body_size(frame)
        .max_response_body_size(frame)
        .max_connections(MAX_CONNECTIONS)
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .set_message_buffer_capacity(MESSAGE_BUFFER)
        // Small JSON-RPC frames: without TCP_NODELAY, Nagle's algorithm and
        // the client's delayed ACKs stall each answer by tens of milliseconds.
        .set_tcp_no_delay(true)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(gate))
        .set_rpc_middleware(
            RpcServiceBuilder::new().layer_fn(move |s| CallGuard::new(s, auth.clone())),
        )
        .build_from_tcp(listener.into_std()?)?;
    let handle = server.start(methods);
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    let _ = handle.stop();
    handle.stopped().await;
    Ok(())
}

/// Accepts a subscription and sends it every event of `topics` until the
/// client unsubscribes or goes away. A subscriber too slow to read loses
/// events (the node never waits for it); one that falls further behind than
/// the broadcast channel holds skips the ones it missed.
pub async fn pipe_events(
    pending: PendingSubscriptionSink,
    topics: Vec<Topic>,
    events: broadcast::Receiver<Event>,
) -> SubscriptionResult {
    pipe_events_while(pending, topics, events, || true).await
}

/// Why a subscription ends with its session (sent to the subscriber).
const SESSION_ENDED: &str = "the session is locked or ended: log in again";

/// [`pipe_events`] while `open()` holds (a user's session that locked or
/// was removed ends its subscriptions at the next event, or within a
/// second without events).
pub async fn pipe_events_while(
    pending: PendingSubscriptionSink,
    topics: Vec<Topic>,
    mut events: broadcast::Receiver<Event>,
    open: impl Fn() -> bool + Send,
) -> SubscriptionResult {
    let topics: HashSet<Topic> = topics.into_iter().collect();
    let mut sink = pending.accept().await?;
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sink.closed() => break,
            _ = check.tick() => if !open() { return Err(SESSION_ENDED.into()) },
            event = events.recv() => match event {
                Ok(_) if !open() => return Err(SESSION_ENDED.into()),
                Ok(event) if topics.contains(&event.topic()) => {
                    let message = serde_json::value::to_raw_value(&event)?;
                    match sink.try_send(message) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        Err(TrySendError::Closed(_)) => break,
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
