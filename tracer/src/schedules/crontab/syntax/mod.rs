//! A crontab file's text, read the way one daemon reads it: env lines, entries, and
//! what it refuses. Each daemon's reader is a transliteration of its own C code
//! (`vixie.rs` for Debian cron and cronie, `busybox.rs`), because their quirks decide
//! whether a job runs: Debian drops a whole file for one bad line, cronie only the
//! line, busybox keeps a line whose fields it could not parse.
mod busybox;
#[cfg(test)]
mod parser_tests;
mod vixie;

use super::schedule::Schedule;
use super::Effect;
use crate::schedules::Daemon;

/// One meaningful line of a crontab.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `NAME=VALUE`, after the daemon's own unquoting.
    Env {
        line: u32,
        name: String,
        value: String,
    },
    Entry(ParsedEntry),
}

/// A job line the daemon accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedEntry {
    pub line: u32,
    /// The user field of system crontabs.
    pub user: Option<String>,
    /// The time fields as written, single-spaced (`*/5 * * * *`, `@daily`).
    pub schedule: String,
    pub spec: Schedule,
    /// The rest of the line as the daemon stored it, before `%` handling.
    pub raw_command: String,
}

/// Something the daemon refuses or treats unexpectedly, tied to a rule of `rules.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub line: Option<u32>,
    pub rule: &'static str,
    /// Why, in words specific to this line (the rule's own text gives the fix).
    pub detail: String,
    pub effect: Effect,
}

/// The result of reading one file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// In file order. Lines after a point where the daemon stops reading are still
    /// read on (for the report); `file_ignored` then says the daemon runs none of them.
    pub items: Vec<Item>,
    pub issues: Vec<Issue>,
    /// The daemon drops the whole file: this issue says why (it is also in `issues`).
    pub file_ignored: Option<Issue>,
}

/// What the readers need to know about the file besides its text.
pub struct Context<'a> {
    pub daemon: Daemon,
    /// `/etc/crontab` and `/etc/cron.d/*` have a user field.
    pub system: bool,
    /// The spool file's user (busybox and cronie grant root extra limits and options).
    pub spool_user: Option<&'a str>,
    pub user_exists: &'a dyn Fn(&str) -> bool,
}

pub fn parse(text: &str, cx: &Context) -> Parsed {
    match cx.daemon {
        Daemon::BusyboxCrond => busybox::parse(text, cx),
        Daemon::DebianCron | Daemon::Cronie => vixie::parse(text, cx),
    }
}

/// Splits a stored command at its first unescaped `%` into the command the shell runs
/// and the text written to its stdin, as do_command.c does (Debian and cronie alike,
/// except that Debian also turns `\\` into `\` in the command part). busybox crond
/// passes the line to the shell untouched.
pub fn split_command(raw: &str, daemon: Daemon) -> (String, Option<String>) {
    if daemon == Daemon::BusyboxCrond {
        return (raw.to_string(), None);
    }
    let mut command = String::new();
    let mut escaped = false;
    let mut rest = None;
    for (i, ch) in raw.char_indices() {
        command.push(ch);
        if escaped {
            if ch == '%' || (ch == '\\' && daemon == Daemon::DebianCron) {
                command.pop();
                command.pop();
                command.push(ch);
            }
            escaped = false;
            continue;
        }
        if ch == '\\' {
            escaped = true;
            continue;
        }
        if ch == '%' {
            command.pop();
            rest = Some(&raw[i + 1..]);
            break;
        }
    }
    let stdin = rest.filter(|r| !r.is_empty()).map(|rest| {
        // \% -> %, % -> newline, \x -> \x; a final newline is added if missing.
        let mut out = String::new();
        let mut escaped = false;
        let mut need_newline = false;
        for mut ch in rest.chars() {
            if escaped {
                if ch != '%' {
                    out.push('\\');
                }
            } else if ch == '%' {
                ch = '\n';
            }
            escaped = ch == '\\';
            if !escaped {
                out.push(ch);
                need_newline = ch != '\n';
            }
        }
        if escaped {
            out.push('\\');
        }
        if need_newline {
            out.push('\n');
        }
        out
    });
    (command, stdin)
}

