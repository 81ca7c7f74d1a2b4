//! How the job ended: a signal, a non-zero exit, or not at all by the end of the trace.
use super::{
    noise::{is_noise_path, is_optional_probe},
    view::View,
    Draft, Kind,
};
use crate::model::event::{Body, Event};

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
        Body::ExecAttempt { filename, .. } => Some(format!("execve(\"{filename}\") {err}")),
        Body::FdExhausted { syscall, .. } => Some(format!("{syscall}() {err}")),
        _ => None,
    }
}

/// The job's command died from a signal; name the sender when the trace saw it.
pub(super) fn killed_by_signal(v: &View, d: &mut Vec<Draft>) {
    let Some(status) = v.main_exit else { return };
    // The command itself died of the signal, or its shell reports (exit 128+N) that
    // the process doing the work did: name the one that was killed.
    let (victim, sig, status, shell_code) = match (status.signal, status.code) {
        (Some(sig), _) => (v.main, sig, status, None),
        (None, Some(code)) if (129..=128 + 64).contains(&code) => {
            let sig = code - 128;
            let victim = v.job.members.iter().copied().find(|&p| {
                p != v.main
                    && !v.mailers.contains(&p)
                    && v.t.procs.get(p).and_then(|p| p.exit).and_then(|e| e.signal) == Some(sig)
            });
            match victim.and_then(|p| v.t.procs.get(p).and_then(|x| x.exit).map(|e| (p, e))) {
                Some((p, e)) => (p, sig, e, Some(code)),
                None => return,
            }
        }
        _ => return,
    };
    let name = crate::model::names::signal_name(sig);
    let sent = v.tl.iter().enumerate().rev().find(|(_, e)| {
        matches!(&e.body, Body::Signal { target_pid, signal, .. } if *target_pid == victim && *signal == sig)
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
            if v.job.members.contains(&e.pid) {
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
    evidence.extend(v.exit_index(victim));
    let what = if victim == v.main {
        format!("`{}`", v.t.summary(v.job).command)
    } else {
        match v.t.procs.get(victim) {
            Some(p) if p.execed => format!("`{}`, run by the job,", p.argv.join(" ")),
            // Killed between its fork and its exec: it was still the job's shell.
            _ => "a subshell of the job's shell".to_string(),
        }
    };
    let then = match shell_code {
        Some(c) => format!("; the job's shell then exited {c}"),
        None => String::new(),
    };
    d.push(Draft {
        kind: Kind::KilledBySignal,
        message: format!("{what} (pid {victim}) was killed by {name}{core}{by}{then}"),
        pid: victim,
        evidence,
    });
}

/// The command exited non-zero; point at the last failing call before the exit.
pub(super) fn nonzero_exit(v: &View, d: &mut Vec<Draft>) {
    let Some(code) = v.main_exit.and_then(|s| s.code) else {
        return;
    };
    if code == 0 {
        return;
    }
    // 126 and 127 are the shell saying the command could not be run or found: the
    // exec finding already says that, and why.
    let exec_kinds = [
        Kind::CommandNotFound,
        Kind::NotExecutable,
        Kind::BadInterpreter,
        Kind::RelativePath,
        Kind::ExecFailed,
    ];
    if matches!(code, 126 | 127) && d.iter().any(|f| exec_kinds.contains(&f.kind)) {
        return;
    }
    let exit_i = v.exit_index(v.main);
    let end = exit_i.unwrap_or(v.tl.len());
    let last = v.tl[..end]
        .iter()
        .enumerate()
        .rev()
        // A failed call first: `is_job_work` walks the process tree.
        .filter(|(i, e)| {
            e.body.result().is_some_and(|r| !r.ok())
                && v.is_job_work(*i)
                && !super::network::recovered(v, *i)
        })
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

/// No exit by the end of the trace; and other runs of the same job overlapping it.
pub(super) fn still_running(v: &View, d: &mut Vec<Draft>) {
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
