//! qward-node: everything that does I/O (storage, networking, timers, the control
//! API) and the `qward` command line, built on the pure logic of `qward-core`.

pub mod api;
pub mod chain;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod datadir;
pub mod db;
pub mod devnet;
pub mod kme;
pub mod logbuf;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod node;
pub mod vault;
