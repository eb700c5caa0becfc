//! Snapshot tests of `view`: every screen in its normal, empty and error
//! states at 80x24 and 120x40, the overlays, the alarm, and tiny terminals.

use qward_core::api::{RecordKindName, SessionPhase};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::view;
use crate::fixtures::{self, DOCTOR, answer, empty_state, full_state};
use crate::forms::{ComposeField, ComposeForm, FilePicker, GrantForm};
use crate::message::Message;
use crate::state::{RecordPane, Screen, State};
use crate::theme::Theme;
use crate::update::update;

fn render(state: &State, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal.draw(|f| view(state, f)).expect("draw");
    terminal.backend().to_string()
}

fn on(mut state: State, screen: Screen) -> State {
    state.screen = screen;
    state
}

/// The methods each screen reads from.
fn methods_of(screen: Screen) -> &'static [&'static str] {
    match screen {
        Screen::Overview => &["status"],
        Screen::Peers => &["peers"],
        Screen::Keys => &["key_sessions"],
        Screen::Messages => &["inbox", "outbox"],
        Screen::Chain => &["chain_blocks", "chain_members"],
        Screen::Consent => &["chain_consent"],
        Screen::Logs => &["logs"],
    }
}

/// No data, the screen's calls failed, and then the node went away.
fn error_state(screen: Screen) -> State {
    let mut s = empty_state();
    for m in methods_of(screen) {
        update(
            &mut s,
            Message::Response {
                method: m,
                result: Err("the node did not answer within 30s".into()),
            },
        );
    }
    update(&mut s, Message::Disconnected("connection refused".into()));
    on(s, screen)
}

fn slug(screen: Screen) -> &'static str {
    match screen {
        Screen::Overview => "overview",
        Screen::Peers => "peers",
        Screen::Keys => "keys",
        Screen::Messages => "messages",
        Screen::Chain => "chain",
        Screen::Consent => "consent",
        Screen::Logs => "logs",
    }
}

#[test]
fn every_screen_in_normal_empty_and_error_states() {
    for screen in Screen::ALL {
        for (w, h) in [(80, 24), (120, 40)] {
            let name = slug(screen);
            insta::assert_snapshot!(
                format!("{name}_normal_{w}x{h}"),
                render(&on(full_state(), screen), w, h)
            );
            insta::assert_snapshot!(
                format!("{name}_empty_{w}x{h}"),
                render(&on(empty_state(), screen), w, h)
            );
            insta::assert_snapshot!(
                format!("{name}_error_{w}x{h}"),
                render(&error_state(screen), w, h)
            );
        }
    }
}

#[test]
fn screens_show_the_text_people_and_scripts_look_for() {
    let messages = render(&on(full_state(), Screen::Messages), 80, 24);
    assert!(
        messages.contains("PHR") && messages.contains("dr-okafor"),
        "{messages}"
    );
    assert!(messages.contains("FAILED"));
    let down = render(&error_state(Screen::Overview), 80, 24);
    assert!(down.contains("node unreachable — reconnecting…"), "{down}");
    let peers = render(&on(full_state(), Screen::Peers), 80, 24);
    assert!(
        peers.contains("st-marys") && peers.contains("hospital") && peers.contains("3 ms"),
        "{peers}"
    );
}

fn eve_state() -> State {
    let mut s = on(full_state(), Screen::Keys);
    let session = fixtures::session("s5", "st-marys", SessionPhase::Aborted, Some(0.251), true);
    update(
        &mut s,
        Message::Event(qward_core::api::Event::KeySession(session)),
    );
    s
}

#[test]
fn eavesdropper_alarm() {
    let s = eve_state();
    let keys = render(&s, 80, 24);
    assert!(keys.contains("EAVESDROPPER DETECTED"), "{keys}");
    insta::assert_snapshot!("keys_eavesdropper_80x24", keys);
    insta::assert_snapshot!("keys_eavesdropper_120x40", render(&s, 120, 40));
    // The banner follows the person to other screens.
    assert!(render(&on(s, Screen::Messages), 80, 24).contains("EAVESDROPPER DETECTED"));
}

#[test]
fn help_overlay_lists_the_keys() {
    let mut s = full_state();
    s.show_help = true;
    let text = render(&s, 80, 24);
    assert!(
        text.contains("toggle Eve") && text.contains("verify the chain") && text.contains("quit"),
        "{text}"
    );
    insta::assert_snapshot!("help_80x24", text);
    insta::assert_snapshot!("help_120x40", render(&s, 120, 40));
}

#[test]
fn compose_form_and_file_picker() {
    let mut s = on(full_state(), Screen::Messages);
    let mut form = ComposeForm::new(RecordKindName::Phr);
    form.recipient = 1;
    form.field = ComposeField::File;
    form.path = "examples/records/amara-phr.json".into();
    s.compose = Some(form.clone());
    insta::assert_snapshot!("compose_80x24", render(&s, 80, 24));
    form.picker = Some(FilePicker {
        dir: "examples/records".into(),
        files: Some(Ok(vec![
            "amara-phr.json".into(),
            "hba1c-report.json".into(),
        ])),
        sel: 1,
    });
    s.compose = Some(form.clone());
    insta::assert_snapshot!("compose_picker_80x24", render(&s, 80, 24));
    form.picker = None;
    form.error =
        Some("examples/records/x.json is a FHIR Patient, but a PHR must be a Bundle".into());
    s.compose = Some(form);
    let text = render(&s, 120, 40);
    assert!(text.contains("must be a Bundle"));
    insta::assert_snapshot!("compose_error_120x40", text);
}

