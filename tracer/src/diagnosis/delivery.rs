//! The scheduler's last step: mailing the job's output.
use super::{
    view::{basename, View},
    Draft, Kind,
};
use crate::model::event::Body;

/// The scheduler tried to mail the job's output and the mailer failed.
pub(super) fn output_lost(v: &View, d: &mut Vec<Draft>) {
    // In pid order: live and replay must pick the same mailer.
    let mut mailers: Vec<u32> = v.mailers.iter().copied().collect();
    mailers.sort_unstable();
    for pid in mailers {
        let attempt =
            v.tl.iter()
                .position(|e| e.pid == pid && matches!(e.body, Body::ExecAttempt { .. }));
        let filename = attempt
            .and_then(|i| match &v.tl[i].body {
                Body::ExecAttempt { filename, .. } => Some(filename.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "sendmail".into());
        let exec_err = attempt
            .and_then(|i| v.tl[i].body.result())
            .and_then(|r| r.error);
        let exit = v.t.procs.get(pid).and_then(|p| p.exit);
        let why = match (exec_err, exit) {
            (Some(err), _) => format!("{filename} could not be run ({err}): no MTA is installed"),
            (None, Some(s)) if !s.is_success() => format!("{filename} {s}"),
            _ => continue,
        };
        let mut evidence: Vec<usize> = attempt.into_iter().collect();
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
        matches!(&e.body, Body::Stat { path, result }
                if basename(path) == "sendmail" && result.error == Some("ENOENT"))
            && !v.is_job_work(*i)
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
