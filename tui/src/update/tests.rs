//! Tests of `update`: keys, screens, help, answers and events into state,
//! the eavesdropper alarm, reconnect, and the effects of compose, consent,
//! key agreement, Eve toggling, records and verification.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use qward_core::api::{
    Call, ConsentParams, DeliveryState, Event, LinkParams, RecordContent, RecordKindName, Reply,
    SendParams, SessionPhase, TxSubmitted, VerifyReport,
};
use serde_json::{Value, json};

use super::{POLL_INTERVAL_MS, update};
use crate::effect::Effect;
use crate::fixtures::{self, DOCTOR, HOSPITAL, ME, NOW_MS, answer, empty_state, full_state};
use crate::message::Message;
use crate::state::{Connection, Level, Mailbox, Screen, State, VerifyState};

fn key(state: &mut State, code: KeyCode) -> Vec<Effect> {
    update(state, Message::Key(KeyEvent::from(code)))
}

fn typed(state: &mut State, text: &str) {
    for c in text.chars() {
        key(state, KeyCode::Char(c));
    }
}

fn methods(effects: &[Effect]) -> Vec<&str> {
    effects.iter().filter_map(Effect::method).collect()
}

/// The parameters of the `method` call among `effects`, as they go on the
/// wire (by name).
fn params_of(effects: &[Effect], method: &str) -> Value {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Call(call) if call.method() == method => {
                Some(serde_json::to_value(call).expect("json")["params"].clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {method} call in {effects:?}"))
}

#[test]
fn number_keys_and_tab_switch_screens_and_q_quits() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('3'));
    assert_eq!(s.screen, Screen::Keys);
    key(&mut s, KeyCode::Char('7'));
    assert_eq!(s.screen, Screen::Logs);
    key(&mut s, KeyCode::Tab);
    assert_eq!(s.screen, Screen::Overview);
    key(&mut s, KeyCode::BackTab);
    assert_eq!(s.screen, Screen::Logs);
    key(&mut s, KeyCode::Char('8'));
    assert_eq!(s.screen, Screen::Logs, "8 is not a screen");
    assert_eq!(key(&mut s, KeyCode::Char('q')), vec![Effect::Quit]);
}

#[test]
fn ctrl_c_quits_even_inside_a_form() {
    let mut s = full_state();
    s.screen = Screen::Messages;
    key(&mut s, KeyCode::Char('c'));
    assert!(s.compose.is_some());
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(update(&mut s, Message::Key(ctrl_c)), vec![Effect::Quit]);
    // A plain q inside the form is text, not quit.
    key(&mut s, KeyCode::Up);
    assert!(key(&mut s, KeyCode::Char('q')).is_empty());
}

#[test]
fn help_overlay_opens_closes_and_swallows_screen_keys() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('?'));
    assert!(s.show_help);
    key(&mut s, KeyCode::Char('3'));
    assert_eq!(
        s.screen,
        Screen::Overview,
        "keys do not reach the screen under help"
    );
    key(&mut s, KeyCode::Esc);
    assert!(!s.show_help);
    key(&mut s, KeyCode::Char('?'));
    key(&mut s, KeyCode::Char('?'));
    assert!(!s.show_help);
}

#[test]
fn connecting_asks_for_everything_and_status_brings_the_recent_blocks() {
    let mut s = State::new(crate::theme::Theme::plain());
    let effects = update(&mut s, Message::Connected);
    let m = methods(&effects);
    for wanted in [
        "status",
        "peers",
        "chain_members",
        "key_sessions",
        "keys",
        "inbox",
        "outbox",
        "chain_consent",
        "logs",
    ] {
        assert!(m.contains(&wanted), "{wanted} missing from {m:?}");
    }
    let effects = update(
        &mut s,
        Message::Response {
            method: "status",
            result: Ok(Reply::Status(fixtures::status())),
        },
    );
    assert_eq!(
        params_of(&effects, "chain_blocks"),
        json!({ "from": 42, "limit": 20 })
    );
    assert_eq!(s.status.as_ref().map(|st| st.height), Some(42));
}

