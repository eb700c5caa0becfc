//! Answers and events from the node into the state: each typed answer into
//! its place (a failed call becomes an error line where the person is
//! looking), keep lists ordered, raise and clear the eavesdropper alarm.

use qward_core::api::{
    Call, DeliveryState, Event, KeySessionInfo, LogLine, Reply, SessionPhase, method,
};

use crate::effect::Effect;
use crate::state::{
    EveAlarm, MAX_LOG_LINES, MAX_SESSIONS, Notice, RECENT_BLOCKS, RecordPane, State, VerifyState,
};

fn notice(state: &mut State, text: impl Into<String>, is_error: bool) {
    state.notice = Some(Notice {
        text: text.into(),
        is_error,
    });
}

/// The answer to a call.
pub(super) fn on_response(
    state: &mut State,
    method: &str,
    result: Result<Reply, String>,
) -> Vec<Effect> {
    match result {
        Ok(reply) => {
            let effects = apply(state, reply);
            state.call_errors.remove(method);
            effects
        }
        Err(e) => {
            on_failure(state, method, &e);
            state.call_errors.insert(method.to_string(), e.clone());
            notice(state, format!("{method} failed: {e}"), true);
            Vec::new()
        }
    }
}

/// A failed call: put the error where the person is looking.
fn on_failure(state: &mut State, m: &str, e: &str) {
    match m {
        method::RECORD => {
            if let Some(pane) = state.record.as_mut() {
                pane.content = Some(Err(e.to_string()));
            }
        }
        method::CHAIN_VERIFY => state.verify = Some(VerifyState::Failed(e.to_string())),
        method::SEND => {
            if let Some(form) = state.compose.as_mut() {
                form.sending_to = None;
                form.error = Some(format!("not sent: {e}"));
            }
        }
        method::CONSENT_GRANT => {
            if let Some(form) = state.grant.as_mut() {
                form.error = Some(format!("not granted: {e}"));
            }
        }
        method::LINK_GET | method::LINK_SET => state.pending_eve_toggle = None,
        _ => {}
    }
}

fn clamp(sel: &mut usize, len: usize) {
    *sel = (*sel).min(len.saturating_sub(1));
}

/// After a list changed (refreshed, or grown at the top), keeps the cursor on
/// the item it was on, found by `key`; a cursor on the first row stays there
/// and so follows the newest item. On a live node blocks and sessions arrive
/// every second: without this the selection would slide under the reader.
fn keep_selection<T, K: PartialEq>(
    sel: &mut usize,
    before: Option<K>,
    list: &[T],
    key: impl Fn(&T) -> K,
) {
    if *sel > 0
        && let Some(k) = before
        && let Some(i) = list.iter().position(|x| key(x) == k)
    {
        *sel = i;
    }
    clamp(sel, list.len());
}

