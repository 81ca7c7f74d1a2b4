//! Reports: the JSON document of DESIGN.md and the terminal text, both built from the
//! same job model.
use std::{collections::BTreeMap, io::Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::{
    diagnosis::{noise::is_routine, schedule::EntryRef, systemd::UnitRef, Finding},
    model::event::{Body, Event, ExitStatus},
    model::job::{Job, Tracker},
    model::users::UserNames,
    schedules::tables::AtJob,
};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub struct JobReport {
    pub id: u64,
    pub scheduler: String,
    pub scheduler_pid: u32,
    pub user: String,
    pub uid: u32,
    pub command: String,
    /// The crontab line it ran (file, line, schedule, user, command), when known.
    pub crontab_entry: Option<EntryRef>,
    /// The systemd service it ran as, with its timer and unit files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Box<UnitRef>>,
    /// The at job it ran: spool file, queue, number, due time, commands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_job: Option<Box<AtJob>>,
    /// `finished`, or `running` when the trace ended first.
    pub state: &'static str,
    pub started_before_trace: bool,
    pub leader_pid: u32,
    pub pids: Vec<u32>,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    pub exit: Option<ExitStatus>,
    /// Processes the job left running when it ended (`nohup x &`, a delivery).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_running: Vec<u32>,
    pub findings: Vec<Finding>,
    /// Every event of the job, kept or not.
    pub events: u64,
    /// Events a long job's timeline cap let go, per kind (see `TIMELINE_SOFT_CAP`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub timeline_capped: BTreeMap<String, u64>,
    /// Left out (empty) for a job without findings unless --timelines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Event>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub events: u64,
    pub lost_events: u64,
    /// Lost records per kind (`fork`, `exec_attempt`, ..., `tracked_map_full`).
    pub lost_by_kind: BTreeMap<String, u64>,
    pub jobs: usize,
    pub root_events: u64,
    pub unattributed_events: u64,
    pub decode_errors: u64,
    pub duration_ns: u64,
    /// Secrets replaced before anything was shown or written, per rule (counts only;
    /// empty with `--capture-secrets`).
    pub redactions: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub jobs: Vec<JobReport>,
    /// Jobs of a long trace that were reported and let go, counted per command
    /// instead of listed (the latest ones are in `jobs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier_jobs: Vec<EarlierRuns>,
    pub findings: Vec<Finding>,
    pub stats: Stats,
}

impl Report {
    pub fn has_findings(&self) -> bool {
        !self.findings.is_empty()
            || self.jobs.iter().any(|j| !j.findings.is_empty())
            || self.earlier_jobs.iter().any(|e| !e.findings.is_empty())
    }
}

/// The runs of one command that a long trace let go, summed.
#[derive(Clone, Debug, Serialize)]
pub struct EarlierRuns {
    pub scheduler: String,
    pub user: String,
    pub uid: u32,
    pub command: String,
    /// The crontab line of the first of them, when known.
    pub crontab_entry: Option<EntryRef>,
    pub runs: u64,
    /// Runs that did not exit 0 (killed, nonzero, unknown).
    pub failed: u64,
    /// Findings of those runs, per kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<String, u64>,
    pub first_job: u64,
    pub last_job: u64,
    pub first_start_ns: u64,
    pub last_start_ns: u64,
    pub events: u64,
}

/// Commands counted one by one in `EarlierRuns`; the runs of any other command are
/// summed into one more line (a command with a changing argument must not grow it).
const EARLIER_COMMANDS: usize = 1000;
const OTHER_COMMANDS: &str = "(other commands)";

/// Jobs let go, summed per (scheduler, command, user).
#[derive(Default)]
pub struct Earlier {
    runs: BTreeMap<(String, String, u32), EarlierRuns>,
}

impl Earlier {
    /// Count `job`, reported as `jr` (built the way the report would list it).
    pub fn add(&mut self, jr: &JobReport) {
        let key = (jr.scheduler.clone(), jr.command.clone(), jr.uid);
        let other = self.runs.len() >= EARLIER_COMMANDS && !self.runs.contains_key(&key);
        let key = if other {
            (String::new(), OTHER_COMMANDS.into(), u32::MAX)
        } else {
            key
        };
        let e = self.runs.entry(key).or_insert_with(|| {
            let (scheduler, user, uid, command, crontab_entry) = if other {
                (
                    String::new(),
                    String::new(),
                    u32::MAX,
                    OTHER_COMMANDS.into(),
                    None,
                )
            } else {
                (
                    jr.scheduler.clone(),
                    jr.user.clone(),
                    jr.uid,
                    jr.command.clone(),
                    jr.crontab_entry.clone(),
                )
            };
            EarlierRuns {
                scheduler,
                user,
                uid,
                command,
                crontab_entry,
                runs: 0,
                failed: 0,
                findings: BTreeMap::new(),
                first_job: jr.id,
                last_job: jr.id,
                first_start_ns: jr.start_ns,
                last_start_ns: jr.start_ns,
                events: 0,
            }
        });
        e.runs += 1;
        if !jr.exit.is_some_and(|x| x.is_success()) {
            e.failed += 1;
        }
        for f in &jr.findings {
            *e.findings.entry(f.kind.clone()).or_default() += 1;
        }
        e.first_job = e.first_job.min(jr.id);
        e.last_job = e.last_job.max(jr.id);
        e.first_start_ns = e.first_start_ns.min(jr.start_ns);
        e.last_start_ns = e.last_start_ns.max(jr.start_ns);
        e.events += jr.events;
    }

    /// Jobs counted.
    pub fn jobs(&self) -> u64 {
        self.runs.values().map(|e| e.runs).sum()
    }

    /// The counts, the most run command first.
    pub fn lines(&self) -> Vec<EarlierRuns> {
        let mut v: Vec<EarlierRuns> = self.runs.values().cloned().collect();
        v.sort_by(|a, b| b.runs.cmp(&a.runs).then(a.first_job.cmp(&b.first_job)));
        v
    }
}

pub fn job_report(
    t: &Tracker,
    job: &Job,
    users: &UserNames,
    findings: Vec<Finding>,
    crontab_entry: Option<EntryRef>,
    // Boxed: most jobs have neither, and a report is held per listed job.
    unit: Option<Box<UnitRef>>,
    at_job: Option<Box<AtJob>>,
) -> JobReport {
    let s = t.summary(job);
    // systemd's child that never ran its command still carries systemd's argv: the
    // unit's ExecStart= is what it was to run.
    let never_ran = t.procs.get(job.leader_pid).is_some_and(|p| !p.execed);
    let command = match (unit.as_ref().filter(|_| never_ran), &at_job) {
        (Some(u), _) => u.start_command.clone().unwrap_or_else(|| s.command.clone()),
        // atd's shell reads the script on stdin: its commands are in the spool file.
        (None, Some(a)) => crate::diagnosis::tables::at_command(a)
            .unwrap_or_else(|| format!("(at job {}: its script was not read)", a.number)),
        (None, None) => s.command.clone(),
    };
    JobReport {
        id: job.id,
        scheduler: job.scheduler.clone(),
        scheduler_pid: job.scheduler_pid,
        user: users.name(s.uid),
        uid: s.uid,
        command,
        crontab_entry,
        unit,
        at_job,
        state: if job.finished() {
            "finished"
        } else {
            "running"
        },
        started_before_trace: job.started_before_trace,
        leader_pid: job.leader_pid,
        pids: job.members.clone(),
        start_ns: job.start_ns,
        end_ns: job.end_ns,
        exit: s.exit,
        left_running: s.left_running.clone(),
        findings,
        events: job.timeline.len() as u64 + job.dropped_events,
        timeline_capped: job
            .capped
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        timeline: job.timeline.clone(),
    }
}

/// The report of `jobs` (those held, already built), the jobs let go (`earlier`) and
/// `host`, the findings of no one job.
pub fn build(jobs: Vec<JobReport>, earlier: &Earlier, host: Vec<Finding>, stats: Stats) -> Report {
    Report {
        version: FORMAT_VERSION,
        stats: Stats {
            jobs: jobs.len() + earlier.jobs() as usize,
            ..stats
        },
        jobs,
        earlier_jobs: earlier.lines(),
        findings: host,
    }
}

/// The JSON report on stdout: indented for a person at a terminal, on one line for a
/// program reading a pipe or a file (a third smaller, and the indented writer was a
/// sixth of a replay's time).
pub fn print_json(r: &Report) -> std::io::Result<()> {
    use std::io::IsTerminal;
    let out = std::io::stdout();
    let pretty = out.is_terminal();
    write_json(&mut out.lock(), r, pretty)
}

pub fn write_json(out: &mut impl Write, r: &Report, pretty: bool) -> std::io::Result<()> {
    // Buffered: stdout is line-buffered, and a pretty document is one write per line.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    if pretty {
        serde_json::to_writer_pretty(&mut out, r)?;
    } else {
        serde_json::to_writer(&mut out, r)?;
    }
    writeln!(out)?;
    out.flush()
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();

/// Text lines of a timeline past which the rest is summarised (JSON has them all).
const TEXT_TIMELINE_LIMIT: usize = 200;

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn argv_text(argv: &[String]) -> String {
    let parts: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    format!("[{}]", parts.join(", "))
}

/// One line of what happened, without pid/time.
pub fn describe(ev: &Event) -> String {
    let res = |r: &crate::model::event::SysResult| match r.error {
        Some(e) => format!("= {e}"),
        None => format!("= {}", r.ret),
    };
    match &ev.body {
        Body::Fork { child_pid, .. } => format!("fork -> pid {child_pid}"),
        Body::ExecAttempt {
            filename,
            argv,
            env,
            result,
            argv_truncated,
            env_truncated,
            ..
        } => format!(
            "execve({}, {}{}) {} env: {} vars{}",
            quote(filename),
            argv_text(argv),
            if *argv_truncated { " ...truncated" } else { "" },
            result.as_ref().map_or("= ?".to_string(), res),
            env.len(),
            if *env_truncated { " (truncated)" } else { "" }
        ),
        Body::ExecResult { result } => format!("execve {}", res(result)),
        Body::Exec { filename, .. } => format!("now running {filename}"),
        Body::Exit { status } => match status {
            Some(s) => format!("exited ({s})"),
            None => "exited".into(),
        },
        Body::Signal {
            target_pid,
            signal_name,
            ..
        } => format!("{signal_name} sent to pid {target_pid} by pid {}", ev.pid),
        Body::Open {
            syscall,
            path,
            result,
            ..
        } => format!("{syscall}({}) {}", quote(path), res(result)),
        Body::Socket {
            family_name,
            result,
            ..
        } => format!("socket({family_name}) {}", res(result)),
        Body::Connect {
            fd,
            address,
            result,
        } => format!("connect(fd {fd}, {address}) {}", res(result)),
        Body::Getsockopt {
            fd, value, result, ..
        } => format!(
            "getsockopt(fd {fd}) {}{}",
            res(result),
            value.map(|v| format!(" value {v}")).unwrap_or_default()
        ),
        Body::Chdir { path, result } => format!("chdir({}) {}", quote(path), res(result)),
        Body::Fchdir { fd, result } => format!("fchdir({fd}) {}", res(result)),
        Body::SetId {
            syscall,
            ids,
            result,
        } => {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            format!("{syscall}({}) {}", ids.join(", "), res(result))
        }
        Body::Rlimit {
            syscall,
            resource,
            soft,
            hard,
            result,
            ..
        } => match (soft, hard) {
            (Some(s), Some(h)) => {
                format!("{syscall}({resource}, soft {s}, hard {h}) {}", res(result))
            }
            _ => format!("{syscall}({resource}) {}", res(result)),
        },
        Body::Wait { status, result, .. } => match status {
            Some(s) if result.ret > 0 => format!("reaped pid {} ({s})", result.ret),
            _ => format!("wait4 {}", res(result)),
        },
        Body::ExitGroup { code } => format!("exit_group({code})"),
        // AT_EMPTY_PATH: a stat of an open descriptor.
        Body::Stat { path, result } if path.is_empty() => format!("fstat(fd) {}", res(result)),
        Body::Stat { path, result } => format!("stat({}) {}", quote(path), res(result)),
        Body::FdExhausted {
            syscall, result, ..
        } => format!("{syscall}() {}", res(result)),
        Body::Snapshot { cmdline, cwd, .. } => format!(
            "already running: {} (cwd {})",
            argv_text(cmdline),
            cwd.as_deref().unwrap_or("?")
        ),
    }
}

fn is_failure(ev: &Event) -> bool {
    match &ev.body {
        Body::Exit { status: Some(s) } => !s.is_success(),
        Body::Wait {
            status: Some(s), ..
        } => !s.is_success(),
        b => b.result().map(|r| !r.ok()).unwrap_or(false),
    }
}

pub fn write_job_text(
    out: &mut impl Write,
    j: &JobReport,
    trace_start_ns: u64,
) -> std::io::Result<()> {
    let state = match (&j.exit, j.state) {
        (_, "running") => format!("{YELLOW}still running at end of trace{YELLOW:#}"),
        (Some(s), _) if s.is_success() => format!("{GREEN}{s}{GREEN:#}"),
        (Some(s), _) => format!("{RED}{s}{RED:#}"),
        (None, _) => "exit status unknown".into(),
    };
    let took = j
        .end_ns
        .map(|e| {
            format!(
                " after {:.1} ms",
                (e.saturating_sub(j.start_ns)) as f64 / 1e6
            )
        })
        .unwrap_or_default();
    writeln!(
        out,
        "{BOLD}job {}{BOLD:#}  {}[{}] -> pid {}  user {}  at +{:.3}s{}",
        j.id,
        j.scheduler,
        j.scheduler_pid,
        j.leader_pid,
        j.user,
        j.start_ns.saturating_sub(trace_start_ns) as f64 / 1e9,
        if j.started_before_trace {
            " (already running when the trace started)"
        } else {
            ""
        }
    )?;
    writeln!(out, "  command: {}", j.command)?;
    if let Some(u) = &j.unit {
        match (&u.timer, &u.schedule) {
            (Some(t), Some(s)) => writeln!(out, "  unit:    {}  started by {t}  {s}", u.service)?,
            _ => writeln!(out, "  unit:    {}", u.service)?,
        }
        if !u.files.is_empty() {
            writeln!(out, "  files:   {}", u.files.join(", "))?;
        }
    }
    if let Some(a) = &j.at_job {
        writeln!(
            out,
            "  at job:  {} (queue {}, due {})  {}",
            a.number, a.queue, a.due, a.file
        )?;
    }
    if let Some(e) = &j.crontab_entry {
        writeln!(
            out,
            "  entry:   {}:{}  {}  (user {})",
            e.file, e.line, e.schedule, e.user
        )?;
    }
    writeln!(out, "  result:  {state}{took}")?;
    if !j.left_running.is_empty() {
        let pids: Vec<String> = j.left_running.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "  left running: pid {} (not waited for: the job ended with its leader)",
            pids.join(", ")
        )?;
    }
    for f in &j.findings {
        writeln!(out, "  {RED}{}{RED:#}: {}", f.kind, f.message)?;
    }
    let evidence: std::collections::HashSet<usize> = j
        .findings
        .iter()
        .flat_map(|f| f.evidence.iter().copied())
        .collect();
    let mut hidden = 0;
    let mut shown = 0;
    // Repeats of one line by one process (PAM's config lookups) are shown once, ×N.
    let mut i = 0;
    while i < j.timeline.len() {
        let ev = &j.timeline[i];
        if !evidence.contains(&i) && is_routine(ev) {
            hidden += 1;
            i += 1;
            continue;
        }
        let line = describe(ev);
        let mut repeats = 1;
        while let Some(next) = j.timeline.get(i + repeats) {
            let same =
                next.pid == ev.pid && !evidence.contains(&(i + repeats)) && describe(next) == line;
            if !same {
                break;
            }
            repeats += 1;
        }
        i += repeats;
        shown += 1;
        if shown > TEXT_TIMELINE_LIMIT {
            continue;
        }
        let rel = ev.ts_ns.saturating_sub(j.start_ns) as f64 / 1e6;
        let times = if repeats > 1 {
            format!(" ×{repeats}")
        } else {
            String::new()
        };
        let flags = if ev.truncated { " [truncated]" } else { "" };
        if is_failure(ev) {
            writeln!(
                out,
                "  {DIM}{rel:>10.3} ms{DIM:#} {:>7} {:<15} {RED}{line}{RED:#}{times}{flags}",
                ev.pid, ev.comm
            )?;
        } else {
            writeln!(
                out,
                "  {DIM}{rel:>10.3} ms{DIM:#} {:>7} {:<15} {line}{times}{flags}",
                ev.pid, ev.comm
            )?;
        }
    }
    if !j.timeline_capped.is_empty() {
        let kinds: Vec<String> = j
            .timeline_capped
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            out,
            "  {DIM}(a long job: past its first events, routine successes were counted, not kept: {}){DIM:#}",
            kinds.join(", ")
        )?;
    }
    if j.timeline.is_empty() && j.events > 0 {
        writeln!(
            out,
            "  {DIM}({} events; a job with no finding keeps no timeline: --timelines keeps it){DIM:#}",
            j.events
        )?;
    }
    if shown > TEXT_TIMELINE_LIMIT {
        writeln!(
            out,
            "  ... {} more events (all of them with --format json)",
            shown - TEXT_TIMELINE_LIMIT
        )?;
    }
    if hidden > 0 {
        writeln!(
            out,
            "  {DIM}({hidden} routine library, locale, PAM and config lookups not shown; --format json has every event){DIM:#}"
        )?;
    }
    writeln!(out)
}