#[test]
fn grant_form() {
    let mut s = on(full_state(), Screen::Consent);
    s.grant = Some(GrantForm::default());
    let text = render(&s, 80, 24);
    assert!(
        text.contains("dr-okafor") || text.contains("st-marys"),
        "{text}"
    );
    assert!(text.contains("until 2027-11-18"), "{text}");
    insta::assert_snapshot!("consent_grant_80x24", text);
}

fn record_state(raw: bool) -> State {
    let mut s = on(full_state(), Screen::Messages);
    update(
        &mut s,
        Message::Key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Enter,
        )),
    );
    let info = fixtures::message(
        "r-1",
        RecordKindName::Phr,
        DOCTOR,
        fixtures::ME,
        qward_core::api::DeliveryState::Received,
        60_000,
    );
    answer(
        &mut s,
        "record",
        qward_core::api::Reply::Record(qward_core::api::RecordContent {
            info,
            fhir_json: crate::fhir_view::tests::PHR.into(),
        }),
    );
    if let Some(p) = s.record.as_mut() {
        p.raw = raw;
    }
    s
}

#[test]
fn record_pane_is_readable_by_default_and_raw_on_request() {
    let readable = render(&record_state(false), 80, 24);
    assert!(
        readable.contains("Amara Nwosu") && readable.contains("Heart rate: 72 beats/min"),
        "{readable}"
    );
    assert!(
        !readable.contains("resourceType"),
        "raw JSON must not show by default"
    );
    insta::assert_snapshot!("record_80x24", readable);
    insta::assert_snapshot!("record_120x40", render(&record_state(false), 120, 40));
    let raw = render(&record_state(true), 80, 24);
    assert!(raw.contains("resourceType"));
    insta::assert_snapshot!("record_raw_80x24", raw);
    let mut failed = on(full_state(), Screen::Messages);
    failed.record = Some(RecordPane {
        record_id: "r-1".into(),
        content: Some(Err("unknown record r-1".into())),
        raw: false,
        scroll: 0,
    });
    insta::assert_snapshot!("record_error_80x24", render(&failed, 80, 24));
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut states: Vec<State> = Vec::new();
    for screen in Screen::ALL {
        states.push(on(full_state(), screen));
        states.push(on(empty_state(), screen));
        states.push(error_state(screen));
    }
    let mut with_overlays = eve_state();
    with_overlays.show_help = true;
    with_overlays.compose = Some(ComposeForm::new(RecordKindName::Report));
    with_overlays.grant = Some(GrantForm::default());
    states.push(with_overlays);
    states.push(record_state(false));
    for s in &states {
        for (w, h) in [(1, 1), (2, 2), (10, 3), (20, 5), (30, 8), (40, 12)] {
            let text = render(s, w, h);
            assert_eq!(text.lines().count(), usize::from(h));
        }
    }
}

#[test]
fn no_color_theme_draws_without_colours() {
    let mut s = eve_state();
    s.theme = Theme::plain();
    for screen in Screen::ALL {
        s.screen = screen;
        let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("test backend");
        terminal.draw(|f| view(&s, f)).expect("draw");
        for cell in terminal.backend().buffer().content() {
            assert_eq!(
                (cell.fg, cell.bg),
                (Color::Reset, Color::Reset),
                "a coloured cell on {screen:?}"
            );
        }
    }
    s.theme = Theme::colored();
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).expect("test backend");
    terminal.draw(|f| view(&s, f)).expect("draw");
    assert!(
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .any(|c| c.bg == Color::Red),
        "the alarm is red in colour"
    );
}

#[test]
fn an_unreadable_event_and_lost_events_are_shown_not_hidden() {
    let mut state = on(full_state(), Screen::Messages);
    update(
        &mut state,
        Message::UnreadableEvent {
            kind: Some("message".into()),
            reason: "missing field `state`".into(),
        },
    );
    let screen = render(&state, 120, 40);
    assert!(screen.contains("unreadable message event"), "{screen}");
    update(&mut state, Message::EventsLost);
    let screen = render(&state, 120, 40);
    assert!(screen.contains("refreshed everything"), "{screen}");
    assert!(!screen.contains("unreachable"), "{screen}");
}

#[test]
fn this_nodes_key_running_twice_is_a_banner_on_every_screen() {
    let mut s = full_state();
    if let Some(status) = s.status.as_mut() {
        status.key_twin = Some("block 9 carries a precommit signed with this node's key".into());
    }
    for screen in Screen::ALL {
        let text = render(&on(s.clone(), screen), 120, 40);
        assert!(
            text.contains("THIS NODE'S KEY RUNS IN ANOTHER PROCESS"),
            "{screen:?}:\n{text}"
        );
    }
    let calm = render(&full_state(), 120, 40);
    assert!(!calm.contains("ANOTHER PROCESS"));
}

