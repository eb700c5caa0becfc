//! Small pieces shared by the screens: bordered blocks, popups, time and
//! percentage formatting, and the error line shown when a call failed.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use crate::state::State;
use crate::theme::Theme;

/// A bordered block with a title.
pub fn titled<'a>(title: impl Into<String>, theme: &Theme) -> Block<'a> {
    Block::bordered()
        .border_type(BorderType::Plain)
        .title(Span::styled(format!(" {} ", title.into()), theme.title))
}

/// A rectangle of at most `width` x `height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x.saturating_add((area.width - w) / 2),
        y: area.y.saturating_add((area.height - h) / 2),
        width: w,
        height: h,
    }
}

/// `ms` (unix milliseconds) in `zone`, with the offset in force then.
fn zoned(zone: &jiff::tz::TimeZone, ms: u64) -> Option<jiff::Zoned> {
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(ts.to_zoned(zone.clone()))
}

fn format_in(zone: &jiff::tz::TimeZone, ms: u64, pattern: &str) -> String {
    zoned(zone, ms).map_or_else(|| "—".into(), |z| z.strftime(pattern).to_string())
}

/// A wall-clock time of day in the UI's zone, `HH:MM:SS`.
pub fn clock(zone: &jiff::tz::TimeZone, ms: u64) -> String {
    format_in(zone, ms, "%H:%M:%S")
}

/// The zone's abbreviation at `ms` ("UTC", "CET", "CEST", or an offset).
pub fn zone_name(zone: &jiff::tz::TimeZone, ms: u64) -> String {
    format_in(zone, ms, "%Z")
}

/// How long ago `then_ms` was, from `now_ms`: "12s ago", "5m ago", "3h ago", "2d ago".
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if now_ms == 0 || then_ms == 0 {
        return "—".into();
    }
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// A date and time in the UI's zone, `YYYY-MM-DD HH:MM:SS ZONE`.
pub fn local_time(zone: &jiff::tz::TimeZone, ms: u64) -> String {
    format_in(zone, ms, "%Y-%m-%d %H:%M:%S %Z")
}

/// A civil date `YYYY-MM-DD` in the UI's zone for Unix milliseconds.
pub fn date(zone: &jiff::tz::TimeZone, ms: u64) -> String {
    format_in(zone, ms, "%Y-%m-%d")
}

/// A fraction as a percentage with one decimal: `0.031` → `3.1%`.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "—".into()
    }
}

/// A value safe for a gauge: finite and within 0..=1.
pub fn unit_ratio(x: f64) -> f64 {
    if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// An id cut to `n` characters with an ellipsis.
pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// An error line for the first of `methods` whose last call failed.
pub fn call_error<'a>(state: &State, methods: &[&str]) -> Option<Line<'a>> {
    methods.iter().find_map(|m| {
        state.call_errors.get(*m).map(|e| {
            Line::from(Span::styled(
                format!("⚠ {m} failed: {e}"),
                state.theme.error,
            ))
        })
    })
}

/// A dim line, for "nothing here yet" messages.
pub fn dim_line<'a>(text: impl Into<String>, theme: &Theme) -> Line<'a> {
    Line::from(Span::styled(text.into(), theme.dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_fractions_format_for_people() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(clock(&utc, 3_723_000), "01:02:03");
        // Another zone shows its own wall clock, and names itself.
        let plus2 = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(clock(&plus2, 3_723_000), "03:02:03");
        assert_eq!(local_time(&utc, 3_723_000), "1970-01-01 01:02:03 UTC");
        assert_eq!(zone_name(&plus2, 0), "+02");
        // Daylight saving time is the one in force at that instant.
        if let Ok(berlin) = jiff::tz::TimeZone::get("Europe/Berlin") {
            assert_eq!(zone_name(&berlin, 1_767_225_600_000), "CET"); // 2026-01-01
            assert_eq!(zone_name(&berlin, 1_782_864_000_000), "CEST"); // 2026-07-01
        }
        assert_eq!(ago(100_000, 40_000), "1m ago");
        assert_eq!(ago(0, 40_000), "—");
        assert_eq!(date(&utc, 1_795_000_000_000), "2026-11-18");
        assert_eq!(date(&utc, 0), "1970-01-01");
        assert_eq!(pct(0.031), "3.1%");
        assert_eq!(unit_ratio(f64::NAN), 0.0);
        assert_eq!(unit_ratio(3.0), 1.0);
        assert_eq!(cut("abcdefgh", 5), "abcd…");
    }

    #[test]
    fn centered_never_leaves_the_area() {
        let area = Rect::new(2, 3, 10, 4);
        let r = centered(area, 40, 40);
        assert_eq!(r, area);
        let r = centered(area, 4, 2);
        assert_eq!((r.x, r.y, r.width, r.height), (5, 4, 4, 2));
    }
}
