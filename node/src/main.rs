//! qward binary.
fn main() {}
