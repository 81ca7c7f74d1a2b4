//! Diagnosis: rules over one job invocation's timeline, each naming a cause with the
//! events it rests on. One function per finding kind, named after it. A healthy job's
//! noise (library and locale probes, nscd, PATH misses, the scheduler's own PAM and
//! mail steps) is never a finding; when one failure causes others, the cause leads.
use std::collections::{HashMap, HashSet};

use crate::{
    facts::HostFacts,
    model::event::{Body, Event, ExitStatus},
    model::job::{Job, Tracker},
    output::report::Finding,
};

/// Stable identifiers (JSON `kind`), in causal order: earlier kinds explain later ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
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
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
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
        }
    }
}

struct Draft {
    kind: Kind,
    message: String,
    pid: u32,
    evidence: Vec<usize>,
}

/// An exec attempt: its index, its result's index, what was asked, the result.
struct ExecTry<'a> {
    at: usize,
    result: Option<usize>,
    filename: &'a str,
    argv: &'a [String],
    ret: i64,
}

/// What the rules look at, computed once per job.
struct View<'a> {
    t: &'a Tracker,
    job: &'a Job,
    tl: &'a [Event],
    /// Index of each process's successful `exec` event (first one).
    exec_at: HashMap<u32, usize>,
    /// Processes that ran the mailer (sendmail): cron's mail step, not the job.
    mailers: HashSet<u32>,
    main: u32,
    main_exit: Option<ExitStatus>,
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn is_mailer(filename: &str, argv: &[String]) -> bool {
    basename(filename) == "sendmail" || argv.first().is_some_and(|a| basename(a) == "sendmail")
}

