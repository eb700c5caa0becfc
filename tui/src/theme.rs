//! The theme: every style the views use comes from here, so colour can be
//! turned off in one place (`NO_COLOR`, <https://no-color.org>).

use ratatui::style::{Color, Modifier, Style};

/// The styles of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub colored: bool,
    pub normal: Style,
    pub dim: Style,
    pub title: Style,
    pub header: Style,
    pub selected: Style,
    pub tab_active: Style,
    pub key_hint: Style,
    pub ok: Style,
    pub warn: Style,
    pub error: Style,
    /// The eavesdropper alarm and the "node unreachable" banner.
    pub alarm: Style,
    pub gauge_ok: Style,
    pub gauge_bad: Style,
    pub chart: Style,
}

impl Theme {
    /// Colours, for terminals that have them.
    pub fn colored() -> Theme {
        Theme {
            colored: true,
            normal: Style::new(),
            dim: Style::new().fg(Color::DarkGray),
            title: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            header: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            selected: Style::new()
                .bg(Color::Blue)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD),
            tab_active: Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            key_hint: Style::new().fg(Color::Cyan),
            ok: Style::new().fg(Color::Green),
            warn: Style::new().fg(Color::Yellow),
            error: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            alarm: Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
            gauge_ok: Style::new().fg(Color::Green).bg(Color::Black),
            gauge_bad: Style::new().fg(Color::Red).bg(Color::Black),
            chart: Style::new().fg(Color::Magenta),
        }
    }

    /// No colour at all: emphasis by bold, reverse and underline only.
    pub fn plain() -> Theme {
        Theme {
            colored: false,
            normal: Style::new(),
            dim: Style::new(),
            title: Style::new().add_modifier(Modifier::BOLD),
            header: Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            tab_active: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            key_hint: Style::new().add_modifier(Modifier::BOLD),
            ok: Style::new(),
            warn: Style::new().add_modifier(Modifier::BOLD),
            error: Style::new().add_modifier(Modifier::BOLD),
            alarm: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            gauge_ok: Style::new(),
            gauge_bad: Style::new().add_modifier(Modifier::BOLD),
            chart: Style::new(),
        }
    }

    /// Plain when `no_color` is set (the value of `NO_COLOR`, if any, non-empty).
    pub fn for_no_color(no_color: Option<&str>) -> Theme {
        match no_color {
            Some(v) if !v.is_empty() => Theme::plain(),
            _ => Theme::colored(),
        }
    }

    /// From the environment: plain when `NO_COLOR` is set and non-empty.
    pub fn from_env() -> Theme {
        if no_color_requested() {
            Theme::plain()
        } else {
            Theme::colored()
        }
    }
}

/// Whether the environment asks for no colour: `NO_COLOR` set and not
/// empty (<https://no-color.org>). The one rule the TUI and the node's log
/// lines both follow.
pub fn no_color_requested() -> bool {
    std::env::var("NO_COLOR").is_ok_and(|v| !v.is_empty())
}

impl Default for Theme {
    fn default() -> Self {
        Theme::colored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_set_gives_a_theme_without_colours() {
        let t = Theme::for_no_color(Some("1"));
        assert!(!t.colored);
        for s in [
            t.normal,
            t.dim,
            t.title,
            t.selected,
            t.ok,
            t.warn,
            t.error,
            t.alarm,
            t.gauge_bad,
            t.chart,
        ] {
            assert_eq!(s.fg, None);
            assert_eq!(s.bg, None);
        }
        assert!(Theme::for_no_color(None).colored);
        assert!(
            Theme::for_no_color(Some("")).colored,
            "an empty NO_COLOR does not count"
        );
    }
}
