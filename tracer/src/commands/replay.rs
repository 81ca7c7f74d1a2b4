//! `tracer replay FILE`: the recorded stream through the same pipeline as a live run.
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{
    facts::RecordedFacts,
    model::users::UserNames,
    output::report::{self, Report, Stats},
    pipeline::Pipeline,
    tracefile::{self, Entry, TraceContents},
    Format,
};

pub struct ReplayOptions {
    pub path: PathBuf,
    pub format: Format,
    pub job: Option<u64>,
}

/// A replay that ran; `damage` says what could not be read.
pub struct Replayed {
    pub report: Report,
    pub damage: Option<String>,
}

pub fn load(path: &Path) -> Result<TraceContents, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    tracefile::read(Bytes::from(data)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Describe the damage of a trace for a person, or None when it is whole.
pub fn damage_summary(path: &Path, c: &TraceContents) -> Option<String> {
    if !c.is_damaged() {
        return None;
    }
    let mut lines = Vec::new();
    for d in &c.damage {
        lines.push(if d.skipped > 0 {
            format!(
                "{} at byte {} (skipped {} bytes to the next good block)",
                d.what, d.offset, d.skipped
            )
        } else {
            format!("{} at byte {}", d.what, d.offset)
        });
    }
    if c.trailer.is_none() {
        lines.push("no trailer: the recording was cut short (crash, kill -9, full disk or power loss); lost-event counts are unknown".into());
    }
    Some(format!(
        "{} is damaged; the analysis covers the {} events that could be read of {} bytes:\n  {}",
        path.display(),
        c.entries.len(),
        c.bytes_total,
        lines.join("\n  ")
    ))
}

/// Feed a trace's contents through a pipeline (no printing) and return the report.
pub fn analyse(c: &TraceContents, format: Format, quiet: bool) -> Report {
    let users = UserNames::from_map(c.header.users.clone());
    // Every recorded answer up front: the live run asked when a job finished and wrote
    // the answer just after the event that finished it.
    let mut facts = RecordedFacts::default();
    for e in &c.entries {
        if let Entry::Fact(f) = e {
            facts.add(f);
        }
    }
    let mut pipe = Pipeline::new(users, format, false, c.header.start_ns, Box::new(facts))
        .with_schedules(c.header.schedules.clone(), c.header.mono_to_wall_ns);
    if quiet {
        pipe = pipe.quiet();
    }
    for s in &c.header.snapshot {
        pipe.synthetic(s);
    }
    for e in &c.entries {
        match e {
            Entry::Kernel(raw) => {
                pipe.kernel_record(raw);
            }
            Entry::Synthetic(s) => pipe.synthetic(s),
            Entry::Schedules(l) => pipe.schedule_view(l.view.clone(), l.ts_ns),
            Entry::Fact(_) => {}
        }
    }
    if let Some(t) = &c.trailer {
        pipe.set_end(t.end_ns);
    }
    let (lost_events, lost_by_kind) = c
        .trailer
        .as_ref()
        .map(|t| (t.lost_events, t.lost_by_kind.clone()))
        .unwrap_or_default();
    pipe.finish(Stats {
        lost_events,
        lost_by_kind,
        duration_ns: c
            .trailer
            .as_ref()
            .map(|t| t.end_ns.saturating_sub(c.header.start_ns))
            .unwrap_or(0),
        ..Default::default()
    })
}

pub fn run(opts: &ReplayOptions) -> Result<Replayed, String> {
    let c = load(&opts.path)?;
    let damage = damage_summary(&opts.path, &c);
    if let Some(d) = &damage {
        eprintln!("tracer: warning: {d}");
    }
    let report = match opts.job {
        None => analyse(&c, opts.format, false),
        Some(id) => {
            let mut rep = analyse(&c, opts.format, true);
            if !rep.jobs.iter().any(|j| j.id == id) {
                return Err(format!(
                    "{}: no job {id} (the trace has jobs 1..={})",
                    opts.path.display(),
                    rep.jobs.len()
                ));
            }
            rep.jobs.retain(|j| j.id == id);
            match opts.format {
                Format::Json => {
                    let _ = report::write_json(&mut std::io::stdout().lock(), &rep);
                }
                Format::Text => {
                    let mut out = anstream::stdout().lock();
                    let _ = report::write_job_text(&mut out, &rep.jobs[0], c.header.start_ns);
                }
            }
            rep
        }
    };
    Ok(Replayed { report, damage })
}
