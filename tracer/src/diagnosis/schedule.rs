//! Jobs that never started: which crontab entry each traced job ran, the runs the
//! crontabs called for in the trace window that no daemon started (`missed_schedule`),
//! the stretches with no daemon alive (`scheduler_down`), and the files and lines the
//! daemons skip (`crontab_ignored`, `crontab_syntax`).
//!
//! A fire at F counts as run when a job of a daemon of the same group (kind, mount
//! namespace) that ran the entry's command as its user started in [F - EARLY, F +
//! GRACE]. The rule is decided only once the stream is SETTLE past that window, so the
//! live run (which decides as time passes) and a replay (which decides at the end)
//! reach the same verdicts.
use std::collections::BTreeMap;

use jiff::{tz::TimeZone, Timestamp};
use serde::Serialize;

use super::{Finding, Kind};
use crate::{
    model::{
        job::{Job, Tracker},
        scheduler::SchedulerLife,
    },
    schedules::{daemon_tz, CrontabSet, Entry, ProblemKind, ScheduleView},
};

use tracer_common::STR_MAX;

const SEC: u64 = 1_000_000_000;
/// What a job's summary says before its command ran.
const NO_COMMAND: &str = "(no command executed)";
/// How long after its fire time a daemon may take to fork a job (Debian cron forks
/// within a second of the minute; a loaded host is slower).
pub const GRACE_NS: u64 = 10 * SEC;
/// A daemon whose clock runs a little ahead may fork just before the minute.
const EARLY_NS: u64 = 2 * SEC;
/// Events of a fork at F + GRACE are drained well before this much later.
const SETTLE_NS: u64 = 2 * SEC;
/// Times listed per missed-run finding; the count says how many more.
const MAX_TIMES: usize = 5;
/// Missed runs are looked for in this much of a trace. Time is the one input that
/// costs work by its value: one event time-stamped centuries ahead (a damaged or
/// crafted file) would otherwise ask for every minute in between.
const MAX_WINDOW_NS: u64 = 366 * 86_400 * SEC;
/// ... and until this many missed runs are found; each costs a little time and memory,
/// and a daemon down for weeks has said what it has to say long before.
const MAX_MISSES: usize = 10_000;
/// Fires are computed this much of the window at a time, so the limits above stop the
/// work close to where they are reached.
const DECIDE_STEP_NS: u64 = 3600 * SEC;

/// The crontab entry a job ran (JSON `crontab_entry`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EntryRef {
    pub file: String,
    pub line: u32,
    pub schedule: String,
    pub user: String,
    pub command: String,
    /// anacron's job identifier (its timestamp file's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl EntryRef {
    fn of(e: &Entry) -> Self {
        EntryRef {
            file: e.file.clone(),
            line: e.line,
            schedule: e.schedule.clone(),
            user: e.user.clone(),
            command: e.command.clone(),
            job_id: None,
        }
    }
}

struct ViewState {
    view: ScheduleView,
    set: CrontabSet,
    tz: TimeZone,
    /// From when (monotonic ns) these files are what the daemon runs.
    from_ns: u64,
    /// Index of the group (daemons sharing these files).
    group: usize,
}

/// One fire that no daemon started.
struct Miss {
    view: usize,
    entry: usize,
    at_mono: u64,
    at: Timestamp,
    cause: String,
}

pub struct ScheduleCheck {
    views: Vec<ViewState>,
    /// Pids of the daemons of each group.
    groups: Vec<Vec<u32>>,
    mono_to_wall_ns: i64,
    start_ns: u64,
    /// Fires at or before this (monotonic) have been decided.
    decided_ns: u64,
    misses: Vec<Miss>,
    /// Where looking for missed runs stopped short of the end, and why.
    stopped: Option<(u64, &'static str)>,
}

impl ScheduleCheck {
    /// `views` as read at `start_ns`; `mono_to_wall_ns` turns event times into wall time.
    pub fn new(views: Vec<ScheduleView>, start_ns: u64, mono_to_wall_ns: i64) -> Self {
        let mut c = ScheduleCheck {
            views: Vec::new(),
            groups: Vec::new(),
            mono_to_wall_ns,
            start_ns,
            decided_ns: start_ns,
            misses: Vec::new(),
            stopped: None,
        };
        for v in views {
            c.add_view(v, start_ns);
        }
        c
    }

