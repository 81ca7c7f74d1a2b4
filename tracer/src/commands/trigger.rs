//! `tracer trigger PATTERN`: run one crontab entry now exactly as its daemon would
//! (user and groups, cron's environment, `$HOME`, `SHELL -c`, `%` stdin, no tty),
//! traced, and report it like a scheduled run. The classic trap it exposes: a script
//! that works from an interactive shell and not from cron.
use std::process::ExitCode;

use super::{record, EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS};
use crate::{
    capture::{
        as_cron::Plan,
        host::schedule_views,
        snapshot::{self, RootSpec},
    },
    diagnosis::schedule::{entry_matches, EntryRef},
    schedules::{Entry, ScheduleView},
    secrets, Format,
};

pub struct TriggerOptions {
    pub pattern: String,
    pub dry_run: bool,
    pub format: Format,
    pub output: Option<std::path::PathBuf>,
    pub force: bool,
}

/// The one entry `pattern` names, with the plan to run it; or why not.
fn resolve(pattern: &str) -> Result<(EntryRef, Plan, bool, Option<String>), String> {
    let spec = RootSpec::with_defaults(Vec::new(), Vec::new(), false);
    let roots: Vec<_> = snapshot::read_all()
        .into_iter()
        .filter(|p| spec.is_root(p))
        .collect();
    // Unredacted: this is the command that will run.
    let views: Vec<ScheduleView> = schedule_views(&roots, None, true);
    let mut found: Vec<(Entry, &ScheduleView)> = Vec::new();
    let mut elsewhere = 0;
    for v in &views {
        // A container's crontab names its own users and files: running it here, as
        // root of the host, would hand the container's tenants the host.
        if !v.is_host() {
            elsewhere += v
                .analyse()
                .entries
                .iter()
                .filter(|e| entry_matches(e, pattern))
                .count();
            continue;
        }
        for e in v.analyse().entries {
            let dup = found
                .iter()
                .any(|(f, _)| f.file == e.file && f.line == e.line && f.command == e.command);
            if entry_matches(&e, pattern) && !dup {
                found.push((e, v));
            }
        }
    }
    let (e, v) = match found.len() {
        1 => found.remove(0),
        0 if elsewhere > 0 => {
            return Err(format!(
                "{pattern:?} matches only entries of a cron daemon in another mount namespace (a container); trigger runs host entries only: run it inside that container"
            ))
        }
        0 => {
            return Err(format!(
                "{pattern:?} matches no crontab entry (see `tracer crontab` for FILE:LINE)"
            ))
        }
        _ => {
            let list: Vec<String> = found
                .iter()
                .map(|(e, _)| format!("  {}:{}  {}", e.file, e.line, shown(&e.command)))
                .collect();
            return Err(format!(
                "{pattern:?} matches {} entries; name one as FILE:LINE:\n{}",
                found.len(),
                list.join("\n")
            ));
        }
    };
    let user = v.context.user(&e.user).ok_or_else(|| {
        format!(
            "{}:{}: user {:?} does not exist, so cron never runs this entry",
            e.file, e.line, e.user
        )
    })?;
    let shell = e
        .env
        .get("SHELL")
        .cloned()
        .unwrap_or_else(|| "/bin/sh".into());
    let plan = Plan {
        user: user.name.clone(),
        uid: user.uid,
        gid: user.gid,
        home: e
            .env
            .get("HOME")
            .cloned()
            .unwrap_or_else(|| user.home.clone()),
        shell,
        env: e.env.clone(),
        command: e.command.clone(),
        stdin: e.stdin.clone(),
    };
    let entry = EntryRef {
        file: e.file.clone(),
        line: e.line,
        schedule: e.schedule.clone(),
        user: e.user.clone(),
        command: shown(&e.command),
        job_id: None,
    };
    Ok((entry, plan, e.runs, e.skipped_because.clone()))
}

/// A command as it may be shown: secrets redacted.
fn shown(command: &str) -> String {
    secrets::redact_line(command, &mut secrets::Counts::new()).unwrap_or_else(|| command.into())
}

fn print_plan(entry: &EntryRef, plan: &Plan) {
    let mut env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    secrets::redact_env(&mut env, &mut secrets::Counts::new());
    println!(
        "{}:{}  {}  (user {})",
        entry.file, entry.line, entry.schedule, entry.user
    );
    println!("  would run:  {} -c {:?}", plan.shell, entry.command);
    println!(
        "  as:         uid {} gid {} with {}'s groups, no terminal (new session)",
        plan.uid, plan.gid, plan.user
    );
    println!("  in:         {}", plan.home);
    println!("  env (only): {}", env.join(" "));
    match &plan.stdin {
        Some(s) => println!(
            "  stdin:      {:?} (the text after % in the entry)",
            shown(s)
        ),
        None => println!("  stdin:      /dev/null"),
    }
    println!("  (PAM may add variables, e.g. from /etc/environment; they are not shown)");
}

pub fn run(opts: TriggerOptions) -> ExitCode {
    let (entry, plan, runs, skipped) = match resolve(&opts.pattern) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tracer: error: trigger: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if !runs {
        // Cron refuses these for a reason (a file others can write, a wrong owner):
        // running them as their user would do what cron will not.
        eprintln!(
            "tracer: error: trigger: the daemon does not run {}:{}: {}; fix that first (see `tracer crontab`)",
            entry.file,
            entry.line,
            skipped.as_deref().unwrap_or("it skips this entry")
        );
        return ExitCode::from(EXIT_ERROR);
    }
    if opts.dry_run {
        print_plan(&entry, &plan);
        return ExitCode::from(EXIT_CLEAN);
    }
    let r = record::run(record::RecordOptions {
        duration: None,
        all: false,
        pids: Vec::new(),
        comms: Vec::new(),
        format: opts.format,
        capture_secrets: false,
        output: opts.output,
        force: opts.force,
        entries: Vec::new(),
        ring_mb: record::DEFAULT_RING_MB,
        timelines: true,
        follow: None,
        trigger: Some((entry, plan)),
    });
    match r {
        Ok(rep) if rep.has_findings() => ExitCode::from(EXIT_FINDINGS),
        Ok(_) => ExitCode::from(EXIT_CLEAN),
        Err(e) => {
            eprintln!("tracer: error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
