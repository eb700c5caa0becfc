//! The control API: JSON-RPC 2.0 over WebSocket on 127.0.0.1, authenticated by
//! a cookie file in the data directory; the CLI and the TUI are its clients.

pub mod client;
pub mod cookie;
pub mod server;

pub use client::ApiClient;
pub use cookie::Cookie;
pub use server::{Handler, HandlerFuture, serve};
