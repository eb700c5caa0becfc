//! The API server: accepts WebSocket connections on 127.0.0.1, checks the
//! cookie on the handshake, answers JSON-RPC requests through a [`Handler`],
//! and pushes subscribed events as notifications.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use qward_core::api::{
    self, EVENT_METHOD, Event, JSONRPC, Notification, Request, Response, RpcError, SubscribeParams,
    Topic,
};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HsRequest, Response as HsResponse,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http};

use super::Cookie;

/// A boxed future returned by a handler.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>>;

/// What answers API methods (the node). `subscribe` is handled by the server.
pub trait Handler: Send + Sync + 'static {
    fn call<'a>(&'a self, method: &'a str, params: Value) -> HandlerFuture<'a>;
}

/// Requests one connection may have in flight at once.
const MAX_IN_FLIGHT: usize = 32;

/// Serves the API until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    cookie: Cookie,
    handler: Arc<dyn Handler>,
    events: broadcast::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cookie = Arc::new(cookie);
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                if !peer.ip().is_loopback() {
                    tracing::warn!(%peer, "refused a non-loopback API connection");
                    continue;
                }
                let (cookie, handler, events) = (cookie.clone(), handler.clone(), events.subscribe());
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, cookie, handler, events, shutdown).await {
                        tracing::debug!("API connection ended: {e}");
                    }
                });
            }
        }
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(api::MAX_FRAME_BYTES))
        .max_frame_size(Some(api::MAX_FRAME_BYTES))
}

#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn connection(
    stream: TcpStream,
    cookie: Arc<Cookie>,
    handler: Arc<dyn Handler>,
    mut events: broadcast::Receiver<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let check = |req: &HsRequest, resp: HsResponse| -> Result<HsResponse, ErrorResponse> {
        let presented = req
            .headers()
            .get(api::COOKIE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if cookie.matches(presented) {
            Ok(resp)
        } else {
            let mut refusal = ErrorResponse::new(Some("missing or wrong API cookie".into()));
            *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    // Small JSON-RPC frames: without TCP_NODELAY, Nagle's algorithm and the
    // client's delayed ACKs stall each answer by tens of milliseconds.
    let _ = stream.set_nodelay(true);
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config())).await?;
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        while let Some(text) = out_rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut topics: HashSet<Topic> = HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            event = events.recv() => match event {
                Ok(event) if topics.contains(&event.topic()) => {
                    let note = Notification { jsonrpc: JSONRPC.into(), method: EVENT_METHOD.into(), params: event };
                    if let Ok(text) = serde_json::to_string(&note) {
                        // A client too slow to read its events loses them, not the node.
                        let _ = out_tx.try_send(text);
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            frame = source.next() => {
                let text = match frame {
                    None => break,
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Close(_))) => break,
                    Some(Ok(_)) => continue,
                };
                let request: Request = match serde_json::from_str(&text) {
                    Ok(r) => r,
                    Err(e) => {
                        let resp = Response::err(Value::Null, RpcError::new(RpcError::PARSE, format!("not a JSON-RPC request: {e}")));
                        send(&out_tx, &resp).await;
                        continue;
                    }
                };
                if request.jsonrpc != JSONRPC {
                    send(&out_tx, &Response::err(request.id, RpcError::new(RpcError::INVALID_REQUEST, "jsonrpc must be \"2.0\""))).await;
                    continue;
                }
                if request.method == api::method::SUBSCRIBE {
                    let resp = match serde_json::from_value::<SubscribeParams>(request.params) {
                        Ok(p) => {
                            topics.extend(p.topics);
                            Response::ok(request.id, serde_json::to_value(topics.iter().collect::<Vec<_>>()).unwrap_or(Value::Null))
                        }
                        Err(e) => Response::err(request.id, RpcError::invalid_params(e.to_string())),
                    };
                    send(&out_tx, &resp).await;
                    continue;
                }
                let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
                let (handler, out_tx) = (handler.clone(), out_tx.clone());
                tokio::spawn(async move {
                    let resp = match handler.call(&request.method, request.params).await {
                        Ok(v) => Response::ok(request.id, v),
                        Err(e) => Response::err(request.id, e),
                    };
                    send(&out_tx, &resp).await;
                    drop(permit);
                });
            }
        }
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

async fn send(out: &mpsc::Sender<String>, resp: &Response) {
    if let Ok(text) = serde_json::to_string(resp) {
        let _ = out.send(text).await;
    }
}
