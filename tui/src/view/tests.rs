//! Snapshot tests of `view`.