#[test]
fn reconnect_marks_the_node_down_then_refreshes_everything() {
    let mut s = full_state();
    s.verify = Some(VerifyState::Running {
        verified: 0,
        total: 0,
    });
    assert!(update(&mut s, Message::Disconnected("connection refused".into())).is_empty());
    assert_eq!(s.connection, Connection::Down("connection refused".into()));
    assert_eq!(s.verify, None, "a verify in flight is forgotten");
    assert!(
        update(
            &mut s,
            Message::Tick {
                now_ms: NOW_MS + 60_000
            }
        )
        .is_empty(),
        "no polling while down"
    );
    s.links.insert(
        HOSPITAL.into(),
        LinkParams {
            peer: HOSPITAL.into(),
            distance_km: 10.0,
            loss_db_per_km: 0.2,
            detector_efficiency: 0.9,
            dark_count_prob: 1e-6,
            misalignment: 0.01,
            eve_fraction: 1.0,
        },
    );
    let effects = update(&mut s, Message::Connected);
    assert_eq!(s.connection, Connection::Up);
    assert_eq!(
        s.notice.as_ref().map(|n| n.text.as_str()),
        Some("reconnected to the node")
    );
    assert!(methods(&effects).len() >= 9);
    assert!(
        s.links.is_empty(),
        "a restarted node forgot its link settings; the UI must not show old ones"
    );
}

#[test]
fn ticks_poll_status_and_peers_while_connected() {
    let mut s = full_state();
    assert!(update(&mut s, Message::Tick { now_ms: NOW_MS + 1 }).is_empty());
    let effects = update(
        &mut s,
        Message::Tick {
            now_ms: NOW_MS + POLL_INTERVAL_MS,
        },
    );
    assert_eq!(methods(&effects), vec!["status", "peers"]);
    assert_eq!(s.now_ms, NOW_MS + POLL_INTERVAL_MS);
}

#[test]
fn answers_fill_the_state_and_bad_answers_become_errors() {
    let s = full_state();
    assert_eq!(s.peers.len(), 3);
    assert_eq!(s.members.len(), 4);
    assert_eq!(
        s.sessions.first().map(|x| x.session_id.as_str()),
        Some("s4"),
        "newest session first"
    );
    assert_eq!(
        s.blocks.first().map(|b| b.height),
        Some(42),
        "newest block first"
    );
    assert_eq!(s.inbox.first().map(|m| m.record_id.as_str()), Some("r-1"));
    assert_eq!(s.logs.len(), 6);
    let mut s = full_state();
    update(
        &mut s,
        Message::Response {
            method: "peers",
            result: Err("the node did not answer in time".into()),
        },
    );
    assert_eq!(s.peers.len(), 3, "a failed call keeps what we had");
    assert!(
        s.call_errors
            .get("peers")
            .is_some_and(|e| e.contains("did not answer"))
    );
    answer(&mut s, "peers", Reply::Peers(Vec::new()));
    assert!(s.peers.is_empty());
    assert!(
        !s.call_errors.contains_key("peers"),
        "a good answer clears the error"
    );
    update(
        &mut s,
        Message::Response {
            method: "inbox",
            result: Err("database busy".into()),
        },
    );
    assert_eq!(
        s.call_errors.get("inbox").map(String::as_str),
        Some("database busy")
    );
    assert!(s.notice.as_ref().is_some_and(|n| n.is_error));
}