impl<'a> View<'a> {
    fn new(t: &'a Tracker, job: &'a Job) -> Self {
        let tl = &job.timeline[..];
        let mut exec_at = HashMap::new();
        let mut mailers = HashSet::new();
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
        }
    }

    fn failed(&self) -> bool {
        self.main_exit.is_some_and(|s| !s.is_success())
    }

    /// The event at `i` is the job's own work, not the scheduler preparing it: its
    /// process, or an ancestor in the job, had exec'd the job's program by then (a
    /// subshell of the job's shell works for the job before it execs anything).
    /// The mailer is the scheduler's too.
    fn is_job_work(&self, i: usize) -> bool {
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

    fn cwd(&self, pid: u32) -> Option<&str> {
        self.t.procs.get(pid).and_then(|p| p.cwd.as_deref())
    }

    fn env_var(&self, pid: u32, name: &str) -> Option<String> {
        let p = self.t.procs.get(pid)?;
        p.env.iter().find_map(|kv| {
            kv.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
    }

    /// The exec attempts of the job, each with its result.
    fn exec_attempts(&self) -> Vec<ExecTry<'a>> {
        let mut v = Vec::new();
        for (i, e) in self.tl.iter().enumerate() {
            if let Body::ExecAttempt { filename, argv, .. } = &e.body {
                let res = self.tl[i + 1..]
                    .iter()
                    .position(|r| r.pid == e.pid && matches!(r.body, Body::ExecResult { .. }))
                    .map(|k| i + 1 + k);
                let ret = res
                    .and_then(|k| self.tl[k].body.result())
                    .map(|r| r.ret)
                    .unwrap_or(0);
                v.push(ExecTry {
                    at: i,
                    result: res,
                    filename: filename.as_str(),
                    argv: argv.as_slice(),
                    ret,
                });
            }
        }
        v
    }

    fn exit_index(&self, pid: u32) -> Option<usize> {
        self.tl
            .iter()
            .position(|e| e.pid == pid && matches!(e.body, Body::Exit { .. }))
    }
}

/// Paths a healthy program probes and may not find: never a cause.
pub fn is_noise_path(path: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "/usr/lib/locale",
        "/usr/share/locale",
        "/usr/lib/x86_64-linux-gnu/gconv",
        "/etc/ld.so",
        "/lib/",
        "/lib64/",
        "/usr/lib/",
        "/usr/lib64/",
        "/proc/",
        "/sys/",
        "/dev/",
        "/usr/share/terminfo",
        "/etc/terminfo",
        "/run/nscd",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
        || path.ends_with(".so")
        || path.contains(".so.")
        || path.contains("/.terminfo")
        || path == "/etc/nsswitch.conf"
        || path == "/etc/localtime"
}

/// A missing dotfile (`~/.curlrc`, `.inputrc`) is an optional per-user setting that
/// programs probe for, not something a job needs.
pub fn is_optional_probe(path: &str, err: &str) -> bool {
    err == "ENOENT"
        && path
            .split('/')
            .any(|c| c.len() > 1 && c.starts_with('.') && c != "..")
}

/// A failure worth naming as the job's last failing call.
fn notable_failure(e: &Event) -> Option<String> {
    let r = e.body.result()?;
    let err = r.error?;
    match &e.body {
        Body::Open { syscall, path, .. }
            if !is_noise_path(path) && !is_optional_probe(path, err) =>
        {
            Some(format!("{syscall}(\"{path}\") {err}"))
        }
        Body::Connect { address, .. } if !address.contains("nscd") && err != "EINPROGRESS" => {
            Some(format!("connect({address}) {err}"))
        }
        Body::Chdir { path, .. } => Some(format!("chdir(\"{path}\") {err}")),
        Body::ExecResult { .. } => Some(format!("execve {err}")),
        Body::FdExhausted { syscall, .. } => Some(format!("{syscall}() {err}")),
        _ => None,
    }
}

/// Everything wrong with one job. `ended` is true when the trace is over (a job still
/// running is then a finding). `others` are the jobs seen before, for env comparisons.
pub fn diagnose(t: &Tracker, job: &Job, facts: &mut dyn HostFacts, ended: bool) -> Vec<Finding> {
    let v = View::new(t, job);
    let mut d: Vec<Draft> = Vec::new();
    chdir_failed(&v, &mut d);
    let exec_found = exec_failures(&v, facts, &mut d);
    if !exec_found {
        command_not_found(&v, facts, &mut d);
    }
    no_exec(&v, &mut d);
    fd_exhausted(&v, &mut d);
    if v.failed() {
        // A failed open and a failed connect compete: the later one is closer to the
        // failure and is kept.
        let mut io = Vec::new();
        open_failed(&v, &mut io);
        connect_failed(&v, &mut io);
        if let Some(last) = io
            .into_iter()
            .max_by_key(|f| f.evidence.last().copied().unwrap_or(0))
        {
            d.push(last);
        }
        env_mismatch(&v, &mut d);
    }
    killed_by_signal(&v, &mut d);
    nonzero_exit(&v, &mut d);
    output_lost(&v, &mut d);
    if ended {
        still_running(&v, &mut d);
    }
    d.sort_by_key(|f| (f.kind, f.evidence.first().copied().unwrap_or(usize::MAX)));
    d.into_iter()
        .map(|f| Finding {
            kind: f.kind.as_str().to_string(),
            message: f.message,
            pid: f.pid,
            evidence: f.evidence,
        })
        .collect()
}

/// The scheduler's child could not enter the job's directory ($HOME for cron).
fn chdir_failed(v: &View, d: &mut Vec<Draft>) {
    for (i, e) in v.tl.iter().enumerate() {
        if let Body::Chdir { path, result } = &e.body {
            if let Some(err) = result.error {
                if !v.is_job_work(i) && !v.mailers.contains(&e.pid) {
                    d.push(Draft {
                        kind: Kind::ChdirFailed,
                        message: format!(
                            "{} could not enter the job's directory: chdir(\"{path}\") {err} (cron runs jobs in the user's $HOME)",
                            v.job.scheduler
                        ),
                        pid: e.pid,
                        evidence: vec![i],
                    });
                    return;
                }
            }
        }
    }
}

/// The scheduler forked for the job but nothing was ever executed.
fn no_exec(v: &View, d: &mut Vec<Draft>) {
    if !v.job.finished() || v.job.started_before_trace {
        return;
    }
    let any_exec = v.tl.iter().any(|e| matches!(e.body, Body::Exec { .. }));
    let any_attempt =
        v.tl.iter()
            .any(|e| matches!(e.body, Body::ExecAttempt { .. }));
    if any_exec || any_attempt {
        return;
    }
    let leader = v.job.leader_pid;
    let how =
        v.t.procs
            .get(leader)
            .and_then(|p| p.exit)
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
    d.push(Draft {
        kind: Kind::NoExec,
        message: format!(
            "{} forked pid {leader} for the job but the command was never executed; the child ended{how} before exec (PAM, setuid, chdir or the shell failed: see the scheduler's log)",
            v.job.scheduler
        ),
        pid: leader,
        evidence: v.exit_index(leader).into_iter().collect(),
    });
}

/// Failed execs that are causes (PATH-search misses followed by a hit are not).
/// Returns whether any exec finding was made.
fn exec_failures(v: &View, facts: &mut dyn HostFacts, d: &mut Vec<Draft>) -> bool {
    let attempts = v.exec_attempts();
    let mut found = false;
    // A failed exec the job recovered from (an optional hook, bash running a script
    // without #! after ENOEXEC) is not a cause.
    if !v.failed() {
        return false;
    }
    for (k, a) in attempts.iter().enumerate() {
        let (i, res, filename, argv, ret) = (a.at, a.result, a.filename, a.argv, a.ret);
        if ret >= 0 || v.mailers.contains(&v.tl[i].pid) {
            continue;
        }
        let pid = v.tl[i].pid;
        // A later successful exec by the same process: this was a search miss.
        if attempts[k + 1..]
            .iter()
            .any(|a| v.tl[a.at].pid == pid && a.ret >= 0)
        {
            continue;
        }
        let errno = ret.checked_neg().unwrap_or(0);
        let err = crate::model::names::errno_name(errno);
        let mut evidence = vec![i];
        evidence.extend(res);
        let shown = argv.first().map(String::as_str).unwrap_or(filename);
        let (kind, message) = match errno {
            2 if !filename.starts_with('/') && filename.contains('/') => (
                Kind::RelativePath,
                format!(
                    "exec \"{filename}\" ENOENT with cwd={} ({} runs jobs in $HOME; use an absolute path or cd first)",
                    v.cwd(pid).unwrap_or("?"),
                    v.job.scheduler
                ),
            ),
            2 => {
                let f = facts.file(filename);
                match (&f.exists, &f.shebang) {
                    (true, Some(sb)) => {
                        let interp = sb.trim_start_matches("#!").trim_start();
                        let interp_path = interp.split([' ', '\t']).next().unwrap_or(interp);
                        if interp_path.ends_with('\r') {
                            (
                                Kind::BadInterpreter,
                                format!(
                                    "\"{filename}\" has CRLF (Windows) line endings: its #! line asks for \"{}\\r\", which does not exist; convert it with dos2unix {filename}",
                                    interp_path.trim_end_matches('\r')
                                ),
                            )
                        } else {
                            (
                                Kind::BadInterpreter,
                                format!(
                                    "\"{filename}\" starts with \"#!{interp}\", but the interpreter {interp_path} does not exist"
                                ),
                            )
                        }
                    }
                    (true, None) => (
                        Kind::ExecFailed,
                        format!("exec \"{filename}\" ENOENT although the file exists: the program loader it needs (e.g. a 32-bit or musl ld.so) is missing"),
                    ),
                    _ => (
                        Kind::ExecFailed,
                        format!("exec \"{filename}\" ENOENT: no such file (as {shown:?} in the job's command)"),
                    ),
                }
            }
            13 => {
                let f = facts.file(filename);
                let why = if f.is_dir {
                    "it is a directory".to_string()
                } else if f.exists && f.mode & 0o111 == 0 {
                    format!("it lacks the exec bit (mode {:04o}): chmod +x {filename}", f.mode)
                } else if f.noexec_mount {
                    "it is on a filesystem mounted noexec: move it or run it with its interpreter".to_string()
                } else {
                    format!(
                        "permission denied for uid {} (a directory on its path may not be searchable)",
                        v.tl[i].uid
                    )
                };
                (Kind::NotExecutable, format!("\"{filename}\" cannot be executed: {why}"))
            }
            8 => (
                Kind::ExecFailed,
                format!("exec \"{filename}\" ENOEXEC: not a binary and no #! line"),
            ),
            _ => (Kind::ExecFailed, format!("exec \"{filename}\" failed {err}")),
        };
        d.push(Draft {
            kind,
            message,
            pid,
            evidence,
        });
        found = true;
    }
    found
}

const SHELL_WORDS: [&str; 40] = [
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "function", "{", "}", "!", "[[", "]]", "time", "cd", "echo", "exit", "export", "set",
    "unset", "test", "[", "true", "false", "read", "printf", "eval", "exec", "ulimit", "umask",
    "trap", "wait", "kill", ":",
];

/// Words in command position of a shell command line (best effort, no expansions).
fn command_words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect_cmd = true;
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let flush = |word: &mut String, expect_cmd: &mut bool, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if *expect_cmd {
            // VAR=value prefixes keep the command position open.
            if !word.contains('=') || word.starts_with('=') {
                out.push(word.clone());
                *expect_cmd = false;
            }
        }
        word.clear();
    };
    let chars: Vec<char> = cmd.chars().collect();
    for (k, &c) in chars.iter().enumerate() {
        let prev = k.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(k + 1).copied();
        // `2>&1`, `>&2`, `&>file`: redirections, not command separators.
        if quote.is_none() && c == '&' && (matches!(prev, Some('>' | '<')) || next == Some('>')) {
            flush(&mut word, &mut expect_cmd, &mut out);
            continue;
        }
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, ';' | '&' | '|' | '(' | ')' | '\n' | '`') => {
                flush(&mut word, &mut expect_cmd, &mut out);
                expect_cmd = true;
            }
            (None, ' ' | '\t') => flush(&mut word, &mut expect_cmd, &mut out),
            (None, '<' | '>') => {
                flush(&mut word, &mut expect_cmd, &mut out);
            }
            (None, c) => word.push(c),
        }
    }
    flush(&mut word, &mut expect_cmd, &mut out);
    out
}

