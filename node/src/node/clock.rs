//! The node's wall clock, as the unix milliseconds `core` takes as a value.

/// Unix time in milliseconds (0 before 1970, which no real clock reports).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