#[test]
fn events_update_state_or_ask_for_what_changed() {
    let mut s = full_state();
    let e = update(
        &mut s,
        Message::Event(Event::Block {
            height: 43,
            hash: "h".into(),
            txs: 1,
            proposer: "p".into(),
            time_ms: 0,
        }),
    );
    assert_eq!(
        methods(&e),
        vec!["status", "chain_consent", "chain_members"]
    );
    let e = update(
        &mut s,
        Message::Event(Event::PeerDisconnected {
            peer_id: "x".into(),
        }),
    );
    assert_eq!(methods(&e), vec!["peers", "status"]);
    update(
        &mut s,
        Message::Event(Event::Log {
            level: "warn".into(),
            line: "disk slow".into(),
        }),
    );
    assert_eq!(s.logs.back().map(|l| l.line.as_str()), Some("disk slow"));
    for i in 0..600 {
        update(
            &mut s,
            Message::Event(Event::Log {
                level: "info".into(),
                line: format!("l{i}"),
            }),
        );
    }
    assert_eq!(s.logs.len(), crate::state::MAX_LOG_LINES);
    let msg = fixtures::message(
        "r-9",
        RecordKindName::Phr,
        HOSPITAL,
        ME,
        DeliveryState::Received,
        0,
    );
    update(&mut s, Message::Event(Event::Message(msg)));
    assert_eq!(s.inbox.first().map(|m| m.record_id.as_str()), Some("r-9"));
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.text == "new record from st-marys")
    );
    let mut sent = fixtures::message(
        "r-3",
        RecordKindName::Phr,
        ME,
        DOCTOR,
        DeliveryState::Delivered,
        0,
    );
    sent.detail = None;
    update(&mut s, Message::Event(Event::Message(sent)));
    assert_eq!(
        s.outbox
            .iter()
            .find(|m| m.record_id == "r-3")
            .map(|m| m.state),
        Some(DeliveryState::Delivered)
    );
    let e = update(
        &mut s,
        Message::Event(Event::Transaction {
            id: "t".into(),
            kind: "grant_consent".into(),
            accepted: false,
            reason: Some("expired".into()),
        }),
    );
    assert_eq!(methods(&e), vec!["status"]);
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.is_error && n.text.contains("expired"))
    );
}

fn session_event(
    s: &mut State,
    id: &str,
    phase: SessionPhase,
    qber: f64,
    eve: bool,
) -> Vec<Effect> {
    let session = fixtures::session(id, "st-marys", phase, Some(qber), eve);
    update(s, Message::Event(Event::KeySession(session)))
}

#[test]
fn a_key_session_with_eve_detected_raises_the_alarm_and_a_clean_key_clears_it() {
    let mut s = full_state();
    assert!(s.eve_alarm.is_none());
    session_event(&mut s, "s9", SessionPhase::Estimating, 0.02, false);
    assert!(s.eve_alarm.is_none());
    assert_eq!(
        s.sessions.first().map(|x| x.session_id.as_str()),
        Some("s9")
    );
    let effects = session_event(&mut s, "s9", SessionPhase::Aborted, 0.25, true);
    assert_eq!(methods(&effects), vec!["keys"]);
    let alarm = s.eve_alarm.clone().expect("alarm raised");
    assert_eq!(alarm.peer_name.as_deref(), Some("st-marys"));
    assert!(alarm.qber.is_some_and(|q| q > 0.25));
    assert_eq!(
        s.sessions.iter().filter(|x| x.session_id == "s9").count(),
        1,
        "updated in place"
    );
    session_event(&mut s, "s10", SessionPhase::Done, 0.02, false);
    assert!(
        s.eve_alarm.is_none(),
        "a later clean key on the same link clears the alarm"
    );
    session_event(&mut s, "s11", SessionPhase::Aborted, 0.25, true);
    s.screen = Screen::Keys;
    key(&mut s, KeyCode::Char('x'));
    assert!(s.eve_alarm.is_none(), "x acknowledges");
}

#[test]
fn enter_on_a_peer_starts_a_key_agreement() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('2'));
    key(&mut s, KeyCode::Down);
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(
        effects,
        vec![Effect::Call(Call::KeyAgree {
            peer: "12D3Koodr-okafor".into()
        })]
    );
    let effects = update(
        &mut s,
        Message::Response {
            method: "key_agree",
            result: Ok(Reply::KeyAgree(None)),
        },
    );
    assert_eq!(methods(&effects), vec!["key_sessions"]);
}

