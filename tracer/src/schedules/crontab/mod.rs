//! From crontab files and host facts to the entries a daemon will run (with their
//! schedule, command, environment and zone) and the problems it has with them.
//! `syntax` reads text the way each daemon does, `rules` holds the refusals as data,
//! `schedule`/`clock` answer "when", `environment` what the job's env will be.
#[cfg(test)]
mod analyse_tests;
pub mod clock;
pub mod environment;
pub mod rules;
#[cfg(test)]
mod rules_tests;
pub mod schedule;
pub mod syntax;

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use serde::Serialize;

use self::rules::Hit;
use self::schedule::{Fire, Schedule};
use self::syntax::{Item, Parsed};
use super::source::{CrontabSource, HostContext};
use super::Daemon;

/// The finding kinds of DESIGN.md this stage produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line the daemon cannot parse (or parses other than meant).
    CrontabSyntax,
    /// A file or line the daemon will skip, or treats other than people expect.
    CrontabIgnored,
}

/// What a problem does to the jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// No entry of the file runs.
    SkipsFile,
    /// This line (entry or setting) does not take effect.
    SkipsLine,
    /// The daemon process dies when it loads the file: no job of anyone runs.
    CrashesDaemon,
    /// The entries run, but not as the text suggests (times, command, environment), or
    /// a person will be refused when they try to change the crontab.
    Advisory,
}

/// One crontab entry as the daemon holds it.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub file: String,
    pub line: u32,
    pub user: String,
    /// As written: `*/5 * * * *` or `@daily`.
    pub schedule: String,
    /// What the shell is given: the part before the first unescaped `%`, unescaped.
    pub command: String,
    /// What the job reads on stdin (after the first `%`, `%` turned into newlines).
    pub stdin: Option<String>,
    /// The environment the daemon gives the job (see `environment.rs` for what is not
    /// known from the files: PAM's and the daemon's own inherited variables).
    pub env: BTreeMap<String, String>,
    /// The zone the schedule is evaluated in (cronie's `CRON_TZ`, else the daemon's).
    pub tz: String,
    /// False when the daemon will not run it; then `skipped_because` says why.
    pub runs: bool,
    pub skipped_because: Option<String>,
    /// The job runs fixed-time/wildcard for DST purposes (Vixie's MIN_STAR|HR_STAR).
    pub wildcard: bool,
    #[serde(skip)]
    pub spec: Schedule,
    /// The zone of an honoured `CRON_TZ` (cronie only); `None` means the daemon's zone.
    #[serde(skip)]
    pub cron_tz: Option<TimeZone>,
}

impl Entry {
    /// When the daemon (running in `daemon_tz`) starts this entry in `(from, to]`.
    pub fn fires_between(
        &self,
        daemon_tz: &TimeZone,
        from: Timestamp,
        to: Timestamp,
        daemon: Daemon,
    ) -> Vec<Fire> {
        if !self.runs {
            return Vec::new();
        }
        self.spec
            .fires_between_zones(daemon_tz, self.cron_tz.as_ref(), from, to, daemon)
    }

    /// The next `n` starts after `after`, shown in the entry's zone.
    pub fn next_fires(
        &self,
        daemon_tz: &TimeZone,
        after: Timestamp,
        n: usize,
        daemon: Daemon,
    ) -> Vec<ZonedDateTime> {
        if !self.runs {
            return Vec::new();
        }
        self.spec
            .next_fires_zones(daemon_tz, self.cron_tz.as_ref(), after, n, daemon)
    }
}

/// Something wrong with a file or line, for one daemon.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The id of the row in [`rules::RULES`].
    pub rule: &'static str,
    pub daemon: Daemon,
    pub effect: Effect,
    pub file: String,
    pub line: Option<u32>,
    pub user: Option<String>,
    /// One line: file(:line), why, and the fix.
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CrontabSet {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

/// Resolves a zone name the way the daemon's libc would: an IANA name from the tz
/// database (the system's, else the one built into the tracer), else a POSIX TZ string.
pub fn resolve_tz(name: &str) -> Option<TimeZone> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    TimeZone::get(name.strip_prefix(':').unwrap_or(name))
        .ok()
        .or_else(|| TimeZone::posix(name).ok())
}

/// The daemon's zone from the host context, UTC when it cannot be resolved.
pub fn daemon_tz(ctx: &HostContext) -> TimeZone {
    resolve_tz(&ctx.tz).unwrap_or(TimeZone::UTC)
}

