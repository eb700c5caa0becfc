//! The control API of a running node against the JSON-RPC 2.0
//! specification's own examples (section 7: calls by position and by name,
//! a notification, a method that does not exist, invalid JSON, an invalid
//! request, batches, an empty batch, a batch of notifications), with ids
//! and params the specification does not allow, over HTTP with `curl` and
//! over WebSocket; notifications that take effect (`link_set`, then
//! `link_get` shows it); and `/health` and `/ready` as an operator's probe
//! sees them, before and after the node has a peer.

use std::process::Command;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use qward_core::api::COOKIE_HEADER;
use qward_node::datadir::DataDir;
use qward_tests::{TestNet, wait_for};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What the server must answer: one response object (checked by a closure),
/// an array of them, or nothing at all.
enum Expect {
    One(fn(&Value)),
    Many(fn(&[Value])),
    Nothing,
}

fn error_code(v: &Value) -> Option<i64> {
    v["error"]["code"].as_i64()
}

/// The specification's examples, adapted to this API's methods (`status`
/// and `chain_block` for its `subtract`, `sum` and `get_data`).
fn cases() -> Vec<(&'static str, &'static str, Expect)> {
    vec![
        (
            "a call with positional parameters",
            r#"{"jsonrpc": "2.0", "method": "chain_block", "params": [1], "id": 1}"#,
            Expect::One(|v| {
                assert_eq!(v["id"], json!(1));
                assert_eq!(v["result"]["height"], json!(1));
                assert!(v.get("error").is_none());
            }),
        ),
        (
            "a call with named parameters",
            r#"{"jsonrpc": "2.0", "method": "chain_block", "params": {"height": 1}, "id": 3}"#,
            Expect::One(|v| {
                assert_eq!(v["id"], json!(3));
                assert_eq!(v["result"]["height"], json!(1));
            }),
        ),
        (
            "a notification",
            r#"{"jsonrpc": "2.0", "method": "status"}"#,
            Expect::Nothing,
        ),
        (
            "a method that does not exist",
            r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32601));
                assert_eq!(v["id"], json!("1"));
            }),
        ),
        (
            "invalid JSON",
            r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32700));
                assert_eq!(v["id"], Value::Null);
            }),
        ),
        (
            "a batch that is invalid JSON",
            r#"[
  {"jsonrpc": "2.0", "method": "status", "id": "1"},
  {"jsonrpc": "2.0", "method"
]"#,
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32700));
                assert_eq!(v["id"], Value::Null);
            }),
        ),
        (
            "an empty batch",
            "[]",
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32600));
                assert_eq!(v["id"], Value::Null);
            }),
        ),
        (
            "a batch of one invalid request",
            "[1]",
            Expect::Many(|vs| {
                assert_eq!(vs.len(), 1);
                assert_eq!(error_code(&vs[0]), Some(-32600));
                assert_eq!(vs[0]["id"], Value::Null);
            }),
        ),
        (
            "a batch of invalid requests",
            "[1,2,3]",
            Expect::Many(|vs| {
                assert_eq!(vs.len(), 3);
                assert!(vs.iter().all(|v| error_code(v) == Some(-32600)), "{vs:?}");
            }),
        ),
        (
            "a mixed batch",
            r#"[
  {"jsonrpc": "2.0", "method": "status", "id": "1"},
  {"jsonrpc": "2.0", "method": "status"},
  {"jsonrpc": "2.0", "method": "chain_block", "params": [1], "id": "2"},
  {"foo": "boo"},
  {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
  {"jsonrpc": "2.0", "method": "chain_head", "id": "9"}
]"#,
            Expect::Many(|vs| {
                // One answer per call; none for the notification.
                assert_eq!(vs.len(), 5, "{vs:?}");
                let by_id = |id: Value| {
                    vs.iter()
                        .find(|v| v["id"] == id)
                        .unwrap_or_else(|| panic!("no answer with id {id}: {vs:?}"))
                };
                assert!(by_id(json!("1"))["result"]["peer_id"].is_string());
                assert_eq!(by_id(json!("2"))["result"]["height"], json!(1));
                assert_eq!(error_code(by_id(Value::Null)), Some(-32600));
                assert_eq!(error_code(by_id(json!("5"))), Some(-32601));
                assert!(by_id(json!("9"))["result"]["height"].is_u64());
            }),
        ),
        (
            "a batch of notifications",
            r#"[
  {"jsonrpc": "2.0", "method": "status"},
  {"jsonrpc": "2.0", "method": "chain_head"}
]"#,
            Expect::Nothing,
        ),
        (
            "an invalid request",
            r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32600));
                assert_eq!(v["id"], Value::Null);
            }),
        ),
        (
            "params that are a number",
            r#"{"jsonrpc": "2.0", "method": "chain_block", "params": 1, "id": 11}"#,
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32600));
                assert_eq!(v["id"], json!(11));
            }),
        ),
        (
            "params that are a string",
            r#"{"jsonrpc": "2.0", "method": "status", "params": "bar", "id": "12"}"#,
            Expect::One(|v| {
                assert_eq!(error_code(v), Some(-32600));
                assert_eq!(v["id"], json!("12"));
            }),
        ),
        (
            "a batch with params that are a number",
            r#"[{"jsonrpc": "2.0", "method": "chain_block", "params": 1, "id": 13}]"#,
            Expect::Many(|vs| {
                assert_eq!(vs.len(), 1);
                assert_eq!(error_code(&vs[0]), Some(-32600));
                assert_eq!(vs[0]["id"], json!(13));
            }),
        ),
        (
            "an id that is negative",
            r#"{"jsonrpc": "2.0", "method": "status", "id": -1}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id with a fraction",
            r#"{"jsonrpc": "2.0", "method": "status", "id": 1.5}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id with an exponent",
            r#"{"jsonrpc": "2.0", "method": "status", "id": 1e3}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id past 64 bits",
            r#"{"jsonrpc": "2.0", "method": "status", "id": 18446744073709551616}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id that is an object",
            r#"{"jsonrpc": "2.0", "method": "status", "id": {"a": 1}}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id that is an array",
            r#"{"jsonrpc": "2.0", "method": "status", "id": [1]}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id that is a boolean",
            r#"{"jsonrpc": "2.0", "method": "status", "id": true}"#,
            Expect::One(invalid_with_null_id),
        ),
        (
            "an id that is negative, in a batch",
            r#"[{"jsonrpc": "2.0", "method": "status", "id": -1}, {"jsonrpc": "2.0", "method": "status", "id": 2}]"#,
            Expect::Many(|vs| {
                assert_eq!(vs.len(), 2, "{vs:?}");
                assert!(
                    vs.iter()
                        .any(|v| error_code(v) == Some(-32600) && v["id"].is_null())
                );
                assert!(
                    vs.iter()
                        .any(|v| v["id"] == json!(2) && v["result"].is_object())
                );
            }),
        ),
    ]
}

