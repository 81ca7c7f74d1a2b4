//! systemd calendar events: the `OnCalendar=` value of a `.timer` unit (systemd.time(7),
//! "CALENDAR EVENTS"), parsed and normalized the way systemd 252's `calendarspec.c` does,
//! so that the tracer refuses exactly what the manager refuses and prints the same
//! "Normalized form" as `systemd-analyze calendar`.
//!
//! Where this departs from systemd, on purpose:
//! - A trailing local zone abbreviation (`CEST`, which systemd matches against the
//!   manager's `tzname[]`) is not recognised, because the manager's zone is not known at
//!   parse time. Abbreviations that are also IANA names (`CET`, `EST`, ...) are read as
//!   those zones.
//! - The next elapse is plain wall-clock matching. systemd ≥ 251 loses some elapses just
//!   after New Year when a repetition carries past the end of December (`*-*-1/11` never
//!   fires on January 1st, systemd issue #40260); that bug is not reproduced.
//! - No elapse is sought more than [`SEARCH_YEARS`] years ahead (systemd stops at 2199).
use std::fmt::Write as _;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{Span, Timestamp};

const USEC_PER_SEC: i64 = 1_000_000;
const USEC_PER_MINUTE: i64 = 60 * USEC_PER_SEC;
const USEC_PER_HOUR: i64 = 60 * USEC_PER_MINUTE;
const USEC_PER_DAY: i64 = 24 * USEC_PER_HOUR;

/// systemd refuses years outside these and never looks for an elapse after 2199.
const MIN_YEAR: i64 = 1970;
const MAX_YEAR: i64 = 2199;
/// systemd's CALENDARSPEC_COMPONENTS_MAX is 240, checked before a value is added with the
/// count starting at 0, so 241 values still pass.
const COMPONENTS_MAX: usize = 241;

/// How far ahead [`CalendarSpec::next_after`] looks.
pub const SEARCH_YEARS: i64 = 8;
/// Every step of the search moves to a later year, month or day, or past a clock change,
/// and eight years hold about 2,900 days: reaching this means a bug, not a sparse
/// schedule.
const MAX_STEPS: usize = 20_000;

const DAY_ABBREVIATIONS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// Full names first: systemd takes the first name the text starts with, and `Mon` would
/// otherwise leave `day` of `Monday` unread.
const DAY_NAMES: [(&str, u8); 14] = [
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
];
const ALL_WEEKDAYS: u8 = 0x7f;

/// One item of a comma-separated list: `start`, `start..stop` or either with `/repeat`.
/// Seconds are held in microseconds, as systemd does, so `05.5` and `/0.25` fit.
/// The field order is the sort order systemd normalizes lists into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Component {
    start: i64,
    stop: Option<i64>,
    /// 0 for a single value; a range without `/` repeats every unit.
    repeat: i64,
}

/// systemd's `*` in the seconds: 0 repeating every second, so that `*:*:*` is every whole
/// second and not every microsecond.
const EVERY_SECOND: Component = Component {
    start: 0,
    stop: None,
    repeat: USEC_PER_SEC,
};

impl Component {
    fn single(value: i64) -> Component {
        Component {
            start: value,
            stop: None,
            repeat: 0,
        }
    }

    /// The first value at or after `from` this item allows, unbounded by the field's
    /// range (systemd's `find_matching_component` for one item).
    fn next_from(self, from: i64) -> Option<i64> {
        if self.start >= from {
            return Some(self.start);
        }
        if self.repeat == 0 {
            return None;
        }
        let steps = (from - self.start + self.repeat - 1) / self.repeat;
        let value = self.start + steps * self.repeat;
        match self.stop {
            Some(stop) if value > stop => None,
            _ => Some(value),
        }
    }

    /// `~` counts back from the month's last day (1 = the last). systemd turns both bounds
    /// into days of the month and swaps them, and a repetition still runs forward.
    fn resolve_from_end(self, days_in_month: i64) -> Component {
        let day = |back: i64| days_in_month + 1 - back;
        match self.stop {
            Some(stop) => Component {
                start: day(stop),
                stop: Some(day(self.start)),
                repeat: self.repeat,
            },
            None => Component {
                start: day(self.start),
                ..self
            },
        }
    }
}

/// `None` is `*` (every value).
type Chain = Option<Vec<Component>>;

fn next_in(components: impl Iterator<Item = Component>, from: i64, max: i64) -> Option<i64> {
    components
        .filter_map(|c| c.next_from(from))
        .filter(|&v| v <= max)
        .min()
}

fn chain_next(chain: &Chain, from: i64, max: i64) -> Option<i64> {
    if from > max {
        return None;
    }
    match chain {
        None => Some(from),
        Some(components) => next_in(components.iter().copied(), from, max),
    }
}

fn chain_allows(chain: &Chain, value: i64, max: i64) -> bool {
    chain_next(chain, value, max) == Some(value)
}

#[derive(Clone, Debug, PartialEq)]
enum Zone {
    /// The manager's zone, given to [`CalendarSpec::next_after`].
    Local,
    Utc,
    Named {
        name: String,
        tz: TimeZone,
    },
}

/// One parsed `OnCalendar=` value.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarSpec {
    /// Bit 0 = Monday .. bit 6 = Sunday; `None` when every day of the week qualifies.
    weekdays: Option<u8>,
    year: Chain,
    month: Chain,
    /// Day of the month, or with `end_of_month` days back from the month's last.
    day: Chain,
    end_of_month: bool,
    hour: Chain,
    minute: Chain,
    /// Microseconds into the minute. Always a list: systemd stores `*` here as
    /// [`EVERY_SECOND`].
    second: Vec<Component>,
    zone: Zone,
}

impl CalendarSpec {
    /// Parse one OnCalendar= value. Errors are a short human sentence naming the part not
    /// understood, e.g. "`*-*-* 25:00` : hour 25 is out of range (0..23)".
    ///
    /// Fractional seconds (`05.5`, `/0.25`) are accepted and kept to the microsecond,
    /// rounded at the seventh digit as systemd does.
    pub fn parse(text: &str) -> Result<CalendarSpec, String> {
        parse_spec(text).map_err(|why| format!("`{text}` : {why}"))
    }

