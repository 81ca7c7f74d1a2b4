//! Events the kernel dropped (its ring buffer or a map was full): which jobs were
//! running then, so nobody reads an incomplete timeline as the whole story.
use std::collections::BTreeMap;

use super::{Finding, Kind};
use crate::{model::job::Job, tracefile::LostEvents};

/// Jobs named in one finding; the rest are counted.
const JOBS_NAMED: usize = 10;

/// One `events_lost` finding per stretch of loss (polls in a row that each saw a loss
/// are one stretch), naming the jobs whose run overlaps it: started before it ended,
/// not ended before it began. Proves only that records were dropped then; which ones is
/// unknown, so every overlapping job's findings may miss a cause.
pub fn events_lost(
    losses: &[LostEvents],
    jobs: &[(&Job, String)],
    start_ns: u64,
    wall: impl Fn(u64) -> String,
) -> Vec<Finding> {
    let mut stretches: Vec<LostEvents> = Vec::new();
    for l in losses.iter().filter(|l| l.total() > 0) {
        match stretches.last_mut() {
            Some(s) if l.since_ns <= s.ts_ns => {
                s.ts_ns = s.ts_ns.max(l.ts_ns);
                for (k, v) in &l.by_kind {
                    *s.by_kind.entry(k.clone()).or_default() += v;
                }
            }
            _ => stretches.push(l.clone()),
        }
    }
    stretches
        .iter()
        .map(|s| {
            let hit: Vec<&(&Job, String)> = jobs
                .iter()
                .filter(|(j, _)| j.start_ns <= s.ts_ns && j.end_ns.is_none_or(|e| e >= s.since_ns))
                .collect();
            let mut named: Vec<String> = hit
                .iter()
                .take(JOBS_NAMED)
                .map(|(j, cmd)| format!("{} (`{cmd}`)", j.id))
                .collect();
            if hit.len() > JOBS_NAMED {
                named.push(format!("{} more", hit.len() - JOBS_NAMED));
            }
            let who = match hit.len() {
                0 => "no job was running then".to_string(),
                1 => format!("job {} was running then: its timeline may be incomplete and its findings may miss a cause", named[0]),
                _ => format!("jobs {} were running then: their timelines may be incomplete and their findings may miss a cause", named.join(", ")),
            };
            Finding {
                kind: Kind::EventsLost.as_str().into(),
                message: format!(
                    "the kernel dropped {} records ({}) between +{:.1} s and +{:.1} s; {who} (raise --ring-mb, or follow fewer processes)",
                    s.total(),
                    kinds_text(&s.by_kind),
                    s.since_ns.saturating_sub(start_ns) as f64 / 1e9,
                    s.ts_ns.saturating_sub(start_ns) as f64 / 1e9,
                ),
                times: vec![wall(s.since_ns), wall(s.ts_ns)],
                ..Default::default()
            }
        })
        .collect()
}

/// `exec_attempt 1000, syscall 234`, with what each kind of loss means when it is not
/// a dropped record.
fn kinds_text(by_kind: &BTreeMap<String, u64>) -> String {
    by_kind
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| match k.as_str() {
            "tracked_map_full" => {
                format!("{n} processes not followed: the tracked-process map was full")
            }
            "pending_map_full" => format!("{n} syscalls: the in-flight map was full"),
            _ => format!("{k} {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the final counters say beyond the losses seen while recording (a loss after
/// the last poll, or a trace written before format 1.2): one more stretch, from the
/// last poll (or the start) to the end.
pub fn unpolled(
    losses: &[LostEvents],
    totals: &BTreeMap<String, u64>,
    start_ns: u64,
    end_ns: u64,
) -> Option<LostEvents> {
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for l in losses {
        for (k, v) in &l.by_kind {
            *seen.entry(k.as_str()).or_default() += v;
        }
    }
    let by_kind: BTreeMap<String, u64> = totals
        .iter()
        .map(|(k, &v)| {
            (
                k.clone(),
                v.saturating_sub(seen.get(k.as_str()).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    (!by_kind.is_empty()).then(|| LostEvents {
        since_ns: losses.last().map_or(start_ns, |l| l.ts_ns),
        ts_ns: end_ns,
        by_kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{Body, ExitStatus};
    use crate::model::job::Tracker;
    use crate::testutil::{ev, snapshot_root};

    fn loss(since: u64, ts: u64, n: u64) -> LostEvents {
        LostEvents {
            since_ns: since,
            ts_ns: ts,
            by_kind: BTreeMap::from([("exec_attempt".to_string(), n)]),
        }
    }

    #[test]
    fn a_loss_names_the_jobs_running_then_and_polls_in_a_row_are_one_stretch() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        // Job 1 runs 10..20, job 2 from 30 and never ends.
        for (child, at) in [(200, 10), (300, 30)] {
            t.push(ev(
                100,
                at,
                Body::Fork {
                    child_pid: child,
                    clone_flags: 0,
                },
            ));
        }
        t.push(ev(
            200,
            20,
            Body::Exit {
                status: Some(ExitStatus::code(0)),
            },
        ));
        let jobs: Vec<(&Job, String)> = t
            .jobs()
            .iter()
            .map(|j| (j, format!("cmd{}", j.id)))
            .collect();
        let f = events_lost(
            &[loss(25, 26, 3), loss(26, 40, 2), loss(50, 60, 0)],
            &jobs,
            0,
            |n| n.to_string(),
        );
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].kind, "events_lost");
        assert!(
            f[0].message.contains("dropped 5 records (exec_attempt 5)"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("job 2 (`cmd2`) was running then"),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].times, vec!["25", "40"]);
        // A loss while job 1 ran names it too.
        let f = events_lost(&[loss(5, 15, 1)], &jobs, 0, |n| n.to_string());
        assert!(f[0].message.contains("job 1 (`cmd1`)"), "{}", f[0].message);
        assert!(!f[0].message.contains("cmd2"), "{}", f[0].message);
    }

    #[test]
    fn losses_after_the_last_poll_make_one_more_stretch() {
        let totals = BTreeMap::from([("exec_attempt".to_string(), 7), ("fork".to_string(), 0)]);
        let seen = [loss(0, 10, 5)];
        let rest = unpolled(&seen, &totals, 0, 99).unwrap();
        assert_eq!((rest.since_ns, rest.ts_ns, rest.total()), (10, 99, 2));
        assert!(unpolled(&[loss(0, 10, 7)], &totals, 0, 99).is_none());
        // A trace from before format 1.2: the whole run.
        assert_eq!(
            unpolled(&[], &totals, 3, 99).map(|l| (l.since_ns, l.total())),
            Some((3, 7))
        );
    }
}
