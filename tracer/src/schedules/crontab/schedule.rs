//! The five time fields of a crontab line as the daemon holds them after parsing, and
//! the question "does this wall-clock minute match". When it fires in real time (DST
//! gaps and folds, the daemons' catch-up rules) is `clock.rs`'s job.
use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ZonedDateTime};
use serde::Serialize;

use super::clock;
use crate::schedules::Daemon;

/// How the day-of-month and day-of-week fields combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DayRule {
    /// Both must match: Vixie cron and cronie when either field's text starts with `*`
    /// (entry.c sets DOM_STAR/DOW_STAR from the first character, so `*/2` counts as a
    /// star there).
    #[default]
    Both,
    /// Either may match: both fields restricted (Vixie lineage), or always in busybox,
    /// which instead empties the unrestricted field's table (crond.c `FixDayDow`).
    Either,
}

/// The parsed time fields of one entry, as bit sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Bit `m` for minute `m` (0..=59).
    pub(crate) minutes: u64,
    /// Bit `h` for hour `h` (0..=23).
    pub(crate) hours: u32,
    /// Bit `d` for day of month `d` (1..=31).
    pub(crate) doms: u32,
    /// Bit `m` for month `m` (1..=12).
    pub(crate) months: u16,
    /// Bit `w` for weekday `w` (0..=6, Sunday = 0; a written 7 is folded into 0).
    pub(crate) dows: u8,
    pub(crate) day_rule: DayRule,
    /// Vixie's MIN_STAR|HR_STAR: the minute or hour field starts with `*` (or
    /// `@hourly`). Such jobs are "wildcard" jobs for the DST rules in cron.c.
    pub(crate) wildcard: bool,
    pub(crate) reboot: bool,
}

/// Why a job starts at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FireReason {
    /// Its wall-clock minute came.
    Scheduled,
    /// The clock jumped forward over its wall-clock time (spring forward) and the daemon
    /// runs it late, at the first minute after the jump (Vixie/cronie fixed-time jobs).
    CatchUpAfterDst,
    /// Its wall-clock minute came a second time after the clock went back (fall back).
    RepeatAfterDst,
}

/// One start of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fire {
    /// When the daemon starts it (the start of the minute; the daemon wakes a second or
    /// so later, and catch-up runs are spaced ten seconds apart).
    pub at: Timestamp,
    /// The wall-clock minute of the schedule this start stands for.
    pub scheduled: DateTime,
    pub why: FireReason,
}

/// Minutes since 1970-01-01T00:00 on a wall clock: the "virtual time" cron.c counts in.
pub(crate) type CivilMinute = i64;

/// No search looks further than this; `next_fires` returns what it found by then.
pub const SEARCH_YEARS: i64 = 8;
const MAX_STEPS: usize = 100_000;

impl Schedule {
    pub fn is_reboot(&self) -> bool {
        self.reboot
    }

    /// True when the schedule can never match (e.g. `5-1` parsed to an empty set by
    /// Vixie cron, or `0 0 31 2 *`), as far as the bit sets alone tell.
    pub fn is_empty(&self) -> bool {
        self.reboot
            || self.minutes == 0
            || self.hours == 0
            || self.months == 0
            || match self.day_rule {
                DayRule::Both => self.doms == 0 || self.dows == 0,
                DayRule::Either => self.doms == 0 && self.dows == 0,
            }
    }

