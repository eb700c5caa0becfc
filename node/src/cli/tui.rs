//! `qward tui`: opens the terminal UI on a running node. Connects to its
//! control API with the cookie, subscribes to every topic, carries the UI's
//! calls and the node's events over the tui crate's channel bridge, and when
//! the node goes away says so and reconnects with backoff. An event that does
//! not decode still reaches the UI (as unreadable, with its type, so the
//! views it touches are asked for again); a subscription the client dropped
//! for falling behind is made again and the UI refreshes everything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use jsonrpsee::core::ClientError;
use jsonrpsee::core::client::{Subscription, SubscriptionClientT, SubscriptionCloseReason};
use jsonrpsee::rpc_params;
use qward_core::api::{Call, Event, Reply, method};
use qward_tui::{Bridge, Incoming, Request, Theme};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::api::{ApiClient, Cookie, QwardApiClient};
use crate::datadir::DataDir;

/// The node's events, undecoded: one that does not decode as an [`Event`]
/// must still be seen (see [`incoming_event`]).
type Events = Subscription<Value>;

/// Open the terminal UI on a running node.
#[derive(Debug, Args)]
pub struct TuiArgs {
    /// The node's control API, e.g. ws://127.0.0.1:7500 (default: the
    /// `api_port` of the data directory's config.toml).
    #[arg(long, value_name = "URL", requires = "cookie")]
    pub api: Option<String>,
    /// The API cookie file (default: <data-dir>/api.cookie).
    #[arg(long, value_name = "FILE")]
    pub cookie: Option<PathBuf>,
    /// Draw without colours (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// Lock the screen after this many seconds without a key press; it
    /// then asks for the node's passphrase (default: the node's
    /// `api_idle_logoff_s`; 0: never). Needs the data directory.
    #[arg(long, value_name = "SECONDS")]
    pub lock_after: Option<u64>,
}

/// Where the node's API is and how to prove we may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `Some` when given with `--api`; otherwise read from config.toml at
    /// each connection attempt (the node may have been reconfigured).
    pub url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub cookie_file: PathBuf,
}

impl Endpoint {
    /// From the flags: `--api URL --cookie FILE`, or the data directory.
    pub fn resolve(args: &TuiArgs, data_dir: Option<PathBuf>) -> anyhow::Result<Endpoint> {
        if let Some(url) = &args.api {
            let cookie_file = args.cookie.clone().context("--api needs --cookie FILE")?;
            return Ok(Endpoint {
                url: Some(url.clone()),
                data_dir: None,
                cookie_file,
            });
        }
        let dir = DataDir::resolve(data_dir)?;
        // Fail early, with the reason, if this is not a data directory.
        dir.load_config().with_context(|| {
            format!("cannot read the node's config in {}", dir.root().display())
        })?;
        let cookie_file = args.cookie.clone().unwrap_or_else(|| dir.cookie_file());
        Ok(Endpoint {
            url: None,
            data_dir: Some(dir.root().to_path_buf()),
            cookie_file,
        })
    }

    /// The WebSocket URL to try now.
    pub fn url(&self) -> anyhow::Result<String> {
        match (&self.url, &self.data_dir) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(dir)) => {
                let config = DataDir::new(dir).load_config()?;
                Ok(format!("ws://127.0.0.1:{}", config.api_port))
            }
            (None, None) => anyhow::bail!("no API url and no data directory"),
        }
    }

    async fn connect(&self) -> anyhow::Result<(ApiClient, Events)> {
        let url = self.url()?;
        // The node writes a fresh cookie at each start: read it every time.
        let cookie = Cookie::read(&self.cookie_file)?;
        // The client waits as long as the longest call may take (a verify
        // of a long chain); `call` bounds every other call itself.
        let client = ApiClient::connect_with_timeout(&url, &cookie, LONGEST_CALL).await?;
        let events = subscribe(&client).await?;
        Ok((client, events))
    }
}