/// The shell exited 127 and no exec failed: it did not find a command in PATH
/// (dash searches PATH itself, so there is no failed execve to see).
fn command_not_found(v: &View, facts: &mut dyn HostFacts, d: &mut Vec<Draft>) {
    // The shell that reported it: the main process, or any job shell exiting 127.
    let mut shells: Vec<u32> = vec![v.main];
    shells.extend(v.job.members.iter().copied().filter(|&p| p != v.main));
    for pid in shells {
        let Some(p) = v.t.procs.get(pid) else {
            continue;
        };
        if p.exit.and_then(|s| s.code) != Some(127) {
            continue;
        }
        if p.argv.get(1).map(String::as_str) != Some("-c") {
            continue;
        }
        let cmd = p.argv.get(2).cloned().unwrap_or_default();
        let ran: HashSet<String> =
            v.tl.iter()
                .filter_map(|e| match &e.body {
                    Body::ExecAttempt { filename, argv, .. } => Some(vec![
                        basename(filename).to_string(),
                        argv.first()
                            .map(|a| basename(a).to_string())
                            .unwrap_or_default(),
                    ]),
                    _ => None,
                })
                .flatten()
                .collect();
        let missing = command_words(&cmd).into_iter().find(|w| {
            !w.contains('/')
                && !w.starts_with('$')
                && !SHELL_WORDS.contains(&w.as_str())
                && !ran.contains(w)
        });
        let path = v.env_var(pid, "PATH").unwrap_or_else(|| "(unset)".into());
        let mut evidence: Vec<usize> =
            v.tl.iter()
                .position(|e| e.pid == pid && matches!(e.body, Body::ExecAttempt { .. }))
                .into_iter()
                .collect();
        evidence.extend(v.exit_index(pid));
        let message = match missing {
            Some(w) => {
                let hint = match facts.locate(&w) {
                    Some(at) => {
                        format!(" (found at {at}: use the full path or set PATH in the crontab)")
                    }
                    None => " (not found anywhere usual on this host either)".to_string(),
                };
                format!("\"{w}\" not found in PATH={path}{hint}")
            }
            None => {
                format!("the shell exited 127 (command not found) running `{cmd}` with PATH={path}")
            }
        };
        d.push(Draft {
            kind: Kind::CommandNotFound,
            message,
            pid,
            evidence,
        });
        return;
    }
}

