//! The HTTP gate in front of the JSON-RPC service, for HTTP requests and
//! WebSocket handshakes alike: browser pages are refused (an `Origin`,
//! `Sec-Fetch-Site` or `Sec-Fetch-Mode` header, or a `Host` that is not this
//! machine's loopback, as DNS rebinding gives; no `Host` and no authority at
//! all is refused too), on every path, `/health` and `/ready` included, so a
//! page cannot even probe the node; `GET /health` and `GET /ready` answer
//! without a credential and say nothing else; `POST /login` trades a user's
//! credential (`Authorization: Bearer <name>:<secret>`) for a session token;
//! everything else needs the API cookie (in `x-qward-cookie` or as
//! `Authorization: Bearer`) or an open session token, and the caller it
//! names goes with the request to the methods (`auth::Caller`). Every
//! refused credential is logged, and written to the access log.
//!
//! It bounds the TCP connections it serves ([`MAX_TCP_CONNECTIONS`]) before
//! it reads any body: jsonrpsee accepts every connection and counts only the
//! requests it is handed.
//!
//! It also answers the JSON-RPC 2.0 cases that jsonrpsee 0.26 gets wrong
//! over HTTP: a single body that is valid JSON but not a request object (the
//! specification's `{"jsonrpc": "2.0", "method": 1, "params": "bar"}`), or
//! whose `id` is not a string, null or an unsigned integer, or whose
//! `params` is neither an array nor an object, is an invalid request
//! (-32600), not a parse error and not a notification; in a batch, such an
//! entry is answered -32600 with the id `null`; and a notification gets no
//! answer (jsonrpsee sends the body `null`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Method, StatusCode, Uri, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Full, Limited};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use qward_core::api::{COOKIE_HEADER, MAX_FRAME_BYTES};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::auth::{Auth, AuthError, Caller};
use crate::node::access::{Access, AccessLog};

/// TCP connections the gate serves at once; past that a connection is
/// answered 503 and closed, its body never read.
pub const MAX_TCP_CONNECTIONS: usize = 64;

/// Refused credentials written to the access log per minute, at most: a
/// local process hammering the API with wrong credentials must not fill the
/// disk or the chain with anchors (the log line is always written).
pub const MAX_REFUSALS_LOGGED_PER_MINUTE: u64 = 60;

/// The access log's budget for refusals, per minute of wall clock.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    minute: std::sync::atomic::AtomicU64,
    used: std::sync::atomic::AtomicU64,
}

impl RefusalBudget {
    /// Whether one more refusal may be written at `now_ms`.
    pub fn admit(&self, now_ms: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let minute = now_ms / 60_000;
        if self.minute.swap(minute, Relaxed) != minute {
            self.used.store(0, Relaxed);
        }
        self.used.fetch_add(1, Relaxed) < MAX_REFUSALS_LOGGED_PER_MINUTE
    }
}

/// Whether the node is ready to serve (synced, enough peers), asked at each
/// `GET /ready`.
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the gate does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// On to the JSON-RPC service, as this caller.
    Pass(Caller),
    /// Answered here, with this status and JSON body.
    Answer(StatusCode, String),
    /// Refused for this reason (401), as the user named, if any.
    Refused(AuthError, Option<String>),
}

fn json_error(e: impl std::fmt::Display) -> String {
    serde_json::json!({ "error": e.to_string() }).to_string()
}

/// Headers only a browser sends: a page's fetches, forms and WebSocket
/// handshakes carry at least one of them, the node's own tools none.
const BROWSER_HEADERS: [&str; 3] = ["origin", "sec-fetch-site", "sec-fetch-mode"];

