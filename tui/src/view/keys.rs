//! Screen 3, Key agreement: live BB84 sessions with their phase, the QBER
//! against the abort threshold, QBER over recent sessions, the link's Eve
//! setting, and a red banner when an eavesdropper was detected.

use qward_core::api::{KeySessionInfo, SessionPhase};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Gauge, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use super::widgets::{call_error, dim_line, pct, titled, unit_ratio};
use crate::state::State;

/// The phases of a session that runs to the end, in order.
pub const PHASES: [SessionPhase; 8] = [
    SessionPhase::Handshake,
    SessionPhase::Transmitting,
    SessionPhase::Sifting,
    SessionPhase::Estimating,
    SessionPhase::Correcting,
    SessionPhase::Verifying,
    SessionPhase::Amplifying,
    SessionPhase::Done,
];

pub fn phase_name(p: SessionPhase) -> &'static str {
    match p {
        SessionPhase::Handshake => "handshake",
        SessionPhase::Transmitting => "transmitting",
        SessionPhase::Sifting => "sifting",
        SessionPhase::Estimating => "estimating",
        SessionPhase::Correcting => "Cascade correcting",
        SessionPhase::Verifying => "verifying",
        SessionPhase::Amplifying => "amplifying",
        SessionPhase::Done => "done",
        SessionPhase::Aborted => "aborted",
    }
}

fn session_peer(state: &State, s: &KeySessionInfo) -> String {
    s.peer_name
        .clone()
        .unwrap_or_else(|| state.name_of(&s.peer))
}

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let alarm_height = if state.eve_alarm.is_some() { 3 } else { 0 };
    let [alarm_area, table_area, bottom] = Layout::vertical([
        Constraint::Length(alarm_height),
        Constraint::Min(5),
        Constraint::Length(8),
    ])
    .areas(area);

    if let Some(a) = &state.eve_alarm {
        let who = a
            .peer_name
            .clone()
            .unwrap_or_else(|| state.name_of(&a.peer));
        let q = a.qber.map(pct).unwrap_or_else(|| "—".into());
        let lines = vec![
            Line::from(Span::styled(
                format!(" EAVESDROPPER DETECTED — link to {who}, QBER {q}"),
                t.alarm,
            )),
            Line::from(Span::styled(
                " The key was discarded. Check the fibre; press x to acknowledge.",
                t.alarm,
            )),
        ];
        frame.render_widget(Paragraph::new(lines).style(t.alarm), alarm_area);
    }

    let block = titled(
        format!("Key-agreement sessions ({})", state.sessions.len()),
        t,
    );
    if state.sessions.is_empty() {
        let mut lines = vec![dim_line(
            "no key agreement yet: select a peer on 2 Peers and press Enter",
            t,
        )];
        lines.extend(call_error(
            state,
            &["key_sessions", "key_agree", "link_get", "link_set"],
        ));
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
            table_area,
        );
    } else {
        let rows: Vec<Row> = state
            .sessions
            .iter()
            .map(|s| {
                let style = if s.eve_detected {
                    t.error
                } else if s.phase == SessionPhase::Aborted {
                    t.warn
                } else {
                    t.normal
                };
                Row::new(vec![
                    Cell::from(session_peer(state, s)),
                    Cell::from(phase_name(s.phase)),
                    Cell::from(s.qber.map(pct).unwrap_or_else(|| "—".into())),
                    Cell::from(s.sifted.to_string()),
                    Cell::from(s.final_key_bits.to_string()),
                    Cell::from(if s.eve_detected { "EVE" } else { "" }),
                ])
                .style(style)
            })
            .collect();
        let table = Table::new(
            rows,
            [
                Constraint::Length(14),
                Constraint::Length(18),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Min(3),
            ],
        )
        .header(Row::new(["Peer", "Phase", "QBER", "Sifted", "Key bits", ""]).style(t.header))
        .row_highlight_style(t.selected)
        .highlight_symbol("▶ ")
        .block(block);
        let mut ts = TableState::default().with_selected(Some(state.sessions_sel));
        frame.render_stateful_widget(table, table_area, &mut ts);
    }

    let [detail_area, chart_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(bottom);
    draw_detail(state, frame, detail_area);
    draw_chart(state, frame, chart_area);
}

