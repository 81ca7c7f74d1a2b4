//! Debian cron's and cronie's crontab reader: a transliteration of Vixie cron's
//! user.c `load_user`, env.c `load_env`, entry.c `load_entry`/`get_list`/`get_range`/
//! `get_number` and misc.c `skip_comments`/`get_string`, with each daemon's changes.
//! It walks the bytes as the C code walks its `FILE *` (same look-ahead, same limits),
//! because the quirks are the point: a CR before the newline, an unquoted empty
//! `MAILTO=`, a 999-byte command.
//!
//! Differences, Debian 3.0pl1-162 vs cronie 1.7:
//! * Debian ignores the whole file at the first error, a missing final newline or
//!   past 10000 lines; cronie skips only the bad line (and the unterminated last one),
//!   and refuses a user file with more than 10000 entries, 1000 env lines or 32 KiB of
//!   comments between entries.
//! * Debian rejects `NAME=` (empty value unquoted; it then fails as a job line), strips
//!   trailing blanks and one more pair of matching quotes from values, limits a line
//!   to 998 bytes and a command to 998; cronie's buffers are 128 KiB.
//! * Fields: Debian skips trailing junk after a number (`5;x`), cronie requires a
//!   separator; cronie adds `A~B` (random) and maps `N-0` to `N-7`; both reject `A/N`.
//! * A system-crontab line naming an unknown user is a syntax error in Debian (the
//!   file is dropped); cronie keeps it and refuses to run it (job.c `job_add`).
//! * cronie accepts `-` (no syslog line, root only) before the time fields and `-n `
//!   before the command; `@reboot` etc. must be followed by a command.
use super::{explain_field, Context, Issue, Item, Parsed, ParsedEntry};
use crate::schedules::crontab::schedule::{DayRule, Schedule};
use crate::schedules::crontab::Effect;
use crate::schedules::Daemon;

const EOF: i32 = -1;

/// Debian cron.h: MAX_ENVSTR = MAX_COMMAND = MAX_TEMPSTR = 1000, MAX_TAB_LINES = 10000,
/// NHEADER_LINES = 3.
const DEBIAN_MAX_STR: usize = 1000;
const DEBIAN_LINE_LIMIT: u32 = 10_000 + 3 + 2;
/// cronie macros.h.
const CRONIE_MAX_STR: usize = 131_072;
const CRONIE_MAX_USER_ENVS: usize = 1000;
const CRONIE_MAX_USER_ENTRIES: usize = 10_000;
const CRONIE_MAX_GARBAGE: usize = 32_768;

const MONTH_NAMES: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DOW_NAMES: &[&str] = &["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The file as a C `FILE *` with one byte of push-back and cron's line counter.
struct Stream<'a> {
    b: &'a [u8],
    pos: usize,
    line: u32,
}

impl Stream<'_> {
    fn get(&mut self) -> i32 {
        match self.b.get(self.pos) {
            Some(&c) => {
                self.pos += 1;
                if c == b'\n' {
                    self.line += 1;
                }
                i32::from(c)
            }
            None => EOF,
        }
    }

    fn unget(&mut self, ch: i32) {
        if ch == EOF || self.pos == 0 {
            return;
        }
        self.pos -= 1;
        if ch == i32::from(b'\n') {
            self.line = self.line.saturating_sub(1);
        }
    }

    /// misc.c `get_string`: reads up to a terminator (consumed) or EOF, keeping at most
    /// `size - 1` bytes and discarding the rest. Returns the terminator or EOF.
    fn get_string(&mut self, size: usize, terms: &[u8]) -> (Vec<u8>, i32) {
        let mut out = Vec::new();
        loop {
            let ch = self.get();
            if ch == EOF || terms.contains(&(ch as u8)) {
                return (out, ch);
            }
            if out.len() + 1 < size {
                out.push(ch as u8);
            }
        }
    }

    /// misc.c `skip_comments`: blank lines, comment lines, and the leading blanks of
    /// the next line. Returns how many bytes it read (cronie limits that).
    fn skip_comments(&mut self) -> usize {
        let start = self.pos;
        loop {
            let mut ch = self.get();
            if ch == EOF {
                break;
            }
            while is(ch, b' ') || is(ch, b'\t') {
                ch = self.get();
            }
            if ch == EOF {
                break;
            }
            if !is(ch, b'\n') && !is(ch, b'#') {
                self.unget(ch);
                break;
            }
            while !is(ch, b'\n') && ch != EOF {
                ch = self.get();
            }
        }
        self.pos - start
    }

    fn skip_blanks(&mut self, mut ch: i32) -> i32 {
        while is(ch, b' ') || is(ch, b'\t') {
            ch = self.get();
        }
        ch
    }

    fn skip_nonblanks(&mut self, mut ch: i32) -> i32 {
        while !is(ch, b' ') && !is(ch, b'\t') && !is(ch, b'\n') && ch != EOF {
            ch = self.get();
        }
        ch
    }

    /// Moves to the start of the line after `line` (1-based), for reading on after an
    /// error the way both daemons' error paths end up (they skip to the newline).
    fn resume_after_line(&mut self, start_pos: usize, line: u32) {
        let rest = self.b.get(start_pos..).unwrap_or_default();
        self.pos = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => start_pos + i + 1,
            None => self.b.len(),
        };
        self.line = line + 1;
    }
}

