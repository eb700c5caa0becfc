//! Screen 4, Messages: the inbox and the outbox with each record's kind,
//! correspondent, age and delivery state.

use qward_core::api::{DeliveryState, MessageInfo};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::widgets::{ago, call_error, dim_line, titled};
use crate::state::{Mailbox, State};
use crate::theme::Theme;
use crate::update::kind_name;

pub fn delivery_name(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Queued => "queued",
        DeliveryState::Sent => "sent",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Anchored => "anchored",
        DeliveryState::Failed => "FAILED",
        DeliveryState::Received => "received",
        DeliveryState::Erased => "ERASED",
    }
}

fn delivery_style(s: DeliveryState, t: &Theme) -> Style {
    match s {
        DeliveryState::Failed => t.error,
        DeliveryState::Erased => t.dim,
        DeliveryState::Queued | DeliveryState::Sent => t.warn,
        DeliveryState::Delivered | DeliveryState::Anchored | DeliveryState::Received => t.ok,
    }
}

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let error = call_error(
        state,
        &["inbox", "outbox", "send", "record", "record_erase"],
    );
    let [boxes, error_area] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(u16::from(error.is_some())),
    ])
    .areas(area);
    if let Some(e) = error {
        frame.render_widget(Paragraph::new(e), error_area);
    }
    let [inbox_area, outbox_area] = if boxes.width >= 110 {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(boxes)
    } else {
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(boxes)
    };
    draw_box(state, frame, inbox_area, Mailbox::Inbox);
    draw_box(state, frame, outbox_area, Mailbox::Outbox);
}

fn draw_box(state: &State, frame: &mut Frame, area: Rect, which: Mailbox) {
    let t = &state.theme;
    let (list, sel, title, who_header): (&[MessageInfo], usize, &str, &str) = match which {
        Mailbox::Inbox => (&state.inbox, state.inbox_sel, "Inbox", "From"),
        Mailbox::Outbox => (&state.outbox, state.outbox_sel, "Outbox", "To"),
    };
    let focused = state.mailbox == which;
    let marker = if focused { "▸ " } else { "" };
    let block = titled(format!("{marker}{title} ({})", list.len()), t);
    if list.is_empty() {
        let text = match which {
            Mailbox::Inbox => "no records received",
            Mailbox::Outbox => "nothing sent yet: press c to compose",
        };
        frame.render_widget(Paragraph::new(dim_line(text, t)).block(block), area);
        return;
    }
    let rows: Vec<Row> = list
        .iter()
        .map(|m| {
            let who = match which {
                Mailbox::Inbox => m
                    .from_name
                    .clone()
                    .unwrap_or_else(|| state.name_of(&m.from)),
                Mailbox::Outbox => m.to_name.clone().unwrap_or_else(|| state.name_of(&m.to)),
            };
            let mut st = delivery_name(m.state).to_string();
            if let Some(d) = m
                .detail
                .as_ref()
                .filter(|_| m.state == DeliveryState::Failed)
            {
                st = format!("{st}: {d}");
            }
            Row::new(vec![
                Cell::from(kind_name(m.kind)),
                Cell::from(who),
                Cell::from(ago(state.now_ms, m.created_ms)),
                Cell::from(st).style(delivery_style(m.state, t)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(16),
            Constraint::Length(9),
            Constraint::Min(8),
        ],
    )
    .header(Row::new(["Kind", who_header, "When", "State"]).style(t.header))
    .row_highlight_style(if focused { t.selected } else { t.normal })
    .highlight_symbol(if focused { "▶ " } else { "  " })
    .block(block);
    let mut ts = TableState::default().with_selected(Some(sel));
    frame.render_stateful_widget(table, area, &mut ts);
}