/// EMFILE/ENFILE anywhere in the job: the descriptor limit was hit.
fn fd_exhausted(v: &View, d: &mut Vec<Draft>) {
    let Some(i) = v.tl.iter().position(|e| {
        e.body
            .result()
            .is_some_and(|r| matches!(r.error, Some("EMFILE") | Some("ENFILE")))
    }) else {
        return;
    };
    let e = &v.tl[i];
    let err = e.body.result().and_then(|r| r.error).unwrap_or("EMFILE");
    let what = match &e.body {
        Body::Open { syscall, path, .. } => format!("{syscall}(\"{path}\")"),
        Body::Socket { family_name, .. } => format!("socket({family_name})"),
        Body::FdExhausted { syscall, .. } => format!("{syscall}()"),
        Body::ExecResult { .. } => "execve".to_string(),
        other => other.name().to_string(),
    };
    let mut evidence = vec![i];
    // Who set the limit: the last NOFILE change in this process or an ancestor.
    let mut lineage = vec![e.pid];
    let mut cur = e.pid;
    while let Some(p) = v.t.procs.get(cur) {
        if p.ppid == 0 || lineage.contains(&p.ppid) {
            break;
        }
        lineage.push(p.ppid);
        cur = p.ppid;
    }
    let set_by = v.tl[..i].iter().enumerate().rev().find(|(_, x)| {
        lineage.contains(&x.pid)
            && matches!(&x.body, Body::Rlimit { resource: "NOFILE", soft: Some(_), result, .. } if result.ok())
    });
    // Count what this process opened under the limit: since it set it, else since exec.
    let from = match set_by {
        Some((k, x)) if x.pid == e.pid => k,
        _ => v.exec_at.get(&e.pid).copied().unwrap_or(0),
    }
    .min(i);
    let opened = v.tl[from..i]
        .iter()
        .filter(|x| x.pid == e.pid)
        .filter(|x| matches!(x.body, Body::Open { .. } | Body::Socket { .. }))
        .filter(|x| x.body.result().is_some_and(|r| r.ok()))
        .count();
    let limit = match set_by {
        Some((k, x)) => {
            evidence.insert(0, k);
            let (sys, soft) = match &x.body {
                Body::Rlimit { syscall, soft, .. } => (*syscall, soft.unwrap_or(0)),
                _ => ("setrlimit", 0),
            };
            format!("NOFILE limit {soft} (set by {sys} in pid {})", x.pid)
        }
        None => match v.t.procs.get(e.pid).and_then(|p| p.nofile) {
            Some((soft, _)) => format!("NOFILE limit {soft} (inherited)"),
            None => "NOFILE limit set before the trace started (see /proc/PID/limits)".to_string(),
        },
    };
    let message = if err == "ENFILE" {
        format!("{what} failed ENFILE in pid {}: the whole system ran out of file descriptors (fs.file-max)", e.pid)
    } else {
        format!(
            "{what} failed {err} after {opened} successful opens in pid {}; {limit}",
            e.pid
        )
    };
    d.push(Draft {
        kind: Kind::FdExhausted,
        message,
        pid: e.pid,
        evidence,
    });
}