/// What `daemon` makes of these files on this host.
pub fn analyse(sources: &[CrontabSource], ctx: &HostContext, daemon: Daemon) -> CrontabSet {
    let mut set = CrontabSet::default();
    for src in sources {
        analyse_file(src, ctx, daemon, &mut set);
    }
    set
}

fn analyse_file(src: &CrontabSource, ctx: &HostContext, daemon: Daemon, set: &mut CrontabSet) {
    let spool_user = src.origin.spool_user().map(str::to_string);
    let report = |set: &mut CrontabSet, hit: &Hit, line: Option<u32>, user: Option<&str>| {
        set.problems.push(problem(src, daemon, hit, line, user));
    };
    let file_hits = rules::file_checks(src, ctx, daemon);
    if !rules::read_by(&src.origin, daemon) && file_hits.is_empty() {
        // Another daemon's file (e.g. a busybox spool when analysing Debian cron).
        return;
    }
    let Some(text) = src.text.as_deref() else {
        for hit in &file_hits {
            report(set, hit, None, spool_user.as_deref());
        }
        return;
    };
    let not_read = file_hits.iter().any(|h| h.rule == "not_read_by_daemon");
    if not_read && !has_content(text) {
        return;
    }
    for hit in &file_hits {
        report(set, hit, None, spool_user.as_deref());
    }
    if src.lossy_utf8 {
        let hit = Hit {
            rule: "file_not_utf8",
            detail: "it is not valid UTF-8".into(),
            effect: Effect::Advisory,
        };
        report(set, &hit, None, spool_user.as_deref());
    }
    if src.truncated {
        let hit = Hit {
            rule: "file_truncated",
            detail: "only its first MiB was read".into(),
            effect: Effect::Advisory,
        };
        report(set, &hit, None, spool_user.as_deref());
    }
    // busybox's own files are read with busybox's reader; anything else it does not
    // read is shown as the Vixie daemons would read it, marked as not run.
    let reader = if daemon == Daemon::BusyboxCrond && src.origin.is_system() {
        Daemon::DebianCron
    } else {
        daemon
    };
    let user_exists = |name: &str| ctx.user(name).is_some();
    let cx = syntax::Context {
        daemon: reader,
        system: src.origin.is_system(),
        spool_user: spool_user.as_deref(),
        user_exists: &user_exists,
    };
    let parsed: Parsed = syntax::parse(text, &cx);
    if !not_read {
        for issue in &parsed.issues {
            let hit = Hit {
                rule: issue.rule,
                detail: issue.detail.clone(),
                effect: issue.effect,
            };
            report(set, &hit, issue.line, spool_user.as_deref());
        }
    }
    let file_skip = file_hits
        .iter()
        .find(|h| h.effect == Effect::SkipsFile)
        .map(|h| format!("{} ({})", h.detail, h.rule))
        .or_else(|| {
            parsed
                .file_ignored
                .as_ref()
                .map(|i| format!("the whole file is ignored: {} ({})", i.detail, i.rule))
        });
    let zone_of_daemon = ctx.tz.clone();
    let mut env_lines: Vec<(String, String)> = Vec::new();
    for item in &parsed.items {
        let entry = match item {
            Item::Env { name, value, .. } => {
                env_lines.push((name.clone(), value.clone()));
                continue;
            }
            Item::Entry(entry) => entry,
        };
        let user = entry
            .user
            .clone()
            .or_else(|| spool_user.clone())
            .unwrap_or_else(|| "root".into());
        let info = ctx.user(&user);
        let (command, stdin) = syntax::split_command(&entry.raw_command, daemon);
        let env = environment::job_env(daemon, &env_lines, &user, info);
        let mut skipped = file_skip.clone();
        let line_issue = parsed
            .issues
            .iter()
            .find(|i| i.line == Some(entry.line) && i.effect == Effect::SkipsLine);
        if skipped.is_none() {
            skipped = line_issue.map(|i| format!("{} ({})", i.detail, i.rule));
        }
        // cronie keeps a system line of an unknown user and refuses it at each start.
        if skipped.is_none() && daemon == Daemon::Cronie && entry.user.is_some() && info.is_none() {
            let hit = Hit {
                rule: "unknown_user",
                detail: format!("user '{user}' does not exist, so cronie will not start this job"),
                effect: Effect::SkipsLine,
            };
            report(set, &hit, Some(entry.line), Some(&user));
            skipped = Some(format!("{} ({})", hit.detail, hit.rule));
        }
        let (tz, cron_tz) = entry_zone(daemon, &env_lines, &zone_of_daemon, src, entry.line, set);
        if skipped.is_none() && !entry.spec.is_reboot() && !can_fire(&entry.spec) {
            let hit = Hit {
                rule: "never_fires",
                detail: format!("'{}' matches no date", entry.schedule),
                effect: Effect::Advisory,
            };
            report(set, &hit, Some(entry.line), Some(&user));
        }
        if skipped.is_none()
            && !entry.spec.is_reboot()
            && daemon.is_vixie()
            && !src.origin.is_system()
        {
            if let Some(why) = rules::allow_deny(&user, ctx) {
                if !set
                    .problems
                    .iter()
                    .any(|p| p.rule == "cron_allow_deny" && p.file == src.path)
                {
                    let hit = Hit {
                        rule: "cron_allow_deny",
                        detail: format!(
                            "{why}: {} still runs this crontab (the daemon does not read those files), but crontab(1) will refuse to let {user} edit or reinstall it",
                            daemon.label()
                        ),
                        effect: Effect::Advisory,
                    };
                    report(set, &hit, None, Some(&user));
                }
            }
        }
        set.entries.push(Entry {
            file: src.path.clone(),
            line: entry.line,
            user,
            schedule: entry.schedule.clone(),
            command,
            stdin,
            env,
            tz,
            runs: skipped.is_none(),
            skipped_because: skipped,
            wildcard: entry.spec.is_wildcard(),
            spec: entry.spec.clone(),
            cron_tz,
        });
    }
}

