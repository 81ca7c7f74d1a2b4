//! `tracer replay FILE`: the recorded stream through the same pipeline as a live run.
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{
    facts::RecordedFacts,
    model::users::UserNames,
    output::report::{self, Report, Stats},
    pipeline::Pipeline,
    schedules::{read_file_as, ScheduleView},
    tracefile::{self, Entry, TraceContents},
    Format,
};

pub struct ReplayOptions {
    pub path: PathBuf,
    pub format: Format,
    pub job: Option<u64>,
    /// `--crontab PATH` or `LOCAL=PATH`: this machine's file in place of the recorded one.
    pub crontabs: Vec<String>,
    /// Keep the timelines of jobs without findings in the JSON report.
    pub timelines: bool,
}

/// Put this machine's crontab files in place of (or beside) the recorded ones.
pub fn override_crontabs(c: &mut TraceContents, specs: &[String]) -> Result<(), String> {
    for spec in specs {
        let (local, as_path) = match spec.split_once('=') {
            Some((l, a)) => (l.to_string(), a.to_string()),
            None => (spec.clone(), spec.clone()),
        };
        if !as_path.starts_with('/') {
            return Err(format!(
                "--crontab {spec}: say which file of the recorded host it stands for, as LOCAL=/etc/cron.d/NAME (or give an absolute crontab path)"
            ));
        }
        let src = read_file_as(Path::new(&local), &as_path)
            .ok_or_else(|| format!("--crontab {spec}: cannot read {local}"))?;
        // The views at start and those read while recording (a daemon that started,
        // files that changed): the daemons that read that file get the new copy; if
        // none had it, the host's daemons (else all) get it as a new file.
        let mut views: Vec<&mut ScheduleView> = c.header.schedules.iter_mut().collect();
        for e in c.entries.iter_mut() {
            if let Entry::Schedules(l) = e {
                views.push(&mut l.view);
            }
        }
        if views.is_empty() {
            return Err(format!(
                "--crontab {spec}: the trace has no crontab views to change (recorded by a tracer before format 1.1)"
            ));
        }
        let had = |v: &ScheduleView| v.sources.iter().any(|s| s.path == as_path);
        let any_had = views.iter().any(|v| had(v));
        let any_host = views.iter().any(|v| v.is_host());
        for v in views {
            let take = if any_had {
                had(v)
            } else {
                v.is_host() || !any_host
            };
            if take {
                v.sources.retain(|s| s.path != as_path);
                v.sources.push(src.clone());
            }
        }
    }
    Ok(())
}

/// A replay that ran; `damage` says what could not be read.
pub struct Replayed {
    pub report: Report,
    pub damage: Option<String>,
}

pub fn load(path: &Path) -> Result<TraceContents, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(cannot)?;
    // The magic first: `tracer replay /dev/zero` (or any endless or huge non-trace)
    // is refused after 8 bytes instead of being read into memory whole.
    let mut data = Vec::new();
    (&mut f)
        .take(tracefile::MAGIC.len() as u64)
        .read_to_end(&mut data)
        .map_err(cannot)?;
    if data.as_slice() == tracefile::MAGIC {
        f.read_to_end(&mut data).map_err(cannot)?;
    }
    tracefile::read(Bytes::from(data)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Describe the damage of a trace for a person, or None when it is whole.
pub fn damage_summary(path: &Path, c: &TraceContents) -> Option<String> {
    if !c.is_damaged() {
        return None;
    }
    // A file damaged all through (or crafted to be) would otherwise print a line per
    // damaged place: the first few say where and what, the count says how much.
    const SHOWN: usize = 10;
    let mut lines = Vec::new();
    for d in c.damage.iter().take(SHOWN) {
        lines.push(if d.skipped > 0 {
            format!(
                "{} at byte {} (skipped {} bytes to the next good block)",
                d.what, d.offset, d.skipped
            )
        } else {
            format!("{} at byte {}", d.what, d.offset)
        });
    }
    if c.damage.len() > SHOWN {
        lines.push(format!(
            "... and {} more damaged places",
            c.damage.len() - SHOWN
        ));
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
    analyse_with(c, format, quiet, true)
}

/// `analyse`, keeping the timelines of jobs without findings only if `timelines`.
pub fn analyse_with(c: &TraceContents, format: Format, quiet: bool, timelines: bool) -> Report {
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
        .with_schedules(c.header.schedules.clone(), c.header.mono_to_wall_ns)
        .summarise_clean_jobs(!timelines);
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
            Entry::Lost(l) => pipe.lost(l.clone()),
            Entry::Fact(_) => {}
        }
    }
    if let Some(t) = &c.trailer {
        pipe.set_end(t.end_ns);
    }
    let redactions = c
        .trailer
        .as_ref()
        .map(|t| t.redactions.clone())
        .unwrap_or_default();
    let (lost_events, lost_by_kind) = c
        .trailer
        .as_ref()
        .map(|t| (t.lost_events, t.lost_by_kind.clone()))
        .unwrap_or_default();
    pipe.finish(Stats {
        lost_events,
        lost_by_kind,
        redactions,
        duration_ns: c
            .trailer
            .as_ref()
            .map(|t| t.end_ns.saturating_sub(c.header.start_ns))
            .unwrap_or(0),
        ..Default::default()
    })
}

pub fn run(opts: &ReplayOptions) -> Result<Replayed, String> {
    let mut c = load(&opts.path)?;
    override_crontabs(&mut c, &opts.crontabs)?;
    let damage = damage_summary(&opts.path, &c);
    if let Some(d) = &damage {
        eprintln!("tracer: warning: {d}");
    }
    let report = match opts.job {
        None => analyse_with(&c, opts.format, false, opts.timelines),
        Some(id) => {
            // The one job asked for is shown whole.
            let mut rep = analyse_with(&c, opts.format, true, true);
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
