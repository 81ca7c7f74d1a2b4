//! One pipeline for both sources: live kernel records and a replayed trace file go
//! through the same redaction, decoding, job model and printing, so a replay reports
//! exactly what the live run did.
use std::{collections::VecDeque, io::Write};

// Looked up once or more per job: foldhash, not SipHash (see `model::job`).
use foldhash::{HashMap, HashSet};

use crate::{
    diagnosis,
    diagnosis::{
        schedule::{EntryRef, ScheduleCheck},
        systemd::{Managers, UnitRef},
        tables::Tables,
        Finding,
    },
    facts::HostFacts,
    model::decode::{decode, decode_snapshot},
    model::event::Event,
    model::job::Tracker,
    model::users::UserNames,
    output::{
        follow::Follow,
        report::{self, Earlier, Report, Stats},
    },
    schedules::{
        systemd::ManagerView,
        tables::{AtJob, TableFile},
        ScheduleView,
    },
    secrets,
    tracefile::{LateSchedulerFiles, LostEvents, Synthetic, TraceWriter},
    Format,
};

/// Whether a reported job can be let go.
enum LetGo {
    Now,
    /// Not yet: a fire still to be decided may be its run.
    Later,
    /// It stays listed: gone already, a process of it still runs, or it overlaps a
    /// loss of events (the finding names it).
    Never,
}

/// What the diagnosis of one job decided.
struct Verdict {
    findings: Vec<Finding>,
    entry: Option<EntryRef>,
    // Boxed: most jobs have neither, and a verdict is held per job.
    unit: Option<Box<UnitRef>>,
    at_job: Option<Box<AtJob>>,
    /// A service manager's own work (systemd running its generators): not a job of
    /// any unit, so not listed.
    manager_work: bool,
}

/// A long trace lists this many of the latest jobs without findings in its report;
/// earlier ones are counted per command (`Earlier`). Jobs with findings: this many.
pub const LISTED_CLEAN: usize = 1000;
pub const LISTED_WITH_FINDINGS: usize = 2000;
/// The two, by whether a job has findings (the index into `Pipeline::reported`).
const LISTED: [usize; 2] = [LISTED_CLEAN, LISTED_WITH_FINDINGS];
/// A job that overlaps a loss of events stays listed (the `events_lost` finding names
/// it) unless this many jobs are held.
const HELD_LIMIT: usize = 20_000;

pub struct Pipeline {
    pub tracker: Tracker,
    users: UserNames,
    format: Format,
    /// Redact secrets (live, unless --capture-secrets); a replay shows the file as it is.
    redact: bool,
    printed: HashSet<usize>,
    pub decode_errors: u64,
    start_ns: u64,
    pub writer: Option<TraceWriter>,
    /// Print to stdout (jobs as they finish in text, the report at the end).
    print: bool,
    facts: Box<dyn HostFacts>,
    /// Per held job (by index), once diagnosed: its findings and crontab entry.
    /// Boxed: a verdict is about 200 bytes, and each growth of a table of thousands
    /// moved them all into fresh pages.
    verdicts: HashMap<usize, Box<Verdict>>,
    /// Reported jobs, oldest first, that a long trace lets go past a count: those
    /// without findings (`[0]`), and those with (`[1]`); see `LISTED`.
    reported: [VecDeque<usize>; 2],
    /// The jobs let go, counted per command.
    earlier: Earlier,
    /// Missed runs decided while events were fed, not yet shown (`tick` shows them).
    missed_unshown: Vec<Finding>,
    /// The stream time the schedules were last advanced to while feeding.
    advanced_ns: u64,
    /// The crontabs and what they called for.
    schedules: ScheduleCheck,
    /// The systemd managers' timers and services, and the runs of those services.
    managers: Managers,
    /// Daemons that went on in a child (they daemonized) since the live loop last
    /// asked: their files are read from the child (the parent may be gone already).
    new_daemons: Vec<u32>,
    /// anacrontabs and at jobs, and which of the at jobs ran.
    tables: Tables,
    mono_to_wall_ns: i64,
    /// `record --entry`: report only these entries' jobs and what concerns them.
    entry_filter: Option<Vec<EntryRef>>,
    /// `trigger`: the jobs of this root ran this entry.
    forced_entry: Option<(u32, EntryRef)>,
    /// What redaction replaced, per rule (counts only).
    pub redactions: secrets::Counts,
    /// Records the kernel dropped, as the counters were seen to grow.
    losses: Vec<LostEvents>,
    /// Keep the timeline of a finished job with no finding (--timelines); otherwise it
    /// is let go once the job is diagnosed and printed, so a long attach stays small.
    keep_timelines: bool,
    /// `record --follow`: JSON Lines as things happen; every job is let go once out.
    follow: Option<Follow>,
    /// Host findings already sent as lines (kind, message).
    followed: HashSet<(String, String)>,
}

