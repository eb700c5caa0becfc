//! Screen 2, Peers: the connected members with role and round-trip time;
//! Enter starts a key agreement with the selected one.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::widgets::{call_error, cut, dim_line, titled};
use crate::state::State;

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let block = titled(format!("Connected peers ({})", state.peers.len()), t);
    let error = call_error(state, &["peers"]);
    let [table_area, error_area] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(u16::from(error.is_some())),
    ])
    .areas(area);
    if let Some(e) = error {
        frame.render_widget(Paragraph::new(e), error_area);
    }
    if state.peers.is_empty() {
        let text = if state.connected() {
            "no peers connected"
        } else {
            "no peers known (not connected to the node)"
        };
        frame.render_widget(Paragraph::new(dim_line(text, t)).block(block), table_area);
        return;
    }
    let rows: Vec<Row> = state
        .peers
        .iter()
        .map(|p| {
            let name = p.name.clone().unwrap_or_else(|| state.name_of(&p.peer_id));
            let role = p
                .role
                .map(|r| r.to_string())
                .unwrap_or_else(|| "unknown".into());
            let rtt = p
                .rtt_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "—".into());
            let addr = p.addrs.first().cloned().unwrap_or_default();
            Row::new(vec![
                Cell::from(name),
                Cell::from(role),
                Cell::from(rtt),
                Cell::from(cut(&p.peer_id, 20)),
                Cell::from(addr),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(["Name", "Role", "Latency", "Peer id", "Address"]).style(t.header))
    .row_highlight_style(t.selected)
    .highlight_symbol("▶ ")
    .block(block);
    let mut ts = TableState::default().with_selected(Some(state.peers_sel));
    frame.render_stateful_widget(table, table_area, &mut ts);
}