fn draw_detail(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let block = titled("Selected session", t);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = state.sessions.get(state.sessions_sel) else {
        let peer = state.selected_link_peer().map(|p| state.name_of(&p));
        let text = match peer {
            Some(p) => format!("link to {p}: {}", eve_text(state, Some(&p))),
            None => "no session selected".into(),
        };
        frame.render_widget(Paragraph::new(dim_line(text, t)), inner);
        return;
    };
    let [phase_area, progress_area, qber_area, info_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(inner);

    let step = PHASES.iter().position(|p| *p == s.phase);
    let phase_line = match (s.phase, &s.abort_reason) {
        (SessionPhase::Aborted, reason) => Line::from(Span::styled(
            format!(
                "aborted: {}",
                reason.clone().unwrap_or_else(|| "no reason given".into())
            ),
            if s.eve_detected { t.error } else { t.warn },
        )),
        _ => Line::from(format!(
            "phase {}/{}: {}",
            step.map_or(0, |i| i + 1),
            PHASES.len(),
            phase_name(s.phase)
        )),
    };
    frame.render_widget(Paragraph::new(phase_line), phase_area);
    let progress = step.map_or(1.0, |i| (i + 1) as f64 / PHASES.len() as f64);
    frame.render_widget(
        Gauge::default()
            .ratio(unit_ratio(progress))
            .label(format!("{} qubits sent", s.qubits_sent))
            .gauge_style(t.gauge_ok),
        progress_area,
    );

    let bound = s.qber_upper_bound.or(s.qber);
    let over = bound.is_some_and(|b| b > s.abort_threshold);
    let qber_label = match s.qber {
        Some(q) => format!(
            "QBER {} (bound {}) / abort at {}",
            pct(q),
            bound.map(pct).unwrap_or_default(),
            pct(s.abort_threshold)
        ),
        None => format!(
            "QBER not estimated yet / abort at {}",
            pct(s.abort_threshold)
        ),
    };
    let ratio = if s.abort_threshold > 0.0 {
        bound.unwrap_or(0.0) / s.abort_threshold
    } else {
        0.0
    };
    frame.render_widget(
        Gauge::default()
            .ratio(unit_ratio(ratio))
            .label(qber_label)
            .gauge_style(if over { t.gauge_bad } else { t.gauge_ok }),
        qber_area,
    );
    let info = vec![
        Line::from(format!(
            "peer {}  ·  session {}",
            session_peer(state, s),
            super::widgets::cut(&s.session_id, 12)
        )),
        Line::from(format!("link: {}", eve_text(state, Some(&s.peer)))),
    ];
    frame.render_widget(Paragraph::new(info), info_area);
}

fn eve_text(state: &State, peer: Option<&str>) -> String {
    let link = peer.and_then(|p| {
        state
            .links
            .get(p)
            .or_else(|| state.links.values().find(|l| state.name_of(&l.peer) == p))
    });
    match link {
        Some(l) if l.eve_fraction > 0.0 => format!(
            "Eve ON ({} of qubits), {} km",
            pct(l.eve_fraction),
            l.distance_km
        ),
        Some(l) => format!("no Eve, {} km", l.distance_km),
        None => "press e to toggle Eve".into(),
    }
}

fn draw_chart(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    // Oldest to newest, in tenths of a percent.
    let history: Vec<u64> = state
        .sessions
        .iter()
        .rev()
        .filter_map(|s| s.qber)
        .map(|q| {
            if q.is_finite() {
                (q.clamp(0.0, 1.0) * 1000.0).round() as u64
            } else {
                0
            }
        })
        .collect();
    let threshold = state.sessions.first().map_or(0.11, |s| s.abort_threshold);
    let title = format!("QBER history (abort {})", pct(threshold));
    let block = titled(title, t);
    if history.is_empty() {
        frame.render_widget(
            Paragraph::new(dim_line("no QBER measured yet", t)).block(block),
            area,
        );
        return;
    }
    // Scale so the abort threshold sits at the top unless a session went over it.
    let top = history
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max((threshold * 1000.0).round() as u64)
        .max(1);
    frame.render_widget(
        Sparkline::default()
            .data(&history)
            .max(top)
            .style(t.chart)
            .block(block),
        area,
    );
}
