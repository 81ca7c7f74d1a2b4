//! busybox crond's crontab reader (miscutils/crond.c `load_crontab`, `ParseField`,
//! `FixDayDow`, libbb/parse_config.c `config_read`), busybox 1.35 as Debian ships it.
//!
//! It is much looser than Vixie's and fails differently:
//! * a line is split at blanks into five fields and a command; `#` anywhere ends the
//!   line (so it also cuts a command short); a trailing `\` joins the next line;
//! * lines with fewer than six fields, unknown `@words` and every env line but
//!   `MAILTO=` and `SHELL=` are dropped without a word;
//! * a field it cannot parse is logged, and the line is kept with whatever the field
//!   filled in before the error (`61` fills every minute, `7` every weekday);
//! * no `%` handling: the command goes to the shell as written;
//! * a non-root file is read up to 255 lines.
use super::{Context, Issue, Item, Parsed, ParsedEntry};
use crate::schedules::crontab::schedule::{DayRule, Schedule};
use crate::schedules::crontab::Effect;

const DOW_ARY: &[u8] = b"sunmontuewedthufrisat";
const MON_ARY: &[u8] = b"janfebmaraprmayjunjulaugsepoctnovdec";
/// crond.c MAXLINES; root gets 65535.
const MAX_LINES: usize = 256;
const ROOT_MAX_LINES: usize = 65_535;

pub(super) fn parse(text: &str, cx: &Context) -> Parsed {
    let mut out = Parsed::default();
    let issue =
        |out: &mut Parsed, line: u32, rule: &'static str, detail: String, effect: Effect| {
            out.issues.push(Issue {
                line: Some(line),
                rule,
                detail,
                effect,
            });
        };
    let mut budget = if cx.spool_user == Some("root") {
        ROOT_MAX_LINES
    } else {
        MAX_LINES
    };
    for (line_no, line) in logical_lines(text) {
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        budget -= 1;
        if budget == 0 {
            let detail = format!("only the first {} lines that are not comments are read; this one and the rest are ignored", MAX_LINES - 1);
            issue(
                &mut out,
                line_no,
                "too_many_lines",
                detail,
                Effect::SkipsLine,
            );
            break;
        }
        let (tokens, cut_at_hash) = tokenize(trimmed);
        let first = tokens.first().copied().unwrap_or_default();
        if let Some(value) = first.strip_prefix("MAILTO=") {
            out.items.push(Item::Env {
                line: line_no,
                name: "MAILTO".into(),
                value: value.into(),
            });
            continue;
        }
        if let Some(value) = first.strip_prefix("SHELL=") {
            out.items.push(Item::Env {
                line: line_no,
                name: "SHELL".into(),
                value: value.into(),
            });
            continue;
        }
        if let Some(name) = first.strip_prefix('@') {
            let Some(fields) = special_fields(name) else {
                let detail = format!(
                    "unknown time specifier @{name}: the line is dropped without a log message"
                );
                issue(&mut out, line_no, "syntax_error", detail, Effect::SkipsLine);
                continue;
            };
            if tokens.len() < 2 {
                let detail = format!("@{name} is not followed by a command: the line is dropped");
                issue(
                    &mut out,
                    line_no,
                    "busybox_short_line",
                    detail,
                    Effect::SkipsLine,
                );
                continue;
            }
            let detail = format!("@{name}: busybox crond builds without CONFIG_FEATURE_CROND_D, such as Debian's busybox-static 1.35, crash (SIGSEGV) when they load this line, stopping every job; others run it");
            issue(
                &mut out,
                line_no,
                "busybox_special_crash",
                detail,
                Effect::CrashesDaemon,
            );
            // Other builds take the command from the untokenized line: comments included.
            let command = trimmed
                .split_once([' ', '\t'])
                .map_or("", |(_, rest)| rest.trim_start_matches([' ', '\t']));
            let spec = match fields {
                None => Schedule {
                    reboot: true,
                    ..Schedule::default()
                },
                Some(f) => fields_schedule(&["0", f[0], f[1], f[2], f[3]]).0,
            };
            out.items.push(Item::Entry(ParsedEntry {
                line: line_no,
                user: None,
                schedule: format!("@{name}"),
                spec,
                raw_command: command.to_string(),
            }));
            continue;
        }
        if tokens.len() < 6 {
            let (rule, detail) = if looks_like_setting(trimmed) {
                ("busybox_env_ignored", format!("'{first}': busybox crond honours only MAILTO= and SHELL= lines (written without blanks around =); this setting is ignored"))
            } else {
                ("busybox_short_line", format!("only {} of the 6 fields (5 times and a command): the line is dropped without a log message", tokens.len()))
            };
            issue(&mut out, line_no, rule, detail, Effect::SkipsLine);
            continue;
        }
        let (spec, errors) = fields_schedule(&tokens[..5]);
        for why in errors {
            issue(&mut out, line_no, "syntax_error", why, Effect::Advisory);
        }
        if cut_at_hash {
            let detail = "a # in the line starts a comment for busybox crond: the command is cut short there".to_string();
            issue(
                &mut out,
                line_no,
                "busybox_hash_truncates",
                detail,
                Effect::Advisory,
            );
        }
        if tokens[5].ends_with('\r') {
            let detail = "the line ends in a carriage return (CRLF line ends); it becomes part of the command".to_string();
            issue(&mut out, line_no, "crlf_line_end", detail, Effect::Advisory);
        }
        out.items.push(Item::Entry(ParsedEntry {
            line: line_no,
            user: None,
            schedule: tokens[..5].join(" "),
            spec,
            raw_command: tokens[5].to_string(),
        }));
    }
    out
}