fn is(ch: i32, c: u8) -> bool {
    ch == i32::from(c)
}

fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn c_isalnum(ch: i32) -> bool {
    (0..=127).contains(&ch) && (ch as u8).is_ascii_alphanumeric()
}

pub(super) fn parse(text: &str, cx: &Context) -> Parsed {
    let debian = cx.daemon == Daemon::DebianCron;
    let mut reader = Reader {
        s: Stream {
            b: text.as_bytes(),
            pos: 0,
            line: 1,
        },
        cx,
        debian,
        out: Parsed::default(),
    };
    reader.load_user();
    reader.out
}

struct Reader<'a, 'c> {
    s: Stream<'a>,
    cx: &'c Context<'c>,
    debian: bool,
    out: Parsed,
}

/// entry.c's `ecode_e`, plus our reason in words.
struct EntryError {
    code: &'static str,
    why: String,
}

enum EnvLine {
    Env(String, String),
    NotEnv,
    /// Debian: a setting too long for its buffer; load_env returns FALSE without
    /// rewinding, so the line is silently dropped.
    TooLong(String),
}

impl Reader<'_, '_> {
    fn max_str(&self) -> usize {
        if self.debian {
            DEBIAN_MAX_STR
        } else {
            CRONIE_MAX_STR
        }
    }

    fn issue(&mut self, line: Option<u32>, rule: &'static str, detail: String, effect: Effect) {
        let issue = Issue {
            line,
            rule,
            detail,
            effect,
        };
        if effect == Effect::SkipsFile && self.out.file_ignored.is_none() {
            self.out.file_ignored = Some(issue.clone());
        }
        self.out.issues.push(issue);
    }

    /// The failure effect of a bad line: Debian drops the file, cronie the line.
    fn line_effect(&self) -> Effect {
        if self.debian {
            Effect::SkipsFile
        } else {
            Effect::SkipsLine
        }
    }

