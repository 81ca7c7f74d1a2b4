//! `tracer replay FILE`: the recorded stream through the same pipeline as a live run.
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{
    facts::RecordedFacts,
    model::users::UserNames,
    output::report::{self, Report, Stats},
    pipeline::Pipeline,
    schedules::{read_file_as, ScheduleView},
    tracefile::{
        self, Damage, Entry, FileWindow, LateSchedules, Source, TraceContents, TraceHeader,
        TraceStream, Trailer,
    },
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

/// Put this machine's crontab files in place of (or beside) the recorded ones: in the
/// views at start and those read while recording.
fn override_crontabs(mut views: Vec<&mut ScheduleView>, specs: &[String]) -> Result<(), String> {
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
        // The daemons that read that file get the new copy; if none had it, the
        // host's daemons (else all) get it as a new file.
        if views.is_empty() {
            return Err(format!(
                "--crontab {spec}: the trace has no crontab views to change (recorded by a tracer before format 1.1)"
            ));
        }
        let had = |v: &ScheduleView| v.sources.iter().any(|s| s.path == as_path);
        let any_had = views.iter().any(|v| had(v));
        let any_host = views.iter().any(|v| v.is_host());
        for v in views.iter_mut() {
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
    /// When the trace began (times in the text are shown from there).
    pub start_ns: u64,
}

/// A trace opened for reading as a stream.
pub fn open(path: &Path) -> Result<TraceStream, String> {
    stream(path, source(path)?)
}

fn stream(path: &Path, src: Source) -> Result<TraceStream, String> {
    TraceStream::open(src).map_err(|e| format!("{}: {e}", path.display()))
}

/// The bytes of a trace: a regular file through a window that moves with the reading,
/// anything else (a pipe, a device) read whole after its magic.
fn source(path: &Path) -> Result<Source, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(cannot)?;
    let meta = f.metadata().map_err(cannot)?;
    let src = if meta.is_file() {
        Source::File(FileWindow::new(f, meta.len()))
    } else {
        // The magic first: `tracer replay /dev/zero` (or any endless or huge
        // non-trace) is refused after 8 bytes instead of being read into memory whole.
        let mut data = Vec::new();
        (&mut f)
            .take(tracefile::MAGIC.len() as u64)
            .read_to_end(&mut data)
            .map_err(cannot)?;
        if data.as_slice() == tracefile::MAGIC {
            f.read_to_end(&mut data).map_err(cannot)?;
        }
        Source::Memory(Bytes::from(data))
    };
    Ok(src)
}

/// A whole trace in memory (`export`).
pub fn load(path: &Path) -> Result<TraceContents, String> {
    Ok(open(path)?.read_all())
}

/// Describe the damage of a trace for a person, or None when it is whole; said on
/// stderr as a warning (the report still follows).
pub fn damage_summary(path: &Path, c: &TraceContents) -> Option<String> {
    warn(describe_damage(
        path,
        &c.damage,
        c.trailer.is_some(),
        c.entries.len() as u64,
        c.bytes_total,
    ))
}

fn warn(damage: Option<String>) -> Option<String> {
    if let Some(d) = &damage {
        eprintln!("tracer: warning: {d}");
    }
    damage
}

fn describe_damage(
    path: &Path,
    damage: &[Damage],
    has_trailer: bool,
    entries: u64,
    bytes_total: u64,
) -> Option<String> {
    if damage.is_empty() && has_trailer {
        return None;
    }
    // A file damaged all through (or crafted to be) would otherwise print a line per
    // damaged place: the first few say where and what, the count says how much.
    const SHOWN: usize = 10;
    let mut lines = Vec::new();
    for d in damage.iter().take(SHOWN) {
        lines.push(if d.skipped > 0 {
            format!(
                "{} at byte {} (skipped {} bytes to the next good block)",
                d.what, d.offset, d.skipped
            )
        } else {
            format!("{} at byte {}", d.what, d.offset)
        });
    }
    if damage.len() > SHOWN {
        lines.push(format!(
            "... and {} more damaged places",
            damage.len() - SHOWN
        ));
    }
    if !has_trailer {
        lines.push("no trailer: the recording was cut short (crash, kill -9, full disk or power loss); lost-event counts are unknown".into());
    }
    Some(format!(
        "{} is damaged; the analysis covers the {entries} events that could be read of {bytes_total} bytes:\n  {}",
        path.display(),
        lines.join("\n  ")
    ))
}

/// Feed a trace's contents through a pipeline (no printing) and return the report;
/// every timeline is kept.
pub fn analyse(c: &TraceContents, format: Format, quiet: bool) -> Report {
    // Every recorded answer up front: the live run asked when a job finished and wrote
    // the answer just after the event that finished it.
    let mut facts = RecordedFacts::default();
    for e in &c.entries {
        if let Entry::Fact(f) = e {
            facts.add(f);
        }
    }
    let how = How {
        format,
        quiet,
        timelines: true,
        exits: false,
    };
    feed(
        &c.header,
        facts,
        c.trailer.as_ref(),
        c.entries.iter().cloned(),
        how,
    )
}

/// How a replay prints and what it keeps.
#[derive(Clone, Copy)]
struct How {
    format: Format,
    quiet: bool,
    timelines: bool,
    /// `tracer replay`: the process ends after this report.
    exits: bool,
}

/// The recorded stream through the pipeline.
fn feed(
    header: &TraceHeader,
    facts: RecordedFacts,
    trailer: Option<&Trailer>,
    entries: impl Iterator<Item = Entry>,
    how: How,
) -> Report {
    let users = UserNames::from_map(header.users.clone());
    let mut pipe = Pipeline::new(users, how.format, false, header.start_ns, Box::new(facts))
        .with_schedules(header.schedules.clone(), header.mono_to_wall_ns)
        .with_scheduler_files(header.managers.clone(), header.tables.clone())
        .summarise_clean_jobs(!how.timelines);
    if how.quiet {
        pipe = pipe.quiet();
    }
    for s in &header.snapshot {
        pipe.synthetic(s);
    }
    for e in entries {
        match e {
            Entry::Kernel(raw) => {
                pipe.kernel_record(&raw);
            }
            Entry::Synthetic(s) => pipe.synthetic(&s),
            Entry::Schedules(l) => pipe.schedule_view(l.view, l.ts_ns),
            Entry::Lost(l) => pipe.lost(l),
            Entry::SchedulerFiles(l) => pipe.scheduler_files(l),
            Entry::Fact(_) => {}
        }
    }
    if let Some(t) = trailer {
        pipe.set_end(t.end_ns);
    }
    let redactions = trailer.map(|t| t.redactions.clone()).unwrap_or_default();
    let (lost_events, lost_by_kind) = trailer
        .map(|t| (t.lost_events, t.lost_by_kind.clone()))
        .unwrap_or_default();
    let report = pipe.finish(Stats {
        lost_events,
        lost_by_kind,
        redactions,
        duration_ns: trailer
            .map(|t| t.end_ns.saturating_sub(header.start_ns))
            .unwrap_or(0),
        ..Default::default()
    });
    if how.exits {
        // Letting go of every job and event held, one by one, was a twentieth of a
        // replay; the process is about to end, and its memory with it.
        std::mem::forget(pipe);
    }
    report
}

/// What a first pass over a trace learns before the second feeds it: the answers the
/// host gave, the crontabs read while recording, how it ends and where it is damaged.
struct Survey {
    facts: RecordedFacts,
    schedules: Vec<LateSchedules>,
    trailer: Option<Trailer>,
    damage: Vec<Damage>,
    entries: u64,
    bytes_total: u64,
}

fn survey(mut s: TraceStream) -> Survey {
    let mut facts = RecordedFacts::default();
    let mut schedules = Vec::new();
    while let Some(block) = s.next_block() {
        for e in block {
            match e {
                Entry::Fact(f) => facts.add(&f),
                Entry::Schedules(l) => schedules.push(l),
                _ => {}
            }
        }
    }
    Survey {
        facts,
        schedules,
        trailer: s.trailer,
        damage: s.damage,
        entries: s.entries,
        bytes_total: s.bytes_total,
    }
}

/// Replay a trace file in two passes over it, holding one block at a time: a trace
/// larger than memory replays.
fn replay_file(opts: &ReplayOptions, how: How) -> Result<Replayed, String> {
    let src = source(&opts.path)?;
    // A whole file (format 1.5 on) repeats every host answer in its trailer: one pass
    // does. Crontabs given on the command line are matched against every view in the
    // file first, which takes the first pass.
    if opts.crontabs.is_empty() {
        let mut probe = src
            .again()
            .map_err(|e| format!("cannot read {}: {e}", opts.path.display()))?;
        if let Some(t) = tracefile::trailer_at_end(&mut probe).filter(|t| t.facts.is_some()) {
            return replay_once(opts, src, &t, how);
        }
    }
    let again = src
        .again()
        .map_err(|e| format!("cannot read {}: {e}", opts.path.display()))?;
    let first = stream(&opts.path, src)?;
    let mut header = first.header.clone();
    let mut sv = survey(first);
    let mut views: Vec<&mut ScheduleView> = header.schedules.iter_mut().collect();
    views.extend(sv.schedules.iter_mut().map(|l| &mut l.view));
    if !opts.crontabs.is_empty() {
        override_crontabs(views, &opts.crontabs)?;
    }
    let damage = warn(describe_damage(
        &opts.path,
        &sv.damage,
        sv.trailer.is_some(),
        sv.entries,
        sv.bytes_total,
    ));
    let mut second = stream(&opts.path, again)?;
    // The crontab views as overridden, in the order the file has them.
    let mut late = std::mem::take(&mut sv.schedules).into_iter();
    let entries = std::iter::from_fn(move || second.next_block())
        .flatten()
        .filter_map(move |e| match e {
            Entry::Schedules(_) => late.next().map(Entry::Schedules),
            // Only the first pass's answers are used (the same ones).
            Entry::Fact(_) => None,
            e => Some(e),
        });
    let facts = std::mem::take(&mut sv.facts);
    let report = feed(&header, facts, sv.trailer.as_ref(), entries, how);
    Ok(Replayed {
        report,
        damage,
        start_ns: header.start_ns,
    })
}

/// A replay in one pass: the host's answers came from the trailer, read from the end
/// of the file (the same trailer the pass ends on).
fn replay_once(
    opts: &ReplayOptions,
    src: Source,
    trailer: &Trailer,
    how: How,
) -> Result<Replayed, String> {
    let mut s = stream(&opts.path, src)?;
    let header = s.header.clone();
    let mut facts = RecordedFacts::default();
    for f in trailer.facts.iter().flatten() {
        facts.add(f);
    }
    let entries = std::iter::from_fn(|| s.next_block()).flatten();
    let report = feed(&header, facts, Some(trailer), entries, how);
    let damage = warn(describe_damage(
        &opts.path,
        &s.damage,
        s.trailer.is_some(),
        s.entries,
        s.bytes_total,
    ));
    Ok(Replayed {
        report,
        damage,
        start_ns: header.start_ns,
    })
}

pub fn run(opts: &ReplayOptions) -> Result<Replayed, String> {
    let Some(id) = opts.job else {
        return replay_file(
            opts,
            How {
                format: opts.format,
                quiet: false,
                timelines: opts.timelines,
                exits: true,
            },
        );
    };
    // The one job asked for is shown whole.
    let mut r = replay_file(
        opts,
        How {
            format: opts.format,
            quiet: true,
            timelines: true,
            exits: true,
        },
    )?;
    let rep = &mut r.report;
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
            let _ = report::print_json(rep);
        }
        Format::Text => {
            let mut out = anstream::stdout().lock();
            let _ = report::write_job_text(&mut out, &rep.jobs[0], r.start_ns);
        }
    }
    Ok(r)
}
