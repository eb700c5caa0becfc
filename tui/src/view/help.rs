//! The help overlay (`?`): every key, by screen, from one table that the
//! status-line hints and the documentation test also read.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::widgets::{centered, titled};
use crate::state::{Mailbox, Screen, State};

/// A section of the help: a title and its keys with what they do.
pub type HelpSection = (&'static str, &'static [(&'static str, &'static str)]);

/// Every key of the UI.
pub const HELP: &[HelpSection] = &[
    (
        "Everywhere",
        &[
            ("1-7", "go to a screen"),
            ("Tab/S-Tab", "next/previous screen"),
            ("↑↓ j k", "move the selection"),
            ("R", "refresh everything"),
            ("Esc", "close / dismiss a notice"),
            ("?", "this help"),
            ("q Ctrl-C", "quit"),
        ],
    ),
    ("2 Peers", &[("Enter a", "key agreement with peer")]),
    (
        "3 Key agreement",
        &[
            ("a Enter", "agree again on the link"),
            ("e", "toggle Eve on the link"),
            ("x", "acknowledge the alarm"),
        ],
    ),
    (
        "4 Messages",
        &[
            ("← → i o", "inbox / outbox"),
            ("Enter", "open the record"),
            ("r", "raw JSON on/off (record)"),
            ("c", "compose a PHR or report"),
            ("x", "erase the record (asks y/n)"),
        ],
    ),
    (
        "Compose form",
        &[
            ("↑↓ Tab", "next field"),
            ("← → Space", "change kind/recipient"),
            ("Enter", "File: pick dir / send"),
        ],
    ),
    ("5 Chain", &[("v", "verify the chain")]),
    (
        "6 Consent",
        &[
            ("g", "grant consent"),
            ("r Del", "revoke the selected grant"),
        ],
    ),
    (
        "7 Logs",
        &[
            ("/", "filter by text (Enter/Esc)"),
            ("e w i d a", "level: error…all"),
            ("x", "clear the text filter"),
            ("G End", "back to the newest line"),
        ],
    ),
];

/// The few keys the status line suggests for what is on screen now.
pub fn hints(state: &State) -> Vec<(&'static str, &'static str)> {
    let mut h: Vec<(&'static str, &'static str)> = match state.screen {
        Screen::Overview => vec![("1-7", "screens")],
        Screen::Peers => vec![("Enter", "key agreement")],
        Screen::Keys => vec![("a", "agree"), ("e", "toggle Eve")],
        Screen::Messages => match state.mailbox {
            Mailbox::Inbox => vec![
                ("Enter", "open"),
                ("c", "compose"),
                ("x", "erase"),
                ("→", "outbox"),
            ],
            Mailbox::Outbox => vec![
                ("Enter", "open"),
                ("c", "compose"),
                ("x", "erase"),
                ("←", "inbox"),
            ],
        },
        Screen::Chain => vec![("v", "verify")],
        Screen::Consent => vec![("g", "grant"), ("r", "revoke")],
        Screen::Logs => vec![("/", "filter"), ("e w i d a", "level")],
    };
    h.push(("?", "help"));
    h.push(("q", "quit"));
    h
}

fn section_lines(state: &State, sections: &[HelpSection]) -> Vec<Line<'static>> {
    let t = &state.theme;
    let mut lines = Vec::new();
    for (title, keys) in sections {
        lines.push(Line::from(Span::styled(*title, t.header)));
        for (key, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!(" {key:<10}"), t.key_hint),
                Span::raw(*what),
            ]));
        }
    }
    lines
}

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let popup = centered(area, 84, 24);
    frame.render_widget(Clear, popup);
    let block = titled("Help — ? or Esc to close", &state.theme);
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let split = 4;
    if inner.width >= 70 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
        frame.render_widget(Paragraph::new(section_lines(state, &HELP[..split])), left);
        frame.render_widget(Paragraph::new(section_lines(state, &HELP[split..])), right);
    } else {
        frame.render_widget(Paragraph::new(section_lines(state, HELP)), inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documentation_lists_every_key_of_the_help() {
        let doc = include_str!("../../../docs/tui.md");
        for (title, keys) in HELP {
            for (key, _) in *keys {
                assert!(
                    doc.contains(&format!("`{key}`")),
                    "docs/tui.md does not list `{key}` of {title}"
                );
            }
        }
    }
}
