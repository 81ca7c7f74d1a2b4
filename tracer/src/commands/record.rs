//! `tracer record`: attach, seed from `/proc`, write the header, run the live loop,
//! then report and write the trailer. Each step lives in `capture`.
use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

use crate::{
    capture::{
        as_cron::Plan,
        host::{
            manager_views, monotonic_ns, read_trim, realtime_ns, schedule_views, table_files,
            users_map,
        },
        live::{self, process_for_trace},
        loader::{self, LoadOptions, SetupError},
        snapshot::{self, RootSpec},
    },
    diagnosis::schedule::{entry_matches, EntryRef, Target},
    facts::LiveFacts,
    model::users::UserNames,
    output::{
        follow::Follow,
        report::{self, Stats},
    },
    pipeline::Pipeline,
    secrets,
    tracefile::{self, CaptureOptions, Synthetic, TraceHeader, TraceWriter, Trailer},
    Format,
};

pub struct RecordOptions {
    pub duration: Option<Duration>,
    pub all: bool,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub format: Format,
    pub capture_secrets: bool,
    pub output: Option<PathBuf>,
    pub force: bool,
    /// `--entry PATTERN`: record until these crontab entries have run.
    pub entries: Vec<String>,
    /// `tracer trigger`: run this entry now as cron would, follow only it.
    pub trigger: Option<(EntryRef, Plan)>,
    /// The kernel's ring buffer, in MiB.
    pub ring_mb: u32,
    /// Keep the timelines of jobs without findings (`--timelines`).
    pub timelines: bool,
    /// `--follow`: JSON Lines as things happen, to stdout or appended to this file.
    pub follow: Option<Option<PathBuf>>,
}

pub const DEFAULT_RING_MB: u32 = 16;

/// `--ring-mb`: the kernel takes a power-of-two number of pages.
pub fn parse_ring_mb(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=1024).contains(&n) && n.is_power_of_two() => Ok(n),
        _ => Err("give a power of two from 1 to 1024 (MiB), e.g. --ring-mb 64".into()),
    }
}

/// The longest `--duration`: a year and a day. Longer is a typo (1e18) or a wish to
/// run until stopped, which leaving the flag out does; far larger values would panic
/// the deadline's arithmetic (`Duration::from_secs_f64` past 2^64 s, `Instant +
/// Duration` past the clock's range).
const MAX_DURATION_SECS: f64 = 366.0 * 86_400.0;

/// `--duration SECS`, checked where it is parsed (a usage error, exit 2).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let fix = format!(
        "give seconds from 0.001 to {MAX_DURATION_SECS} (366 days), e.g. --duration 90; leave --duration out to record until Ctrl-C or SIGTERM"
    );
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {fix}"))?;
    if !(0.001..=MAX_DURATION_SECS).contains(&secs) {
        return Err(format!("{} seconds is out of range: {fix}", s.trim()));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}: {fix}"))
}

/// `--pid PID`: a process that exists now (a usage error, exit 2, before anything is
/// loaded into the kernel).
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let pid: u32 = s.trim().parse().map_err(|_| {
        "not a process id: give the scheduler daemon's pid, e.g. --pid $(pgrep -o cron)".to_string()
    })?;
    if pid == 0 {
        return Err(
            "pid 0 is the kernel's idle task, not a process that starts jobs: give the scheduler daemon's pid, e.g. --pid $(pgrep -o cron)"
                .into(),
        );
    }
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(format!(
            "no process has pid {pid}: check it with `pgrep -a cron` or `ps -ef` (to follow a daemon that is not running yet, use --comm NAME)"
        ));
    }
    Ok(pid)
}

/// `--comm NAME`: the kernel keeps 15 bytes of a process's name, so a longer name can
/// never be what the kernel compares; the error says the name it does compare.
pub fn parse_comm(s: &str) -> Result<String, String> {
    const MAX: usize = tracer_common::COMM_LEN - 1;
    if s.is_empty() {
        return Err("empty: give a process name as `ps -o comm` shows it, e.g. --comm cron".into());
    }
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        return Err(format!(
            "{s:?} is {} bytes; the kernel keeps only the first {MAX} bytes of a process's name (what `ps -o comm` shows), so that is what is compared: pass --comm {:?}",
            s.len(),
            &s[..end]
        ));
    }
    Ok(s.to_string())
}

