//! Getting from the scheduler's fork to the job's program: the directory, the exec
//! itself, the shell's PATH search.
use foldhash::{HashMap, HashSet};

use super::{
    view::{basename, ExecTry, View},
    Draft, Kind,
};
use crate::{
    facts::HostFacts,
    model::{event::Body, process::resolve},
};

/// The scheduler's child could not enter the job's directory ($HOME for cron).
pub(super) fn chdir_failed(v: &View, d: &mut Vec<Draft>) {
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
pub(super) fn no_exec(v: &View, d: &mut Vec<Draft>) {
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
pub(super) fn exec_failures(v: &View, facts: &mut dyn HostFacts, d: &mut Vec<Draft>) -> bool {
    let attempts = v.exec_attempts();
    let mut found = false;
    // A failed exec the job recovered from (an optional hook, bash running a script
    // without #! after ENOEXEC) is not a cause.
    if !v.failed() {
        return false;
    }
    let walked = path_walks(v, &attempts, facts, d);
    found |= !walked.is_empty();
    for (k, a) in attempts.iter().enumerate() {
        let (i, filename, argv, ret) = (a.at, a.filename, a.argv, a.ret);
        if ret >= 0 || v.mailers.contains(&v.tl[i].pid) || walked.contains(&i) {
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
        let evidence = vec![i];
        let shown = argv.first().map(String::as_str).unwrap_or(filename);
        let how = ExecContext {
            cwd: v.cwd(pid),
            scheduler: &v.job.scheduler,
            shown,
            uid: v.tl[i].uid,
            near: v.near_dirs(pid),
        };
        let (kind, message) = exec_failure(filename, errno, &how, facts);
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

/// `env NAME`, `xargs NAME`, `nice NAME`, `timeout 5 NAME`, `sudo NAME`: programs that
/// look a name up on PATH by trying `exec` in each directory. A process whose failed
/// execs all ask for one name in several directories, with no success after, did not
/// find NAME on PATH: one `command_not_found`, not an `exec_failed` per directory.
/// Returns the indices of the attempts it explained.
fn path_walks(
    v: &View,
    attempts: &[ExecTry],
    facts: &mut dyn HostFacts,
    d: &mut Vec<Draft>,
) -> Vec<usize> {
    let mut explained = Vec::new();
    // Each process's attempts, grouped in one pass (in order of first attempt).
    let mut order: Vec<u32> = Vec::new();
    let mut by_pid: HashMap<u32, Vec<&ExecTry>> = HashMap::default();
    for a in attempts {
        let pid = v.tl[a.at].pid;
        by_pid
            .entry(pid)
            .or_insert_with(|| {
                order.push(pid);
                Vec::new()
            })
            .push(a);
    }
    for pid in order {
        if v.mailers.contains(&pid) {
            continue;
        }
        let mine = &by_pid[&pid];
        let Some(first_fail) = mine.iter().position(|a| a.ret == -(libc::ENOENT as i64)) else {
            continue;
        };
        let walk: Vec<&&ExecTry> = mine[first_fail..]
            .iter()
            .take_while(|a| a.ret == -(libc::ENOENT as i64))
            .collect();
        let name = basename(walk[0].filename);
        let same_name = walk
            .iter()
            .all(|a| basename(a.filename) == name && a.filename.starts_with('/'));
        let dirs: HashSet<&str> = walk
            .iter()
            .map(|a| a.filename.rsplit_once('/').map_or("", |(d, _)| d))
            .collect();
        let recovered = mine[first_fail + walk.len()..].iter().any(|a| a.ret >= 0);
        if walk.len() < 2 || !same_name || dirs.len() < 2 || recovered {
            continue;
        }
        let path = v.env_var(pid, "PATH").unwrap_or_else(|| {
            let mut ds: Vec<&str> = dirs.iter().copied().collect();
            ds.sort_unstable();
            ds.join(":")
        });
        let launcher =
            v.t.procs
                .get(pid)
                .and_then(|p| p.argv.first().cloned())
                .map(|a| basename(&a).to_string())
                .unwrap_or_default();
        let mut evidence: Vec<usize> = walk.iter().map(|a| a.at).collect();
        evidence.extend(v.exit_index(pid));
        d.push(Draft {
            kind: Kind::CommandNotFound,
            message: format!(
                "{} (run by {launcher}, pid {pid})",
                not_in_path(name, &path, facts)
            ),
            pid,
            evidence,
        });
        explained.extend(walk.iter().map(|a| a.at));
    }
    explained
}

/// A command the job's shell did not find on PATH, from the shell's own search: bash
/// and dash look a command up by `stat`ing DIR/NAME in each PATH directory (failed
/// stats are all the kernel keeps of a job's), and exec only what they found. bash
/// then forks a child that exits 127 without exec'ing; dash exits 127 itself for a
/// `-c` command and otherwise goes on. Either 127 confirms the miss, whatever the job's
/// exit: a script may go on and exit 0. A search not followed by a 127 may be a
/// `command -v NAME` probe; it is named only when NAME is installed somewhere cron's
/// PATH does not reach, which is the runbook's case (`/usr/local/go/bin`).
/// Returns the pids whose misses it named (the searching shell and its child).
pub(super) fn path_search_misses(
    v: &View,
    facts: &mut dyn HostFacts,
    d: &mut Vec<Draft>,
) -> HashSet<u32> {
    let mut explained = HashSet::default();
    let mut searches = stat_searches(v);
    if searches.is_empty() {
        return explained;
    }
    let fe = ForksAndExecs::of(v);
    for &pid in &v.job.members {
        if v.mailers.contains(&pid) {
            continue;
        }
        let Some(runs) = searches.remove(&pid) else {
            continue;
        };
        // Once per process: a loader's failed stats of its library directories make
        // dozens of searches, and the environment scan for each was a tenth of a replay.
        let path = v.env_var(pid, "PATH");
        let path_dirs: Option<Vec<&str>> = path.as_deref().map(|p| {
            p.split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| d.trim_end_matches('/'))
                .collect()
        });
        for search in runs {
            let whole_path = path_dirs.as_ref().is_some_and(|want| {
                !want.is_empty()
                    && want.iter().all(|w| search.dirs.contains(w))
                    && search.dirs.iter().all(|d| want.contains(d))
            });
            let confirmed = confirm_127(v, &fe, pid, *search.at.last().unwrap_or(&0));
            let located = if confirmed.is_none() && whole_path && search.dirs.len() >= 2 {
                facts.locate(search.name)
            } else {
                None
            };
            if confirmed.is_none() && located.is_none() {
                continue;
            }
            let runner = shell_role(v.t.procs.get(pid).map_or(&[][..], |p| &p.argv[..]));
            let shown_path = path.clone().unwrap_or_else(|| search.dirs.join(":"));
            let went_on = match v.main_exit {
                Some(s) if s.is_success() => "; the job went on and exited 0",
                _ => "",
            };
            let how = match confirmed {
                Some(c) if c != pid => format!("its child pid {c} exited 127 without exec"),
                Some(_) => "it exited 127".to_string(),
                None => "a lookup with no exec after it".to_string(),
            };
            let mut evidence = search.at.clone();
            evidence.extend(confirmed.and_then(|c| v.exit_index(c)));
            d.push(Draft {
                kind: Kind::CommandNotFound,
                message: format!(
                    "{} (looked up by {runner}, pid {pid}: {how}{went_on})",
                    not_in_path(search.name, &shown_path, facts)
                ),
                pid,
                evidence,
            });
            explained.insert(pid);
            explained.extend(confirmed);
        }
    }
    explained
}

/// How a shell process is named in a message: the script it runs (`/opt/backup.sh`,
/// `bash /opt/backup.sh`), or `sh -c` for a crontab command line.
pub(super) fn shell_role(argv: &[String]) -> String {
    const SHELLS: [&str; 6] = ["sh", "bash", "dash", "zsh", "ksh", "mksh"];
    let first = argv.first().map(String::as_str).unwrap_or("the shell");
    if !SHELLS.contains(&basename(first)) {
        return first.to_string();
    }
    match argv.get(1).map(String::as_str) {
        Some("-c") => format!("{} -c", basename(first)),
        Some(script) if !script.starts_with('-') => format!("{} running {script}", basename(first)),
        _ => basename(first).to_string(),
    }
}

/// One run of a shell's PATH search: failed stats of DIR/NAME for one NAME.
struct StatSearch<'a> {
    name: &'a str,
    dirs: Vec<&'a str>,
    /// Timeline indices of the stats.
    at: Vec<usize>,
}

/// The failed `stat(DIR/NAME)` runs of each process, in order (one pass over the
/// timeline: a storm's job has thousands of processes): a new run starts when NAME
/// changes or a directory repeats.
fn stat_searches<'a>(v: &View<'a>) -> HashMap<u32, Vec<StatSearch<'a>>> {
    let mut out: HashMap<u32, Vec<StatSearch<'a>>> = HashMap::default();
    for (i, e) in v.tl.iter().enumerate() {
        let Body::Stat { path, result } = &e.body else {
            continue;
        };
        if !matches!(result.error, Some("ENOENT" | "ENOTDIR")) || !v.is_job_work(i) {
            continue;
        }
        let Some((dir, name)) = path.rsplit_once('/') else {
            continue;
        };
        if !path.starts_with('/') || name.is_empty() || name.starts_with('.') {
            continue;
        }
        let dir = if dir.is_empty() { "/" } else { dir };
        let runs = out.entry(e.pid).or_default();
        match runs.last_mut() {
            Some(s) if s.name == name && !s.dirs.contains(&dir) => {
                s.dirs.push(dir);
                s.at.push(i);
            }
            _ => runs.push(StatSearch {
                name,
                dirs: vec![dir],
                at: vec![i],
            }),
        }
    }
    out
}

/// Per process, in timeline order: the forks it made (index, child) and its exec
/// attempts (index). One pass, so each confirmation is a lookup, not a scan: a
/// storm's job has thousands of searches.
#[derive(Default)]
struct ForksAndExecs {
    forks: HashMap<u32, Vec<(usize, u32)>>,
    execs: HashMap<u32, Vec<usize>>,
}

impl ForksAndExecs {
    fn of(v: &View) -> Self {
        let mut x = ForksAndExecs::default();
        for (i, e) in v.tl.iter().enumerate() {
            match e.body {
                Body::Fork { child_pid, .. } => {
                    x.forks.entry(e.pid).or_default().push((i, child_pid))
                }
                Body::ExecAttempt { .. } => x.execs.entry(e.pid).or_default().push(i),
                _ => {}
            }
        }
        x
    }

    fn execs_after(&self, pid: u32, at: usize) -> bool {
        self.execs
            .get(&pid)
            .is_some_and(|v| v.last().is_some_and(|&last| last > at))
    }

    fn next_fork(&self, pid: u32, after: usize) -> Option<(usize, u32)> {
        let f = self.forks.get(&pid)?;
        f.get(f.partition_point(|&(i, _)| i <= after)).copied()
    }
}

/// After a search ending at timeline index `after`: the pid whose exit 127 says the
/// command was not found: the searching shell's first child forked after it, if that
/// child never exec'd and exited 127 (bash), or the shell itself, if it exited 127
/// with no exec after the search (dash running a `-c` command).
fn confirm_127(v: &View, fe: &ForksAndExecs, pid: u32, after: usize) -> Option<u32> {
    let exited_127 =
        |p: u32| v.t.procs.get(p).and_then(|p| p.exit).and_then(|s| s.code) == Some(127);
    if let Some((at, child)) = fe.next_fork(pid, after) {
        if exited_127(child) && !fe.execs_after(child, at) {
            return Some(child);
        }
    }
    (exited_127(pid) && !fe.execs_after(pid, after)).then_some(pid)
}

/// What an exec failure's message names besides the file.
pub(super) struct ExecContext<'a> {
    /// The directory a relative path was taken from.
    pub cwd: Option<&'a str>,
    pub scheduler: &'a str,
    /// The word as the job's command wrote it.
    pub shown: &'a str,
    pub uid: u32,
    /// Where a relative path may have been meant to be taken from (see `near_dirs`).
    pub near: Vec<String>,
}