    /// A daemon that started during the trace, with its files as it read them.
    pub fn add_view(&mut self, view: ScheduleView, from_ns: u64) {
        let group = match self
            .views
            .iter()
            .find(|s| s.view.same_group(&view))
            .map(|s| s.group)
        {
            Some(g) => g,
            None => {
                self.groups.push(Vec::new());
                self.groups.len() - 1
            }
        };
        for &p in &view.pids {
            if !self.groups[group].contains(&p) {
                self.groups[group].push(p);
            }
        }
        let set = view.analyse();
        let tz = daemon_tz(&view.context);
        self.views.push(ViewState {
            view,
            set,
            tz,
            from_ns,
            group,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// The files each group of daemons runs now (the latest read of each).
    pub fn latest_views(&self) -> Vec<&ScheduleView> {
        (0..self.groups.len())
            .filter_map(|g| self.views.iter().rev().find(|s| s.group == g))
            .map(|s| &s.view)
            .collect()
    }

    /// An event time as the wall-clock time it was (RFC 3339, UTC).
    pub fn wall_text(&self, mono: u64) -> String {
        self.wall(mono).to_string()
    }

    fn wall(&self, mono: u64) -> Timestamp {
        let ns = mono as i128 + self.mono_to_wall_ns as i128;
        Timestamp::from_nanosecond(ns).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn mono(&self, t: Timestamp) -> u64 {
        let ns = t.as_nanosecond() - self.mono_to_wall_ns as i128;
        ns.clamp(0, u64::MAX as i128) as u64
    }

    /// The daemon `parent` went on as `child` (it daemonized): same files, same group.
    pub fn continued(&mut self, parent: u32, child: u32) {
        for g in self.groups.iter_mut().filter(|g| g.contains(&parent)) {
            g.push(child);
        }
        for s in self
            .views
            .iter_mut()
            .filter(|s| s.view.pids.contains(&parent))
        {
            s.view.pids.push(child);
        }
    }

    fn group_of_pid(&self, pid: u32) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&pid))
    }

    /// The view of `group` in force at `ts` (the latest read before it).
    fn view_at(&self, group: usize, ts: u64) -> Option<usize> {
        let mut best = None;
        for (i, s) in self.views.iter().enumerate() {
            if s.group == group && (s.from_ns <= ts || best.is_none()) {
                best = Some(i);
            }
        }
        best
    }

    /// When view `i` stops being the one in force (another read of its group).
    fn view_until(&self, i: usize) -> u64 {
        let s = &self.views[i];
        self.views[i + 1..]
            .iter()
            .filter(|o| o.group == s.group)
            .map(|o| o.from_ns)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The entry job `job` ran: same daemon group, same command and user; among
    /// several, the one due nearest before the job started.
    pub fn entry_of(&self, t: &Tracker, job: &Job) -> Option<EntryRef> {
        self.match_job(t, job)
            .map(|(v, e)| EntryRef::of(&self.views[v].set.entries[e]))
    }

    fn match_job(&self, t: &Tracker, job: &Job) -> Option<(usize, usize)> {
        let group = self.group_of_pid(job.scheduler_pid)?;
        let v = self.view_at(group, job.start_ns)?;
        let s = &self.views[v];
        let summary = t.summary(job);
        let command = summary.command.trim();
        let user = s
            .view
            .context
            .user_by_uid(summary.uid)
            .map(|u| u.name.as_str());
        let candidates: Vec<usize> = s
            .set
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                let c = e.command.trim();
                // The kernel keeps STR_MAX - 1 bytes of an argv string: a longer
                // command arrives cut, and its start is what there is to match.
                c == command || (command.len() >= STR_MAX - 1 && c.starts_with(command))
            })
            .filter(|(_, e)| user.is_none_or(|u| u == e.user))
            .map(|(i, _)| i)
            .collect();
        if candidates.len() <= 1 {
            return candidates.first().map(|&e| (v, e));
        }
        let from = self.wall(job.start_ns.saturating_sub(GRACE_NS));
        let to = self.wall(job.start_ns + EARLY_NS);
        candidates
            .iter()
            .copied()
            .find(|&e| {
                !s.set.entries[e]
                    .fires_between(&s.tz, from, to, s.view.daemon)
                    .is_empty()
            })
            .or(candidates.first().copied())
            .map(|e| (v, e))
    }

    /// The next run after `after_ns` of every entry `pattern` names (`FILE:LINE`, or
    /// text in the command), as the daemons see them now.
    pub fn targets(&self, pattern: &str, after_ns: u64) -> Vec<Target> {
        let mut out = Vec::new();
        for g in 0..self.groups.len() {
            let Some(vi) = self.views.iter().rposition(|s| s.group == g) else {
                continue;
            };
            let s = &self.views[vi];
            for (ei, e) in s.set.entries.iter().enumerate() {
                if !entry_matches(e, pattern) {
                    continue;
                }
                let next = e
                    .next_fires(&s.tz, self.wall(after_ns), 1, s.view.daemon)
                    .into_iter()
                    .next();
                out.push(Target {
                    view: vi,
                    entry: ei,
                    entry_ref: EntryRef::of(e),
                    daemon: s.view.who(),
                    runs: e.runs,
                    skipped_because: e.skipped_because.clone(),
                    fire_ns: next.as_ref().map(|z| self.mono(z.timestamp())),
                    fire_text: next.map(|z| z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()),
                });
            }
        }
        out
    }

