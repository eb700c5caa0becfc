//! The control API: JSON-RPC 2.0 over HTTP and WebSocket on one 127.0.0.1
//! port (jsonrpsee), one typed trait for the node and its clients, a cookie
//! file in the data directory as the credential; the CLI and the TUI are its
//! clients.

pub mod auth;
pub mod calls;
pub mod client;
pub mod cookie;
pub mod gate;
pub mod rpc;
pub mod server;

pub use client::{ApiClient, TimedOut, Unreachable, call_error, error_code, error_text};
pub use cookie::Cookie;
pub use gate::ReadyCheck;
pub use rpc::{QwardApiClient, QwardApiServer};
pub use server::{pipe_events, pipe_events_while, serve, serve_with_gate};
