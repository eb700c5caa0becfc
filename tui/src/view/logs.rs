//! Screen 7, Logs: the node's recent log lines, newest at the bottom,
//! filtered by text (`/`) and by level (`e w i d a`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::widgets::{call_error, clock, dim_line, titled};
use crate::state::{Level, State};

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let f = &state.log_filter;
    let [filter_area, lines_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let cursor = if f.editing { "_" } else { "" };
    let filter = Line::from(vec![
        Span::styled(" filter ", t.dim),
        Span::styled(
            format!("/{}{cursor}", f.text),
            if f.editing { t.selected } else { t.normal },
        ),
        Span::styled("  level ≥ ", t.dim),
        Span::styled(f.min_level.name(), t.key_hint),
    ]);
    frame.render_widget(Paragraph::new(filter), filter_area);

    let shown = state.filtered_logs();
    let block = titled(
        format!("Log ({} of {} lines)", shown.len(), state.logs.len()),
        t,
    );
    let inner_height = usize::from(block.inner(lines_area).height);
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = call_error(state, &["logs"]) {
        lines.push(e);
    }
    if shown.is_empty() {
        let text = if state.logs.is_empty() {
            "no log lines yet"
        } else {
            "no line matches the filter"
        };
        lines.push(dim_line(text, t));
    }
    let end = shown.len().saturating_sub(state.logs_scroll);
    let start = end.saturating_sub(inner_height.saturating_sub(lines.len()));
    for l in shown.get(start..end).unwrap_or(&[]) {
        let level = Level::parse(&l.level);
        let style = match level {
            Level::Error => t.error,
            Level::Warn => t.warn,
            Level::Trace | Level::Debug => t.dim,
            Level::Info => t.normal,
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", clock(l.time_ms)), t.dim),
            Span::styled(format!("{:<5} ", level.name().to_uppercase()), style),
            Span::styled(l.line.clone(), style),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).block(block), lines_area);
}
