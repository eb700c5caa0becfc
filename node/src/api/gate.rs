//! The HTTP gate in front of the JSON-RPC service, for HTTP requests and
//! WebSocket handshakes alike: browser pages are refused (an `Origin` header,
//! or a `Host` that is not this machine's loopback, as DNS rebinding gives);
//! `GET /health` and `GET /ready` answer without a credential and say nothing
//! else; everything else needs the API cookie, in `x-qward-cookie` or as
//! `Authorization: Bearer`.
//!
//! It also answers one JSON-RPC 2.0 case that jsonrpsee 0.26 gets wrong over
//! HTTP: a single body that is valid JSON but not a request object and has no
//! `id` (the specification's `{"jsonrpc": "2.0", "method": 1, "params":
//! "bar"}`) is an invalid request (-32600), not a parse error (-32700); and
//! a notification gets no answer (jsonrpsee sends the body `null`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Method, StatusCode, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use qward_core::api::{COOKIE_HEADER, MAX_FRAME_BYTES};
use serde::Deserialize;
use serde_json::value::RawValue;
use tower::{Layer, Service};

use super::Cookie;

/// Whether the node is ready to serve (synced, enough peers), asked at each
/// `GET /ready`.
pub type ReadyCheck = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the gate does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// On to the JSON-RPC service.
    Pass,
    /// Answered here, with this status and JSON body.
    Answer(StatusCode, &'static str),
}

/// Decides what happens to a request: a pure function of its method, path
/// and headers, and of the node's readiness.
pub fn decide(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    cookie: &Cookie,
    ready: impl FnOnce() -> bool,
) -> Decision {
    // Any page a browser shows sends an Origin with its WebSocket handshakes
    // and its POSTs; nothing of the node's own tools does.
    if headers.contains_key(header::ORIGIN) {
        return Decision::Answer(
            StatusCode::FORBIDDEN,
            r#"{"error":"the control API does not answer web pages"}"#,
        );
    }
    if let Some(host) = headers.get(header::HOST)
        && !is_loopback_host(host.to_str().unwrap_or(""))
    {
        return Decision::Answer(
            StatusCode::FORBIDDEN,
            r#"{"error":"the control API answers only to 127.0.0.1, localhost or [::1]"}"#,
        );
    }
    if method == Method::GET {
        match path {
            "/health" => return Decision::Answer(StatusCode::OK, r#"{"status":"alive"}"#),
            "/ready" => {
                return if ready() {
                    Decision::Answer(StatusCode::OK, r#"{"ready":true}"#)
                } else {
                    Decision::Answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"ready":false}"#)
                };
            }
            _ => {}
        }
    }
    if presented_credential(headers).is_some_and(|c| cookie.matches(c)) {
        Decision::Pass
    } else {
        Decision::Answer(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"missing or wrong API credential: send the data directory's api.cookie in x-qward-cookie or as Authorization: Bearer"}"#,
        )
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

/// The gate as a tower layer for the jsonrpsee server.
#[derive(Clone)]
pub struct GateLayer {
    cookie: Arc<Cookie>,
    ready: ReadyCheck,
}

impl std::fmt::Debug for GateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateLayer").finish_non_exhaustive()
    }
}

impl GateLayer {
    pub fn new(cookie: Cookie, ready: ReadyCheck) -> Self {
        GateLayer {
            cookie: Arc::new(cookie),
            ready,
        }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            cookie: self.cookie.clone(),
            ready: self.ready.clone(),
        }
    }
}

/// The gate around one connection's service.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    cookie: Arc<Cookie>,
    ready: ReadyCheck,
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
        let ready = &self.ready;
        match decide(
            req.method(),
            req.uri().path(),
            req.headers(),
            &self.cookie,
            || ready(),
        ) {
            Decision::Pass if req.method() == Method::POST => {
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
                    if let Some(error) = invalid_request(&bytes) {
                        return answer(StatusCode::OK, error);
                    }
                    let response = inner
                        .call(HttpRequest::from_parts(parts, HttpBody::from(bytes.to_vec())))
                        .await?;
                    no_answer_to_notifications(response).await
                })
            }
            Decision::Pass => Box::pin(self.inner.call(req)),
            Decision::Answer(status, body) => {
                if status != StatusCode::OK {
                    tracing::debug!(%status, path = req.uri().path(), "API gate refused a request");
                }
                Box::pin(std::future::ready(answer(status, body.to_string())))
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
            .body(HttpBody::from(Vec::new()))
            .map_err(BoxError::from);
    }
    Ok(HttpResponse::from_parts(parts, HttpBody::from(bytes.to_vec())))
}