/// The finding for an exec of `filename` that failed with `errno`, explained by what
/// the host says of the file. Shared by the live rules and `tracer crontab`'s checks
/// before a run, so both say the same thing.
pub(super) fn exec_failure(
    filename: &str,
    errno: i64,
    how: &ExecContext,
    facts: &mut dyn HostFacts,
) -> (Kind, String) {
    let err = crate::model::names::errno_name(errno);
    let shown = how.shown;
    match errno {
        // A relative path is the cwd's fault only if the file is somewhere else.
        2 if !filename.starts_with('/') && filename.contains('/') => {
            match facts.locate_relative(filename, &how.near) {
                Some(at) => (
                    Kind::RelativePath,
                    format!(
                        "exec \"{filename}\" ENOENT with cwd={} (it is at {at}; {} runs jobs in $HOME: use an absolute path or cd first)",
                        how.cwd.unwrap_or("?"),
                        how.scheduler
                    ),
                ),
                None => (
                    Kind::ExecFailed,
                    format!(
                        "exec \"{filename}\" ENOENT with cwd={}: no such file there, nor anywhere usual on this host",
                        how.cwd.unwrap_or("?")
                    ),
                ),
            }
        }
        2 => {
            // What the host says of the file the job named, from the job's cwd.
            let target = resolve(how.cwd, filename).unwrap_or_else(|| filename.to_string());
            let f = facts.file(&target);
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
            let target = resolve(how.cwd, filename).unwrap_or_else(|| filename.to_string());
            let f = facts.file(&target);
            let why = if f.is_dir {
                "it is a directory".to_string()
            } else if f.exists && f.mode & 0o111 == 0 {
                format!(
                    "it lacks the exec bit (mode {:04o}): chmod +x {filename}",
                    f.mode
                )
            } else if f.noexec_mount {
                "it is on a filesystem mounted noexec: move it or run it with its interpreter"
                    .to_string()
            } else {
                format!(
                    "permission denied for uid {} (a directory on its path may not be searchable)",
                    how.uid
                )
            };
            (
                Kind::NotExecutable,
                format!("\"{filename}\" cannot be executed: {why}"),
            )
        }
        8 => (
            Kind::ExecFailed,
            format!("exec \"{filename}\" ENOEXEC: not a binary and no #! line"),
        ),
        _ => (
            Kind::ExecFailed,
            format!("exec \"{filename}\" failed {err}"),
        ),
    }
}