impl Pipeline {
    pub fn new(
        users: UserNames,
        format: Format,
        redact: bool,
        start_ns: u64,
        facts: Box<dyn HostFacts>,
    ) -> Self {
        Pipeline {
            tracker: Tracker::default(),
            users,
            format,
            redact,
            printed: HashSet::default(),
            decode_errors: 0,
            start_ns,
            writer: None,
            print: true,
            facts,
            verdicts: HashMap::default(),
            reported: [VecDeque::new(), VecDeque::new()],
            earlier: Earlier::default(),
            missed_unshown: Vec::new(),
            advanced_ns: 0,
            schedules: ScheduleCheck::new(Vec::new(), start_ns, 0),
            managers: Managers::default(),
            new_daemons: Vec::new(),
            tables: Tables::default(),
            mono_to_wall_ns: 0,
            entry_filter: None,
            forced_entry: None,
            redactions: secrets::Counts::new(),
            losses: Vec::new(),
            keep_timelines: true,
            follow: None,
            followed: HashSet::default(),
        }
    }

    /// Print JSON Lines as things happen instead of a report at the end.
    pub fn follow(mut self, f: Follow) -> Self {
        self.follow = Some(f);
        self
    }

    fn follow_job(&mut self, idx: usize) {
        if self.follow.is_none() || !self.job_wanted(idx) || !self.printed.insert(idx) {
            return;
        }
        let Some(jr) = self.job_report(idx) else {
            return;
        };
        if let Some(f) = self.follow.as_mut() {
            f.line("job", &jr);
        }
        // Out is out: a day-long follow keeps no timeline and no pid list (the findings
        // stay: the exit code says whether there were any).
        self.tracker.husk(idx);
    }

    fn follow_findings(&mut self, found: &[Finding]) {
        let Some(f) = self.follow.as_mut() else {
            return;
        };
        for x in found {
            if self.followed.insert((x.kind.clone(), x.message.clone())) {
                f.line("finding", x);
            }
        }
    }

    /// Let go of the timelines of finished jobs without findings (the report gives
    /// their event counts).
    pub fn summarise_clean_jobs(mut self, yes: bool) -> Self {
        self.keep_timelines = !yes;
        self
    }

    fn is_clean(&self, idx: usize) -> bool {
        self.verdicts
            .get(&idx)
            .is_some_and(|v| v.findings.is_empty())
    }

    fn retire_if_clean(&mut self, idx: usize) {
        let done = self.tracker.jobs().get(idx).is_some_and(|j| j.finished());
        if !self.keep_timelines && self.is_clean(idx) && done {
            self.tracker.retire(idx);
        }
    }

    /// Job `idx` is reported (printed as it ended, or sent as a line): past a count of
    /// such jobs, the oldest are let go and counted per command, so a day-long trace
    /// holds a bounded number of jobs. `--timelines` keeps every job, except with
    /// `--follow`, whose lines are out already.
    fn reported(&mut self, idx: usize) {
        if self.keep_timelines && self.follow.is_none() {
            return;
        }
        // The schedules decided up to the stream's time (the same live and replayed):
        // a job is let go only once no fire left to decide can be its run.
        // At most once a second of the stream: each pass looks over the recent jobs.
        let now = self.tracker.counters.last_ts;
        if now >= self.advanced_ns.saturating_add(1_000_000_000) {
            self.advanced_ns = now;
            let missed = self.schedules.advance(&self.tracker, now);
            self.missed_unshown.extend(missed);
        }
        let with_findings = usize::from(!self.is_clean(idx));
        self.reported[with_findings].push_back(idx);
        self.let_go(0);
        self.let_go(1);
    }