#[test]
fn e_toggles_eve_on_the_selected_link() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('3'));
    let effects = key(&mut s, KeyCode::Char('e'));
    let peer = "12D3Koodr-okafor";
    assert_eq!(params_of(&effects, "link_get"), json!({ "peer": peer }));
    let link = LinkParams {
        peer: peer.into(),
        distance_km: 20.0,
        loss_db_per_km: 0.2,
        detector_efficiency: 0.2,
        dark_count_prob: 1e-6,
        misalignment: 0.01,
        eve_fraction: 0.0,
    };
    let effects = update(
        &mut s,
        Message::Response {
            method: "link_get",
            result: Ok(Reply::LinkGot(link.clone())),
        },
    );
    let set: LinkParams = serde_json::from_value(params_of(&effects, "link_set")["link"].clone())
        .expect("LinkParams");
    assert_eq!(
        set,
        LinkParams {
            eve_fraction: 1.0,
            ..link.clone()
        }
    );
    assert!(s.pending_eve_toggle.is_none());
    key(&mut s, KeyCode::Char('e'));
    let on = LinkParams {
        eve_fraction: 1.0,
        ..link.clone()
    };
    let effects = update(
        &mut s,
        Message::Response {
            method: "link_get",
            result: Ok(Reply::LinkGot(on.clone())),
        },
    );
    let set: LinkParams = serde_json::from_value(params_of(&effects, "link_set")["link"].clone())
        .expect("LinkParams");
    assert_eq!(set.eve_fraction, 0.0, "a second e turns Eve off");
    // A plain link_get (not a toggle) only records the link.
    let effects = update(
        &mut s,
        Message::Response {
            method: "link_get",
            result: Ok(Reply::LinkGot(on.clone())),
        },
    );
    assert!(effects.is_empty());
}

fn open_compose(s: &mut State) {
    key(s, KeyCode::Char('4'));
    key(s, KeyCode::Char('c'));
}

#[test]
fn compose_flow_reads_the_file_and_sends_its_json() {
    let mut s = full_state();
    open_compose(&mut s);
    key(&mut s, KeyCode::Tab);
    key(&mut s, KeyCode::Right); // other members: st-marys, dr-okafor, audit-office
    key(&mut s, KeyCode::Tab);
    typed(&mut s, "examples/records/amara-phr.json");
    let effects = key(&mut s, KeyCode::Enter);
    let path = std::path::PathBuf::from("examples/records/amara-phr.json");
    assert_eq!(effects, vec![Effect::ReadFile { path: path.clone() }]);
    let fhir = crate::fhir_view::tests::PHR.to_string();
    let effects = update(
        &mut s,
        Message::FileRead {
            path,
            result: Ok(fhir.clone()),
        },
    );
    let params: SendParams =
        serde_json::from_value(params_of(&effects, "send").clone()).expect("SendParams");
    assert_eq!(
        params,
        SendParams {
            to: DOCTOR.into(),
            kind: RecordKindName::Phr,
            fhir_json: fhir,
            patient: None,
        }
    );
    let effects = update(
        &mut s,
        Message::Response {
            method: "send",
            result: Ok(Reply::Sent(fixtures::message(
                "r-5",
                RecordKindName::Phr,
                fixtures::ME,
                DOCTOR,
                DeliveryState::Queued,
                0,
            ))),
        },
    );
    assert!(
        s.compose.is_none(),
        "the form closes once the node took the record"
    );
    assert_eq!(methods(&effects), vec!["outbox"]);
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.text == "record queued for dr-okafor")
    );
}

#[test]
fn compose_refuses_a_file_of_the_wrong_kind_and_shows_send_errors() {
    let mut s = full_state();
    open_compose(&mut s);
    key(&mut s, KeyCode::Right); // kind: report
    key(&mut s, KeyCode::Up); // to File
    typed(&mut s, "phr.json");
    key(&mut s, KeyCode::Enter);
    let effects = update(
        &mut s,
        Message::FileRead {
            path: "phr.json".into(),
            result: Ok(crate::fhir_view::tests::PHR.into()),
        },
    );
    assert!(effects.is_empty());
    let form = s.compose.clone().expect("form stays open");
    assert!(
        form.error
            .is_some_and(|e| e.contains("must be a DiagnosticReport"))
    );
    assert!(form.sending_to.is_none());
    key(&mut s, KeyCode::Enter);
    let effects = update(
        &mut s,
        Message::FileRead {
            path: "phr.json".into(),
            result: Err("No such file".into()),
        },
    );
    assert!(effects.is_empty());
    assert!(
        s.compose
            .as_ref()
            .and_then(|f| f.error.clone())
            .is_some_and(|e| e.contains("No such file"))
    );
    key(&mut s, KeyCode::Enter);
    let report = r#"{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x"}}"#;
    let effects = update(
        &mut s,
        Message::FileRead {
            path: "phr.json".into(),
            result: Ok(report.into()),
        },
    );
    assert_eq!(methods(&effects), vec!["send"]);
    update(
        &mut s,
        Message::Response {
            method: "send",
            result: Err("no consent on the chain".into()),
        },
    );
    assert!(
        s.compose
            .as_ref()
            .and_then(|f| f.error.clone())
            .is_some_and(|e| e.contains("no consent"))
    );
}