/// The message for a command word the shell did not find along `path`.
pub(super) fn not_in_path(word: &str, path: &str, facts: &mut dyn HostFacts) -> String {
    let hint = match facts.locate(word) {
        Some(at) => format!(" (found at {at}: use the full path or set PATH in the crontab)"),
        None => " (not found anywhere usual on this host either)".to_string(),
    };
    format!("\"{word}\" not found in PATH={path}{hint}")
}

/// Words the shell runs itself (dash and bash builtins, keywords): never looked up
/// on PATH, so never a missing command.
pub(super) const SHELL_BUILTINS: [&str; 56] = [
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "in", "function", "{", "}", "!", "[[", "]]", "time", "cd", "echo", "exit", "export", "set",
    "unset", "test", "[", "true", "false", "read", "printf", "eval", "exec", "ulimit", "umask",
    "trap", "wait", "kill", ":", ".", "source", "pwd", "type", "command", "alias", "shift",
    "readonly", "local", "return", "getopts", "hash", "builtin", "declare", "let", "select",
];

/// Words that run the word after them (`exec x`, `nohup x`, `sudo -u u x`,
/// `timeout 5 x`): the command position passes on to it.
const WRAPPERS: [&str; 12] = [
    "exec", "command", "builtin", "time", "!", "nohup", "nice", "env", "sudo", "timeout", "xargs",
    "stdbuf",
];

