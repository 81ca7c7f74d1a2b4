//! `tracer trigger PATTERN`: run one crontab entry now exactly as its daemon would
//! (user and groups, cron's environment, `$HOME`, `SHELL -c`, `%` stdin, no tty),
//! traced, and report it like a scheduled run. The classic trap it exposes: a script
//! that works from an interactive shell and not from cron.
use std::{collections::BTreeMap, process::ExitCode};

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
    for v in &views {
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
        0 => {
            return Err(format!(
                "{pattern:?} matches no crontab entry (see `tracer crontab` for FILE:LINE)"
            ))
        }
        _ => {
            let list: Vec<String> = found
                .iter()
                .map(|(e, _)| format!("  {}:{}  {}", e.file, e.line, e.command))
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
        command: secrets::redact_line(&e.command, &mut secrets::Counts::new())
            .unwrap_or_else(|| e.command.clone()),
    };
    Ok((entry, plan, e.runs, e.skipped_because.clone()))
}

fn print_plan(entry: &EntryRef, plan: &Plan) {
    let env: BTreeMap<&String, String> = plan
        .env
        .iter()
        .map(|(k, v)| {
            let shown = if secrets::is_secret_name(k) {
                secrets::REDACTED.to_string()
            } else {
                v.clone()
            };
            (k, shown)
        })
        .collect();
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
    println!("  env (only): {}", {
        let v: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.join(" ")
    });
    match &plan.stdin {
        Some(s) => println!("  stdin:      {s:?} (the text after % in the entry)"),
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
        eprintln!(
            "tracer: warning: the daemon does not run {}:{} ({}); running it anyway",
            entry.file,
            entry.line,
            skipped.as_deref().unwrap_or("skipped")
        );
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