    /// Whether a host finding concerns one of `entries` (`record --entry` shows only
    /// those): it names their file, or the daemons that should run them.
    pub fn concerns(&self, f: &Finding, entries: &[EntryRef]) -> bool {
        if let Some(file) = &f.file {
            return entries.iter().any(|e| &e.file == file);
        }
        let groups: Vec<usize> = (0..self.groups.len())
            .filter(|&g| {
                self.views.iter().any(|s| {
                    s.group == g
                        && s.set.entries.iter().any(|x| {
                            entries.iter().any(|e| {
                                e.file == x.file && e.line == x.line && e.command == x.command
                            })
                        })
                })
            })
            .collect();
        if f.pid != 0 {
            return groups.iter().any(|&g| self.groups[g].contains(&f.pid));
        }
        // "No daemon when the trace started": the groups that had none.
        groups.iter().any(|&g| {
            self.views
                .iter()
                .find(|s| s.group == g)
                .is_some_and(|s| s.view.pids.is_empty())
        })
    }

    /// Whether `target`'s run is over: due and not started (missed), or started and
    /// every process of its job ended.
    pub fn target_done(&self, t: &Tracker, target: &Target, now_ns: u64) -> bool {
        let Some(fire) = target.fire_ns else {
            return true;
        };
        if !target.runs {
            return now_ns >= fire;
        }
        let job = self.job_for(t, target.view, target.entry, fire);
        match job.and_then(|j| t.jobs().get(j)) {
            Some(j) => j.finished(),
            None => now_ns >= fire + GRACE_NS + SETTLE_NS,
        }
    }

    /// The job of a daemon of the view's group that ran entry `ei` for the fire at `at`.
    fn job_for(&self, t: &Tracker, vi: usize, ei: usize, at: u64) -> Option<usize> {
        let group = self.views[vi].group;
        let lo = at.saturating_sub(EARLY_NS);
        let hi = at + GRACE_NS;
        t.jobs()
            .starting_from(lo)
            .take_while(|(_, j)| j.start_ns <= hi)
            .filter(|(_, j)| self.groups[group].contains(&j.scheduler_pid))
            .find(|(_, j)| {
                self.match_job(t, j).is_some_and(|(v, e)| {
                    let a = &self.views[v].set.entries[e];
                    let b = &self.views[vi].set.entries[ei];
                    a.file == b.file && a.line == b.line && a.command == b.command
                })
            })
            .map(|(i, _)| i)
    }

    /// Whether a job that started at `start_ns` can no longer be any undecided fire's
    /// run: it may then be let go without turning into a missed run.
    pub fn past(&self, start_ns: u64) -> bool {
        self.stopped.is_some() || start_ns.saturating_add(EARLY_NS) < self.decided_ns
    }

    /// Decide every fire up to `now_ns` less the grace and settle time. Returns the new
    /// misses as findings, for a live run to print as they happen.
    pub fn advance(&mut self, t: &Tracker, now_ns: u64) -> Vec<Finding> {
        let mut upto = now_ns.saturating_sub(GRACE_NS + SETTLE_NS);
        // No daemon's schedule is known (`--comm`, `--all`, `--pid`): no job can be a
        // fire's run, and the walk below, over every job of the last seconds, was a
        // twentieth of a followed workload's tracer CPU.
        if self.groups.is_empty() {
            return self.decide(t, upto);
        }
        // A job a daemon forked but that has not run its command yet (PAM can take
        // seconds) may still turn out to be a fire's run: wait for it, as a replay,
        // which sees its command, would count it.
        let jobs = t.jobs();
        for j in jobs.iter().rev() {
            if j.start_ns + GRACE_NS < self.decided_ns {
                break;
            }
            let pending = !j.finished()
                && self.group_of_pid(j.scheduler_pid).is_some()
                && t.summary(j).command == NO_COMMAND;
            if pending {
                upto = upto.min(j.start_ns.saturating_sub(GRACE_NS + 1));
            }
        }
        self.decide(t, upto)
    }

    fn decide(&mut self, t: &Tracker, upto: u64) -> Vec<Finding> {
        let limit = self.start_ns.saturating_add(MAX_WINDOW_NS);
        let mut new = Vec::new();
        while self.stopped.is_none() && self.decided_ns < upto {
            if self.decided_ns >= limit {
                self.stopped = Some((limit, "the trace is longer than the 366 days checked"));
                break;
            }
            if self.misses.len() + new.len() >= MAX_MISSES {
                self.stopped = Some((
                    self.decided_ns,
                    "more than 10000 missed runs were found by then",
                ));
                break;
            }
            let from = self.decided_ns;
            let to = upto.min(limit).min(from.saturating_add(DECIDE_STEP_NS));
            self.decided_ns = to;
            self.decide_between(t, from, to, &mut new);
        }
        let findings = new.iter().map(|m| self.miss_finding(&[m])).collect();
        self.misses.extend(new);
        findings
    }