/// Why a field's text is rejected, in words, for messages. The daemons only say "bad
/// minute"; an on-call engineer wants to know which part and what is allowed.
pub(crate) fn explain_field(
    text: &str,
    what: &str,
    low: u32,
    high: u32,
    names: &[&str],
    daemon: Daemon,
) -> String {
    let range = format!("{what} must be {low}-{high}");
    if text.is_empty() {
        return format!("missing {what} field");
    }
    let number = |s: &str| -> Result<u32, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let v: u64 = s.parse().unwrap_or(u64::MAX);
            return if (u64::from(low)..=u64::from(high)).contains(&v) {
                Ok(v as u32)
            } else {
                Err(format!("{s} is out of range ({range})"))
            };
        }
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u32)
            .ok_or_else(|| {
                if names.is_empty() {
                    format!("'{s}' is not a number ({range})")
                } else {
                    format!(
                        "'{s}' is not a number or a name ({})",
                        names[..names.len().min(12)].join(" ")
                    )
                }
            })
    };
    for part in text.split(',') {
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step {
            if step.is_empty()
                || !step.bytes().all(|b| b.is_ascii_digit())
                || step.parse::<u64>().unwrap_or(0) == 0
            {
                return format!("'{part}': the step after / must be a number of at least 1");
            }
            if base != "*" && !base.contains('-') && daemon != Daemon::BusyboxCrond {
                return format!("'{part}': {} accepts a step only after * or a range (write {base}-{high}/{step})", daemon.label());
            }
        }
        if base == "*" {
            continue;
        }
        let mut ends = base.splitn(2, '-');
        for end in ends.by_ref() {
            if let Err(why) = number(end) {
                return format!("'{part}': {why}");
            }
        }
    }
    format!("'{text}' is not a valid {what} field ({range})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_splits_command_and_stdin() {
        let table: &[(&str, Daemon, &str, Option<&str>)] = &[
            ("echo hi", Daemon::DebianCron, "echo hi", None),
            (
                "mail -s x joe%Joe,%%Where?%",
                Daemon::DebianCron,
                "mail -s x joe",
                Some("Joe,\n\nWhere?\n"),
            ),
            (r"date +\%s", Daemon::DebianCron, "date +%s", None),
            (r"date +\%s", Daemon::Cronie, "date +%s", None),
            // Debian also unescapes \\ in the command part, cronie does not.
            (r"echo a\\b", Daemon::DebianCron, r"echo a\b", None),
            (r"echo a\\b", Daemon::Cronie, r"echo a\\b", None),
            (r"echo a\nb", Daemon::DebianCron, r"echo a\nb", None),
            // In stdin, \% stays a %, other escapes are kept.
            (
                r"cat%50\% done\n%x",
                Daemon::Cronie,
                "cat",
                Some("50% done\\n\nx\n"),
            ),
            ("cmd%", Daemon::DebianCron, "cmd", None),
            ("echo 100%", Daemon::BusyboxCrond, "echo 100%", None),
        ];
        for (raw, daemon, cmd, stdin) in table {
            let (c, s) = split_command(raw, *daemon);
            assert_eq!(
                (c.as_str(), s.as_deref()),
                (*cmd, *stdin),
                "{raw:?} {daemon:?}"
            );
        }
    }

    #[test]
    fn field_explanations_name_the_bad_part() {
        let e = explain_field("1-60", "minute", 0, 59, &[], Daemon::DebianCron);
        assert!(e.contains("60 is out of range"), "{e}");
        let e = explain_field("5/10", "minute", 0, 59, &[], Daemon::Cronie);
        assert!(e.contains("only after * or a range"), "{e}");
        let e = explain_field("*/0", "hour", 0, 23, &[], Daemon::DebianCron);
        assert!(e.contains("at least 1"), "{e}");
        let e = explain_field("foo", "month", 1, 12, &["jan", "feb"], Daemon::DebianCron);
        assert!(e.contains("not a number or a name"), "{e}");
    }
}