#[test]
fn compose_file_picker_lists_a_directory_and_picks_a_file() {
    let mut s = full_state();
    open_compose(&mut s);
    key(&mut s, KeyCode::Up); // File, empty
    let effects = key(&mut s, KeyCode::Enter);
    let dir = std::path::PathBuf::from(crate::forms::DEFAULT_RECORDS_DIR);
    assert_eq!(effects, vec![Effect::ListDir { dir: dir.clone() }]);
    update(
        &mut s,
        Message::DirListed {
            dir: dir.clone(),
            result: Ok(vec!["a.json".into(), "b.json".into()]),
        },
    );
    key(&mut s, KeyCode::Down);
    key(&mut s, KeyCode::Enter);
    let form = s.compose.clone().expect("form open");
    assert!(form.picker.is_none());
    assert_eq!(form.path, dir.join("b.json").display().to_string());
}

#[test]
fn compose_without_members_explains_instead_of_sending() {
    let mut s = empty_state();
    open_compose(&mut s);
    key(&mut s, KeyCode::Up);
    typed(&mut s, "a.json");
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    assert!(
        s.compose
            .and_then(|f| f.error)
            .is_some_and(|e| e.contains("member list is empty"))
    );
}

#[test]
fn consent_grant_and_revoke_produce_their_transactions() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('6'));
    key(&mut s, KeyCode::Char('g'));
    key(&mut s, KeyCode::Right); // st-marys -> dr-okafor
    let effects = key(&mut s, KeyCode::Enter);
    let params: ConsentParams =
        serde_json::from_value(params_of(&effects, "consent_grant").clone()).expect("params");
    assert_eq!(
        params,
        ConsentParams {
            grantee: DOCTOR.into(),
            scope: "records".into(),
            expires_at_ms: Some(NOW_MS + 365 * 86_400_000)
        }
    );
    let effects = update(
        &mut s,
        Message::Response {
            method: "consent_grant",
            result: Ok(Reply::ConsentGranted(TxSubmitted {
                id: "t".into(),
                nonce: 1,
            })),
        },
    );
    assert!(s.grant.is_none());
    assert_eq!(methods(&effects), vec!["chain_consent"]);

    let effects = key(&mut s, KeyCode::Char('r'));
    let params: ConsentParams =
        serde_json::from_value(params_of(&effects, "consent_revoke").clone()).expect("params");
    assert_eq!(
        (params.grantee.as_str(), params.scope.as_str()),
        (DOCTOR, "records")
    );
    key(&mut s, KeyCode::Down);
    assert!(
        key(&mut s, KeyCode::Char('r')).is_empty(),
        "an expired grant is not revoked"
    );
}

#[test]
fn consent_grant_form_checks_its_fields() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('6'));
    key(&mut s, KeyCode::Char('g'));
    key(&mut s, KeyCode::Up); // days
    for _ in 0.."365".len() {
        key(&mut s, KeyCode::Backspace);
    }
    typed(&mut s, "x0"); // letters are ignored in the days field
    assert!(key(&mut s, KeyCode::Enter).is_empty());
    assert!(
        s.grant
            .as_ref()
            .and_then(|g| g.error.clone())
            .is_some_and(|e| e.contains("number of days"))
    );
    key(&mut s, KeyCode::Backspace);
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(
        params_of(&effects, "consent_grant")["expires_at_ms"],
        Value::Null,
        "empty days: no expiry"
    );
}

