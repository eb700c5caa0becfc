//! `view`: draws the state. Pure: the same state gives the same screen. The
//! frame is tabs, banners (node unreachable, eavesdropper), the screen, and
//! a status line; help, forms and the record pane draw over it.

mod chain;
mod consent;
pub mod help;
mod keys;
mod logs;
mod messages;
mod overlays;
mod overview;
mod peers;
mod record;
pub mod widgets;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Tabs};

use crate::state::{Connection, Screen, State};

/// Draws the whole UI.
pub fn view(state: &State, frame: &mut Frame) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    if let Some(screen) = &state.lock.screen {
        draw_lock(state, screen, frame, area);
        return;
    }
    let banners = banner_lines(state);
    let [tabs_area, banner_area, body, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banners.len() as u16),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(state, frame, tabs_area);
    frame.render_widget(Paragraph::new(banners), banner_area);
    match state.screen {
        Screen::Overview => overview::draw(state, frame, body),
        Screen::Peers => peers::draw(state, frame, body),
        Screen::Keys => keys::draw(state, frame, body),
        Screen::Messages => messages::draw(state, frame, body),
        Screen::Chain => chain::draw(state, frame, body),
        Screen::Consent => consent::draw(state, frame, body),
        Screen::Logs => logs::draw(state, frame, body),
    }
    draw_status_line(state, frame, status_area);
    if state.record.is_some() {
        record::draw(state, frame, body);
    }
    if state.compose.is_some() {
        overlays::draw_compose(state, frame, body);
    }
    if state.grant.is_some() {
        overlays::draw_grant(state, frame, body);
    }
    if state.show_help {
        help::draw(state, frame, area);
    }
}

/// The tab bar's row, and each tab's columns as `draw_tabs` lays them out
/// (a space either side of each title, `│` between them).
const TABS_ROW: u16 = 0;

/// The screen whose tab is at a cell, for a mouse click.
pub fn tab_at(column: u16, row: u16) -> Option<Screen> {
    if row != TABS_ROW {
        return None;
    }
    let mut x = 0u16;
    for screen in Screen::ALL {
        let width = format!("{} {}", screen.number(), screen.tab())
            .chars()
            .count() as u16
            + 2;
        if (x..x + width).contains(&column) {
            return Some(screen);
        }
        x += width + 1;
    }
    None
}

fn draw_tabs(state: &State, frame: &mut Frame, area: Rect) {
    let titles: Vec<Line> = Screen::ALL
        .iter()
        .map(|s| Line::from(format!("{} {}", s.number(), s.tab())))
        .collect();
    let tabs = Tabs::new(titles)
        .select(Screen::ALL.iter().position(|s| *s == state.screen))
        .style(state.theme.normal)
        .highlight_style(state.theme.tab_active)
        .divider("│")
        .padding(" ", " ");
    frame.render_widget(tabs, area);
}

/// The banners above the screen: connection trouble, this node's key running
/// in another process, and the eavesdropper alarm.
fn banner_lines(state: &State) -> Vec<Line<'static>> {
    let t = &state.theme;
    let mut lines = Vec::new();
    match &state.connection {
        Connection::Up => {}
        Connection::Connecting => {
            lines.push(Line::from(Span::styled(" connecting to the node…", t.warn)))
        }
        Connection::Down(reason) => lines.push(Line::from(Span::styled(
            format!(" node unreachable — reconnecting… ({reason})"),
            t.alarm,
        ))),
    }
    if let Some(why) = state.status.as_ref().and_then(|s| s.key_twin.as_ref()) {
        lines.push(Line::from(Span::styled(
            format!(
                " ⚠ THIS NODE'S KEY RUNS IN ANOTHER PROCESS ({why}): this node signs nothing \
                 until restarted; stop one of the two copies"
            ),
            t.alarm,
        )));
    }
    for e in state.emergencies_about_me() {
        let who = e
            .declarer_name
            .clone()
            .unwrap_or_else(|| state.name_of(&e.declarer));
        lines.push(Line::from(Span::styled(
            format!(
                " ⚠ EMERGENCY ACCESS to your records by {who} until {}: {}",
                widgets::local_time(&state.zone, e.expires_at_ms),
                e.reason
            ),
            t.alarm,
        )));
    }
    if let Some(alarm) = &state.eve_alarm {
        let who = alarm
            .peer_name
            .clone()
            .unwrap_or_else(|| state.name_of(&alarm.peer));
        let qber = alarm
            .qber
            .map(|q| format!(", QBER {}", widgets::pct(q)))
            .unwrap_or_default();
        lines.push(Line::from(Span::styled(
            format!(" ⚠ EAVESDROPPER DETECTED on the link to {who}{qber}: key discarded"),
            t.alarm,
        )));
    }
    lines
}

/// The lock screen: nothing of the node's data, only what unlocks it.
fn draw_lock(state: &State, screen: &crate::state::LockScreen, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let minutes = state.lock.after_ms / 60_000;
    let idle = if minutes >= 1 {
        format!("{minutes} min")
    } else {
        format!("{} s", state.lock.after_ms / 1000)
    };
    let mut lines = vec![
        Line::from(Span::styled("qward is locked", t.title)),
        Line::from(""),
        Line::from(Span::styled(
            format!("Locked after {idle} without a key press (automatic logoff)."),
            t.normal,
        )),
        Line::from(Span::styled(
            format!("Type {} and press Enter:", state.lock.asks_for),
            t.normal,
        )),
        Line::from(""),
        Line::from(Span::styled(
            format!("> {}", "•".repeat(screen.typed.chars())),
            t.selected,
        )),
    ];
    if screen.checking {
        lines.push(Line::from(Span::styled("checking…", t.dim)));
    }
    if let Some(e) = &screen.error {
        lines.push(Line::from(Span::styled(e.clone(), t.error)));
    }
    let height = (lines.len() as u16 + 2).min(area.height);
    let width = 72.min(area.width);
    let r = widgets::centered(area, width, height);
    frame.render_widget(Paragraph::new(lines).block(widgets::titled("locked", t)), r);
}

fn draw_status_line(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let line = match &state.notice {
        Some(n) => Line::from(Span::styled(
            format!(" {}", n.text),
            if n.is_error { t.error } else { t.ok },
        )),
        None => {
            let mut spans = Vec::new();
            for (key, what) in help::hints(state) {
                spans.push(Span::styled(format!(" {key}"), t.key_hint));
                spans.push(Span::styled(format!(" {what} "), t.dim));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

#[cfg(test)]
mod tests;