    /// user.c `load_user`. Unlike the daemon it reads on after a fatal error, so the
    /// report lists every problem and every entry of the file.
    fn load_user(&mut self) {
        let (mut envs, mut entries) = (0usize, 0usize);
        let system = self.cx.system;
        loop {
            if self.debian && self.s.line >= DEBIAN_LINE_LIMIT {
                let detail = "the file is longer than 10000 lines".to_string();
                self.issue(
                    Some(self.s.line),
                    "too_many_lines",
                    detail,
                    Effect::SkipsFile,
                );
                return;
            }
            if self.debian {
                // Debian's load_env skips comments itself, before noting its position.
                self.s.skip_comments();
            } else if self.s.skip_comments() > CRONIE_MAX_GARBAGE && !system {
                let detail =
                    "more than 32768 bytes of comments and blank lines in a row".to_string();
                self.issue(
                    Some(self.s.line),
                    "too_many_lines",
                    detail,
                    Effect::SkipsFile,
                );
                return;
            }
            let (pos, line) = (self.s.pos, self.s.line);
            let (envstr, ch) = self
                .s
                .get_string(self.max_str() - usize::from(self.debian), b"\n");
            if ch == EOF {
                if !envstr.is_empty() {
                    self.missing_newline(line);
                }
                return;
            }
            // Debian's buffer holds 998 bytes; the rest of a longer line is dropped.
            let cut = self.debian && envstr.len() == DEBIAN_MAX_STR - 2;
            match self.env_line(&envstr) {
                EnvLine::Env(name, value) => {
                    if cut {
                        let detail = format!("the line setting {name} is longer than 998 bytes: Debian cron keeps only the first {} bytes of the value", value.len());
                        self.issue(Some(line), "env_line_too_long", detail, Effect::Advisory);
                    }
                    envs += 1;
                    if !self.debian && !system && envs > CRONIE_MAX_USER_ENVS {
                        let detail = "more than 1000 environment settings".to_string();
                        self.issue(Some(line), "too_many_lines", detail, Effect::SkipsFile);
                        return;
                    }
                    if name == "CRON_TZ" && self.debian {
                        let detail = format!("CRON_TZ={value} is passed to the job as a plain variable; the schedule still runs in the daemon's time zone");
                        self.issue(Some(line), "cron_tz_unsupported", detail, Effect::Advisory);
                    }
                    self.out.items.push(Item::Env { line, name, value });
                    continue;
                }
                EnvLine::TooLong(name) => {
                    let detail =
                        format!("the setting of {name} is longer than 998 bytes and is dropped");
                    self.issue(Some(line), "env_line_too_long", detail, Effect::SkipsLine);
                    // No rewind: load_entry reads the next line.
                }
                EnvLine::NotEnv => {
                    self.s.pos = pos;
                    self.s.line = line;
                }
            }
            entries += 1;
            if !self.debian && !system && entries > CRONIE_MAX_USER_ENTRIES {
                let detail = "more than 10000 entries".to_string();
                self.issue(Some(line), "too_many_lines", detail, Effect::SkipsFile);
                return;
            }
            self.entry(&envstr);
        }
    }