/// Decides what happens to a request: a function of its method, URI and
/// headers, the node's readiness, and its users and sessions at `now_ms`.
pub fn decide(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    auth: &Auth,
    now_ms: u64,
    ready: impl FnOnce() -> bool,
) -> Decision {
    let answer = |status, body: &str| Decision::Answer(status, body.to_string());
    if BROWSER_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return answer(
            StatusCode::FORBIDDEN,
            r#"{"error":"the control API does not answer web pages"}"#,
        );
    }
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the URI's authority; a
    // request with neither cannot be told from a rebound page: refused.
    let host = match headers.get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => uri.authority().map(|a| a.as_str()),
    };
    if !host.is_some_and(is_loopback_host) {
        return answer(
            StatusCode::FORBIDDEN,
            r#"{"error":"the control API answers only to 127.0.0.1, localhost or [::1]"}"#,
        );
    }
    if method == Method::GET {
        match uri.path() {
            "/health" => return answer(StatusCode::OK, r#"{"status":"alive"}"#),
            "/ready" => {
                return if ready() {
                    answer(StatusCode::OK, r#"{"ready":true}"#)
                } else {
                    answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"ready":false}"#)
                };
            }
            _ => {}
        }
    }
    let presented = presented_credential(headers);
    if method == Method::POST && uri.path() == "/login" {
        let Some(credential) = presented else {
            return Decision::Refused(AuthError::Missing, None);
        };
        let name = credential.split_once(':').map(|(n, _)| n.to_string());
        return match auth.login(credential, now_ms) {
            Ok((session, who)) => Decision::Answer(
                StatusCode::OK,
                serde_json::json!({
                    "session": session,
                    "user": who.user,
                    "role": who.role,
                    "idle_logoff_s": who.idle_logoff_s,
                })
                .to_string(),
            ),
            Err(e) => Decision::Refused(e, name),
        };
    }
    match auth.authenticate(presented, now_ms) {
        Ok(caller) => Decision::Pass(caller),
        Err(e) => {
            let user = match &e {
                AuthError::Locked { user, .. } => Some(user.clone()),
                _ => None,
            };
            Decision::Refused(e, user)
        }
    }
}

/// The credential a request presents, if any.
fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(COOKIE_HEADER) {
        return v.to_str().ok();
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// The gate as a tower layer for the jsonrpsee server. jsonrpsee makes one
/// service of it per TCP connection, which is where connections are counted.
#[derive(Clone)]
pub struct GateLayer {
    auth: Arc<Auth>,
    access: Option<AccessLog>,
    refusals: Arc<RefusalBudget>,
    ready: ReadyCheck,
    connections: Arc<Semaphore>,
}

impl std::fmt::Debug for GateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateLayer").finish_non_exhaustive()
    }
}

impl GateLayer {
    /// A gate for `auth`'s callers; refusals go to `access` too.
    pub fn new(auth: Arc<Auth>, access: Option<AccessLog>, ready: ReadyCheck) -> Self {
        Self::with_connection_limit(auth, access, ready, MAX_TCP_CONNECTIONS)
    }

    /// A gate serving at most `connections` TCP connections at once.
    pub fn with_connection_limit(
        auth: Arc<Auth>,
        access: Option<AccessLog>,
        ready: ReadyCheck,
        connections: usize,
    ) -> Self {
        GateLayer {
            auth,
            access,
            refusals: Arc::new(RefusalBudget::default()),
            ready,
            connections: Arc::new(Semaphore::new(connections)),
        }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        // Held by every clone of this connection's service, so given back
        // when the connection ends (or, for a WebSocket, once it is upgraded:
        // jsonrpsee counts those itself).
        let permit = self
            .connections
            .clone()
            .try_acquire_owned()
            .ok()
            .map(Arc::new);
        Gate {
            inner,
            auth: self.auth.clone(),
            access: self.access.clone(),
            refusals: self.refusals.clone(),
            ready: self.ready.clone(),
            permit,
        }
    }
}

/// The gate around one connection's service.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    auth: Arc<Auth>,
    access: Option<AccessLog>,
    refusals: Arc<RefusalBudget>,
    ready: ReadyCheck,
    /// `None`: the connection is one too many and gets only 503s.
    permit: Option<Arc<OwnedSemaphorePermit>>,
}

