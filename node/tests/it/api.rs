//! The control-API server over real sockets on 127.0.0.1, with a small
//! module of methods in place of a node: the gate (credential, browser pages,
//! `/health`, `/ready`) over HTTP and WebSocket, error codes kept by the
//! client, and typed event subscriptions filtered by topic. The whole
//! JSON-RPC 2.0 conformance suite runs against a real node in
//! `tests/it/api.rs` of the workspace tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jsonrpsee::RpcModule;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::types::ErrorObjectOwned;
use qward_core::api::{COOKIE_HEADER, Event, RpcError, Topic, method};
use qward_node::api::{
    ApiClient, Cookie, QwardApiClient, ReadyCheck, error_code, error_text, pipe_events, serve,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

struct Running {
    addr: std::net::SocketAddr,
    cookie: Cookie,
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cookie = Cookie::generate();
    let (events, _) = broadcast::channel(64);
    let mut module = RpcModule::new(events.clone());
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
    let task = tokio::spawn(serve(listener, cookie.clone(), module, check, stop_rx));
    Running {
        addr,
        cookie,
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
    let with_cookie = format!("POST / HTTP/1.1\r\n{COOKIE_HEADER}: {}", node.cookie.as_str());
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

    let mut events = client
        .events(vec![Topic::Blocks])
        .await
        .expect("subscribe");
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
