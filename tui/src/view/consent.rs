//! Screen 6, Consent: the patient's grants on the chain (who may see which
//! records until when); `g` grants, `r` revokes.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::widgets::{call_error, date, dim_line, titled};
use crate::state::State;
use qward_core::identity::Role;

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let role = state.my_role();
    let mut notes = Vec::new();
    if let Some(r) = role.filter(|r| *r != Role::Patient) {
        notes.push(dim_line(
            format!("This node is a {r}: only patients grant consent. All consent records:"),
            t,
        ));
    }
    notes.extend(call_error(
        state,
        &[
            "chain_consent",
            "consent_grant",
            "consent_revoke",
            "chain_members",
        ],
    ));
    let [note_area, table_area] =
        Layout::vertical([Constraint::Length(notes.len() as u16), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(notes).wrap(Wrap { trim: true }), note_area);

    let own = state.own_consents();
    let title = if role == Some(Role::Patient) {
        "My consent grants"
    } else {
        "Consent records"
    };
    let block = titled(format!("{title} ({})", own.len()), t);
    if own.is_empty() {
        frame.render_widget(
            Paragraph::new(dim_line(
                "no consent granted: press g to grant a doctor or hospital access",
                t,
            ))
            .block(block),
            table_area,
        );
        return;
    }
    let rows: Vec<Row> = own
        .iter()
        .map(|c| {
            let who = c
                .grantee_name
                .clone()
                .unwrap_or_else(|| state.name_of(&c.grantee));
            let expires = c
                .expires_at_ms
                .map(|ms| date(&state.zone, ms))
                .unwrap_or_else(|| "never".into());
            let expired = c
                .expires_at_ms
                .is_some_and(|e| state.now_ms > 0 && e <= state.now_ms);
            let (status, style) = match (c.active, expired) {
                (true, false) => ("active", t.ok),
                // A revoked grant leaves the chain; an inactive one lapsed.
                (_, true) | (false, _) => ("expired", t.warn),
            };
            Row::new(vec![
                Cell::from(who),
                Cell::from(
                    c.patient_name
                        .clone()
                        .unwrap_or_else(|| state.name_of(&c.patient)),
                ),
                Cell::from(c.scope.clone()),
                Cell::from(expires),
                Cell::from(status).style(style),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Min(7),
        ],
    )
    .header(Row::new(["Grantee", "Patient", "Scope", "Expires", "Status"]).style(t.header))
    .row_highlight_style(t.selected)
    .highlight_symbol("▶ ")
    .block(block);
    let mut ts = TableState::default().with_selected(Some(state.consent_sel));
    frame.render_stateful_widget(table, table_area, &mut ts);
}
