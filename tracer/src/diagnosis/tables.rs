//! anacron and at jobs: the anacrontab line or the queued at job a job ran, and at jobs
//! that were due in the trace and never ran.
use jiff::tz::TimeZone;

use super::{
    schedule::{rfc3339, EntryRef},
    Finding, Kind,
};
use crate::{
    model::job::{Job, Tracker},
    schedules::tables::{at_job, parse_anacrontab, AnacronEntry, AtJob, TableFile},
};

/// atd starts a due job within seconds (it sleeps until the minute, or is woken).
const AT_GRACE_NS: i64 = 90_000_000_000;

struct Held {
    file: TableFile,
    entries: Vec<AnacronEntry>,
    from_ns: u64,
}

/// The anacrontabs and at jobs read, and the at jobs that ran.
#[derive(Default)]
pub struct Tables {
    held: Vec<Held>,
    /// Spool file names of the at jobs that ran.
    at_ran: Vec<String>,
    /// Problems of the anacrontabs read, reported once.
    problems: Vec<String>,
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

impl Tables {
    pub fn add(&mut self, file: TableFile, from_ns: u64) {
        // The same file read again (a daemon's child after its parent): its readers.
        if let Some(h) = self
            .held
            .iter_mut()
            .find(|h| h.file.path == file.path && h.file.text == file.text)
        {
            for p in file.pids {
                if !h.file.pids.contains(&p) {
                    h.file.pids.push(p);
                }
            }
            return;
        }
        let entries = if file.scheduler == "anacron" {
            let (e, p) = parse_anacrontab(&file.path, &file.text);
            self.problems.extend(p);
            e
        } else {
            Vec::new()
        };
        self.held.push(Held {
            file,
            entries,
            from_ns,
        });
    }

    /// The anacrontab line an anacron job ran: its command, in the table of the
    /// anacron that forked it (or any read, for one seen only in the snapshot).
    pub fn anacron_entry(&self, t: &Tracker, job: &Job) -> Option<EntryRef> {
        if job.scheduler != "anacron" {
            return None;
        }
        let command = t.summary(job).command.clone();
        let mut tables: Vec<&Held> = self
            .held
            .iter()
            .filter(|h| h.file.scheduler == "anacron")
            .collect();
        tables.sort_by_key(|h| !h.file.pids.contains(&job.scheduler_pid));
        tables
            .iter()
            .flat_map(|h| &h.entries)
            .find(|e| e.command.trim() == command.trim())
            .map(|e| EntryRef {
                file: e.file.clone(),
                line: e.line,
                schedule: format!(
                    "every {} day(s), {} min delay",
                    e.period.trim_start_matches('@'),
                    e.delay
                ),
                user: "root".into(),
                command: e.command.clone(),
                job_id: Some(e.ident.clone()),
            })
    }

    /// The at job a job of atd ran, with what its spool file said when it was read.
    pub fn at_job(&self, job: &Job) -> Option<AtJob> {
        let path = job.at_file.as_deref()?;
        let text = self
            .held
            .iter()
            .rev()
            .find(|h| h.file.scheduler == "at" && base(&h.file.path) == base(path))
            .map(|h| h.file.text.as_str());
        at_job(path, text)
    }

    pub fn continued(&mut self, parent: u32, child: u32) {
        for h in self
            .held
            .iter_mut()
            .filter(|h| h.file.pids.contains(&parent))
        {
            h.file.pids.push(child);
        }
    }

    pub fn ran(&mut self, job: &Job) {
        if let Some(p) = &job.at_file {
            self.at_ran.push(base(p).to_string());
        }
    }

