//! qward-core: the pure logic of a qward node (no I/O, no clock, no global RNG).
//!
//! Randomness enters as a `&mut (impl RngCore + CryptoRng)` argument and time
//! as a value, so every test here is deterministic from a seed.

pub mod access_log;
pub mod api;
pub mod calendar;
pub mod chain;
pub mod codec;
pub mod consensus;
pub mod envelope;
pub mod etsi014;
pub mod fhir;
pub mod hybrid;
pub mod identity;
pub mod keyagree;
pub mod keystore;
pub mod qkd;
pub mod storage;
pub mod vault;
