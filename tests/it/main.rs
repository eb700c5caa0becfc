//! qward's workspace-wide and multi-node integration tests: one test binary, a module per concern.

mod house_style;
mod network;
