//! When a schedule fires in real time, per daemon. The daemons disagree most where the
//! wall clock is not a simple function of real time (DST), so each is modelled from
//! its own main loop:
//!
//! * Debian cron and cronie (cron.c `main`) wake every real minute and compare the
//!   local wall-clock minute with a "virtual time" they advance themselves. A jump of
//!   2..=5 minutes runs every skipped minute; a forward jump up to three hours (spring
//!   forward) runs wildcard jobs (minute or hour field starting with `*`) once for the
//!   new minute and fixed-time jobs for every skipped minute, at once; a backward jump
//!   under three hours (fall back) runs only wildcard jobs until the clock has caught
//!   up, so fixed-time jobs are not repeated; larger jumps restart the virtual clock.
//! * cronie evaluates an entry with `CRON_TZ` at every real minute in that zone, but
//!   skips fixed-time `CRON_TZ` jobs while the daemon's own zone is repeating an hour
//!   (cron.c `find_jobs`, `vGMToff != GMToff` and the wildcard-only pass).
//! * busybox crond (crond.c `flag_starting_jobs`) checks each real minute with
//!   `localtime()`: times in a spring-forward gap never come, times in a fall-back fold
//!   come twice.
//!
//! Everything is computed in stretches of constant UTC offset, so a window of days
//! costs a few civil-calendar jumps per match, not one step per minute.
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::schedule::{civil_of, CivilMinute, Fire, FireReason, Schedule};
use crate::schedules::Daemon;

/// Upper bound on the starts one call returns (about two years of an every-minute job),
/// so a careless window cannot exhaust memory.
pub const MAX_FIRES: usize = 1_000_000;
/// Real minutes simulated before the window so the virtual clock has settled: a DST
/// effect lasts at most the three hours cron.c treats as a time change.
const WARM_UP_MINUTES: i64 = 4 * 60;
/// A zone has a few transitions a year; this caps the walk for absurd windows.
const MAX_TRANSITIONS: usize = 10_000;

pub(crate) fn fires(
    sched: &Schedule,
    daemon: Daemon,
    daemon_tz: &TimeZone,
    job_tz: Option<&TimeZone>,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Fire> {
    let mut out = Vec::new();
    if sched.is_empty() || to <= from {
        return out;
    }
    // Real minutes whose start lies in (from, to].
    let first = from.as_second().div_euclid(60) + 1;
    let last = to.as_second().div_euclid(60);
    if first > last {
        return out;
    }
    let window = Window { first, last };
    match (daemon, job_tz) {
        (Daemon::BusyboxCrond, _) => per_real_minute(sched, daemon_tz, &window, &[], &mut out),
        (Daemon::Cronie, Some(job_tz)) => {
            // Fixed-time CRON_TZ jobs are not looked at while cronie's own clock repeats.
            let stuck = if sched.wildcard {
                Vec::new()
            } else {
                stuck_minutes(daemon, daemon_tz, &window)
            };
            per_real_minute(sched, job_tz, &window, &stuck, &mut out)
        }
        _ => virtual_clock(sched, daemon, daemon_tz, &window, &mut out),
    }
    out
}

/// Inclusive range of real minutes (minutes since the epoch, UTC) to report fires in.
struct Window {
    first: i64,
    last: i64,
}

impl Window {
    fn contains(&self, m: i64) -> bool {
        (self.first..=self.last).contains(&m)
    }
}

fn push(out: &mut Vec<Fire>, real_minute: i64, civil: CivilMinute, why: FireReason) {
    if out.len() >= MAX_FIRES {
        return;
    }
    let (Some(at), Some(scheduled)) = (
        Timestamp::from_second(real_minute.saturating_mul(60)).ok(),
        civil_of(civil),
    ) else {
        return;
    };
    out.push(Fire { at, scheduled, why });
}

/// A stretch of real minutes `[first, last]` during which the zone's offset is constant.
struct Stretch {
    first: i64,
    last: i64,
    offset_s: i64,
}

impl Stretch {
    /// The wall-clock minute at real minute `m` (cron.c: `(time + GMToff) / 60`).
    fn local(&self, m: i64) -> CivilMinute {
        (m * 60 + self.offset_s).div_euclid(60)
    }
}

/// Splits real minutes `[first, last]` where `tz` changes offset; a change takes effect
/// at the first whole minute at or after the transition.
fn stretches(tz: &TimeZone, first: i64, last: i64) -> Vec<Stretch> {
    let mut out = Vec::new();
    let offset_at = |m: i64| -> i64 {
        Timestamp::from_second(m.saturating_mul(60))
            .map_or(0, |ts| i64::from(tz.to_offset(ts).seconds()))
    };
    let mut start = first;
    if let Ok(ts) = Timestamp::from_second(first.saturating_mul(60)) {
        for tr in tz.following(ts).take(MAX_TRANSITIONS) {
            let boundary = tr.timestamp().as_second().div_euclid(60)
                + i64::from(tr.timestamp().as_second().rem_euclid(60) != 0);
            if boundary > last {
                break;
            }
            if boundary > start {
                out.push(Stretch {
                    first: start,
                    last: boundary - 1,
                    offset_s: offset_at(start),
                });
                start = boundary;
            }
        }
    }
    out.push(Stretch {
        first: start,
        last,
        offset_s: offset_at(start),
    });
    out
}

/// How cron.c classifies the difference between the wall clock and its virtual clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Jump {
    /// 2..=5 minutes ahead: run every skipped minute.
    Small,
    /// Up to three hours ahead: wildcard jobs for now, fixed-time jobs for each skipped minute.
    Medium,
    /// Behind, by less than three hours: wildcard jobs only; the virtual clock waits.
    Negative,
    /// Three hours or more either way: a clock correction, run what matches now.
    Large,
}

