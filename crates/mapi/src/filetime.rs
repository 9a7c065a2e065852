//! PtypTime values: FILETIME ticks (100 ns since 1601-01-01 UTC) and their
//! conversion to `time::OffsetDateTime` and ISO 8601 text.

use time::{OffsetDateTime, UtcOffset};

/// Ticks between 1601-01-01 and 1970-01-01.
const EPOCH_DIFF: i128 = 116_444_736_000_000_000;

/// A PtypTime value: FILETIME ticks, 100 ns since 1601-01-01 UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileTime(pub u64);

impl FileTime {
    /// From Unix seconds (whole seconds).
    pub fn from_unix(secs: i64) -> FileTime {
        FileTime((secs as i128 * 10_000_000 + EPOCH_DIFF).clamp(0, u64::MAX as i128) as u64)
    }

    /// From a date-time (sub-100-ns precision is truncated).
    pub fn from_datetime(dt: OffsetDateTime) -> FileTime {
        let ticks = dt.unix_timestamp_nanos() / 100 + EPOCH_DIFF;
        FileTime(ticks.clamp(0, u64::MAX as i128) as u64)
    }

    /// As a UTC date-time (None when outside the range `time` can represent).
    pub fn to_datetime(self) -> Option<OffsetDateTime> {
        let nanos = (self.0 as i128 - EPOCH_DIFF) * 100;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .map(|d| d.to_offset(UtcOffset::UTC))
    }

    /// Unix seconds (floor).
    pub fn unix_seconds(self) -> i64 {
        (self.0 as i128 - EPOCH_DIFF).div_euclid(10_000_000) as i64
    }

    /// ISO 8601 in UTC as Graph writes it: `2024-01-01T00:00:00Z`; a non-zero
    /// fraction is written with up to 7 digits (trailing zeros dropped).
    pub fn to_iso8601(self) -> String {
        let Some(dt) = self.to_datetime() else {
            return format!("FILETIME({})", self.0);
        };
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        let frac = (self.0 as i128 - EPOCH_DIFF).rem_euclid(10_000_000);
        if frac != 0 {
            let digits = format!("{frac:07}");
            s.push('.');
            s.push_str(digits.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fffffff](Z|±HH:MM)`.
    pub fn parse_iso8601(s: &str) -> Option<FileTime> {
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let mut rest = &s[19..];
        let mut frac_ticks = 0i64;
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let digits = &r[..n];
            let mut padded: String = digits.chars().take(7).collect();
            while padded.len() < 7 {
                padded.push('0');
            }
            frac_ticks = padded.parse().ok()?;
            rest = &r[n..];
        }
        let offset_secs = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let t = &rest[1..];
                if t.len() != 5 || t.as_bytes()[2] != b':' {
                    return None;
                }
                let oh: i64 = t[..2].parse().ok()?;
                let om: i64 = t[3..].parse().ok()?;
                sign * (oh * 3600 + om * 60)
            }
        };
        let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
        let date =
            time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
                .ok()?;
        let tm = time::Time::from_hms(
            u8::try_from(h).ok()?,
            u8::try_from(mi).ok()?,
            u8::try_from(se).ok()?,
        )
        .ok()?;
        let secs = date.with_time(tm).assume_utc().unix_timestamp() - offset_secs;
        Some(FileTime(
            u64::try_from(secs as i128 * 10_000_000 + EPOCH_DIFF + frac_ticks as i128).ok()?,
        ))
    }
}

impl From<OffsetDateTime> for FileTime {
    fn from(dt: OffsetDateTime) -> FileTime {
        FileTime::from_datetime(dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        let t = FileTime::from_unix(1_704_067_200); // 2024-01-01T00:00:00Z
        assert_eq!(t.0, 133_485_408_000_000_000);
        assert_eq!(t.to_iso8601(), "2024-01-01T00:00:00Z");
        assert_eq!(t.unix_seconds(), 1_704_067_200);
        let dt = t.to_datetime().unwrap();
        assert_eq!(dt.year(), 2024);
        assert_eq!(FileTime::from_datetime(dt), t);
        assert_eq!(
            FileTime(t.0 + 1_234_500).to_iso8601(),
            "2024-01-01T00:00:00.12345Z"
        );
        assert_eq!(FileTime(0).to_iso8601(), "1601-01-01T00:00:00Z");
        assert_eq!(FileTime::parse_iso8601("2024-01-01T00:00:00Z"), Some(t));
        assert_eq!(
            FileTime::parse_iso8601("2024-01-01T01:00:00.12345+01:00"),
            Some(FileTime(t.0 + 1_234_500))
        );
        assert_eq!(FileTime::parse_iso8601("2024-13-01T00:00:00Z"), None);
        assert_eq!(FileTime::parse_iso8601("yesterday"), None);
    }
}