impl<S> std::fmt::Debug for Gate<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

type GateFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

impl<S> Service<HttpRequest> for Gate<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = GateFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: HttpRequest) -> GateFuture {
        if self.permit.is_none() {
            tracing::debug!("API gate refused a connection: too many open");
            return Box::pin(std::future::ready(
                HttpResponse::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CONNECTION, "close")
                    .body(HttpBody::from(
                        r#"{"error":"too many connections to the control API"}"#,
                    ))
                    .map_err(BoxError::from),
            ));
        }
        let ready = &self.ready;
        let now = crate::node::clock::now_ms();
        let mut req = req;
        match decide(
            req.method(),
            req.uri(),
            req.headers(),
            &self.auth,
            now,
            || ready(),
        ) {
            Decision::Pass(caller) if req.method() == Method::POST => {
                req.extensions_mut().insert(caller);
                // The service that was polled ready answers; a fresh clone
                // takes its place for the next request (tower's pattern).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let (parts, body) = req.into_parts();
                    let bytes = match Limited::new(body, MAX_FRAME_BYTES).collect().await {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => {
                            return answer(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                r#"{"error":"request body too large"}"#.to_string(),
                            );
                        }
                    };
                    let body = match check_body(&bytes) {
                        Checked::Pass => HttpBody::new(Full::new(bytes)),
                        Checked::Rewritten(batch) => HttpBody::from(batch),
                        Checked::Answer(error) => return answer(StatusCode::OK, error),
                    };
                    let response = inner.call(HttpRequest::from_parts(parts, body)).await?;
                    no_answer_to_notifications(response).await
                })
            }
            Decision::Pass(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Decision::Answer(status, body) => {
                if status != StatusCode::OK {
                    tracing::debug!(%status, path = req.uri().path(), "API gate refused a request");
                }
                Box::pin(std::future::ready(answer(status, body)))
            }
            Decision::Refused(why, user) => {
                let user = user.unwrap_or_else(|| "unknown".into());
                tracing::warn!(%user, path = req.uri().path(), "API credential refused: {why}");
                if let Some(log) = &self.access
                    && self.refusals.admit(now)
                {
                    log.record_later(Access {
                        user,
                        action: "refused-credential",
                        record: None,
                        detail: why.to_string(),
                    });
                }
                Box::pin(std::future::ready(answer(
                    StatusCode::UNAUTHORIZED,
                    json_error(why),
                )))
            }
        }
    }
}

/// jsonrpsee 0.26 answers a notification, or a batch of nothing but
/// notifications, with the body `null` over HTTP; the specification says
/// the server must not answer them at all. Such an answer becomes
/// `204 No Content` with no body.
async fn no_answer_to_notifications(response: HttpResponse) -> Result<HttpResponse, BoxError> {
    if response.body().size_hint().exact() != Some(4) {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    if &bytes[..] == b"null" {
        return HttpResponse::builder()
            .status(StatusCode::NO_CONTENT)
            .body(HttpBody::empty())
            .map_err(BoxError::from);
    }
    Ok(HttpResponse::from_parts(
        parts,
        HttpBody::new(Full::new(bytes)),
    ))
}

fn answer(status: StatusCode, body: String) -> Result<HttpResponse, BoxError> {
    HttpResponse::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(HttpBody::from(body))
        .map_err(BoxError::from)
}

/// The members of a request object, unparsed (one that is `null` reads as
/// absent, as it does for jsonrpsee).
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// An `id` jsonrpsee can carry: a string, `null`, or a number that is an
/// unsigned integer of 64 bits written without fraction or exponent.
pub fn is_valid_id(id: &RawValue) -> bool {
    let t = id.get();
    t == "null"
        || t.starts_with('"')
        || (t.bytes().all(|b| b.is_ascii_digit())
            && (t == "0" || !t.starts_with('0'))
            && t.parse::<u64>().is_ok())
}

/// `params` the specification allows: absent, an array or an object.
pub fn is_structured(params: Option<&RawValue>) -> bool {
    params.is_none_or(|p| p.get().starts_with(['[', '{']))
}

/// What one body, read whole, becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// On to jsonrpsee as it is.
    Pass,
    /// A batch with its entries jsonrpsee would take for notifications (an
    /// id it cannot carry) replaced by `0`, which it answers -32600 with the
    /// id `null`.
    Rewritten(String),
    /// Answered here with this JSON-RPC error.
    Answer(String),
}