    /// The first elapse strictly after `after`. The expression's own time zone (a
    /// trailing `UTC` or IANA zone name like `Europe/Berlin`) wins over `local` (the
    /// manager's zone). None if there is none within ~8 years.
    ///
    /// Elapses are the matching wall-clock times of the zone, each taken at its earlier
    /// instant: a time the clock skips when it springs forward does not elapse (as in
    /// systemd), and a time repeated when the clock falls back elapses once, on its first
    /// pass.
    pub fn next_after(&self, after: Timestamp, local: &TimeZone) -> Option<Timestamp> {
        let tz = match &self.zone {
            Zone::Local => local.clone(),
            Zone::Utc => TimeZone::UTC,
            Zone::Named { tz, .. } => tz.clone(),
        };
        let (mut date, mut from) = lower_bound(&tz, after)?;
        let last = date
            .checked_add(Span::new().years(SEARCH_YEARS))
            .ok()?
            .min(jiff::civil::date(2199, 12, 31));
        for _ in 0..MAX_STEPS {
            if date > last {
                return None;
            }
            let year = i64::from(date.year());
            if !chain_allows(&self.year, year, MAX_YEAR) {
                let next = chain_next(&self.year, year + 1, MAX_YEAR)?;
                date = Date::new(i16::try_from(next).ok()?, 1, 1).ok()?;
                from = 0;
                continue;
            }
            let month = i64::from(date.month());
            if !chain_allows(&self.month, month, 12) {
                date = match chain_next(&self.month, month + 1, 12) {
                    Some(next) => Date::new(date.year(), i8::try_from(next).ok()?, 1).ok()?,
                    None => Date::new(date.year().checked_add(1)?, 1, 1).ok()?,
                };
                from = 0;
                continue;
            }
            let Some(tod) = self
                .day_matches(date)
                .then(|| self.first_time_from(from))
                .flatten()
            else {
                date = date.tomorrow().ok()?;
                from = 0;
                continue;
            };
            let wall = date.to_datetime(time_of_day(tod)?);
            let offset = match tz.to_ambiguous_timestamp(wall).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset,
                AmbiguousOffset::Fold { before, .. } => before,
                AmbiguousOffset::Gap { after: later, .. } => {
                    // Candidates inside the gap would all be skipped one by one (every
                    // millisecond of it for `*:*:0/0.001`); resume where the clock lands,
                    // and never go back should the zone data disagree.
                    (date, from) = gap_end(&tz, wall, later)
                        .filter(|&end| end > (date, tod))
                        .map_or_else(|| next_microsecond(date, tod), Some)?;
                    continue;
                }
            };
            let at = offset.to_timestamp(wall).ok()?;
            if at > after {
                return Some(at);
            }
            // `lower_bound` leaves no such candidate; should one slip through a repeated
            // hour, stepping on beats returning an elapse that is not after `after`.
            (date, from) = next_microsecond(date, tod)?;
        }
        None
    }

    /// systemd-analyze calendar's "Normalized form", e.g. `*-*-* *:*:00` for `minutely`,
    /// `Mon..Fri *-*-* 09:30:00`.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        if let Some(bits) = self.weekdays {
            push_weekdays(&mut out, bits);
            out.push(' ');
        }
        push_chain(&mut out, self.year.as_deref(), 4, false);
        out.push('-');
        push_chain(&mut out, self.month.as_deref(), 2, false);
        out.push(if self.end_of_month { '~' } else { '-' });
        push_chain(&mut out, self.day.as_deref(), 2, false);
        out.push(' ');
        push_chain(&mut out, self.hour.as_deref(), 2, false);
        out.push(':');
        push_chain(&mut out, self.minute.as_deref(), 2, false);
        out.push(':');
        push_chain(&mut out, Some(&self.second), 2, true);
        match &self.zone {
            Zone::Local => {}
            Zone::Utc => out.push_str(" UTC"),
            Zone::Named { name, .. } => {
                out.push(' ');
                out.push_str(name);
            }
        }
        out
    }

    fn day_matches(&self, date: Date) -> bool {
        if let Some(bits) = self.weekdays {
            if bits & (1 << date.weekday().to_monday_zero_offset()) == 0 {
                return false;
            }
        }
        let day = i64::from(date.day());
        let days_in_month = i64::from(date.days_in_month());
        match &self.day {
            None => true,
            Some(components) if self.end_of_month => {
                let from_end = components.iter().map(|c| c.resolve_from_end(days_in_month));
                next_in(from_end, day, days_in_month) == Some(day)
            }
            Some(components) => {
                next_in(components.iter().copied(), day, days_in_month) == Some(day)
            }
        }
    }

    /// The first matching time of day (microseconds since midnight) at or after `from`.
    fn first_time_from(&self, from: i64) -> Option<i64> {
        let first_hour = from / USEC_PER_HOUR;
        let first_minute = from % USEC_PER_HOUR / USEC_PER_MINUTE;
        let first_second = from % USEC_PER_MINUTE;
        for hour in first_hour..24 {
            if !chain_allows(&self.hour, hour, 23) {
                continue;
            }
            let minutes_from = if hour == first_hour { first_minute } else { 0 };
            for minute in minutes_from..60 {
                if !chain_allows(&self.minute, minute, 59) {
                    continue;
                }
                let seconds_from = if hour == first_hour && minute == first_minute {
                    first_second
                } else {
                    0
                };
                if let Some(second) = next_in(
                    self.second.iter().copied(),
                    seconds_from,
                    USEC_PER_MINUTE - 1,
                ) {
                    return Some(hour * USEC_PER_HOUR + minute * USEC_PER_MINUTE + second);
                }
            }
        }
        None
    }

    fn unrestricted(zone: Zone) -> CalendarSpec {
        CalendarSpec {
            weekdays: None,
            year: None,
            month: None,
            day: None,
            end_of_month: false,
            hour: None,
            minute: None,
            second: vec![EVERY_SECOND],
            zone,
        }
    }

    /// The expansions of calendarspec.c (systemd.time(7) lists them); false if `word` is
    /// not one.
    fn apply_shorthand(&mut self, word: &str) -> bool {
        let word = word.to_ascii_lowercase();
        let months: &[i64] = match word.as_str() {
            "minutely" | "hourly" | "daily" | "weekly" | "monthly" => &[],
            // `anually` is a misspelling systemd keeps accepting for old units.
            "yearly" | "annually" | "anually" => &[1],
            "quarterly" => &[1, 4, 7, 10],
            "semiannually" | "semi-annually" | "biannually" | "bi-annually" => &[1, 7],
            _ => return false,
        };
        let at = |values: &[i64]| Some(values.iter().map(|&v| Component::single(v)).collect());
        self.second = vec![Component::single(0)];
        if word != "minutely" {
            self.minute = at(&[0]);
        }
        if word != "minutely" && word != "hourly" {
            self.hour = at(&[0]);
        }
        if word == "weekly" {
            self.weekdays = Some(1);
        }
        if word == "monthly" || !months.is_empty() {
            self.day = at(&[1]);
        }
        if !months.is_empty() {
            self.month = at(months);
        }
        true
    }

    /// calendarspec.c's `calendar_spec_normalize`, so that the normalized form and the
    /// range checks see what systemd's see.
    fn normalize(&mut self) {
        if self
            .weekdays
            .is_some_and(|bits| bits == 0 || bits >= ALL_WEEKDAYS)
        {
            self.weekdays = None;
        }
        if self.day.is_none() {
            self.end_of_month = false;
        }
        for c in self.year.iter_mut().flatten() {
            c.start = full_year(c.start);
            c.stop = c.stop.map(full_year);
        }
        for chain in [
            &mut self.year,
            &mut self.month,
            &mut self.day,
            &mut self.hour,
            &mut self.minute,
        ]
        .into_iter()
        .flatten()
        {
            normalize_chain(chain);
        }
        normalize_chain(&mut self.second);
    }

    /// calendarspec.c's `calendar_spec_valid`, with the reason put into words.
    fn validate(&self) -> Result<(), String> {
        let fields = [
            (Field::Year, &self.year, false),
            (Field::Month, &self.month, false),
            (Field::Day, &self.day, self.end_of_month),
            (Field::Hour, &self.hour, false),
            (Field::Minute, &self.minute, false),
        ];
        for (field, chain, end_of_month) in fields {
            if let Some(components) = chain {
                validate_chain(field, components, end_of_month)?;
            }
        }
        validate_chain(Field::Second, &self.second, false)
    }
}

fn parse_spec(text: &str) -> Result<CalendarSpec, String> {
    // The unit-file loader strips this whitespace before systemd's parser sees a value;
    // inside the value only spaces separate parts.
    let text = text.trim_matches([' ', '\t', '\n', '\r']);
    if text.is_empty() {
        return Err("the expression is empty".into());
    }
    let (body, zone) = split_zone(text);
    let mut spec = CalendarSpec::unrestricted(zone);
    if !spec.apply_shorthand(body) {
        if ["now", "today", "yesterday", "tomorrow", "epoch"]
            .iter()
            .any(|word| body.eq_ignore_ascii_case(word))
        {
            return Err(format!(
                "`{body}` names one moment, not a calendar event; OnCalendar= does not take it"
            ));
        }
        Cursor { text: body, pos: 0 }.parse_into(&mut spec)?;
    }
    spec.normalize();
    spec.validate()?;
    Ok(spec)
}