/// `NAME=...` or `NAME = ...`: what a Vixie crontab would take as a setting.
fn looks_like_setting(line: &str) -> bool {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    name_end > 0
        && line[name_end..]
            .trim_start_matches([' ', '\t'])
            .starts_with('=')
}

/// parse_config.c `get_line_with_continuation`: lines with the line number of their
/// first physical line; a line ending in `\` continues on the next one.
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut lines = text.split_inclusive('\n').peekable();
    let mut number = 0u32;
    while let Some(first) = lines.next() {
        number += 1;
        let start = number;
        let mut line = first.strip_suffix('\n').unwrap_or(first).to_string();
        while line.ends_with('\\') {
            let Some(next) = lines.next() else { break };
            number += 1;
            line.pop();
            line.push_str(next.strip_suffix('\n').unwrap_or(next));
        }
        out.push((start, line));
    }
    out
}

/// config_read with "# \t", 6 tokens, PARSE_NORMAL: blank-separated, the sixth token
/// takes the rest, `#` ends the line anywhere. Returns whether a `#` cut the line.
fn tokenize(line: &str) -> (Vec<&str>, bool) {
    let mut tokens = Vec::new();
    let mut rest = line;
    let mut cut = false;
    while !rest.is_empty() && !rest.starts_with('#') && tokens.len() < 6 {
        if tokens.len() == 5 {
            let end = rest.find('#').unwrap_or(rest.len());
            cut |= end < rest.len();
            tokens.push(rest[..end].trim_end_matches([' ', '\t']));
            break;
        }
        let end = rest.find([' ', '\t', '#']).unwrap_or(rest.len());
        tokens.push(&rest[..end]);
        rest = &rest[end..];
        if rest.starts_with('#') {
            cut = tokens.len() >= 5;
            break;
        }
        rest = rest.trim_start_matches([' ', '\t']);
    }
    (tokens, cut)
}

/// crond.c `SpecAry`: hour, day, month, weekday of each `@word`; `None` for @reboot.
#[allow(clippy::type_complexity)]
fn special_fields(name: &str) -> Option<Option<[&'static str; 4]>> {
    Some(match name {
        "yearly" | "annually" => Some(["0", "1", "1", "*"]),
        "monthly" => Some(["0", "1", "*", "*"]),
        "weekly" => Some(["0", "*", "*", "0"]),
        "daily" | "midnight" => Some(["0", "*", "*", "*"]),
        "hourly" => Some(["*", "*", "*", "*"]),
        "reboot" => None,
        _ => return None,
    })
}

/// A field's name, its table, the offset of its numbers and its names.
type FieldSpec<'a> = (&'static str, &'a mut [bool], i64, Option<&'static [u8]>);

