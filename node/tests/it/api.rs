//! The control API over a real WebSocket on 127.0.0.1: cookie auth, calls,
//! errors, and event subscriptions.

use std::sync::Arc;
use std::time::Duration;

use qward_core::api::{Event, RpcError, Topic};
use qward_node::api::{ApiClient, Cookie, Handler, HandlerFuture, serve};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

struct Echo;

impl Handler for Echo {
    fn call<'a>(&'a self, method: &'a str, params: Value) -> HandlerFuture<'a> {
        Box::pin(async move {
            match method {
                "echo" => Ok(params),
                "fail" => Err(RpcError::refused("refused for the test")),
                other => Err(RpcError::new(
                    RpcError::METHOD_NOT_FOUND,
                    format!("no method {other}"),
                )),
            }
        })
    }
}

async fn start() -> (
    String,
    Cookie,
    broadcast::Sender<Event>,
    watch::Sender<bool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let cookie = Cookie::generate();
    let (events, _) = broadcast::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve(
        listener,
        cookie.clone(),
        Arc::new(Echo),
        events.clone(),
        stop_rx,
    ));
    (url, cookie, events, stop)
}

#[tokio::test]
async fn request_without_the_cookie_is_refused() {
    let (url, _cookie, _events, stop) = start().await;
    let err = ApiClient::connect(&url, &Cookie::generate())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // A plain WebSocket client with no cookie header at all.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    stop.send(true).unwrap();
}

#[tokio::test]
async fn calls_errors_and_subscriptions() {
    let (url, cookie, events, stop) = start().await;
    let (client, mut rx) = ApiClient::connect(&url, &cookie).await.unwrap();
    let v: Value = client.call("echo", json!({"a": 1})).await.unwrap();
    assert_eq!(v, json!({"a": 1}));
    let err = client.call_value("fail", Value::Null).await.unwrap_err();
    assert!(err.to_string().contains("refused for the test"));
    let err = client.call_value("nope", Value::Null).await.unwrap_err();
    assert!(err.to_string().contains("no method nope"));

    client.subscribe(&[Topic::Blocks]).await.unwrap();
    events
        .send(Event::PeerConnected {
            peer_id: "x".into(),
        })
        .unwrap();
    let block = Event::Block {
        height: 5,
        hash: "h".into(),
        txs: 2,
        proposer: "p".into(),
        time_ms: 1,
    };
    events.send(block.clone()).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, block, "only the subscribed topic arrives");
    stop.send(true).unwrap();
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_survives() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
    let (url, cookie, _events, stop) = start().await;
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        qward_core::api::COOKIE_HEADER,
        HeaderValue::from_str(cookie.as_str()).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    for bad in [
        "not json",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"echo\"}",
        "[1,2,3]",
    ] {
        ws.send(Message::text(bad)).await.unwrap();
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("no answer to {bad}")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        assert!(v["error"]["code"].as_i64().unwrap() < 0, "{v}");
    }
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":9,"method":"echo","params":[1]}"#,
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no answer")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&t).unwrap()["result"],
        json!([1])
    );
    stop.send(true).unwrap();
}