/// Takes a trailing ` UTC` (any case) or IANA zone name off `text`, the way
/// `calendar_spec_from_string` does before parsing the rest.
fn split_zone(text: &str) -> (&str, Zone) {
    let utc_at = text.len().checked_sub(4);
    if let Some(at) = utc_at.filter(|&at| {
        text.get(at..)
            .is_some_and(|t| t.eq_ignore_ascii_case(" UTC"))
    }) {
        return (&text[..at], Zone::Utc);
    }
    if let Some(space) = text.rfind(' ') {
        let name = &text[space + 1..];
        if let Ok(tz) = TimeZone::get(name) {
            // jiff finds names in any case, but systemd opens the name as a file under
            // /usr/share/zoneinfo, where the case must match. `Etc/Unknown` has no IANA
            // name and is refused here too.
            if tz.iana_name() == Some(name) {
                let zone = Zone::Named {
                    name: name.to_owned(),
                    tz,
                };
                return (&text[..space], zone);
            }
        }
    }
    (text, Zone::Local)
}

fn full_year(year: i64) -> i64 {
    match year {
        0..=69 => year + 2000,
        70..=99 => year + 1900,
        _ => year,
    }
}

fn normalize_chain(chain: &mut Vec<Component>) {
    for c in chain.iter_mut() {
        if let Some(stop) = c.stop.filter(|&stop| stop > c.start && c.repeat > 0) {
            c.stop = Some(stop - (stop - c.start) % c.repeat);
        }
        if c.stop == Some(c.start) {
            c.stop = None;
            c.repeat = 0;
        }
    }
    chain.sort();
    chain.dedup();
}

#[derive(Clone, Copy)]
enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
        }
    }

    fn bounds(self) -> (i64, i64) {
        match self {
            Field::Year => (MIN_YEAR, MAX_YEAR),
            Field::Month => (1, 12),
            Field::Day => (1, 31),
            Field::Hour => (0, 23),
            Field::Minute => (0, 59),
            Field::Second => (0, USEC_PER_MINUTE - 1),
        }
    }

    fn show(self, value: i64) -> String {
        match self {
            Field::Second => seconds_text(value),
            _ => value.to_string(),
        }
    }
}

fn seconds_text(usec: i64) -> String {
    match usec % USEC_PER_SEC {
        0 => (usec / USEC_PER_SEC).to_string(),
        fraction => format!("{}.{fraction:06}", usec / USEC_PER_SEC),
    }
}

fn validate_chain(field: Field, chain: &[Component], end_of_month: bool) -> Result<(), String> {
    let name = field.name();
    let (from, mut to) = field.bounds();
    // systemd allows `~` to reach no further back than 28 days, so it means the same in
    // every month.
    let (tilde, range) = if end_of_month {
        to -= 3;
        ("~", format!("~{from}..~{to}"))
    } else if let Field::Second = field {
        ("", "0..59".to_owned())
    } else {
        ("", format!("{from}..{to}"))
    };
    let show = |value: i64| format!("{tilde}{}", field.show(value));
    for c in chain {
        let out_of_range = |value: i64| format!("{name} {} is out of range ({range})", show(value));
        if !(from..=to).contains(&c.start) {
            return Err(out_of_range(c.start));
        }
        if c.repeat > to - from {
            return Err(format!(
                "{name} repetition /{} is longer than the whole range ({range})",
                field.show(c.repeat)
            ));
        }
        match c.stop {
            Some(stop) => {
                if !(from..=to).contains(&stop) {
                    return Err(out_of_range(stop));
                }
                if c.start + c.repeat > stop {
                    return Err(format!(
                        "{name} range {}..{} is empty",
                        show(c.start),
                        show(stop)
                    ));
                }
            }
            None if end_of_month && c.start - c.repeat < from => {
                return Err(format!(
                    "{name} {}/{} repeats past the first day of the month",
                    show(c.start),
                    field.show(c.repeat)
                ));
            }
            None if !end_of_month && c.start + c.repeat > to => {
                return Err(format!(
                    "{name} {}/{} never repeats within {range}",
                    show(c.start),
                    field.show(c.repeat)
                ));
            }
            None => {}
        }
    }
    Ok(())
}

fn push_weekdays(out: &mut String, bits: u8) {
    let set = |day: usize| bits & (1 << day) != 0;
    let mut day = 0;
    while day < 7 {
        if set(day) {
            let first = day;
            while day + 1 < 7 && set(day + 1) {
                day += 1;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(DAY_ABBREVIATIONS[first]);
            // Two days in a row are a list, three or more a range.
            match day - first {
                0 => {}
                1 => out.push(','),
                _ => out.push_str(".."),
            }
            if day > first {
                out.push_str(DAY_ABBREVIATIONS[day]);
            }
        }
        day += 1;
    }
}

/// calendarspec.c's `format_chain`, quirks included: a stop of 0 and a range's implied
/// `/1` are not printed.
fn push_chain(out: &mut String, chain: Option<&[Component]>, width: usize, usec: bool) {
    let unit = if usec { USEC_PER_SEC } else { 1 };
    let Some(components) = chain else {
        out.push('*');
        return;
    };
    if usec && components.contains(&EVERY_SECOND) {
        out.push('*');
        return;
    }
    let push_value = |out: &mut String, value: i64| {
        let _ = write!(out, "{:0width$}", value / unit);
        if value % unit > 0 {
            let _ = write!(out, ".{:06}", value % unit);
        }
    };
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_value(out, c.start);
        let stop = c.stop.filter(|&stop| stop > 0);
        if let Some(stop) = stop {
            out.push_str("..");
            push_value(out, stop);
        }
        if c.repeat > 0 && !(stop.is_some() && c.repeat == unit) {
            let _ = write!(out, "/{}", c.repeat / unit);
            if c.repeat % unit > 0 {
                let _ = write!(out, ".{:06}", c.repeat % unit);
            }
        }
    }
}

/// A wall-clock time as its date and microseconds since midnight (sub-microsecond parts
/// dropped).
fn split_wall(dt: DateTime) -> (Date, i64) {
    let tod = i64::from(dt.hour()) * USEC_PER_HOUR
        + i64::from(dt.minute()) * USEC_PER_MINUTE
        + i64::from(dt.second()) * USEC_PER_SEC
        + i64::from(dt.subsec_nanosecond()) / 1000;
    (dt.date(), tod)
}

fn next_microsecond(date: Date, tod: i64) -> Option<(Date, i64)> {
    if tod + 1 < USEC_PER_DAY {
        Some((date, tod + 1))
    } else {
        Some((date.tomorrow().ok()?, 0))
    }
}

fn time_of_day(tod: i64) -> Option<Time> {
    let hour = i8::try_from(tod / USEC_PER_HOUR).ok()?;
    let minute = i8::try_from(tod % USEC_PER_HOUR / USEC_PER_MINUTE).ok()?;
    let second = i8::try_from(tod % USEC_PER_MINUTE / USEC_PER_SEC).ok()?;
    let nanosecond = i32::try_from(tod % USEC_PER_SEC * 1000).ok()?;
    Time::new(hour, minute, second, nanosecond).ok()
}

/// The earliest wall-clock time whose elapse could come strictly after `after`.
fn lower_bound(tz: &TimeZone, after: Timestamp) -> Option<(Date, i64)> {
    let wall = tz.to_datetime(after);
    let (date, tod) = split_wall(wall);
    // Elapses fall on whole microseconds; systemd also starts its search at `usec + 1`.
    let mut bound = next_microsecond(date, tod)?;
    if let AmbiguousOffset::Fold {
        before,
        after: later,
    } = tz.to_ambiguous_timestamp(wall).offset()
    {
        if tz.to_offset(after) == later {
            // `after` is in the second pass of a repeated hour. Elapses are taken at the
            // first pass, so the rest of that hour on the wall is already behind `after`:
            // resume where the repetition ends.
            let first_pass = before.to_timestamp(wall).ok()?;
            let change = tz.following(first_pass).next()?.timestamp();
            bound = bound.max(split_wall(before.to_datetime(change)));
        }
    }
    Some(bound)
}