/// The five fields through `ParseField` and `FixDayDow`; the error messages busybox
/// logs, each with what the field ended up as.
fn fields_schedule(fields: &[&str]) -> (Schedule, Vec<String>) {
    let mut errors = Vec::new();
    let mut mins = [false; 60];
    let mut hrs = [false; 24];
    let mut days = [false; 32];
    let mut mons = [false; 12];
    let mut dow = [false; 7];
    let specs: [FieldSpec; 5] = [
        ("minute", &mut mins, 0, None),
        ("hour", &mut hrs, 0, None),
        ("day-of-month", &mut days, 0, None),
        ("month", &mut mons, -1, Some(MON_ARY)),
        ("day-of-week", &mut dow, 0, Some(DOW_ARY)),
    ];
    for ((what, ary, off, names), text) in specs.into_iter().zip(fields) {
        if let Err(why) = parse_field(text.as_bytes(), ary, off, names) {
            let filled = ary.iter().filter(|&&b| b).count();
            errors.push(format!(
                "bad {what} '{text}' ({why}): busybox logs \"parse error\" and still runs the line, with {filled} of {} {what} values set",
                ary.len()
            ));
        }
    }
    // FixDayDow: if exactly one of the two day fields is restricted (a table entry
    // unset, index 0 of the day table included), the other is emptied.
    let week_used = dow.iter().any(|&b| !b);
    let days_used = days.iter().any(|&b| !b);
    if week_used != days_used {
        if week_used {
            days = [false; 32];
        } else {
            dow = [false; 7];
        }
    }
    let bits = |a: &[bool]| {
        a.iter()
            .enumerate()
            .fold(0u64, |acc, (i, &b)| acc | (u64::from(b) << i))
    };
    let schedule = Schedule {
        minutes: bits(&mins),
        hours: bits(&hrs) as u32,
        doms: (bits(&days) & !1) as u32,
        months: (bits(&mons) << 1) as u16,
        dows: bits(&dow) as u8,
        day_rule: DayRule::Either,
        wildcard: fields.first().is_some_and(|f| f.starts_with('*'))
            || fields.get(1).is_some_and(|f| f.starts_with('*')),
        reboot: false,
    };
    (schedule, errors)
}

/// C `strtol` on bytes from `at`: blanks, sign, digits. Returns (value, end); with no
/// digits the end is `at` itself, as C sets `endp` to the start.
fn strtol(b: &[u8], at: usize) -> (i64, usize) {
    let mut i = at;
    while b
        .get(i)
        .is_some_and(|&c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        i += 1;
    }
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits_start = i;
    let mut v: i64 = 0;
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(c - b'0'));
        i += 1;
    }
    if i == digits_start {
        return (0, at);
    }
    (if negative { -v } else { v }, i)
}