/// Followed roots, for the start-up line.
fn describe_roots(seeds: &[Synthetic]) -> String {
    let roots: Vec<String> = seeds
        .iter()
        .filter(|s| s.root)
        .map(|s| format!("{}[{}]", s.process.comm, s.process.pid))
        .take(12)
        .collect();
    if roots.is_empty() {
        "none running yet (waiting for one to start)".into()
    } else {
        roots.join(", ")
    }
}

/// The kernel programs log at the level the user asked for the `tracer_ebpf` target.
fn kernel_log_level() -> u8 {
    let mut md = log::Metadata::builder();
    md.target("tracer_ebpf::anomaly");
    // aya-log's levels number Error=1 .. Trace=5, like log's.
    [
        log::Level::Trace,
        log::Level::Debug,
        log::Level::Info,
        log::Level::Warn,
        log::Level::Error,
    ]
    .into_iter()
    .find(|&l| log::logger().enabled(&md.level(l).build()))
    .map(|l| l as usize as u8)
    .unwrap_or(0)
}

/// `tracer trigger`: the stand-in daemon, followed as a root before it forks the job.
fn start_stand_in(
    loaded: &mut loader::Loaded,
    pipe: &mut Pipeline,
    self_pid: u32,
    entry: &EntryRef,
    plan: &Plan,
) -> Result<u32, SetupError> {
    let fail = |what: String| SetupError {
        what,
        fix: "retry; run as root".into(),
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let memlock = loader::ORIGINAL_MEMLOCK.get().copied();
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__as-cron").stdin(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if let Some((cur, max)) = memlock {
                let rl = libc::rlimit {
                    rlim_cur: cur,
                    rlim_max: max,
                };
                libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl);
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start the job's stand-in: {e}")))?;
    let pid = child.id();
    loaded
        .track(pid, self_pid, true)
        .map_err(|e| fail(format!("cannot follow the stand-in (pid {pid}): {e}")))?;
    pipe.synthetic(&Synthetic {
        ts_ns: monotonic_ns(),
        root: true,
        process: snapshot::ProcInfo {
            pid,
            ppid: self_pid,
            comm: "trigger".into(),
            cmdline: vec!["tracer".into(), "__as-cron".into()],
            uid: 0,
            gid: 0,
            cwd: Some("/".into()),
            exe: None,
            nofile: None,
        },
    });
    pipe.force_entry(pid, entry.clone());
    pipe.only_entries(vec![entry.clone()]);
    let json = serde_json::to_vec(plan).map_err(|e| fail(format!("job plan: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| fail("no stdin to the stand-in".into()))?;
    std::io::Write::write_all(&mut stdin, &json)
        .map_err(|e| fail(format!("cannot hand the job to its stand-in: {e}")))?;
    drop(stdin);
    eprintln!(
        "tracer: running {}:{} `{}` as {} now, as cron would",
        entry.file, entry.line, entry.command, plan.user
    );
    // Reaped by the live loop's waitpid.
    std::mem::forget(child);
    Ok(pid)
}

/// The entries `--entry` names, with their next run, said on stderr.
fn entry_targets(patterns: &[String], pipe: &Pipeline, start_ns: u64) -> Vec<Target> {
    let now = monotonic_ns();
    let mut out = Vec::new();
    for p in patterns {
        for t in pipe.schedules().targets(p, start_ns) {
            let e = &t.entry_ref;
            let what = format!(
                "{}:{} `{} {}` (user {})",
                e.file, e.line, e.schedule, e.command, e.user
            );
            match (&t.fire_text, t.fire_ns, t.runs) {
                (Some(when), Some(ns), true) => eprintln!(
                    "tracer: waiting for {what}: {} runs it next at {when} (in {})",
                    t.daemon,
                    human_wait(ns.saturating_sub(now))
                ),
                (_, _, false) => eprintln!(
                    "tracer: {what} will not run: {}",
                    t.skipped_because
                        .as_deref()
                        .unwrap_or("the daemon skips it")
                ),
                _ => eprintln!(
                    "tracer: {what} has no next run time (@reboot, or a date that never comes)"
                ),
            }
            out.push(t);
        }
    }
    out
}

fn human_wait(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// `--entry` patterns that match nothing are a usage error, found before loading
/// anything into the kernel; the message lists what there is.
fn check_entry_patterns(
    patterns: &[String],
    roots: &[snapshot::ProcInfo],
) -> Result<(), SetupError> {
    if patterns.is_empty() {
        return Ok(());
    }
    let views = schedule_views(roots, Some(&mut secrets::Counts::new()), true);
    let entries: Vec<crate::schedules::Entry> =
        views.iter().flat_map(|v| v.analyse().entries).collect();
    for p in patterns {
        if !entries.iter().any(|e| entry_matches(e, p)) {
            let mut known: Vec<String> = entries
                .iter()
                .map(|e| format!("  {}:{}  {}  {}", e.file, e.line, e.schedule, e.command))
                .collect();
            known.dedup();
            known.truncate(30);
            return Err(SetupError {
                what: format!(
                    "--entry {p:?} matches no crontab entry{}",
                    if known.is_empty() {
                        " (no crontab entries found on this host)".to_string()
                    } else {
                        format!("; the entries are:\n{}", known.join("\n"))
                    }
                ),
                fix: "give text from the entry's command, or FILE:LINE as `tracer crontab` lists them".into(),
            });
        }
    }
    Ok(())
}

pub fn run(opts: RecordOptions) -> Result<report::Report, SetupError> {
    loader::check_privileges()?;
    if !opts.entries.is_empty() {
        let spec = RootSpec::with_defaults(opts.comms.clone(), opts.pids.clone(), opts.all);
        let roots: Vec<snapshot::ProcInfo> = snapshot::read_all()
            .into_iter()
            .filter(|p| spec.is_root(p))
            .collect();
        check_entry_patterns(&opts.entries, &roots)?;
    }
    // Create the output before attaching: a bad path fails fast, nothing is loaded.
    let out_file = match &opts.output {
        Some(path) => Some(
            tracefile::create_file(path, opts.force).map_err(|e| SetupError {
                what: e.what,
                fix: e.fix,
            })?,
        ),
        None => None,
    };
    let (tracefs, mounted) = loader::ensure_tracefs()?;
    if mounted {
        eprintln!(
            "tracer: mounted tracefs at {} (unmounted again at exit)",
            tracefs.display()
        );
    }
    let result = run_attached(&opts, &tracefs, out_file);
    if mounted {
        loader::unmount_tracefs(&tracefs);
    }
    result
}

fn run_attached(
    opts: &RecordOptions,
    tracefs: &Path,
    out_file: Option<std::fs::File>,
) -> Result<report::Report, SetupError> {
    let self_pid = std::process::id();
    let mut loaded = loader::load_and_attach(
        tracefs,
        &LoadOptions {
            trace_all: opts.all,
            self_tgid: self_pid,
            kernel_log_level: kernel_log_level(),
            ring_bytes: opts.ring_mb << 20,
        },
    )?;
    for m in &loaded.missing_optional {
        eprintln!("tracer: note: this kernel has no tracepoint {m}; those calls are not seen");
    }
    // A trigger follows its own stand-in only, not the host's schedulers.
    let spec = if opts.trigger.is_some() {
        RootSpec::default()
    } else {
        RootSpec::with_defaults(opts.comms.clone(), opts.pids.clone(), opts.all)
    };
    for c in &spec.comms {
        loaded.add_root_comm(c).map_err(|e| SetupError {
            what: format!("could not register root comm {c}: {e}"),
            fix: "retry; if it persists, report it".into(),
        })?;
    }
    for pid in &opts.pids {
        // Checked when parsed; it may have exited since.
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(SetupError {
                what: format!("--pid {pid}: the process has exited"),
                fix: "check the pid with `pgrep -a cron` or `ps -ef`".into(),
            });
        }
    }
    let ring = loaded.take_ring()?;
    let redact = !opts.capture_secrets;

    // Seed after attaching: a fork between the scan and the attach would otherwise be lost.
    let start_ns = monotonic_ns();
    let tracked = snapshot::roots_and_descendants(&snapshot::read_all(), &spec, self_pid);
    let mut known: HashSet<u32> = HashSet::new();
    let mut seeds = Vec::new();
    let mut start_redactions = secrets::Counts::new();
    for (pid, root) in tracked {
        if let Some(p) = snapshot::read_one(pid) {
            live::follow_found(&mut loaded, &p, root, "the start-up scan");
            known.insert(pid);
            seeds.push(Synthetic {
                ts_ns: start_ns,
                root,
                process: process_for_trace(&p, redact.then_some(&mut start_redactions)),
            });
        }
    }
    let users = users_map();
    let roots: Vec<snapshot::ProcInfo> = seeds
        .iter()
        .filter(|s| s.root)
        .map(|s| s.process.clone())
        .collect();
    let schedules = if opts.trigger.is_some() {
        Vec::new()
    } else {
        // Roots named on the command line say what to follow: cron not running is
        // then not this run's finding.
        let explicit = opts.all || !opts.comms.is_empty() || !opts.pids.is_empty();
        schedule_views(&roots, redact.then_some(&mut start_redactions), !explicit)
    };
    for v in &schedules {
        log::info!(
            "crontabs of {}: {} files read under {}",
            v.who(),
            v.sources.len(),
            v.root
        );
    }
    let mono_to_wall_ns = realtime_ns() - monotonic_ns() as i64;
    let header = TraceHeader {
        format_major: tracefile::FORMAT_MAJOR,
        format_minor: tracefile::FORMAT_MINOR,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: read_trim("/proc/sys/kernel/hostname"),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        mono_to_wall_ns,
        start_ns,
        options: CaptureOptions {
            comms: opts.comms.clone(),
            pids: opts.pids.clone(),
            all: opts.all,
            capture_secrets: opts.capture_secrets,
            duration_secs: opts.duration.map(|d| d.as_secs_f64()),
        },
        snapshot: seeds,
        crontabs: Default::default(),
        schedules,
        users: users.clone(),
        managers: if opts.trigger.is_some() {
            Vec::new()
        } else {
            manager_views(&roots, redact.then_some(&mut start_redactions))
        },
        tables: if opts.trigger.is_some() {
            Vec::new()
        } else {
            let explicit = opts.all || !opts.comms.is_empty() || !opts.pids.is_empty();
            table_files(&roots, !explicit, redact.then_some(&mut start_redactions))
        },
    };
    let mut pipe = Pipeline::new(
        UserNames::from_map(users),
        opts.format,
        redact,
        start_ns,
        Box::new(LiveFacts::default()),
    )
    .with_schedules(header.schedules.clone(), mono_to_wall_ns)
    .with_scheduler_files(header.managers.clone(), header.tables.clone())
    .summarise_clean_jobs(!opts.timelines);
    let reopen = opts
        .follow
        .as_ref()
        .map(|_| Arc::new(AtomicBool::new(false)));
    if let (Some(log), Some(flag)) = (&opts.follow, &reopen) {
        let f = Follow::new(log.as_deref(), flag.clone()).map_err(|e| SetupError {
            what: format!(
                "cannot open {} for --follow: {e}",
                log.as_deref().map_or("stdout".into(), |p| p.display().to_string())
            ),
            fix: "name a file in an existing directory root can write (e.g. /var/log/tracer-jobs.jsonl)".into(),
        })?;
        pipe = pipe.follow(f);
    }
    pipe.note_redactions(Some(&start_redactions));
    for s in &header.snapshot {
        pipe.synthetic(s);
    }
    if let (Some(file), Some(path)) = (out_file, opts.output.as_ref()) {
        pipe.writer = Some(TraceWriter::new(path, file, &header));
    }
    let signals = live::catch_signals(reopen.is_some());
    eprintln!(
        "tracer: attached {} tracepoints; following roots: {}; {}{}",
        loaded.attached,
        describe_roots(&header.snapshot),
        match opts.duration {
            Some(d) => format!("stopping after {}s (Ctrl-C stops early)", d.as_secs_f64()),
            None => "Ctrl-C to stop".into(),
        },
        match &opts.output {
            Some(p) => format!("; writing {}", p.display()),
            None => String::new(),
        }
    );

    let targets = entry_targets(&opts.entries, &pipe, start_ns);
    if !opts.entries.is_empty() {
        pipe.only_entries(targets.iter().map(|t| t.entry_ref.clone()).collect());
    }
    let waiting = targets.iter().any(|t| t.runs && t.fire_ns.is_some());
    let until_exit = match &opts.trigger {
        Some((entry, plan)) => Some(start_stand_in(
            &mut loaded,
            &mut pipe,
            self_pid,
            entry,
            plan,
        )?),
        None => None,
    };
    let began = Instant::now();
    if opts.entries.is_empty() || waiting {
        live::run(
            &mut loaded,
            ring,
            &mut pipe,
            &live::LoopOptions {
                spec: &spec,
                self_pid,
                redact,
                duration: opts.duration,
                targets: &targets,
                until_exit,
                reopen: reopen.clone(),
            },
            &mut known,
            signals,
        )?;
    }
    let stopped = Instant::now();
    let lost = loaded.lost();
    // One end time for the report and the trailer, so a replay says the same.
    let end_ns = monotonic_ns();
    pipe.set_end(end_ns);

    let lost_events = lost.iter().map(|(_, v)| v).sum();
    let lost_by_kind: BTreeMap<String, u64> = lost.into_iter().collect();
    let rep = pipe.finish(Stats {
        lost_events,
        lost_by_kind: lost_by_kind.clone(),
        duration_ns: began.elapsed().as_nanos() as u64,
        ..Default::default()
    });
    log::debug!("report out {:?} after the stop", stopped.elapsed());
    if let Some(w) = pipe.writer.take() {
        let trailer = Trailer {
            kernel_records: w.kernel_records,
            synthetic_events: w.synthetic_events,
            lost_events,
            lost_by_kind: lost_by_kind.clone(),
            end_ns,
            redactions: rep.stats.redactions.clone(),
            // The writer adds the answers it wrote.
            facts: None,
        };
        let path = w.path().display().to_string();
        let finished = w.finish(&trailer);
        log::debug!("trace file done {:?} after the stop", stopped.elapsed());
        match finished {
            None => eprintln!("tracer: wrote {path}"),
            // The cause was said when it happened.
            Some(_) => eprintln!(
                "tracer: {path} is incomplete (see the warning above); `tracer replay` reads it up to where writing stopped"
            ),
        }
    }
    // Detaching waits for an RCU grace period per probe (seconds in all): the report
    // is out first so the person at the terminal is not kept waiting for it.
    drop(loaded);
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_outside_a_year_and_non_numbers_are_refused() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        for bad in [
            "0", "-1", "1e30", "1e18", "NaN", "nan", "inf", "-inf", "", "ten", "31622401",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("366 days") && e.contains("leave --duration out"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn pid_0_and_absent_pids_are_refused() {
        let me = std::process::id();
        assert_eq!(parse_pid(&me.to_string()), Ok(me));
        assert!(parse_pid("0").unwrap_err().contains("idle task"));
        assert!(parse_pid("-5").unwrap_err().contains("not a process id"));
        // Above the kernel's pid_max (at most 2^22).
        assert!(parse_pid("4194305")
            .unwrap_err()
            .contains("no process has pid 4194305"));
    }

    #[test]
    fn a_comm_longer_than_the_kernel_keeps_is_refused_with_the_name_to_use() {
        assert_eq!(parse_comm("cron").as_deref(), Ok("cron"));
        assert_eq!(
            parse_comm("exactly15bytes!").as_deref(),
            Ok("exactly15bytes!")
        );
        let e = parse_comm("backup-scheduler-nightly").unwrap_err();
        assert!(
            e.contains("15 bytes") && e.contains("--comm \"backup-schedule\""),
            "{e}"
        );
        // Cut on a character boundary, never inside one.
        let e = parse_comm("ééééééééé").unwrap_err();
        assert!(e.contains("--comm \"ééééééé\""), "{e}");
        assert!(parse_comm("").is_err());
    }
}