/// Subscribes to every topic the UI shows.
async fn subscribe(client: &ApiClient) -> anyhow::Result<Events> {
    client
        .subscribe::<Value, _>(
            method::SUBSCRIBE,
            rpc_params![qward_tui::TOPICS.to_vec()],
            method::UNSUBSCRIBE,
        )
        .await
        .map_err(crate::api::call_error)
        .context("cannot subscribe to the node's events")
}

/// An event as the UI gets it: decoded, or unreadable with its `type` (when
/// that much can be read) and the reason.
fn incoming_event(value: Value) -> Incoming {
    let kind = value.get("type").and_then(Value::as_str).map(String::from);
    match serde_json::from_value::<Event>(value) {
        Ok(event) => Incoming::Event(event),
        Err(e) => Incoming::UnreadableEvent {
            kind,
            reason: e.to_string(),
        },
    }
}

/// How long `chain_verify` may take: a whole chain, reported as it goes
/// by `verify_progress` events.
const LONGEST_CALL: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Makes one of the UI's calls through the typed client; a failure reads
/// as the node's message, and a timeout names the call. Every call but
/// `chain_verify` gets the usual call timeout.
async fn call(client: &ApiClient, call: Call) -> Result<Reply, String> {
    let name = call.method();
    let limit = match call {
        Call::ChainVerify => LONGEST_CALL,
        _ => crate::api::client::DEFAULT_CALL_TIMEOUT,
    };
    match tokio::time::timeout(limit, answer(client, call)).await {
        Ok(result) => result.map_err(|e| call_failure(name, &e)),
        Err(_) => Err(call_failure(name, &ClientError::RequestTimeout)),
    }
}

/// What the UI shows for a failed call of `method`.
fn call_failure(method: &str, e: &ClientError) -> String {
    match e {
        ClientError::RequestTimeout => format!("the node did not answer {method} in time"),
        other => crate::api::error_text(other),
    }
}

async fn answer(client: &ApiClient, call: Call) -> Result<Reply, ClientError> {
    Ok(match call {
        Call::Status => Reply::Status(client.status().await?),
        Call::Peers => Reply::Peers(client.peers().await?),
        Call::ChainMembers => Reply::Members(client.chain_members().await?),
        Call::ChainConsent => Reply::Consents(client.chain_consent().await?),
        Call::ChainVerify => Reply::Verify(client.chain_verify().await?),
        Call::ChainBlocks { from, limit } => Reply::Blocks(client.chain_blocks(from, limit).await?),
        Call::KeySessions => Reply::KeySessions(client.key_sessions().await?),
        Call::Keys => Reply::Keys(client.keys().await?),
        Call::KeyAgree { peer } => Reply::KeyAgree(client.key_agree(peer, Some(false)).await?),
        Call::LinkGet { peer } => Reply::LinkGot(client.link_get(peer).await?),
        Call::LinkSet { link } => Reply::LinkSet(client.link_set(link).await?),
        Call::Inbox => Reply::Inbox(client.inbox().await?),
        Call::Outbox => Reply::Outbox(client.outbox().await?),
        Call::Record { record_id } => Reply::Record(client.record(record_id, None).await?),
        Call::ChainEmergencies => Reply::Emergencies(client.chain_emergencies(None).await?),
        Call::RecordErase { record_id } => Reply::Erased(client.record_erase(record_id).await?),
        Call::Send(p) => Reply::Sent(client.send(p.to, p.kind, p.fhir_json, p.patient).await?),
        Call::ConsentGrant(p) => Reply::ConsentGranted(
            client
                .consent_grant(p.grantee, p.scope, p.expires_at_ms)
                .await?,
        ),
        Call::ConsentRevoke { grantee, scope } => {
            Reply::ConsentRevoked(client.consent_revoke(grantee, scope).await?)
        }
        Call::Logs { limit } => Reply::Logs(client.logs(limit).await?),
    })
}