    fn missing_newline(&mut self, line: u32) {
        let effect = if self.debian {
            Effect::SkipsFile
        } else {
            Effect::SkipsLine
        };
        let detail = if self.debian {
            format!("line {line}, the last one, has no newline at its end, so the whole file is ignored")
        } else {
            format!("line {line}, the last one, has no newline at its end and is ignored")
        };
        self.issue(Some(line), "missing_final_newline", detail, effect);
        // Read the unterminated line as if it ended properly, to list what it holds.
        let start = self.s.b[..self.s.pos.min(self.s.b.len())]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1);
        let mut tail = self.s.b[start..].to_vec();
        tail.push(b'\n');
        let mut sub = Reader {
            s: Stream {
                b: &tail,
                pos: 0,
                line,
            },
            cx: self.cx,
            debian: self.debian,
            out: Parsed::default(),
        };
        sub.load_user();
        self.out.items.extend(sub.out.items);
        // Problems of the line itself are worth reporting too.
        self.out.issues.extend(sub.out.issues);
    }

    /// A job line, with the error handling of load_user: Debian drops the file at the
    /// first error, cronie the line.
    fn entry(&mut self, envstr: &[u8]) {
        if !self.debian {
            // cronie's load_entry starts at the line itself: load_user skipped comments.
        } else {
            self.s.skip_comments();
        }
        let (start_pos, start_line) = (self.s.pos, self.s.line);
        match self.load_entry() {
            Ok(Some(entry)) => {
                if entry.raw_command.ends_with('\r') {
                    let detail = "the line ends in a carriage return (CRLF line ends); it becomes part of the command".to_string();
                    self.issue(Some(entry.line), "crlf_line_end", detail, Effect::Advisory);
                }
                self.out.items.push(Item::Entry(entry));
            }
            Ok(None) => {
                // EOF where a line was expected: Debian's load_user treats NULL as a
                // syntax error; cronie just stops.
                if self.debian {
                    let detail = "the file ends where a job line was expected".to_string();
                    self.issue(Some(start_line), "syntax_error", detail, Effect::SkipsFile);
                }
            }
            Err(err) => {
                let effect = self.line_effect();
                let rule = if self.debian && is_unquoted_empty_env(envstr) {
                    "empty_env_unquoted"
                } else {
                    err.code
                };
                let crlf = if envstr.contains(&b'\r') {
                    " (the file has CRLF line ends: a carriage return is not a blank to cron)"
                } else {
                    ""
                };
                let detail = if rule == "empty_env_unquoted" {
                    let name = String::from_utf8_lossy(envstr)
                        .trim_end_matches([' ', '\t', '='])
                        .trim()
                        .to_string();
                    format!("`{name}=` with nothing after it is not a setting for Debian cron (it wants {name}=\"\"); it is read as a job line and fails: {}", err.why)
                } else {
                    format!("{}{crlf}", err.why)
                };
                self.issue(Some(start_line), rule, detail, effect);
                self.s.resume_after_line(start_pos, start_line);
            }
        }
    }

    /// env.c `load_env`'s parser over one line (without its newline).
    fn env_line(&self, envstr: &[u8]) -> EnvLine {
        #[derive(Clone, Copy, PartialEq)]
        enum St {
            NameI,
            Name,
            Eq1,
            Eq2,
            ValueI,
            Value,
            Fini,
            Error,
        }
        let (mut name, mut val) = (Vec::new(), Vec::new());
        let mut state = St::NameI;
        let mut quote: Option<u8> = None;
        let mut i = 0;
        while state != St::Error && i < envstr.len() {
            match state {
                St::NameI | St::ValueI | St::Name | St::Value => {
                    if matches!(state, St::NameI | St::ValueI) {
                        if envstr[i] == b'\'' || envstr[i] == b'"' {
                            quote = Some(envstr[i]);
                            i += 1;
                        }
                        state = if state == St::NameI {
                            St::Name
                        } else {
                            St::Value
                        };
                        // C reads on past the end here; stop instead.
                        if i >= envstr.len() {
                            break;
                        }
                    }
                    let c = envstr[i];
                    if let Some(q) = quote {
                        if c == q {
                            state = if state == St::Name { St::Eq1 } else { St::Fini };
                            i += 1;
                            continue;
                        }
                        if state == St::Name && c == b'=' {
                            state = St::Error;
                            continue;
                        }
                    } else if state == St::Name {
                        if c_isspace(c) {
                            i += 1;
                            state = St::Eq1;
                            continue;
                        }
                        if c == b'=' {
                            state = St::Eq1;
                            continue;
                        }
                    }
                    if state == St::Name {
                        &mut name
                    } else {
                        &mut val
                    }
                    .push(c);
                    i += 1;
                }
                St::Eq1 => {
                    if envstr[i] == b'=' {
                        state = St::Eq2;
                        quote = None;
                    } else if !c_isspace(envstr[i]) {
                        state = St::Error;
                    }
                    i += 1;
                }
                St::Eq2 | St::Fini => {
                    if c_isspace(envstr[i]) {
                        i += 1;
                    } else {
                        state = if state == St::Eq2 {
                            St::ValueI
                        } else {
                            St::Error
                        };
                    }
                }
                St::Error => break,
            }
        }
        let unquoted_value = state == St::Value && quote.is_none();
        let accepted = state == St::Fini || unquoted_value || (!self.debian && state == St::Eq2);
        if !accepted {
            return EnvLine::NotEnv;
        }
        if unquoted_value || self.debian {
            // Trailing blanks go (Debian's strdtb even inside quotes).
            while val.last().is_some_and(|&c| c_isspace(c)) {
                val.pop();
            }
        }
        if self.debian
            && val.len() >= 2
            && (val[0] == b'\'' || val[0] == b'"')
            && val[val.len() - 1] == val[0]
        {
            val.pop();
            val.remove(0);
        }
        let name = String::from_utf8_lossy(&name).into_owned();
        if self.debian && name.len() + 1 + val.len() >= DEBIAN_MAX_STR - 1 {
            return EnvLine::TooLong(name);
        }
        EnvLine::Env(name, String::from_utf8_lossy(&val).into_owned())
    }

    /// entry.c `load_entry`. `Ok(None)` is its NULL without an error message (EOF).
    fn load_entry(&mut self) -> Result<Option<ParsedEntry>, EntryError> {
        let line = self.s.line;
        let mut random = None;
        let mut ch = self.s.get();
        if ch == EOF {
            return Ok(None);
        }
        let spec;
        let schedule_text;
        if !self.debian && is(ch, b'-') {
            // cronie: "-" before the time fields turns off the syslog line; root only.
            let root = self.cx.system || self.cx.spool_user == Some("root");
            if !root {
                return Err(EntryError {
                    code: "syntax_error",
                    why: "a leading '-' (do not log this job) is allowed only in root's and system crontabs".into(),
                });
            }
            ch = self.s.get();
            if ch == EOF {
                return Ok(None);
            }
        }
        if is(ch, b'@') {
            let (name, term) = self.s.get_string(self.max_str(), b" \t\n");
            ch = term;
            let name = String::from_utf8_lossy(&name).into_owned();
            schedule_text = format!("@{name}");
            spec = macro_schedule(&name).ok_or_else(|| EntryError {
                code: "syntax_error",
                why: format!("unknown time specifier @{name} (known: @reboot @yearly @annually @monthly @weekly @daily @midnight @hourly, lower case)"),
            })?;
            if !self.debian {
                ch = self.s.skip_blanks(ch);
                if ch == EOF || is(ch, b'\n') {
                    return Err(EntryError {
                        code: "syntax_error",
                        why: format!("@{name} is not followed by a command"),
                    });
                }
            }
        } else {
            let mut texts = Vec::new();
            let fields: [(&str, i32, i32, Option<&[&str]>); 5] = [
                ("minute", 0, 59, None),
                ("hour", 0, 23, None),
                ("day-of-month", 1, 31, None),
                ("month", 1, 12, Some(MONTH_NAMES)),
                ("day-of-week", 0, 7, Some(DOW_NAMES)),
            ];
            let mut bits = [0u64; 5];
            let mut stars = [false; 5];
            for (i, (what, low, high, names)) in fields.iter().enumerate() {
                let start = self.s.pos.saturating_sub(1);
                stars[i] = is(ch, b'*');
                ch = if self.debian {
                    self.get_list_debian(&mut bits[i], *low, *high, *names, ch)
                } else {
                    self.get_list_cronie(&mut bits[i], *low, *high, *names, ch)
                };
                let text = field_text(self.s.b, start);
                if ch == EOF {
                    let lower: Vec<String> = names
                        .unwrap_or_default()
                        .iter()
                        .map(|n| n.to_ascii_lowercase())
                        .collect();
                    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
                    return Err(EntryError {
                        code: "syntax_error",
                        why: format!(
                            "bad {what}: {}",
                            explain_field(
                                &text,
                                what,
                                *low as u32,
                                *high as u32,
                                &lower,
                                self.cx.daemon
                            )
                        ),
                    });
                }
                if !self.debian && text.contains('~') {
                    random = Some(text.clone());
                }
                texts.push(text);
            }
            schedule_text = texts.join(" ");
            let dow = bits[4];
            spec = Schedule {
                minutes: bits[0],
                hours: bits[1] as u32,
                doms: (bits[2] << 1) as u32,
                months: (bits[3] << 1) as u16,
                // "make sundays equivalent": bit 7 folds into bit 0.
                dows: ((dow & 0x7f) | (dow >> 7)) as u8,
                day_rule: if stars[2] || stars[4] {
                    DayRule::Both
                } else {
                    DayRule::Either
                },
                wildcard: stars[0] || stars[1],
                reboot: false,
            };
        }
        if self.debian {
            ch = self.s.skip_blanks(ch);
        } else if is(ch, b'\n') || is(ch, b'*') {
            return Err(EntryError {
                code: "syntax_error",
                why: if is(ch, b'*') {
                    "a sixth time field where the command should start (a user field in a user crontab?)".into()
                } else {
                    "the line ends after the time fields: no command".into()
                },
            });
        }
        self.s.unget(ch);
        let mut user = None;
        if self.cx.system {
            let terms: &[u8] = if self.debian { b" \t" } else { b" \t\n" };
            let (name, term) = self.s.get_string(self.max_str(), terms);
            let name = String::from_utf8_lossy(&name).into_owned();
            if term == EOF || (!self.debian && (is(term, b'\n') || is(term, b'*'))) {
                return Err(EntryError {
                    code: "syntax_error",
                    why: "no user and command after the time fields".into(),
                });
            }
            if self.debian && !(self.cx.user_exists)(&name) {
                let shown = name.split('\n').next().unwrap_or_default();
                return Err(EntryError {
                    code: "unknown_user",
                    why: format!("user '{shown}' does not exist"),
                });
            }
            if !self.debian {
                let next = self.s.get();
                let next = self.s.skip_blanks(next);
                if next == EOF || is(next, b'\n') {
                    return Err(EntryError {
                        code: "syntax_error",
                        why: format!("no command after the user '{name}'"),
                    });
                }
                self.s.unget(next);
            }
            user = Some(name);
        } else if self.debian && is(ch, b'*') {
            return Err(EntryError {
                code: "syntax_error",
                why: "a sixth time field where the command should start (a user field in a user crontab?)".into(),
            });
        }
        if !self.debian {
            // cronie: "-n " options before the command.
            let mut c = self.s.get();
            let mut seen_n = false;
            while is(c, b'-') {
                c = self.s.get();
                if !is(c, b'n') || seen_n {
                    return Err(EntryError {
                        code: "syntax_error",
                        why: "unknown option before the command (only -n)".into(),
                    });
                }
                seen_n = true;
                c = self.s.get();
                if !is(c, b' ') && !is(c, b'\t') {
                    return Err(EntryError {
                        code: "syntax_error",
                        why: "option -n must be followed by a blank".into(),
                    });
                }
                c = self.s.skip_blanks(c);
                if c == EOF || is(c, b'\n') {
                    return Err(EntryError {
                        code: "syntax_error",
                        why: "no command after -n".into(),
                    });
                }
            }
            self.s.unget(c);
        }
        let (cmd, term) = self.s.get_string(self.max_str(), b"\n");
        if self.debian && cmd.len() == DEBIAN_MAX_STR - 1 {
            return Err(EntryError {
                code: "command_too_long",
                why: "the command is 999 bytes or longer (Debian cron's limit is 998)".into(),
            });
        }
        if term == EOF {
            return Err(EntryError {
                code: "syntax_error",
                why: "the line has no newline".into(),
            });
        }
        if !self.debian && cmd.len() == CRONIE_MAX_STR - 1 {
            let detail = "the command is longer than 131071 bytes; cronie runs only its beginning"
                .to_string();
            self.issue(Some(line), "command_too_long", detail, Effect::Advisory);
        }
        if let Some(field) = random {
            let detail = format!("cronie picks one value of the random field '{field}' each time it loads the file; the times shown are every candidate");
            self.issue(Some(line), "random_range", detail, Effect::Advisory);
        }
        Ok(Some(ParsedEntry {
            line,
            user,
            schedule: schedule_text,
            spec,
            raw_command: String::from_utf8_lossy(&cmd).into_owned(),
        }))
    }

    /// Debian entry.c `get_list`.
    fn get_list_debian(
        &mut self,
        bits: &mut u64,
        low: i32,
        high: i32,
        names: Option<&[&str]>,
        mut ch: i32,
    ) -> i32 {
        *bits = 0;
        loop {
            ch = self.get_range_debian(bits, low, high, names, ch);
            if is(ch, b',') {
                ch = self.s.get();
            } else {
                break;
            }
        }
        let ch = self.s.skip_nonblanks(ch);
        self.s.skip_blanks(ch)
    }

    /// Debian entry.c `get_range` (with Debian's bounds check of both ends).
    fn get_range_debian(
        &mut self,
        bits: &mut u64,
        low: i32,
        high: i32,
        names: Option<&[&str]>,
        mut ch: i32,
    ) -> i32 {
        let (num1, num2);
        if is(ch, b'*') {
            num1 = i64::from(low);
            num2 = i64::from(high);
            ch = self.s.get();
            if ch == EOF {
                return EOF;
            }
        } else {
            let Some((n, c)) = self.get_number_debian(low, names, ch) else {
                return EOF;
            };
            ch = c;
            if !is(ch, b'-') {
                // "Step specified without range" is unsupported.
                if is(ch, b'/') || !set_element(bits, low, high, n) {
                    return EOF;
                }
                return ch;
            }
            num1 = n;
            ch = self.s.get();
            if ch == EOF {
                return EOF;
            }
            let Some((n2, c)) = self.get_number_debian(low, names, ch) else {
                return EOF;
            };
            num2 = n2;
            ch = c;
        }
        let step = if is(ch, b'/') {
            ch = self.s.get();
            if ch == EOF {
                return EOF;
            }
            let Some((n3, c)) = self.get_number_debian(0, None, ch) else {
                return EOF;
            };
            ch = c;
            if n3 <= 0 {
                return EOF;
            }
            n3
        } else {
            1
        };
        let range = i64::from(low)..=i64::from(high);
        if !range.contains(&num1) || !range.contains(&num2) {
            return EOF;
        }
        let mut i = num1;
        while i <= num2 {
            set_element(bits, low, high, i);
            // A step beyond the range ends the walk (and must not overflow).
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
        ch
    }

    /// Debian entry.c `get_number`: alphanumerics, then a name or all digits.
    fn get_number_debian(
        &mut self,
        low: i32,
        names: Option<&[&str]>,
        mut ch: i32,
    ) -> Option<(i64, i32)> {
        let mut temp = Vec::new();
        while c_isalnum(ch) {
            if temp.len() + 1 >= DEBIAN_MAX_STR {
                return None;
            }
            temp.push(ch as u8);
            ch = self.s.get();
        }
        let value = number_or_name(&temp, low, names)?;
        Some((value, ch))
    }

    /// cronie entry.c `get_list`.
    fn get_list_cronie(
        &mut self,
        bits: &mut u64,
        low: i32,
        high: i32,
        names: Option<&[&str]>,
        ch: i32,
    ) -> i32 {
        *bits = 0;
        self.s.unget(ch);
        let mut ch;
        loop {
            ch = self.get_range_cronie(bits, low, high, names);
            if ch == EOF {
                return EOF;
            }
            if !is(ch, b',') {
                break;
            }
        }
        let ch = self.s.skip_nonblanks(ch);
        self.s.skip_blanks(ch)
    }

    /// cronie entry.c `get_range`, its state machine. A random range `A~B` sets every
    /// value of the range (the daemon picks one at load time; we cannot know which).
    fn get_range_cronie(
        &mut self,
        bits: &mut u64,
        low: i32,
        high: i32,
        names: Option<&[&str]>,
    ) -> i32 {
        #[derive(PartialEq)]
        enum R {
            Start,
            Ast,
            Step,
            Terms,
            Num1,
            Range,
            RangeNum2,
            Random,
            Finish,
        }
        let separator = |c: i32| is(c, b'\t') || is(c, b'\n') || is(c, b' ') || is(c, b',');
        let (mut lo, mut hi, mut step) = (0i64, 0i64, 1i64);
        let mut state = R::Start;
        let mut ch = EOF;
        while state != R::Finish {
            ch = self.s.get();
            if ch == EOF {
                break;
            }
            match state {
                R::Start => {
                    if is(ch, b'*') {
                        (lo, hi) = (i64::from(low), i64::from(high));
                        state = R::Ast;
                    } else if is(ch, b'~') {
                        lo = i64::from(low);
                        state = R::Random;
                    } else {
                        self.s.unget(ch);
                        let Some(n) = self.get_number_cronie(low, names) else {
                            return EOF;
                        };
                        lo = n;
                        state = R::Num1;
                    }
                }
                R::Ast => {
                    if is(ch, b'/') {
                        state = R::Step;
                    } else if separator(ch) {
                        state = R::Finish;
                    } else {
                        return EOF;
                    }
                }
                R::Step => {
                    self.s.unget(ch);
                    match self.get_number_cronie(0, None) {
                        Some(n) if n != 0 => {
                            step = n;
                            state = R::Terms;
                        }
                        _ => return EOF,
                    }
                }
                R::Terms => {
                    if separator(ch) {
                        state = R::Finish;
                    } else {
                        return EOF;
                    }
                }
                R::Num1 => {
                    if is(ch, b'-') {
                        state = R::Range;
                    } else if is(ch, b'~') {
                        state = R::Random;
                    } else if separator(ch) {
                        hi = lo;
                        state = R::Finish;
                    } else {
                        return EOF;
                    }
                }
                R::Range => {
                    self.s.unget(ch);
                    let Some(n) = self.get_number_cronie(low, names) else {
                        return EOF;
                    };
                    hi = n;
                    state = R::RangeNum2;
                }
                R::RangeNum2 => {
                    if is(ch, b'/') {
                        state = R::Step;
                        continue;
                    }
                    if lo > hi && hi == 0 {
                        hi = 7;
                    }
                    if separator(ch) {
                        state = R::Finish;
                    } else {
                        return EOF;
                    }
                }
                R::Random => {
                    if separator(ch) {
                        hi = i64::from(high);
                        state = R::Finish;
                    } else {
                        self.s.unget(ch);
                        let Some(n) = self.get_number_cronie(low, names) else {
                            return EOF;
                        };
                        hi = n;
                        state = R::Terms;
                    }
                    if lo > hi {
                        return EOF;
                    }
                }
                R::Finish => {}
            }
        }
        if state != R::Finish || ch == EOF {
            return EOF;
        }
        if step <= 0 {
            return EOF;
        }
        let mut i = lo;
        while i <= hi {
            if !set_element(bits, low, high, i) {
                self.s.unget(ch);
                return EOF;
            }
            // A step beyond the range ends the walk (and must not overflow).
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
        ch
    }

    /// cronie entry.c `get_number`: reads its own characters and pushes back the first
    /// one that is not alphanumeric.
    fn get_number_cronie(&mut self, low: i32, names: Option<&[&str]>) -> Option<i64> {
        let mut temp = Vec::new();
        let mut ch = self.s.get();
        while c_isalnum(ch) {
            if temp.len() + 1 >= CRONIE_MAX_STR {
                self.s.unget(ch);
                return None;
            }
            temp.push(ch as u8);
            ch = self.s.get();
        }
        self.s.unget(ch);
        number_or_name(&temp, low, names)
    }
}

/// Names first (Debian) or digits first (cronie) give the same answers: a name is
/// never all digits.
fn number_or_name(temp: &[u8], low: i32, names: Option<&[&str]>) -> Option<i64> {
    if temp.is_empty() {
        return None;
    }
    if let Some(i) = names.and_then(|n| {
        n.iter()
            .position(|name| name.as_bytes().eq_ignore_ascii_case(temp))
    }) {
        return Some(i as i64 + i64::from(low));
    }
    if temp.iter().all(u8::is_ascii_digit) {
        // atoi/strtol would overflow; anything this long is out of range anyway.
        return Some(
            std::str::from_utf8(temp)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(i64::MAX),
        );
    }
    None
}

fn set_element(bits: &mut u64, low: i32, high: i32, n: i64) -> bool {
    if n < i64::from(low) || n > i64::from(high) {
        return false;
    }
    *bits |= 1 << (n - i64::from(low));
    true
}

/// The field's text from `start` to the next blank, for messages.
fn field_text(b: &[u8], start: usize) -> String {
    let rest = b.get(start..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&c| c == b' ' || c == b'\t' || c == b'\n')
        .unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end.min(200)]).into_owned()
}