fn answer(status: StatusCode, body: String) -> Result<HttpResponse, BoxError> {
    HttpResponse::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(HttpBody::from(body))
        .map_err(BoxError::from)
}

/// The members of a request object, unparsed.
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

/// The JSON-RPC error answer for a single body that is valid JSON but not a
/// request object (section 4 of the specification), with its `id` where one
/// can be read; `None` for anything else (a request, a batch, or invalid
/// JSON, which jsonrpsee answers correctly).
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
    let starts = |v: Option<&RawValue>, c: &[u8]| {
        v.and_then(|r| r.get().as_bytes().first().copied())
            .is_some_and(|b| c.contains(&b))
    };
    let id = members.as_ref().and_then(|m| m.id).filter(|id| {
        let t = id.get();
        t == "null" || starts(Some(id), b"\"-0123456789")
    });
    let is_request = members.as_ref().is_some_and(|m| {
        m.jsonrpc.is_some_and(|v| v.get() == r#""2.0""#)
            && starts(m.method, b"\"")
            && (m.params.is_none() || starts(m.params, b"[{"))
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
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn status(d: Decision) -> StatusCode {
        match d {
            Decision::Pass => StatusCode::CONTINUE,
            Decision::Answer(s, _) => s,
        }
    }

    #[test]
    fn the_credential_is_needed_for_everything_but_health_and_ready() {
        let cookie = Cookie::generate();
        let good = cookie.as_str().to_string();
        let host = ("host", "127.0.0.1:7500");
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            status(decide(&post, "/", &headers(&[host]), &cookie, || true)),
            StatusCode::UNAUTHORIZED
        );
        let wrong = headers(&[host, (COOKIE_HEADER, &"ab".repeat(32))]);
        assert_eq!(
            status(decide(&post, "/", &wrong, &cookie, || true)),
            StatusCode::UNAUTHORIZED
        );
        let with_cookie = headers(&[host, (COOKIE_HEADER, &good)]);
        assert_eq!(
            decide(&post, "/", &with_cookie, &cookie, || true),
            Decision::Pass
        );
        let bearer = headers(&[host, ("authorization", &format!("Bearer {good}"))]);
        assert_eq!(decide(&get, "/", &bearer, &cookie, || true), Decision::Pass);
        let basic = headers(&[host, ("authorization", &format!("Basic {good}"))]);
        assert_eq!(
            status(decide(&get, "/", &basic, &cookie, || true)),
            StatusCode::UNAUTHORIZED
        );
        // Health and readiness without a credential, and nothing else told.
        assert_eq!(
            decide(&get, "/health", &headers(&[host]), &cookie, || false),
            Decision::Answer(StatusCode::OK, r#"{"status":"alive"}"#)
        );
        assert_eq!(
            decide(&get, "/ready", &headers(&[host]), &cookie, || true),
            Decision::Answer(StatusCode::OK, r#"{"ready":true}"#)
        );
        assert_eq!(
            decide(&get, "/ready", &headers(&[host]), &cookie, || false),
            Decision::Answer(StatusCode::SERVICE_UNAVAILABLE, r#"{"ready":false}"#)
        );
        // A POST to /health is a JSON-RPC call like any other.
        assert_eq!(
            status(decide(&post, "/health", &headers(&[host]), &cookie, || true)),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn browser_pages_are_refused_even_with_the_credential() {
        let cookie = Cookie::generate();
        let good = cookie.as_str().to_string();
        let from_page = headers(&[
            ("host", "127.0.0.1:7500"),
            ("origin", "https://example.org"),
            (COOKIE_HEADER, &good),
        ]);
        assert_eq!(
            status(decide(&Method::POST, "/", &from_page, &cookie, || true)),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(decide(&Method::GET, "/health", &from_page, &cookie, || true)),
            StatusCode::FORBIDDEN
        );
        // DNS rebinding: a page of evil.example resolved to 127.0.0.1.
        let rebound = headers(&[("host", "evil.example:7500"), (COOKIE_HEADER, &good)]);
        assert_eq!(
            status(decide(&Method::POST, "/", &rebound, &cookie, || true)),
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
        // Requests, notifications, batches and broken JSON go on to jsonrpsee.
        for pass in [
            r#"{"jsonrpc":"2.0","method":"status","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"status"}"#,
            r#" {"jsonrpc":"2.0","method":"chain_block","params":{"height":1},"id":null}"#,
            r#"{"jsonrpc":"2.0","method":"chain_block","params":[1],"id":-2}"#,
            "[1,2,3]",
            "[]",
            r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            "",
        ] {
            assert_eq!(invalid(pass), None, "{pass}");
        }
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
}