    /// Vixie's wildcard/fixed-time distinction (see [`Schedule::wildcard`]).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    pub fn day_matches(&self, date: Date) -> bool {
        let dom = self.doms & (1 << date.day()) != 0;
        let dow = self.dows & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match self.day_rule {
            DayRule::Both => dom && dow,
            DayRule::Either => dom || dow,
        }
    }

    /// Does this wall-clock minute match all five fields?
    pub fn matches(&self, dt: DateTime) -> bool {
        !self.reboot
            && self.months & (1 << dt.month()) != 0
            && self.hours & (1 << dt.hour()) != 0
            && self.minutes & (1 << dt.minute()) != 0
            && self.day_matches(dt.date())
    }

    pub(crate) fn matches_minute(&self, l: CivilMinute) -> bool {
        civil_of(l).is_some_and(|dt| self.matches(dt))
    }

    /// The first matching wall-clock minute in `[from, limit]`, jumping over whole
    /// months, days and hours that cannot match, so a search over years is a few
    /// thousand steps.
    pub(crate) fn next_match(&self, from: CivilMinute, limit: CivilMinute) -> Option<CivilMinute> {
        if self.is_empty() || from > limit {
            return None;
        }
        let mut dt = civil_of(from)?;
        for _ in 0..MAX_STEPS {
            let l = minute_of(dt)?;
            if l > limit {
                return None;
            }
            let date = dt.date();
            if self.months & (1 << date.month()) == 0 {
                let next = date
                    .first_of_month()
                    .checked_add(jiff::Span::new().months(1))
                    .ok()?;
                dt = midnight(next)?;
                continue;
            }
            if !self.day_matches(date) {
                dt = midnight(date.tomorrow().ok()?)?;
                continue;
            }
            let hour = dt.hour() as u32;
            let later_hours = self.hours >> hour;
            if later_hours == 0 {
                dt = midnight(date.tomorrow().ok()?)?;
                continue;
            }
            if later_hours & 1 == 0 {
                let h = hour + later_hours.trailing_zeros();
                dt = DateTime::new(date.year(), date.month(), date.day(), h as i8, 0, 0, 0).ok()?;
                continue;
            }
            let minute = dt.minute() as u32;
            let later_minutes = self.minutes >> minute;
            if later_minutes == 0 {
                // No match left in this hour: go to the start of the next hour.
                dt = if hour == 23 {
                    midnight(date.tomorrow().ok()?)?
                } else {
                    DateTime::new(
                        date.year(),
                        date.month(),
                        date.day(),
                        hour as i8 + 1,
                        0,
                        0,
                        0,
                    )
                    .ok()?
                };
                continue;
            }
            let m = minute + later_minutes.trailing_zeros();
            let at = DateTime::new(
                date.year(),
                date.month(),
                date.day(),
                hour as i8,
                m as i8,
                0,
                0,
            )
            .ok()?;
            let l = minute_of(at)?;
            return (l <= limit).then_some(l);
        }
        None
    }

    /// Every matching wall-clock minute in `[lo, hi]`, in order.
    pub(crate) fn matches_in(
        &self,
        lo: CivilMinute,
        hi: CivilMinute,
    ) -> impl Iterator<Item = CivilMinute> + '_ {
        let mut cur = lo;
        std::iter::from_fn(move || {
            let found = self.next_match(cur, hi)?;
            cur = found + 1;
            Some(found)
        })
    }

    /// Instants in `(from, to]` at which `daemon`, running in `tz`, starts this entry,
    /// following that daemon's own handling of DST and other clock jumps (`clock.rs`).
    /// `tz` is both the daemon's zone and the zone the entry is evaluated in; for a
    /// cronie entry with its own `CRON_TZ` use [`Schedule::fires_between_zones`].
    /// Empty for `@reboot`. At most `clock::MAX_FIRES` results.
    pub fn fires_between(
        &self,
        tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        daemon: Daemon,
    ) -> Vec<Fire> {
        clock::fires(self, daemon, tz, None, from, to)
    }

    /// Like [`Schedule::fires_between`] for an entry evaluated in `job_tz` (cronie's
    /// `CRON_TZ`) by a daemon whose own clock runs in `daemon_tz`: cronie still takes
    /// its DST decisions from the daemon's zone (cron.c `find_jobs`).
    pub fn fires_between_zones(
        &self,
        daemon_tz: &TimeZone,
        job_tz: Option<&TimeZone>,
        from: Timestamp,
        to: Timestamp,
        daemon: Daemon,
    ) -> Vec<Fire> {
        clock::fires(self, daemon, daemon_tz, job_tz, from, to)
    }

    /// The next `n` starts after `after`, searching at most [`SEARCH_YEARS`] ahead.
    pub fn next_fires(
        &self,
        tz: &TimeZone,
        after: Timestamp,
        n: usize,
        daemon: Daemon,
    ) -> Vec<ZonedDateTime> {
        self.next_fires_zones(tz, None, after, n, daemon)
    }

    pub fn next_fires_zones(
        &self,
        daemon_tz: &TimeZone,
        job_tz: Option<&TimeZone>,
        after: Timestamp,
        n: usize,
        daemon: Daemon,
    ) -> Vec<ZonedDateTime> {
        let mut out = Vec::new();
        if n == 0 || self.is_empty() {
            return out;
        }
        let shown_in = job_tz.unwrap_or(daemon_tz).clone();
        let end = after
            .as_second()
            .saturating_add(SEARCH_YEARS * 366 * 86_400);
        let mut from = after;
        // Windows grow from a day, so frequent schedules stay cheap and rare ones
        // (`0 0 29 2 *`) need only a dozen windows to cover the years.
        let mut width: i64 = 86_400;
        while out.len() < n && from.as_second() < end {
            let to_s = from.as_second().saturating_add(width).min(end);
            let Ok(to) = Timestamp::from_second(to_s) else {
                break;
            };
            for fire in clock::fires(self, daemon, daemon_tz, job_tz, from, to) {
                if out.len() == n {
                    break;
                }
                out.push(fire.at.to_zoned_datetime(shown_in.clone()));
            }
            from = to;
            width = width.saturating_mul(2);
        }
        out
    }
}

