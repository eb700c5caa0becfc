//! Log set-up: `tracing` to stderr (and into the node's recent-lines buffer),
//! as text or JSON lines, at the level the user picks.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::logbuf::LogBuffer;

static BUFFER: OnceLock<LogBuffer> = OnceLock::new();

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The process-wide buffer of recent log lines.
pub fn buffer() -> LogBuffer {
    BUFFER.get_or_init(LogBuffer::new).clone()
}

/// Installs the global subscriber. `level` is a level name or a full
/// `tracing` filter (`info,libp2p=warn`). Safe to call more than once.
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level '{level}': {e}"))?;
    let ansi = !qward_tui::theme::no_color_requested()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(buffer())
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    // A second call (tests) finds a subscriber already installed: keep it.
    let _ = result;
    Ok(())
}