/// The zone an entry is evaluated in: cronie honours `CRON_TZ` (cron.c `find_jobs`),
/// the others run every entry in the daemon's zone.
fn entry_zone(
    daemon: Daemon,
    env_lines: &[(String, String)],
    daemon_zone: &str,
    src: &CrontabSource,
    line: u32,
    set: &mut CrontabSet,
) -> (String, Option<TimeZone>) {
    let cron_tz = env_lines
        .iter()
        .rev()
        .find(|(n, _)| n == "CRON_TZ")
        .map(|(_, v)| v.as_str());
    match (daemon, cron_tz) {
        (Daemon::Cronie, Some(name)) if !name.is_empty() => match resolve_tz(name) {
            Some(zone) => (name.to_string(), Some(zone)),
            None => {
                if !set.problems.iter().any(|p| {
                    p.rule == "cron_tz_unknown" && p.file == src.path && p.line == Some(line)
                }) {
                    let hit = Hit {
                        rule: "cron_tz_unknown",
                        detail: format!("CRON_TZ={name} is no time zone this host knows, so the entry runs on UTC times"),
                        effect: Effect::Advisory,
                    };
                    set.problems.push(problem(
                        src,
                        daemon,
                        &hit,
                        Some(line),
                        src.origin.spool_user(),
                    ));
                }
                ("UTC".to_string(), Some(TimeZone::UTC))
            }
        },
        _ => (daemon_zone.to_string(), None),
    }
}

/// Whether the fields match any minute of a 28-year span (every weekday/date
/// combination of the Gregorian calendar occurs within that).
fn can_fire(spec: &Schedule) -> bool {
    let start = 30 * 365 * 1440; // 2000
    spec.next_match(start, start + 28 * 366 * 1440).is_some()
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    })
}

fn problem(
    src: &CrontabSource,
    daemon: Daemon,
    hit: &Hit,
    line: Option<u32>,
    user: Option<&str>,
) -> Problem {
    let rule = rules::rule(hit.rule);
    let kind = rule.map_or(ProblemKind::CrontabSyntax, |r| r.kind);
    let fix = rule.map_or("", |r| r.fix);
    let place = match line {
        Some(l) => format!("{}:{l}", src.path),
        None => src.path.clone(),
    };
    let consequence = match hit.effect {
        Effect::SkipsFile => format!("{} skips this file", daemon.label()),
        Effect::SkipsLine => format!("{} skips this line", daemon.label()),
        Effect::CrashesDaemon => format!("{} may crash on it", daemon.label()),
        Effect::Advisory => String::new(),
    };
    let mut message = format!("{place}: {}", hit.detail);
    let said = ["ignored", "dropped", "crash", "never reads", "will not"]
        .iter()
        .any(|w| hit.detail.contains(w));
    if !consequence.is_empty() && !said {
        message.push_str(&format!("; {consequence}"));
    }
    if !fix.is_empty() {
        message.push_str(&format!(". Fix: {fix}"));
    }
    Problem {
        kind,
        rule: hit.rule,
        daemon,
        effect: hit.effect,
        file: src.path.clone(),
        line,
        user: user.map(str::to_string),
        message,
    }
}