#[test]
fn a_stalled_chain_says_where_consensus_waits_and_for_whom() {
    let mut s = full_state();
    let consensus = |age_ms| qward_core::api::ConsensusInfo {
        height: 41,
        round: 3,
        step: "prevote".into(),
        waiting_for: vec!["hospital-3".into(), "hospital-4".into()],
        newest_block_age_ms: age_ms,
        syncing_to: None,
        height_age_ms: age_ms,
        block_time_ms: 1_000,
        empty_block_interval_ms: 10_000,
        heartbeat_in_ms: None,
    };
    if let Some(status) = s.status.as_mut() {
        status.consensus = Some(consensus(1_000));
    }
    let calm = render(&on(s.clone(), Screen::Overview), 120, 40);
    assert!(!calm.contains("no block for"), "{calm}");
    if let Some(status) = s.status.as_mut() {
        status.consensus = Some(consensus(42_000));
    }
    let text = render(&on(s, Screen::Overview), 120, 40);
    assert!(
        text.contains("no block for 42 s: consensus at height 41 round 3 (prevote), waiting for"),
        "{text}"
    );
    assert!(text.contains("hospital-3, hospital-4"), "{text}");
}

#[test]
fn an_idle_chain_is_not_called_stalled_however_old_its_newest_block() {
    let mut s = full_state();
    if let Some(status) = s.status.as_mut() {
        status.consensus = Some(qward_core::api::ConsensusInfo {
            height: 41,
            round: 0,
            step: "idle".into(),
            waiting_for: Vec::new(),
            newest_block_age_ms: 55_000,
            syncing_to: None,
            height_age_ms: 55_000,
            block_time_ms: 1_000,
            empty_block_interval_ms: 60_000,
            heartbeat_in_ms: Some(5_000),
        });
    }
    let text = render(&on(s, Screen::Overview), 120, 40);
    assert!(!text.contains("no block for"), "{text}");
}

#[test]
fn a_locked_screen_shows_nothing_of_the_node_only_what_unlocks_it() {
    let mut s = record_state(false);
    assert!(render(&s, 80, 24).contains("Amara Nwosu"));
    s.lock.after_ms = 60_000;
    s.lock.asks_for = "the node's passphrase".into();
    let now = s.now_ms;
    update(
        &mut s,
        Message::Tick {
            now_ms: now + 60_000,
        },
    );
    let screen = render(&s, 80, 24);
    assert!(screen.contains("qward is locked"), "{screen}");
    assert!(screen.contains("the node's passphrase"), "{screen}");
    for hidden in ["Amara Nwosu", "hospital", "Heart rate"] {
        assert!(
            !screen.contains(hidden),
            "{hidden} shows while locked: {screen}"
        );
    }
    for c in "secret".chars() {
        update(
            &mut s,
            Message::Key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Char(c),
            )),
        );
    }
    let screen = render(&s, 80, 24);
    assert!(
        screen.contains("••••••") && !screen.contains("secret"),
        "{screen}"
    );
    insta::assert_snapshot!("locked_80x24", screen);
}

#[test]
fn a_click_on_a_tab_opens_its_screen_and_the_wheel_moves_the_selection() {
    let mut s = full_state();
    s.size = (120, 40);
    let screen = render(&s, 120, 40);
    let top = screen.lines().next().expect("the tab bar");
    for target in [Screen::Chain, Screen::Peers, Screen::Logs, Screen::Overview] {
        let title = format!("{} {}", target.number(), target.tab());
        let at = top.find(&title).expect("the tab is drawn");
        let column = top[..at].chars().count() as u16 + 1;
        update(&mut s, Message::Click { column, row: 0 });
        assert_eq!(s.screen, target, "a click on {title:?} at column {column}");
    }
    // A click elsewhere changes nothing.
    update(&mut s, Message::Click { column: 5, row: 7 });
    assert_eq!(s.screen, Screen::Overview);
    // The wheel moves the Chain screen's selection as the arrow keys do.
    update(
        &mut s,
        Message::Click {
            column: 1 + top[..top.find("5 Chain").unwrap()].chars().count() as u16,
            row: 0,
        },
    );
    assert_eq!(s.screen, Screen::Chain);
    assert!(s.blocks.len() >= 2);
    s.blocks_sel = 0;
    update(&mut s, Message::Scroll { up: false });
    assert_eq!(s.blocks_sel, 1);
    update(&mut s, Message::Scroll { up: true });
    assert_eq!(s.blocks_sel, 0);
    // A locked UI takes no mouse input.
    s.lock.screen = Some(Default::default());
    let before = s.screen;
    let title = top.find("2 Peers").unwrap();
    update(
        &mut s,
        Message::Click {
            column: top[..title].chars().count() as u16 + 1,
            row: 0,
        },
    );
    assert_eq!(s.screen, before);
}
