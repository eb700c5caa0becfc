//! The ETSI GS QKD 014 server: HTTPS with mutual TLS on one address, the
//! three endpoints (each by GET and, for the key calls, POST), and the
//! specification's errors. Who the caller is comes from its certificate
//! (see [`super::tls::sae_id_of`]); what it may have is the [`Backend`]'s
//! to decide (for `qward kme serve`, the running node).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use qward_core::etsi014::{
    EtsiError, KeyContainer, KeyId, KeyIds, KeyRequest, MAX_BODY_BYTES, PATH_PREFIX, Status,
    check_sae_id,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;
/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// What answers the API's calls for authenticated callers. `caller` is the
/// SAE id of the client's certificate.
pub trait Backend: Send + Sync + 'static {
    /// `status`: the key stream between `caller` (master) and `slave`.
    fn status(&self, caller: String, slave: String) -> BoxFuture<'_, Result<Status, EtsiError>>;
    /// `enc_keys`: `number` new keys of `size` bits for `caller` (master)
    /// to share with `slave`.
    fn enc_keys(
        &self,
        caller: String,
        slave: String,
        number: u32,
        size: u32,
    ) -> BoxFuture<'_, Result<KeyContainer, EtsiError>>;
    /// `dec_keys`: the keys `master` was given under `ids`, for `caller`
    /// (the slave), all or none.
    fn dec_keys(
        &self,
        caller: String,
        master: String,
        ids: Vec<KeyId>,
    ) -> BoxFuture<'_, Result<KeyContainer, EtsiError>>;
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    backend: Arc<dyn Backend>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        let (tcp, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("KME: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::warn!("KME: refused a TLS connection from {from}: {e}");
                    return;
                }
                Err(_) => {
                    tracing::warn!("KME: the TLS handshake from {from} timed out");
                    return;
                }
            };
            let caller = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(super::tls::sae_id_of);
            let service = hyper::service::service_fn(move |req| {
                let backend = backend.clone();
                let caller = caller.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&*backend, caller, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Err(e)) => tracing::debug!("KME: connection from {from}: {e}"),
                Err(_) => tracing::debug!("KME: connection from {from} closed after its time"),
                Ok(Ok(())) => {}
            }
        });
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(e: &EtsiError) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    json(status, serde_json::to_vec(&e.body()).unwrap_or_default())
}

fn ok<T: serde::Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => error(&EtsiError::unavailable(format!("encoding the answer: {e}"))),
    }
}

async fn answer(
    backend: &dyn Backend,
    caller: Option<String>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match route(backend, caller, req).await {
        Ok(r) => r,
        Err(e) => error(&e),
    }
}

/// The value of `name` in a query string (the first, if named twice).
fn query<'a>(q: Option<&'a str>, name: &str) -> Option<&'a str> {
    q?.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn number(q: Option<&str>, name: &str) -> Result<Option<u32>, EtsiError> {
    query(q, name)
        .map(|v| {
            v.parse::<u32>().map_err(|_| {
                EtsiError::bad_request(format!("{name} must be a whole number, not {v:?}"))
            })
        })
        .transpose()
}

async fn body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, EtsiError> {
    let bytes = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            EtsiError::bad_request(format!(
                "the body could not be read (at most {MAX_BODY_BYTES} bytes): {e}"
            ))
        })?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map_err(|e| EtsiError::bad_request(format!("the body is not valid JSON here: {e}")))
}

async fn route(
    backend: &dyn Backend,
    caller: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, EtsiError> {
    let path = req.uri().path().to_string();
    let q = req.uri().query().map(str::to_string);
    let q = q.as_deref();
    let Some((sae, op)) = path
        .strip_prefix(PATH_PREFIX)
        .and_then(|rest| rest.split_once('/'))
    else {
        return Ok(error(&EtsiError {
            status: 404,
            message: format!("no such endpoint: {path}"),
        }));
    };
    if !matches!(op, "status" | "enc_keys" | "dec_keys") {
        return Ok(error(&EtsiError {
            status: 404,
            message: format!("no such endpoint: {path}"),
        }));
    }
    let method = req.method().clone();
    if method != Method::GET && (op == "status" || method != Method::POST) {
        return Ok(error(&EtsiError {
            status: 405,
            message: format!("{method} is not allowed on {op}"),
        }));
    }
    check_sae_id(sae)?;
    let sae = sae.to_string();
    let Some(caller) = caller else {
        return Err(EtsiError::unauthorized(
            "the client certificate names no SAE id (a DNS name)",
        ));
    };
    match op {
        "status" => Ok(ok(&backend.status(caller, sae).await?)),
        "enc_keys" => {
            let request = if method == Method::POST {
                body::<KeyRequest>(req).await?
            } else {
                KeyRequest {
                    number: number(q, "number")?,
                    size: number(q, "size")?,
                    ..KeyRequest::default()
                }
            };
            let (n, size) = request.checked()?;
            Ok(ok(&backend.enc_keys(caller, sae, n, size).await?))
        }
        _ => {
            let ids = if method == Method::POST {
                body::<KeyIds>(req).await?.checked()?
            } else {
                let id = query(q, "key_ID")
                    .ok_or_else(|| EtsiError::bad_request("key_ID is missing from the query"))?;
                vec![KeyId::parse(id)?]
            };
            Ok(ok(&backend.dec_keys(caller, sae, ids).await?))
        }
    }
}
