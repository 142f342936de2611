//! Time: the clock in nanoseconds since the Unix epoch, its RFC 3339 rendering, and the
//! timestamp parser of the CSV inputs (`aiops detect`, `aiops rca`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 rendering of nanoseconds since the Unix epoch.
pub fn rfc3339(nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// 0001-01-01T00:00:00Z in epoch seconds.
const MIN_EPOCH_SECS: f64 = -62_135_596_800.0;
/// 9999-12-31T23:59:59Z in epoch seconds.
const MAX_EPOCH_SECS: f64 = 253_402_300_799.0;

/// Parses epoch seconds (integer or fractional; values above 10^11 are taken as milliseconds)
/// or an ISO 8601 date-time (`YYYY-MM-DD[T ]hh:mm[:ss[.frac]][Z|±hh[:mm]]`, or a bare date)
/// into epoch seconds. Date-times without an offset are taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s[1..].contains('-')
    {
        let v: f64 = s.parse().map_err(|_| "not a number".to_string())?;
        let v = if v.abs() >= 1e11 { v / 1000.0 } else { v };
        // Years 1 to 9999, as a date-time can say: beyond, the number is a mistake (and would
        // not fit the detectors' arithmetic on seconds).
        if !(MIN_EPOCH_SECS..=MAX_EPOCH_SECS).contains(&v) {
            return Err("epoch seconds out of range (years 1 to 9999)".into());
        }
        return Ok(v.floor() as i64);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = s.get(from..from + len).ok_or("too short")?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("expected digits at column {}", from + 1));
        }
        part.parse::<i64>().map_err(|e| e.to_string())
    };
    let sep = |at: usize, chars: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if chars.contains(c) => Ok(()),
            _ => Err(format!(
                "expected one of {:?} at column {}",
                String::from_utf8_lossy(chars),
                at + 1
            )),
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err("date out of range".into());
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    if b.len() == 10 {
        return Ok(secs);
    }
    sep(10, b"T t")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    let mut pos = 16;
    let mut second = 0;
    if b.get(pos) == Some(&b':') {
        second = num(17, 2)?;
        pos = 19;
        if matches!(b.get(pos), Some(b'.') | Some(b',')) {
            pos += 1;
            while b.get(pos).is_some_and(|c| c.is_ascii_digit()) {
                pos += 1;
            }
        }
    }
    if hour > 24 || minute > 59 || second > 60 {
        return Err("time out of range".into());
    }
    secs += hour * 3600 + minute * 60 + second;
    let rest = s[pos..].trim_start();
    match rest.as_bytes().first() {
        None => Ok(secs),
        Some(b'Z') | Some(b'z') if rest.len() == 1 => Ok(secs),
        Some(&c @ (b'+' | b'-')) => {
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if !(digits.len() == 2 || digits.len() == 4)
                || !digits.bytes().all(|d| d.is_ascii_digit())
            {
                return Err(format!("bad UTC offset `{rest}`"));
            }
            let oh: i64 = digits[..2].parse().map_err(|_| "bad offset")?;
            let om: i64 = if digits.len() == 4 {
                digits[2..].parse().map_err(|_| "bad offset")?
            } else {
                0
            };
            let off = oh * 3600 + om * 60;
            Ok(if c == b'+' { secs - off } else { secs + off })
        }
        _ => Err(format!("unexpected trailing text `{rest}`")),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_timestamp("2014-04-01 00:05:00"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("2014-04-01T00:05:00Z"), Ok(1_396_310_700));
        assert_eq!(
            parse_timestamp("2014-04-01T02:05:00+02:00"),
            Ok(1_396_310_700)
        );
        assert_eq!(
            parse_timestamp("2014-04-01T00:05:00.123"),
            Ok(1_396_310_700)
        );
        assert_eq!(parse_timestamp("2014-04-01T00:05"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("1396310700"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("1396310700000"), Ok(1_396_310_700));
        assert_eq!(parse_timestamp("2000-03-01"), Ok(951_868_800));
        assert!(parse_timestamp("2014-13-01 00:00:00").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        // A 20-digit number (the fuzzer's) is neither seconds nor milliseconds of a real date.
        assert!(parse_timestamp("16311600001331160000").is_err());
        assert!(parse_timestamp("NaN").is_err());
        assert_eq!(parse_timestamp("253402300799"), Ok(253_402_300));
        assert!(parse_timestamp("2014-04-01 00:05:00 junk").is_err());
    }
}