#[test]
fn enter_on_a_record_fetches_and_shows_it() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('4'));
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(params_of(&effects, "record"), json!({ "record_id": "r-1" }));
    assert!(s.record.as_ref().is_some_and(|r| r.content.is_none()));
    let info = fixtures::message(
        "r-1",
        RecordKindName::Report,
        DOCTOR,
        ME,
        DeliveryState::Received,
        0,
    );
    answer(
        &mut s,
        "record",
        Reply::Record(RecordContent {
            info,
            fhir_json: "{}".into(),
        }),
    );
    assert!(
        s.record
            .as_ref()
            .is_some_and(|r| matches!(&r.content, Some(Ok((_, j))) if j == "{}"))
    );
    key(&mut s, KeyCode::Char('r'));
    assert!(s.record.as_ref().is_some_and(|r| r.raw));
    key(&mut s, KeyCode::Esc);
    assert!(s.record.is_none());
    key(&mut s, KeyCode::Right);
    assert_eq!(s.mailbox, Mailbox::Outbox);
    let effects = key(&mut s, KeyCode::Enter);
    assert_eq!(params_of(&effects, "record"), json!({ "record_id": "r-3" }));
    update(
        &mut s,
        Message::Response {
            method: "record",
            result: Err("no record r-3 in the inbox or outbox".into()),
        },
    );
    assert!(
        s.record
            .as_ref()
            .is_some_and(|r| matches!(r.content, Some(Err(_)))),
        "a failed call shows its error"
    );
}

#[test]
fn v_verifies_the_chain_and_keeps_the_report() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('5'));
    assert_eq!(
        methods(&key(&mut s, KeyCode::Char('v'))),
        vec!["chain_verify"]
    );
    assert_eq!(
        s.verify,
        Some(VerifyState::Running {
            verified: 0,
            total: 0
        })
    );
    // The node's progress events move the bar; a second v waits for the first.
    update(
        &mut s,
        Message::Event(Event::VerifyProgress {
            verified: 20,
            total: 43,
        }),
    );
    assert_eq!(
        s.verify,
        Some(VerifyState::Running {
            verified: 20,
            total: 43
        })
    );
    assert!(key(&mut s, KeyCode::Char('v')).is_empty());
    let report = VerifyReport {
        ok: true,
        height: 42,
        blocks_verified: 43,
        txs_verified: 7,
        failed_height: None,
        reason: None,
    };
    answer(&mut s, "chain_verify", Reply::Verify(report.clone()));
    assert_eq!(s.verify, Some(VerifyState::Done(report)));
    key(&mut s, KeyCode::Char('v'));
    update(
        &mut s,
        Message::Response {
            method: "chain_verify",
            result: Err("db closed".into()),
        },
    );
    assert_eq!(s.verify, Some(VerifyState::Failed("db closed".into())));
}

#[test]
fn logs_filter_by_typed_text_and_level() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('7'));
    key(&mut s, KeyCode::Char('w'));
    assert_eq!(s.log_filter.min_level, Level::Warn);
    assert_eq!(s.filtered_logs().len(), 2);
    key(&mut s, KeyCode::Char('a'));
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "peer 1"); // while typing, digits are text, not screens
    assert_eq!(s.screen, Screen::Logs);
    key(&mut s, KeyCode::Backspace);
    key(&mut s, KeyCode::Backspace);
    key(&mut s, KeyCode::Enter);
    assert!(!s.log_filter.editing);
    assert_eq!(s.filtered_logs().len(), 1);
    key(&mut s, KeyCode::Char('x'));
    assert_eq!(s.filtered_logs().len(), 6);
}

#[test]
fn selections_stay_inside_their_lists() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('2'));
    for _ in 0..10 {
        key(&mut s, KeyCode::Down);
    }
    assert_eq!(s.peers_sel, 2);
    answer(&mut s, "peers", Reply::Peers(Vec::new()));
    assert_eq!(s.peers_sel, 0);
    assert!(key(&mut s, KeyCode::Enter).is_empty(), "no peer, no call");
}