/// The job failed and a file it needed could not be opened (relative paths are
/// explained by the cwd).
fn open_failed(v: &View, d: &mut Vec<Draft>) {
    let found = v.tl.iter().enumerate().rev().find(|(i, e)| {
        v.is_job_work(*i)
            && matches!(&e.body, Body::Open { path, result, .. }
                if !is_noise_path(path)
                    && !is_optional_probe(path, result.error.unwrap_or(""))
                    && matches!(result.error, Some("ENOENT" | "EACCES" | "EPERM" | "EROFS" | "ENOSPC" | "ENOTDIR" | "EISDIR" | "ELOOP" | "EDQUOT")))
    });
    let Some((i, e)) = found else { return };
    let Body::Open {
        syscall,
        path,
        result,
        ..
    } = &e.body
    else {
        return;
    };
    let err = result.error.unwrap_or("?");
    let relative = !path.starts_with('/');
    if relative && err == "ENOENT" {
        d.push(Draft {
            kind: Kind::RelativePath,
            message: format!(
                "{syscall}(\"{path}\") ENOENT with cwd={} ({} runs jobs in $HOME; the path is relative to it)",
                v.cwd(e.pid).unwrap_or("?"),
                v.job.scheduler
            ),
            pid: e.pid,
            evidence: vec![i],
        });
        return;
    }
    let who = format!("pid {} ({}, uid {})", e.pid, e.comm, e.uid);
    d.push(Draft {
        kind: Kind::OpenFailed,
        message: format!("{syscall}(\"{path}\") failed {err} in {who}"),
        pid: e.pid,
        evidence: vec![i],
    });
}

const SOL_SOCKET: i64 = 1;
const SO_ERROR: i64 = 4;

/// The job failed and a connection it made failed: refused, timed out, unreachable.
/// A non-blocking connect (EINPROGRESS) is resolved by the SO_ERROR the program read.
fn connect_failed(v: &View, d: &mut Vec<Draft>) {
    let mut in_progress: HashMap<(u32, i32), (usize, String)> = HashMap::new();
    for (i, e) in v.tl.iter().enumerate() {
        if !v.is_job_work(i) {
            continue;
        }
        match &e.body {
            Body::Connect {
                fd,
                address,
                result,
            } => match result.error {
                Some("EINPROGRESS") | Some("EALREADY") => {
                    in_progress.insert((e.pid, *fd), (i, address.clone()));
                }
                Some("ENOENT") if address.contains("nscd") => {}
                Some(err) => {
                    d.push(Draft {
                        kind: Kind::ConnectFailed,
                        message: format!(
                            "connect to {address} failed {err} (pid {} {})",
                            e.pid, e.comm
                        ),
                        pid: e.pid,
                        evidence: vec![i],
                    });
                    return;
                }
                None => {}
            },
            Body::Getsockopt {
                fd,
                level: SOL_SOCKET,
                optname: SO_ERROR,
                value: Some(errno),
                ..
            } if *errno != 0 => {
                if let Some((ci, address)) = in_progress.remove(&(e.pid, *fd)) {
                    d.push(Draft {
                        kind: Kind::ConnectFailed,
                        message: format!(
                            "connect to {address} failed {} (non-blocking connect; the error came back through SO_ERROR) (pid {} {})",
                            crate::model::names::errno_name(*errno as i64),
                            e.pid,
                            e.comm
                        ),
                        pid: e.pid,
                        evidence: vec![ci, i],
                    });
                    return;
                }
            }
            _ => {}
        }
    }
}

const ENV_COMPARED: [&str; 9] = [
    "PATH",
    "HOME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "USER",
    "LOGNAME",
    "TZ",
    "PYTHONPATH",
];

