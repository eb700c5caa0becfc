//! Screen 5, Chain: recent blocks, the selected block's signers and
//! transactions, the validators, consent records, and `chain_verify`'s report.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::widgets::{ago, call_error, cut, dim_line, titled};
use crate::state::{State, VerifyState};

pub(super) fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let [blocks_area, detail_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let [validators_area, verify_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_blocks(state, frame, blocks_area);
    draw_detail(state, frame, detail_area);
    draw_validators(state, frame, validators_area);
    draw_verify(state, frame, verify_area);
}

fn draw_blocks(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let title = match &state.status {
        Some(s) => format!("Blocks (height {}, final {})", s.height, s.finalized_height),
        None => "Blocks".into(),
    };
    let block = titled(title, t);
    if state.blocks.is_empty() {
        let line = call_error(state, &["chain_blocks", "status"])
            .unwrap_or_else(|| dim_line("no blocks yet", t));
        frame.render_widget(
            Paragraph::new(line).wrap(Wrap { trim: true }).block(block),
            area,
        );
        return;
    }
    let validators = state.members.iter().filter(|m| m.is_validator).count();
    let rows: Vec<Row> = state
        .blocks
        .iter()
        .map(|b| {
            let signed = if validators > 0 {
                format!("{}/{validators}", b.signers.len())
            } else {
                b.signers.len().to_string()
            };
            Row::new(vec![
                Cell::from(b.height.to_string()),
                Cell::from(cut(&b.hash, 8)),
                Cell::from(b.txs.len().to_string()),
                Cell::from(signed),
                Cell::from(ago(state.now_ms, b.time_ms)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(3),
            Constraint::Length(6),
            Constraint::Min(6),
        ],
    )
    .header(Row::new(["Height", "Hash", "Tx", "Signed", "Age"]).style(t.header))
    .row_highlight_style(t.selected)
    .highlight_symbol("▶")
    .block(block);
    let mut ts = TableState::default().with_selected(Some(state.blocks_sel));
    frame.render_stateful_widget(table, area, &mut ts);
}

fn draw_detail(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let Some(b) = state.blocks.get(state.blocks_sel) else {
        frame.render_widget(
            Paragraph::new(dim_line("select a block", t)).block(titled("Block", t)),
            area,
        );
        return;
    };
    let mut lines = vec![
        Line::from(format!("hash {}", cut(&b.hash, 24))),
        Line::from(format!(
            "proposer {}  round {}",
            state.name_of(&b.proposer),
            b.round
        )),
        Line::from(format!(
            "signed by {}",
            if b.signers.is_empty() {
                "—".to_string()
            } else {
                b.signers
                    .iter()
                    .map(|s| state.name_of(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
    ];
    if b.txs.is_empty() {
        lines.push(dim_line("no transactions", t));
    }
    for tx in &b.txs {
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", tx.kind), t.key_hint),
            Span::raw(format!("{} — {}", state.name_of(&tx.author), tx.detail)),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(titled(format!("Block {}", b.height), t)),
        area,
    );
}

fn draw_validators(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let validators: Vec<_> = state.members.iter().filter(|m| m.is_validator).collect();
    let latest = state.blocks.first();
    let mut lines: Vec<Line> = validators
        .iter()
        .map(|v| {
            let signed = latest.is_some_and(|b| {
                b.signers
                    .iter()
                    .any(|s| [&v.name, &v.account, &v.peer_id].contains(&s))
            });
            Line::from(vec![
                Span::styled(
                    if signed { "✔ " } else { "· " },
                    if signed { t.ok } else { t.dim },
                ),
                Span::raw(format!("{} ({})", v.name, v.role)),
            ])
        })
        .collect();
    if lines.is_empty() {
        lines.push(
            call_error(state, &["chain_members"])
                .unwrap_or_else(|| dim_line("no validators known", t)),
        );
    }
    let consents = state.consents.iter().filter(|c| c.active).count();
    lines.push(dim_line(
        format!(
            "consent records: {} ({consents} active; see 6)",
            state.consents.len()
        ),
        t,
    ));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(titled("Validators (✔ signed the newest)", t)),
        area,
    );
}

fn draw_verify(state: &State, frame: &mut Frame, area: Rect) {
    let t = &state.theme;
    let lines = match &state.verify {
        None => vec![dim_line("press v to re-check every block from genesis", t)],
        Some(VerifyState::Running { verified, total }) if *total > 0 => {
            let width = 20u64;
            let filled = (verified.saturating_mul(width) / total).min(width) as usize;
            vec![
                Line::from(Span::styled("verifying the chain… (blocks)", t.warn)),
                Line::from(vec![
                    Span::styled("█".repeat(filled), t.ok),
                    Span::styled("░".repeat(width as usize - filled), t.dim),
                    Span::raw(format!(
                        " {verified}/{total} ({}%)",
                        verified.saturating_mul(100) / total
                    )),
                ]),
            ]
        }
        Some(VerifyState::Running { .. }) => {
            vec![Line::from(Span::styled("verifying the chain…", t.warn))]
        }
        Some(VerifyState::Failed(e)) => vec![Line::from(Span::styled(
            format!("verify failed to run: {e}"),
            t.error,
        ))],
        Some(VerifyState::Done(r)) if r.ok => vec![
            Line::from(Span::styled(
                format!("chain OK up to height {}", r.height),
                t.ok,
            )),
            Line::from(format!(
                "{} blocks, {} transactions verified",
                r.blocks_verified, r.txs_verified
            )),
        ],
        Some(VerifyState::Done(r)) => vec![
            Line::from(Span::styled(
                format!(
                    "CHAIN INVALID at height {}",
                    r.failed_height
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "?".into())
                ),
                t.error,
            )),
            Line::from(r.reason.clone().unwrap_or_else(|| "no reason given".into())),
            Line::from(format!("{} blocks verified before it", r.blocks_verified)),
        ],
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(titled("Verify", t)),
        area,
    );
}
