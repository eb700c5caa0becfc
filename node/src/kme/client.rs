//! An ETSI GS QKD 014 client: an SAE's calls to its KME over HTTPS with
//! mutual TLS (one HTTP/1.1 connection per call). qward's key agreement
//! uses it for links whose QKD key comes from a KME; the tests use it
//! against `qward kme serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use qward_core::etsi014::{
    ErrorBody, KeyContainer, KeyIds, KeyRequest, PATH_PREFIX, Status, check_sae_id,
};
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use super::tls::TlsFiles;

/// The longest one call may take (a KME may run a key agreement for it).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why a call to a KME failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmeError {
    /// The KME answered with an error status and message.
    #[error("the KME answered {status}: {message}")]
    Http { status: u16, message: String },
    /// No answer: connection, TLS, timeout or a malformed answer.
    #[error("the KME could not be used: {0}")]
    Transport(String),
}

impl KmeError {
    pub fn status(&self) -> Option<u16> {
        match self {
            KmeError::Http { status, .. } => Some(*status),
            KmeError::Transport(_) => None,
        }
    }
}

/// A KME at one `https://host:port` URL, and this SAE's TLS identity.
#[derive(Clone)]
pub struct KmeClient {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
}

impl std::fmt::Debug for KmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KmeClient(https://{}:{})", self.host, self.port)
    }
}

impl KmeClient {
    /// A client of the KME at `url` (`https://host:port`), presenting the
    /// certificate in `files`.
    pub fn new(url: &str, files: &TlsFiles) -> anyhow::Result<Self> {
        Self::with_config(url, files.client_config()?)
    }

    pub fn with_config(url: &str, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("https://") else {
            bail!("KME url {url:?} must start with https://");
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .with_context(|| format!("the port of KME url {url:?}"))?,
            ),
            None => (rest, 443),
        };
        if host.is_empty() || host.contains('/') {
            bail!("KME url {url:?} must be https://host:port");
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let server_name = ServerName::try_from(host.clone())
            .with_context(|| format!("{host:?} is not a host name or address"))?;
        Ok(KmeClient {
            host,
            port,
            server_name,
            tls: TlsConnector::from(config),
        })
    }

    /// `GET /api/v1/keys/{slave_SAE_ID}/status`.
    pub async fn status(&self, slave: &str) -> Result<Status, KmeError> {
        self.call("GET", slave, "status", None).await
    }

    /// `POST /api/v1/keys/{slave_SAE_ID}/enc_keys`.
    pub async fn enc_keys(&self, slave: &str, req: &KeyRequest) -> Result<KeyContainer, KmeError> {
        let body = serde_json::to_vec(req).map_err(|e| KmeError::Transport(e.to_string()))?;
        self.call("POST", slave, "enc_keys", Some(body)).await
    }

    /// `GET /api/v1/keys/{slave_SAE_ID}/enc_keys?number=&size=`.
    pub async fn enc_keys_get(
        &self,
        slave: &str,
        number: Option<u32>,
        size: Option<u32>,
    ) -> Result<KeyContainer, KmeError> {
        let mut q = Vec::new();
        if let Some(n) = number {
            q.push(format!("number={n}"));
        }
        if let Some(s) = size {
            q.push(format!("size={s}"));
        }
        let op = if q.is_empty() {
            "enc_keys".to_string()
        } else {
            format!("enc_keys?{}", q.join("&"))
        };
        self.call("GET", slave, &op, None).await
    }

    /// `POST /api/v1/keys/{master_SAE_ID}/dec_keys`.
    pub async fn dec_keys(&self, master: &str, ids: &KeyIds) -> Result<KeyContainer, KmeError> {
        let body = serde_json::to_vec(ids).map_err(|e| KmeError::Transport(e.to_string()))?;
        self.call("POST", master, "dec_keys", Some(body)).await
    }

    /// `GET /api/v1/keys/{master_SAE_ID}/dec_keys?key_ID=`.
    pub async fn dec_keys_get(&self, master: &str, key_id: &str) -> Result<KeyContainer, KmeError> {
        self.call("GET", master, &format!("dec_keys?key_ID={key_id}"), None)
            .await
    }

    /// Sends a request with any method, path and body; answers the status
    /// and body (for tests of what a well-behaved client never sends).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), KmeError> {
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| KmeError::Transport("the call timed out".into()))?
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        sae: &str,
        op: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, KmeError> {
        check_sae_id(sae).map_err(|e| KmeError::Http {
            status: e.status,
            message: e.message,
        })?;
        let (status, bytes) = self
            .raw(method, &format!("{PATH_PREFIX}{sae}/{op}"), body)
            .await?;
        if status == 200 {
            return serde_json::from_slice(&bytes)
                .map_err(|e| KmeError::Transport(format!("a malformed answer: {e}")));
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        Err(KmeError::Http { status, message })
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), KmeError> {
        let t = |e: &dyn std::fmt::Display| KmeError::Transport(e.to_string());
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| t(&format!("connecting to {}:{}: {e}", self.host, self.port)))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| t(&format!("TLS with the KME: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| t(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| t(&e))?;
        let answer = sender.send_request(req).await.map_err(|e| t(&e))?;
        let status = answer.status().as_u16();
        let bytes = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| t(&format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, bytes.to_vec()))
    }
}