fn classify(daemon: Daemon, diff: i64) -> Jump {
    let limit = 3 * 60;
    match daemon {
        // Debian cron.c: wakeupKind starts at -1 and is raised by `timeDiff > -180`,
        // `> 0`, `> 5`, `> 180`, so exactly -180 is a correction.
        Daemon::DebianCron => match diff {
            d if d > limit => Jump::Large,
            d if d > 5 => Jump::Medium,
            d if d > 0 => Jump::Small,
            d if d > -limit => Jump::Negative,
            _ => Jump::Large,
        },
        // cronie cron.c: `timeDiff > 180 || timeDiff < -180` is large, so -180 is negative.
        _ => match diff {
            d if !(-limit..=limit).contains(&d) => Jump::Large,
            d if d > 5 => Jump::Medium,
            d if d > 0 => Jump::Small,
            _ => Jump::Negative,
        },
    }
}

/// What the virtual-clock loop does in a stretch of real minutes.
enum Step {
    /// Each real minute from `first` runs everything matching its own wall-clock minute.
    Normal {
        first: i64,
        local: CivilMinute,
        len: i64,
    },
    /// Each real minute from `first` is a wall-clock minute already passed: wildcard jobs only.
    Stuck {
        first: i64,
        local: CivilMinute,
        len: i64,
    },
    /// The first minute after a clock change, handled as `kind`.
    Jump {
        at: i64,
        virtual_before: CivilMinute,
        local: CivilMinute,
        kind: Jump,
    },
}

