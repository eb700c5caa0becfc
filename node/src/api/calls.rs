//! The JSON-RPC middleware every call passes through, over HTTP and
//! WebSocket alike: a bound on the calls one connection has in flight
//! (jsonrpsee spawns a task per WebSocket frame and would run them all at
//! once), `params` that is neither an array nor an object refused as an
//! invalid request (-32600), notifications run for their effect (jsonrpsee
//! would drop them) with their answer discarded, and the caller the gate
//! let in (`auth::Caller`) checked at every call: a user's session must
//! still be open (a WebSocket outlives the idle time otherwise), and their
//! role must allow the method (`auth::allowed`), else -32000 with why.

use std::sync::Arc;

use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, Request, RpcServiceT};
use jsonrpsee::server::{BatchResponseBuilder, MethodResponse};
use jsonrpsee::types::{ErrorCode, ErrorObject, Id, TwoPointZero};
use qward_core::api::{MAX_FRAME_BYTES, method};
use tokio::sync::Semaphore;

use super::auth::{Auth, Caller, allowed};
use super::gate::is_structured;

/// Calls of one connection that run at once.
pub const MAX_CALLS_RUNNING: usize = 32;
/// Calls of one connection running or waiting to run; past that a call is
/// answered "server is busy" (-32009) at once.
pub const MAX_CALLS_ADMITTED: usize = 256;

/// The middleware around one connection's service (jsonrpsee builds one per
/// WebSocket connection and one per HTTP request).
#[derive(Clone, Debug)]
pub struct CallGuard<S> {
    inner: S,
    auth: Option<Arc<Auth>>,
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl<S> CallGuard<S> {
    /// Calls checked against `auth`'s sessions and roles.
    pub fn new(inner: S, auth: Arc<Auth>) -> Self {
        let mut g = Self::with_limits(inner, MAX_CALLS_RUNNING, MAX_CALLS_ADMITTED);
        g.auth = Some(auth);
        g
    }

    /// At most `running` calls at once and `admitted` running or waiting
    /// (no caller checks: for the middleware's own tests).
    pub fn with_limits(inner: S, running: usize, admitted: usize) -> Self {
        CallGuard {
            inner,
            auth: None,
            running: Arc::new(Semaphore::new(running)),
            admitted: Arc::new(Semaphore::new(admitted.max(running))),
        }
    }

    /// Why the caller of `method` may not call it now, if so.
    fn refusal(&self, method: &str, caller: Option<&Caller>) -> Option<String> {
        let auth = self.auth.as_ref()?;
        let Some(caller) = caller else {
            return Some("no caller: the request did not pass the credential check".into());
        };
        if let Some(key) = &caller.session
            && let Err(e) = auth.touch(key, crate::node::clock::now_ms())
        {
            tracing::warn!(user = %caller.principal.user, "API session refused: {e}");
            return Some(e.to_string());
        }
        if !allowed(caller.principal.role, method) {
            tracing::warn!(user = %caller.principal.user, method, "API call refused by role");
            return Some(format!(
                "user '{}' ({}) may not call {method}",
                caller.principal.user,
                caller.principal.role.as_str()
            ));
        }
        None
    }
}

impl<S> CallGuard<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync,
{
    /// One call, checked and bounded.
    async fn run(&self, req: Request<'_>) -> MethodResponse {
        if !is_structured(req.params.as_deref()) {
            return MethodResponse::error(req.id, ErrorObject::from(ErrorCode::InvalidRequest));
        }
        if let Some(why) = self.refusal(&req.method, req.extensions.get::<Caller>()) {
            let code = i32::try_from(qward_core::api::RpcError::REFUSED).unwrap_or(-32000);
            return MethodResponse::error(req.id, ErrorObject::owned(code, why, None::<()>));
        }
        let Ok(_admitted) = self.admitted.try_acquire() else {
            return MethodResponse::error(req.id, ErrorObject::from(ErrorCode::ServerIsBusy));
        };
        let Ok(_running) = self.running.acquire().await else {
            return MethodResponse::error(req.id, ErrorObject::from(ErrorCode::ServerIsBusy));
        };
        self.inner.call(req).await
    }