/// Checks a body (section 4 of the specification) before jsonrpsee sees it.
pub fn check_body(body: &[u8]) -> Checked {
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Checked::Pass;
    };
    if *first == b'[' {
        return check_batch(body);
    }
    match invalid_request(body) {
        Some(error) => Checked::Answer(error),
        None => Checked::Pass,
    }
}

fn check_batch(body: &[u8]) -> Checked {
    let Ok(entries) = serde_json::from_slice::<Vec<&RawValue>>(body) else {
        return Checked::Pass;
    };
    let bad_id = |entry: &RawValue| {
        serde_json::from_str::<Members<'_>>(entry.get())
            .ok()
            .and_then(|m| m.id)
            .is_some_and(|id| !is_valid_id(id))
    };
    if !entries.iter().any(|e| bad_id(e)) {
        return Checked::Pass;
    }
    let parts: Vec<&str> = entries
        .iter()
        .map(|e| if bad_id(e) { "0" } else { e.get() })
        .collect();
    Checked::Rewritten(format!("[{}]", parts.join(",")))
}

/// The JSON-RPC error answer for a single body that is valid JSON but not a
/// request object, with its `id` where one can be read and carried; `None`
/// for anything else (a request, a notification, or invalid JSON, which
/// jsonrpsee answers correctly).
pub fn invalid_request(body: &[u8]) -> Option<String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        return None;
    }
    let valid_json = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    if !valid_json {
        return None;
    }
    let members = serde_json::from_slice::<Members<'_>>(body).ok();
    let id = members
        .as_ref()
        .and_then(|m| m.id)
        .filter(|id| is_valid_id(id));
    let is_request = members.as_ref().is_some_and(|m| {
        m.jsonrpc.is_some_and(|v| v.get() == r#""2.0""#)
            && m.method.is_some_and(|v| v.get().starts_with('"'))
            && is_structured(m.params)
            && (m.id.is_none() || id.is_some())
    });
    if is_request {
        return None;
    }
    let id = id.map_or("null", RawValue::get);
    Some(format!(
        r#"{{"jsonrpc":"2.0","error":{{"code":-32600,"message":"Invalid request"}},"id":{id}}}"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Cookie;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn uri(path: &str) -> Uri {
        path.parse().expect("uri")
    }

    fn status(d: Decision) -> StatusCode {
        match d {
            Decision::Pass(_) => StatusCode::CONTINUE,
            Decision::Answer(s, _) => s,
            Decision::Refused(..) => StatusCode::UNAUTHORIZED,
        }
    }

    fn test_auth(cookie: &Cookie) -> Auth {
        let store: Arc<dyn qward_core::storage::Store + Send + Sync> =
            Arc::new(qward_core::storage::MemStore::new());
        Auth::load(cookie.clone(), store, std::time::Duration::from_secs(60))
            .expect("an empty user book")
    }

    #[test]
    fn the_credential_is_needed_for_everything_but_health_and_ready() {
        let cookie = Cookie::generate();
        let auth = test_auth(&cookie);
        let good = cookie.as_str().to_string();
        let host = ("host", "127.0.0.1:7500");
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            status(decide(
                &post,
                &uri("/"),
                &headers(&[host]),
                &auth,
                0,
                || { true }
            )),
            StatusCode::UNAUTHORIZED
        );
        let wrong = headers(&[host, (COOKIE_HEADER, &"ab".repeat(32))]);
        assert_eq!(
            status(decide(&post, &uri("/"), &wrong, &auth, 0, || true)),
            StatusCode::UNAUTHORIZED
        );
        let with_cookie = headers(&[host, (COOKIE_HEADER, &good)]);
        assert_eq!(
            status(decide(&post, &uri("/"), &with_cookie, &auth, 0, || true)),
            StatusCode::CONTINUE
        );
        let bearer = headers(&[host, ("authorization", &format!("Bearer {good}"))]);
        assert_eq!(
            status(decide(&get, &uri("/"), &bearer, &auth, 0, || true)),
            StatusCode::CONTINUE
        );
        let basic = headers(&[host, ("authorization", &format!("Basic {good}"))]);
        assert_eq!(
            status(decide(&get, &uri("/"), &basic, &auth, 0, || true)),
            StatusCode::UNAUTHORIZED
        );
        // Health and readiness without a credential, and nothing else told.
        assert_eq!(
            decide(&get, &uri("/health"), &headers(&[host]), &auth, 0, || false),
            Decision::Answer(StatusCode::OK, r#"{"status":"alive"}"#.into())
        );
        assert_eq!(
            decide(&get, &uri("/ready"), &headers(&[host]), &auth, 0, || true),
            Decision::Answer(StatusCode::OK, r#"{"ready":true}"#.into())
        );
        assert_eq!(
            decide(&get, &uri("/ready"), &headers(&[host]), &auth, 0, || false),
            Decision::Answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"ready":false}"#.into())
        );
        // A POST to /health is a JSON-RPC call like any other.
        assert_eq!(
            status(decide(
                &post,
                &uri("/health"),
                &headers(&[host]),
                &auth,
                0,
                || true
            )),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn browser_pages_are_refused_even_with_the_credential() {
        let cookie = Cookie::generate();
        let auth = test_auth(&cookie);
        let good = cookie.as_str().to_string();
        let from_page = headers(&[
            ("host", "127.0.0.1:7500"),
            ("origin", "https://example.org"),
            (COOKIE_HEADER, &good),
        ]);
        assert_eq!(
            status(decide(
                &Method::POST,
                &uri("/"),
                &from_page,
                &auth,
                0,
                || true
            )),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(decide(
                &Method::GET,
                &uri("/health"),
                &from_page,
                &auth,
                0,
                || true
            )),
            StatusCode::FORBIDDEN
        );
        // DNS rebinding: a page of evil.example resolved to 127.0.0.1.
        let rebound = headers(&[("host", "evil.example:7500"), (COOKIE_HEADER, &good)]);
        assert_eq!(
            status(decide(&Method::POST, &uri("/"), &rebound, &auth, 0, || {
                true
            })),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn a_page_cannot_probe_health_or_readiness() {
        // A page's `fetch` (no-cors, so no Origin) still carries the
        // Sec-Fetch headers: refused on every path, with or without a cookie.
        let cookie = Cookie::generate();
        let auth = test_auth(&cookie);
        let good = cookie.as_str().to_string();
        for browser in [
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-site", "same-origin"),
        ] {
            for path in ["/health", "/ready", "/"] {
                for method in [Method::GET, Method::POST] {
                    let plain = headers(&[("host", "127.0.0.1:7500"), browser]);
                    let with_cookie =
                        headers(&[("host", "127.0.0.1:7500"), browser, (COOKIE_HEADER, &good)]);
                    for h in [plain, with_cookie] {
                        assert_eq!(
                            status(decide(&method, &uri(path), &h, &auth, 0, || true)),
                            StatusCode::FORBIDDEN,
                            "{method} {path} {browser:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn no_host_and_no_authority_is_refused() {
        let cookie = Cookie::generate();
        let auth = test_auth(&cookie);
        let good = cookie.as_str().to_string();
        let no_host = headers(&[(COOKIE_HEADER, &good)]);
        assert_eq!(
            status(decide(
                &Method::GET,
                &uri("/health"),
                &no_host,
                &auth,
                0,
                || true
            )),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(decide(&Method::POST, &uri("/"), &no_host, &auth, 0, || {
                true
            })),
            StatusCode::FORBIDDEN
        );
        // HTTP/2 names the host in the URI's authority instead.
        assert_eq!(
            status(decide(
                &Method::POST,
                &uri("http://127.0.0.1:7500/"),
                &no_host,
                &auth,
                0,
                || true
            )),
            StatusCode::CONTINUE
        );
        assert_eq!(
            status(decide(
                &Method::POST,
                &uri("http://evil.example:7500/"),
                &no_host,
                &auth,
                0,
                || true
            )),
            StatusCode::FORBIDDEN
        );
        // A Host that is not text is no loopback host either.
        let mut binary = headers(&[(COOKIE_HEADER, &good)]);
        binary.insert(
            "host",
            HeaderValue::from_bytes(b"127.0.0.1\xff").expect("opaque header"),
        );
        assert_eq!(
            status(decide(&Method::POST, &uri("/"), &binary, &auth, 0, || true)),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn a_single_body_that_is_json_but_no_request_is_an_invalid_request() {
        let invalid = |b: &str| invalid_request(b.as_bytes());
        let code_and_id = |b: &str| {
            let v: serde_json::Value =
                serde_json::from_str(&invalid(b).expect("an error answer")).expect("json");
            (v["error"]["code"].as_i64(), v["id"].clone())
        };
        // The specification's example, and other shapes of one.
        assert_eq!(
            code_and_id(r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#),
            (Some(-32600), serde_json::Value::Null)
        );
        assert_eq!(code_and_id("1").0, Some(-32600));
        assert_eq!(code_and_id(r#""text""#).0, Some(-32600));
        assert_eq!(
            code_and_id(r#"{"jsonrpc":"1.0","method":"status","id":7}"#),
            (Some(-32600), serde_json::json!(7))
        );
        assert_eq!(
            code_and_id(r#"{"jsonrpc":"2.0","method":"status","params":3,"id":"a"}"#),
            (Some(-32600), serde_json::json!("a"))
        );
        assert_eq!(
            code_and_id(r#"{"jsonrpc":"2.0","method":"status","id":{}}"#),
            (Some(-32600), serde_json::Value::Null)
        );
        // An id jsonrpsee cannot carry made it a notification: silence.
        for id in [
            "-1",
            "-2",
            "1.5",
            "1e3",
            "1.0",
            "18446744073709551616",
            "[1]",
            "true",
            "false",
            "{}",
        ] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","method":"chain_block","params":[1],"id":{id}}}"#);
            assert_eq!(
                code_and_id(&body),
                (Some(-32600), serde_json::Value::Null),
                "{body}"
            );
        }
        // Params that are neither an array nor an object, with or without an id.
        for params in ["3", r#""bar""#, "true"] {
            let call = format!(r#"{{"jsonrpc":"2.0","method":"status","params":{params},"id":9}}"#);
            assert_eq!(code_and_id(&call), (Some(-32600), serde_json::json!(9)));
            let notification =
                format!(r#"{{"jsonrpc":"2.0","method":"status","params":{params}}}"#);
            assert_eq!(code_and_id(&notification).0, Some(-32600), "{notification}");
        }
        // Requests, notifications, batches and broken JSON go on to jsonrpsee.
        for pass in [
            r#"{"jsonrpc":"2.0","method":"status","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"status"}"#,
            r#" {"jsonrpc":"2.0","method":"chain_block","params":{"height":1},"id":null}"#,
            r#"{"jsonrpc":"2.0","method":"chain_block","params":[1],"id":18446744073709551615}"#,
            r#"{"jsonrpc":"2.0","method":"chain_block","params":[1],"id":0}"#,
            "[1,2,3]",
            "[]",
            r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            "",
        ] {
            assert_eq!(invalid(pass), None, "{pass}");
        }
    }

    #[test]
    fn batch_entries_with_ids_jsonrpsee_cannot_carry_are_invalid_requests() {
        let batch = r#"[{"jsonrpc":"2.0","method":"status","id":1},
            {"jsonrpc":"2.0","method":"status","id":-1},
            {"jsonrpc":"2.0","method":"status"},
            {"jsonrpc":"2.0","method":"status","id":1.5}]"#;
        let Checked::Rewritten(body) = check_body(batch.as_bytes()) else {
            panic!("the batch is rewritten");
        };
        let entries: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0]["id"], serde_json::json!(1));
        assert_eq!(entries[1], serde_json::json!(0));
        assert_eq!(entries[2]["method"], serde_json::json!("status"));
        assert!(entries[2].get("id").is_none());
        assert_eq!(entries[3], serde_json::json!(0));
        // Batches without such entries, and single bodies, go on unchanged.
        for pass in [
            r#"[{"jsonrpc":"2.0","method":"status","id":"a"},{"jsonrpc":"2.0","method":"status"}]"#,
            "[1,2]",
            "[",
            r#"{"jsonrpc":"2.0","method":"status","id":1}"#,
        ] {
            assert_eq!(check_body(pass.as_bytes()), Checked::Pass, "{pass}");
        }
        assert!(matches!(
            check_body(br#"{"jsonrpc":"2.0","method":"status","id":-1}"#),
            Checked::Answer(_)
        ));
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:7500",
            "localhost:1",
            "[::1]:7500",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "10.0.0.1:7500",
            "127.0.0.1.evil.example",
            "localhost.evil:80",
            "[::2]:1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_user_logs_in_and_calls_with_the_session_and_is_named() {
        let cookie = Cookie::generate();
        let auth = test_auth(&cookie);
        let made = auth
            .add_user("nurse-kim", qward_core::api::UserRole::ReadOnly, 0)
            .expect("a user");
        let host = ("host", "127.0.0.1:7500");
        let login = |cred: &str, now| {
            decide(
                &Method::POST,
                &uri("/login"),
                &headers(&[host, ("authorization", &format!("Bearer {cred}"))]),
                &auth,
                now,
                || true,
            )
        };
        let Decision::Answer(StatusCode::OK, body) = login(&made.credential, 1_000) else {
            panic!("the login was refused");
        };
        let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
        let session = answer["session"].as_str().expect("a session").to_string();
        assert_eq!(answer["role"], "read_only");
        let call = |now| {
            decide(
                &Method::POST,
                &uri("/"),
                &headers(&[host, ("authorization", &format!("Bearer {session}"))]),
                &auth,
                now,
                || true,
            )
        };
        match call(2_000) {
            Decision::Pass(caller) => assert_eq!(caller.principal.user, "nurse-kim"),
            other => panic!("{other:?}"),
        }
        // Idle past the node's 60 s: locked, named, and refused.
        match call(70_000) {
            Decision::Refused(AuthError::Locked { .. }, Some(user)) => {
                assert_eq!(user, "nurse-kim")
            }
            other => panic!("{other:?}"),
        }
        // A wrong credential at the login is refused and names whom it tried.
        let (name, _) = made.credential.split_once(':').expect("name:secret");
        match login(&format!("{name}:{}", "00".repeat(32)), 3_000) {
            Decision::Refused(AuthError::WrongCredential(_), Some(user)) => {
                assert_eq!(user, "nurse-kim")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_written_to_the_access_log_are_bounded_per_minute() {
        let budget = RefusalBudget::default();
        let admitted = (0..1000).filter(|_| budget.admit(60_000)).count() as u64;
        assert_eq!(admitted, MAX_REFUSALS_LOGGED_PER_MINUTE);
        assert!(budget.admit(120_000), "a new minute, a new budget");
    }
}