/// Replays cron.c's main loop over the window (plus a warm-up) in stretches.
fn virtual_steps(daemon: Daemon, tz: &TimeZone, window: &Window) -> Vec<Step> {
    let start = window.first - WARM_UP_MINUTES;
    let mut steps = Vec::new();
    let parts = stretches(tz, start, window.last);
    let Some(first) = parts.first() else {
        return steps;
    };
    // Assume a settled daemon at the start of the warm-up.
    let mut virtual_time = first.local(start) - 1;
    for part in &parts {
        let mut m = part.first;
        let diff = part.local(m) - virtual_time;
        if diff != 1 {
            let kind = classify(daemon, diff);
            steps.push(Step::Jump {
                at: m,
                virtual_before: virtual_time,
                local: part.local(m),
                kind,
            });
            if kind != Jump::Negative {
                virtual_time = part.local(m);
            }
            m += 1;
        }
        if m > part.last {
            continue;
        }
        if part.local(m) <= virtual_time {
            let len = (virtual_time - part.local(m) + 1).min(part.last - m + 1);
            steps.push(Step::Stuck {
                first: m,
                local: part.local(m),
                len,
            });
            m += len;
        }
        if m <= part.last {
            steps.push(Step::Normal {
                first: m,
                local: part.local(m),
                len: part.last - m + 1,
            });
            virtual_time = part.local(part.last);
        }
    }
    steps
}

fn virtual_clock(
    sched: &Schedule,
    daemon: Daemon,
    tz: &TimeZone,
    window: &Window,
    out: &mut Vec<Fire>,
) {
    for step in virtual_steps(daemon, tz, window) {
        match step {
            Step::Normal { first, local, len } | Step::Stuck { first, local, len } => {
                let stuck = matches!(step, Step::Stuck { .. });
                if stuck && !sched.wildcard {
                    continue;
                }
                let why = if stuck {
                    FireReason::RepeatAfterDst
                } else {
                    FireReason::Scheduled
                };
                // Only the part of the stretch inside the window.
                let lo = first.max(window.first);
                let hi = (first + len - 1).min(window.last);
                if lo > hi {
                    continue;
                }
                for l in sched.matches_in(local + (lo - first), local + (hi - first)) {
                    push(out, first + (l - local), l, why);
                }
            }
            Step::Jump {
                at,
                virtual_before,
                local,
                kind,
            } => {
                if !window.contains(at) {
                    continue;
                }
                let now = |out: &mut Vec<Fire>, why| {
                    if sched.matches_minute(local) {
                        push(out, at, local, why);
                    }
                };
                match kind {
                    Jump::Large => now(out, FireReason::Scheduled),
                    Jump::Negative => {
                        if sched.wildcard {
                            now(out, FireReason::RepeatAfterDst);
                        }
                    }
                    Jump::Medium if sched.wildcard => now(out, FireReason::Scheduled),
                    Jump::Medium | Jump::Small => {
                        for l in sched.matches_in(virtual_before + 1, local) {
                            let why = if l < local {
                                FireReason::CatchUpAfterDst
                            } else {
                                FireReason::Scheduled
                            };
                            push(out, at, l, why);
                        }
                    }
                }
            }
        }
    }
}

/// Real minutes (inclusive ranges) in which the daemon's virtual clock waits for a
/// repeated hour, i.e. runs wildcard jobs only.
fn stuck_minutes(daemon: Daemon, tz: &TimeZone, window: &Window) -> Vec<(i64, i64)> {
    virtual_steps(daemon, tz, window)
        .into_iter()
        .filter_map(|step| match step {
            Step::Stuck { first, len, .. } => Some((first, first + len - 1)),
            Step::Jump {
                at,
                kind: Jump::Negative,
                ..
            } => Some((at, at)),
            _ => None,
        })
        .collect()
}

