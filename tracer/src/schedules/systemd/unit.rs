//! Unit files as systemd reads them: `[Section]`s of `Key=Value` lines, `#`/`;`
//! comments, a trailing backslash continuing a line, drop-ins (`NAME.d/*.conf`) applied
//! after the unit in file-name order, and an empty assignment resetting a list. Only
//! what a timer job needs is pulled out: the timer's triggers and the service's exec
//! lines, directory, user and environment.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One assignment, where it came from (for messages: `file:line`).
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub section: String,
    pub key: String,
    pub value: String,
    pub file: String,
    pub line: u32,
}

/// Every assignment of a unit and its drop-ins, in the order systemd applies them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UnitFile {
    pub name: String,
    /// The unit file, then its drop-ins.
    pub files: Vec<String>,
    pub settings: Vec<Setting>,
    /// Lines systemd would warn about and ignore (`file:line: why`).
    pub problems: Vec<String>,
}

impl UnitFile {
    /// Parse `text` (read from `file`) and append its assignments.
    pub fn add(&mut self, file: &str, text: &str) {
        self.files.push(file.to_string());
        let mut section = String::new();
        let mut pending: Option<(u32, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i as u32 + 1;
            let (start, mut line) = match pending.take() {
                Some((start, mut acc)) => {
                    // A comment inside a continued line is skipped, as systemd does.
                    let t = raw.trim_start();
                    if t.starts_with('#') || t.starts_with(';') {
                        pending = Some((start, acc));
                        continue;
                    }
                    acc.push(' ');
                    acc.push_str(raw.trim());
                    (start, acc)
                }
                None => (n, raw.trim().to_string()),
            };
            if let Some(stripped) = line.strip_suffix('\\') {
                line = stripped.trim_end().to_string();
                pending = Some((start, line));
                continue;
            }
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    Some(s) => section = s.to_string(),
                    None => self
                        .problems
                        .push(format!("{file}:{start}: a section header without `]`")),
                }
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                self.problems
                    .push(format!("{file}:{start}: not `Key=Value`: {line}"));
                continue;
            };
            if section.is_empty() {
                self.problems
                    .push(format!("{file}:{start}: an assignment outside any section"));
                continue;
            }
            self.settings.push(Setting {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                file: file.to_string(),
                line: start,
            });
        }
        if let Some((start, line)) = pending {
            // A continuation at the end of the file ends the line there.
            if let Some((k, v)) = line.split_once('=') {
                if !section.is_empty() {
                    self.settings.push(Setting {
                        section,
                        key: k.trim().to_string(),
                        value: v.trim().to_string(),
                        file: file.to_string(),
                        line: start,
                    });
                }
            }
        }
    }

    /// The last assignment of a single-valued setting (later files override).
    pub fn last(&self, section: &str, key: &str) -> Option<&Setting> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.section == section && s.key == key)
    }

    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.last(section, key).map(|s| s.value.as_str())
    }

    /// Every assignment of a list setting since the last empty one (which resets it).
    pub fn list(&self, section: &str, key: &str) -> Vec<&Setting> {
        let mut out = Vec::new();
        for s in self
            .settings
            .iter()
            .filter(|s| s.section == section && s.key == key)
        {
            if s.value.is_empty() {
                out.clear();
            } else {
                out.push(s);
            }
        }
        out
    }

    pub fn bool(&self, section: &str, key: &str) -> Option<bool> {
        self.value(section, key).and_then(parse_bool)
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A time span as systemd.time(7) writes it: `90`, `5min 30s`, `1h`, `2.5s`,
/// `infinity`. A bare number is seconds. `None` when not understood.
pub fn parse_timespan(v: &str) -> Option<Duration> {
    let v = v.trim();
    if v == "infinity" {
        return Some(Duration::MAX);
    }
    if v.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = v;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "us" | "usec" | "µs" => 1e-6,
            "ms" | "msec" => 1e-3,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "w" | "week" | "weeks" => 7.0 * 86_400.0,
            "M" | "month" | "months" => 30.44 * 86_400.0,
            "y" | "year" | "years" => 365.25 * 86_400.0,
            _ => return None,
        };
        total += n * secs;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Split a command line or an `Environment=` value into words the way systemd does:
/// whitespace separates, double and single quotes group, a backslash escapes.
pub fn split_words(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(match n {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// One `ExecStart=`-style line: its prefixes (`-` failure ignored, `@` argv0 given,
/// `+`/`!` privileges, `:` no variable expansion) and its argv.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecLine {
    pub path: String,
    pub argv: Vec<String>,
    /// `-`: a failure of this command does not fail the unit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_failure: bool,
    /// The line as written, for messages (`ExecStart=...`).
    pub text: String,
    pub file: String,
    pub line: u32,
}

impl ExecLine {
    fn parse(s: &Setting) -> Option<ExecLine> {
        let mut words = split_words(&s.value);
        if words.is_empty() {
            return None;
        }
        let first = words[0].clone();
        let prefix_len = first
            .find(|c: char| !matches!(c, '-' | '@' | '+' | '!' | ':' | '|'))
            .unwrap_or(first.len());
        let (prefix, path) = first.split_at(prefix_len);
        let path = path.to_string();
        if prefix.contains('@') && words.len() >= 2 {
            // `@/bin/x name args`: the second word is argv[0].
            words.remove(0);
        } else {
            words[0] = path.clone();
        }
        Some(ExecLine {
            path,
            argv: words,
            ignore_failure: prefix.contains('-'),
            text: format!("{}={}", s.key, s.value),
            file: s.file.clone(),
            line: s.line,
        })
    }
}

/// What a `.service` says about how its processes start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub files: Vec<String>,
    pub exec_start_pre: Vec<ExecLine>,
    pub exec_start: Vec<ExecLine>,
    pub exec_start_post: Vec<ExecLine>,
    /// As written; a leading `-` means a missing directory is not an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `NAME=value` in the order systemd sets them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment_files: Vec<String>,
    /// `TimeoutStartSec=` (or `TimeoutSec=`), seconds; `None`: the manager's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_start_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// Lines systemd ignores (`file:line: why`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Service {
    pub fn from_unit(u: &UnitFile) -> Service {
        let execs = |key| {
            u.list("Service", key)
                .into_iter()
                .filter_map(ExecLine::parse)
                .collect()
        };
        let timeout = u
            .value("Service", "TimeoutStartSec")
            .or_else(|| u.value("Service", "TimeoutSec"))
            .and_then(parse_timespan)
            .map(|d| d.as_secs_f64());
        Service {
            name: u.name.clone(),
            files: u.files.clone(),
            exec_start_pre: execs("ExecStartPre"),
            exec_start: execs("ExecStart"),
            exec_start_post: execs("ExecStartPost"),
            working_directory: u
                .value("Service", "WorkingDirectory")
                .filter(|v| !v.is_empty())
                .map(String::from),
            user: u
                .value("Service", "User")
                .filter(|v| !v.is_empty())
                .map(String::from),
            group: u
                .value("Service", "Group")
                .filter(|v| !v.is_empty())
                .map(String::from),
            environment: u
                .list("Service", "Environment")
                .into_iter()
                .flat_map(|s| split_words(&s.value))
                .collect(),
            environment_files: u
                .list("Service", "EnvironmentFile")
                .into_iter()
                .map(|s| s.value.clone())
                .collect(),
            timeout_start_secs: timeout,
            service_type: u.value("Service", "Type").map(String::from),
            problems: u.problems.clone(),
        }
    }

    /// The `WorkingDirectory=` systemd must enter (not the optional `-` form).
    pub fn required_dir(&self) -> Option<&str> {
        self.working_directory
            .as_deref()
            .filter(|d| !d.starts_with('-'))
    }
}

/// One trigger of a timer as written (`OnCalendar=daily`, `OnBootSec=5min`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub key: String,
    pub value: String,
    pub file: String,
    pub line: u32,
}

/// What a `.timer` says: what it starts and when.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub name: String,
    pub files: Vec<String>,
    /// `Unit=`, else the timer's own name with `.service`.
    pub unit: String,
    /// `OnCalendar=` lines.
    pub calendar: Vec<Trigger>,
    /// `OnActiveSec=`, `OnBootSec=`, `OnStartupSec=`, `OnUnitActiveSec=`,
    /// `OnUnitInactiveSec=`: relative to states only the manager knows.
    pub monotonic: Vec<Trigger>,
    pub persistent: bool,
    /// `AccuracySec=` (default one minute): the timer may fire this much late.
    pub accuracy_secs: f64,
    /// `RandomizedDelaySec=`: and this much more.
    pub randomized_delay_secs: f64,
    pub problems: Vec<String>,
}

