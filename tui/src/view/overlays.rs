//! The form overlays: compose a record (with the file picker) and grant
//! consent. Each shows its fields, the focused one marked, and its error.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph, Wrap};

use super::widgets::{centered, date, dim_line, titled};
use crate::forms::{ComposeField, DAY_MS, GrantField, parse_expiry_days};
use crate::state::State;
use crate::update::kind_name;

fn field_line<'a>(state: &State, focused: bool, name: &str, value: String, hint: &str) -> Line<'a> {
    let t = &state.theme;
    let marker = if focused { "▶ " } else { "  " };
    Line::from(vec![
        Span::styled(
            format!("{marker}{name:<10}"),
            if focused { t.key_hint } else { t.dim },
        ),
        Span::styled(value, if focused { t.selected } else { t.normal }),
        Span::styled(format!("  {hint}"), t.dim),
    ])
}

fn member_label(state: &State, idx: usize) -> String {
    match state.other_members().get(idx) {
        Some(m) => format!("{} ({})", m.name, m.role),
        None => "(no members known)".into(),
    }
}

pub(super) fn draw_compose(state: &State, frame: &mut Frame, area: Rect) {
    let Some(form) = &state.compose else { return };
    let t = &state.theme;
    let popup = centered(area, 90, 16);
    frame.render_widget(Clear, popup);
    let block = titled("Compose a record — Esc: cancel", t);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let [fields_area, rest] =
        Layout::vertical([Constraint::Length(6), Constraint::Min(0)]).areas(inner);
    let path = if form.path.is_empty() && form.field != ComposeField::File {
        "(type a path)".into()
    } else {
        form.path.clone()
    };
    let cursor = if form.field == ComposeField::File {
        "_"
    } else {
        ""
    };
    let mut lines = vec![
        field_line(
            state,
            form.field == ComposeField::Kind,
            "Kind",
            kind_name(form.kind).into(),
            "← →",
        ),
        field_line(
            state,
            form.field == ComposeField::Recipient,
            "To",
            member_label(state, form.recipient),
            "← →",
        ),
        field_line(
            state,
            form.field == ComposeField::File,
            "File",
            format!("{path}{cursor}"),
            "Enter",
        ),
    ];
    if let Some(to) = &form.sending_to {
        lines.push(Line::from(Span::styled(
            format!("  sending to {}…", state.name_of(to)),
            t.warn,
        )));
    }
    if let Some(e) = &form.error {
        lines.push(Line::from(Span::styled(format!("  {e}"), t.error)));
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        fields_area,
    );

    match &form.picker {
        None => {
            let help = vec![
                dim_line(
                    "Enter on File: a .json path sends it; a directory (or nothing)",
                    t,
                ),
                dim_line(
                    "opens a picker of its .json files (default examples/records).",
                    t,
                ),
            ];
            frame.render_widget(Paragraph::new(help).wrap(Wrap { trim: true }), rest);
        }
        Some(picker) => {
            let block = titled(
                format!("{} — Enter: pick, Esc: back", picker.dir.display()),
                t,
            );
            match &picker.files {
                None => {
                    frame.render_widget(Paragraph::new(dim_line("listing…", t)).block(block), rest)
                }
                Some(Err(e)) => frame.render_widget(
                    Paragraph::new(Line::from(Span::styled(e.clone(), t.error)))
                        .wrap(Wrap { trim: true })
                        .block(block),
                    rest,
                ),
                Some(Ok(files)) if files.is_empty() => frame.render_widget(
                    Paragraph::new(dim_line("no .json files here", t)).block(block),
                    rest,
                ),
                Some(Ok(files)) => {
                    let items: Vec<ListItem> =
                        files.iter().map(|f| ListItem::new(f.clone())).collect();
                    let list = List::new(items)
                        .highlight_style(t.selected)
                        .highlight_symbol("▶ ")
                        .block(block);
                    let mut ls = ListState::default().with_selected(Some(picker.sel));
                    frame.render_stateful_widget(list, rest, &mut ls);
                }
            }
        }
    }
}

pub(super) fn draw_grant(state: &State, frame: &mut Frame, area: Rect) {
    let Some(form) = &state.grant else { return };
    let t = &state.theme;
    let popup = centered(area, 72, 10);
    frame.render_widget(Clear, popup);
    let block = titled("Grant consent — Enter: grant, Esc: cancel", t);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let expiry = match parse_expiry_days(&form.expires_days) {
        Ok(Some(d)) if state.now_ms > 0 => format!(
            "until {}",
            date(
                &state.zone,
                state.now_ms.saturating_add(d.saturating_mul(DAY_MS))
            )
        ),
        Ok(Some(_)) => String::new(),
        Ok(None) => "no expiry".into(),
        Err(_) => "days".into(),
    };
    let mut lines = vec![
        field_line(
            state,
            form.field == GrantField::Grantee,
            "Grantee",
            member_label(state, form.grantee),
            "← →",
        ),
        field_line(
            state,
            form.field == GrantField::Scope,
            "Scope",
            form.scope.clone(),
            "",
        ),
        field_line(
            state,
            form.field == GrantField::ExpiresDays,
            "Days",
            form.expires_days.clone(),
            &expiry,
        ),
    ];
    if let Some(e) = &form.error {
        lines.push(Line::from(Span::styled(format!("  {e}"), t.error)));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