/// Where the clock lands after jumping over `wall`.
fn gap_end(tz: &TimeZone, wall: DateTime, later: Offset) -> Option<(Date, i64)> {
    // Read with the offset in force after the jump, a skipped wall time is an instant
    // just before the jump.
    let before_jump = later.to_timestamp(wall).ok()?;
    let jump = tz.following(before_jump).next()?.timestamp();
    Some(split_wall(tz.to_datetime(jump)))
}

/// A reading position in the expression (time zone already taken off). Only ASCII is
/// ever stepped over, so `pos` stays on a character boundary.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.text.as_bytes().get(self.pos + ahead).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn digits(&self) -> usize {
        self.rest().bytes().take_while(u8::is_ascii_digit).count()
    }

    /// The space-separated word the cursor is in (or just after), to quote in errors.
    fn word(&self) -> &'a str {
        let start = self.text[..self.pos].rfind(' ').map_or(0, |i| i + 1);
        let end = self
            .rest()
            .find(' ')
            .map_or(self.text.len(), |i| self.pos + i);
        &self.text[start..end]
    }

    fn unexpected(&self, hint: &str) -> String {
        match self.rest().chars().next() {
            None => format!("`{}` ends too early ({hint})", self.word()),
            Some(' ') => {
                let next = self.rest().trim_start();
                let next_word = next.split(' ').next().unwrap_or(next);
                let is_last = !next.contains(' ');
                if is_last && next.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    format!(
                        "`{next_word}` is not a time zone systemd knows \
                         (`UTC` or an IANA name such as `Europe/Berlin`)"
                    )
                } else {
                    format!("unexpected `{next_word}` after `{}` ({hint})", self.word())
                }
            }
            Some(c) => format!("unexpected `{c}` in `{}` ({hint})", self.word()),
        }
    }

    fn not_date_or_time(&self) -> String {
        format!(
            "`{}` is neither a date (Y-M-D or M-D) nor a time (h:m or h:m:s)",
            self.word()
        )
    }

    fn parse_into(&mut self, spec: &mut CalendarSpec) -> Result<(), String> {
        spec.weekdays = self.weekdays()?;
        if self.date(spec)? {
            if !self.at_end() {
                return Err(format!(
                    "nothing may follow `@SECONDS`, but `{}` does",
                    self.rest().trim_start()
                ));
            }
            return Ok(());
        }
        self.time(spec)
    }

    /// The optional weekday part, as calendarspec.c's `parse_weekdays` reads it (`-` is
    /// still accepted for ranges, and a trailing `,` is allowed).
    fn weekdays(&mut self) -> Result<Option<u8>, String> {
        let mut bits = 0u8;
        let mut range_from: Option<u8> = None;
        let mut first = true;
        loop {
            let rest = self.rest();
            let found = DAY_NAMES.iter().find(|(name, _)| {
                rest.get(..name.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(name))
            });
            let Some(&(name, day)) = found else {
                if first {
                    return Ok(None);
                }
                return Err(format!("expected a weekday name in `{}`", self.word()));
            };
            if !matches!(
                self.peek_at(name.len()),
                None | Some(b'-' | b'.' | b',' | b' ')
            ) {
                return Err(format!("`{}` is not a weekday name", self.word()));
            }
            bits |= 1 << day;
            if let Some(from) = range_from {
                if from > day {
                    return Err(format!(
                        "weekday range {}..{} ends before it starts",
                        DAY_ABBREVIATIONS[usize::from(from)],
                        DAY_ABBREVIATIONS[usize::from(day)]
                    ));
                }
                for between in from + 1..day {
                    bits |= 1 << between;
                }
            }
            self.pos += name.len();
            match self.peek() {
                None => return Ok(Some(bits)),
                Some(b' ') => {
                    self.skip_spaces();
                    return Ok(Some(bits));
                }
                Some(b'.') => {
                    if range_from.is_some() {
                        return Err(format!("a weekday range cannot go on in `{}`", self.word()));
                    }
                    if self.peek_at(1) != Some(b'.') {
                        return Err(format!(
                            "single `.` in `{}`; weekday ranges are written `Mon..Fri`",
                            self.word()
                        ));
                    }
                    range_from = Some(day);
                    self.pos += 2;
                }
                Some(b'-') => {
                    if range_from.is_some() {
                        return Err(format!("a weekday range cannot go on in `{}`", self.word()));
                    }
                    range_from = Some(day);
                    self.pos += 1;
                }
                _ => {
                    range_from = None;
                    self.pos += 1;
                }
            }
            if matches!(self.peek(), None | Some(b' ')) {
                if range_from.is_some() {
                    return Err(format!("weekday range in `{}` has no end", self.word()));
                }
                self.skip_spaces();
                return Ok(Some(bits));
            }
            first = false;
        }
    }

    /// The optional date part. Returns true for `@SECONDS`, which fixes the time too.
    fn date(&mut self, spec: &mut CalendarSpec) -> Result<bool, String> {
        if self.at_end() {
            return Ok(false);
        }
        if self.peek() == Some(b'@') {
            self.unix_time(spec)?;
            return Ok(true);
        }
        let start = self.pos;
        let first = self.chain(false)?;
        if matches!(self.peek(), None | Some(b':')) {
            // That was an hour: there is no date part.
            self.pos = start;
            return Ok(false);
        }
        let end_of_month = self.date_separator()?;
        let second = self.chain(false)?;
        if matches!(self.peek(), None | Some(b' ')) {
            self.skip_spaces();
            spec.month = first;
            spec.day = second;
            spec.end_of_month = end_of_month;
            return Ok(false);
        }
        if end_of_month {
            return Err(format!(
                "`~` in `{}` must stand between month and day",
                self.word()
            ));
        }
        let end_of_month = self.date_separator()?;
        let third = self.chain(false)?;
        if !matches!(self.peek(), None | Some(b' ')) {
            return Err(self.unexpected("a date has three parts at most"));
        }
        self.skip_spaces();
        spec.year = first;
        spec.month = second;
        spec.day = third;
        spec.end_of_month = end_of_month;
        Ok(false)
    }

    /// `-`, or `~` for days counted from the month's end.
    fn date_separator(&mut self) -> Result<bool, String> {
        let end_of_month = match self.peek() {
            Some(b'-') => false,
            Some(b'~') => true,
            _ => return Err(self.not_date_or_time()),
        };
        self.pos += 1;
        Ok(end_of_month)
    }

    fn unix_time(&mut self, spec: &mut CalendarSpec) -> Result<(), String> {
        self.pos += 1;
        let count = self.digits();
        if count == 0 {
            return Err("`@` must be followed by seconds since 1970-01-01 UTC".into());
        }
        let digits = &self.rest()[..count];
        self.pos += count;
        let at = digits
            .parse::<i64>()
            .ok()
            .and_then(|seconds| Timestamp::from_second(seconds).ok())
            .ok_or_else(|| format!("`@{digits}` is too far in the future"))?;
        let dt = TimeZone::UTC.to_datetime(at);
        let at_value = |value: i64| Some(vec![Component::single(value)]);
        spec.year = at_value(i64::from(dt.year()));
        spec.month = at_value(i64::from(dt.month()));
        spec.day = at_value(i64::from(dt.day()));
        spec.hour = at_value(i64::from(dt.hour()));
        spec.minute = at_value(i64::from(dt.minute()));
        spec.second = vec![Component::single(i64::from(dt.second()) * USEC_PER_SEC)];
        // A UNIX time is an instant: systemd reads it in UTC whatever zone follows it.
        spec.zone = Zone::Utc;
        Ok(())
    }

    /// The time part; it is the last part, and absent means `00:00:00`.
    fn time(&mut self, spec: &mut CalendarSpec) -> Result<(), String> {
        let zero = || Some(vec![Component::single(0)]);
        spec.second = vec![Component::single(0)];
        if self.at_end() {
            spec.hour = zero();
            spec.minute = zero();
            return Ok(());
        }
        spec.hour = self.chain(false)?;
        if self.peek() != Some(b':') {
            return Err(self.not_date_or_time());
        }
        self.pos += 1;
        spec.minute = self.chain(false)?;
        match self.peek() {
            None => return Ok(()),
            Some(b':') => self.pos += 1,
            Some(_) => return Err(self.unexpected("the time must be the last part")),
        }
        spec.second = self.chain(true)?.unwrap_or_else(|| vec![EVERY_SECOND]);
        if !self.at_end() {
            return Err(self.unexpected("the time must be the last part"));
        }
        Ok(())
    }

    /// `*`, or a comma-separated list of `a`, `a..b`, `a/r`, `a..b/r`; `usec` for the
    /// seconds, which may have a fractional part.
    fn chain(&mut self, usec: bool) -> Result<Chain, String> {
        if self.peek() == Some(b'*') {
            self.pos += 1;
            return match self.peek() {
                Some(b'/') => Err(format!(
                    "`*/…` in `{}` is not systemd syntax: a repetition needs a start value, \
                     e.g. `0/15` (`1/2` for days and months)",
                    self.word()
                )),
                Some(b',') => Err(format!(
                    "`*` cannot be part of a list (in `{}`)",
                    self.word()
                )),
                _ if usec => Ok(Some(vec![EVERY_SECOND])),
                _ => Ok(None),
            };
        }
        let unit = if usec { USEC_PER_SEC } else { 1 };
        let mut components = Vec::new();
        loop {
            if components.len() >= COMPONENTS_MAX {
                return Err(format!("more than {COMPONENTS_MAX} values in one list"));
            }
            let start = self.number(usec)?;
            let mut stop = None;
            let mut repeat = 0;
            if self.peek() == Some(b'.') && self.peek_at(1) == Some(b'.') {
                self.pos += 2;
                stop = Some(self.number(usec)?);
                repeat = unit;
            }
            if self.peek() == Some(b'/') {
                self.pos += 1;
                repeat = self.number(usec)?;
                if repeat == 0 {
                    return Err(format!(
                        "a repetition of 0 in `{}` never moves on",
                        self.word()
                    ));
                }
            } else if stop.is_some_and(|stop| usec && start + repeat > stop) {
                // The implied step of a seconds range is a whole second.
                return Err(format!(
                    "the seconds range in `{}` spans less than a second; \
                     give it a repetition such as `/0.1`",
                    self.word()
                ));
            }
            components.push(Component {
                start,
                stop,
                repeat,
            });
            match self.peek() {
                Some(b',') => self.pos += 1,
                None | Some(b' ' | b'-' | b'~' | b':') => return Ok(Some(components)),
                Some(_) => return Err(self.unexpected("expected `,`, `..`, `/` or the next part")),
            }
        }
    }

    /// A decimal number; for seconds, in microseconds and with an optional fraction.
    fn number(&mut self, usec: bool) -> Result<i64, String> {
        let count = self.digits();
        if count == 0 {
            let at_word_start = self.pos == 0 || self.text.as_bytes()[self.pos - 1] == b' ';
            if at_word_start && self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                return Err(format!(
                    "`{}` is not a weekday, a shorthand such as `daily`, a date or a time",
                    self.word()
                ));
            }
            return Err(self.unexpected("expected a number"));
        }
        let digits = &self.rest()[..count];
        self.pos += count;
        let too_large = || format!("`{digits}` is too large");
        let mut value: i64 = digits.parse().map_err(|_| too_large())?;
        if usec {
            value = value.checked_mul(USEC_PER_SEC).ok_or_else(too_large)?;
            // One `.` is a decimal point, two start a range.
            if self.peek() == Some(b'.') && self.peek_at(1) != Some(b'.') {
                self.pos += 1;
                value = value.checked_add(self.fraction()?).ok_or_else(too_large)?;
            }
        }
        // systemd holds every value in an int.
        if value > i64::from(i32::MAX) {
            return Err(too_large());
        }
        Ok(value)
    }

    /// Microseconds after a decimal point: six digits count, the seventh rounds and the
    /// rest are ignored (systemd's `parse_fractional_part_u`).
    fn fraction(&mut self) -> Result<i64, String> {
        let count = self.digits();
        if count == 0 {
            return Err(format!(
                "the decimal point in `{}` must be followed by digits",
                self.word()
            ));
        }
        let digits = &self.rest().as_bytes()[..count];
        let digit = |i: usize| digits.get(i).map_or(0, |&d| i64::from(d - b'0'));
        let mut value = (0..6).fold(0, |value, i| value * 10 + digit(i));
        if digit(6) >= 5 {
            value += 1;
        }
        self.pos += count;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> CalendarSpec {
        CalendarSpec::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn norm(text: &str) -> String {
        spec(text).normalized()
    }

    fn err(text: &str) -> String {
        match CalendarSpec::parse(text) {
            Ok(parsed) => panic!("`{text}` parsed as `{}`", parsed.normalized()),
            Err(e) => e,
        }
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// The next elapse with the manager in UTC.
    fn next(text: &str, after: &str) -> Option<Timestamp> {
        spec(text).next_after(ts(after), &TimeZone::UTC)
    }

    fn next_in(text: &str, after: &str, local: &str) -> Option<Timestamp> {
        spec(text).next_after(ts(after), &zone(local))
    }

    #[test]
    fn shorthands_normalize_to_their_expansions() {
        assert_eq!(norm("minutely"), "*-*-* *:*:00");
        assert_eq!(norm("hourly"), "*-*-* *:00:00");
        assert_eq!(norm("daily"), "*-*-* 00:00:00");
        assert_eq!(norm("monthly"), "*-*-01 00:00:00");
        assert_eq!(norm("weekly"), "Mon *-*-* 00:00:00");
        assert_eq!(norm("yearly"), "*-01-01 00:00:00");
        assert_eq!(norm("annually"), "*-01-01 00:00:00");
        assert_eq!(norm("quarterly"), "*-01,04,07,10-01 00:00:00");
        assert_eq!(norm("semiannually"), "*-01,07-01 00:00:00");
        assert_eq!(norm("semi-annually"), "*-01,07-01 00:00:00");
        assert_eq!(norm("biannually"), "*-01,07-01 00:00:00");
    }

    #[test]
    fn shorthands_ignore_case_and_take_a_zone() {
        assert_eq!(norm("DAILY"), "*-*-* 00:00:00");
        assert_eq!(norm("Weekly"), "Mon *-*-* 00:00:00");
        assert_eq!(
            norm("weekly Pacific/Auckland"),
            "Mon *-*-* 00:00:00 Pacific/Auckland"
        );
        assert_eq!(norm("hourly UTC"), "*-*-* *:00:00 UTC");
    }

    #[test]
    fn weekday_lists_and_ranges_normalize() {
        assert_eq!(norm("Mon..Fri 09:30"), "Mon..Fri *-*-* 09:30:00");
        assert_eq!(norm("Sat,Sun *-*-* 10:00"), "Sat,Sun *-*-* 10:00:00");
        assert_eq!(
            norm("Sat,Thu,Mon-Wed,Sat-Sun"),
            "Mon..Thu,Sat,Sun *-*-* 00:00:00"
        );
        assert_eq!(
            norm("Sat,Thu,Mon..Wed,Sat..Sun"),
            "Mon..Thu,Sat,Sun *-*-* 00:00:00"
        );
        assert_eq!(norm("Wed-Wed,Wed *-1"), "Wed *-*-01 00:00:00");
        assert_eq!(norm("Wed, 17:48"), "Wed *-*-* 17:48:00");
        assert_eq!(norm("Wednesday,"), "Wed *-*-* 00:00:00");
        assert_eq!(norm("monday *-12-* 17:00"), "Mon *-12-* 17:00:00");
        assert_eq!(norm("FRIDAY"), "Fri *-*-* 00:00:00");
        // All seven days restrict nothing.
        assert_eq!(norm("Mon..Sun"), "*-*-* 00:00:00");
    }

    #[test]
    fn dates_and_times_normalize() {
        assert_eq!(norm("*:0/15"), "*-*-* *:00/15:00");
        assert_eq!(norm("*-*-* *:*:00"), "*-*-* *:*:00");
        assert_eq!(norm("*-*-1/2"), "*-*-01/2 00:00:00");
        assert_eq!(
            norm("Mon,Sun 12-*-* 2,1:23"),
            "Mon,Sun 2012-*-* 01,02:23:00"
        );
        assert_eq!(norm("10-15"), "*-10-15 00:00:00");
        assert_eq!(norm("2003-03-05"), "2003-03-05 00:00:00");
        assert_eq!(norm("08:05:40"), "*-*-* 08:05:40");
        assert_eq!(norm("12,14,13,12:20,10,30"), "*-*-* 12,13,14:10,20,30:00");
        assert_eq!(
            norm("mon,fri *-1/2-1,3 *:30:45"),
            "Mon,Fri *-01/2-01,03 *:30:45"
        );
        assert_eq!(norm("*:*:*"), "*-*-* *:*:*");
        assert_eq!(norm("*:*"), "*-*-* *:*:00");
        assert_eq!(norm("12:*"), "*-*-* 12:*:00");
        assert_eq!(norm("9..11,13:00,30"), "*-*-* 09..11,13:00,30:00");
        assert_eq!(
            norm("1..3-1..3 1..3:1..3"),
            "*-01..03-01..03 01..03:01..03:00"
        );
    }

    #[test]
    fn ranges_with_repetitions_are_trimmed_like_systemd() {
        // 39 is not reached from 20 in steps of 5; 35 is the last value.
        assert_eq!(norm("*:20..39/5"), "*-*-* *:20..35/5:00");
        // 05..10/6 only ever hits 05.
        assert_eq!(norm("*:05..10/6"), "*-*-* *:05:00");
        assert_eq!(norm("*:05..05"), "*-*-* *:05:00");
        // 1..5/5 is trimmed to 1..1, a single value (systemd 243 still refused it).
        assert_eq!(norm("*-*-* *:1..5/5:0"), "*-*-* *:01:00");
        assert_eq!(norm("00:00:20..40/1"), "*-*-* 00:00:20..40");
    }

    #[test]
    fn two_digit_years_are_widened() {
        assert_eq!(norm("93..00-*-*"), "1993..2000-*-* 00:00:00");
        assert_eq!(norm("00..07-*-*"), "2000..2007-*-* 00:00:00");
        assert_eq!(norm("69-01-01"), "2069-01-01 00:00:00");
        assert_eq!(norm("70-01-01"), "1970-01-01 00:00:00");
    }

    #[test]
    fn fractional_seconds_are_kept_to_the_microsecond() {
        assert_eq!(norm("*-*-* 10:00:05.5"), "*-*-* 10:00:05.500000");
        // The seventh digit rounds.
        assert_eq!(
            norm("2016-03-27 03:17:00.4200005"),
            "2016-03-27 03:17:00.420001"
        );
        assert_eq!(
            norm("2016-03-27 03:17:00/0.42"),
            "2016-03-27 03:17:00/0.420000"
        );
        assert_eq!(
            norm("00:00:1.125..2.125"),
            "*-*-* 00:00:01.125000..02.125000"
        );
        assert_eq!(norm("00:00:1.0..3.8"), "*-*-* 00:00:01..03");
        assert_eq!(norm("00:00:01/2,02..03"), "*-*-* 00:00:01/2,02..03");
    }

    #[test]
    fn any_every_second_item_makes_the_seconds_a_star() {
        assert_eq!(norm("*:4,30:0/1"), "*-*-* *:04,30:*");
        assert_eq!(norm("*:4,30:0/1,3,5"), "*-*-* *:04,30:*");
        assert_eq!(norm("*:4,30:0..3"), "*-*-* *:04,30:00..03");
    }

    #[test]
    fn end_of_month_days_normalize() {
        assert_eq!(norm("*-*~1"), "*-*~01 00:00:00");
        assert_eq!(norm("*-*~1 Utc"), "*-*~01 00:00:00 UTC");
        assert_eq!(norm("*-*~05,3"), "*-*~03,05 00:00:00");
        assert_eq!(norm("*-02~03"), "*-02~03 00:00:00");
        assert_eq!(norm("Mon *-05~07/1"), "Mon *-05~07/1 00:00:00");
        assert_eq!(norm("*~03/1,03..05"), "*-*~03/1,03..05 00:00:00");
        // `~` with every day is just every day.
        assert_eq!(norm("*-*~* 00:00:00"), "*-*-* 00:00:00");
    }

    #[test]
    fn zones_and_unix_times_normalize() {
        assert_eq!(norm("2026-12-01 00:00:00 UTC"), "2026-12-01 00:00:00 UTC");
        assert_eq!(norm("2015-10-25 01:00:00 uTc"), "2015-10-25 01:00:00 UTC");
        assert_eq!(
            norm("2015-10-25 01:00:00 Asia/Vladivostok"),
            "2015-10-25 01:00:00 Asia/Vladivostok"
        );
        // 1493187147 s = 17282 days (2017-04-26) + 22347 s (06:12:27).
        assert_eq!(norm("@1493187147"), "2017-04-26 06:12:27 UTC");
        assert_eq!(norm("@1493187147 UTC"), "2017-04-26 06:12:27 UTC");
        assert_eq!(norm("@0"), "1970-01-01 00:00:00 UTC");
        // A UNIX time stays in UTC whatever zone is named after it.
        assert_eq!(norm("@0 Europe/Berlin"), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(norm("  daily \t"), "*-*-* 00:00:00");
        assert_eq!(norm("*-*~05,3 "), "*-*~03,05 00:00:00");
        assert_eq!(norm("Mon   *-*-*   12:00"), "Mon *-*-* 12:00:00");
    }

    #[test]
    fn normalized_form_parses_back_to_the_same_spec() {
        for text in [
            "Mon..Fri 09:30",
            "*:0/15",
            "Mon *-05~07/1",
            "*-*-* 10:00:05.5",
            "2016-03-27 03:17:00/0.42",
            "Sat,Thu,Mon-Wed,Sat-Sun",
            "weekly Pacific/Auckland",
            "@1493187147",
            "*:20..39/5",
        ] {
            let once = spec(text);
            assert_eq!(spec(&once.normalized()), once, "{text}");
        }
    }

    #[test]
    fn out_of_range_hour_is_named() {
        assert_eq!(
            err("*-*-* 25:00"),
            "`*-*-* 25:00` : hour 25 is out of range (0..23)"
        );
        assert_eq!(err("25:00"), "`25:00` : hour 25 is out of range (0..23)");
    }

    #[test]
    fn out_of_range_fields_are_named() {
        assert_eq!(
            err("*-13-01"),
            "`*-13-01` : month 13 is out of range (1..12)"
        );
        assert!(err("*-*-32").contains("day 32 is out of range (1..31)"));
        assert!(err("12:60").contains("minute 60 is out of range (0..59)"));
        assert!(err("00:00:60").contains("second 60 is out of range (0..59)"));
        assert!(err("1969-01-01").contains("year 1969 is out of range (1970..2199)"));
        assert!(err("121212:1:2").contains("hour 121212"));
        assert!(err("*~29").contains("day ~29 is out of range (~1..~28)"));
        assert!(err("*~16..31").contains("day ~31 is out of range"));
    }

    #[test]
    fn bad_words_are_refused() {
        assert!(err("Moonday").contains("`Moonday` is not a weekday"));
        assert!(err("Mond 12:00").contains("`Mond` is not a weekday name"));
        assert!(err("test").contains("`test`"));
        assert!(err("*-*-* 00:00 Mars/Olympus").contains("`Mars/Olympus` is not a time zone"));
        // Zone names are case-sensitive in systemd (they are file names).
        assert!(CalendarSpec::parse("*-*-* 00:00 europe/berlin").is_err());
    }

    #[test]
    fn empty_expressions_are_refused() {
        assert_eq!(err(""), "`` : the expression is empty");
        assert!(err("    ").contains("empty"));
        assert!(CalendarSpec::parse(" utc").is_err());
    }

    #[test]
    fn timestamp_words_are_not_calendar_events() {
        for word in ["now", "today", "yesterday", "tomorrow", "epoch", "NOW"] {
            assert!(err(word).contains("not a calendar event"), "{word}");
        }
    }

    #[test]
    fn malformed_weekday_parts_are_refused() {
        assert!(err("Fri..Mon").contains("Fri..Mon ends before it starts"));
        assert!(err("Monday..").contains("has no end"));
        assert!(err("Monday.. 12:00").contains("has no end"));
        assert!(err("Mon.Fri").contains("single `.`"));
        assert!(err("Mon..Wed..Fri").contains("cannot go on"));
        assert!(CalendarSpec::parse("Mon,12:00").is_err());
    }

    #[test]
    fn star_slash_is_refused_as_systemd_does() {
        assert!(err("*:*/15").contains("needs a start value"));
        assert!(err("*-*-*/2").contains("needs a start value"));
        assert!(err("*:4,30:*,5").contains("cannot be part of a list"));
        assert!(CalendarSpec::parse("*:4,30:5,*").is_err());
    }

    #[test]
    fn impossible_repetitions_and_ranges_are_refused() {
        // 20 + 4 is past 23: the repetition never fires a second time.
        assert!(err("20/4:00").contains("hour 20/4 never repeats within 0..23"));
        assert!(err("00:00/60").contains("minute repetition /60"));
        assert!(err("12..1/2-*").contains("month range 12..1 is empty"));
        assert!(err("*:5..1").contains("minute range 5..1 is empty"));
        assert!(err("*-*~5/5").contains("past the first day"));
        assert!(err("00:00:00/0.00000001").contains("repetition of 0"));
        assert!(err("00:00:00.0..00.9").contains("less than a second"));
    }

    #[test]
    fn malformed_dates_and_times_are_refused() {
        assert!(err("7").contains("neither a date"));
        assert!(err("2016~11-22").contains("between month and day"));
        assert!(err("2000-03-05.23 00:00:00").contains("unexpected `.`"));
        assert!(CalendarSpec::parse("2000-03-05 00:00.1:00").is_err());
        assert!(CalendarSpec::parse("-00:+00/-5").is_err());
        assert!(CalendarSpec::parse("00:+00/-5").is_err());
        assert!(CalendarSpec::parse("2016- 11- 24 12: 30: 00").is_err());
        assert!(CalendarSpec::parse("1-2-3-4").is_err());
        assert!(err("*-*-* 10:00:05.").contains("followed by digits"));
        assert!(err("00:00:2300").contains("too large"));
        assert!(err("00:00:18446744073709551615").contains("too large"));
        assert!(CalendarSpec::parse("@88588582097858858").is_err());
        assert!(err("@1493187147 10:00").contains("nothing may follow"));
        assert!(CalendarSpec::parse("*:4,30:*\n5").is_err());
        // systemd separates parts with spaces only; the tab is not trimmed here.
        assert!(CalendarSpec::parse("Mon\t12:00").is_err());
    }

    #[test]
    fn weekdays_at_half_past_nine() {
        // 2026-05-12 is a Tuesday, 2026-05-15 a Friday.
        let s = "Mon..Fri 09:30";
        assert_eq!(
            next(s, "2026-05-12T08:00:00Z"),
            Some(ts("2026-05-12T09:30:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-12T09:29:59.999999999Z"),
            Some(ts("2026-05-12T09:30:00Z"))
        );
        // On a fire: strictly after, so Friday's becomes Monday's.
        assert_eq!(
            next(s, "2026-05-15T09:30:00Z"),
            Some(ts("2026-05-18T09:30:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-16T12:00:00Z"),
            Some(ts("2026-05-18T09:30:00Z"))
        );
    }

    #[test]
    fn every_quarter_hour() {
        let s = "*:0/15";
        assert_eq!(
            next(s, "2026-05-12T10:07:30Z"),
            Some(ts("2026-05-12T10:15:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-12T10:45:00Z"),
            Some(ts("2026-05-12T11:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-12T23:50:00Z"),
            Some(ts("2026-05-13T00:00:00Z"))
        );
    }

    #[test]
    fn every_minute() {
        for s in ["*-*-* *:*:00", "minutely", "*:*"] {
            assert_eq!(
                next(s, "2026-05-12T10:07:30Z"),
                Some(ts("2026-05-12T10:08:00Z"))
            );
            assert_eq!(
                next(s, "2026-05-12T10:08:00Z"),
                Some(ts("2026-05-12T10:09:00Z"))
            );
            assert_eq!(
                next(s, "2026-12-31T23:59:00Z"),
                Some(ts("2027-01-01T00:00:00Z"))
            );
        }
    }

    #[test]
    fn every_second_and_fractions() {
        assert_eq!(
            next("*:*:*", "2026-05-12T10:00:00.5Z"),
            Some(ts("2026-05-12T10:00:01Z"))
        );
        assert_eq!(
            next("*:*:*", "2026-05-12T10:00:01Z"),
            Some(ts("2026-05-12T10:00:02Z"))
        );
        assert_eq!(
            next("*-*-* 10:00:05.5", "2026-05-12T10:00:05Z"),
            Some(ts("2026-05-12T10:00:05.5Z"))
        );
        assert_eq!(
            next("*-*-* 10:00:05.5", "2026-05-12T10:00:05.5Z"),
            Some(ts("2026-05-13T10:00:05.5Z"))
        );
    }

    #[test]
    fn single_fire_in_utc_ignores_the_local_zone() {
        let s = "2026-12-01 00:00:00 UTC";
        let berlin = "Europe/Berlin";
        assert_eq!(
            next_in(s, "2026-05-12T00:00:00Z", berlin),
            Some(ts("2026-12-01T00:00:00Z"))
        );
        assert_eq!(next_in(s, "2026-12-01T00:00:00Z", berlin), None);
        assert_eq!(next_in(s, "2026-12-01T00:00:00.000001Z", berlin), None);
    }

    #[test]
    fn the_same_date_in_the_local_zone() {
        // Berlin is at +01:00 in December.
        assert_eq!(
            next_in(
                "2026-12-01 00:00:00",
                "2026-05-12T00:00:00Z",
                "Europe/Berlin"
            ),
            Some(ts("2026-11-30T23:00:00Z"))
        );
    }

    #[test]
    fn unix_time_fires_once() {
        // 1800000000 s = 20833 days (2027-01-15) + 28800 s (08:00:00).
        assert_eq!(norm("@1800000000"), "2027-01-15 08:00:00 UTC");
        let s = "@1800000000";
        assert_eq!(
            next(s, "2026-05-12T00:00:00Z"),
            Some(Timestamp::from_second(1_800_000_000).unwrap())
        );
        assert_eq!(next(s, "2027-01-15T08:00:00Z"), None);
    }

    #[test]
    fn last_day_of_month() {
        let s = "*-*~1";
        assert_eq!(
            next(s, "2026-02-10T00:00:00Z"),
            Some(ts("2026-02-28T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-02-28T00:00:00Z"),
            Some(ts("2026-03-31T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-04-15T00:00:00Z"),
            Some(ts("2026-04-30T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2028-02-01T00:00:00Z"),
            Some(ts("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn third_to_last_day_of_february() {
        let s = "*-02~03";
        assert_eq!(
            next(s, "2026-01-01T00:00:00Z"),
            Some(ts("2026-02-26T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-02-26T00:00:00Z"),
            Some(ts("2027-02-26T00:00:00Z"))
        );
        // 2028 is a leap year: 29, 28, 27.
        assert_eq!(
            next(s, "2027-03-01T00:00:00Z"),
            Some(ts("2028-02-27T00:00:00Z"))
        );
    }

    #[test]
    fn last_monday_of_may() {
        // May 2026 ends on Sunday the 31st; May 2027 on Monday the 31st.
        let s = "Mon *-05~07/1";
        assert_eq!(
            next(s, "2026-01-01T00:00:00Z"),
            Some(ts("2026-05-25T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-25T00:00:00Z"),
            Some(ts("2027-05-31T00:00:00Z"))
        );
        assert_eq!(
            next("Mon *-05~01..07", "2026-01-01T00:00:00Z"),
            Some(ts("2026-05-25T00:00:00Z"))
        );
    }

    #[test]
    fn weekends_at_ten() {
        let s = "Sat,Sun *-*-* 10:00";
        assert_eq!(
            next(s, "2026-05-12T12:00:00Z"),
            Some(ts("2026-05-16T10:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-16T10:00:00Z"),
            Some(ts("2026-05-17T10:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-05-17T10:00:00Z"),
            Some(ts("2026-05-23T10:00:00Z"))
        );
    }

    #[test]
    fn odd_days_restart_each_month() {
        let s = "*-*-1/2";
        assert_eq!(
            next(s, "2026-01-30T12:00:00Z"),
            Some(ts("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-01-31T00:00:00Z"),
            Some(ts("2026-02-01T00:00:00Z"))
        );
        // February 2026 has no 29th, and the 28th is even.
        assert_eq!(
            next(s, "2026-02-27T12:00:00Z"),
            Some(ts("2026-03-01T00:00:00Z"))
        );
        assert_eq!(
            next(s, "2026-04-29T01:00:00Z"),
            Some(ts("2026-05-01T00:00:00Z"))
        );
    }

    #[test]
    fn friday_the_thirteenth() {
        // After March 2026 the next Friday the 13th is in November.
        assert_eq!(
            next("Fri *-*-13 00:00", "2026-05-12T00:00:00Z"),
            Some(ts("2026-11-13T00:00:00Z"))
        );
    }

    #[test]
    fn dates_that_never_come() {
        assert_eq!(next("*-04-31", "2026-01-01T00:00:00Z"), None);
        assert_eq!(next("*-02-30", "2026-01-01T00:00:00Z"), None);
        // Further away than the search looks.
        assert_eq!(next("2100-01-01", "2026-01-01T00:00:00Z"), None);
        // Already past.
        assert_eq!(next("2003-03-05", "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn a_zone_in_the_expression_wins_over_the_local_one() {
        // New York is at -04:00 in May.
        assert_eq!(
            next_in(
                "*-*-* 09:00 America/New_York",
                "2026-05-12T00:00:00Z",
                "Europe/Berlin"
            ),
            Some(ts("2026-05-12T13:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_skips_the_missing_wall_time() {
        // Berlin goes from 02:00 CET straight to 03:00 CEST on 2026-03-29 (01:00 UTC).
        let berlin = "Europe/Berlin";
        assert_eq!(
            next_in("*-*-* 02:30", "2026-03-28T12:00:00Z", berlin),
            Some(ts("2026-03-30T02:30:00+02:00"))
        );
        assert_eq!(
            next("*-*-* 02:30 Europe/Berlin", "2026-03-28T12:00:00Z"),
            Some(ts("2026-03-30T02:30:00+02:00"))
        );
        assert_eq!(
            next_in("2026-03-29 02:30", "2026-01-01T00:00:00Z", berlin),
            None
        );
        // Times after the gap come when the clock lands.
        assert_eq!(
            next_in("hourly", "2026-03-29T00:30:00Z", berlin),
            Some(ts("2026-03-29T03:00:00+02:00"))
        );
        assert_eq!(
            next_in("minutely", "2026-03-29T00:59:30Z", berlin),
            Some(ts("2026-03-29T03:00:00+02:00"))
        );
        assert_eq!(
            next_in("*:*:0/0.5", "2026-03-29T00:59:59.75Z", berlin),
            Some(ts("2026-03-29T03:00:00+02:00"))
        );
    }

    #[test]
    fn fall_back_fires_the_repeated_wall_time_once() {
        // Berlin goes from 03:00 CEST back to 02:00 CET on 2026-10-25 (01:00 UTC).
        let berlin = "Europe/Berlin";
        let s = "*-*-* 02:30";
        assert_eq!(
            next_in(s, "2026-10-24T12:00:00Z", berlin),
            Some(ts("2026-10-25T02:30:00+02:00"))
        );
        // The second 02:30 (01:30 UTC) is not an elapse.
        assert_eq!(
            next_in(s, "2026-10-25T00:30:00Z", berlin),
            Some(ts("2026-10-26T02:30:00+01:00"))
        );
        // During the repeated hour, what is left of it on the wall has already elapsed.
        assert_eq!(
            next_in("minutely", "2026-10-25T01:30:00Z", berlin),
            Some(ts("2026-10-25T03:00:00+01:00"))
        );
        assert_eq!(
            next_in("hourly", "2026-10-25T00:30:00Z", berlin),
            Some(ts("2026-10-25T03:00:00+01:00"))
        );
        assert_eq!(
            next_in("minutely", "2026-10-25T00:58:30Z", berlin),
            Some(ts("2026-10-25T02:59:00+02:00"))
        );
    }

    #[test]
    fn systemd_upstream_next_elapse_cases() {
        // From systemd's test-calendarspec.c (microsecond values turned into RFC 3339).
        assert_eq!(
            next("*-*-01/5 04:00:00 UTC", "2022-02-28T01:00:00Z"),
            Some(ts("2022-03-01T04:00:00Z"))
        );
        assert_eq!(
            next("*-01/7-01 04:00:00 UTC", "2022-10-01T07:00:00Z"),
            Some(ts("2023-01-01T04:00:00Z"))
        );
        assert_eq!(
            next("2017-08-06 9..17/2:00 UTC", "2017-08-06T14:30:00Z"),
            Some(ts("2017-08-06T15:00:00Z"))
        );
        assert_eq!(
            next("2016-12-* 3..21/6:00 UTC", "2016-12-24T21:00:00.000001Z"),
            Some(ts("2016-12-25T03:00:00Z"))
        );
        assert_eq!(
            next_in(
                "Sun 16:00:00",
                "2016-02-21T08:00:00.123456Z",
                "Europe/Berlin"
            ),
            Some(ts("2016-02-21T15:00:00Z"))
        );
        assert_eq!(
            next("Mon 2017-05~07/1 UTC", "2017-01-01T00:00:00Z"),
            Some(ts("2017-05-29T00:00:00Z"))
        );
        assert_eq!(
            next("2016-02~01 UTC", "2016-01-01T00:00:00Z"),
            Some(ts("2016-02-29T00:00:00Z"))
        );
        // 2015-11-13 09:11:23.42 in Kyiv (+02:00), then every 1.77 s.
        let s = "2015-11-13 09:11:23.42/1.77";
        assert_eq!(
            next_in(s, "2015-11-13T07:11:23.419999Z", "Europe/Kyiv"),
            Some(ts("2015-11-13T07:11:23.42Z"))
        );
        assert_eq!(
            next_in(s, "2015-11-13T07:11:23.42Z", "Europe/Kyiv"),
            Some(ts("2015-11-13T07:11:25.19Z"))
        );
    }

    #[test]
    fn systemd_upstream_auckland_clock_changes() {
        let after = "2017-01-01T00:00:00Z";
        assert_eq!(
            next("2017-09-24 03:30:00 Pacific/Auckland", after),
            Some(ts("2017-09-23T14:30:00Z"))
        );
        // 02:30 does not exist on 2017-09-24 in Auckland.
        assert_eq!(next("2017-09-24 02:30:00 Pacific/Auckland", after), None);
        // 02:30 happens twice on 2017-04-02; it elapses at the first, NZDT (+13:00).
        let twice = "2017-04-02 02:30:00 Pacific/Auckland";
        assert_eq!(next(twice, after), Some(ts("2017-04-01T13:30:00Z")));
        assert_eq!(next(twice, "2017-04-01T13:30:00Z"), None);
    }
}
