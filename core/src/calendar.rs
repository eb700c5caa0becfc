//! Civil dates for people: unix milliseconds to a UTC `YYYY-MM-DD`, shared
//! by the node's messages and the terminal UI.

/// A civil date (UTC) `YYYY-MM-DD` for unix milliseconds.
pub fn utc_date(ms: u64) -> String {
    // Howard Hinnant's days-from-civil inverse.
    let days = (ms / 86_400_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A UTC date and time `YYYY-MM-DD HH:MM` for unix milliseconds.
pub fn utc_minute(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{} {:02}:{:02}", utc_date(ms), s / 3600, (s / 60) % 60)
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn dates_across_epochs_leap_days_and_centuries() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(super::utc_minute(90_061_000), "1970-01-02 01:01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(951_868_799_999), "2000-02-29");
        assert_eq!(utc_date(951_868_800_000), "2000-03-01");
        assert_eq!(utc_date(4_107_542_400_000), "2100-03-01");
        assert_eq!(utc_date(1_796_601_600_000), "2026-12-07");
    }
}