    /// The fires in (from, upto] that no daemon started.
    fn decide_between(&self, t: &Tracker, from: u64, upto: u64, new: &mut Vec<Miss>) {
        for vi in 0..self.views.len() {
            let s = &self.views[vi];
            let lo = from.max(s.from_ns);
            let hi = upto.min(self.view_until(vi));
            if lo >= hi {
                continue;
            }
            let (wlo, whi) = (self.wall(lo), self.wall(hi));
            let not_read = not_read_files(&s.set);
            for (ei, e) in s.set.entries.iter().enumerate() {
                if not_read.contains(&e.file.as_str()) {
                    continue;
                }
                // Entries the daemon skips: when they would have run, and why not.
                let fires = if e.runs {
                    e.fires_between(&s.tz, wlo, whi, s.view.daemon)
                } else {
                    e.spec
                        .fires_between_zones(&s.tz, e.cron_tz.as_ref(), wlo, whi, s.view.daemon)
                };
                for f in fires {
                    let at_mono = self.mono(f.at);
                    if at_mono <= self.start_ns {
                        continue;
                    }
                    if e.runs && self.ran(t, vi, ei, at_mono) {
                        continue;
                    }
                    let cause = self.cause(t, s, e, at_mono);
                    new.push(Miss {
                        view: vi,
                        entry: ei,
                        at_mono,
                        at: f.at,
                        cause,
                    });
                }
            }
        }
    }

    /// Whether a daemon of the view's group started the entry's job near `at`.
    fn ran(&self, t: &Tracker, vi: usize, ei: usize, at: u64) -> bool {
        self.job_for(t, vi, ei, at).is_some()
    }

    fn cause(&self, t: &Tracker, s: &ViewState, e: &Entry, at: u64) -> String {
        let daemon = s.view.daemon.label();
        if !e.runs {
            return format!(
                "{daemon} never starts it: {}",
                e.skipped_because
                    .as_deref()
                    .unwrap_or("the daemon skips this entry")
            );
        }
        let lives = self.lives(t, s.group);
        if let Some(l) = lives.iter().find(|l| l.alive_at(at)) {
            let first = self.views.iter().find(|o| o.group == s.group);
            let new_entry = first.is_some_and(|f| {
                f.from_ns < s.from_ns
                    && !f.set.entries.iter().any(|o| {
                        o.file == e.file && o.command == e.command && o.schedule == e.schedule
                    })
            });
            let why = if new_entry {
                format!(
                    "the entry appeared in {} at {}, during the trace: the daemon rereads a crontab only when its modification time changes (`crontab -e`, or `touch` the file)",
                    e.file,
                    self.wall(s.from_ns).strftime("%H:%M:%S UTC")
                )
            } else {
                "stopped with SIGSTOP, hung, a clock change, or the file changed without the daemon rereading it".to_string()
            };
            return format!(
                "{} (pid {}) was running but did not start it ({why})",
                l.comm, l.pid
            );
        }
        match lives
            .iter()
            .filter(|l| l.end_ns.is_some_and(|e| e <= at))
            .max_by_key(|l| l.end_ns)
        {
            Some(l) => format!("no {daemon} daemon was running: {}", self.how_ended(l)),
            None => format!("no {daemon} daemon was running"),
        }
    }