/// The job failed where an earlier run of the same command succeeded, and its
/// environment differs in a variable that commonly matters.
fn env_mismatch(v: &View, d: &mut Vec<Draft>) {
    let me = v.t.summary(v.job);
    let my_env =
        v.t.procs
            .get(v.main)
            .map(|p| p.env.clone())
            .unwrap_or_default();
    let lookup = |env: &[String], k: &str| {
        env.iter().find_map(|kv| {
            kv.strip_prefix(k)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
    };
    for other in v.t.jobs() {
        if other.id >= v.job.id || !other.finished() {
            continue;
        }
        let s = v.t.summary(other);
        if s.command != me.command || !s.exit.is_some_and(|x| x.is_success()) {
            continue;
        }
        let their_env =
            v.t.procs
                .get(v.t.main_pid(other))
                .map(|p| p.env.clone())
                .unwrap_or_default();
        if their_env.is_empty() || my_env.is_empty() {
            continue;
        }
        let diffs: Vec<String> = ENV_COMPARED
            .iter()
            .filter_map(|k| {
                let (a, b) = (lookup(&their_env, k), lookup(&my_env, k));
                (a != b).then(|| {
                    format!(
                        "{k} was {} in job {} (ran fine) and is {} now",
                        a.unwrap_or_else(|| "unset".into()),
                        other.id,
                        b.unwrap_or_else(|| "unset".into())
                    )
                })
            })
            .collect();
        if !diffs.is_empty() {
            d.push(Draft {
                kind: Kind::EnvMismatch,
                message: diffs.join("; "),
                pid: v.main,
                evidence: v
                    .tl
                    .iter()
                    .position(|e| e.pid == v.main && matches!(e.body, Body::ExecAttempt { .. }))
                    .into_iter()
                    .collect(),
            });
            return;
        }
    }
}

/// The job's command died from a signal; name the sender when the trace saw it.
fn killed_by_signal(v: &View, d: &mut Vec<Draft>) {
    let Some(status) = v.main_exit else { return };
    let Some(sig) = status.signal else { return };
    let name = crate::model::names::signal_name(sig);
    let sent = v.tl.iter().enumerate().rev().find(|(_, e)| {
        matches!(&e.body, Body::Signal { target_pid, signal, .. } if *target_pid == v.main && *signal == sig)
    });
    let mut evidence: Vec<usize> = Vec::new();
    let by = match sent {
        // SI_KERNEL or a fault: the kernel raised it in whatever task was running.
        Some((i, e)) if matches!(&e.body, Body::Signal { code, .. } if *code > 0) => {
            evidence.push(i);
            if sig == 9 {
                " (raised by the kernel: the OOM killer or a cgroup memory limit)".to_string()
            } else {
                " (raised by the kernel: a fault in the program)".to_string()
            }
        }
        Some((i, e)) => {
            evidence.push(i);
            if e.pid == v.main {
                " (sent by the job itself)".to_string()
            } else {
                format!(" (sent by pid {} {})", e.pid, e.comm)
            }
        }
        None if sig == 9 => " (no sender in the trace: the kernel's OOM killer, a cgroup limit or a supervisor's timeout)".to_string(),
        None => String::new(),
    };
    let core = if status.core_dumped {
        ", core dumped"
    } else {
        ""
    };
    evidence.extend(v.exit_index(v.main));
    d.push(Draft {
        kind: Kind::KilledBySignal,
        message: format!(
            "`{}` (pid {}) was killed by {name}{core}{by}",
            v.t.summary(v.job).command,
            v.main
        ),
        pid: v.main,
        evidence,
    });
}

/// The command exited non-zero; point at the last failing call before the exit.
fn nonzero_exit(v: &View, d: &mut Vec<Draft>) {
    let Some(code) = v.main_exit.and_then(|s| s.code) else {
        return;
    };
    if code == 0 {
        return;
    }
    let exit_i = v.exit_index(v.main);
    let end = exit_i.unwrap_or(v.tl.len());
    let last = v.tl[..end]
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, _)| v.is_job_work(*i))
        .find_map(|(i, e)| notable_failure(e).map(|s| (i, s, e.pid)));
    let mut evidence: Vec<usize> = Vec::new();
    let tail = match last {
        Some((i, what, pid)) => {
            evidence.push(i);
            format!("; last failing call before it: {what} in pid {pid}")
        }
        None => String::new(),
    };
    evidence.extend(exit_i);
    d.push(Draft {
        kind: Kind::NonzeroExit,
        message: format!("`{}` exited {code}{tail}", v.t.summary(v.job).command),
        pid: v.main,
        evidence,
    });
}

