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
            Span::styled(format!("{} ", clock(&state.zone, l.time_ms)), t.dim),
            Span::styled(format!("{:<5} ", level.name().to_uppercase()), style),
            Span::styled(log_message(&l.line), style),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).block(block), lines_area);
}

const LEVELS: [&str; 5] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// What a log line says, without the timestamp and level the node's log
/// formatter put in front (the screen shows its own columns for those). A
/// JSON line (`--log-format json`) gives its `fields.message`.
pub fn log_message(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed)
        && let Some(m) = v.pointer("/fields/message").and_then(|m| m.as_str())
    {
        return m.to_string();
    }
    let Some((first, after)) = trimmed.split_once(char::is_whitespace) else {
        return trimmed.to_string();
    };
    if !looks_like_timestamp(first) {
        return trimmed.to_string();
    }
    let after = after.trim_start();
    match after.split_once(char::is_whitespace) {
        Some((level, message)) if LEVELS.contains(&level) => message.trim_start().to_string(),
        _ => after.to_string(),
    }
}

/// `2026-12-01T20:23:57.145029Z` and the like.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[cfg(test)]
mod tests {
    use super::log_message;

    #[test]
    fn the_formatter_prefix_is_dropped_and_the_message_kept() {
        assert_eq!(
            log_message("2026-12-01T20:23:57.145029Z  INFO listening on /ip4/127.0.0.1/tcp/31405"),
            "listening on /ip4/127.0.0.1/tcp/31405"
        );
        assert_eq!(
            log_message("2026-12-01T20:23:57Z  WARN EAVESDROPPER DETECTED on the link"),
            "EAVESDROPPER DETECTED on the link"
        );
        assert_eq!(
            log_message(
                r#"{"timestamp":"2026-12-01T20:23:57Z","level":"INFO","fields":{"message":"block 3"}}"#
            ),
            "block 3"
        );
        // Lines without the prefix, and odd ones, are shown as they are.
        assert_eq!(log_message("INFO is a word here"), "INFO is a word here");
        assert_eq!(log_message("node started"), "node started");
        assert_eq!(log_message("{not json"), "{not json");
        assert_eq!(log_message(""), "");
    }
}