pub(crate) fn civil_of(l: CivilMinute) -> Option<DateTime> {
    let ts = Timestamp::from_second(l.checked_mul(60)?).ok()?;
    Some(Offset::UTC.to_datetime(ts))
}

pub(crate) fn minute_of(dt: DateTime) -> Option<CivilMinute> {
    let ts = Offset::UTC.to_timestamp(dt).ok()?;
    Some(ts.as_second().div_euclid(60))
}

fn midnight(date: Date) -> Option<DateTime> {
    DateTime::new(date.year(), date.month(), date.day(), 0, 0, 0, 0).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A schedule from explicit values, independent of any parser.
    pub(crate) fn sched(
        min: &[u32],
        hour: &[u32],
        dom: &[u32],
        month: &[u32],
        dow: &[u32],
        rule: DayRule,
    ) -> Schedule {
        Schedule {
            minutes: min.iter().fold(0, |a, v| a | 1 << v),
            hours: hour.iter().fold(0, |a, v| a | 1 << v),
            doms: dom.iter().fold(0, |a, v| a | 1 << v),
            months: month.iter().fold(0, |a, v| a | 1 << v),
            dows: dow.iter().fold(0, |a, v| a | 1 << v),
            day_rule: rule,
            wildcard: false,
            reboot: false,
        }
    }

    pub(crate) fn all(lo: u32, hi: u32) -> Vec<u32> {
        (lo..=hi).collect()
    }

    fn dt(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn next_match_skips_to_the_right_minute() {
        // 30 4 1,15 * 5 (OR rule): 4:30 on the 1st, the 15th and every Friday.
        let s = sched(&[30], &[4], &[1, 15], &all(1, 12), &[5], DayRule::Either);
        let start = minute_of(dt("2026-01-02T00:00")).unwrap(); // a Friday
        let got: Vec<DateTime> = s
            .matches_in(start, start + 22 * 1440)
            .map(|l| civil_of(l).unwrap())
            .collect();
        let want: Vec<DateTime> = [
            "2026-01-02T04:30",
            "2026-01-09T04:30",
            "2026-01-15T04:30",
            "2026-01-16T04:30",
            "2026-01-23T04:30",
        ]
        .iter()
        .map(|s| dt(s))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn both_rule_needs_day_and_weekday() {
        // Vixie: `0 0 */2 * sun` has DOM_STAR, so only Sundays with an odd date.
        let odd: Vec<u32> = (1..=31).step_by(2).collect();
        let s = sched(&[0], &[0], &odd, &all(1, 12), &[0], DayRule::Both);
        let start = minute_of(dt("2026-03-01T00:00")).unwrap(); // Sunday the 1st
        let got: Vec<DateTime> = s
            .matches_in(start, start + 31 * 1440)
            .map(|l| civil_of(l).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                dt("2026-03-01T00:00"),
                dt("2026-03-15T00:00"),
                dt("2026-03-29T00:00")
            ]
        );
    }

    #[test]
    fn feb_29_is_found_years_ahead_in_few_steps() {
        let s = sched(&[0], &[0], &[29], &[2], &all(0, 6), DayRule::Both);
        let start = minute_of(dt("2026-03-01T00:00")).unwrap();
        let limit = start + SEARCH_YEARS * 366 * 1440;
        assert_eq!(
            civil_of(s.next_match(start, limit).unwrap()).unwrap(),
            dt("2028-02-29T00:00")
        );
        // Feb 31 never exists: the bounded search gives up instead of looping.
        let never = sched(&[0], &[0], &[31], &[2], &all(0, 6), DayRule::Both);
        assert_eq!(never.next_match(start, limit), None);
    }

    #[test]
    fn empty_sets_never_match() {
        let s = sched(&[], &[0], &[1], &[1], &[0], DayRule::Both);
        assert!(s.is_empty());
        assert_eq!(s.next_match(0, 10_000_000), None);
    }
}