    fn lives<'a>(&self, t: &'a Tracker, group: usize) -> Vec<&'a SchedulerLife> {
        t.schedulers
            .lives
            .iter()
            .filter(|l| self.groups[group].contains(&l.pid))
            .collect()
    }

    /// "cron (pid 812) exited at 12:00:31 (+5.2 s), killed by SIGKILL sent by pid 99 (bash)"
    fn how_ended(&self, l: &SchedulerLife) -> String {
        let end = l.end_ns.unwrap_or(0);
        let mut s = format!(
            "{} (pid {}) exited at {} (+{:.1} s into the trace)",
            l.comm,
            l.pid,
            self.wall(end).strftime("%H:%M:%S UTC"),
            end.saturating_sub(self.start_ns) as f64 / 1e9
        );
        if let Some(st) = l.exit {
            s.push_str(&format!(" ({st})"));
        }
        match l.killer() {
            Some(k) if k.code > 0 => {
                s.push_str(&format!(", {} raised by the kernel", k.signal_name))
            }
            Some(k) => s.push_str(&format!(
                ", {} sent by pid {} ({})",
                k.signal_name, k.from_pid, k.from_comm
            )),
            None => {}
        }
        s
    }

    /// One finding for misses of one entry with one cause.
    fn miss_finding(&self, ms: &[&Miss]) -> Finding {
        let m = ms[0];
        let s = &self.views[m.view];
        let e = &s.set.entries[m.entry];
        let times: Vec<String> = ms
            .iter()
            .map(|m| rfc3339(&m.at.to_zoned_datetime(s.tz.clone())))
            .collect();
        let shown: Vec<String> = ms
            .iter()
            .take(MAX_TIMES)
            .map(|m| {
                m.at.to_zoned_datetime(s.tz.clone())
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .collect();
        let more = if ms.len() > MAX_TIMES {
            format!(" and {} more times", ms.len() - MAX_TIMES)
        } else {
            String::new()
        };
        let scope = if s.view.is_host() {
            String::new()
        } else {
            format!(" [as seen by {}]", s.view.who())
        };
        let stopped = match self.stopped {
            Some((at, why)) => format!(
                "; runs after {} were not looked for ({why})",
                self.wall(at).strftime("%Y-%m-%d %H:%M UTC")
            ),
            None => String::new(),
        };
        Finding {
            kind: Kind::MissedSchedule.as_str().into(),
            message: format!(
                "{}:{} `{} {}` (user {}) should have run at {}{more} and did not: {}{scope}{stopped}",
                e.file,
                e.line,
                e.schedule,
                e.command,
                e.user,
                shown.join(", "),
                m.cause
            ),
            pid: 0,
            evidence: Vec::new(),
            file: Some(e.file.clone()),
            line: Some(e.line),
            times,
        }
    }

    /// Everything host-level for the trace that ended at `end_ns`: the daemons' files,
    /// the stretches with no daemon, the runs that did not happen.
    pub fn finish(&mut self, t: &Tracker, end_ns: u64) -> Vec<Finding> {
        self.decide(t, end_ns.saturating_sub(GRACE_NS));
        let mut out = Vec::new();
        out.extend(self.scheduler_down(t, end_ns));
        out.extend(self.not_reread(t, end_ns));
        out.extend(self.crontab_problems());
        // Misses grouped per entry and cause, in the order they happened.
        let mut groups: BTreeMap<(String, u32, String, String), Vec<&Miss>> = BTreeMap::new();
        let mut order = Vec::new();
        for m in &self.misses {
            let e = &self.views[m.view].set.entries[m.entry];
            let key = (
                e.file.clone(),
                e.line,
                m.cause.clone(),
                self.views[m.view].view.who(),
            );
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            groups.entry(key).or_default().push(m);
        }
        // In order of each group's first miss: the same whether decided as time passed
        // (live) or all at the end (replay).
        let mut ready: Vec<Vec<&Miss>> = order
            .into_iter()
            .map(|key| {
                let mut ms = groups[&key].clone();
                ms.sort_by_key(|m| (m.at_mono, m.view, m.entry));
                ms
            })
            .collect();
        ready.sort_by_key(|ms| (ms[0].at_mono, ms[0].view, ms[0].entry));
        for ms in ready {
            out.push(self.miss_finding(&ms));
        }
        dedupe(out)
    }

    fn crontab_problems(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, s) in self.views.iter().enumerate() {
            for p in &s.set.problems {
                // "busybox never reads /etc/crontab" misleads when a daemon that does runs.
                if p.rule == "not_read_by_daemon"
                    && self.views.iter().enumerate().any(|(j, o)| {
                        j != i
                            && o.view.sources.iter().any(|src| src.path == p.file)
                            && !not_read_files(&o.set).contains(&p.file.as_str())
                    })
                {
                    continue;
                }
                let kind = match p.kind {
                    ProblemKind::CrontabSyntax => Kind::CrontabSyntax,
                    ProblemKind::CrontabIgnored => Kind::CrontabIgnored,
                };
                let scope = if s.view.is_host() {
                    format!(" ({})", p.daemon.label())
                } else {
                    format!(" [as seen by {}]", s.view.who())
                };
                out.push(Finding {
                    kind: kind.as_str().into(),
                    message: format!("{}{scope}", p.message),
                    file: Some(p.file.clone()),
                    line: p.line,
                    ..Default::default()
                });
            }
        }
        out
    }

    /// A crontab changed while we traced that the running daemon never reopened: its
    /// new lines do not run (a file edited in place with its old mtime kept, a
    /// daemon that is hung). Vixie-lineage daemons reread at the minute after a change.
    fn not_reread(&self, t: &Tracker, end_ns: u64) -> Vec<Finding> {
        let mut out = Vec::new();
        for (vi, s) in self.views.iter().enumerate() {
            if s.from_ns <= self.start_ns || !s.view.daemon.is_vixie() {
                continue;
            }
            let Some(prev) = self.views[..vi]
                .iter()
                .rev()
                .find(|o| o.group == s.group && o.view.pids == s.view.pids)
            else {
                continue;
            };
            // The daemon looks at the start of each minute; allow it the grace too.
            let from_wall = self.wall(s.from_ns).as_second();
            let boundary =
                Timestamp::from_second((from_wall / 60 + 1) * 60).unwrap_or(Timestamp::UNIX_EPOCH);
            let deadline = self.mono(boundary) + GRACE_NS;
            if deadline > end_ns {
                continue;
            }
            let lives = self.lives(t, s.group);
            let Some(alive) = lives.iter().find(|l| l.alive_at(deadline)) else {
                continue;
            };
            for src in &s.view.sources {
                let before = prev.view.sources.iter().find(|p| p.path == src.path);
                let changed = match before {
                    Some(p) => p.text != src.text,
                    None => src.text.is_some(),
                };
                if !changed {
                    continue;
                }
                // The daemon compares modification times: new text under the old time
                // is never loaded. With a new time it opens the file at the minute.
                let same_mtime = before.is_some_and(|p| p.mtime_unix_ns == src.mtime_unix_ns);
                let reopened = lives.iter().any(|l| {
                    l.reads.iter().any(|(ts, path)| {
                        *path == src.path && *ts + 3 * SEC >= s.from_ns && *ts <= deadline
                    })
                });
                if !same_mtime && reopened {
                    continue;
                }
                let why = if same_mtime {
                    "its text changed but its modification time did not (copied with `cp -p`, `rsync -t`, or a tool that restores times), so the daemon never rereads it"
                } else {
                    "the daemon did not open it at the next minute (stopped, hung, or not watching this file)"
                };
                let scope = if s.view.is_host() {
                    String::new()
                } else {
                    format!(" [{}]", s.view.who())
                };
                out.push(Finding {
                    kind: Kind::SchedulerDown.as_str().into(),
                    message: format!(
                        "{} (pid {}) has not reread {}, which changed at {}: {why}; what changed there does not run until it does (`touch {}` or restart the daemon){scope}",
                        alive.comm,
                        alive.pid,
                        src.path,
                        self.wall(s.from_ns).strftime("%H:%M:%S UTC"),
                        src.path
                    ),
                    pid: alive.pid,
                    file: Some(src.path.clone()),
                    times: vec![self.wall(s.from_ns).to_string()],
                    ..Default::default()
                });
            }
        }
        out
    }

    fn scheduler_down(&self, t: &Tracker, end_ns: u64) -> Vec<Finding> {
        let mut out = Vec::new();
        for g in 0..self.groups.len() {
            let Some(first) = self.views.iter().find(|s| s.group == g) else {
                continue;
            };
            let label = first.view.daemon.label();
            let entries = first.set.entries.iter().filter(|e| e.runs).count();
            let lives = self.lives(t, g);
            let scope = if first.view.is_host() {
                String::new()
            } else {
                format!(" [{}]", first.view.who())
            };
            let alive_at_start = lives.iter().any(|l| l.alive_at(self.start_ns));
            if !alive_at_start {
                let later = lives
                    .iter()
                    .filter(|l| l.since_ns > self.start_ns)
                    .min_by_key(|l| l.since_ns);
                let until = match later {
                    Some(l) => format!(
                        " until {} (pid {}) started at {}",
                        l.comm,
                        l.pid,
                        self.wall(l.since_ns).strftime("%H:%M:%S UTC")
                    ),
                    None => " for the whole trace".to_string(),
                };
                out.push(Finding {
                    kind: Kind::SchedulerDown.as_str().into(),
                    message: format!(
                        "no {label} daemon was running when the trace started{until}; its {entries} crontab entries do not run without it (start it: `service cron start` or `systemctl start cron`){scope}"
                    ),
                    times: vec![self.wall(self.start_ns).to_string()],
                    ..Default::default()
                });
            }
            // A daemon that ended while none of its group was left to take over.
            for l in &lives {
                let Some(end) = l.end_ns else { continue };
                if end > end_ns || lives.iter().any(|o| o.pid != l.pid && o.alive_at(end)) {
                    continue;
                }
                let next = lives
                    .iter()
                    .filter(|o| o.since_ns >= end)
                    .min_by_key(|o| o.since_ns);
                let gap = match next {
                    Some(o) => format!(
                        "; none ran until {} (pid {}) started at {}",
                        o.comm,
                        o.pid,
                        self.wall(o.since_ns).strftime("%H:%M:%S UTC")
                    ),
                    None => "; none ran for the rest of the trace".to_string(),
                };
                out.push(Finding {
                    kind: Kind::SchedulerDown.as_str().into(),
                    message: format!(
                        "{}{gap}: its {entries} crontab entries were not run{scope}",
                        self.how_ended(l)
                    ),
                    pid: l.pid,
                    times: vec![self.wall(end).to_string()],
                    ..Default::default()
                });
            }
        }
        out
    }
}

