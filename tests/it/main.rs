//! qward's workspace-wide and multi-node integration tests: one test binary, a module per concern.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod api;
mod byzantine;
mod cli;
mod hostile;
mod house_style;
mod kme;
mod messaging;
mod metrics;
mod network;
mod protection;
mod readme;
mod timing;
mod tui_e2e;
mod twin;