#[test]
fn disconnected_fixture_keeps_data_but_says_the_node_is_down() {
    let s = fixtures::disconnected_state();
    assert!(!s.connected());
    assert_eq!(s.peers.len(), 3, "what we knew stays on screen");
}

#[test]
fn selections_stay_on_their_item_as_a_live_node_adds_blocks_and_sessions() {
    let mut s = full_state();
    // Blocks 42, 41, 40: select 41, then block 43 arrives.
    s.blocks_sel = 1;
    let mut blocks = fixtures::blocks();
    let mut newest = blocks[blocks.len() - 1].clone();
    newest.height = 43;
    blocks.push(newest);
    answer(&mut s, "chain_blocks", Reply::Blocks(blocks.clone()));
    assert_eq!(s.blocks.get(s.blocks_sel).map(|b| b.height), Some(41));
    // A cursor on the newest block follows the newest.
    s.blocks_sel = 0;
    let mut newer = blocks[0].clone();
    newer.height = 44;
    blocks.push(newer);
    answer(&mut s, "chain_blocks", Reply::Blocks(blocks.clone()));
    assert_eq!(s.blocks.get(s.blocks_sel).map(|b| b.height), Some(44));

    // Sessions: the selected one stays selected when a new one starts, and
    // across a full refresh.
    s.sessions_sel = 2;
    let selected = s.sessions[2].session_id.clone();
    session_event(&mut s, "s9", SessionPhase::Handshake, 0.0, false);
    assert_eq!(s.sessions[s.sessions_sel].session_id, selected);
    let all = s.sessions.clone();
    answer(&mut s, "key_sessions", Reply::KeySessions(all));
    assert_eq!(s.sessions[s.sessions_sel].session_id, selected);
    // On the newest session, a new one is followed (as `a` then `e` expect).
    s.sessions_sel = 0;
    session_event(&mut s, "s10", SessionPhase::Handshake, 0.0, false);
    assert_eq!(s.sessions[s.sessions_sel].session_id, "s10");
}

#[test]
fn an_unreadable_event_says_so_and_asks_again_for_what_it_touches() {
    let cases: [(Option<&str>, &[&str]); 8] = [
        (Some("block"), &["status", "chain_consent", "chain_members"]),
        (Some("peer_connected"), &["peers", "status"]),
        (Some("peer_disconnected"), &["peers", "status"]),
        (Some("transaction"), &["status"]),
        (Some("key_session"), &["key_sessions", "keys"]),
        (Some("message"), &["inbox", "outbox"]),
        (Some("log"), &["logs"]),
        (Some("something_new"), &[]),
    ];
    let everything: Vec<&str> = super::refresh_all()
        .iter()
        .filter_map(Effect::method)
        .collect();
    for (kind, expected) in cases {
        let mut s = full_state();
        let e = update(
            &mut s,
            Message::UnreadableEvent {
                kind: kind.map(String::from),
                reason: "missing field `phase`".into(),
            },
        );
        let expected = if expected.is_empty() {
            everything.clone()
        } else {
            expected.to_vec()
        };
        assert_eq!(methods(&e), expected, "{kind:?}");
        let notice = s.notice.as_ref().expect("a notice");
        assert!(notice.is_error, "{kind:?}");
        assert!(
            notice.text.contains("unreadable") && notice.text.contains("missing field `phase`"),
            "{}",
            notice.text
        );
    }
    // An event whose type could not even be read: everything, again.
    let mut s = full_state();
    let e = update(
        &mut s,
        Message::UnreadableEvent {
            kind: None,
            reason: "expected an object".into(),
        },
    );
    assert_eq!(methods(&e), everything);
}

#[test]
fn lost_events_refresh_everything_and_the_node_stays_up() {
    let mut s = full_state();
    let e = update(&mut s, Message::EventsLost);
    let everything: Vec<&str> = super::refresh_all()
        .iter()
        .filter_map(Effect::method)
        .collect();
    assert_eq!(methods(&e), everything);
    assert_eq!(
        s.connection,
        Connection::Up,
        "lost events are not a lost node"
    );
    let notice = s.notice.as_ref().expect("a notice");
    assert!(!notice.is_error && notice.text.contains("refreshed everything"));
}