const MONOTONIC_KEYS: [&str; 5] = [
    "OnActiveSec",
    "OnBootSec",
    "OnStartupSec",
    "OnUnitActiveSec",
    "OnUnitInactiveSec",
];

impl Timer {
    pub fn from_unit(u: &UnitFile) -> Timer {
        let trig = |s: &Setting| Trigger {
            key: s.key.clone(),
            value: s.value.clone(),
            file: s.file.clone(),
            line: s.line,
        };
        let own = u.name.strip_suffix(".timer").unwrap_or(&u.name);
        let span = |key, default: f64| {
            u.value("Timer", key)
                .and_then(parse_timespan)
                .map(|d| d.as_secs_f64())
                .unwrap_or(default)
        };
        Timer {
            name: u.name.clone(),
            files: u.files.clone(),
            unit: u
                .value("Timer", "Unit")
                .filter(|v| !v.is_empty())
                .map(String::from)
                .unwrap_or_else(|| format!("{own}.service")),
            calendar: u
                .list("Timer", "OnCalendar")
                .into_iter()
                .map(trig)
                .collect(),
            monotonic: MONOTONIC_KEYS
                .iter()
                .flat_map(|k| u.list("Timer", k))
                .map(trig)
                .collect(),
            persistent: u.bool("Timer", "Persistent").unwrap_or(false),
            accuracy_secs: span("AccuracySec", 60.0),
            randomized_delay_secs: span("RandomizedDelaySec", 0.0),
            problems: u.problems.clone(),
        }
    }

