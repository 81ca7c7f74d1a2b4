//! Diagnosis: rules over one job invocation's timeline, each naming a cause with the
//! events it rests on. One function per finding kind, named after it, grouped by the
//! step of the trigger path it is about (exec, files, network, env, outcome, delivery).
//! A healthy job's noise (`noise`) is never a finding; when one failure causes others,
//! the cause leads.
use serde::Serialize;

use crate::{
    facts::HostFacts,
    model::job::{Job, Tracker},
};

mod delivery;
mod env;
mod exec;
mod files;
pub mod loss;
mod network;
pub mod noise;
mod outcome;
pub mod preflight;
#[cfg(test)]
mod rules_tests;
pub mod schedule;
pub mod systemd;
pub mod tables;
#[cfg(test)]
mod tests;
mod view;

pub use view::ShellScript;
use view::View;

/// A diagnosis result: a stable `kind`, a line a person can act on, and the events
/// (indices into the job's timeline) it rests on. Host-level findings (the scheduler,
/// the crontabs) name their file and line and, for missed runs, the times instead.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Finding {
    pub kind: String,
    pub message: String,
    pub pid: u32,
    /// Indices into the job's timeline of the events the finding rests on.
    pub evidence: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// When it happened or should have (RFC 3339, with the offset of the zone used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<String>,
}

/// Stable identifiers (JSON `kind`), in causal order: earlier kinds explain later ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    SchedulerDown,
    CrontabSyntax,
    CrontabIgnored,
    MissedSchedule,
    ChdirFailed,
    NoExec,
    CommandNotFound,
    NotExecutable,
    BadInterpreter,
    RelativePath,
    ExecFailed,
    FdExhausted,
    OpenFailed,
    ConnectFailed,
    EnvMismatch,
    KilledBySignal,
    NonzeroExit,
    OutputLost,
    StillRunning,
    EventsLost,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SchedulerDown => "scheduler_down",
            Kind::CrontabSyntax => "crontab_syntax",
            Kind::CrontabIgnored => "crontab_ignored",
            Kind::MissedSchedule => "missed_schedule",
            Kind::ChdirFailed => "chdir_failed",
            Kind::NoExec => "no_exec",
            Kind::CommandNotFound => "command_not_found",
            Kind::NotExecutable => "not_executable",
            Kind::BadInterpreter => "bad_interpreter",
            Kind::RelativePath => "relative_path",
            Kind::ExecFailed => "exec_failed",
            Kind::FdExhausted => "fd_exhausted",
            Kind::OpenFailed => "open_failed",
            Kind::ConnectFailed => "connect_failed",
            Kind::EnvMismatch => "env_mismatch",
            Kind::KilledBySignal => "killed_by_signal",
            Kind::NonzeroExit => "nonzero_exit",
            Kind::OutputLost => "output_lost",
            Kind::StillRunning => "still_running",
            Kind::EventsLost => "events_lost",
        }
    }
}

pub(super) struct Draft {
    pub kind: Kind,
    pub message: String,
    pub pid: u32,
    pub evidence: Vec<usize>,
}

/// Everything wrong with one job. `ended` is true when the trace is over (a job still
/// running is then a finding). `others` are the jobs seen before, for env comparisons.
pub fn diagnose(t: &Tracker, job: &Job, facts: &mut dyn HostFacts, ended: bool) -> Vec<Finding> {
    diagnose_script(t, job, facts, ended, None)
}

/// `diagnose`, for a job whose shell ran `script` from stdin (an at job).
pub fn diagnose_script(
    t: &Tracker,
    job: &Job,
    facts: &mut dyn HostFacts,
    ended: bool,
    script: Option<ShellScript>,
) -> Vec<Finding> {
    let mut v = View::new(t, job);
    v.script = script;
    let mut d: Vec<Draft> = Vec::new();
    exec::chdir_failed(&v, &mut d);
    let exec_found = exec::exec_failures(&v, facts, &mut d);
    let searched = exec::path_search_misses(&v, facts, &mut d);
    if !exec_found && searched.is_empty() {
        exec::command_not_found(&v, facts, &mut d);
    }
    exec::no_exec(&v, &mut d);
    files::fd_exhausted(&v, &mut d);
    if v.failed() {
        // A failed open and a failed connect compete: the later one is closer to the
        // failure and is kept.
        let mut io = Vec::new();
        files::open_failed(&v, facts, &mut io);
        network::connect_failed(&v, &mut io);
        if let Some(last) = io
            .into_iter()
            .max_by_key(|f| f.evidence.last().copied().unwrap_or(0))
        {
            d.push(last);
        }
        env::env_mismatch(&v, &mut d);
    }
    outcome::killed_by_signal(&v, &mut d);
    outcome::nonzero_exit(&v, &mut d);
    delivery::output_lost(&v, &mut d);
    if ended {
        outcome::still_running(&v, &mut d);
    }
    d.sort_by_key(|f| (f.kind, f.evidence.first().copied().unwrap_or(usize::MAX)));
    d.into_iter()
        .map(|f| Finding {
            kind: f.kind.as_str().to_string(),
            message: f.message,
            pid: f.pid,
            evidence: f.evidence,
            ..Default::default()
        })
        .collect()
}
