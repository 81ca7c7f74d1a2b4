//! What the rules look at, computed once per job: the timeline, which process ran the
//! job's program when, and which processes are the scheduler's own (its mailer).
use foldhash::{HashMap, HashSet};

use crate::model::{
    event::{Body, Event, ExitStatus},
    job::{Job, Tracker},
};

/// An exec attempt: its index, its result's index, what was asked, the result.
pub(super) struct ExecTry<'a> {
    pub at: usize,
    pub filename: &'a str,
    pub argv: &'a [String],
    pub ret: i64,
}

/// What the rules look at, computed once per job.
pub(super) struct View<'a> {
    pub t: &'a Tracker,
    pub job: &'a Job,
    pub tl: &'a [Event],
    /// Index of each process's successful `exec` event (first one).
    pub exec_at: HashMap<u32, usize>,
    /// Processes that ran the mailer (sendmail): cron's mail step, not the job.
    pub mailers: HashSet<u32>,
    pub main: u32,
    pub main_exit: Option<ExitStatus>,
    /// The script the main shell read on stdin (an at job), when known.
    pub script: Option<ShellScript>,
}

/// A script a shell runs from stdin rather than `-c` (atd's), and the PATH it sets.
#[derive(Clone, Debug, Default)]
pub struct ShellScript {
    pub commands: String,
    pub path: Option<String>,
}

pub(super) fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn is_mailer(filename: &str, argv: &[String]) -> bool {
    basename(filename) == "sendmail" || argv.first().is_some_and(|a| basename(a) == "sendmail")
}

impl<'a> View<'a> {
    pub fn new(t: &'a Tracker, job: &'a Job) -> Self {
        let tl = &job.timeline[..];
        let mut exec_at = HashMap::default();
        let mut mailers = HashSet::default();
        for (i, e) in tl.iter().enumerate() {
            match &e.body {
                Body::Exec { .. } => {
                    exec_at.entry(e.pid).or_insert(i);
                }
                Body::ExecAttempt { filename, argv, .. } if is_mailer(filename, argv) => {
                    mailers.insert(e.pid);
                }
                _ => {}
            }
        }
        // Delivery is the mailer's whole tree (exim forks its deliveries): none of its
        // work is the job's, and its failures only ever explain output_lost.
        for &pid in &job.members {
            if t.procs.get(pid).is_some_and(|p| mailers.contains(&p.ppid)) {
                mailers.insert(pid);
            }
        }
        let main = t.main_pid(job);
        let main_exit = t.procs.get(main).and_then(|p| p.exit);
        View {
            t,
            job,
            tl,
            exec_at,
            mailers,
            main,
            main_exit,
            script: None,
        }
    }

    pub fn failed(&self) -> bool {
        self.main_exit.is_some_and(|s| !s.is_success())
    }

    /// The event at `i` is the job's own work, not the scheduler preparing it: its
    /// process, or an ancestor in the job, had exec'd the job's program by then (a
    /// subshell of the job's shell works for the job before it execs anything).
    /// The mailer is the scheduler's too.
    pub fn is_job_work(&self, i: usize) -> bool {
        let mut pid = self.tl[i].pid;
        if self.mailers.contains(&pid) {
            return false;
        }
        for _ in 0..64 {
            if self.exec_at.get(&pid).is_some_and(|&x| x < i) {
                return true;
            }
            if pid == self.job.leader_pid {
                return false;
            }
            match self.t.procs.get(pid) {
                Some(p) if p.ppid != 0 && p.ppid != pid => pid = p.ppid,
                _ => return false,
            }
        }
        false
    }

    pub fn cwd(&self, pid: u32) -> Option<&str> {
        self.t.procs.get(pid).and_then(|p| p.cwd.as_deref())
    }

    pub fn env_var(&self, pid: u32, name: &str) -> Option<String> {
        let p = self.t.procs.get(pid)?;
        p.env.iter().find_map(|kv| {
            kv.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
    }

    /// The exec attempts of the job, each with its result (0 while unknown).
    pub fn exec_attempts(&self) -> Vec<ExecTry<'a>> {
        self.tl
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.body {
                Body::ExecAttempt {
                    filename,
                    argv,
                    result,
                    ..
                } => Some(ExecTry {
                    at: i,
                    filename: filename.as_str(),
                    argv: argv.as_slice(),
                    ret: result.map_or(0, |r| r.ret),
                }),
                _ => None,
            })
            .collect()
    }

    /// Directories a relative path of the job may have meant: those of the programs
    /// and scripts it ran (outside the system's bin directories) and its home.
    pub fn near_dirs(&self, pid: u32) -> Vec<String> {
        const SYSTEM: [&str; 6] = [
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/usr/local/bin",
            "/usr/local/sbin",
        ];
        let mut dirs: Vec<String> = self
            .tl
            .iter()
            .filter_map(|e| match &e.body {
                Body::ExecAttempt { argv, .. } => {
                    argv.get(1).filter(|a| a.starts_with('/')).cloned()
                }
                Body::Exec { filename, .. } => Some(filename.clone()),
                _ => None,
            })
            .filter(|f| f.starts_with('/'))
            .filter_map(|f| f.rsplit_once('/').map(|(d, _)| d.to_string()))
            .filter(|d| !d.is_empty() && !SYSTEM.contains(&d.as_str()))
            .collect();
        dirs.extend(self.env_var(pid, "HOME"));
        dirs.sort();
        dirs.dedup();
        dirs
    }

    pub fn exit_index(&self, pid: u32) -> Option<usize> {
        self.tl
            .iter()
            .position(|e| e.pid == pid && matches!(e.body, Body::Exit { .. }))
    }
}