/// Runs `qward tui`.
pub fn run(args: TuiArgs, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let endpoint = Endpoint::resolve(&args, data_dir)?;
    let lock = screen_lock(&args, &endpoint)?;
    let (bridge, remote) = Bridge::pair();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The UI's requests arrive on a std channel; a thread moves them into tokio.
    let (req_tx, req_rx) = mpsc::channel::<Request>(256);
    let requests = remote.requests;
    std::thread::spawn(move || {
        while let Ok(req) = requests.recv() {
            if req_tx.blocking_send(req).is_err() {
                break;
            }
        }
    });
    let incoming = remote.incoming;
    runtime.spawn(async move { serve(endpoint, incoming, req_rx).await });

    let mut options = qward_tui::Options::default();
    if args.no_color {
        options.theme = Theme::plain();
    }
    if let Some((after, unlocker)) = lock {
        options.lock_after = after;
        options.unlock = Some(("the node's passphrase".into(), unlocker));
    }
    let result = qward_tui::run(bridge, options);
    runtime.shutdown_timeout(Duration::from_millis(500));
    result.context("the terminal UI failed")?;
    Ok(ExitCode::SUCCESS)
}

/// How long the screen may stay idle and what unlocks it: the passphrase of
/// the data directory's data key, checked against `keys/data.key` (so the
/// lock holds even while the node is down). `None` without a data
/// directory, or when locking is off.
fn screen_lock(
    args: &TuiArgs,
    endpoint: &Endpoint,
) -> anyhow::Result<Option<(Duration, qward_tui::Unlocker)>> {
    let Some(dir) = endpoint.data_dir.clone() else {
        return Ok(None);
    };
    let dir = DataDir::new(dir);
    let after = match args.lock_after {
        Some(s) => s,
        None => dir.load_config()?.api_idle_logoff_s,
    };
    if after == 0 {
        return Ok(None);
    }
    let check = move |typed: &str| -> Result<(), String> {
        let passphrase =
            qward_core::vault::Passphrase::new(typed.to_string()).map_err(|e| e.to_string())?;
        crate::vault::unlock(&dir, &passphrase)
            .map(|_| ())
            .map_err(|e| {
                if e.to_string().contains("wrong passphrase") {
                    "wrong passphrase".to_string()
                } else {
                    format!("{e:#}")
                }
            })
    };
    Ok(Some((
        Duration::from_secs(after),
        qward_tui::Unlocker(std::sync::Arc::new(check)),
    )))
}

