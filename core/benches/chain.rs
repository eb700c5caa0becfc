//! Chain benchmarks (filled in below).
fn main() {}