#[test]
fn an_idle_ui_locks_closes_health_data_and_unlocks_only_with_the_secret() {
    let mut s = full_state();
    s.lock.after_ms = 60_000;
    s.lock.asks_for = "the node's passphrase".into();
    update(&mut s, Message::Tick { now_ms: NOW_MS });
    // A key press keeps it open.
    update(
        &mut s,
        Message::Tick {
            now_ms: NOW_MS + 50_000,
        },
    );
    key(&mut s, KeyCode::Char('2'));
    update(
        &mut s,
        Message::Tick {
            now_ms: NOW_MS + 100_000,
        },
    );
    assert!(s.lock.screen.is_none(), "50 s after a key press");
    s.record = Some(crate::state::RecordPane {
        record_id: "r-1".into(),
        content: None,
        raw: false,
        scroll: 0,
    });
    update(
        &mut s,
        Message::Tick {
            now_ms: NOW_MS + 110_000,
        },
    );
    assert!(s.lock.screen.is_some(), "locked after 60 s idle");
    assert!(s.record.is_none(), "the open record is closed");
    // Keys go to the lock screen, not the screens behind it.
    assert!(
        key(&mut s, KeyCode::Char('q')).is_empty(),
        "q is typed, not quit"
    );
    key(&mut s, KeyCode::Backspace);
    typed(&mut s, "wrong");
    let effects = key(&mut s, KeyCode::Enter);
    let [Effect::Unlock(secret)] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(secret.expose(), "wrong");
    assert!(
        !format!("{effects:?}").contains("wrong"),
        "the secret is never printed"
    );
    assert!(
        key(&mut s, KeyCode::Enter).is_empty(),
        "one check at a time"
    );
    update(&mut s, Message::Unlocked(Err("wrong passphrase".into())));
    let screen = s.lock.screen.as_ref().expect("still locked");
    assert_eq!(screen.error.as_deref(), Some("wrong passphrase"));
    assert!(screen.typed.is_empty() && !screen.checking);
    typed(&mut s, "right");
    key(&mut s, KeyCode::Enter);
    let effects = update(&mut s, Message::Unlocked(Ok(())));
    assert!(s.lock.screen.is_none());
    assert!(
        methods(&effects).contains(&"status"),
        "everything is asked for again"
    );
    update(
        &mut s,
        Message::Tick {
            now_ms: NOW_MS + 500_000,
        },
    );
    assert!(s.lock.screen.is_some());
    let quit = update(
        &mut s,
        Message::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    // Ctrl-C does not quit a locked UI: starting it again would skip the lock.
    assert!(quit.is_empty() && s.lock.screen.is_some());
}

#[test]
fn x_erases_the_selected_record_only_after_y() {
    let mut s = full_state();
    key(&mut s, KeyCode::Char('4'));
    let id = s.inbox[s.inbox_sel].record_id.clone();
    assert!(
        key(&mut s, KeyCode::Char('x')).is_empty(),
        "nothing before the answer"
    );
    assert!(
        s.notice
            .as_ref()
            .is_some_and(|n| n.text.contains("for good"))
    );
    assert!(
        key(&mut s, KeyCode::Char('n')).is_empty(),
        "any other key cancels"
    );
    assert!(s.confirm_erase.is_none());
    key(&mut s, KeyCode::Char('x'));
    let effects = key(&mut s, KeyCode::Char('y'));
    assert_eq!(
        effects,
        vec![Effect::Call(Call::RecordErase {
            record_id: id.clone()
        })]
    );
    let effects = update(
        &mut s,
        Message::Response {
            method: "record_erase",
            result: Ok(Reply::Erased(qward_core::api::ErasureInfo {
                record_id: id,
                sent: false,
                received: true,
                forwards: Vec::new(),
                txs: vec!["ab".into()],
            })),
        },
    );
    assert_eq!(methods(&effects), ["inbox", "outbox"]);
    assert!(s.notice.as_ref().is_some_and(|n| n.text.contains("erased")));
}