    /// Let go of the oldest of `reported[q]` past its count.
    fn let_go(&mut self, q: usize) {
        while self.reported[q].len() > LISTED[q] {
            let Some(&idx) = self.reported[q].front() else {
                return;
            };
            match self.may_let_go(idx) {
                // Later ones cannot be either.
                LetGo::Later => return,
                LetGo::Now => {
                    self.tracker.retire(idx);
                    if let Some(job) = self.tracker.evict(idx) {
                        self.count_earlier(idx, &job);
                    }
                }
                LetGo::Never => {}
            }
            self.reported[q].pop_front();
        }
    }

    fn may_let_go(&self, idx: usize) -> LetGo {
        let Some(job) = self.tracker.jobs().get(idx) else {
            return LetGo::Never;
        };
        if !job.finished() || job.has_live_processes() {
            return LetGo::Never;
        }
        if !self.schedules.past(job.start_ns) {
            return LetGo::Later;
        }
        let end = job.end_ns.unwrap_or(u64::MAX);
        let lost_then = self
            .losses
            .iter()
            .rev()
            .take_while(|l| l.ts_ns >= job.start_ns)
            .any(|l| l.since_ns <= end);
        if lost_then && self.tracker.jobs().len() <= HELD_LIMIT {
            return LetGo::Never;
        }
        LetGo::Now
    }

    fn count_earlier(&mut self, idx: usize, job: &crate::model::job::Job) {
        let wanted = self.job_wanted(idx);
        let v = self.verdicts.remove(&idx);
        self.printed.remove(&idx);
        if !wanted {
            return;
        }
        let (findings, entry, unit, at) = v
            .map(|v| (v.findings, v.entry, v.unit, v.at_job))
            .unwrap_or_default();
        let jr = report::job_report(&self.tracker, job, &self.users, findings, entry, unit, at);
        self.earlier.add(&jr);
    }

    /// The kernel dropped records between two polls of its counters.
    pub fn lost(&mut self, l: LostEvents) {
        if let Some(w) = self.writer.as_mut() {
            w.lost(&l);
        }
        if self.follow.is_some() {
            let jobs = self.jobs_and_commands();
            let found = diagnosis::loss::events_lost(
                std::slice::from_ref(&l),
                &jobs,
                self.start_ns,
                |ns| self.schedules.wall_text(ns),
            );
            self.follow_findings(&found);
        }
        self.losses.push(l);
    }

    /// Redactions made outside the pipeline (processes found in `/proc`, crontabs).
    pub fn note_redactions(&mut self, counts: Option<&secrets::Counts>) {
        for (k, v) in counts.into_iter().flatten() {
            *self.redactions.entry(k).or_default() += v;
        }
    }

    /// The jobs forked by root `pid` run `entry` (`tracer trigger` started them).
    pub fn force_entry(&mut self, pid: u32, entry: EntryRef) {
        self.forced_entry = Some((pid, entry));
    }

    /// Report only the jobs of these entries, and host findings about their files and
    /// the daemons (`record --entry`).
    pub fn only_entries(&mut self, entries: Vec<EntryRef>) {
        self.entry_filter = Some(entries);
    }

    fn job_wanted(&self, idx: usize) -> bool {
        if self.verdicts.get(&idx).is_some_and(|v| v.manager_work) {
            return false;
        }
        match &self.entry_filter {
            None => true,
            Some(f) => self
                .verdicts
                .get(&idx)
                .and_then(|v| v.entry.as_ref())
                .is_some_and(|e| f.contains(e)),
        }
    }

    /// The crontabs as the daemons saw them at start; `mono_to_wall_ns` maps event
    /// times to the wall clock their schedules are written in.
    pub fn with_schedules(mut self, views: Vec<ScheduleView>, mono_to_wall_ns: i64) -> Self {
        self.schedules = ScheduleCheck::new(views, self.start_ns, mono_to_wall_ns);
        self.mono_to_wall_ns = mono_to_wall_ns;
        self
    }