    /// `OnCalendar=*:0/15, OnBootSec=5min` for messages.
    pub fn schedule_text(&self) -> String {
        self.calendar
            .iter()
            .chain(&self.monotonic)
            .map(|t| format!("{}={}", t.key, t.value))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, parts: &[(&str, &str)]) -> UnitFile {
        let mut u = UnitFile {
            name: name.into(),
            ..Default::default()
        };
        for (f, t) in parts {
            u.add(f, t);
        }
        u
    }

    #[test]
    fn drop_ins_override_and_an_empty_assignment_resets_a_list() {
        let u = unit(
            "x.service",
            &[
                (
                    "/lib/systemd/system/x.service",
                    "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/a\nUser=alice\nEnvironment=A=1 \"B=two words\"\n",
                ),
                (
                    "/etc/systemd/system/x.service.d/o.conf",
                    "[Service]\nExecStart=\nExecStart=-/usr/bin/b --x \\\n  --y\nUser=bob\n",
                ),
            ],
        );
        let s = Service::from_unit(&u);
        assert_eq!(s.exec_start.len(), 1);
        let e = &s.exec_start[0];
        assert_eq!(e.path, "/usr/bin/b");
        assert_eq!(e.argv, vec!["/usr/bin/b", "--x", "--y"]);
        assert!(e.ignore_failure);
        assert_eq!(
            (e.file.as_str(), e.line),
            ("/etc/systemd/system/x.service.d/o.conf", 3)
        );
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.environment, vec!["A=1", "B=two words"]);
    }

    #[test]
    fn a_timer_names_its_service_and_triggers() {
        let u = unit(
            "backup.timer",
            &[(
                "/etc/systemd/system/backup.timer",
                "# c\n[Timer]\nOnCalendar=daily\nOnCalendar=Mon *-*-* 03:00\nOnBootSec=5min\nPersistent=yes\nAccuracySec=1s\n; c\n",
            )],
        );
        let t = Timer::from_unit(&u);
        assert_eq!(t.unit, "backup.service");
        assert_eq!(t.calendar.len(), 2);
        assert_eq!(t.calendar[1].value, "Mon *-*-* 03:00");
        assert_eq!(t.calendar[1].line, 4);
        assert_eq!(t.monotonic[0].key, "OnBootSec");
        assert!(t.persistent);
        assert_eq!(t.accuracy_secs, 1.0);
        assert_eq!(
            t.schedule_text(),
            "OnCalendar=daily, OnCalendar=Mon *-*-* 03:00, OnBootSec=5min"
        );
        let u = unit(
            "a.timer",
            &[("f", "[Timer]\nUnit=other.service\nOnCalendar=hourly\n")],
        );
        let t = Timer::from_unit(&u);
        assert_eq!((t.unit.as_str(), t.accuracy_secs), ("other.service", 60.0));
    }

    #[test]
    fn bad_lines_are_named_not_skipped_silently() {
        let u = unit(
            "b.timer",
            &[("f", "Orphan=1\n[Timer\n[Timer]\nno equals\n")],
        );
        assert_eq!(u.problems.len(), 3, "{:?}", u.problems);
        assert!(u.problems[0].starts_with("f:1:"));
        assert!(u.problems[2].contains("no equals"));
    }

    #[test]
    fn timespans_and_words_read_as_systemd_reads_them() {
        assert_eq!(parse_timespan("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_timespan("5min 30s"), Some(Duration::from_secs(330)));
        assert_eq!(parse_timespan("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timespan("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_timespan("infinity"), Some(Duration::MAX));
        assert_eq!(parse_timespan("soon"), None);
        assert_eq!(
            split_words(r#"/bin/sh -c 'echo "hi there"' x\ y"#),
            vec!["/bin/sh", "-c", "echo \"hi there\"", "x y"]
        );
        let s = Setting {
            section: "Service".into(),
            key: "ExecStart".into(),
            value: "@/bin/busybox sleep 5".into(),
            file: "f".into(),
            line: 1,
        };
        let e = ExecLine::parse(&s).unwrap();
        assert_eq!(
            (e.path.as_str(), e.argv.clone()),
            ("/bin/busybox", vec!["sleep".to_string(), "5".into()])
        );
    }
}