/// Options of wrappers that take the next word as their value.
const WRAPPER_OPTIONS_WITH_VALUE: [&str; 6] = ["-u", "-g", "-n", "-s", "-k", "-C"];

/// Words in command position of a shell command line (best effort, no expansions).
pub(super) fn command_words(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect_cmd = true;
    let mut word = String::new();
    let mut quote: Option<char> = None;
    // After a wrapper: its options (and their values) come before the command.
    let mut wrapped = false;
    let mut skip_value = false;
    let mut flush = |word: &mut String, expect_cmd: &mut bool, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if *expect_cmd {
            if skip_value {
                skip_value = false;
            } else if wrapped && word.starts_with('-') {
                skip_value = WRAPPER_OPTIONS_WITH_VALUE.contains(&word.as_str());
            } else if wrapped && word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                // `timeout 5m x`, `nice 10 x`: a number, not a command.
            } else if !word.contains('=') || word.starts_with('=') {
                // VAR=value prefixes keep the command position open.
                out.push(word.clone());
                wrapped = WRAPPERS.contains(&word.as_str());
                *expect_cmd = wrapped;
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
/// (A fallback for traces without the shell's failed stats: `path_search_misses`
/// names the command from the search itself.)
pub(super) fn command_not_found(v: &View, facts: &mut dyn HostFacts, d: &mut Vec<Draft>) {
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
        let script = v.script.as_ref().filter(|_| pid == v.main);
        let cmd = match (p.argv.get(1).map(String::as_str), script) {
            (Some("-c"), _) => p.argv.get(2).cloned().unwrap_or_default(),
            (None, Some(s)) => s.commands.clone(),
            _ => continue,
        };
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
                && !SHELL_BUILTINS.contains(&w.as_str())
                && !ran.contains(w)
        });
        let path = v
            .env_var(pid, "PATH")
            .or_else(|| script.and_then(|s| s.path.clone()))
            .unwrap_or_else(|| "(unset)".into());
        let mut evidence: Vec<usize> =
            v.tl.iter()
                .position(|e| e.pid == pid && matches!(e.body, Body::ExecAttempt { .. }))
                .into_iter()
                .collect();
        evidence.extend(v.exit_index(pid));
        let message = match missing {
            Some(w) => not_in_path(&w, &path, facts),
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
