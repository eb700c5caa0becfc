//! The record pane: a received or sent FHIR record shown for a person
//! (patient, observations, conditions, report), or raw JSON on `r`.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::widgets::{date, dim_line, titled};
use crate::fhir_view::{self, RecordSummary};
use crate::state::State;
use crate::theme::Theme;
use crate::update::kind_name;

/// The person-readable lines of a record summary.
pub fn summary_lines(s: &RecordSummary, t: &Theme) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let head = |text: &str| Line::from(Span::styled(text.to_string(), t.header));
    for p in &s.patients {
        lines.push(head("Patient"));
        lines.push(Line::from(format!(
            "  {}  ·  {}  ·  born {}",
            p.name, p.gender, p.birth_date
        )));
    }
    for r in &s.reports {
        lines.push(head("Report"));
        lines.push(Line::from(format!("  {}  ({})", r.code, r.status)));
        if let Some(i) = &r.issued {
            lines.push(Line::from(format!("  issued {i}")));
        }
        lines.push(Line::from(format!("  Conclusion: {}", r.conclusion)));
    }
    if !s.observations.is_empty() {
        lines.push(head("Observations"));
        for o in &s.observations {
            let unit = if o.unit.is_empty() {
                String::new()
            } else {
                format!(" {}", o.unit)
            };
            let when = o
                .when
                .as_ref()
                .map(|w| format!("  ({w})"))
                .unwrap_or_default();
            lines.push(Line::from(format!(
                "  {}: {}{unit}{when}",
                o.display, o.value
            )));
        }
    }
    if !s.conditions.is_empty() {
        lines.push(head("Conditions"));
        for (name, status) in &s.conditions {
            lines.push(Line::from(format!("  {name} ({status})")));
        }
    }
    if !s.other.is_empty() {
        lines.push(Line::from(Span::styled(
            format!("also contains: {}", s.other.join(", ")),
            t.dim,
        )));
    }
    if lines.is_empty() {
        lines.push(dim_line(
            format!(
                "a FHIR {} with nothing this viewer shows (r: raw JSON)",
                s.resource_type
            ),
            t,
        ));
    }
    lines
}

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let Some(pane) = &state.record else { return };
    let t = &state.theme;
    frame.render_widget(Clear, area);
    let mut lines: Vec<Line> = Vec::new();
    let title = match &pane.content {
        None => {
            lines.push(dim_line(format!("fetching record {}…", pane.record_id), t));
            "Record".to_string()
        }
        Some(Err(e)) => {
            lines.push(Line::from(Span::styled(
                format!("cannot show record {}: {e}", pane.record_id),
                t.error,
            )));
            "Record".to_string()
        }
        Some(Ok((info, json))) => {
            let from = info
                .from_name
                .clone()
                .unwrap_or_else(|| state.name_of(&info.from));
            let to = info
                .to_name
                .clone()
                .unwrap_or_else(|| state.name_of(&info.to));
            lines.push(Line::from(Span::styled(
                format!(
                    "from {from} to {to}, {} {}, {} bytes",
                    date(&state.zone, info.created_ms),
                    super::widgets::zone_name(&state.zone, info.created_ms),
                    info.bytes
                ),
                t.dim,
            )));
            if pane.raw {
                lines.extend(json.lines().map(|l| Line::from(l.to_string())));
            } else {
                match fhir_view::summarize(json) {
                    Ok(s) => lines.extend(summary_lines(&s, t)),
                    Err(e) => {
                        lines.push(Line::from(Span::styled(format!("{e} (r: raw)"), t.error)))
                    }
                }
            }
            format!(
                "{} {}",
                kind_name(info.kind),
                super::widgets::cut(&info.record_id, 16)
            )
        }
    };
    let hint = if pane.raw {
        "r: readable view"
    } else {
        "r: raw JSON"
    };
    let block = titled(format!("{title} — {hint}, Esc: close"), t);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((pane.scroll, 0))
            .block(block),
        area,
    );
}
