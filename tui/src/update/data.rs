//! Answers and events from the node into the state: decode each result into
//! its API type (a bad answer becomes an error line, never a panic), keep
//! lists ordered, raise and clear the eavesdropper alarm.

use qward_core::api::{
    BlockSummary, ConsentInfo, DeliveryState, Event, KeyInfo, KeySessionInfo, LinkParams, LogLine,
    MemberInfo, MessageInfo, NodeStatus, PeerSummary, SessionPhase, VerifyReport, method,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::effect::Effect;
use crate::state::{
    EveAlarm, MAX_LOG_LINES, MAX_SESSIONS, Notice, RECENT_BLOCKS, RecordPane, State, VerifyState,
};

fn decode<T: DeserializeOwned>(method: &str, value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("unexpected answer to {method}: {e}"))
}

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
    result: Result<Value, String>,
) -> Vec<Effect> {
    let outcome = result.and_then(|v| apply(state, method, v));
    match outcome {
        Ok(effects) => {
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

fn apply(state: &mut State, m: &str, v: Value) -> Result<Vec<Effect>, String> {
    let mut effects = Vec::new();
    match m {
        method::STATUS => {
            let status: NodeStatus = decode(m, v)?;
            let newest = state.blocks.first().map(|b| b.height);
            if newest != Some(status.height) {
                effects.push(blocks_call(status.height));
            }
            state.status = Some(status);
        }
        method::PEERS => {
            state.peers = decode::<Vec<PeerSummary>>(m, v)?;
            clamp(&mut state.peers_sel, state.peers.len());
        }
        method::CHAIN_MEMBERS => state.members = decode::<Vec<MemberInfo>>(m, v)?,
        method::KEY_SESSIONS => {
            let sessions: Vec<KeySessionInfo> = decode(m, v)?;
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
        method::KEYS => state.keys = decode::<Vec<KeyInfo>>(m, v)?,
        method::INBOX => {
            let mut inbox: Vec<MessageInfo> = decode(m, v)?;
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
        method::OUTBOX => {
            let mut outbox: Vec<MessageInfo> = decode(m, v)?;
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
        method::CHAIN_BLOCKS => {
            let mut blocks: Vec<BlockSummary> = decode(m, v)?;
            blocks.sort_by_key(|b| std::cmp::Reverse(b.height));
            blocks.truncate(RECENT_BLOCKS as usize);
            let before = state.blocks.get(state.blocks_sel).map(|b| b.height);
            state.blocks = blocks;
            keep_selection(&mut state.blocks_sel, before, &state.blocks, |b| b.height);
        }
        method::CHAIN_CONSENT => {
            state.consents = decode::<Vec<ConsentInfo>>(m, v)?;
            let len = state.own_consents().len();
            clamp(&mut state.consent_sel, len);
        }
        method::CHAIN_VERIFY => {
            state.verify = Some(VerifyState::Done(decode::<VerifyReport>(m, v)?))
        }
        method::LOGS => {
            let lines: Vec<LogLine> = decode(m, v)?;
            let skip = lines.len().saturating_sub(MAX_LOG_LINES);
            state.logs = lines.into_iter().skip(skip).collect();
        }
        method::LINK_GET => {
            let link: LinkParams = decode(m, v)?;
            if state.pending_eve_toggle.as_deref() == Some(link.peer.as_str()) {
                state.pending_eve_toggle = None;
                let mut next = link.clone();
                next.eve_fraction = if link.eve_fraction > 0.0 { 0.0 } else { 1.0 };
                effects.push(Effect::call(method::LINK_SET, &next));
                state.links.insert(next.peer.clone(), next);
            } else {
                state.links.insert(link.peer.clone(), link);
            }
        }
        method::LINK_SET => {
            if let Ok(link) = serde_json::from_value::<LinkParams>(v) {
                state.links.insert(link.peer.clone(), link);
            }
            notice(
                state,
                "link updated: the next key agreement on it uses the new channel",
                false,
            );
        }
        method::KEY_AGREE => {
            notice(state, "key agreement started", false);
            effects.push(Effect::call_bare(method::KEY_SESSIONS));
        }
        method::SEND => {
            let to = state
                .compose
                .take()
                .and_then(|f| f.sending_to)
                .map(|a| state.name_of(&a))
                .unwrap_or_default();
            notice(state, format!("record queued for {to}"), false);
            effects.push(Effect::call_bare(method::OUTBOX));
        }
        method::RECORD => {
            let info: MessageInfo = decode(m, v.get("info").cloned().unwrap_or(Value::Null))?;
            let fhir = v
                .get("fhir_json")
                .and_then(Value::as_str)
                .ok_or("unexpected answer to record: no fhir_json")?;
            match state.record.as_mut() {
                Some(pane) if pane.record_id == info.record_id => {
                    pane.content = Some(Ok((info, fhir.to_string())));
                }
                _ => {}
            }
        }
        method::CONSENT_GRANT | method::CONSENT_REVOKE => {
            state.grant = None;
            let what = if m == method::CONSENT_GRANT {
                "grant"
            } else {
                "revocation"
            };
            notice(
                state,
                format!("consent {what} submitted; it takes effect in the next block"),
                false,
            );
            effects.push(Effect::call_bare(method::CHAIN_CONSENT));
        }
        _ => {}
    }
    Ok(effects)
}

/// The `chain_blocks` call for the recent blocks: `from` is the highest
/// block wanted, and the node walks down from it for `limit` blocks.
pub(super) fn blocks_call(height: u64) -> Effect {
    Effect::call(
        method::CHAIN_BLOCKS,
        json!({ "from": height, "limit": RECENT_BLOCKS }),
    )
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
            let mut effects = vec![Effect::call_bare(method::STATUS)];
            if txs > 0 {
                effects.push(Effect::call_bare(method::CHAIN_CONSENT));
                effects.push(Effect::call_bare(method::CHAIN_MEMBERS));
            }
            effects
        }
        Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => {
            vec![
                Effect::call_bare(method::PEERS),
                Effect::call_bare(method::STATUS),
            ]
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
            vec![Effect::call_bare(method::STATUS)]
        }
        Event::KeySession { detail } => match serde_json::from_value::<KeySessionInfo>(detail) {
            Ok(s) => {
                let finished = matches!(s.phase, SessionPhase::Done | SessionPhase::Aborted);
                note_session(state, s);
                if finished {
                    vec![Effect::call_bare(method::KEYS)]
                } else {
                    Vec::new()
                }
            }
            Err(e) => {
                notice(
                    state,
                    format!("unreadable key-session event from the node: {e}"),
                    true,
                );
                vec![Effect::call_bare(method::KEY_SESSIONS)]
            }
        },
        Event::Message { detail } => match serde_json::from_value::<MessageInfo>(detail) {
            Ok(msg) => {
                let incoming = msg.state == DeliveryState::Received
                    || state.my_account() == Some(msg.to.as_str());
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
            Err(_) => vec![
                Effect::call_bare(method::INBOX),
                Effect::call_bare(method::OUTBOX),
            ],
        },
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
    vec![Effect::call(
        method::RECORD,
        json!({ "record_id": record_id }),
    )]
}
