//! `tracer crontab`: every crontab entry on the host as the running daemons see it,
//! its next runs, the environment it will get, and what is already visibly wrong
//! before it fires. No BPF, no waiting; root only to see into other mount namespaces.
use std::{collections::BTreeMap, io::Write, process::ExitCode};

use anstyle::{AnsiColor, Style};
use jiff::Timestamp;
use serde::Serialize;

use super::{EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};
use crate::{
    capture::{
        host::schedule_views,
        snapshot::{self, RootSpec},
    },
    diagnosis::{
        preflight::{check_command, RunEnv},
        schedule::rfc3339,
        Finding, Kind,
    },
    facts::LiveFacts,
    schedules::{daemon_tz, ProblemKind, ScheduleView},
    Format,
};

pub struct CrontabOptions {
    pub format: Format,
    /// RFC 3339 time after which to list fires (default now).
    pub from: Option<String>,
    pub count: usize,
}

#[derive(Serialize)]
struct EntryOut {
    file: String,
    line: u32,
    user: String,
    schedule: String,
    command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdin: Option<String>,
    tz: String,
    /// The daemon that runs it ("cron (pid 812)").
    daemon: String,
    runs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_because: Option<String>,
    next: Vec<String>,
    env: BTreeMap<String, String>,
    /// The directory the job starts in ($HOME).
    cwd: String,
    findings: Vec<Finding>,
}

#[derive(Serialize)]
struct CrontabReport {
    version: u32,
    entries: Vec<EntryOut>,
    findings: Vec<Finding>,
}

/// `--count N`: fire times listed per entry (a usage error, exit 2, outside 1..=1000:
/// each is computed and printed for every entry).
pub fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n @ 1..=1000) => Ok(n),
        _ => Err("give 1 to 1000 fire times per entry, e.g. --count 5".into()),
    }
}

pub fn run(opts: &CrontabOptions) -> ExitCode {
    let from = match &opts.from {
        None => Timestamp::now(),
        Some(s) => match s.parse::<Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("tracer: error: --from {s:?} is not an RFC 3339 time with an offset ({e}); e.g. 2026-11-29T03:00:00Z");
                return ExitCode::from(EXIT_ERROR);
            }
        },
    };
    let spec = RootSpec::with_defaults(Vec::new(), Vec::new(), false);
    let roots: Vec<_> = snapshot::read_all()
        .into_iter()
        .filter(|p| spec.is_root(p))
        .collect();
    let views = schedule_views(&roots, Some(&mut crate::secrets::Counts::new()), true);
    let rep = build(&views, from, opts.count);
    let any = !rep.findings.is_empty() || rep.entries.iter().any(|e| !e.findings.is_empty());
    let written = match opts.format {
        Format::Json => {
            let mut out = std::io::stdout().lock();
            let json = serde_json::to_string_pretty(&rep).unwrap_or_default();
            writeln!(out, "{json}")
        }
        Format::Text => write_text(&mut anstream::stdout().lock(), &rep),
    };
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("tracer: error: writing the report: {e}");
            ExitCode::from(EXIT_ERROR)
        }
        _ if any => ExitCode::from(EXIT_FINDINGS),
        _ => ExitCode::from(EXIT_CLEAN),
    }
}