    /// A notification runs as a call whose answer nobody reads. Not the
    /// subscription methods: their answer is the point of them.
    async fn notify(&self, n: Notification<'_>) {
        if !is_structured(n.params.as_deref())
            || n.method == method::SUBSCRIBE
            || n.method == method::UNSUBSCRIBE
        {
            return;
        }
        let req = Request {
            jsonrpc: TwoPointZero,
            id: Id::Null,
            method: n.method,
            params: n.params,
            extensions: n.extensions,
        };
        let _ = self.run(req).await;
    }
}

impl<S> RpcServiceT for CallGuard<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move { this.run(req).await }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut answers = BatchResponseBuilder::new_with_limit(MAX_FRAME_BYTES);
            let mut notified = false;
            for entry in batch {
                let answer = match entry {
                    Ok(BatchEntry::Call(req)) => this.run(req).await,
                    Ok(BatchEntry::Notification(n)) => {
                        notified = true;
                        this.notify(n).await;
                        continue;
                    }
                    Err(e) => {
                        let (error, id) = e.into_parts();
                        MethodResponse::error(id, error)
                    }
                };
                if let Err(too_big) = answers.append(answer) {
                    return too_big;
                }
            }
            if answers.is_empty() && notified {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(answers.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            this.notify(n).await;
            MethodResponse::notification()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A service that counts the calls running in it and remembers the most.
    #[derive(Clone, Default)]
    struct Slow {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        ran: Arc<AtomicUsize>,
        release: Arc<tokio::sync::Notify>,
    }

    impl RpcServiceT for Slow {
        type MethodResponse = MethodResponse;
        type NotificationResponse = MethodResponse;
        type BatchResponse = MethodResponse;

        fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
            let this = self.clone();
            async move {
                let n = this.now.fetch_add(1, Ordering::SeqCst) + 1;
                this.most.fetch_max(n, Ordering::SeqCst);
                this.ran.fetch_add(1, Ordering::SeqCst);
                if req.method != "fast" {
                    this.release.notified().await;
                }
                this.now.fetch_sub(1, Ordering::SeqCst);
                MethodResponse::response(
                    req.id,
                    jsonrpsee::server::ResponsePayload::success(true),
                    1024,
                )
            }
        }

        fn batch<'a>(&self, _: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
            std::future::ready(MethodResponse::notification())
        }

        fn notification<'a>(
            &self,
            _: Notification<'a>,
        ) -> impl Future<Output = MethodResponse> + Send + 'a {
            std::future::ready(MethodResponse::notification())
        }
    }

    fn request(method: &'static str, id: u64, params: Option<&'static str>) -> Request<'static> {
        let params = params.map(|p| {
            std::borrow::Cow::Owned(
                serde_json::value::RawValue::from_string(p.into()).expect("raw"),
            )
        });
        Request {
            jsonrpc: TwoPointZero,
            id: Id::Number(id),
            method: method.into(),
            params,
            extensions: Default::default(),
        }
    }

    #[tokio::test]
    async fn one_connection_runs_at_most_the_bound_and_refuses_past_the_queue() {
        let slow = Slow::default();
        let guard = CallGuard::with_limits(slow.clone(), 4, 6);
        let mut calls = Vec::new();
        for id in 0..10 {
            let guard = guard.clone();
            calls.push(tokio::spawn(async move {
                guard.call(request("slow", id, None)).await
            }));
        }
        // Let every call reach the guard.
        tokio::time::timeout(Duration::from_secs(10), async {
            while slow.ran.load(Ordering::SeqCst) < 4 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("four calls start");
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            slow.most.load(Ordering::SeqCst),
            4,
            "never more than 4 at once"
        );
        // Release them all, one by one.
        let mut busy = 0;
        let mut done = 0;
        for call in calls {
            loop {
                slow.release.notify_waiters();
                tokio::task::yield_now().await;
                if call.is_finished() {
                    break;
                }
            }
            let answer = call.await.expect("join");
            if answer.as_error_code() == Some(ErrorCode::ServerIsBusy.code()) {
                busy += 1;
            } else {
                assert!(answer.is_success(), "{}", answer.as_json());
                done += 1;
            }
        }
        assert_eq!((done, busy), (6, 4));
        assert_eq!(slow.most.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn params_neither_array_nor_object_are_an_invalid_request() {
        let slow = Slow::default();
        let guard = CallGuard::with_limits(slow.clone(), MAX_CALLS_RUNNING, MAX_CALLS_ADMITTED);
        for params in ["3", "\"bar\"", "true"] {
            let answer = guard.call(request("fast", 7, Some(params))).await;
            assert_eq!(answer.as_error_code(), Some(-32600), "{params}");
            let json: serde_json::Value =
                serde_json::from_str(answer.as_json().get()).expect("json");
            assert_eq!(json["id"], serde_json::json!(7));
        }
        for params in ["[1]", "{\"a\":1}", "[]"] {
            assert!(
                guard
                    .call(request("fast", 7, Some(params)))
                    .await
                    .is_success()
            );
        }
        assert!(guard.call(request("fast", 7, None)).await.is_success());
        assert_eq!(slow.ran.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn notifications_run_and_are_not_answered() {
        let slow = Slow::default();
        let guard = CallGuard::with_limits(slow.clone(), MAX_CALLS_RUNNING, MAX_CALLS_ADMITTED);
        let n = Notification::new("fast".into(), None);
        let answer = guard.notification(n).await;
        assert!(answer.is_notification());
        assert_eq!(slow.ran.load(Ordering::SeqCst), 1, "the notification ran");
        // Not with unstructured params, and not the subscription methods.
        let raw = serde_json::value::RawValue::from_string("3".into()).expect("raw");
        let n = Notification::new("fast".into(), Some(std::borrow::Cow::Owned(raw)));
        assert!(guard.notification(n).await.is_notification());
        let n = Notification::new(method::SUBSCRIBE.into(), None);
        assert!(guard.notification(n).await.is_notification());
        assert_eq!(slow.ran.load(Ordering::SeqCst), 1);
        // In a batch: the notification runs, only the call is answered.
        let mut batch = Batch::new();
        batch.push(request("fast", 1, None));
        let mut entries: Vec<_> = batch.into_iter().collect();
        entries.push(Ok(BatchEntry::Notification(Notification::new(
            "fast".into(),
            None,
        ))));
        let answer = guard.batch(Batch::from(entries)).await;
        let json: serde_json::Value = serde_json::from_str(answer.as_json().get()).expect("json");
        assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
        assert_eq!(slow.ran.load(Ordering::SeqCst), 3);
        // A batch of notifications only: no answer at all.
        let only = Batch::from(vec![Ok(BatchEntry::Notification(Notification::new(
            "fast".into(),
            None,
        )))]);
        assert!(guard.batch(only).await.is_notification());
        assert_eq!(slow.ran.load(Ordering::SeqCst), 4);
    }
}
