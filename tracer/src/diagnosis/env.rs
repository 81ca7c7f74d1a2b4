//! The job's environment compared with earlier runs of the same job.
use super::{view::View, Draft, Kind};
use crate::model::{event::Body, process::Words};

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
pub(super) fn env_mismatch(v: &View, d: &mut Vec<Draft>) {
    let me = v.t.summary(v.job);
    let my_env = me.env.clone();
    let lookup = |env: &[String], k: &str| {
        env.iter().find_map(|kv| {
            kv.strip_prefix(k)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
    };
    if my_env.is_empty() {
        return;
    }
    // Earlier good runs still held whole, and the latest one that was retired (its
    // environment kept aside), oldest first. Their env as it was, not whatever process
    // has their pid now.
    let mut earlier: Vec<(u64, Words)> =
        v.t.jobs()
            .iter()
            .filter(|o| o.id < v.job.id && o.finished())
            .map(|o| (o.id, v.t.summary(o)))
            .filter(|(_, s)| {
                // The same entry run by the same user: a run of another user's
                // crontab has another environment by design.
                s.command == me.command && s.uid == me.uid && s.exit.is_some_and(|x| x.is_success())
            })
            .filter(|(_, s)| !s.env.is_empty())
            .map(|(id, s)| (id, s.env.clone()))
            .collect();
    if let Some((id, env)) = v.t.last_good(&me.command, me.uid) {
        if id < v.job.id && !earlier.iter().any(|(i, _)| *i == id) {
            earlier.push((id, env.into()));
        }
    }
    earlier.sort_by_key(|(id, _)| *id);
    for (other_id, their_env) in earlier {
        let diffs: Vec<String> = ENV_COMPARED
            .iter()
            .filter_map(|k| {
                let (a, b) = (lookup(&their_env, k), lookup(&my_env, k));
                (a != b).then(|| {
                    format!(
                        "{k} was {} in job {} (ran fine) and is {} now",
                        a.unwrap_or_else(|| "unset".into()),
                        other_id,
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
