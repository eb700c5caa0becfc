//! The node's integration tests, in one binary (modules per subsystem).

mod chain;