/// The first and the longest pause between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Connects, forwards, and reconnects until the UI goes away.
async fn serve(
    endpoint: Endpoint,
    incoming: std_mpsc::Sender<Incoming>,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut last_down: Option<String> = None;
    loop {
        match endpoint.connect().await {
            Ok((client, mut events)) => {
                backoff = BACKOFF_MIN;
                if incoming.send(Incoming::Connected).is_err() {
                    return;
                }
                let reason = loop {
                    tokio::select! {
                        event = events.next() => match event {
                            Some(Ok(value)) => {
                                if incoming.send(incoming_event(value)).is_err() {
                                    return;
                                }
                            }
                            Some(Err(e)) => {
                                // Not JSON at all (the client checks that
                                // much): unreadable, of no known type.
                                let unreadable = Incoming::UnreadableEvent {
                                    kind: None,
                                    reason: e.to_string(),
                                };
                                if incoming.send(unreadable).is_err() {
                                    return;
                                }
                            }
                            None if matches!(
                                events.close_reason(),
                                Some(SubscriptionCloseReason::Lagged)
                            ) => {
                                // The client dropped the subscription when
                                // its buffer filled: events were lost, the
                                // node was not.
                                match subscribe(&client).await {
                                    Ok(again) => {
                                        events = again;
                                        if incoming.send(Incoming::EventsLost).is_err() {
                                            return;
                                        }
                                    }
                                    Err(e) => break crate::cli::describe(&e),
                                }
                            }
                            None => break "the node closed the connection".to_string(),
                        },
                        req = requests.recv() => match req {
                            Some(req) => {
                                let client = client.clone();
                                let incoming = incoming.clone();
                                tokio::spawn(async move {
                                    let id = req.id;
                                    let result = call(&client, req.call).await;
                                    let _ = incoming.send(Incoming::Response { id, result });
                                });
                            }
                            None => return,
                        },
                    }
                };
                if incoming
                    .send(Incoming::Disconnected(reason.clone()))
                    .is_err()
                {
                    return;
                }
                last_down = Some(reason);
            }
            Err(e) => {
                let reason = crate::cli::describe(&e);
                if last_down.as_deref() != Some(reason.as_str()) {
                    if incoming
                        .send(Incoming::Disconnected(reason.clone()))
                        .is_err()
                    {
                        return;
                    }
                    last_down = Some(reason);
                }
            }
        }
        // Wait before retrying; calls made meanwhile fail at once.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                req = requests.recv() => match req {
                    Some(req) => {
                        let result = Err("node unreachable — reconnecting…".to_string());
                        if incoming.send(Incoming::Response { id: req.id, result }).is_err() {
                            return;
                        }
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_flag_needs_no_data_directory() {
        let args = TuiArgs {
            api: Some("ws://127.0.0.1:9".into()),
            cookie: Some("/tmp/c".into()),
            no_color: false,
            lock_after: None,
        };
        let ep = Endpoint::resolve(&args, None).expect("resolves");
        assert_eq!(ep.url().expect("url"), "ws://127.0.0.1:9");
        assert_eq!(ep.cookie_file, PathBuf::from("/tmp/c"));
    }

    #[test]
    fn a_missing_data_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = TuiArgs {
            api: None,
            cookie: None,
            no_color: false,
            lock_after: None,
        };
        let err = Endpoint::resolve(&args, Some(dir.path().join("nope"))).expect_err("no config");
        assert!(
            format!("{err:#}").contains("cannot read the node's config"),
            "{err:#}"
        );
    }

    #[test]
    fn an_event_that_does_not_decode_still_reaches_the_ui_with_its_type() {
        let good = serde_json::json!({"type": "peer_connected", "peer_id": "p"});
        assert_eq!(
            incoming_event(good),
            Incoming::Event(Event::PeerConnected {
                peer_id: "p".into()
            })
        );
        let bad = serde_json::json!({"type": "key_session", "phase": 3});
        let Incoming::UnreadableEvent { kind, reason } = incoming_event(bad) else {
            panic!("unreadable");
        };
        assert_eq!(kind.as_deref(), Some("key_session"));
        assert!(!reason.is_empty());
        let Incoming::UnreadableEvent { kind, .. } = incoming_event(serde_json::json!([1])) else {
            panic!("unreadable");
        };
        assert_eq!(kind, None);
    }

    #[test]
    fn a_timeout_names_the_call() {
        let text = call_failure("chain_verify", &ClientError::RequestTimeout);
        assert_eq!(text, "the node did not answer chain_verify in time");
    }

    #[tokio::test]
    async fn an_absent_node_is_reported_and_calls_fail_fast() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cookie = dir.path().join("api.cookie");
        std::fs::write(&cookie, "ab".repeat(32)).expect("cookie");
        // Port 9 (discard) on loopback: nothing listens there.
        let endpoint = Endpoint {
            url: Some("ws://127.0.0.1:9".into()),
            data_dir: None,
            cookie_file: cookie,
        };
        let (in_tx, in_rx) = std_mpsc::channel();
        let (req_tx, req_rx) = mpsc::channel(8);
        let task = tokio::spawn(serve(endpoint, in_tx, req_rx));
        let first = tokio::task::spawn_blocking(move || {
            let first = in_rx.recv_timeout(Duration::from_secs(10));
            (first, in_rx)
        })
        .await
        .expect("join");
        let (first, in_rx) = first;
        assert!(matches!(first, Ok(Incoming::Disconnected(_))), "{first:?}");
        req_tx
            .send(Request {
                id: 7,
                call: Call::Status,
            })
            .await
            .expect("send");
        let answer =
            tokio::task::spawn_blocking(move || in_rx.recv_timeout(Duration::from_secs(10)))
                .await
                .expect("join");
        assert!(
            matches!(
                answer,
                Ok(Incoming::Response {
                    id: 7,
                    result: Err(_)
                })
            ),
            "{answer:?}"
        );
        drop(req_tx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("serve ends when the UI goes")
            .expect("join");
    }
}