fn invalid_with_null_id(v: &Value) {
    assert_eq!(error_code(v), Some(-32600), "{v}");
    assert_eq!(v["id"], Value::Null, "{v}");
}

/// Cases jsonrpsee decides before any middleware sees them over WebSocket,
/// where no gate can correct it (docs/api.md, "Over WebSocket"): a single
/// valid-JSON non-request is answered -32700, and an id it cannot carry makes
/// the frame a notification.
fn http_only(what: &str) -> bool {
    what == "an invalid request" || what.starts_with("an id ")
}

/// `curl` posting `body` to the node; answers the HTTP status and the body.
fn curl(port: u16, headers: &[String], method: &str, path: &str, body: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if !body.is_empty() {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs (the test scripts install it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The next text frame, as JSON.
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an answer in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(t) = frame {
            return serde_json::from_str(&t).expect("json");
        }
    }
}

fn check(what: &str, answer: Option<Value>, expect: &Expect) {
    match (expect, answer) {
        (Expect::Nothing, None) => {}
        (Expect::Nothing, Some(v)) => panic!("{what}: answered {v} where nothing is due"),
        (Expect::One(f), Some(v)) => {
            assert!(v.is_object(), "{what}: {v}");
            assert_eq!(v["jsonrpc"], json!("2.0"), "{what}: {v}");
            f(&v);
        }
        (Expect::Many(f), Some(Value::Array(vs))) => {
            assert!(vs.iter().all(|v| v["jsonrpc"] == json!("2.0")), "{what}");
            f(&vs);
        }
        (_, other) => panic!("{what}: unexpected answer {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_rpc_specification_examples_pass_over_http_and_websocket() {
    let mut net = TestNet::create(2, 0, 0, 0, 300).expect("devnet");
    net.node("hospital-1").start().expect("start");
    let node = &net.nodes[0];
    let port = node.api_port;
    let cookie_file = DataDir::new(&node.dir).cookie_file();

    // Alone: alive, but not ready (its one peer is not up).
    wait_for("the API", Duration::from_secs(60), || async {
        Ok((curl(port, &[], "GET", "/health", "").0 == 200).then_some(()))
    })
    .await
    .expect("health");
    assert_eq!(
        curl(port, &[], "GET", "/health", ""),
        (200, r#"{"status":"alive"}"#.to_string())
    );
    assert_eq!(
        curl(port, &[], "GET", "/ready", ""),
        (503, r#"{"ready":false}"#.to_string())
    );
    net.node("hospital-2").start().expect("start");
    let node = &net.nodes[0];
    wait_for("readiness with a peer", Duration::from_secs(90), || async {
        Ok((curl(port, &[], "GET", "/ready", "").0 == 200).then_some(()))
    })
    .await
    .expect("ready");
    wait_for("block 1", Duration::from_secs(60), || async {
        Ok((node.status().await?.height >= 1).then_some(()))
    })
    .await
    .expect("a block");

    let cookie = std::fs::read_to_string(&cookie_file).expect("cookie");
    let cookie = cookie.trim().to_string();
    let auth = vec![format!("{COOKIE_HEADER}: {cookie}")];

    // Without the credential, or from a page, no JSON-RPC at all.
    let call = r#"{"jsonrpc": "2.0", "method": "status", "id": 1}"#;
    assert_eq!(curl(port, &[], "POST", "/", call).0, 401);
    let from_page = vec![auth[0].clone(), "Origin: https://example.org".to_string()];
    assert_eq!(curl(port, &from_page, "POST", "/", call).0, 403);
    let bearer = vec![format!("Authorization: Bearer {cookie}")];
    assert_eq!(curl(port, &bearer, "POST", "/", call).0, 200);

    // Over HTTP with curl.
    for (what, body, expect) in cases() {
        let (status, text) = curl(port, &auth, "POST", "/", body);
        assert!(
            status == 200 || status == 204,
            "{what}: HTTP {status}: {text}"
        );
        let answer = if text.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}")))
        };
        check(&format!("HTTP, {what}"), answer, &expect);
    }

    // Over WebSocket: each case, then a call whose answer must be the next
    // frame (so a case due no answer is shown to have had none).
    let mut req = format!("ws://127.0.0.1:{port}")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        COOKIE_HEADER,
        HeaderValue::from_str(&cookie).expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    for (i, (what, body, expect)) in cases().into_iter().enumerate() {
        if http_only(what) {
            continue;
        }
        ws.send(Message::text(body)).await.expect("send");
        if matches!(expect, Expect::Nothing) {
            // Nothing may come back: the next frame answers this marker call.
            let marker = 1_000 + i as u64;
            let call = json!({"jsonrpc": "2.0", "method": "status", "id": marker});
            ws.send(Message::text(call.to_string()))
                .await
                .expect("send");
            let v = next_json(&mut ws).await;
            assert_eq!(v["id"], json!(marker), "WebSocket, {what}: answered {v}");
        } else {
            let v = next_json(&mut ws).await;
            check(&format!("WebSocket, {what}"), Some(v), &expect);
        }
    }
    // Last, nothing left unanswered or answered late.
    let call = json!({"jsonrpc": "2.0", "method": "status", "id": "last"});
    ws.send(Message::text(call.to_string()))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["id"], json!("last"));

    // A notification runs: `link_set` without an id changes the link, as
    // `link_get` then shows; over HTTP at once (the 204 comes after it ran),
    // over WebSocket by the time a later call sees it.
    let peer = net.nodes[1].status().await.expect("status").account;
    let link_get =
        json!({"jsonrpc": "2.0", "method": "link_get", "params": {"peer": peer}, "id": "get"});
    let (status, text) = curl(port, &auth, "POST", "/", &link_get.to_string());
    assert_eq!(status, 200, "{text}");
    let mut link: Value = serde_json::from_str::<Value>(&text).expect("json")["result"].clone();
    assert_eq!(link["peer"], json!(peer), "{text}");
    link["distance_km"] = json!(12.5);
    let notify = json!({"jsonrpc": "2.0", "method": "link_set", "params": {"link": link}});
    let (status, text) = curl(port, &auth, "POST", "/", &notify.to_string());
    assert_eq!(
        (status, text.trim()),
        (204, ""),
        "a notification is not answered"
    );
    let (_, text) = curl(port, &auth, "POST", "/", &link_get.to_string());
    let got: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(got["result"]["distance_km"], json!(12.5), "{text}");

    link["distance_km"] = json!(17.25);
    let notify = json!({"jsonrpc": "2.0", "method": "link_set", "params": {"link": link}});
    ws.send(Message::text(notify.to_string()))
        .await
        .expect("send");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        ws.send(Message::text(link_get.to_string()))
            .await
            .expect("send");
        let v = next_json(&mut ws).await;
        assert_eq!(v["id"], json!("get"), "only calls are answered: {v}");
        if v["result"]["distance_km"] == json!(17.25) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WebSocket notification did not take effect: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
