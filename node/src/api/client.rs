//! The API client used by the CLI, the TUI's bridge, the tests and the
//! benchmarks: a jsonrpsee WebSocket client that presents the cookie on the
//! handshake. Its methods are the generated [`super::QwardApiClient`] trait
//! (`client.status().await`); `subscribe(topics)` yields typed events.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use jsonrpsee::client_transport::ws::{HeaderMap, HeaderValue, Url, WsTransportClientBuilder};
use jsonrpsee::core::ClientError;
use jsonrpsee::core::client::{Client, ClientBuilder};
use qward_core::api::{self, COOKIE_HEADER};

use super::Cookie;

/// How long a call waits for its answer unless told otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events a subscription buffers for a reader that is behind; past that the
/// subscription is dropped and the reader sees its end.
const EVENTS_BUFFERED: usize = 4096;

/// A connection to a node's control API. Cheap to clone; calls made through
/// clones share the connection.
#[derive(Debug, Clone)]
pub struct ApiClient {
    inner: Arc<Client>,
}

impl Deref for ApiClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.inner
    }
}

/// The node's API could not be reached (not running, wrong port, no
/// cookie): the CLI exits 3 on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Something waited for did not happen in time (a `--wait`): the CLI exits
/// 4 on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TimedOut(pub String);

impl ApiClient {
    /// Connects to `ws://127.0.0.1:<port>` with the cookie read from `cookie_file`.
    pub async fn connect_with_cookie_file(port: u16, cookie_file: &Path) -> anyhow::Result<Self> {
        let cookie = Cookie::read(cookie_file)?;
        Self::connect(&format!("ws://127.0.0.1:{port}"), &cookie).await
    }

    /// Connects to `url` presenting `cookie`.
    pub async fn connect(url: &str, cookie: &Cookie) -> anyhow::Result<Self> {
        Self::connect_with_timeout(url, cookie, DEFAULT_CALL_TIMEOUT).await
    }

    /// Connects to `url` presenting `cookie`; each call waits at most
    /// `call_timeout` for its answer.
    pub async fn connect_with_timeout(
        url: &str,
        cookie: &Cookie,
        call_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE_HEADER, HeaderValue::from_str(cookie.as_str())?);
        Self::connect_with_headers(url, headers, call_timeout).await
    }

    /// Connects to `url` with a user's session token (from [`login`]).
    pub async fn connect_with_session(
        url: &str,
        session: &str,
        call_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {session}"))?,
        );
        Self::connect_with_headers(url, headers, call_timeout).await
    }

    async fn connect_with_headers(
        url: &str,
        headers: HeaderMap,
        call_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let parsed = Url::parse(url).with_context(|| format!("bad API url {url}"))?;
        let frame = api::MAX_FRAME_BYTES as u32;
        let (sender, receiver) = WsTransportClientBuilder::default()
            .set_headers(headers)
            .max_request_size(frame)
            .max_response_size(frame)
            .connection_timeout(CONNECT_TIMEOUT)
            .build(parsed)
            .await
            .map_err(|e| {
                Unreachable(format!(
                    "cannot connect to the node's API at {url}: {e} (is the node running?)"
                ))
            })?;
        let client = ClientBuilder::default()
            .request_timeout(call_timeout)
            .max_buffer_capacity_per_subscription(EVENTS_BUFFERED)
            .set_tcp_no_delay(true)
            .build_with_tokio(sender, receiver);
        Ok(ApiClient {
            inner: Arc::new(client),
        })
    }
}

/// A session a user's credential opened (`POST /login`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Login {
    pub session: String,
    pub user: String,
    pub role: qward_core::api::UserRole,
    pub idle_logoff_s: Option<u64>,
}

/// Logs in at the API on 127.0.0.1:`port` with a user's `<name>:<secret>`.
pub async fn login(port: u16, credential: &str) -> anyhow::Result<Login> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let credential = credential.trim();
    if credential.contains(['\r', '\n']) {
        anyhow::bail!("a credential is one line: <name>:<secret>");
    }
    let mut stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .map_err(|_| anyhow!("the node's API on port {port} did not answer"))?
    .map_err(|e| {
        anyhow!("cannot connect to the node's API on port {port}: {e} (is the node running?)")
    })?;
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {credential}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(
        DEFAULT_CALL_TIMEOUT,
        (&mut stream).take(64 * 1024).read_to_end(&mut response),
    )
    .await
    .map_err(|_| anyhow!("the node did not answer the login in time"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("the node's login answer is not HTTP"))?;
    let ok = head.lines().next().is_some_and(|l| l.contains(" 200 "));
    if !ok {
        let why = serde_json::from_str::<serde_json::Value>(body.trim())
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| head.lines().next().unwrap_or("").to_string());
        anyhow::bail!("login refused: {why}");
    }
    serde_json::from_str(body.trim()).context("the node's login answer")
}

/// What a person should read of a failed call: the node's own message for
/// an error it answered, with its code kept in [`error_code`].
pub fn error_text(e: &ClientError) -> String {
    match e {
        ClientError::Call(obj) => obj.message().to_string(),
        ClientError::RequestTimeout => "the node did not answer in time".to_string(),
        ClientError::RestartNeeded(_) => {
            "the connection to the node is closed (is the node running?)".to_string()
        }
        other => other.to_string(),
    }
}

/// The JSON-RPC error code the node answered, if it answered one.
pub fn error_code(e: &ClientError) -> Option<i32> {
    match e {
        ClientError::Call(obj) => Some(obj.code()),
        _ => None,
    }
}

/// A failed call as an error for people: the node's message, not the
/// client's debug rendering of it.
pub fn call_error(e: ClientError) -> anyhow::Error {
    anyhow!(error_text(&e))
}