fn apply(state: &mut State, reply: Reply) -> Vec<Effect> {
    let mut effects = Vec::new();
    match reply {
        Reply::Status(status) => {
            let newest = state.blocks.first().map(|b| b.height);
            if newest != Some(status.height) {
                effects.push(blocks_call(status.height));
            }
            state.status = Some(status);
        }
        Reply::Peers(peers) => {
            state.peers = peers;
            clamp(&mut state.peers_sel, state.peers.len());
        }
        Reply::Members(members) => state.members = members,
        Reply::Emergencies(list) => state.emergencies = list,
        Reply::KeySessions(sessions) => {
            let before = state
                .sessions
                .get(state.sessions_sel)
                .map(|s| s.session_id.clone());
            let sel = state.sessions_sel;
            state.sessions.clear();
            let mut sorted = sessions;
            sorted.sort_by_key(|s| s.started_ms);
            for s in sorted {
                note_session(state, s);
            }
            state.sessions_sel = sel;
            keep_selection(&mut state.sessions_sel, before, &state.sessions, |s| {
                s.session_id.clone()
            });
        }
        Reply::Keys(keys) => state.keys = keys,
        Reply::Inbox(mut inbox) => {
            inbox.sort_by_key(|m| std::cmp::Reverse(m.created_ms));
            let before = state
                .inbox
                .get(state.inbox_sel)
                .map(|m| m.record_id.clone());
            state.inbox = inbox;
            keep_selection(&mut state.inbox_sel, before, &state.inbox, |m| {
                m.record_id.clone()
            });
        }
        Reply::Outbox(mut outbox) => {
            outbox.sort_by_key(|m| std::cmp::Reverse(m.created_ms));
            let before = state
                .outbox
                .get(state.outbox_sel)
                .map(|m| m.record_id.clone());
            state.outbox = outbox;
            keep_selection(&mut state.outbox_sel, before, &state.outbox, |m| {
                m.record_id.clone()
            });
        }
        Reply::Blocks(mut blocks) => {
            blocks.sort_by_key(|b| std::cmp::Reverse(b.height));
            blocks.truncate(RECENT_BLOCKS as usize);
            let before = state.blocks.get(state.blocks_sel).map(|b| b.height);
            state.blocks = blocks;
            keep_selection(&mut state.blocks_sel, before, &state.blocks, |b| b.height);
        }
        Reply::Consents(consents) => {
            state.consents = consents;
            let len = state.own_consents().len();
            clamp(&mut state.consent_sel, len);
        }
        Reply::Verify(report) => state.verify = Some(VerifyState::Done(report)),
        Reply::Logs(lines) => {
            let skip = lines.len().saturating_sub(MAX_LOG_LINES);
            state.logs = lines.into_iter().skip(skip).collect();
        }
        Reply::LinkGot(link) => {
            if state.pending_eve_toggle.as_deref() == Some(link.peer.as_str()) {
                state.pending_eve_toggle = None;
                let mut next = link.clone();
                next.eve_fraction = if link.eve_fraction > 0.0 { 0.0 } else { 1.0 };
                effects.push(Effect::Call(Call::LinkSet { link: next.clone() }));
                state.links.insert(next.peer.clone(), next);
            } else {
                state.links.insert(link.peer.clone(), link);
            }
        }
        Reply::LinkSet(link) => {
            state.links.insert(link.peer.clone(), link);
            notice(
                state,
                "link updated: the next key agreement on it uses the new channel",
                false,
            );
        }
        Reply::KeyAgree(_) => {
            notice(state, "key agreement started", false);
            effects.push(Effect::Call(Call::KeySessions));
        }
        Reply::Sent(_) => {
            let to = state
                .compose
                .take()
                .and_then(|f| f.sending_to)
                .map(|a| state.name_of(&a))
                .unwrap_or_default();
            notice(state, format!("record queued for {to}"), false);
            effects.push(Effect::Call(Call::Outbox));
        }
        Reply::Record(content) => match state.record.as_mut() {
            Some(pane) if pane.record_id == content.info.record_id => {
                pane.content = Some(Ok((content.info, content.fhir_json)));
            }
            _ => {}
        },
        Reply::Erased(e) => {
            notice(
                state,
                format!(
                    "record {} erased: its key is destroyed; the erasure is submitted to the chain",
                    crate::state::short(&e.record_id)
                ),
                false,
            );
            effects.push(Effect::Call(Call::Inbox));
            effects.push(Effect::Call(Call::Outbox));
        }
        Reply::ConsentGranted(_) | Reply::ConsentRevoked(_) => {
            state.grant = None;
            let what = if matches!(reply, Reply::ConsentGranted(_)) {
                "grant"
            } else {
                "revocation"
            };
            notice(
                state,
                format!("consent {what} submitted; it takes effect in the next block"),
                false,
            );
            effects.push(Effect::Call(Call::ChainConsent));
        }
    }
    effects
}

/// The `chain_blocks` call for the recent blocks: `from` is the highest
/// block wanted, and the node walks down from it for `limit` blocks.
pub(super) fn blocks_call(height: u64) -> Effect {
    Effect::Call(Call::ChainBlocks {
        from: Some(height),
        limit: Some(RECENT_BLOCKS),
    })
}

/// An event that did not decode: say so, and ask again for what an event of
/// its `type` would have changed (everything when the type is unknown).
pub(super) fn on_unreadable_event(
    state: &mut State,
    kind: Option<&str>,
    reason: &str,
) -> Vec<Effect> {
    let what = kind.unwrap_or("unknown");
    notice(
        state,
        format!("unreadable {what} event from the node ({reason}); asked again"),
        true,
    );
    match kind {
        Some("block") => vec![
            Effect::Call(Call::Status),
            Effect::Call(Call::ChainConsent),
            Effect::Call(Call::ChainMembers),
        ],
        Some("peer_connected" | "peer_disconnected") => {
            vec![Effect::Call(Call::Peers), Effect::Call(Call::Status)]
        }
        Some("transaction") => vec![Effect::Call(Call::Status)],
        Some("key_session") => vec![Effect::Call(Call::KeySessions), Effect::Call(Call::Keys)],
        Some("message") => vec![Effect::Call(Call::Inbox), Effect::Call(Call::Outbox)],
        Some("log") => vec![Effect::Call(Call::Logs {
            limit: Some(super::LOG_FETCH_LIMIT),
        })],
        _ => super::refresh_all(),
    }
}