/// A finding about the host rather than a job (a daemon, a crontab, a missed run).
pub fn write_host_finding_text(out: &mut impl Write, f: &Finding) -> std::io::Result<()> {
    writeln!(out, "{RED}{}{RED:#}: {}", f.kind, f.message)
}

pub fn write_summary_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    if !r.findings.is_empty() {
        writeln!(out, "{BOLD}schedulers and crontabs{BOLD:#}")?;
        for f in &r.findings {
            write!(out, "  ")?;
            write_host_finding_text(out, f)?;
        }
        writeln!(out)?;
    }
    writeln!(out, "{BOLD}summary{BOLD:#}")?;
    if r.jobs.is_empty() {
        writeln!(
            out,
            "  no job ran under a followed scheduler during the trace"
        )?;
    }
    if !r.earlier_jobs.is_empty() {
        let n: u64 = r.earlier_jobs.iter().map(|e| e.runs).sum();
        writeln!(
            out,
            "  {DIM}{n} earlier jobs, reported as they ended and no longer held, per command:{DIM:#}"
        )?;
        for e in &r.earlier_jobs {
            let findings = if e.findings.is_empty() {
                format!("{GREEN}ok{GREEN:#}")
            } else {
                let kinds: Vec<String> = e
                    .findings
                    .iter()
                    .map(|(k, v)| format!("{k} x{v}"))
                    .collect();
                format!("{RED}{}{RED:#}", kinds.join(", "))
            };
            writeln!(
                out,
                "  {:>6} runs  jobs {}..{}  {} failed  {findings}  {}",
                e.runs, e.first_job, e.last_job, e.failed, e.command
            )?;
        }
        writeln!(out, "  {DIM}then the latest jobs:{DIM:#}")?;
    }
    for j in &r.jobs {
        let st = match (j.state, &j.exit) {
            ("running", _) => "running".to_string(),
            (_, Some(s)) => s.to_string(),
            _ => "exit ?".into(),
        };
        let lead = j.findings.first().map(|f| f.kind.as_str()).unwrap_or("ok");
        let lead = if lead == "ok" {
            format!("{GREEN}{lead:<18}{GREEN:#}")
        } else {
            format!("{RED}{lead:<18}{RED:#}")
        };
        writeln!(
            out,
            "  job {:<4} {:<10} pid {:<7} {:<18} {lead} {}",
            j.id, j.scheduler, j.leader_pid, st, j.command
        )?;
    }
    let s = &r.stats;
    writeln!(
        out,
        "  {} events, {} jobs, {} lost{}",
        s.events,
        s.jobs,
        s.lost_events,
        if s.lost_events > 0 {
            format!(
                " ({}) - the kernel dropped events; timelines may have gaps",
                s.lost_by_kind
                    .iter()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    )?;
    if s.decode_errors > 0 {
        writeln!(out, "  {} records could not be decoded", s.decode_errors)?;
    }
    Ok(())
}