/// entry.c's `@` shortcuts (exact, lower case).
fn macro_schedule(name: &str) -> Option<Schedule> {
    let every = |n: u32| -> u64 { (1u64 << n) - 1 };
    let base = Schedule {
        minutes: 1,
        hours: 1,
        doms: (every(31) << 1) as u32,
        months: (every(12) << 1) as u16,
        dows: every(7) as u8,
        day_rule: DayRule::Either,
        wildcard: false,
        reboot: false,
    };
    Some(match name {
        "reboot" => Schedule {
            reboot: true,
            ..Schedule::default()
        },
        "yearly" | "annually" => Schedule {
            doms: 1 << 1,
            months: 1 << 1,
            day_rule: DayRule::Both,
            ..base
        },
        "monthly" => Schedule {
            doms: 1 << 1,
            day_rule: DayRule::Both,
            ..base
        },
        "weekly" => Schedule {
            dows: 1,
            day_rule: DayRule::Both,
            ..base
        },
        "daily" | "midnight" => base,
        "hourly" => Schedule {
            hours: every(24) as u32,
            wildcard: true,
            ..base
        },
        _ => return None,
    })
}

/// `NAME=` (nothing after the `=`): Debian's load_env stops in state EQ2, which it
/// does not accept, so the line is read as a job and fails.
fn is_unquoted_empty_env(line: &[u8]) -> bool {
    let s = String::from_utf8_lossy(line);
    let s = s.trim_end_matches(|c: char| c.is_ascii_whitespace());
    match s.strip_suffix('=') {
        Some(name) => {
            let name = name.trim();
            !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
        }
        None => false,
    }
}