/// RFC 3339 with the zone's offset (`2026-11-29T03:00:00+01:00`), as JSON shows times.
pub fn rfc3339(z: &jiff::ZonedDateTime) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A crontab entry `record --entry` waits for.
#[derive(Clone, Debug)]
pub struct Target {
    view: usize,
    entry: usize,
    pub entry_ref: EntryRef,
    /// The daemon that should run it, for messages.
    pub daemon: String,
    pub runs: bool,
    pub skipped_because: Option<String>,
    /// Its next fire (monotonic ns), and that time as a person reads it; `None` when
    /// it has no next fire (an `@reboot` entry, an impossible date).
    pub fire_ns: Option<u64>,
    pub fire_text: Option<String>,
}

/// `FILE:LINE` names one entry; anything else is looked for in the command.
pub fn entry_matches(e: &Entry, pattern: &str) -> bool {
    if let Some((file, line)) = pattern.rsplit_once(':') {
        if let Ok(line) = line.parse::<u32>() {
            return e.file == file && e.line == line;
        }
    }
    e.command.contains(pattern)
}

/// Files a daemon does not read at all (another daemon's): their entries are not
/// this daemon's misses.
fn not_read_files(set: &CrontabSet) -> Vec<&str> {
    set.problems
        .iter()
        .filter(|p| p.rule == "not_read_by_daemon")
        .map(|p| p.file.as_str())
        .collect()
}

/// Daemons of one kind sharing files report the same problem once.
fn dedupe(v: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter()
        .filter(|f| seen.insert((f.kind.clone(), f.message.clone())))
        .collect()
}

#[cfg(test)]
mod tests_support {
    use crate::schedules::{CrontabSource, Daemon, HostContext, Origin, ScheduleView, UserInfo};