/// Adds or updates a session (newest first) and raises or clears the alarm.
fn note_session(state: &mut State, s: KeySessionInfo) {
    if s.eve_detected {
        state.eve_alarm = Some(EveAlarm {
            session_id: s.session_id.clone(),
            peer: s.peer.clone(),
            peer_name: s.peer_name.clone(),
            qber: s.qber_upper_bound.or(s.qber),
        });
    } else if s.phase == SessionPhase::Done
        && state
            .eve_alarm
            .as_ref()
            .is_some_and(|a| a.peer == s.peer && a.session_id != s.session_id)
    {
        // A later clean key with the same peer: the link is quiet again.
        state.eve_alarm = None;
    }
    let before = state
        .sessions
        .get(state.sessions_sel)
        .map(|x| x.session_id.clone());
    if let Some(existing) = state
        .sessions
        .iter_mut()
        .find(|x| x.session_id == s.session_id)
    {
        *existing = s;
    } else {
        state.sessions.insert(0, s);
        state.sessions.truncate(MAX_SESSIONS);
    }
    keep_selection(&mut state.sessions_sel, before, &state.sessions, |x| {
        x.session_id.clone()
    });
}

/// An event pushed by the node.
pub(super) fn on_event(state: &mut State, event: Event) -> Vec<Effect> {
    match event {
        Event::Block { txs, .. } => {
            let mut effects = vec![Effect::Call(Call::Status)];
            if txs > 0 {
                effects.push(Effect::Call(Call::ChainConsent));
                effects.push(Effect::Call(Call::ChainMembers));
            }
            effects
        }
        Event::VerifyProgress { verified, total } => {
            if let Some(VerifyState::Running { .. }) = state.verify {
                state.verify = Some(VerifyState::Running { verified, total });
            }
            Vec::new()
        }
        Event::Emergency(e) => {
            if state.my_account() == Some(e.patient.as_str()) {
                let who = e
                    .declarer_name
                    .clone()
                    .unwrap_or_else(|| state.name_of(&e.declarer));
                notice(
                    state,
                    format!("EMERGENCY ACCESS to your records by {who}: {}", e.reason),
                    true,
                );
            }
            state
                .emergencies
                .retain(|x| !(x.patient == e.patient && x.declarer == e.declarer));
            state.emergencies.insert(0, e);
            Vec::new()
        }
        Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => {
            vec![Effect::Call(Call::Peers), Effect::Call(Call::Status)]
        }
        Event::Transaction {
            kind,
            accepted,
            reason,
            ..
        } => {
            if !accepted {
                let why = reason.unwrap_or_else(|| "no reason given".into());
                notice(state, format!("transaction {kind} refused: {why}"), true);
            }
            vec![Effect::Call(Call::Status)]
        }
        Event::KeySession(s) => {
            let finished = matches!(s.phase, SessionPhase::Done | SessionPhase::Aborted);
            note_session(state, s);
            if finished {
                vec![Effect::Call(Call::Keys)]
            } else {
                Vec::new()
            }
        }
        Event::Message(msg) => {
            let incoming =
                msg.state == DeliveryState::Received || state.my_account() == Some(msg.to.as_str());
            if incoming && msg.state == DeliveryState::Received {
                let from = msg
                    .from_name
                    .clone()
                    .unwrap_or_else(|| state.name_of(&msg.from));
                notice(state, format!("new record from {from}"), false);
            }
            let list = if incoming {
                &mut state.inbox
            } else {
                &mut state.outbox
            };
            let sel = if incoming {
                &mut state.inbox_sel
            } else {
                &mut state.outbox_sel
            };
            let before = list.get(*sel).map(|x| x.record_id.clone());
            if let Some(existing) = list.iter_mut().find(|x| x.record_id == msg.record_id) {
                *existing = msg;
            } else {
                list.insert(0, msg);
            }
            keep_selection(sel, before, list, |x| x.record_id.clone());
            Vec::new()
        }
        Event::Log { level, line } => {
            state.logs.push_back(LogLine {
                time_ms: state.now_ms,
                level,
                line,
            });
            while state.logs.len() > MAX_LOG_LINES {
                state.logs.pop_front();
            }
            Vec::new()
        }
    }
}

/// Opens the record pane and asks for the record.
pub(super) fn open_record(state: &mut State, record_id: String) -> Vec<Effect> {
    state.record = Some(RecordPane {
        record_id: record_id.clone(),
        content: None,
        raw: false,
        scroll: 0,
    });
    vec![Effect::Call(Call::Record { record_id })]
}
