//! `tracer record`: the live event loop. Kernel records are decoded, redacted and fed
//! to the job tracker; jobs are printed as they finish; the report closes the run.
use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::SignalKind,
};

use crate::{
    capture::loader::{self, LoadOptions, SetupError},
    capture::snapshot::{self, ProcInfo, RootSpec},
    facts::LiveFacts,
    model::users::UserNames,
    output::report::{self, Stats},
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
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Crontab files as they are now (cron's system files and the user spools).
pub fn read_crontabs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |p: &Path| {
        if let Ok(t) = std::fs::read_to_string(p) {
            out.insert(p.display().to_string(), secrets::redact_crontab(&t));
        }
    };
    for f in ["/etc/crontab", "/etc/anacrontab"] {
        add(Path::new(f));
    }
    for dir in ["/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                add(&f);
            }
        }
    }
    out
}

fn users_map() -> BTreeMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .map(|s| UserNames::parse(&s).into_map())
        .unwrap_or_default()
}

fn process_for_trace(p: &ProcInfo, redact: bool) -> ProcInfo {
    let mut p = p.clone();
    if redact {
        secrets::redact_argv(&mut p.cmdline);
    }
    p
}

pub fn run(opts: RecordOptions) -> Result<report::Report, SetupError> {
    loader::check_privileges()?;
    // Create the output before attaching: a bad path fails fast, nothing is loaded.
    let out_file = match &opts.output {
        Some(path) => Some(tracefile::create_file(path, opts.force).map_err(|e| {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let fix = match e.raw_os_error() {
                _ if is_link => {
                    "the path is a symlink; traces are never written through one: name a new file"
                        .to_string()
                }
                Some(libc::EEXIST) => {
                    "choose a new file name, or pass --force to overwrite it".to_string()
                }
                _ => "check that the directory exists and is writable".to_string(),
            };
            SetupError {
                what: format!("cannot create trace file {}: {e}", path.display()),
                fix,
            }
        })?),
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
        },
    )?;
    for m in &loaded.missing_optional {
        eprintln!("tracer: note: this kernel has no tracepoint {m}; those calls are not seen");
    }
    let spec = RootSpec::with_defaults(opts.comms.clone(), opts.pids.clone(), opts.all);
    for c in &spec.comms {
        loaded.add_root_comm(c).map_err(|e| SetupError {
            what: format!("could not register root comm {c}: {e}"),
            fix: "retry; if it persists, report it".into(),
        })?;
    }
    for pid in &opts.pids {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(SetupError {
                what: format!("--pid {pid}: no such process"),
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
    for (pid, root) in tracked {
        if let Some(p) = snapshot::read_one(pid) {
            let _ = loaded.track(pid, p.ppid, root);
            known.insert(pid);
            seeds.push(Synthetic {
                ts_ns: start_ns,
                root,
                process: process_for_trace(&p, redact),
            });
        }
    }
    let users = users_map();
    let header = TraceHeader {
        format_major: tracefile::FORMAT_MAJOR,
        format_minor: tracefile::FORMAT_MINOR,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: read_trim("/proc/sys/kernel/hostname"),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        mono_to_wall_ns: realtime_ns() - monotonic_ns() as i64,
        start_ns,
        options: CaptureOptions {
            comms: opts.comms.clone(),
            pids: opts.pids.clone(),
            all: opts.all,
            capture_secrets: opts.capture_secrets,
            duration_secs: opts.duration.map(|d| d.as_secs_f64()),
        },
        snapshot: seeds,
        crontabs: read_crontabs(),
        users: users.clone(),
    };
    let mut pipe = Pipeline::new(
        UserNames::from_map(users),
        opts.format,
        redact,
        start_ns,
        Box::new(LiveFacts::default()),
    );
    for s in &header.snapshot {
        pipe.synthetic(s);
    }
    if let (Some(file), Some(path)) = (out_file, opts.output.as_ref()) {
        pipe.writer = Some(TraceWriter::new(path, file, &header));
    }
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

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SetupError {
            what: format!("cannot start the event loop: {e}"),
            fix: "retry".into(),
        })?;
    let began = Instant::now();
    // SAFETY: the RingBuf owns its map fd and keeps it open until it is dropped,
    // which happens only after the AsyncFd is gone.
    let registered =
        rt.block_on(async { unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) } });
    let mut ring = registered.map_err(|e| SetupError {
        what: format!("cannot poll the ring buffer: {e}"),
        fix: "retry".into(),
    })?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(SignalKind::terminate()).ok();
        let mut int = tokio::signal::unix::signal(SignalKind::interrupt()).ok();
        let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_scan = Instant::now();
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let Ok(mut guard) = guard else { break };
                    drain(guard.get_inner_mut(), &mut pipe, redact);
                    guard.clear_ready();
                }
                _ = recv(&mut term) => break,
                _ = recv(&mut int) => break,
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
                _ = tick.tick() => {
                    if let Some(w) = pipe.writer.as_mut() {
                        w.tick();
                    }
                    if last_scan.elapsed() >= Duration::from_secs(2) {
                        last_scan = Instant::now();
                        rescan(&mut loaded, &spec, self_pid, &mut known, &mut pipe, redact);
                    }
                }
            }
        }
        // What the kernel wrote before we stopped listening.
        drain(ring.get_mut(), &mut pipe, redact);
    });
    let lost = loaded.lost();
    drop(ring);
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
    if let Some(w) = pipe.writer.take() {
        let trailer = Trailer {
            kernel_records: w.kernel_records,
            synthetic_events: w.synthetic_events,
            lost_events,
            lost_by_kind: lost_by_kind.clone(),
            end_ns,
        };
        let path = w.path().display().to_string();
        match w.finish(&trailer) {
            None => eprintln!("tracer: wrote {path}"),
            Some(e) => eprintln!("tracer: warning: {e}"),
        }
    }
    // Detaching waits for an RCU grace period per probe (seconds in all): the report
    // is out first so the person at the terminal is not kept waiting for it.
    drop(loaded);
    Ok(rep)
}

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Daemons the kernel cannot spot by comm (busybox crond), or started between the
/// start-up scan and the attach.
fn rescan(
    loaded: &mut loader::Loaded,
    spec: &RootSpec,
    self_pid: u32,
    known: &mut HashSet<u32>,
    pipe: &mut Pipeline,
    redact: bool,
) {
    let now = monotonic_ns();
    for (pid, root) in snapshot::roots_and_descendants(&snapshot::read_all(), spec, self_pid) {
        if !known.insert(pid) || loaded.is_tracked(pid) {
            continue;
        }
        if let Some(p) = snapshot::read_one(pid) {
            let _ = loaded.track(pid, p.ppid, root);
            pipe.synthetic(&Synthetic {
                ts_ns: now,
                root,
                process: process_for_trace(&p, redact),
            });
        }
    }
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, pipe: &mut Pipeline, redact: bool) {
    while let Some(item) = ring.next() {
        let new_root = pipe.kernel_record(&item);
        drop(item);
        // A scheduler that started while we trace: its argv and cwd come from /proc
        // (its exec attempt was not followed), so its jobs inherit them.
        if let Some(pid) = new_root {
            if let Some(p) = snapshot::read_one(pid) {
                pipe.synthetic(&Synthetic {
                    ts_ns: monotonic_ns(),
                    root: true,
                    process: process_for_trace(&p, redact),
                });
            }
        }
    }
}