/// crond.c `ParseField`, including its wrap-around ranges (`22-2` is 22,23,0,1,2), its
/// 1024-step failsafe, and the table it leaves filled when it gives up.
fn parse_field(
    text: &[u8],
    ary: &mut [bool],
    off: i64,
    names: Option<&[u8]>,
) -> Result<(), String> {
    let modvalue = ary.len() as i64;
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    let mut ptr = 0usize;
    let (mut n1, mut n2) = (-1i64, -1i64);
    loop {
        let mut skip = 0i64;
        if at(ptr) == b'*' {
            n1 = 0;
            n2 = modvalue - 1;
            skip = 1;
            ptr += 1;
        } else if at(ptr).is_ascii_digit() {
            let (v, end) = strtol(text, ptr);
            if n1 < 0 {
                n1 = v.saturating_add(off);
            } else {
                n2 = v.saturating_add(off);
            }
            ptr = end;
            skip = 1;
        } else if let Some(names) = names {
            for (i, name) in names.chunks(3).enumerate() {
                let here = text.get(ptr..ptr + 3);
                if here.is_some_and(|h| h.eq_ignore_ascii_case(name)) {
                    ptr += 3;
                    if n1 < 0 {
                        n1 = i as i64;
                    } else {
                        n2 = i as i64;
                    }
                    skip = 1;
                    break;
                }
            }
        }
        if skip == 0 {
            return Err(format!(
                "unexpected '{}'",
                String::from_utf8_lossy(&text[ptr.min(text.len())..])
            ));
        }
        if at(ptr) == b'-' && n2 < 0 {
            ptr += 1;
            continue;
        }
        if n2 < 0 {
            n2 = n1;
        }
        if at(ptr) == b'/' {
            let (v, end) = strtol(text, ptr + 1);
            skip = v;
            ptr = end;
        }
        // Fill: walk from n1 to n2 modulo the table size, every `skip`-th value.
        let mut s0 = 1i64;
        let mut failsafe = 1024;
        n1 -= 1;
        loop {
            n1 = (n1 + 1) % modvalue; // C remainder: keeps the sign of n1
            s0 -= 1;
            if s0 == 0 {
                match usize::try_from(n1 % modvalue)
                    .ok()
                    .and_then(|i| ary.get_mut(i))
                {
                    Some(slot) => *slot = true,
                    // busybox writes before its table here (undefined behaviour).
                    None => return Err(format!("value {} is below the range", n1 - off)),
                }
                s0 = skip;
            }
            failsafe -= 1;
            if failsafe == 0 {
                return Err(
                    "value out of range: the fill loop gave up after 1024 steps".to_string()
                );
            }
            if n1 == n2 {
                break;
            }
        }
        if at(ptr) != b',' {
            break;
        }
        ptr += 1;
        n1 = -1;
        n2 = -1;
    }
    if ptr < text.len() {
        return Err(format!(
            "trailing '{}'",
            String::from_utf8_lossy(&text[ptr..])
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &str, size: usize, off: i64, names: Option<&[u8]>) -> (Vec<usize>, bool) {
        let mut ary = vec![false; size];
        let ok = parse_field(text.as_bytes(), &mut ary, off, names).is_ok();
        (
            ary.iter()
                .enumerate()
                .filter(|(_, &b)| b)
                .map(|(i, _)| i)
                .collect(),
            ok,
        )
    }

    #[test]
    fn parse_field_follows_busybox() {
        assert_eq!(field("*/15", 60, 0, None), (vec![0, 15, 30, 45], true));
        assert_eq!(field("10-20/5", 60, 0, None), (vec![10, 15, 20], true));
        // A/N is accepted and means just A.
        assert_eq!(field("5/10", 60, 0, None), (vec![5], true));
        // Ranges wrap around.
        assert_eq!(field("22-2", 24, 0, None), (vec![0, 1, 2, 22, 23], true));
        // Out of range: error, yet every value gets set by the failsafe walk.
        let (set, ok) = field("61", 60, 0, None);
        assert!(!ok);
        assert_eq!(set.len(), 60);
        // 7 for Sunday is out of range for the 7-entry table: every weekday.
        let (set, ok) = field("7", 7, 0, Some(DOW_ARY));
        assert!(!ok);
        assert_eq!(set.len(), 7);
        assert_eq!(
            field("Mon-fri", 7, 0, Some(DOW_ARY)),
            (vec![1, 2, 3, 4, 5], true)
        );
        assert_eq!(field("jan,DEC", 12, -1, Some(MON_ARY)), (vec![0, 11], true));
        assert_eq!(field("1", 12, -1, Some(MON_ARY)), (vec![0], true));
        assert!(!field("x", 60, 0, None).1);
    }

    #[test]
    fn tokenize_cuts_at_hash_and_keeps_the_command_whole() {
        let (t, cut) = tokenize("*/5 * * * * echo a  b # note");
        assert_eq!(t, ["*/5", "*", "*", "*", "*", "echo a  b"]);
        assert!(cut);
        let (t, cut) = tokenize("1 2 3 4 5 cmd\targ  ");
        assert_eq!(t, ["1", "2", "3", "4", "5", "cmd\targ"]);
        assert!(!cut);
        assert_eq!(tokenize("PATH=/bin").0, ["PATH=/bin"]);
    }

    #[test]
    fn continuation_lines_join() {
        let lines = logical_lines("a \\\nb\nc\n");
        assert_eq!(lines, [(1, "a b".to_string()), (3, "c".to_string())]);
    }
}
