//! The API client used by the CLI (and usable by any Rust program): connects
//! with the cookie, calls methods, and receives subscribed events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use qward_core::api::{
    self, EVENT_METHOD, Event, Notification, Request, Response, SubscribeParams, Topic,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::Cookie;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A connection to a node's control API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    out: mpsc::Sender<String>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    timeout: Duration,
}

impl ApiClient {
    /// Connects to `ws://127.0.0.1:<port>` with the cookie read from `cookie_file`.
    /// Events of subscribed topics arrive on the returned receiver.
    pub async fn connect_with_cookie_file(
        port: u16,
        cookie_file: &Path,
    ) -> anyhow::Result<(Self, mpsc::Receiver<Event>)> {
        let cookie = Cookie::read(cookie_file)?;
        Self::connect(&format!("ws://127.0.0.1:{port}"), &cookie).await
    }

    /// Connects to `url` presenting `cookie`.
    pub async fn connect(
        url: &str,
        cookie: &Cookie,
    ) -> anyhow::Result<(Self, mpsc::Receiver<Event>)> {
        let mut request = url
            .into_client_request()
            .with_context(|| format!("bad API url {url}"))?;
        request
            .headers_mut()
            .insert(api::COOKIE_HEADER, HeaderValue::from_str(cookie.as_str())?);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(api::MAX_FRAME_BYTES))
            .max_frame_size(Some(api::MAX_FRAME_BYTES));
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async_with_config(request, Some(config), true),
        )
        .await
        .map_err(|_| anyhow!("timed out connecting to the node's API at {url}"))?
        .map_err(|e| {
            anyhow!("cannot connect to the node's API at {url}: {e} (is the node running?)")
        })?;
        let (mut sink, mut source) = ws.split();
        let (out, mut out_rx) = mpsc::channel::<String>(64);
        let (event_tx, event_rx) = mpsc::channel::<Event>(1024);
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = source.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if value.get("method").and_then(Value::as_str) == Some(EVENT_METHOD) {
                    if let Ok(note) = serde_json::from_value::<Notification>(value) {
                        let _ = event_tx.try_send(note.params);
                    }
                } else if let Ok(resp) = serde_json::from_value::<Response>(value)
                    && let Some(id) = resp.id.as_u64()
                    && let Some(waiter) = reader_pending.lock().await.remove(&id)
                {
                    let _ = waiter.send(resp);
                }
            }
            // Connection gone: fail every waiting call.
            reader_pending.lock().await.clear();
        });
        let client = ApiClient {
            out,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            timeout: Duration::from_secs(30),
        };
        Ok((client, event_rx))
    }

    /// Sets how long a call may wait for its answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Calls `method` and decodes its result.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> anyhow::Result<R> {
        let value = self
            .call_value(method, serde_json::to_value(params)?)
            .await?;
        serde_json::from_value(value).with_context(|| format!("unexpected answer to {method}"))
    }

    /// Calls `method` and returns its raw JSON result.
    pub async fn call_value(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        let text = serde_json::to_string(&Request::new(id, method, params))?;
        if self.out.send(text).await.is_err() {
            self.pending.lock().await.remove(&id);
            bail!("the connection to the node is closed");
        }
        let resp = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(_)) => bail!("the connection to the node closed before it answered {method}"),
            Err(_) => {
                self.pending.lock().await.remove(&id);
                bail!("the node did not answer {method} within {:?}", self.timeout)
            }
        };
        match (resp.result, resp.error) {
            (_, Some(e)) => Err(anyhow!("{}", e.message)),
            (Some(v), None) => Ok(v),
            (None, None) => Ok(Value::Null),
        }
    }

    /// Subscribes to event topics.
    pub async fn subscribe(&self, topics: &[Topic]) -> anyhow::Result<()> {
        let _: Value = self
            .call(
                api::method::SUBSCRIBE,
                SubscribeParams {
                    topics: topics.to_vec(),
                },
            )
            .await?;
        Ok(())
    }
}