    /// At jobs queued when read, due in the window, that never ran; and lines of the
    /// anacrontabs anacron refuses.
    pub fn finish(
        &self,
        t: &Tracker,
        end_ns: u64,
        mono_to_wall_ns: i64,
        tz: &TimeZone,
    ) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .problems
            .iter()
            .map(|p| Finding {
                kind: Kind::CrontabSyntax.as_str().into(),
                message: format!("anacron skips this line: {p}"),
                file: p.split(':').next().map(String::from),
                ..Default::default()
            })
            .collect();
        let mut seen: Vec<&str> = Vec::new();
        for h in self.held.iter().filter(|h| h.file.scheduler == "at") {
            let name = base(&h.file.path);
            if seen.contains(&name) || self.at_ran.iter().any(|r| r == name) {
                continue;
            }
            seen.push(name);
            let Some(job) = at_job(&h.file.path, Some(&h.file.text)) else {
                continue;
            };
            let due_mono = (job.due.as_nanosecond() - mono_to_wall_ns as i128) as i64;
            if due_mono < h.from_ns as i64 || due_mono + AT_GRACE_NS > end_ns as i64 {
                continue;
            }
            let alive = t
                .schedulers
                .lives
                .iter()
                .any(|l| l.comm == "atd" && l.alive_at(due_mono.max(0) as u64));
            let batch = job.queue == 'b' || job.queue.is_ascii_uppercase();
            let why = match (alive, batch) {
                (false, _) => "no atd was running then (start it: `systemctl start atd` or `service atd start`)".to_string(),
                (true, true) => format!("atd was running; queue {} is a batch queue, run only while the load average is below atd's -l limit (0.8 by default)", job.queue),
                (true, false) => "atd was running and did not start it: was it removed (atrm), is the file not executable, or is atd stuck?".to_string(),
            };
            out.push(Finding {
                kind: Kind::MissedSchedule.as_str().into(),
                message: format!(
                    "at job {} (queue {}, {}) was due at {} and did not run ({}): {why}",
                    job.number,
                    job.queue,
                    h.file.path,
                    rfc3339(&job.due.to_zoned_datetime(tz.clone())),
                    job.commands
                        .as_deref()
                        .map(first_line)
                        .unwrap_or("commands not read"),
                ),
                file: Some(h.file.path.clone()),
                times: vec![rfc3339(&job.due.to_zoned_datetime(tz.clone()))],
                ..Default::default()
            });
        }
        out
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// An at job's commands on one line, for the report's `command`.
pub fn at_command(job: &AtJob) -> Option<String> {
    let c = job.commands.as_deref()?;
    Some(
        c.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ev, fork, open, snapshot_root};

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_queued_at_job_due_in_the_trace_that_never_ran_is_missed_and_one_that_ran_is_not() {
        // Due at minute 0x1c8bcf2 and 0x1c8bcf3; the trace covers both and more.
        let due = 0x1c8bcf2u64 * 60;
        let mono_to_wall = (due as i64 - 100) * SEC as i64;
        let script = |cmd: &str| {
            format!("#!/bin/sh\n# atrun uid=0 gid=0\ncd /root || {{\n\t echo x >&2\n\t exit 1\n}}\n{cmd}\n")
        };
        let mut tables = Tables::default();
        for (name, cmd) in [
            ("a0000201c8bcf2", "backup --now"),
            ("a0000301c8bcf3", "report"),
        ] {
            tables.add(
                TableFile {
                    scheduler: "at".into(),
                    pids: vec![],
                    path: format!("/var/spool/cron/atjobs/{name}"),
                    text: script(cmd),
                },
                0,
            );
        }
        let mut t = Tracker::default();
        let mut root = snapshot_root(9);
        root.comm = "atd".into();
        t.push(root);
        t.push(fork(9, 160 * SEC, 90));
        t.push(open(90, 160 * SEC + 1, "a0000301c8bcf3", 5));
        let job = t.jobs().iter().next().unwrap();
        assert_eq!(
            job.at_file.as_deref(),
            Some("/var/spool/cron/atjobs/a0000301c8bcf3"),
            "relative to atd's spool"
        );
        let a = tables.at_job(job).unwrap();
        assert_eq!((a.number, at_command(&a).as_deref()), (3, Some("report")));
        tables.ran(job);
        let f = tables.finish(&t, 400 * SEC, mono_to_wall, &TimeZone::UTC);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message.starts_with("at job 2 (queue a,"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("backup --now") && f[0].message.contains("atd was running"),
            "{}",
            f[0].message
        );
        // Without an atd alive then, that is the cause.
        t.push(ev(
            9,
            50 * SEC,
            crate::model::event::Body::Exit { status: None },
        ));
        let f = tables.finish(&t, 400 * SEC, mono_to_wall, &TimeZone::UTC);
        assert!(
            f[0].message.contains("no atd was running"),
            "{}",
            f[0].message
        );
        // Not yet decided: the window ends within the grace after it was due.
        assert!(tables
            .finish(&t, 150 * SEC, mono_to_wall, &TimeZone::UTC)
            .is_empty());
    }
}