    pub fn view_of(crontab: &str, pids: Vec<u32>) -> ScheduleView {
        ScheduleView {
            daemon: Daemon::DebianCron,
            pids,
            root: "/".into(),
            mnt_ns: None,
            busybox_dir: None,
            sources: vec![CrontabSource::new(
                "/etc/crontab",
                Origin::SystemCrontab,
                crontab,
            )],
            context: HostContext {
                users: vec![UserInfo {
                    name: "root".into(),
                    uid: 0,
                    gid: 0,
                    home: "/root".into(),
                    shell: "/bin/sh".into(),
                }],
                cron_allow: None,
                cron_deny: None,
                tz: "UTC".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use crate::{
        model::event::{Body, Event, ExitStatus},
        testutil::{ev, exec_events, snapshot_root},
    };

    const S: u64 = 1_000_000_000;
    /// Trace start (mono 0) is 2026-11-29 12:00:30 UTC.
    const WALL0: i64 = 1_795_953_630 * S as i64;

    /// cron 100 runs `echo hi` as a job forked at `at` (mono).
    fn job_events(at: u64, child: u32) -> Vec<Event> {
        let mut v = vec![ev(
            100,
            at,
            Body::Fork {
                child_pid: child,
                clone_flags: 0,
            },
        )];
        v.extend(exec_events(
            child,
            at + 1000,
            &["/bin/sh", "-c", "echo hi"],
            &[],
            0,
        ));
        v.push(ev(
            child,
            at + 2000,
            Body::Exit {
                status: Some(ExitStatus::code(0)),
            },
        ));
        v
    }

    fn kinds(fs: &[Finding]) -> Vec<&str> {
        fs.iter().map(|f| f.kind.as_str()).collect()
    }

    #[test]
    fn a_job_is_matched_to_its_line_and_a_fire_without_a_job_is_missed() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        // 12:01:00.3 is mono 30.3 s; the 12:02 run never comes; the trace ends 12:02:30.
        for e in job_events(30 * S + 300_000_000, 200) {
            t.push(e);
        }
        t.counters.last_ts = 120 * S;
        let mut c = ScheduleCheck::new(
            vec![view_of("* * * * * root echo hi\n", vec![100])],
            0,
            WALL0,
        );
        let e = c.entry_of(&t, &t.jobs()[0]).expect("matched");
        assert_eq!(
            (e.file.as_str(), e.line, e.schedule.as_str()),
            ("/etc/crontab", 1, "* * * * *")
        );
        let f = c.finish(&t, 120 * S);
        assert_eq!(kinds(&f), vec!["missed_schedule"], "{f:#?}");
        assert!(
            f[0].message
                .contains("should have run at 2026-11-29 12:02 UTC"),
            "{}",
            f[0].message
        );
        assert!(f[0]
            .message
            .contains("cron (pid 100) was running but did not start it"));
        assert_eq!(f[0].times, vec!["2026-11-29T12:02:00+00:00".to_string()]);
        assert_eq!(
            (f[0].file.as_deref(), f[0].line),
            (Some("/etc/crontab"), Some(1))
        );
    }

    #[test]
    fn a_killed_daemon_is_scheduler_down_and_explains_the_missed_runs() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        let mut kill = ev(
            555,
            10 * S,
            Body::Signal {
                target_pid: 100,
                signal: 9,
                signal_name: "SIGKILL",
                code: 0,
                result: 0,
            },
        );
        kill.comm = "bash".into();
        t.push(kill);
        t.push(ev(
            100,
            10 * S + 1000,
            Body::Exit {
                status: Some(ExitStatus::signal(9, false)),
            },
        ));
        let mut c = ScheduleCheck::new(
            vec![view_of("* * * * * root echo hi\n", vec![100])],
            0,
            WALL0,
        );
        let f = c.finish(&t, 150 * S);
        assert_eq!(
            kinds(&f),
            vec!["scheduler_down", "missed_schedule"],
            "{f:#?}"
        );
        assert!(
            f[0].message
                .contains("cron (pid 100) exited at 12:00:40 UTC"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("SIGKILL sent by pid 555 (bash)"));
        assert!(f[0].message.contains("none ran for the rest of the trace"));
        // 12:01 and 12:02 in one finding.
        assert_eq!(f[1].times.len(), 2, "{:#?}", f[1]);
        assert!(f[1]
            .message
            .contains("no Debian cron daemon was running: cron (pid 100) exited"));
    }

    #[test]
    fn no_daemon_at_start_is_scheduler_down() {
        let t = Tracker::default();
        let mut c = ScheduleCheck::new(vec![view_of("0 3 * * * root backup\n", vec![])], 0, WALL0);
        let f = c.finish(&t, 60 * S);
        assert_eq!(kinds(&f), vec!["scheduler_down"]);
        assert!(f[0].message.contains("no Debian cron daemon was running when the trace started for the whole trace; its 1 crontab entries"), "{}", f[0].message);
    }

    #[test]
    fn an_ignored_entry_is_missed_with_the_daemons_reason_and_its_problem() {
        let mut tt = Tracker::default();
        tt.push(snapshot_root(100));
        // A bad line (61 is out of range) makes Debian cron skip the whole file.
        let text = "* * * * * root echo hi\n61 * * * * root echo bad\n";
        let mut c = ScheduleCheck::new(vec![view_of(text, vec![100])], 0, WALL0);
        let f = c.finish(&tt, 100 * S);
        let k = kinds(&f);
        assert!(k.contains(&"crontab_syntax"), "{f:#?}");
        let missed = f
            .iter()
            .find(|f| f.kind == "missed_schedule")
            .expect("missed");
        assert!(
            missed.message.contains("/etc/crontab:1"),
            "{}",
            missed.message
        );
        assert!(
            missed.message.contains("never starts it"),
            "{}",
            missed.message
        );
    }

    #[test]
    fn deciding_as_time_passes_gives_what_deciding_at_the_end_gives() {
        let build = || {
            let mut t = Tracker::default();
            t.push(snapshot_root(100));
            for e in job_events(30 * S + 300_000_000, 200) {
                t.push(e);
            }
            t
        };
        let t = build();
        let views = || {
            vec![view_of(
                "* * * * * root echo hi\n*/2 * * * * root echo two\n",
                vec![100],
            )]
        };
        let mut live = ScheduleCheck::new(views(), 0, WALL0);
        let mut printed = Vec::new();
        for now in (0..200).map(|s| s * S) {
            printed.extend(live.advance(&t, now));
        }
        let a = live.finish(&t, 200 * S);
        let b = ScheduleCheck::new(views(), 0, WALL0).finish(&t, 200 * S);
        assert_eq!(a, b);
        // Each missed fire was printed once as it became due.
        let total: usize = a
            .iter()
            .filter(|f| f.kind == "missed_schedule")
            .map(|f| f.times.len())
            .sum();
        assert_eq!(printed.len(), total);
        assert!(total >= 3, "{a:#?}");
    }
}

#[cfg(test)]
mod reread_tests {
    use super::tests_support::*;
    use super::*;
    use crate::{
        model::event::Body,
        testutil::{ev, snapshot_root},
    };

    const S: u64 = 1_000_000_000;
    /// Trace start (mono 0) is 12:00:30 UTC.
    const WALL0: i64 = 1_795_953_630 * S as i64;

    fn check(read_at: Option<u64>) -> Vec<Finding> {
        check_with(read_at, 5)
    }

    fn check_with(read_at: Option<u64>, new_mtime: i64) -> Vec<Finding> {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        if let Some(ts) = read_at {
            t.push(ev(
                100,
                ts,
                Body::Open {
                    syscall: "openat",
                    dfd: -100,
                    path: "/etc/crontab".into(),
                    flags: 0,
                    mode: 0,
                    result: crate::model::event::SysResult::new(3),
                },
            ));
        }
        let mut c = ScheduleCheck::new(vec![view_of("# nothing yet\n", vec![100])], 0, WALL0);
        // Edited at 12:00:40; cron looks at 12:01:00.
        let mut edited = view_of("* * * * * root echo new\n", vec![100]);
        edited.sources[0].mtime_unix_ns = new_mtime;
        c.add_view(edited, 10 * S);
        c.finish(&t, 100 * S)
            .into_iter()
            .filter(|f| f.kind == "scheduler_down")
            .collect()
    }

    #[test]
    fn a_change_the_daemon_never_reopened_is_named() {
        let f = check(None);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].message.contains(
                "cron (pid 100) has not reread /etc/crontab, which changed at 12:00:40 UTC"
            ),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].file.as_deref(), Some("/etc/crontab"));
    }

    #[test]
    fn new_text_under_the_old_mtime_is_never_reread_even_if_opened() {
        let f = check_with(Some(30 * S + 2_000_000), 0);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].message.contains("modification time did not"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn a_change_the_daemon_reread_at_the_minute_is_not() {
        assert!(check(Some(30 * S + 2_000_000)).is_empty());
        // A read from before the change does not count.
        assert_eq!(check(Some(2 * S)).len(), 1);
    }
}

#[cfg(test)]
mod concern_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn only_the_daemons_and_files_of_the_followed_entries_concern_them() {
        let mut a = view_of("* * * * * root echo a\n", vec![100]);
        a.mnt_ns = Some("mnt:[1]".into());
        a.root = "/proc/100/root".into();
        let mut b = view_of("* * * * * root echo b\n", vec![200]);
        b.mnt_ns = Some("mnt:[2]".into());
        b.root = "/proc/200/root".into();
        b.sources[0].path = "/etc/cron.d/other".into();
        let c = ScheduleCheck::new(vec![a, b], 0, 0);
        let t = c.targets("echo a", 0);
        assert_eq!(t.len(), 1);
        let want = vec![t[0].entry_ref.clone()];
        let down = |pid| Finding {
            kind: "scheduler_down".into(),
            pid,
            ..Default::default()
        };
        assert!(c.concerns(&down(100), &want));
        assert!(!c.concerns(&down(200), &want));
        let file = |f: &str| Finding {
            kind: "crontab_ignored".into(),
            file: Some(f.into()),
            ..Default::default()
        };
        assert!(c.concerns(&file("/etc/crontab"), &want));
        assert!(!c.concerns(&file("/etc/cron.d/other"), &want));
    }
}