    /// The systemd managers' units, anacrontabs and at jobs as read at start.
    pub fn with_scheduler_files(mut self, views: Vec<ManagerView>, tables: Vec<TableFile>) -> Self {
        for v in views {
            self.managers.add(v, self.start_ns);
        }
        for f in tables {
            self.tables.add(f, self.start_ns);
        }
        self
    }

    /// Daemons that went on in a child since the last call (see `new_daemons`).
    pub fn take_new_daemons(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.new_daemons)
    }

    /// The files of a systemd manager, anacron or atd that started during the trace.
    pub fn scheduler_files(&mut self, late: LateSchedulerFiles) {
        if late.managers.is_empty() && late.tables.is_empty() {
            return;
        }
        if let Some(w) = self.writer.as_mut() {
            w.scheduler_files(&late);
        }
        for v in late.managers {
            self.managers.add(v, late.ts_ns);
        }
        for f in late.tables {
            self.tables.add(f, late.ts_ns);
        }
    }

    pub fn schedules(&self) -> &ScheduleCheck {
        &self.schedules
    }

    /// The crontabs of a daemon that started (or whose files changed) during the
    /// trace, read at `ts_ns`.
    pub fn schedule_view(&mut self, v: ScheduleView, ts_ns: u64) {
        if let Some(w) = self.writer.as_mut() {
            w.schedules(&v, ts_ns);
        }
        self.schedules.add_view(v, ts_ns);
    }

    /// Time passes (live): runs due by now that no daemon started are printed.
    pub fn tick(&mut self, now_ns: u64) {
        let mut missed = std::mem::take(&mut self.missed_unshown);
        missed.extend(self.schedules.advance(&self.tracker, now_ns));
        if self.follow.is_some() {
            self.follow_findings(&missed);
            return;
        }
        if self.print && self.format == Format::Text && !missed.is_empty() {
            let mut out = anstream::stdout().lock();
            for f in &missed {
                let _ = report::write_host_finding_text(&mut out, f);
            }
            let _ = out.flush();
        }
    }

    /// No output while feeding (a report is built at the end).
    pub fn quiet(mut self) -> Self {
        self.print = false;
        self
    }

    /// A record as the kernel wrote it. Returns the pid of a process that just became
    /// a root by exec'ing (the live loop then adds what `/proc` knows of it).
    pub fn kernel_record(&mut self, raw: &[u8]) -> Option<u32> {
        // Stale bytes past the used lengths matter only in a file: decoding ignores
        // them, so the copy that clears them is made only when writing.
        let canonical = self
            .writer
            .is_some()
            .then(|| crate::model::decode::canonical(raw));
        let raw = canonical.as_deref().unwrap_or(raw);
        let redacted = if self.redact {
            secrets::redact_record(raw, &mut self.redactions)
        } else {
            None
        };
        let raw = redacted.as_deref().unwrap_or(raw);
        if let Some(w) = self.writer.as_mut() {
            w.kernel_record(raw);
        }
        match decode(raw) {
            Ok(ev) => {
                let new_root = matches!(
                    ev.body,
                    crate::model::event::Body::Exec { new_root: true, .. }
                )
                .then_some(ev.pid);
                self.feed(ev);
                new_root
            }
            Err(e) => {
                self.decode_errors += 1;
                if self.decode_errors <= 5 {
                    eprintln!("tracer: skipped an undecodable record: {e}");
                }
                None
            }
        }
    }

    /// A process found in `/proc`. Live callers have redacted its cmdline already.
    pub fn synthetic(&mut self, s: &Synthetic) {
        if let Some(w) = self.writer.as_mut() {
            w.synthetic(s);
        }
        self.feed(decode_snapshot(&s.process, s.root, s.ts_ns));
    }

    fn feed(&mut self, ev: Event) {
        let finished = self.tracker.push(ev);
        for (parent, child) in self.tracker.take_daemonized() {
            self.schedules.continued(parent, child);
            self.managers.continued(parent, child);
            self.tables.continued(parent, child);
            self.new_daemons.push(child);
        }
        for idx in finished {
            self.diagnose(idx, false);
            if self.follow.is_some() {
                self.follow_job(idx);
            } else if self.print && self.format == Format::Text {
                self.print_job(idx);
            }
            self.retire_if_clean(idx);
            self.reported(idx);
        }
    }

    /// Run the rules over job `idx` once; answers the host gave are kept in the trace.
    fn diagnose(&mut self, idx: usize, ended: bool) {
        if self.verdicts.contains_key(&idx) {
            return;
        }
        let Some(job) = self.tracker.jobs().get(idx) else {
            return;
        };
        let manager_work =
            job.unit.is_none() && crate::schedules::systemd::is_manager(&job.scheduler);
        let at_job = self.tables.at_job(job);
        let script = at_job.as_ref().and_then(|a| {
            Some(diagnosis::ShellScript {
                commands: a.commands.clone()?,
                path: a.path.clone(),
            })
        });
        let mut findings = if manager_work {
            Vec::new()
        } else {
            diagnosis::diagnose_script(&self.tracker, job, self.facts.as_mut(), ended, script)
        };
        let service = self.managers.service_of(&self.tracker, job);
        Managers::service_findings(
            &self.tracker,
            job,
            service.as_ref().map(|s| &s.0),
            self.facts.as_mut(),
            &mut findings,
        );
        self.managers.ran(job);
        self.tables.ran(job);
        let unit = Managers::unit_of(job, service);
        let entry = match &self.forced_entry {
            Some((pid, e)) if *pid == job.scheduler_pid => Some(e.clone()),
            _ if job.unit.is_some() || job.at_file.is_some() => None,
            _ => self
                .tables
                .anacron_entry(&self.tracker, job)
                .or_else(|| self.schedules.entry_of(&self.tracker, job)),
        };
        self.verdicts.insert(
            idx,
            Box::new(Verdict {
                findings,
                entry,
                unit: unit.map(Box::new),
                at_job: at_job.map(Box::new),
                manager_work,
            }),
        );
        let new = self.facts.take_new();
        if let Some(w) = self.writer.as_mut() {
            for fact in &new {
                w.fact(fact);
            }
        }
    }

    /// Job `idx` as a report shows it (text as it ends, a `--follow` line, the report).
    fn job_report(&self, idx: usize) -> Option<report::JobReport> {
        let job = self.tracker.jobs().get(idx)?;
        let v = self.verdicts.get(&idx);
        Some(report::job_report(
            &self.tracker,
            job,
            &self.users,
            v.map(|v| v.findings.clone()).unwrap_or_default(),
            // A daemonized anacron's table may be read only after its first jobs ended.
            v.and_then(|v| v.entry.clone())
                .or_else(|| self.tables.anacron_entry(&self.tracker, job)),
            v.and_then(|v| v.unit.clone()),
            v.and_then(|v| v.at_job.clone()),
        ))
    }

    /// Every job with its command, for the loss findings.
    fn jobs_and_commands(&self) -> Vec<(&crate::model::job::Job, String)> {
        self.tracker
            .jobs()
            .iter()
            .map(|j| (j, self.tracker.summary(j).command.clone()))
            .collect()
    }

    fn print_job(&mut self, idx: usize) {
        if !self.job_wanted(idx) || !self.printed.insert(idx) {
            return;
        }
        let Some(jr) = self.job_report(idx) else {
            return;
        };
        let mut out = anstream::stdout().lock();
        let _ = report::write_job_text(&mut out, &jr, self.start_ns);
        let _ = out.flush();
    }

    /// When the trace ended (a quiet end leaves no event to say so).
    pub fn set_end(&mut self, ts_ns: u64) {
        let c = &mut self.tracker.counters;
        c.last_ts = c.last_ts.max(ts_ns);
    }

    /// End of the stream: build the report; print it unless `quiet`.
    pub fn finish(&mut self, stats: Stats) -> Report {
        self.tracker.close();
        let held = self.tracker.jobs().indices();
        for &idx in &held {
            self.diagnose(idx, true);
            if self.format == Format::Json {
                self.retire_if_clean(idx);
            }
        }
        let end_ns = self.tracker.counters.last_ts.max(self.start_ns);
        let mut host = self.schedules.finish(&self.tracker, end_ns);
        host.extend(self.tables.finish(
            &self.tracker,
            end_ns,
            self.mono_to_wall_ns,
            &jiff::tz::TimeZone::UTC,
        ));
        host.extend(self.managers.missed_fires(
            &self.tracker,
            self.start_ns,
            end_ns,
            self.mono_to_wall_ns,
        ));
        if let Some(f) = &self.entry_filter {
            host.retain(|h| self.schedules.concerns(h, f));
        }
        // Whatever the filter: a loss may concern any job, the followed ones too.
        let mut losses = self.losses.clone();
        losses.extend(diagnosis::loss::unpolled(
            &self.losses,
            &stats.lost_by_kind,
            self.start_ns,
            end_ns,
        ));
        let jobs = self.jobs_and_commands();
        host.extend(diagnosis::loss::events_lost(
            &losses,
            &jobs,
            self.start_ns,
            |ns| self.schedules.wall_text(ns),
        ));
        let listed: Vec<report::JobReport> = held
            .iter()
            .filter(|&&i| self.job_wanted(i))
            .filter_map(|&i| self.job_report(i))
            .collect();
        let rep = report::build(
            listed,
            &self.earlier,
            host,
            Stats {
                events: self.tracker.counters.events,
                root_events: self.tracker.counters.root_events,
                unattributed_events: self.tracker.counters.unattributed_events,
                decode_errors: self.decode_errors,
                redactions: if stats.redactions.is_empty() {
                    self.redactions
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect()
                } else {
                    stats.redactions.clone()
                },
                ..stats
            },
        );
        if self.follow.is_some() {
            // What is still running, what the end decided, then the counts.
            for &idx in &held {
                self.follow_job(idx);
            }
            self.follow_findings(&rep.findings);
            if let Some(f) = self.follow.as_mut() {
                f.line("summary", &rep.stats);
            }
            return rep;
        }
        if !self.print {
            return rep;
        }
        match self.format {
            Format::Json => {
                let _ = report::print_json(&rep);
            }
            Format::Text => {
                let rest: Vec<usize> = held
                    .iter()
                    .copied()
                    .filter(|i| !self.printed.contains(i))
                    .collect();
                for idx in rest {
                    self.print_job(idx);
                }
                let mut out = anstream::stdout().lock();
                let _ = report::write_summary_text(&mut out, &rep);
            }
        }
        rep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::RecordedFacts;
    use crate::testutil::{exec_events, exit, fork, snapshot_root};

    fn pipeline(summarise: bool) -> Pipeline {
        Pipeline::new(
            UserNames::from_map(Default::default()),
            Format::Json,
            false,
            0,
            Box::new(RecordedFacts::default()),
        )
        .quiet()
        .summarise_clean_jobs(summarise)
    }

    /// `n` jobs of root 100, one every 0.1 s; every `fail_every`-th exits 1. Returns the
    /// most jobs the tracker held at once.
    fn run_jobs(p: &mut Pipeline, n: u32, fail_every: u32) -> usize {
        p.feed(snapshot_root(100));
        let mut most = 0;
        for i in 0..n {
            let (pid, ts) = (1000 + i, u64::from(i) * 100_000_000);
            let code = if (i + 1) % fail_every == 0 { 1 } else { 0 };
            let cmd = if code == 0 { "/bin/true" } else { "/bin/false" };
            p.feed(fork(100, ts, pid));
            for e in exec_events(pid, ts + 1_000, &[cmd], &["PATH=/usr/bin:/bin"], 0) {
                p.feed(e);
            }
            p.feed(exit(pid, ts + 2_000, code));
            most = most.max(p.tracker.jobs().len());
        }
        most
    }

    #[test]
    fn a_long_trace_lists_the_latest_jobs_and_counts_the_rest_per_command() {
        let mut p = pipeline(true);
        let most = run_jobs(&mut p, 6000, 50);
        // The latest jobs listed, a schedule's lag (14 s, 140 jobs here) on top.
        let bound = LISTED_CLEAN + LISTED_WITH_FINDINGS + 200;
        assert!(most <= bound, "held {most} jobs at once");
        let rep = p.finish(Stats::default());
        assert_eq!(rep.stats.jobs, 6000);
        assert!(rep.jobs.len() <= bound, "{}", rep.jobs.len());
        // Every failing run (120) is still listed: under their own limit.
        let failing = rep.jobs.iter().filter(|j| !j.findings.is_empty()).count();
        assert_eq!(failing, 120);
        assert!(rep.jobs.iter().any(|j| j.id == 6000));
        assert!(!rep.jobs.iter().any(|j| j.id == 1));
        let counted: u64 = rep.earlier_jobs.iter().map(|e| e.runs).sum();
        assert_eq!(counted as usize + rep.jobs.len(), 6000);
        let e = &rep.earlier_jobs[0];
        assert_eq!(
            (e.command.as_str(), e.failed, e.first_job),
            ("/bin/true", 0, 1)
        );
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert_eq!(e.events, e.runs * 4, "fork, exec attempt, exec, exit");
        // Counted and listed are the earliest and the latest.
        let clean = rep.jobs.iter().filter(|j| j.findings.is_empty());
        assert!(clean.clone().all(|j| j.id > e.last_job));
        assert_eq!(clean.count() as u64 + e.runs, 6000 - 120);
    }

    #[test]
    fn failing_jobs_past_their_limit_are_counted_with_their_findings() {
        let mut p = pipeline(true);
        run_jobs(&mut p, 6000, 2);
        let rep = p.finish(Stats::default());
        assert!(rep.has_findings());
        let false_runs = rep
            .earlier_jobs
            .iter()
            .find(|e| e.command == "/bin/false")
            .expect("failed runs counted");
        assert_eq!(false_runs.failed, false_runs.runs);
        assert_eq!(
            false_runs.findings.get("nonzero_exit"),
            Some(&false_runs.runs)
        );
        let listed = rep.jobs.iter().filter(|j| !j.findings.is_empty()).count();
        assert!(listed <= LISTED_WITH_FINDINGS + 200, "{listed}");
        assert_eq!(listed as u64 + false_runs.runs, 3000);
    }

    #[test]
    fn timelines_keep_every_job() {
        let mut p = pipeline(false);
        assert_eq!(run_jobs(&mut p, 3000, 50), 3000);
        let rep = p.finish(Stats::default());
        assert_eq!(rep.jobs.len(), 3000);
        assert!(rep.earlier_jobs.is_empty());
    }

    #[test]
    fn a_job_that_overlaps_a_loss_stays_listed() {
        let mut p = pipeline(true);
        // Records lost between 1 us and 0.5 s.
        p.lost(LostEvents {
            since_ns: 1_000,
            ts_ns: 500_000_000,
            by_kind: [("fork".to_string(), 3)].into(),
        });
        run_jobs(&mut p, 3000, 1_000_000);
        let rep = p.finish(Stats::default());
        // Jobs 1 to 6 started by 0.5 s; the seventh is after the loss.
        let ids: Vec<u64> = rep.jobs.iter().map(|j| j.id).take(7).collect();
        assert_eq!(&ids[..6], &[1, 2, 3, 4, 5, 6]);
        assert!(ids[6] > 100, "{ids:?}");
    }

    #[test]
    fn a_failure_is_compared_with_the_latest_good_run_after_it_was_let_go() {
        let mut p = pipeline(true);
        p.feed(snapshot_root(100));
        let run = |p: &mut Pipeline, i: u32, path: &str, code: i32| {
            let (pid, ts) = (1000 + i, u64::from(i) * 100_000_000);
            p.feed(fork(100, ts, pid));
            for e in exec_events(pid, ts + 1_000, &["/opt/job"], &[path], 0) {
                p.feed(e);
            }
            p.feed(exit(pid, ts + 2_000, code));
        };
        for i in 0..3000 {
            run(&mut p, i, "PATH=/usr/local/bin:/usr/bin:/bin", 0);
        }
        assert!(
            p.tracker.jobs().get(2999).is_some(),
            "the latest run is held"
        );
        assert!(p.tracker.jobs().get(0).is_none(), "the first was let go");
        run(&mut p, 3000, "PATH=/usr/bin:/bin", 1);
        let rep = p.finish(Stats::default());
        let last = rep.jobs.iter().find(|j| j.id == 3001).expect("listed");
        let f = last
            .findings
            .iter()
            .find(|f| f.kind == "env_mismatch")
            .unwrap_or_else(|| panic!("{:#?}", last.findings));
        assert!(
            f.message
                .contains("PATH was /usr/local/bin:/usr/bin:/bin in job 3000"),
            "{}",
            f.message
        );
    }
}
