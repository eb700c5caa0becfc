//! qward-node: everything that does I/O (storage, networking, timers, the control
//! API) and the `qward` command line, built on the pure logic of `qward-core`.

pub mod cli;
pub mod db;
pub mod net;
