//! Which snapshots a retention policy keeps (restic's `forget` semantics,
//! applied per mailbox).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::snapshot::{SnapshotId, SnapshotSummary};

/// What to keep. A snapshot is kept when any rule keeps it. Rules with 0
/// are off. Per rule "keep N": going from the newest snapshot to the oldest,
/// the newest snapshot of each of the N most recent periods (hours, days,
/// ISO weeks, months, years) that have a snapshot is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPolicy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// Snapshots carrying any of these tags are always kept.
    pub keep_tags: Vec<String>,
    /// A pack whose unused fraction of bytes is at least this (0.0 ..= 1.0)
    /// is rewritten with only its used blobs; packs with no used blob are
    /// always deleted.
    pub repack_threshold: f64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 0,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
            keep_tags: Vec::new(),
            repack_threshold: 0.2,
        }
    }
}

impl RetentionPolicy {
    /// Keep the last `n` snapshots of each mailbox.
    pub fn keep_last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: n,
            ..Default::default()
        }
    }

    /// True when no rule keeps anything (such a policy is refused: it
    /// would forget every snapshot).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.keep_tags.is_empty()
    }
}

/// The decision for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub id: SnapshotId,
    /// Empty when the snapshot is forgotten; else the rules that keep it
    /// (`last`, `daily`, …).
    pub reasons: Vec<&'static str>,
}

type Bucket = fn(OffsetDateTime) -> i64;

fn hour(t: OffsetDateTime) -> i64 {
    day(t) * 24 + i64::from(t.hour())
}
fn day(t: OffsetDateTime) -> i64 {
    i64::from(t.date().to_julian_day())
}
fn week(t: OffsetDateTime) -> i64 {
    let (y, w, _) = t.date().to_iso_week_date();
    i64::from(y) * 100 + i64::from(w)
}
fn month(t: OffsetDateTime) -> i64 {
    i64::from(t.year()) * 100 + i64::from(t.month() as u8)
}
fn year(t: OffsetDateTime) -> i64 {
    i64::from(t.year())
}

/// Applies `policy` to `snapshots` (per mailbox; times compared in UTC).
pub fn apply(policy: &RetentionPolicy, snapshots: &[SnapshotSummary]) -> Vec<Decision> {
    let mut by_mailbox: BTreeMap<&str, Vec<&SnapshotSummary>> = BTreeMap::new();
    for s in snapshots {
        by_mailbox.entry(s.mailbox_id.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (_, mut group) in by_mailbox {
        // Newest first.
        group.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
        let mut rules: Vec<(&'static str, u32, Option<Bucket>, Option<i64>)> = vec![
            ("last", policy.keep_last, None, None),
            ("hourly", policy.keep_hourly, Some(hour as Bucket), None),
            ("daily", policy.keep_daily, Some(day as Bucket), None),
            ("weekly", policy.keep_weekly, Some(week as Bucket), None),
            ("monthly", policy.keep_monthly, Some(month as Bucket), None),
            ("yearly", policy.keep_yearly, Some(year as Bucket), None),
        ];
        for s in group {
            let t = s.time.to_offset(time::UtcOffset::UTC);
            let mut reasons = Vec::new();
            if s.tags.iter().any(|t| policy.keep_tags.contains(t)) {
                reasons.push("tag");
            }
            for (name, left, bucket, last) in rules.iter_mut() {
                if *left == 0 {
                    continue;
                }
                match bucket {
                    None => {
                        reasons.push(*name);
                        *left -= 1;
                    }
                    Some(f) => {
                        let b = f(t);
                        if *last != Some(b) {
                            *last = Some(b);
                            reasons.push(*name);
                            *left -= 1;
                        }
                    }
                }
            }
            out.push(Decision {
                id: s.id.clone(),
                reasons,
            });
        }
    }
    out
}