fn build(views: &[ScheduleView], from: Timestamp, count: usize) -> CrontabReport {
    let mut facts = LiveFacts::default();
    let mut entries = Vec::new();
    let mut host = Vec::new();
    for v in views {
        let set = v.analyse();
        let tz = daemon_tz(&v.context);
        let who = v.who();
        if v.pids.is_empty() {
            host.push(Finding {
                kind: Kind::SchedulerDown.as_str().into(),
                message: format!(
                    "no {} daemon is running: none of its {} entries will run until it is started",
                    v.daemon.label(),
                    set.entries.iter().filter(|e| e.runs).count()
                ),
                ..Default::default()
            });
        }
        // A line's problem is shown with its entry; the others (files) with the host.
        for p in &set.problems {
            let with_entry = set
                .entries
                .iter()
                .any(|e| e.file == p.file && Some(e.line) == p.line);
            if !with_entry {
                host.push(problem_finding(p));
            }
        }
        for e in &set.entries {
            let uid = v.context.user(&e.user).map(|u| u.uid).unwrap_or(u32::MAX);
            let mut findings: Vec<Finding> = set
                .problems
                .iter()
                .filter(|p| p.file == e.file && p.line == Some(e.line))
                .map(problem_finding)
                .collect();
            if e.runs {
                let run = RunEnv {
                    env: &e.env,
                    scheduler: "cron",
                    uid,
                };
                findings.extend(check_command(&e.command, &run, &mut facts));
            }
            entries.push(EntryOut {
                file: e.file.clone(),
                line: e.line,
                user: e.user.clone(),
                schedule: e.schedule.clone(),
                command: e.command.clone(),
                stdin: e.stdin.clone(),
                tz: e.tz.clone(),
                daemon: who.clone(),
                runs: e.runs,
                skipped_because: e.skipped_because.clone(),
                next: e
                    .next_fires(&tz, from, count, v.daemon)
                    .into_iter()
                    .map(|z| rfc3339(&z))
                    .collect(),
                cwd: e.env.get("HOME").cloned().unwrap_or_else(|| "/".into()),
                env: e.env.clone(),
                findings,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    host.retain(|f| seen.insert((f.kind.clone(), f.message.clone())));
    CrontabReport {
        version: 1,
        entries,
        findings: host,
    }
}

fn problem_finding(p: &crate::schedules::Problem) -> Finding {
    let kind = match p.kind {
        ProblemKind::CrontabSyntax => Kind::CrontabSyntax,
        ProblemKind::CrontabIgnored => Kind::CrontabIgnored,
    };
    Finding {
        kind: kind.as_str().into(),
        message: p.message.clone(),
        file: Some(p.file.clone()),
        line: p.line,
        ..Default::default()
    }
}

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default().bold();

fn write_text(out: &mut impl Write, r: &CrontabReport) -> std::io::Result<()> {
    if r.entries.is_empty() {
        writeln!(out, "no crontab entries on this host")?;
    }
    let mut daemon = "";
    for e in &r.entries {
        if e.daemon != daemon {
            daemon = &e.daemon;
            writeln!(out, "{BOLD}{daemon}{BOLD:#}")?;
        }
        writeln!(
            out,
            "  {BOLD}{}:{}{BOLD:#}  {}  {}  (user {})",
            e.file, e.line, e.schedule, e.command, e.user
        )?;
        if !e.runs {
            writeln!(
                out,
                "    {RED}does not run{RED:#}: {}",
                e.skipped_because
                    .as_deref()
                    .unwrap_or("skipped by the daemon")
            )?;
        }
        if !e.next.is_empty() {
            writeln!(out, "    next: {}", e.next.join(", ").replace('T', " "))?;
        }
        let env: Vec<String> = e.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "    {DIM}cwd {}  env {}{DIM:#}", e.cwd, env.join(" "))?;
        for f in &e.findings {
            writeln!(out, "    {RED}{}{RED:#}: {}", f.kind, f.message)?;
        }
    }
    if !r.findings.is_empty() {
        writeln!(out, "{BOLD}host{BOLD:#}")?;
        for f in &r.findings {
            writeln!(out, "  {RED}{}{RED:#}: {}", f.kind, f.message)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn count_is_1_to_1000() {
        assert_eq!(parse_count("1"), Ok(1));
        assert_eq!(parse_count("1000"), Ok(1000));
        for bad in ["0", "1001", "18446744073709551616", "-1", "x", ""] {
            assert!(parse_count(bad).unwrap_err().contains("1 to 1000"), "{bad}");
        }
    }
}