/// Each real minute once, matched against its wall-clock minute in `tz`, except the
/// real minutes in `skip`.
fn per_real_minute(
    sched: &Schedule,
    tz: &TimeZone,
    window: &Window,
    skip: &[(i64, i64)],
    out: &mut Vec<Fire>,
) {
    let start = window.first - WARM_UP_MINUTES;
    let mut latest_seen: Option<CivilMinute> = None;
    for part in stretches(tz, start, window.last) {
        let lo = part.first.max(window.first);
        if lo <= part.last {
            for l in sched.matches_in(part.local(lo), part.local(part.last)) {
                let m = lo + (l - part.local(lo));
                if skip.iter().any(|&(a, b)| (a..=b).contains(&m)) {
                    continue;
                }
                let repeat = latest_seen.is_some_and(|seen| l <= seen);
                push(
                    out,
                    m,
                    l,
                    if repeat {
                        FireReason::RepeatAfterDst
                    } else {
                        FireReason::Scheduled
                    },
                );
            }
        }
        let end = part.local(part.last);
        latest_seen = Some(latest_seen.map_or(end, |seen| seen.max(end)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::tests::{all, sched};
    use super::super::schedule::DayRule;
    use super::*;
    use jiff::civil::DateTime;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// `M H * * *`, fixed-time unless `wild`.
    fn daily(min: &[u32], hour: &[u32], wild: bool) -> Schedule {
        let mut s = sched(
            min,
            hour,
            &all(1, 31),
            &all(1, 12),
            &all(0, 6),
            DayRule::Either,
        );
        s.wildcard = wild;
        s
    }

    fn render(fires: &[Fire], zone: &TimeZone) -> Vec<String> {
        fires
            .iter()
            .map(|f| {
                format!(
                    "{} {:?} for {}",
                    f.at.to_zoned_datetime(zone.clone())
                        .strftime("%Y-%m-%dT%H:%M%:z"),
                    f.why,
                    f.scheduled.strftime("%H:%M")
                )
            })
            .collect()
    }

    // America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    const SPRING_FROM: &str = "2026-03-08T05:00:00Z"; // 00:00 EST
    const SPRING_TO: &str = "2026-03-08T09:00:00Z"; // 05:00 EDT
    const FALL_FROM: &str = "2026-11-01T04:00:00Z"; // 00:00 EDT
    const FALL_TO: &str = "2026-11-01T09:00:00Z"; // 04:00 EST

    #[test]
    fn debian_runs_skipped_fixed_time_job_at_the_jump() {
        let ny = tz("America/New_York");
        let s = daily(&[30], &[2], false); // 30 2 * * *
        let fires = s.fires_between(&ny, ts(SPRING_FROM), ts(SPRING_TO), Daemon::DebianCron);
        assert_eq!(
            render(&fires, &ny),
            ["2026-03-08T03:00-04:00 CatchUpAfterDst for 02:30"]
        );
    }

    #[test]
    fn debian_skips_wildcard_job_times_in_the_gap() {
        let ny = tz("America/New_York");
        let s = daily(&[30], &all(0, 23), true); // 30 * * * *
        let got = render(
            &s.fires_between(&ny, ts(SPRING_FROM), ts(SPRING_TO), Daemon::DebianCron),
            &ny,
        );
        assert_eq!(
            got,
            [
                "2026-03-08T00:30-05:00 Scheduled for 00:30",
                "2026-03-08T01:30-05:00 Scheduled for 01:30",
                "2026-03-08T03:30-04:00 Scheduled for 03:30",
                "2026-03-08T04:30-04:00 Scheduled for 04:30",
            ]
        );
    }

    #[test]
    fn debian_does_not_repeat_fixed_time_job_in_the_fold() {
        let ny = tz("America/New_York");
        let fixed = daily(&[30], &[1], false); // 30 1 * * *
        let got = render(
            &fixed.fires_between(&ny, ts(FALL_FROM), ts(FALL_TO), Daemon::DebianCron),
            &ny,
        );
        assert_eq!(got, ["2026-11-01T01:30-04:00 Scheduled for 01:30"]);
        // A wildcard job runs in both passes of 01:xx.
        let wild = daily(&[30], &all(0, 23), true); // 30 * * * *
        let got = render(
            &wild.fires_between(&ny, ts(FALL_FROM), ts(FALL_TO), Daemon::DebianCron),
            &ny,
        );
        assert_eq!(
            got,
            [
                "2026-11-01T00:30-04:00 Scheduled for 00:30",
                "2026-11-01T01:30-04:00 Scheduled for 01:30",
                "2026-11-01T01:30-05:00 RepeatAfterDst for 01:30",
                "2026-11-01T02:30-05:00 Scheduled for 02:30",
                "2026-11-01T03:30-05:00 Scheduled for 03:30",
            ]
        );
    }

    #[test]
    fn busybox_misses_the_gap_and_repeats_the_fold() {
        let ny = tz("America/New_York");
        let fixed = daily(&[30], &[2], false);
        assert!(fixed
            .fires_between(&ny, ts(SPRING_FROM), ts(SPRING_TO), Daemon::BusyboxCrond)
            .is_empty());
        let fixed = daily(&[30], &[1], false);
        let got = render(
            &fixed.fires_between(&ny, ts(FALL_FROM), ts(FALL_TO), Daemon::BusyboxCrond),
            &ny,
        );
        assert_eq!(
            got,
            [
                "2026-11-01T01:30-04:00 Scheduled for 01:30",
                "2026-11-01T01:30-05:00 RepeatAfterDst for 01:30"
            ]
        );
    }

    #[test]
    fn cronie_cron_tz_in_another_zone_across_both_dst_changes() {
        // Daemon in UTC (no DST of its own), entry CRON_TZ=America/New_York.
        let ny = tz("America/New_York");
        let fixed = daily(&[30], &[2], false);
        let spring = fixed.fires_between_zones(
            &TimeZone::UTC,
            Some(&ny),
            ts(SPRING_FROM),
            ts(SPRING_TO),
            Daemon::Cronie,
        );
        assert!(
            spring.is_empty(),
            "02:30 does not exist in New York that night: {spring:?}"
        );
        let fixed = daily(&[30], &[1], false);
        let fall = fixed.fires_between_zones(
            &TimeZone::UTC,
            Some(&ny),
            ts(FALL_FROM),
            ts(FALL_TO),
            Daemon::Cronie,
        );
        assert_eq!(
            render(&fall, &ny),
            [
                "2026-11-01T01:30-04:00 Scheduled for 01:30",
                "2026-11-01T01:30-05:00 RepeatAfterDst for 01:30"
            ]
        );
    }

    #[test]
    fn cronie_skips_fixed_cron_tz_jobs_while_its_own_zone_repeats_an_hour() {
        // Daemon in New York, entry CRON_TZ=UTC `30 6 * * *`: 06:30 UTC falls in New
        // York's repeated hour (01:30 EST), when cronie runs wildcard jobs only.
        let ny = tz("America/New_York");
        let fixed = daily(&[30], &[6], false);
        let fall = fixed.fires_between_zones(
            &ny,
            Some(&TimeZone::UTC),
            ts(FALL_FROM),
            ts(FALL_TO),
            Daemon::Cronie,
        );
        assert!(fall.is_empty(), "{fall:?}");
        // The day after, it runs.
        let next = fixed.fires_between_zones(
            &ny,
            Some(&TimeZone::UTC),
            ts("2026-11-02T00:00:00Z"),
            ts("2026-11-03T00:00:00Z"),
            Daemon::Cronie,
        );
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].at, ts("2026-11-02T06:30:00Z"));
    }

    #[test]
    fn berlin_spring_forward_catch_up_and_fall_back() {
        // Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
        let berlin = tz("Europe/Berlin");
        let s = daily(&[0, 15], &[2], false); // 0,15 2 * * *
        let got = render(
            &s.fires_between(
                &berlin,
                ts("2026-03-28T23:00:00Z"),
                ts("2026-03-29T03:00:00Z"),
                Daemon::Cronie,
            ),
            &berlin,
        );
        assert_eq!(
            got,
            [
                "2026-03-29T03:00+02:00 CatchUpAfterDst for 02:00",
                "2026-03-29T03:00+02:00 CatchUpAfterDst for 02:15"
            ]
        );
        let got = render(
            &s.fires_between(
                &berlin,
                ts("2026-10-24T22:00:00Z"),
                ts("2026-10-25T03:00:00Z"),
                Daemon::DebianCron,
            ),
            &berlin,
        );
        assert_eq!(
            got,
            [
                "2026-10-25T02:00+02:00 Scheduled for 02:00",
                "2026-10-25T02:15+02:00 Scheduled for 02:15"
            ]
        );
    }

    #[test]
    fn window_is_half_open_and_ordinary_days_are_plain() {
        let utc = TimeZone::UTC;
        let s = daily(&[0], &[0], false);
        let fires = s.fires_between(
            &utc,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-03T00:00:00Z"),
            Daemon::DebianCron,
        );
        let at: Vec<Timestamp> = fires.iter().map(|f| f.at).collect();
        assert_eq!(at, [ts("2026-01-02T00:00:00Z"), ts("2026-01-03T00:00:00Z")]);
        assert!(fires.iter().all(|f| f.why == FireReason::Scheduled));
    }

    #[test]
    fn next_fires_for_rare_and_frequent_schedules() {
        let utc = TimeZone::UTC;
        let leap = sched(&[0], &[0], &[29], &[2], &all(0, 6), DayRule::Both);
        let got = leap.next_fires(&utc, ts("2026-01-01T00:00:00Z"), 2, Daemon::DebianCron);
        let got: Vec<DateTime> = got.iter().map(|z| z.datetime()).collect();
        assert_eq!(
            got,
            [
                "2028-02-29T00:00".parse::<DateTime>().unwrap(),
                "2032-02-29T00:00".parse().unwrap()
            ]
        );
        let every = daily(&all(0, 59), &all(0, 23), true);
        assert_eq!(
            every
                .next_fires(&utc, ts("2026-01-01T00:00:30Z"), 3, Daemon::BusyboxCrond)
                .len(),
            3
        );
        let never = sched(&[0], &[0], &[31], &[2], &all(0, 6), DayRule::Both);
        assert!(never
            .next_fires(&utc, ts("2026-01-01T00:00:00Z"), 1, Daemon::DebianCron)
            .is_empty());
    }
}

#[cfg(test)]
mod fuzz {
    use super::super::schedule::DayRule;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: crate::testutil::proptest_cases(200), ..ProptestConfig::default() })]

        /// Any schedule, zone and window: starts are in the window, in order, and
        /// each stands for a wall-clock minute the schedule matches.
        #[test]
        fn fires_are_ordered_in_window_and_match(
            minutes in any::<u64>(), hours in any::<u32>(), doms in any::<u32>(), months in any::<u16>(), dows in any::<u8>(),
            either in any::<bool>(), wildcard in any::<bool>(),
            zone in 0usize..4, daemon in 0usize..3, start in 1_700_000_000i64..1_900_000_000, hours_long in 1i64..72,
        ) {
            let s = Schedule {
                minutes: minutes & ((1 << 60) - 1),
                hours: hours & ((1 << 24) - 1),
                doms: doms & !1,
                months: months & 0x1ffe,
                dows: dows & 0x7f,
                day_rule: if either { DayRule::Either } else { DayRule::Both },
                wildcard,
                reboot: false,
            };
            let tz = TimeZone::get(["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "UTC"][zone]).unwrap();
            let daemon = Daemon::ALL[daemon];
            let from = Timestamp::from_second(start).unwrap();
            let to = Timestamp::from_second(start + hours_long * 3600).unwrap();
            let fires = s.fires_between(&tz, from, to, daemon);
            for pair in fires.windows(2) {
                prop_assert!(pair[0].at <= pair[1].at);
            }
            for f in &fires {
                prop_assert!(f.at > from && f.at <= to);
                prop_assert!(s.matches(f.scheduled), "{:?}", f);
            }
        }
    }
}
