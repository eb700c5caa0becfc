//! Screen 1, Overview: who this node is, the network and chain at a glance,
//! and the alerts that need a person (eavesdropper, lost node, failed
//! deliveries, failed calls).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::widgets::{call_error, dim_line, pct, titled};
use crate::state::{Connection, State};

fn field<'a>(state: &State, name: &str, value: impl Into<String>) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{name:<12}"), state.theme.dim),
        Span::raw(value.into()),
    ])
}

/// How long a height must run without a block before the overview calls it
/// a stall (a few rounds). An idle chain (nothing to commit, waiting for
/// its heartbeat) is not stalled however old its newest block.
const STALL_ALERT_MS: u64 = 10_000;

fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}h {:02}m {:02}s", s / 3600, (s / 60) % 60, s % 60)
}

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let [top, alerts_area] =
        Layout::vertical([Constraint::Length(10), Constraint::Min(0)]).areas(area);
    let [ident_area, net_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);

    let mut ident = Vec::new();
    let mut net = Vec::new();
    match &state.status {
        Some(s) => {
            ident.push(field(state, "name", s.name.clone()));
            ident.push(field(state, "role", s.role.to_string()));
            ident.push(field(state, "peer id", s.peer_id.clone()));
            ident.push(field(state, "account", s.account.clone()));
            ident.push(field(state, "chain", s.chain_id.clone()));
            ident.push(field(state, "version", s.version.clone()));
            ident.push(field(state, "uptime", uptime(s.uptime_ms)));
            ident.push(field(
                state,
                "listening",
                s.listen.first().cloned().unwrap_or_else(|| "—".into()),
            ));

            net.push(field(state, "peers", s.peers.to_string()));
            net.push(field(state, "height", s.height.to_string()));
            net.push(field(state, "finalized", s.finalized_height.to_string()));
            net.push(field(state, "validators", s.validators.to_string()));
            net.push(field(
                state,
                "validating",
                if s.is_validator { "yes" } else { "no" },
            ));
            net.push(field(state, "mempool", format!("{} tx", s.mempool)));
            net.push(field(state, "members", state.members.len().to_string()));
            net.push(field(
                state,
                "keys",
                state.keys.iter().filter(|k| !k.retired).count().to_string(),
            ));
        }
        None => {
            ident.push(
                call_error(state, &["status"])
                    .unwrap_or_else(|| dim_line("waiting for the node's status…", &state.theme)),
            );
        }
    }
    // Fields stay one per line (long ids are cut at the border); only the
    // error message wraps.
    let mut ident = Paragraph::new(ident).block(titled("Identity", &state.theme));
    if state.status.is_none() {
        ident = ident.wrap(Wrap { trim: true });
    }
    frame.render_widget(ident, ident_area);
    frame.render_widget(
        Paragraph::new(net).block(titled("Network and chain", &state.theme)),
        net_area,
    );

    let t = &state.theme;
    let mut alerts: Vec<Line> = Vec::new();
    if let Some(a) = &state.eve_alarm {
        let who = a
            .peer_name
            .clone()
            .unwrap_or_else(|| state.name_of(&a.peer));
        let q = a.qber.map(pct).unwrap_or_else(|| "—".into());
        alerts.push(Line::from(Span::styled(
            format!("EAVESDROPPER DETECTED on the link to {who} (QBER {q})"),
            t.error,
        )));
    }
    if let Connection::Down(reason) = &state.connection {
        alerts.push(Line::from(Span::styled(
            format!("node unreachable: {reason}"),
            t.error,
        )));
    }
    if let Some(c) = state.status.as_ref().and_then(|s| s.consensus.as_ref())
        && c.step != "idle"
        && c.height_age_ms >= STALL_ALERT_MS
    {
        let mut text = format!(
            "no block for {} s: consensus at height {} round {} ({})",
            c.newest_block_age_ms / 1000,
            c.height,
            c.round,
            c.step
        );
        if !c.waiting_for.is_empty() {
            text.push_str(&format!(", waiting for {}", c.waiting_for.join(", ")));
        }
        if let Some(h) = c.syncing_to {
            text.push_str(&format!(", syncing to height {h}"));
        }
        alerts.push(Line::from(Span::styled(text, t.warn)));
    }
    let failed = state.failed_deliveries();
    if failed > 0 {
        alerts.push(Line::from(Span::styled(
            format!("{failed} record(s) failed to deliver (see 4 Messages)"),
            t.warn,
        )));
    }
    for (m, e) in &state.call_errors {
        alerts.push(Line::from(Span::styled(format!("{m} failed: {e}"), t.warn)));
    }
    let aborted = state
        .sessions
        .iter()
        .filter(|s| s.abort_reason.is_some() && !s.eve_detected)
        .count();
    if aborted > 0 {
        alerts.push(Line::from(Span::styled(
            format!("{aborted} key agreement(s) aborted (see 3 Keys)"),
            t.warn,
        )));
    }
    if alerts.is_empty() {
        alerts.push(Line::from(Span::styled("no alerts", t.ok)));
    }
    frame.render_widget(
        Paragraph::new(alerts)
            .wrap(Wrap { trim: true })
            .block(titled("Alerts", &state.theme)),
        alerts_area,
    );
}
