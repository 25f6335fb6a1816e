//! UTC calendar arithmetic, once for every date petitlab writes or reads:
//! the store's times, HTTP dates, IPMI SEL and FRU times, the simulated
//! Redfish log. Howard Hinnant's `civil_from_days` / `days_from_civil`.

/// The date (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = ((mp + 2) % 12 + 1) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count since 1970-01-01 of a date (month 1-12).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch as (year, month, day, hour, minute, second), UTC.
pub fn utc_fields(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (
        year,
        i64::from(month),
        i64::from(day),
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
    )
}

/// `HH:MM:SS` (UTC) of a time in unix milliseconds.
pub fn hms(ms: i64) -> String {
    let (_, _, _, h, m, s) = utc_fields(ms.div_euclid(1000));
    format!("{h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_both_ways() {
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        // 2000-02-29 12:34:56 (a leap day in a century leap year).
        assert_eq!(utc_fields(951_827_696), (2000, 2, 29, 12, 34, 56));
        assert_eq!(utc_fields(-1), (1969, 12, 31, 23, 59, 59));
        for days in [-800_000, -1, 0, 59, 10_957, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
