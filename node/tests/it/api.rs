//! The control-API server over real sockets on 127.0.0.1, with a small
//! module of methods in place of a node: the gate (credential, browser pages,
//! `/health`, `/ready`, bounded TCP connections) over HTTP and WebSocket,
//! the calls one WebSocket connection may have in flight, notifications that
//! run, ids and params the specification refuses, error codes kept by the
//! client, and typed event subscriptions filtered by topic. The whole
//! JSON-RPC 2.0 conformance suite runs against a real node in
//! `tests/it/api.rs` of the workspace tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use jsonrpsee::RpcModule;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::types::ErrorObjectOwned;
use qward_core::api::{COOKIE_HEADER, Event, RpcError, Topic, method};
use qward_node::api::gate::GateLayer;
use qward_node::api::{
    ApiClient, Cookie, QwardApiClient, ReadyCheck, error_code, error_text, pipe_events,
    serve_with_gate,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

/// What the test methods share: a counter `bump` raises and `count` reads,
/// and `hold` calls that wait for `release`, counted while they run.
#[derive(Default)]
struct Shared {
    bumps: AtomicU64,
    holding: AtomicUsize,
    most_holding: AtomicUsize,
    release: tokio::sync::Notify,
    released: AtomicBool,
}

struct Running {
    addr: std::net::SocketAddr,
    cookie: Cookie,
    shared: Arc<Shared>,
    events: broadcast::Sender<Event>,
    ready: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    fn ws(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

async fn start() -> Running {
    start_with_connections(qward_node::api::gate::MAX_TCP_CONNECTIONS).await
}

async fn start_with_connections(connections: usize) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cookie = Cookie::generate();
    let (events, _) = broadcast::channel(64);
    let shared = Arc::new(Shared::default());
    let mut module = RpcModule::new(events.clone());
    let s = shared.clone();
    module
        .register_method("bump", move |_, _, _| {
            s.bumps.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ErrorObjectOwned>(true)
        })
        .expect("bump");
    let s = shared.clone();
    module
        .register_method("count", move |_, _, _| {
            Ok::<_, ErrorObjectOwned>(s.bumps.load(Ordering::SeqCst))
        })
        .expect("count");
    let s = shared.clone();
    module
        .register_async_method("hold", move |_, _, _| {
            let s = s.clone();
            async move {
                let now = s.holding.fetch_add(1, Ordering::SeqCst) + 1;
                s.most_holding.fetch_max(now, Ordering::SeqCst);
                while !s.released.load(Ordering::SeqCst) {
                    let wait = s.release.notified();
                    if s.released.load(Ordering::SeqCst) {
                        break;
                    }
                    wait.await;
                }
                s.holding.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ErrorObjectOwned>(true)
            }
        })
        .expect("hold");
    module
        .register_method("echo", |params, _, _| params.parse::<Value>())
        .expect("echo");
    module
        .register_method("fail", |_, _, _| {
            Err::<(), _>(ErrorObjectOwned::owned(
                RpcError::REFUSED as i32,
                "refused for the test",
                None::<()>,
            ))
        })
        .expect("fail");
    module
        .register_subscription(
            method::SUBSCRIBE,
            method::EVENT,
            method::UNSUBSCRIBE,
            |params, pending, events, _| async move {
                let topics: Vec<Topic> = params.one()?;
                pipe_events(pending, topics, events.subscribe()).await
            },
        )
        .expect("subscribe");
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    let check: ReadyCheck = Arc::new(move || flag.load(Ordering::Relaxed));
    let (stop, stop_rx) = watch::channel(false);
    let store: Arc<dyn qward_core::storage::Store + Send + Sync> =
        Arc::new(qward_core::storage::MemStore::new());
    let auth = Arc::new(
        qward_node::api::auth::Auth::load(cookie.clone(), store, Duration::from_secs(60))
            .expect("an empty user book"),
    );
    let gate = GateLayer::with_connection_limit(auth.clone(), None, check, connections);
    let task = tokio::spawn(serve_with_gate(listener, gate, auth, module, stop_rx));
    Running {
        addr,
        cookie,
        shared,
        events,
        ready,
        stop,
        task,
    }
}

/// One HTTP/1.1 request as raw bytes; answers the status code and the body.
async fn http(addr: std::net::SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_connection_without_the_cookie_is_refused() {
    let node = start().await;
    let err = ApiClient::connect(&node.ws(), &Cookie::generate())
        .await
        .expect_err("a wrong cookie");
    assert!(err.to_string().contains("401"), "{err}");
    // A plain WebSocket client with no cookie header at all.
    let err = tokio_tungstenite::connect_async(node.ws().as_str())
        .await
        .expect_err("no cookie");
    assert!(err.to_string().contains("401"), "{err}");
    // And plain HTTP.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}"#;
    let (status, _) = http(node.addr, "POST / HTTP/1.1", call).await;
    assert_eq!(status, 401);
    let with_cookie = format!(
        "POST / HTTP/1.1\r\n{COOKIE_HEADER}: {}",
        node.cookie.as_str()
    );
    let (status, body) = http(node.addr, &with_cookie, call).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["result"],
        json!([1])
    );
    let bearer = format!(
        "POST / HTTP/1.1\r\nAuthorization: Bearer {}",
        node.cookie.as_str()
    );
    assert_eq!(http(node.addr, &bearer, call).await.0, 200);
    node.stop.send(true).expect("stop");
}

#[tokio::test]
async fn a_browser_page_is_refused_even_with_the_cookie() {
    let node = start().await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}"#;
    let from_page = format!(
        "POST / HTTP/1.1\r\nOrigin: https://example.org\r\n{COOKIE_HEADER}: {}",
        node.cookie.as_str()
    );
    assert_eq!(http(node.addr, &from_page, call).await.0, 403);
    // A WebSocket handshake from a page carries an Origin too.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut req = node.ws().into_client_request().expect("request");
    req.headers_mut().insert(
        COOKIE_HEADER,
        HeaderValue::from_str(node.cookie.as_str()).expect("header"),
    );
    req.headers_mut()
        .insert("origin", HeaderValue::from_static("https://example.org"));
    let err = tokio_tungstenite::connect_async(req)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    node.stop.send(true).expect("stop");
}

#[tokio::test]
async fn health_and_ready_answer_without_a_credential_and_tell_nothing_else() {
    let node = start().await;
    assert_eq!(
        http(node.addr, "GET /health HTTP/1.1", "").await,
        (200, r#"{"status":"alive"}"#.to_string())
    );
    assert_eq!(
        http(node.addr, "GET /ready HTTP/1.1", "").await,
        (503, r#"{"ready":false}"#.to_string())
    );
    node.ready.store(true, Ordering::Relaxed);
    assert_eq!(
        http(node.addr, "GET /ready HTTP/1.1", "").await,
        (200, r#"{"ready":true}"#.to_string())
    );
    // Any other GET is an API request and needs the credential.
    assert_eq!(http(node.addr, "GET /status HTTP/1.1", "").await.0, 401);
    node.stop.send(true).expect("stop");
}

#[tokio::test]
async fn calls_keep_their_error_codes_and_events_arrive_typed_by_topic() {
    let node = start().await;
    let client = ApiClient::connect(&node.ws(), &node.cookie)
        .await
        .expect("connect");
    let v: Value = client
        .request("echo", rpc_params![1, "two"])
        .await
        .expect("echo");
    assert_eq!(v, json!([1, "two"]));
    let err = client
        .request::<Value, _>("fail", rpc_params![])
        .await
        .expect_err("fails");
    assert_eq!(error_code(&err), Some(RpcError::REFUSED as i32));
    assert_eq!(error_text(&err), "refused for the test");
    let err = client
        .request::<Value, _>("nope", rpc_params![])
        .await
        .expect_err("no such method");
    assert_eq!(error_code(&err), Some(RpcError::METHOD_NOT_FOUND as i32));

    let mut events = client.events(vec![Topic::Blocks]).await.expect("subscribe");
    // The subscription is live once the server has a receiver for it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while node.events.receiver_count() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("subscribed");
    node.events
        .send(Event::PeerConnected {
            peer_id: "x".into(),
        })
        .expect("send");
    let block = Event::Block {
        height: 5,
        hash: "h".into(),
        txs: 2,
        proposer: "p".into(),
        time_ms: 1,
    };
    node.events.send(block.clone()).expect("send");
    let got = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("decodes");
    assert_eq!(got, block, "only the subscribed topic arrives");
    node.stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), node.task)
        .await
        .expect("the server stops when told")
        .expect("join")
        .expect("served");
}

/// A WebSocket presenting the cookie, for frames the typed client would
/// never send.
async fn raw_ws(
    node: &Running,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut req = node.ws().into_client_request().expect("request");
    req.headers_mut().insert(
        COOKIE_HEADER,
        HeaderValue::from_str(node.cookie.as_str()).expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

/// The next text frame, as JSON.
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures::StreamExt;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = frame {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

#[tokio::test]
async fn a_page_cannot_probe_health_and_a_request_naming_no_host_is_refused() {
    let node = start().await;
    for header in ["Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors"] {
        for path in ["/health", "/ready"] {
            let head = format!("GET {path} HTTP/1.1\r\n{header}");
            assert_eq!(http(node.addr, &head, "").await.0, 403, "{head}");
        }
    }
    // HTTP/1.0 needs no Host: a request without one cannot be told from a
    // rebound page's, so it is refused, on every path.
    for head in ["GET /health HTTP/1.0", "POST / HTTP/1.0"] {
        let mut stream = TcpStream::connect(node.addr).await.expect("connect");
        let request = format!(
            "{head}\r\n{COOKIE_HEADER}: {}\r\nContent-Length: 2\r\n\r\n{{}}",
            node.cookie.as_str()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
            .await
            .expect("in time")
            .expect("read");
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(" 403 "), "{head}: {text}");
    }
    node.stop.send(true).expect("stop");
}

#[tokio::test]
async fn tcp_connections_past_the_bound_get_503_before_any_body_is_read() {
    let node = start_with_connections(2).await;
    let idle_a = TcpStream::connect(node.addr).await.expect("connect");
    let idle_b = TcpStream::connect(node.addr).await.expect("connect");
    // The server takes them in order; give it a moment to take both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"count"}"#;
    let with_cookie = format!(
        "POST / HTTP/1.1\r\n{COOKIE_HEADER}: {}",
        node.cookie.as_str()
    );
    let (status, body) = http(node.addr, &with_cookie, call).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    drop(idle_a);
    drop(idle_b);
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if http(node.addr, &with_cookie, call).await.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "closed connections give their place back");
    node.stop.send(true).expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_websocket_connection_runs_at_most_32_calls_at_once() {
    let node = start().await;
    let client = ApiClient::connect(&node.ws(), &node.cookie)
        .await
        .expect("connect");
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.request::<bool, _>("hold", rpc_params![]).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while node.shared.holding.load(Ordering::SeqCst) < 32 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("32 calls run");
    // The other 8 wait for a place rather than run.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.shared.most_holding.load(Ordering::SeqCst), 32);
    node.shared.released.store(true, Ordering::SeqCst);
    node.shared.release.notify_waiters();
    for call in calls {
        let answer = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("in time")
            .expect("join");
        assert!(answer.expect("answered"));
    }
    assert_eq!(node.shared.most_holding.load(Ordering::SeqCst), 32);
    node.stop.send(true).expect("stop");
}

#[tokio::test]
async fn notifications_run_and_bad_ids_and_params_are_invalid_requests() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let node = start().await;
    let with_cookie = format!(
        "POST / HTTP/1.1\r\n{COOKIE_HEADER}: {}",
        node.cookie.as_str()
    );
    // Over HTTP: a notification runs and gets no answer.
    let (status, body) = http(
        node.addr,
        &with_cookie,
        r#"{"jsonrpc":"2.0","method":"bump"}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (204, ""));
    assert_eq!(node.shared.bumps.load(Ordering::SeqCst), 1);
    // In a batch too, beside a call that is answered.
    let batch = r#"[{"jsonrpc":"2.0","method":"bump"},{"jsonrpc":"2.0","method":"count","id":4}]"#;
    let (status, body) = http(node.addr, &with_cookie, batch).await;
    assert_eq!(status, 200, "{body}");
    let answers: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answers, json!([{"jsonrpc":"2.0","id":4,"result":2}]));
    // Ids jsonrpsee cannot carry, single and in a batch: -32600, id null.
    for id in [
        "-1",
        "1.5",
        "1e3",
        "18446744073709551616",
        "true",
        "[1]",
        "{}",
    ] {
        let call = format!(r#"{{"jsonrpc":"2.0","method":"bump","id":{id}}}"#);
        let (status, body) = http(node.addr, &with_cookie, &call).await;
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{call}: {e}: {body}"));
        assert_eq!(
            (status, &v["error"]["code"], &v["id"]),
            (200, &json!(-32600), &Value::Null),
            "{call}"
        );
        let batch = format!(r#"[{call},{{"jsonrpc":"2.0","method":"count","id":"n"}}]"#);
        let (_, body) = http(node.addr, &with_cookie, &batch).await;
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v[0]["error"]["code"], json!(-32600), "{batch}: {v}");
        assert_eq!(v[0]["id"], Value::Null);
        assert_eq!(v[1]["id"], json!("n"));
    }
    assert_eq!(
        node.shared.bumps.load(Ordering::SeqCst),
        2,
        "none of them ran"
    );
    // Params neither array nor object.
    for params in ["3", r#""bar""#, "true"] {
        let call = format!(r#"{{"jsonrpc":"2.0","method":"count","params":{params},"id":8}}"#);
        let (_, body) = http(node.addr, &with_cookie, &call).await;
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            (&v["error"]["code"], &v["id"]),
            (&json!(-32600), &json!(8)),
            "{call}"
        );
    }

    // Over WebSocket: the same params, answered with their id; a
    // notification runs (no answer: the next frame answers the next call).
    let mut ws = raw_ws(&node).await;
    for params in ["3", r#""bar""#, "true"] {
        let call = format!(r#"{{"jsonrpc":"2.0","method":"count","params":{params},"id":8}}"#);
        ws.send(Message::text(call.clone())).await.expect("send");
        let v = next_json(&mut ws).await;
        assert_eq!(
            (&v["error"]["code"], &v["id"]),
            (&json!(-32600), &json!(8)),
            "{call}: {v}"
        );
    }
    ws.send(Message::text(r#"{"jsonrpc":"2.0","method":"bump"}"#))
        .await
        .expect("send");
    let ran = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let call = r#"{"jsonrpc":"2.0","method":"count","id":"c"}"#;
            ws.send(Message::text(call)).await.expect("send");
            let v = next_json(&mut ws).await;
            assert_eq!(v["id"], json!("c"), "only calls are answered: {v}");
            if v["result"] == json!(3) {
                break;
            }
        }
    })
    .await;
    assert!(ran.is_ok(), "the notification ran");
    node.stop.send(true).expect("stop");
}
