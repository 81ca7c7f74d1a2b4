//! Files and descriptors: a file the job needed, a descriptor limit it hit.
use super::{
    noise::{is_noise_path, is_optional_probe, reaped_nothing},
    view::View,
    Draft, Kind,
};
use crate::{facts::HostFacts, model::event::Body};

/// EMFILE/ENFILE in the job's own work, when the job then failed (a program that
/// probes its limit and carries on is fine): the descriptor limit was hit. Calls with
/// their own limits behind EMFILE (inotify, fanotify) name that limit, not NOFILE.
pub(super) fn fd_exhausted(v: &View, d: &mut Vec<Draft>) {
    if !v.failed() {
        return;
    }
    let Some(i) = v.tl.iter().position(|e| {
        !v.mailers.contains(&e.pid)
            && e.body
                .result()
                .is_some_and(|r| matches!(r.error, Some("EMFILE") | Some("ENFILE")))
    }) else {
        return;
    };
    let e = &v.tl[i];
    let err = e.body.result().and_then(|r| r.error).unwrap_or("EMFILE");
    if let Body::FdExhausted { syscall, .. } = &e.body {
        if let Some(limit) = own_limit(syscall) {
            d.push(Draft {
                kind: Kind::FdExhausted,
                message: format!(
                    "{syscall}() failed {err} in pid {} ({}): not the descriptor limit but {limit}",
                    e.pid, e.comm
                ),
                pid: e.pid,
                evidence: vec![i],
            });
            return;
        }
    }
    let what = match &e.body {
        Body::Open { syscall, path, .. } => format!("{syscall}(\"{path}\")"),
        Body::Socket { family_name, .. } => format!("socket({family_name})"),
        Body::FdExhausted { syscall, .. } => format!("{syscall}()"),
        Body::ExecAttempt { filename, .. } => format!("execve(\"{filename}\")"),
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

/// A dotfile is usually an optional setting (`~/.curlrc`), but not when it is the last
/// thing a process failed before it exited non-zero (`~/.pgpass`, `.env`, a key):
/// what the process did next decides, not the path's shape.
fn needed_dotfile<'a>(v: &'a View) -> Option<(usize, &'a crate::model::event::Event)> {
    for &pid in &v.job.members {
        if v.mailers.contains(&pid) {
            continue;
        }
        let failed =
            v.t.procs
                .get(pid)
                .and_then(|p| p.exit)
                .is_some_and(|s| !s.is_success());
        let Some(exit_at) = v.exit_index(pid).filter(|_| failed) else {
            continue;
        };
        let last_failure = v.tl[..exit_at].iter().enumerate().rev().find(|(j, e)| {
            e.pid == pid
                && e.body.result().is_some_and(|r| !r.ok())
                && !reaped_nothing(e)
                && v.is_job_work(*j)
        });
        if let Some((j, e)) = last_failure {
            if matches!(&e.body, Body::Open { path, result, .. }
                if is_optional_probe(path, result.error.unwrap_or("")) && !is_noise_path(path))
            {
                return Some((j, e));
            }
        }
    }
    None
}

/// Calls whose EMFILE means a limit of their own.
fn own_limit(syscall: &str) -> Option<&'static str> {
    match syscall {
        "inotify_init" | "inotify_init1" => {
            Some("the per-user inotify instance limit (sysctl fs.inotify.max_user_instances)")
        }
        "fanotify_init" => Some("the fanotify group limit (128 per user)"),
        _ => None,
    }
}

/// The job failed and a file it needed could not be opened (relative paths are
/// explained by the cwd).
pub(super) fn open_failed(v: &View, facts: &mut dyn HostFacts, d: &mut Vec<Draft>) {
    // The body first: `is_job_work` walks the process tree.
    let found = v.tl.iter().enumerate().rev().find(|(i, e)| {
        matches!(&e.body, Body::Open { path, result, .. }
                if !is_noise_path(path)
                    && !is_optional_probe(path, result.error.unwrap_or(""))
                    && matches!(result.error, Some("ENOENT" | "EACCES" | "EPERM" | "EROFS" | "ENOSPC" | "ENOTDIR" | "EISDIR" | "ELOOP" | "EDQUOT")))
            && v.is_job_work(*i)
    });
    let Some((i, e)) = found.or_else(|| needed_dotfile(v)) else {
        return;
    };
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
    // The cwd is the cause only if the file is where the job must have meant it.
    let elsewhere = (relative && err == "ENOENT")
        .then(|| facts.locate_relative(path, &v.near_dirs(e.pid)))
        .flatten();
    if let Some(at) = elsewhere {
        d.push(Draft {
            kind: Kind::RelativePath,
            message: format!(
                "{syscall}(\"{path}\") ENOENT with cwd={} (it is at {at}; {} runs jobs in $HOME and the path is relative to it)",
                v.cwd(e.pid).unwrap_or("?"),
                v.job.scheduler
            ),
            pid: e.pid,
            evidence: vec![i],
        });
        return;
    }
    let path = if relative {
        format!("{path}\" from cwd=\"{}", v.cwd(e.pid).unwrap_or("?"))
    } else {
        path.clone()
    };
    let who = format!("pid {} ({}, uid {})", e.pid, e.comm, e.uid);
    d.push(Draft {
        kind: Kind::OpenFailed,
        message: format!("{syscall}(\"{path}\") failed {err} in {who}"),
        pid: e.pid,
        evidence: vec![i],
    });
}
