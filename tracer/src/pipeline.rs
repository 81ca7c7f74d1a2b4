//! One pipeline for both sources: live kernel records and a replayed trace file go
//! through the same redaction, decoding, job model and printing, so a replay reports
//! exactly what the live run did.
use std::{collections::HashSet, io::Write};

use crate::{
    diagnosis,
    diagnosis::{
        schedule::{EntryRef, ScheduleCheck},
        Finding,
    },
    facts::HostFacts,
    model::decode::{decode, decode_snapshot},
    model::event::Event,
    model::job::Tracker,
    model::users::UserNames,
    output::{
        follow::Follow,
        report::{self, Report, Stats},
    },
    schedules::ScheduleView,
    secrets,
    tracefile::{LostEvents, Synthetic, TraceWriter},
    Format,
};

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
    /// Per job (by index): its findings, once diagnosed.
    findings: Vec<Option<Vec<Finding>>>,
    /// Per job (by index): the crontab entry it ran, once diagnosed.
    entries: Vec<Option<EntryRef>>,
    /// The crontabs and what they called for.
    schedules: ScheduleCheck,
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
            printed: HashSet::new(),
            decode_errors: 0,
            start_ns,
            writer: None,
            print: true,
            facts,
            findings: Vec::new(),
            entries: Vec::new(),
            schedules: ScheduleCheck::new(Vec::new(), start_ns, 0),
            entry_filter: None,
            forced_entry: None,
            redactions: secrets::Counts::new(),
            losses: Vec::new(),
            keep_timelines: true,
            follow: None,
            followed: HashSet::new(),
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
        let jr = self.job_report(idx);
        if let Some(f) = self.follow.as_mut() {
            f.line("job", &jr);
        }
        // Out is out: a day-long follow keeps no timeline, no pid list, no entry (the
        // findings stay: the exit code says whether there were any).
        self.tracker.husk(idx);
        if let Some(e) = self.entries.get_mut(idx) {
            *e = None;
        }
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

    fn retire_if_clean(&mut self, idx: usize) {
        let clean = self
            .findings
            .get(idx)
            .is_some_and(|f| f.as_ref().is_some_and(Vec::is_empty));
        let done = self.tracker.jobs().get(idx).is_some_and(|j| j.finished());
        if !self.keep_timelines && clean && done {
            self.tracker.retire(idx);
        }
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
        match &self.entry_filter {
            None => true,
            Some(f) => self
                .entries
                .get(idx)
                .cloned()
                .flatten()
                .is_some_and(|e| f.contains(&e)),
        }
    }

    /// The crontabs as the daemons saw them at start; `mono_to_wall_ns` maps event
    /// times to the wall clock their schedules are written in.
    pub fn with_schedules(mut self, views: Vec<ScheduleView>, mono_to_wall_ns: i64) -> Self {
        self.schedules = ScheduleCheck::new(views, self.start_ns, mono_to_wall_ns);
        self
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
        let missed = self.schedules.advance(&self.tracker, now_ns);
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
        for idx in finished {
            self.diagnose(idx, false);
            if self.follow.is_some() {
                self.follow_job(idx);
            } else if self.print && self.format == Format::Text {
                self.print_job(idx);
            }
            self.retire_if_clean(idx);
        }
    }

    /// Run the rules over job `idx` once; answers the host gave are kept in the trace.
    fn diagnose(&mut self, idx: usize, ended: bool) {
        if self.findings.len() <= idx {
            self.findings.resize(idx + 1, None);
        }
        if self.findings[idx].is_some() {
            return;
        }
        let job = &self.tracker.jobs()[idx];
        let f = diagnosis::diagnose(&self.tracker, job, self.facts.as_mut(), ended);
        self.findings[idx] = Some(f);
        if self.entries.len() <= idx {
            self.entries.resize(idx + 1, None);
        }
        self.entries[idx] = match &self.forced_entry {
            Some((pid, e)) if *pid == job.scheduler_pid => Some(e.clone()),
            _ => self.schedules.entry_of(&self.tracker, job),
        };
        let new = self.facts.take_new();
        if let Some(w) = self.writer.as_mut() {
            for fact in &new {
                w.fact(fact);
            }
        }
    }

    fn findings_of(&self, idx: usize) -> Vec<Finding> {
        self.findings
            .get(idx)
            .cloned()
            .flatten()
            .unwrap_or_default()
    }

    /// Job `idx` as a report shows it (text as it ends, a `--follow` line).
    fn job_report(&self, idx: usize) -> report::JobReport {
        report::job_report(
            &self.tracker,
            &self.tracker.jobs()[idx],
            &self.users,
            self.findings_of(idx),
            self.entries.get(idx).cloned().flatten(),
        )
    }

    /// Every job with its command, for the loss findings.
    fn jobs_and_commands(&self) -> Vec<(&crate::model::job::Job, String)> {
        self.tracker
            .jobs()
            .iter()
            .map(|j| (j, self.tracker.summary(j).command))
            .collect()
    }

    fn print_job(&mut self, idx: usize) {
        if !self.job_wanted(idx) || !self.printed.insert(idx) {
            return;
        }
        let jr = self.job_report(idx);
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
        for idx in 0..self.tracker.jobs().len() {
            self.diagnose(idx, true);
            if self.format == Format::Json {
                self.retire_if_clean(idx);
            }
        }
        let findings: Vec<Vec<Finding>> = (0..self.tracker.jobs().len())
            .map(|i| self.findings_of(i))
            .collect();
        let end_ns = self.tracker.counters.last_ts.max(self.start_ns);
        let mut host = self.schedules.finish(&self.tracker, end_ns);
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
        let mut rep = report::build(
            &self.tracker,
            &self.users,
            &findings,
            &self.entries,
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
        if self.entry_filter.is_some() {
            let wanted: Vec<u64> = (0..self.tracker.jobs().len())
                .filter(|&i| self.job_wanted(i))
                .map(|i| self.tracker.jobs()[i].id)
                .collect();
            rep.jobs.retain(|j| wanted.contains(&j.id));
            rep.stats.jobs = rep.jobs.len();
        }
        if self.follow.is_some() {
            // What is still running, what the end decided, then the counts.
            for idx in 0..self.tracker.jobs().len() {
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
                let mut out = std::io::stdout().lock();
                let _ = report::write_json(&mut out, &rep);
            }
            Format::Text => {
                let rest: Vec<usize> = (0..self.tracker.jobs().len())
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