/// The scheduler tried to mail the job's output and the mailer failed.
fn output_lost(v: &View, d: &mut Vec<Draft>) {
    // In pid order: live and replay must pick the same mailer.
    let mut mailers: Vec<u32> = v.mailers.iter().copied().collect();
    mailers.sort_unstable();
    for pid in mailers {
        let attempt =
            v.tl.iter()
                .position(|e| e.pid == pid && matches!(e.body, Body::ExecAttempt { .. }));
        let result =
            v.tl.iter()
                .position(|e| e.pid == pid && matches!(e.body, Body::ExecResult { .. }));
        let filename = attempt
            .and_then(|i| match &v.tl[i].body {
                Body::ExecAttempt { filename, .. } => Some(filename.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "sendmail".into());
        let exec_err = result
            .and_then(|i| v.tl[i].body.result())
            .and_then(|r| r.error);
        let exit = v.t.procs.get(pid).and_then(|p| p.exit);
        let why = match (exec_err, exit) {
            (Some(err), _) => format!("{filename} could not be run ({err}): no MTA is installed"),
            (None, Some(s)) if !s.is_success() => format!("{filename} {s}"),
            _ => continue,
        };
        let mut evidence: Vec<usize> = attempt.into_iter().chain(result).collect();
        evidence.extend(v.exit_index(pid));
        d.push(Draft {
            kind: Kind::OutputLost,
            message: format!(
                "the job wrote output and {} mailed it with {why}: the output is lost (fix the MTA, or redirect the job's output to a file)",
                v.job.scheduler
            ),
            pid,
            evidence,
        });
        return;
    }
    // Debian's cron looks for its mailer only when the job wrote output; without one
    // it logs "No MTA installed, discarding output", and its stat is the only trace.
    let no_mta = v.tl.iter().enumerate().find(|(i, e)| {
        !v.is_job_work(*i)
            && matches!(&e.body, Body::Stat { path, result }
                if basename(path) == "sendmail" && result.error == Some("ENOENT"))
    });
    if let Some((i, e)) = no_mta {
        let path = match &e.body {
            Body::Stat { path, .. } => path.as_str(),
            _ => "sendmail",
        };
        d.push(Draft {
            kind: Kind::OutputLost,
            message: format!(
                "the job wrote output, but {path} does not exist (no MTA installed): {} discarded the output; install an MTA or redirect the job's output to a file",
                v.job.scheduler
            ),
            pid: e.pid,
            evidence: vec![i],
        });
    }
}

/// No exit by the end of the trace; and other runs of the same job overlapping it.
fn still_running(v: &View, d: &mut Vec<Draft>) {
    if v.job.finished() {
        return;
    }
    let me = v.t.summary(v.job);
    let overlapping: Vec<u64> =
        v.t.jobs()
            .iter()
            .filter(|o| o.id != v.job.id && o.start_ns < v.job.start_ns && !o.finished())
            .filter(|o| v.t.summary(o).command == me.command)
            .map(|o| o.id)
            .collect();
    let last_ts = v.t.counters.last_ts.max(v.job.start_ns);
    let mut message = format!(
        "`{}` (pid {}) had not exited when the trace ended ({:.1} s after it started{})",
        me.command,
        v.main,
        last_ts.saturating_sub(v.job.start_ns) as f64 / 1e9,
        if v.job.started_before_trace {
            ", and it was already running when the trace began"
        } else {
            ""
        }
    );
    if !overlapping.is_empty() {
        let ids: Vec<String> = overlapping.iter().map(|i| format!("job {i}")).collect();
        message.push_str(&format!(
            "; it overlaps earlier runs still going: {}",
            ids.join(", ")
        ));
    }
    d.push(Draft {
        kind: Kind::StillRunning,
        message,
        pid: v.main,
        evidence: vec![0],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        facts::RecordedFacts,
        model::event::SysResult,
        testutil::{ev, exec_events, snapshot_root},
    };

    fn root() -> Event {
        snapshot_root(100)
    }

    fn exit(pid: u32, ts: u64, code: i32) -> Event {
        ev(
            pid,
            ts,
            Body::Exit {
                status: Some(ExitStatus::code(code)),
            },
        )
    }

    fn open(pid: u32, ts: u64, path: &str, ret: i64) -> Event {
        ev(
            pid,
            ts,
            Body::Open {
                syscall: "openat",
                dfd: -100,
                path: path.into(),
                flags: 0,
                mode: 0,
                result: SysResult::new(ret),
            },
        )
    }

    /// One cron run: 100 forks `leader`, which forks `leader+1` running `sh -c cmd`.
    fn cron_job(
        t: &mut Tracker,
        leader: u32,
        ts: u64,
        cmd: &str,
        env: &[&str],
        body: Vec<Event>,
        code: i32,
    ) {
        let sh = leader + 1;
        t.push(ev(
            100,
            ts,
            Body::Fork {
                child_pid: leader,
                clone_flags: 0,
            },
        ));
        t.push(ev(
            leader,
            ts + 1,
            Body::Fork {
                child_pid: sh,
                clone_flags: 0,
            },
        ));
        for e in exec_events(sh, ts + 2, &["/bin/sh", "-c", cmd], env, 0) {
            t.push(e);
        }
        for e in body {
            t.push(e);
        }
        t.push(exit(sh, ts + 50, code));
        t.push(exit(leader, ts + 60, 0));
    }

    fn kinds(t: &Tracker, job: usize) -> Vec<String> {
        let mut facts = RecordedFacts::default();
        diagnose(t, &t.jobs()[job], &mut facts, true)
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn a_healthy_job_full_of_routine_failures_has_no_finding() {
        let mut t = Tracker::default();
        t.push(root());
        let noise = vec![
            open(101, 10, "/usr/lib/locale/C.UTF-8/LC_CTYPE", -2),
            open(101, 11, "/root/.curlrc", -2),
            ev(
                101,
                12,
                Body::Connect {
                    fd: 3,
                    address: "unix:/var/run/nscd/socket".into(),
                    result: SysResult::new(-2),
                },
            ),
            open(101, 13, "/etc/hostname", 3),
        ];
        cron_job(
            &mut t,
            200,
            1,
            "backup --all",
            &["PATH=/usr/bin:/bin"],
            noise,
            0,
        );
        assert!(kinds(&t, 0).is_empty(), "{:?}", kinds(&t, 0));
    }

    #[test]
    fn chdir_failure_before_exec_leads_and_no_exec_follows() {
        let mut t = Tracker::default();
        t.push(root());
        t.push(ev(
            100,
            1,
            Body::Fork {
                child_pid: 300,
                clone_flags: 0,
            },
        ));
        t.push(ev(
            300,
            2,
            Body::Fork {
                child_pid: 301,
                clone_flags: 0,
            },
        ));
        t.push(ev(
            301,
            3,
            Body::Chdir {
                path: "/home/gone".into(),
                result: SysResult::new(-2),
            },
        ));
        t.push(exit(301, 4, 1));
        t.push(exit(300, 5, 0));
        let k = kinds(&t, 0);
        assert_eq!(k.first().map(String::as_str), Some("chdir_failed"), "{k:?}");
        assert!(k.contains(&"no_exec".to_string()), "{k:?}");
    }

    #[test]
    fn a_run_that_fails_with_a_different_path_than_a_good_run_is_env_mismatch() {
        let mut t = Tracker::default();
        t.push(root());
        cron_job(
            &mut t,
            200,
            1,
            "report.sh",
            &["PATH=/usr/local/bin:/usr/bin:/bin"],
            vec![],
            0,
        );
        cron_job(
            &mut t,
            400,
            1000,
            "report.sh",
            &["PATH=/usr/bin:/bin"],
            vec![],
            1,
        );
        let mut facts = RecordedFacts::default();
        let f = diagnose(&t, &t.jobs()[1], &mut facts, true);
        let em = f
            .iter()
            .find(|f| f.kind == "env_mismatch")
            .expect("env_mismatch");
        assert!(
            em.message
                .contains("PATH was /usr/local/bin:/usr/bin:/bin in job 1"),
            "{}",
            em.message
        );
        assert_eq!(f.last().unwrap().kind, "nonzero_exit");
    }

    #[test]
    fn a_failed_exec_followed_by_a_hit_is_a_path_search_not_a_finding() {
        let mut t = Tracker::default();
        t.push(root());
        let mut body = exec_events(202, 10, &["/usr/local/bin/tool"], &[], -2);
        body.extend(exec_events(202, 20, &["/usr/bin/tool"], &[], 0));
        body.insert(
            0,
            ev(
                201,
                9,
                Body::Fork {
                    child_pid: 202,
                    clone_flags: 0,
                },
            ),
        );
        body.push(exit(202, 30, 0));
        cron_job(
            &mut t,
            200,
            1,
            "tool",
            &["PATH=/usr/local/bin:/usr/bin"],
            body,
            0,
        );
        assert!(kinds(&t, 0).is_empty(), "{:?}", kinds(&t, 0));
    }

    #[test]
    fn command_words_finds_commands_in_position() {
        assert_eq!(
            command_words("go build ./... && ./deploy.sh"),
            vec!["go", "./deploy.sh"]
        );
        assert_eq!(
            command_words("FOO=1 backup --all > /tmp/x 2>&1; echo done | logger"),
            vec!["backup", "echo", "logger"]
        );
        assert_eq!(
            command_words("cd /srv && 'my tool' -x"),
            vec!["cd", "my tool"]
        );
    }

    #[test]
    fn noise_paths() {
        assert!(is_noise_path("/usr/lib/locale/C.UTF-8/LC_CTYPE"));
        assert!(is_noise_path("/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(!is_noise_path("/etc/myapp/config.ini"));
        assert!(!is_noise_path("config.ini"));
        assert!(is_optional_probe("/root/.config/curlrc", "ENOENT"));
        assert!(is_optional_probe("/root/.curlrc", "ENOENT"));
        assert!(!is_optional_probe("../data/in.csv", "ENOENT"));
        assert!(!is_optional_probe("/root/.curlrc", "EACCES"));
    }
}
