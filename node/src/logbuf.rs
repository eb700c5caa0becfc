//! The node's recent log lines: a writer that tees formatted log output to
//! stderr and into a bounded ring buffer that the control API serves (`logs`)
//! and pushes to subscribers (`Event::Log`).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use qward_core::api::{Event, LogLine};
use tokio::sync::broadcast;
use tracing_subscriber::fmt::MakeWriter;

/// Lines kept for `logs`.
pub const KEPT_LINES: usize = 2000;

/// Shared ring buffer of recent log lines, with an optional event sink.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    partial: Vec<u8>,
    events: Option<broadcast::Sender<Event>>,
}

impl LogBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, every line is also sent as an `Event::Log`.
    pub fn attach_events(&self, events: broadcast::Sender<Event>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.events = Some(events);
        }
    }

    /// The newest `limit` lines, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<LogLine> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let skip = inner.lines.len().saturating_sub(limit);
        inner.lines.iter().skip(skip).cloned().collect()
    }

    fn push_bytes(&self, buf: &[u8]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.partial.extend_from_slice(buf);
        while let Some(pos) = inner.partial.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = inner.partial.drain(..=pos).collect();
            let text = strip_ansi(&String::from_utf8_lossy(&raw[..raw.len() - 1]));
            if text.trim().is_empty() {
                continue;
            }
            let line = LogLine {
                time_ms: now_ms(),
                level: level_of(&text).to_string(),
                line: text,
            };
            if let Some(events) = &inner.events {
                let _ = events.send(Event::Log {
                    level: line.level.clone(),
                    line: line.line.clone(),
                });
            }
            if inner.lines.len() >= KEPT_LINES {
                inner.lines.pop_front();
            }
            inner.lines.push_back(line);
        }
        if inner.partial.len() > 64 * 1024 {
            inner.partial.clear();
        }
    }
}

fn level_of(line: &str) -> &'static str {
    for level in ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] {
        if line.contains(level) {
            return match level {
                "ERROR" => "error",
                "WARN" => "warn",
                "INFO" => "info",
                "DEBUG" => "debug",
                _ => "trace",
            };
        }
    }
    "info"
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A writer for one log event: stderr plus the buffer.
#[derive(Debug)]
pub struct TeeWriter {
    buffer: LogBuffer,
}

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        self.buffer.push_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter {
            buffer: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_whole_lines_with_levels_and_bounds_the_buffer() {
        let buf = LogBuffer::new();
        buf.push_bytes(b"2026 \x1b[32m INFO\x1b[0m finalized block 3\n2026  WARN par");
        buf.push_bytes(b"tial line\n");
        let lines = buf.recent(10);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "info");
        assert!(lines[0].line.contains("finalized block 3") && !lines[0].line.contains('\u{1b}'));
        assert_eq!(lines[1].level, "warn");
        assert!(lines[1].line.ends_with("partial line"));
        for i in 0..KEPT_LINES + 5 {
            buf.push_bytes(format!("INFO line {i}\n").as_bytes());
        }
        let all = buf.recent(usize::MAX);
        assert_eq!(all.len(), KEPT_LINES);
        assert!(
            all.last()
                .unwrap()
                .line
                .ends_with(&format!("line {}", KEPT_LINES + 4))
        );
        assert_eq!(buf.recent(3).len(), 3);
    }
}
